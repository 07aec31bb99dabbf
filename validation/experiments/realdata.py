"""The NTK-LC real-data experiment (spec section 8): random features on MNIST-type data.

Random-features networks as in the paper: the hidden layers keep their random initialisation
(784 -> 2000 -> 2000 -> 1000 by default) and only a linear readout is fitted. Compared, for the
classes 0-4 and for all 10 classes:

* ``dense``: Gaussian float32 weights, ReLU by default (32 bits per weight);
* ``ntk-lc``: ternary weights of sparsity eps with the solved quantized activations
  (``solvers.ternarize``), memory by ``nets.memory`` (bytes written by the entropy coder);
* ``pruning``: the dense weights with all but the fraction f of largest magnitude set to 0
  (rescaled to unit variance), f chosen so that its memory equals NTK-LC's at the same eps;
  memory rule: 32 bits per kept value + the entropy bound h(f) of the mask per weight;
* ``quantization``: the dense weights rounded to 2^k uniform levels on [-max|w|, max|w|]
  (k = 1: sign times mean |w|), k bits per weight.

Every hidden-layer count adds one float32 per layer (scale or centring). The readout (float32,
with intercept) is counted in the whole-model memory of every method. Data: pixels in [0, 1],
minus the training mean, divided by the training root mean square norm, so that tau0 estimated
from the training set is 1. Readout: ridge regression on one-hot targets, its penalty chosen
on the last 10 % of the training set from a fixed grid (deterministic, no learning-rate
tuning).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

from nets import CompressedNetwork, DenseNetwork, memory_report
from nets.data import as_float, load_dataset
from ntk import parse_activations
from ntk.progress import progress_bar
from ntklc.errors import InputError
from solvers import CompressionResult, compress_network, ternary_entropy_bound

__all__ = ["TASKS", "InfeasibleCompressionError", "RealDataResult", "cnn_features_experiment",
           "ntklc_compression", "ntklc_real_experiment", "prepare_images", "prepare_vectors",
           "random_features_experiment", "ridge_readout", "run_ntklc_real"]

_FLOAT_BITS = 32
_RIDGE_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
#: Classification tasks of the readout: the classes 0-4 only, or all of them.
TASKS = ("classes 0-4", "all 10")
#: Columns per block of a ternary network's forward pass. Its kernel streams whole batch rows:
#: at n = 20000 and eps = 0 a block of 1024 columns, which stays in cache across output rows,
#: is 3.7x faster than one pass (2x at eps = 0.9, 0.99); each column's result does not depend
#: on the blocking. BLAS (the dense networks) blocks by itself and only loses by it.
_BLOCK = 1024


class InfeasibleCompressionError(InputError):
    """The NTK-LC equations have no solution for these activations (the solver says why)."""


@functools.lru_cache(maxsize=32)
def _solve(acts: tuple[str, ...]) -> tuple[CompressionResult | None, str | None]:
    # Memoised: the solution depends on the activations only (tau0 = 1 by the preprocessing),
    # and a smooth activation's solve takes tens of seconds, which the tasks of one activation
    # at several eps would otherwise repeat. The failure is memoised too: an infeasible solve
    # is as slow as a feasible one.
    try:
        return compress_network(list(acts), 1.0), None
    except ValueError as exc:
        return None, str(exc)


def ntklc_compression(acts) -> CompressionResult:
    """``solvers.compress_network(acts, 1.0)``, computed once per process and activations.

    Args:
        acts: one activation name per layer.

    Raises:
        InputError: an unknown activation.
        InfeasibleCompressionError: no quantized activations match (e.g. swish at L = 3).
    """
    names = tuple(acts)
    # Parsed first so that a misspelt name is the user error it is, not an "infeasible" one.
    parse_activations(list(names))
    result, reason = _solve(names)
    if result is None:
        raise InfeasibleCompressionError(reason)
    return result


def prepare_images(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flattened (p, n) float32 pixel data centred and scaled by training statistics."""
    return prepare_vectors(as_float(train).reshape(train.shape[0], -1),
                           as_float(test).reshape(test.shape[0], -1))


