"""Part (e) of the CNN study: accuracy vs memory of random-feature CNNs on MNIST-type data.

The network keeps its random convolutions, as the paper's random-features networks keep their
random dense layers: two 3 x 3 "same" convolutions (C_1 and C_2 channels, Gaussian filters,
the NTK parameterisation of ``ntk.cnn_architecture``) with ReLU and 2 x 2 average pooling
after each, flattened; only a ridge readout is fitted
(``validation.experiments.realdata.ridge_readout``, the protocol of ``ntklc experiment
ntklc-real``). Compared at matched memory, with the rules of
``validation.experiments.realdata``:

* ``dense``: float32 filters (``nets.DenseCNN``);
* ``ntk-lc``: sparse ternary filters (``nets.CompressedCNN``) and the quantized activations of
  ``solvers.compress_cnn``, memory by ``nets.memory`` (bytes written by the entropy coder);
* ``pruning``: the dense filters with all but the largest-magnitude fraction set to zero,
  the fraction chosen so that its memory equals NTK-LC's at the same eps;
* ``quantization``: the dense filters rounded to 2^b uniform levels.

Images: pixels in [0, 1] minus the training mean image, scaled so that the mean first-layer
variance is 1 (tau0 = 1). For reference, the exact kernel of the dense network's infinite-width
limit (``ntk.cnn_kernels``, the CNN-GP kernel of the same architecture) fits a kernel ridge
regression on a subset, its penalty chosen on the last 10 % of that subset's training part.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import linalg

from nets import CompressedCNN, DenseCNN, memory_report
from nets.data import as_float, load_dataset
from ntk import cnn_kernels
from ntk.cnn_architecture import ConvArchitecture
from ntklc.errors import InputError
from solvers import cnn_input_scale, ternary_entropy_bound
from validation.experiments.realdata import (
    _prune,
    _pruning_fraction,
    _quantize,
    ntklc_compression,
    ridge_readout,
)

__all__ = ["ARCHITECTURE", "cnn_accuracy"]

#: The random-feature CNN's architecture: two convolutions, pooling after each.
ARCHITECTURE = ConvArchitecture(2, 3, "same", (1, 2), "flatten")
_ACTS = ("relu", "relu")
_FLOAT_BITS = 32
_RIDGE_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
# Images per block of features: bounds the working memory of the forward passes.
_BLOCK = 2000
_SIZES = {  # channels, training and test images (None: all), kernel-regression subset
    False: {"channels": (32, 64), "n_train": None, "n_test": None, "kernel_train": 400,
            "kernel_test": 200, "eps": (0.9, 0.99), "bits": (1, 2, 4, 8)},
    True: {"channels": (8, 16), "n_train": 1000, "n_test": 1000, "kernel_train": 40,
           "kernel_test": 20, "eps": (0.9, 0.99), "bits": (1, 4)},
}
_LOADER_NAMES = {"mnist": "mnist", "fashion-mnist": "fashion-mnist"}


def _prepared(data: str, data_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                 np.ndarray, int]:
    """Training and test images (N, 1, 28, 28) float32, centred and scaled to tau0 = 1."""
    if data not in _LOADER_NAMES:
        raise InputError(f"the accuracy part runs on mnist or fashion-mnist, got {data!r}")
    train = load_dataset(_LOADER_NAMES[data], "train", data_dir or None)
    test = load_dataset(_LOADER_NAMES[data], "test", data_dir or None)
    x_train = as_float(train.images)[:, None]
    x_test = as_float(test.images)[:, None]
    mean = x_train.mean(axis=0)
    x_train -= mean
    x_test -= mean
    scale = cnn_input_scale(x_train[:2000], ARCHITECTURE)
    return (x_train / scale, train.labels, x_test / scale, test.labels, len(train.classes))


def _features(net, x: np.ndarray) -> np.ndarray:
    return np.concatenate([net.features(x[i:i + _BLOCK]) for i in range(0, len(x), _BLOCK)],
                          axis=1)


def _kernel_accuracy(x: np.ndarray, y: np.ndarray, n_train: int, classes: int,
                     centring) -> tuple[float, float]:
    """Kernel ridge regression with the exact CNN CK: accuracy on the images after the first
    ``n_train`` and the time of the kernel."""
    start = time.perf_counter()
    K = cnn_kernels(x, list(_ACTS), filter_size=ARCHITECTURE.filter_size,
                    padding=ARCHITECTURE.padding, pool=ARCHITECTURE.pool,
                    readout=ARCHITECTURE.readout, ntk=False, centring=list(centring),
                    progress=False).ck
    seconds = time.perf_counter() - start
    Y = np.eye(classes)[y]
    cut = int(0.9 * n_train)

    def fit(train, lam):
        A = K[np.ix_(train, train)]
        A = A + lam * np.trace(A) / len(train) * np.eye(len(train))
        return linalg.solve(A, Y[train], assume_a="pos")

    def accuracy(train, coef, rows):
        return float(np.mean(np.argmax(K[np.ix_(rows, train)] @ coef, axis=1) == y[rows]))

    fit_rows, val_rows = np.arange(cut), np.arange(cut, n_train)
    lam = max(_RIDGE_GRID, key=lambda v: accuracy(fit_rows, fit(fit_rows, v), val_rows))
    train = np.arange(n_train)
    return accuracy(train, fit(train, lam), np.arange(n_train, len(x))), seconds


def cnn_accuracy(data: str = "mnist", *, quick: bool = False, seed: int = 0,
                 data_dir: str = "") -> dict:
    """The comparison of the module docstring.

    Returns:
        ``rows``: one dict per (method, setting) with ``method``, ``setting``,
        ``hidden_bits`` (filters and activation parameters), ``total_bits`` (with the float32
        readout), ``factor`` (dense hidden bits / hidden bits) and ``accuracy``; pruning rows
        also ``keep``; plus ``dense_accuracy``, ``kernel_accuracy`` (exact CNN-GP kernel ridge
        regression on ``kernel_train`` + ``kernel_test`` images), sizes, the memory rule and
        times.
    """
    start = time.perf_counter()
    sizes = _SIZES[bool(quick)]
    x_train, y_train, x_test, y_test, classes = _prepared(data, data_dir)
    x_train, y_train = x_train[:sizes["n_train"]], y_train[:sizes["n_train"]]
    x_test, y_test = x_test[:sizes["n_test"]], y_test[:sizes["n_test"]]
    shape = x_train.shape[1:]
    channels = sizes["channels"]
    dense = DenseCNN.random(shape, channels, list(_ACTS), 1.0, ARCHITECTURE, seed=seed)
    n_weights = sum(W.size for W in dense.weights)
    features = dense.feature_count
    readout_bits = _FLOAT_BITS * (features + 1) * classes
    dense_hidden = _FLOAT_BITS * (n_weights + len(channels))
    compression = ntklc_compression(list(_ACTS))

    jobs = [("dense", "float32", dense, dense_hidden, {})]
    for eps in sizes["eps"]:
        net = CompressedCNN.random(shape, channels, compression.activations, eps, 1.0,
                                   ARCHITECTURE, seed=seed)
        mem = memory_report(net, readout_shape=(classes, features))
        hidden = mem.coded_hidden_bits + mem.compressed_activation_bits
        jobs.append(("ntk-lc", f"eps={eps:g}", net, hidden, {}))
        keep = _pruning_fraction(mem.coded_hidden_bits / n_weights)
        pruned = DenseCNN(tuple(_prune(W, keep) for W in dense.weights), dense.activations,
                          dense.centring, ARCHITECTURE, shape)
        jobs.append(("pruning", f"keep={keep:.4f} (eps={eps:g})", pruned, hidden,
                     {"keep": keep}))
    for b in sizes["bits"]:
        quantized = DenseCNN(tuple(_quantize(W, b) for W in dense.weights), dense.activations,
                             dense.centring, ARCHITECTURE, shape)
        jobs.append(("quantization", f"{b} bit", quantized,
                     b * n_weights + _FLOAT_BITS * len(channels), {}))
    rows = []
    for method, setting, net, hidden, extra in jobs:
        pred, _ = ridge_readout(_features(net, x_train), y_train, _features(net, x_test),
                                classes)
        rows.append({"method": method, "setting": setting, "hidden_bits": float(hidden),
                     "total_bits": float(hidden + readout_bits),
                     "factor": dense_hidden / hidden,
                     "accuracy": float(np.mean(pred == y_test)), **extra})
    n_kernel = sizes["kernel_train"] + sizes["kernel_test"]
    kernel_accuracy, kernel_seconds = _kernel_accuracy(
        np.concatenate([x_train[:sizes["kernel_train"]], x_test[:sizes["kernel_test"]]]
                       ).astype(np.float64),
        np.concatenate([y_train[:sizes["kernel_train"]], y_test[:sizes["kernel_test"]]]),
        sizes["kernel_train"], classes, dense.centring)
    rule = (f"hidden memory: dense 32 bits per filter weight; NTK-LC bytes written by the "
            f"entropy coder + quantized-activation parameters (nets.memory); pruning 32 bits "
            f"per kept weight + h(f) bits per weight for the mask; quantization b bits per "
            f"weight; + one float32 per layer; readout float32 ({readout_bits} bits) in the "
            f"totals. Entropy bound at eps=0.9: {ternary_entropy_bound(0.9):.3f} bits/weight")
    return {"rows": rows, "dense_accuracy": rows[0]["accuracy"],
            "kernel_accuracy": kernel_accuracy, "kernel_images": n_kernel,
            "kernel_seconds": kernel_seconds, "channels": list(channels),
            "n_train": len(x_train), "n_test": len(x_test),
            "architecture": ARCHITECTURE.describe(), "rule": rule,
            "seconds": time.perf_counter() - start,
            "levels": [layer.step.n_levels for layer in compression.layers],
            "kernel_rule": f"exact CNN-GP kernel, ridge regression on {sizes['kernel_train']} "
                           f"training and {sizes['kernel_test']} test images"}
