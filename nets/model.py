"""``Sequential`` models: training loop, evaluation, save/load, and two standard architectures.

File format of :meth:`Sequential.save`: one ``.npz`` (NumPy zip, no pickles) holding

* ``architecture``: a 0-d unicode array with the JSON string
  ``{"format": "ntklc.nets.Sequential", "version": 1, "loss": ..., "dtype": ...,
  "layers": [layer.config(), ...]}``;
* ``"{i}.{name}"``: array ``name`` (``W``, ``b``) of layer ``i``, stored bit for bit.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import zipfile
from collections.abc import Callable, Sequence

import numpy as np

from nets.layers import Activation, AvgPool2d, Conv2d, Dense, Flatten, Layer, MaxPool2d
from nets.losses import LOSSES
from nets.optim import Adam, Optimizer
from ntk.progress import progress_bar
from ntklc.errors import DataNotFoundError, InputError

__all__ = ["Sequential", "mlp", "small_cnn"]

_FORMAT = "ntklc.nets.Sequential"
_VERSION = 1
_LAYER_TYPES = {cls.__name__: cls for cls in (Dense, Conv2d, MaxPool2d, AvgPool2d, Flatten)}


def _as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InputError(f"rng must be a numpy.random.Generator or an integer seed, got {rng!r}")


class Sequential:
    """A chain of layers trained on a loss of its last layer's outputs.

    Args:
        layers: the layers, input first.
        loss: ``"cross_entropy"`` (softmax cross-entropy on integer labels, default) or
            ``"mse"`` (mean squared error on one-hot labels or on (n, c) float targets).

    Raises:
        InputError: no layers, a non-layer, or an unknown loss.
    """

    def __init__(self, layers: Sequence[Layer], loss: str = "cross_entropy"):
        self.layers = list(layers)
        if not self.layers:
            raise InputError("a Sequential model needs at least one layer")
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise InputError(f"not a layer: {layer!r}")
        if loss not in LOSSES:
            raise InputError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
        self.loss = loss
        dtypes = {layer.dtype for layer in self.layers if hasattr(layer, "dtype")}
        if len(dtypes) > 1:
            raise InputError(f"all layers must have one dtype, got {sorted(map(str, dtypes))}")
        self.dtype = dtypes.pop() if dtypes else np.dtype(np.float32)

    def params(self) -> list[np.ndarray]:
        """Trainable arrays of all layers, input side first."""
        return [p for layer in self.layers for p in layer.params()]

    def grads(self) -> list[np.ndarray]:
        """Gradients of the last backward, paired with :meth:`params`."""
        return [g for layer in self.layers for g in layer.grads()]

    def _relu_pools(self) -> set[int]:
        """Indices i of ReLU layers followed by max pooling: the pair runs as one pass
        (:meth:`MaxPool2d.forward_relu`), with the same values and gradients."""
        return {i for i, (a, b) in enumerate(itertools.pairwise(self.layers))
                if isinstance(a, Activation) and a.name == "relu" and isinstance(b, MaxPool2d)}

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """Outputs (n, classes) of the batch ``x``; ``train`` caches for :meth:`backward`."""
        x = np.asarray(x, dtype=self.dtype)
        fused = self._relu_pools()
        i = 0
        while i < len(self.layers):
            if i in fused:
                # The ReLU's cache would be stale: its gradient comes out of the pooling.
                self.layers[i].forget()
                x = self.layers[i + 1].forward_relu(x, train)
                i += 2
            else:
                x = self.layers[i].forward(x, train)
                i += 1
        return x

    def backward(self, grad: np.ndarray, input_grad: bool = False) -> np.ndarray | None:
        """Back-propagate dL/d(outputs) of the last training forward.

        Without ``input_grad`` the pass stops at the lowest trainable layer: what lies below
        it needs no gradient (this skips the largest product of a first dense layer, and lets
        frozen random-features layers use step activations).

        Returns:
            dL/d(input) when ``input_grad``, else ``None``.
        """
        trainable = [i for i, layer in enumerate(self.layers) if layer.params()]
        stop = 0 if input_grad or not trainable else trainable[0]
        fused = self._relu_pools()
        for i in range(len(self.layers) - 1, stop - 1, -1):
            if i in fused:
                continue  # the pooling above it returned the gradient before the ReLU
            if i == stop and not input_grad:
                self.layers[i].backward(grad, input_grad=False)
                return None
            grad = self.layers[i].backward(grad)
        return grad if input_grad else None

    def _targets(self, y, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape[:1] != (n,):
            raise InputError(f"{n} samples but targets of shape {y.shape}")
        if self.loss == "cross_entropy" and y.ndim != 1:
            raise InputError(f"cross-entropy needs integer labels of shape (n,), got {y.shape}")
        return y

    def _loss_and_hits(self, out: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, int]:
        loss, grad = LOSSES[self.loss](out, y)
        labels = y if y.ndim == 1 else np.argmax(y, axis=1)
        return loss, grad, int(np.count_nonzero(np.argmax(out, axis=1) == labels))

    def predict(self, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Outputs (n, classes) for all of ``X``, ``batch_size`` samples at a time."""
        X = np.asarray(X)
        if X.shape[0] == 0:
            raise InputError("predict needs at least one sample")
        return np.concatenate([self.forward(X[i:i + batch_size])
                               for i in range(0, X.shape[0], batch_size)])

    def evaluate(self, X: np.ndarray, y: np.ndarray, batch_size: int = 1024
                 ) -> tuple[float, float]:
        """Mean loss and accuracy (argmax of outputs == label) over ``(X, y)``."""
        X = np.asarray(X)
        if X.shape[0] == 0:
            raise InputError("evaluate needs at least one sample")
        y = self._targets(y, X.shape[0])
        total, hits = 0.0, 0
        for i in range(0, X.shape[0], batch_size):
            yb = y[i:i + batch_size]
            loss, _, h = self._loss_and_hits(self.forward(X[i:i + batch_size]), yb)
            total += loss * yb.shape[0]
            hits += h
        return total / X.shape[0], hits / X.shape[0]

    def fit(self, X: np.ndarray, y: np.ndarray, epochs: int = 1, batch_size: int = 128,
            optimizer: Optimizer | None = None, rng: np.random.Generator | int = 0,
            progress: bool = True, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None,
            callback: Callable[[int, dict], bool | None] | None = None) -> dict[str, list]:
        """Minibatch training.

        Each epoch visits the samples in a fresh permutation drawn from ``rng`` (the last batch
        may be smaller), and takes one optimiser step per batch. The same seed, data and
        initial weights give bit-identical weights.

        Args:
            X: (n, ...) inputs; y: (n,) integer labels (or (n, c) targets for ``mse``).
            epochs, batch_size: positive integers.
            optimizer: default ``Adam()`` (fresh state).
            rng: generator or integer seed of the shuffling.
            progress: tqdm bar on stderr with loss, accuracy and samples/s.
            X_val, y_val: optional validation set, evaluated after every epoch.
            callback: called as ``callback(epoch, logs)`` after every epoch with that epoch's
                entries of the history; returning ``True`` stops training.

        Returns:
            History: lists, one entry per epoch, under ``loss``, ``accuracy`` (running training
            means), ``samples_per_s``, and ``val_loss``, ``val_accuracy`` with a validation set.

        Raises:
            InputError: bad shapes, labels or parameters.
        """
        X = np.asarray(X)
        n = X.shape[0]
        if n == 0:
            raise InputError("fit needs at least one sample")
        y = self._targets(y, n)
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if (X_val is None) != (y_val is None):
            raise InputError("give both X_val and y_val, or neither")
        optimizer = Adam() if optimizer is None else optimizer
        rng = _as_rng(rng)
        history: dict[str, list] = {"loss": [], "accuracy": [], "samples_per_s": []}
        if X_val is not None:
            history |= {"val_loss": [], "val_accuracy": []}
        for epoch in range(epochs):
            order = rng.permutation(n)
            total, hits, seen = 0.0, 0, 0
            start = time.perf_counter()
            with progress_bar(total=n, desc=f"epoch {epoch + 1}/{epochs}", unit="sample",
                              disable=not progress) as bar:
                for i in range(0, n, batch_size):
                    idx = order[i:i + batch_size]
                    out = self.forward(X[idx], train=True)
                    loss, grad, h = self._loss_and_hits(out, y[idx])
                    self.backward(grad)
                    optimizer.step(self.params(), self.grads())
                    total += loss * idx.size
                    hits += h
                    seen += idx.size
                    bar.update(idx.size)
                    # tqdm's own rate is in samples/s (unit="sample").
                    bar.set_postfix(loss=f"{total / seen:.4f}", acc=f"{hits / seen:.4f}",
                                    refresh=False)
            logs = {"loss": total / n, "accuracy": hits / n,
                    "samples_per_s": n / (time.perf_counter() - start)}
            if X_val is not None:
                logs["val_loss"], logs["val_accuracy"] = self.evaluate(X_val, y_val)
            for key, value in logs.items():
                history[key].append(value)
            if callback is not None and callback(epoch, logs) is True:
                break
        return history

    def save(self, path: str | os.PathLike) -> None:
        """Write architecture and arrays to one ``.npz`` (format in the module docstring).

        Raises:
            InputError: an activation that is a user callable (it has no name to store).
        """
        arch = {"format": _FORMAT, "version": _VERSION, "loss": self.loss,
                "dtype": self.dtype.name, "layers": [layer.config() for layer in self.layers]}
        arrays = {f"{i}.{name}": a for i, layer in enumerate(self.layers)
                  for name, a in layer.arrays().items()}
        with open(path, "wb") as f:
            np.savez(f, architecture=np.array(json.dumps(arch)), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Sequential:
        """Read a model written by :meth:`save`.

        Raises:
            DataNotFoundError: no such file.
            InputError: not a saved model (not a complete .npz, damaged, unknown version or
                layer, missing arrays).
        """
        where = os.fspath(path)
        if not os.path.isfile(where):
            raise DataNotFoundError(f"{where}: no such model file")
        try:
            # Opened here so that it is closed whatever np.load raises half-way.
            with open(where, "rb") as f, np.load(f, allow_pickle=False) as data:
                return cls._from_arrays(data, where)
        except InputError:
            raise
        # What a truncated or damaged archive raises on the way (np.load, zipfile's CRC
        # check, the JSON header, the layers' own checks).
        except (OSError, EOFError, zipfile.BadZipFile, ValueError, KeyError, TypeError,
                AttributeError) as exc:
            raise InputError(f"{where}: not a model saved by Sequential.save (ntklc train): "
                             f"{type(exc).__name__}: {exc}") from None

    @classmethod
    def _from_arrays(cls, data, where: str) -> Sequential:
        if "architecture" not in data.files:
            raise InputError(f"{where!r} is not a saved Sequential model")
        arch = json.loads(str(data["architecture"]))
        if arch.get("format") != _FORMAT or arch.get("version") != _VERSION:
            raise InputError(f"{where!r}: unsupported format {arch.get('format')!r} version "
                             f"{arch.get('version')!r}")
        layers = [_layer_from_config(cfg, arch["dtype"]) for cfg in arch["layers"]]
        for i, layer in enumerate(layers):
            for name, a in layer.arrays().items():
                key = f"{i}.{name}"
                if key not in data.files or data[key].shape != a.shape:
                    raise InputError(f"{where!r}: array {key!r} missing or of the wrong shape")
                a[...] = data[key]
        return cls(layers, loss=arch["loss"])


def _layer_from_config(cfg: dict, dtype: str) -> Layer:
    cfg = dict(cfg)
    kind = cfg.pop("type", None)
    if kind == "Activation":
        return Activation.from_config(cfg)
    if kind not in _LAYER_TYPES:
        raise InputError(f"unknown layer type {kind!r}")
    if kind in ("Dense", "Conv2d"):
        cfg |= {"init": "zeros", "dtype": dtype}
    return _LAYER_TYPES[kind](**cfg)


def mlp(input_dim: int, hidden: Sequence[int] = (1024, 1024), classes: int = 10,
        act: str = "relu", rng: np.random.Generator | int = 0,
        dtype=np.float32) -> Sequential:
    """Multilayer perceptron: Dense -> act for each hidden width, then a Dense readout.

    He initialisation for all layers (it keeps ReLU pre-activations at unit scale).

    Args:
        input_dim: features per sample; inputs are (n, input_dim).
        hidden: widths of the hidden layers.
        classes: outputs.
        act: activation name of ``ntk.activations``.
        rng: generator or seed of the initial weights.
        dtype: float32 (default) or float64.
    """
    rng = _as_rng(rng)
    sizes = [input_dim, *hidden]
    layers: list[Layer] = []
    for d_in, d_out in itertools.pairwise(sizes):
        layers += [Dense(d_in, d_out, rng=rng, dtype=dtype), Activation(act)]
    layers.append(Dense(sizes[-1], classes, rng=rng, dtype=dtype))
    return Sequential(layers)


def small_cnn(input_shape: tuple[int, int, int] = (1, 28, 28), classes: int = 10,
              rng: np.random.Generator | int = 0, dtype=np.float32) -> Sequential:
    """Small CNN that trains on two CPU cores.

    conv(c -> 32, 3x3, pad 1) relu maxpool 2, conv(32 -> 64, 3x3, pad 1) relu maxpool 2,
    dense(64 (H/4) (W/4) -> 128) relu, dense(128 -> classes). Inputs are NCHW.

    Raises:
        InputError: ``input_shape`` not (channels, H, W) with H, W >= 4.
    """
    if len(input_shape) != 3 or min(input_shape[1:]) < 4:
        raise InputError(f"input_shape must be (channels, H, W) with H, W >= 4, got "
                         f"{input_shape}")
    rng = _as_rng(rng)
    c, h, w = input_shape
    flat = 64 * (h // 2 // 2) * (w // 2 // 2)
    return Sequential([
        Conv2d(c, 32, 3, padding=1, rng=rng, dtype=dtype), Activation("relu"), MaxPool2d(2),
        Conv2d(32, 64, 3, padding=1, rng=rng, dtype=dtype), Activation("relu"), MaxPool2d(2),
        Flatten(),
        Dense(flat, 128, rng=rng, dtype=dtype), Activation("relu"),
        Dense(128, classes, rng=rng, dtype=dtype),
    ])
