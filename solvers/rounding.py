"""Uniform k-bit quantization of a weight tensor, and three ways to round onto its grid.

A b-bit symmetric grid with one scale s per output channel (or one per tensor) stores the
integers q in [-(2^(b-1) - 1), 2^(b-1) - 1] and reconstructs w_hat = s q, with

    s = max |W| / (2^(b-1) - 1)      over the channel (1 where the channel is all zeros).

The rounding noise n = w_hat - W then changes the loss by (total differential plus the
quadratic term)

    dL ~ g . n + 1/2 n^T H n.

* ``quantize_nearest``: q = round(W / s), the smallest |n| per entry.
* ``quantize_gradient_opposed`` (LLC, seed 001): for each entry pick the lower or upper grid
  point minimising g_i n_i + 1/2 h n_i^2 with a scalar curvature guard h >= 0. With h = 0 every
  entry is rounded against its gradient (g_i n_i <= 0), the first-order loss change is as
  negative as the grid allows; h -> inf gives nearest rounding back.
* ``quantize_steered`` (CET, seed 003): the noise is pushed out of the span of given
  high-curvature directions U (the "short axes" of the Hessian) into the long-axis subspace:
  starting from nearest rounding, repeat T <- T - U (U^T n), q = round(T / s) (T = W at
  first, n = s q - W), keeping the iterate with the smallest ||U^T n||.

Shapes: W and g are any shape; the channel axis (``channel_axis``) gets its own scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ntklc.errors import InputError

__all__ = [
    "QuantizedTensor",
    "grid_scale",
    "quantize_gradient_opposed",
    "quantize_nearest",
    "quantize_steered",
]

MIN_BITS, MAX_BITS = 2, 16


@dataclass(frozen=True)
class QuantizedTensor:
    """Integers on a symmetric b-bit grid and their scales.

    Attributes:
        symbols: int32 array of the weight's shape, |q| <= 2^(b-1) - 1.
        scale: float32 array broadcastable to the weight's shape (one entry per channel).
        bits: b.
    """

    symbols: np.ndarray
    scale: np.ndarray
    bits: int

    def dequantize(self) -> np.ndarray:
        """w_hat = s q, float32."""
        return (self.symbols * self.scale).astype(np.float32)


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) \
            or not MIN_BITS <= bits <= MAX_BITS:
        raise InputError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
    return int(bits)


def grid_scale(W: np.ndarray, bits: int, channel_axis: int | None = None) -> np.ndarray:
    """Scale s = max|W| / (2^(b-1) - 1) per channel, float32, broadcastable to W.

    Args:
        W: weights of any shape with at least one entry.
        bits: b in [2, 16].
        channel_axis: axis with one scale per index (``None``: one scale for the tensor).

    Raises:
        InputError: empty or non-finite W, bad bits or axis.
    """
    W = np.asarray(W, dtype=np.float64)
    bits = _check_bits(bits)
    if W.size == 0 or not np.all(np.isfinite(W)):
        raise InputError(f"W must be a non-empty finite array, got shape {W.shape}")
    if channel_axis is None:
        peak = np.max(np.abs(W), keepdims=True)
    else:
        if not -W.ndim <= channel_axis < W.ndim:
            raise InputError(f"channel_axis {channel_axis} out of range for {W.ndim}-D W")
        others = tuple(i for i in range(W.ndim) if i != channel_axis % W.ndim)
        peak = np.max(np.abs(W), axis=others, keepdims=True)
    # An all-zero channel quantizes to zeros whatever its scale; 1 avoids a division by zero.
    scale = np.where(peak > 0, peak / (2 ** (bits - 1) - 1), 1.0)
    return scale.astype(np.float32)


def _grid(W, bits, channel_axis):
    W = np.asarray(W, dtype=np.float64)
    scale = grid_scale(W, bits, channel_axis)
    return W, scale, 2 ** (bits - 1) - 1


def quantize_nearest(W: np.ndarray, bits: int, channel_axis: int | None = None
                     ) -> QuantizedTensor:
    """Round to the nearest grid point (ties to even): q = clip(round(W / s))."""
    W, scale, top = _grid(W, bits, channel_axis)
    q = np.clip(np.rint(W / scale), -top, top)
    return QuantizedTensor(q.astype(np.int32), scale, int(bits))


def quantize_gradient_opposed(W: np.ndarray, G: np.ndarray, bits: int,
                              curvature: float = 0.0, channel_axis: int | None = None
                              ) -> QuantizedTensor:
    """Round each entry down or up to minimise g_i n_i + 1/2 h n_i^2 (module docstring).

    Args:
        W: weights; G: dL/dW of the same shape.
        bits: b in [2, 16].
        curvature: the guard h >= 0 (e.g. tr(H) / n of the layer); ``inf`` is nearest rounding.
        channel_axis: as for :func:`grid_scale`.

    Returns:
        The rounding; with h = 0, g_i n_i <= 0 for every entry.
    """
    G = np.asarray(G, dtype=np.float64)
    if G.shape != np.shape(W):
        raise InputError(f"G must have the shape of W {np.shape(W)}, got {G.shape}")
    if not curvature >= 0:
        raise InputError(f"curvature must be >= 0 (or inf), got {curvature}")
    W, scale, top = _grid(W, bits, channel_axis)
    if np.isinf(curvature):
        return quantize_nearest(W, bits, channel_axis)
    low = np.clip(np.floor(W / scale), -top, top)
    high = np.clip(low + 1, -top, top)
    n_low, n_high = low * scale - W, high * scale - W

    def cost(n):
        return G * n + 0.5 * curvature * n * n

    q = np.where(cost(n_high) < cost(n_low), high, low)
    return QuantizedTensor(q.astype(np.int32), scale, int(bits))


def quantize_steered(W: np.ndarray, bits: int, directions: np.ndarray,
                     channel_axis: int | None = None, iterations: int = 20
                     ) -> QuantizedTensor:
    """Nearest rounding with its noise moved out of span(directions) (module docstring).

    Args:
        W: weights.
        bits: b in [2, 16].
        directions: (W.size, k) orthonormal columns U (flattened in C order), e.g. the top
            Hessian eigenvectors of the layer.
        channel_axis: as for :func:`grid_scale`.
        iterations: fixed-point steps; the best iterate (smallest ||U^T n||) is returned, so
            the result is never worse than nearest rounding in that measure.
    """
    U = np.asarray(directions, dtype=np.float64)
    W, scale, top = _grid(W, bits, channel_axis)
    if U.ndim != 2 or U.shape[0] != W.size:
        raise InputError(f"directions must be (W.size, k) = ({W.size}, k), got {U.shape}")
    if iterations < 0:
        raise InputError(f"iterations must be >= 0, got {iterations}")

    def rounded(target):
        return np.clip(np.rint(target / scale), -top, top)

    def leak(q):
        return U.T @ (q * scale - W).ravel()

    target = W.copy()
    q = rounded(target)
    best, best_norm = q, np.linalg.norm(leak(q))
    for _ in range(iterations):
        # Integral feedback: the target accumulates the leaked noise of every step, so it
        # converges where plain "W - U U^T n" would oscillate between two roundings.
        target -= (U @ leak(q)).reshape(W.shape)
        q = rounded(target)
        norm = np.linalg.norm(leak(q))
        if norm < best_norm:
            best, best_norm = q, norm
    return QuantizedTensor(best.astype(np.int32), scale, int(bits))
