"""Losses of the training engine: each returns the batch-mean loss and its gradient.

Both take the network outputs of shape (n, classes) and return ``(loss, grad)`` where ``loss``
is a Python float and ``grad`` = dL/d(outputs) has the shape and dtype of the outputs.
"""

from __future__ import annotations

import numpy as np

from ntklc.errors import InputError

__all__ = ["LOSSES", "mse", "one_hot", "softmax_cross_entropy"]


def _check_outputs(name: str, outputs: np.ndarray) -> np.ndarray:
    outputs = np.asarray(outputs)
    if outputs.ndim != 2 or outputs.shape[0] == 0:
        raise InputError(f"{name}: outputs must have shape (n, classes) with n >= 1, "
                         f"got {outputs.shape}")
    if outputs.dtype not in (np.float32, np.float64):
        outputs = outputs.astype(np.float64)
    return outputs


def _check_labels(labels, n: int, classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be integers of shape ({n},), got {labels.dtype} of "
                         f"shape {labels.shape}")
    if labels.min() < 0 or labels.max() >= classes:
        raise InputError(f"labels must lie in [0, {classes}), got range "
                         f"[{labels.min()}, {labels.max()}]")
    return labels


def one_hot(labels: np.ndarray, classes: int, dtype=np.float32) -> np.ndarray:
    """(n,) integer labels -> (n, classes) one-hot rows.

    Raises:
        InputError: labels not integers of shape (n,) in [0, classes).
    """
    labels = np.asarray(labels)
    labels = _check_labels(labels, labels.shape[0] if labels.ndim else -1, classes)
    out = np.zeros((labels.shape[0], classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient with respect to the logits.

    L = (1/n) sum_i [logsumexp(z_i) - z_{i, y_i}],   dL/dz_i = (softmax(z_i) - e_{y_i}) / n.
    The row maximum is subtracted before exponentiating, so no logit overflows.

    Args:
        logits: (n, classes) float array z.
        labels: (n,) integer labels y in [0, classes).

    Returns:
        ``(loss, grad)`` with grad of the shape and dtype of ``logits``.

    Raises:
        InputError: bad shapes or labels out of range.
    """
    z = _check_outputs("softmax_cross_entropy", logits)
    n, classes = z.shape
    labels = _check_labels(labels, n, classes)
    shifted = z - z.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1)
    rows = np.arange(n)
    # Accumulate in float64: a float32 mean over many rows loses digits.
    loss = float(np.mean(np.log(sums.astype(np.float64)) - shifted[rows, labels]))
    grad = exp
    grad /= sums[:, None]
    grad[rows, labels] -= 1
    grad /= n
    return loss, grad


def mse(outputs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error over all entries and its gradient.

    L = (1/(n c)) sum_{i, k} (y_{ik} - t_{ik})^2,   dL/dy = 2 (y - t) / (n c)
    (the convention of PyTorch's ``MSELoss``).

    Args:
        outputs: (n, c) predictions y.
        targets: (n, c) targets t, or (n,) integer labels (then t is their one-hot encoding).

    Returns:
        ``(loss, grad)`` with grad of the shape and dtype of ``outputs``.

    Raises:
        InputError: bad shapes, or labels out of range.
    """
    y = _check_outputs("mse", outputs)
    targets = np.asarray(targets)
    if targets.ndim == 1:
        targets = one_hot(targets, y.shape[1], y.dtype) if targets.shape == (y.shape[0],) \
            else targets
    if targets.shape != y.shape:
        raise InputError(f"mse: targets of shape {targets.shape} do not match outputs "
                         f"{y.shape}")
    diff = y - targets.astype(y.dtype, copy=False)
    loss = float(np.mean(np.square(diff, dtype=np.float64)))
    diff *= 2.0 / diff.size
    return loss, diff


#: Losses by the name that ``Sequential`` stores.
LOSSES = {"cross_entropy": softmax_cross_entropy, "mse": mse}