def prepare_vectors(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p, n) float32 data from (n, p) rows: minus the training mean, divided by the training
    root mean square norm, so that tau0 estimated from the training set is 1."""
    Xtr = np.array(train, dtype=np.float32)
    Xte = np.array(test, dtype=np.float32)
    mean = Xtr.mean(axis=0)
    Xtr -= mean
    Xte -= mean
    scale = math.sqrt(float(np.mean(np.sum(Xtr * Xtr, axis=1))))
    return np.ascontiguousarray((Xtr / scale).T), np.ascontiguousarray((Xte / scale).T)


def ridge_readout(F_train: np.ndarray, y_train: np.ndarray, F_test: np.ndarray,
                  classes: int) -> tuple[np.ndarray, float]:
    """Fit a ridge readout on features (d, n) and return test predictions and the penalty.

    The penalty lam * trace(F F^T)/d is chosen on the last 10 % of the training columns.
    """
    def normal_equations(F, y):
        A = np.vstack([F, np.ones((1, F.shape[1]), dtype=F.dtype)]).astype(np.float64)
        return A @ A.T, A @ np.eye(classes)[y]

    def fit(G, B, lam):
        G = G.copy()
        G[np.diag_indices_from(G)] += lam * np.trace(G) / G.shape[0]
        return linalg.solve(G, B, assume_a="pos")

    def predict(W, F):
        return np.argmax(W[:-1].T @ F + W[-1][:, None], axis=0)

    cut = int(0.9 * F_train.shape[1])
    # One Gram matrix per training split, shared by the penalty grid: a pass over the data
    # costs far more than a solve (n = 60000, d = 1000: 9 s -> 3 s), and the numbers are the
    # same as fitting each penalty from scratch.
    G_fit, B_fit = normal_equations(F_train[:, :cut], y_train[:cut])
    scores = [np.mean(predict(fit(G_fit, B_fit, lam), F_train[:, cut:]) == y_train[cut:])
              for lam in _RIDGE_GRID]
    lam = _RIDGE_GRID[int(np.argmax(scores))]
    return predict(fit(*normal_equations(F_train, y_train), lam), F_test), lam


def _features(net, X: np.ndarray) -> np.ndarray:
    """``net.features(X)``, for a ternary network in blocks of ``_BLOCK`` columns."""
    if not isinstance(net, CompressedNetwork):
        return net.features(X)
    return np.concatenate([net.features(X[:, i:i + _BLOCK])
                           for i in range(0, X.shape[1], _BLOCK)], axis=1)


def _pruning_fraction(bits_per_weight: float) -> float:
    """Kept fraction f with 32 f + h(f) = bits_per_weight (h: binary entropy in bits)."""
    def excess(f):
        h = -(f * math.log2(f) + (1 - f) * math.log2(1 - f))
        return _FLOAT_BITS * f + h - bits_per_weight

    return optimize.brentq(excess, 1e-9, 0.5)


def _prune(W: np.ndarray, keep: float) -> np.ndarray:
    k = max(1, round(keep * W.size))
    cut = np.partition(np.abs(W).ravel(), W.size - k)[W.size - k]
    out = np.where(np.abs(W) >= cut, W, 0.0).astype(np.float32)
    return out / np.float32(np.sqrt(np.mean(out * out)))


def _quantize(W: np.ndarray, bits: int) -> np.ndarray:
    if bits == 1:
        return (np.sign(W) * np.mean(np.abs(W))).astype(np.float32)
    top = float(np.max(np.abs(W)))
    steps = 2**bits - 1
    q = np.round((W + top) / (2 * top) * steps) / steps * 2 * top - top
    return q.astype(np.float32)


@dataclass(frozen=True)
class RealDataResult:
    """Accuracy vs memory of every method on one data set.

    Attributes:
        rows: one dict per (method, setting): ``method``, ``setting``, ``hidden_bits``,
            ``total_bits``, ``accuracy`` (task -> test accuracy), ``factor`` (dense hidden
            bits / hidden bits); pruning rows also ``keep``, the kept fraction of weights.
    """

    data: str
    widths: tuple[int, ...]
    n_train: int
    n_test: int
    rows: tuple[dict, ...]
    rule: str
    seconds: float

    def as_dict(self) -> dict:
        return {"data": self.data, "widths": list(self.widths), "n_train": self.n_train,
                "n_test": self.n_test, "rule": self.rule, "rows": list(self.rows),
                "seconds": self.seconds}


def ntklc_real_experiment(data: str = "mnist", *, widths=(2000, 2000, 1000),
                          eps_values=(0.0, 0.5, 0.9, 0.99, 0.999), bits=(1, 2, 4, 8),
                          n_train: int | None = None, act: str = "relu", tasks=TASKS,
                          data_dir=None, seed: int = 0, progress: bool = False
                          ) -> RealDataResult:
    """Run the experiment of the module docstring on a data set's pixels.

    Args:
        data: ``mnist`` or ``fashion-mnist`` (or ``cifar-10`` raw pixels).
        widths: hidden widths (3 layers in the paper).
        eps_values: sparsities of NTK-LC; pruning is matched to each eps's memory.
        bits: bit widths of uniform quantization.
        n_train: use the first n_train training images (all by default).
        act: activation of every hidden layer of the dense network.
        tasks: readout tasks, a subset of :data:`TASKS`.
        data_dir: searched before ``NTKLC_DATA`` and the cache.
        seed: seed of every random network.
    """
    start = time.perf_counter()
    train, test = load_dataset(data, "train", data_dir), load_dataset(data, "test", data_dir)
    n = len(train) if n_train is None else min(int(n_train), len(train))
    X_train, X_test = prepare_images(train.images[:n], test.images)
    return random_features_experiment(
        data, X_train, train.labels[:n], X_test, test.labels, len(train.classes),
        widths=widths, eps_values=eps_values, bits=bits, act=act, tasks=tasks, seed=seed,
        progress=progress, start=start)


def random_features_experiment(data: str, X_train: np.ndarray, y_train: np.ndarray,
                               X_test: np.ndarray, y_test: np.ndarray, classes: int, *,
                               widths=(2000, 2000, 1000),
                               eps_values=(0.0, 0.5, 0.9, 0.99, 0.999), bits=(1, 2, 4, 8),
                               act: str = "relu", tasks=TASKS, seed: int = 0,
                               progress: bool = False, start: float | None = None
                               ) -> RealDataResult:
    """The comparison of the module docstring on prepared inputs (``prepare_vectors``).

    Args:
        data: a label for the result.
        X_train, X_test: (p, n) inputs with tau0 = 1 on the training set.
        y_train, y_test: integer labels; ``classes`` their number.
        act: activation of every hidden layer of the dense network; NTK-LC uses the quantized
            activations solved for it (:func:`ntklc_compression`).
        tasks: readout tasks, a subset of :data:`TASKS`.

    Raises:
        InputError: an unknown activation or task.
        InfeasibleCompressionError: ``eps_values`` is not empty and NTK-LC cannot match
            ``act`` at this depth.
    """
    start = time.perf_counter() if start is None else start
    n = X_train.shape[1]
    p = X_train.shape[0]
    widths = tuple(int(w) for w in widths)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise InputError(f"tasks must be a non-empty subset of {', '.join(TASKS)}; got "
                         f"{', '.join(map(repr, tasks))}")
    acts = [act] * len(widths)
    dense = DenseNetwork.random(p, widths, acts, 1.0, seed=seed)
    n_weights = sum(W.size for W in dense.weights)
    readout_bits = _FLOAT_BITS * (widths[-1] + 1) * classes
    dense_hidden = _FLOAT_BITS * (n_weights + len(widths))
    subsets = {"classes 0-4": (y_train < 5, y_test < 5), "all 10": (None, None)}
    subsets = {t: subsets[t] for t in TASKS if t in tasks}

    jobs = [("dense", "float32", dense, dense_hidden, {})]
    for eps in eps_values:
        result = ntklc_compression(acts)
        net = CompressedNetwork.random(p, widths, result.activations, eps, 1.0, seed=seed)
        mem = memory_report(net, readout_shape=(classes, widths[-1]))
        hidden = mem.coded_hidden_bits + mem.compressed_activation_bits
        jobs.append(("ntk-lc", f"eps={eps:g}", net, hidden, {}))
        keep = _pruning_fraction(mem.coded_hidden_bits / n_weights)
        pruned = DenseNetwork(tuple(_prune(W, keep) for W in dense.weights),
                              dense.activations, dense.centring)
        jobs.append(("pruning", f"keep={keep:.4f} (eps={eps:g})", pruned, hidden,
                     {"keep": keep}))
    for b in bits:
        quantized = DenseNetwork(tuple(_quantize(W, b) for W in dense.weights),
                                 dense.activations, dense.centring)
        jobs.append(("quantization", f"{b} bit", quantized,
                     b * n_weights + _FLOAT_BITS * len(widths), {}))
    rows = []
    for method, setting, net, hidden, extra in progress_bar(jobs, desc="networks",
                                                    disable=not progress, leave=False):
        F_train, F_test = _features(net, X_train), _features(net, X_test)
        accuracy = {}
        for task, (sel_train, sel_test) in subsets.items():
            Ftr = F_train if sel_train is None else F_train[:, sel_train]
            Fte = F_test if sel_test is None else F_test[:, sel_test]
            ytr = y_train if sel_train is None else y_train[sel_train]
            yte = y_test if sel_test is None else y_test[sel_test]
            pred, _ = ridge_readout(Ftr, ytr, Fte, classes)
            accuracy[task] = float(np.mean(pred == yte))
        rows.append({"method": method, "setting": setting, "hidden_bits": float(hidden),
                     "total_bits": float(hidden + readout_bits),
                     "factor": dense_hidden / hidden, "accuracy": accuracy, **extra})
    rule = (f"hidden-layer memory: dense 32 bits per weight; NTK-LC bytes written by the "
            f"entropy coder + quantized-activation parameters (nets.memory); pruning 32 bits "
            f"per kept weight + h(f) bits per weight for the mask; quantization k bits per "
            f"weight; + one float32 per layer; readout float32 ({readout_bits} bits) in the "
            f"totals. Entropy bound at eps=0.9: {ternary_entropy_bound(0.9):.3f} bits/weight")
    return RealDataResult(data=data, widths=widths, n_train=n, n_test=X_test.shape[1],
                          rows=tuple(rows), rule=rule, seconds=time.perf_counter() - start)


def cnn_features_experiment(data: str = "cifar-10", *, epochs: int = 10,
                            widths=(2000, 2000, 1000), eps_values=(0.0, 0.5, 0.9, 0.99, 0.999),
                            bits=(1, 2, 4, 8), n_train: int | None = None, data_dir=None,
                            seed: int = 0, progress: bool = False) -> RealDataResult:
    """The paper's CIFAR-10 pipeline: a small CNN trained by ``nets`` provides features (its
    penultimate 128-unit layer), which go through the same random-features comparison.

    Args:
        data: image data set (``cifar-10`` in the paper; any of ``load_dataset``'s).
        epochs: CNN training epochs (Adam, batch 128).
        n_train: first n_train training images for both the CNN and the readout.
    """
    from nets import small_cnn
    from validation.experiments.train import image_arrays

    start = time.perf_counter()
    Xtr, ytr, Xte, yte, classes = image_arrays(data, "cnn", data_dir)
    if n_train is not None:
        Xtr, ytr = Xtr[:n_train], ytr[:n_train]
    cnn = small_cnn(Xtr.shape[1:], classes, rng=seed)
    cnn.fit(Xtr, ytr, epochs=epochs, batch_size=128, rng=seed, progress=progress)

    def features(X):
        out = []
        for i in range(0, X.shape[0], 1024):
            h = X[i:i + 1024]
            for layer in cnn.layers[:-1]:  # everything but the classifier
                h = layer.forward(h, False)
            out.append(h)
        return np.concatenate(out)

    F_train, F_test = prepare_vectors(features(Xtr), features(Xte))
    return random_features_experiment(
        f"{data} (CNN features)", F_train, ytr, F_test, yte, classes, widths=widths,
        eps_values=eps_values, bits=bits, seed=seed, progress=progress, start=start)


def run_ntklc_real(data: str, *, quick: bool = False, cnn_epochs: int = 10, data_dir=None,
                   seed: int = 0, progress: bool = False) -> RealDataResult:
    """``ntklc experiment ntklc-real`` and its sweep task: pixels for MNIST-type data, CNN
    features for CIFAR-10 (as the paper does).

    Args:
        data: ``mnist``, ``fashion-mnist`` or ``cifar-10``.
        quick: widths 500-500-250, 10000 training images and a 1-epoch CNN.
        cnn_epochs: CIFAR-10: epochs of the feature CNN (without ``quick``).
    """
    kwargs = {"widths": (500, 500, 250), "n_train": 10000} if quick else {}
    if data == "cifar-10":
        return cnn_features_experiment(data, epochs=1 if quick else cnn_epochs,
                                       data_dir=data_dir, seed=seed, progress=progress,
                                       **kwargs)
    return ntklc_real_experiment(data, data_dir=data_dir, seed=seed, progress=progress,
                                 **kwargs)
