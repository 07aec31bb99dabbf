"""``ntklc train``: train the project's MLP or CNN on MNIST, Fashion-MNIST or CIFAR-10.

Inputs are pixels in [0, 1] standardised by the training set's mean and standard deviation
(per channel for images, one scalar for the MLP's flattened vectors); the test set uses the
training statistics.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from nets import SGD, Adam, Sequential, as_float, load_dataset, mlp, small_cnn
from ntklc.errors import InputError

__all__ = ["TrainResult", "fit_model", "image_arrays", "train_model"]

MODELS = ("mlp", "cnn")
OPTIMIZERS = ("sgd", "adam")


def image_arrays(name: str, model: str, data_dir=None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Standardised float32 (X_train, y_train, X_test, y_test, classes) for ``model``.

    MLP inputs are (n, H*W*C); CNN inputs are NCHW.
    """
    train, test = load_dataset(name, "train", data_dir), load_dataset(name, "test", data_dir)

    def shape(images):
        x = as_float(images)
        if model == "mlp":
            return x.reshape(x.shape[0], -1)
        return x[:, None] if x.ndim == 3 else np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    Xtr, Xte = shape(train.images), shape(test.images)
    axes = (0,) if model == "mlp" else (0, 2, 3)
    mean = Xtr.mean(axis=axes, keepdims=True) if model == "cnn" else Xtr.mean()
    std = Xtr.std(axis=axes, keepdims=True) if model == "cnn" else Xtr.std()
    return ((Xtr - mean) / std, train.labels, (Xte - mean) / std, test.labels,
            len(train.classes))


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one training run (``as_dict`` is the JSON of ``ntklc train``)."""

    data: str
    model: str
    test_accuracy: float
    test_loss: float
    epochs: int
    seconds: float
    samples_per_second: float
    model_path: str | None
    peak_memory_mb: float
    data_and_params_mb: float
    history: dict

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def train_model(data: str = "mnist", model: str = "mlp", *, epochs: int = 10,
                hidden=(1024, 1024), batch_size: int = 128, optimizer: str = "adam",
                lr: float | None = None, lr_decay: float = 0.8, seed: int = 0,
                threads: int | None = None,
                data_dir=None, out: str | Path | None = None, progress: bool = True
                ) -> TrainResult:
    """Train ``mlp`` or ``small_cnn`` and evaluate it on the test split.

    Args:
        data: ``mnist``, ``fashion-mnist`` or ``cifar-10``.
        model: ``mlp`` (widths ``hidden``) or ``cnn``.
        epochs, batch_size: positive integers.
        optimizer: ``adam`` (default lr 1e-3) or ``sgd`` (momentum 0.9, default lr 0.05).
        lr_decay: the learning rate is multiplied by this after every epoch (in (0, 1]).
        seed: initial weights and shuffling.
        threads: BLAS and Numba threads (default: all).
        out: folder for ``model.npz`` (not saved when ``None``).
    """
    if model not in MODELS:
        raise InputError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    if epochs < 1 or batch_size < 1:
        raise InputError(f"epochs and batch_size must be positive, got {epochs}, {batch_size}")
    if not 0 < lr_decay <= 1:
        raise InputError(f"lr_decay must lie in (0, 1], got {lr_decay}")
    if threads is not None and threads < 1:
        raise InputError(f"threads must be positive, got {threads}")
    Xtr, ytr, Xte, yte, classes = image_arrays(data, model, data_dir)
    previous_threads = numba.get_num_threads()
    start = time.perf_counter()
    with threadpool_limits(limits=threads):
        if threads is not None:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            net, history = fit_model(Xtr, ytr, classes, model, hidden=hidden, epochs=epochs,
                                     batch_size=batch_size, optimizer=optimizer, lr=lr,
                                     lr_decay=lr_decay, seed=seed, progress=progress)
            seconds = time.perf_counter() - start
            loss, accuracy = net.evaluate(Xte, yte)
        finally:
            numba.set_num_threads(previous_threads)
    path = None
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        path = str(Path(out) / "model.npz")
        net.save(path)
    # ru_maxrss is in KiB on Linux: the peak resident memory of the whole process.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    payload = Xtr.nbytes + Xte.nbytes + sum(p.nbytes for p in net.params())
    return TrainResult(data=data, model=model, test_accuracy=float(accuracy),
                       test_loss=float(loss), epochs=epochs, seconds=seconds,
                       samples_per_second=epochs * Xtr.shape[0] / seconds, model_path=path,
                       peak_memory_mb=peak, data_and_params_mb=payload / 2**20,
                       history={k: list(map(float, v)) for k, v in history.items()})


def fit_model(X: np.ndarray, y: np.ndarray, classes: int, model: str = "mlp", *,
              hidden=(1024, 1024), epochs: int = 10, batch_size: int = 128,
              optimizer: str = "adam", lr: float | None = None, lr_decay: float = 0.8,
              seed: int = 0, progress: bool = True) -> tuple[Sequential, dict]:
    """Build ``mlp`` (widths ``hidden``) or ``small_cnn`` for inputs like ``X`` and train it.

    Adam (default lr 1e-3) or SGD (momentum 0.9, default lr 0.05); the learning rate is
    multiplied by ``lr_decay`` after every epoch.

    Returns:
        ``(model, history)`` (the history of ``Sequential.fit``).
    """
    net = (mlp(X.shape[1], tuple(hidden), classes, rng=seed) if model == "mlp"
           else small_cnn(X.shape[1:], classes, rng=seed))
    opt = (Adam(lr=lr or 1e-3) if optimizer == "adam"
           else SGD(lr=lr or 0.05, momentum=0.9))

    def decay(epoch, logs):
        opt.lr *= lr_decay

    history = net.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=opt, rng=seed,
                      progress=progress, callback=decay)
    return net, history
