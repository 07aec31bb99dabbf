"""What the post-training methods measure on a calibration batch: loss, weight gradients.

A calibration batch is a fixed random subset of the training set (never the test set).
"""

from __future__ import annotations

import copy

import numpy as np

from nets import Sequential
from nets.losses import LOSSES
from nets.quantized import weight_layers

__all__ = ["calibration_batch", "calibration_loss", "weight_gradients", "with_weights"]


def calibration_batch(X: np.ndarray, y: np.ndarray, size: int, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``size`` samples drawn without replacement (all of them when fewer)."""
    if size < 1:
        raise ValueError(f"the calibration batch needs at least one sample, got {size}")
    if X.shape[0] != np.shape(y)[0]:
        raise ValueError(f"{X.shape[0]} inputs but {np.shape(y)[0]} labels")
    idx = np.sort(np.random.default_rng(seed).permutation(X.shape[0])[:size])
    return X[idx], np.asarray(y)[idx]


def calibration_loss(model: Sequential, X: np.ndarray, y: np.ndarray) -> float:
    """Mean loss of ``model`` on the batch."""
    return model.evaluate(X, y)[0]


def weight_gradients(model: Sequential, X: np.ndarray, y: np.ndarray, batch_size: int = 1024
                     ) -> dict[int, np.ndarray]:
    """dL/dW (float64) of every Dense/Conv2d layer for the mean loss over (X, y).

    Returns:
        layer index -> gradient of the shape of that layer's ``W``.
    """
    layers = weight_layers(model)
    total = {i: np.zeros(model.layers[i].W.shape) for i in layers}
    work = copy.deepcopy(model)
    # Every weight layer must receive a gradient, frozen or not.
    for i in layers:
        work.layers[i].trainable = True
    for start in range(0, X.shape[0], batch_size):
        xb, yb = X[start:start + batch_size], y[start:start + batch_size]
        _, grad = LOSSES[work.loss](work.forward(xb, train=True), yb)
        work.backward(grad)
        # The loss gradient is of the batch mean: weight it by the batch's share.
        for i in layers:
            total[i] += work.layers[i].dW * (xb.shape[0] / X.shape[0])
    return total


def with_weights(model: Sequential, weights: dict[int, np.ndarray]) -> Sequential:
    """A copy of ``model`` with the given layers' W replaced."""
    out = copy.deepcopy(model)
    for i, W in weights.items():
        out.layers[i].W[...] = W
    return out

