"""What the post-training methods measure: calibration loss and gradients, rounding noise.

A calibration batch is a fixed random subset of the training set (never the test set).
"""

from __future__ import annotations

import copy

import numpy as np

from nets import Sequential
from nets.losses import LOSSES
from nets.quantized import channel_axis, weight_layers
from ntklc.errors import InputError
from solvers import quantize_nearest

__all__ = ["calibration_batch", "calibration_loss", "nearest_rounding_table", "weight_gradients",
           "with_weights"]


def calibration_batch(X: np.ndarray, y: np.ndarray, size: int, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``size`` samples drawn without replacement (all of them when fewer)."""
    if size < 1:
        raise InputError(f"the calibration batch needs at least one sample, got {size}")
    if X.shape[0] != np.shape(y)[0]:
        raise InputError(f"{X.shape[0]} inputs but {np.shape(y)[0]} labels")
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



#: Bits stored per float32 scale of a quantized channel.
SCALE_BITS = 32


def nearest_rounding_table(model: Sequential, bits
                           ) -> tuple[list[int], np.ndarray, dict[tuple[int, int], np.ndarray]]:
    """Size and noise of nearest rounding of every weight layer at every bit width.

    Returns:
        ``(layers, sizes, noise)``: the weight-layer indices; (layers, len(bits)) int64 stored
        bits b W.size + 32 per channel scale; ``noise[(i, b)]`` = w_hat - W (float64).
    """
    layers = weight_layers(model)
    sizes = np.zeros((len(layers), len(bits)), dtype=np.int64)
    noise = {}
    for row, i in enumerate(layers):
        W = model.layers[i].W.astype(float)
        for col, b in enumerate(bits):
            q = quantize_nearest(W, b, channel_axis(model.layers[i]))
            noise[(i, b)] = q.symbols * q.scale.astype(float) - W
            sizes[row, col] = b * W.size + SCALE_BITS * q.scale.size
    return layers, sizes, noise
