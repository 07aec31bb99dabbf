"""The L2 unified transform (seed 002): pruning and uniform quantization in one rounding.

One weight tensor w has two parameters, a step delta > 0 and a dead zone theta >= 0 (in steps).
The transform soft-thresholds w in units of the step,

    u = w / delta,   v = T(w) = sign(u) max(0, |u| - theta),

the symbol is one rounding of it and the reconstruction inverts T on the integer grid:

    q = rint(v) = sign(w) max(0, rint(|w| / delta - theta)),
    w_hat = T^-1(q) = delta (q + sign(q) theta).

``rint`` rounds half to even, so it is odd (rint(-x) = -rint(x)) and, with theta = 0,
q = rint(w / delta) exactly: plain nearest rounding onto the grid delta Z. With theta > 0:

* q = 0 (the weight is pruned) iff |w| / delta - theta <= 1/2, i.e. |w| < delta (theta + 1/2)
  up to the tie at equality; the zero bin is 2 theta + 1 steps wide;
* otherwise sign(q) = sign(w), |q| >= 1, and the kept weights sit on the grid
  +-delta (theta + 1), +-delta (theta + 2), ..., so |w - w_hat| <= delta / 2 as for rounding.

Entropy of the symbols, relaxed (the seed's "differentiable counter"). Symbol k collects the
v in [k - 1/2, k + 1/2), unit bins centred on the integers. A Gaussian kernel of width s (in
steps) spreads every weight over the centres c_k = q_min, ..., q_max (the symbols present):

    r_ik = softmax_k(-(v_i - c_k)^2 / (2 s^2)),   p_k = (1/n) sum_i r_ik,
    H = -sum_k p_k log2 p_k   (bits per weight).

As s -> 0, r_ik -> [q_i = k] and H tends to the empirical entropy of q. Its gradient, with
a_ik = -(v_i - c_k) / s^2 and abar_i = sum_k r_ik a_ik (sum_k dp_k = 0, so only -log2 p_k of
dH/dp_k = -log2 p_k - 1/ln 2 matters):

    dH/dv_i = (1/n) sum_k (-log2 p_k) r_ik (a_ik - abar_i),
    dH/dw_i = dH/dv_i / delta                   for |u_i| > theta, else 0,
    dH/ddelta = -sum_i dH/dv_i u_i / delta      over |u_i| > theta,
    dH/dtheta = -sum_i dH/dv_i sign(u_i)        over |u_i| > theta.

Inside the dead zone v is constant, so those weights carry no entropy gradient (they already
sit on the most common symbol, 0, in any pruned tensor).

Shapes: w is any shape (n entries); delta, theta are scalars (one pair per layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from ntklc.errors import InputError

__all__ = [
    "SoftEntropy",
    "dead_zone",
    "dequantize",
    "fake_quantize",
    "quantize",
    "soft_entropy",
    "ste_gradients",
    "transform",
]

# Kernel terms below exp(-_CUTOFF) of the nearest centre's are dropped: they are under 2e-22 of
# the softmax's normaliser, far below float64 rounding, so H and its gradient are unchanged to
# machine precision while a weight costs O(s) centres instead of O(q_max - q_min).
_CUTOFF = 50.0
# Largest soft histogram (centres q_min..q_max) soft_entropy builds.
_MAX_BINS = 2**24


def _check(delta: float, theta: float) -> tuple[float, float]:
    delta, theta = float(delta), float(theta)
    if not (math.isfinite(delta) and delta > 0):
        raise InputError(f"the step delta must be a finite number > 0, got {delta}")
    if not (math.isfinite(theta) and theta >= 0):
        raise InputError(f"the dead zone theta must be a finite number >= 0, got {theta}")
    return delta, theta


def _weights(w) -> np.ndarray:
    w = np.asarray(w)
    if not np.issubdtype(w.dtype, np.floating) and not np.issubdtype(w.dtype, np.integer):
        raise InputError(f"weights must be real numbers, got dtype {w.dtype}")
    w = w.astype(np.float64, copy=False)
    if w.size and not np.all(np.isfinite(w)):
        raise InputError("weights must be finite")
    return w


def transform(w, delta: float, theta: float) -> np.ndarray:
    """The soft-thresholded weights in step units, v = sign(w) max(0, |w| / delta - theta).

    Args:
        w: weights, any shape.
        delta: step > 0.
        theta: dead zone >= 0, in steps.

    Returns:
        float64 array v of the shape of ``w``; ``rint(v)`` are the symbols.

    Raises:
        InputError: delta <= 0, theta < 0, or non-finite weights.
    """
    delta, theta = _check(delta, theta)
    w = _weights(w)
    # A step so small that w / delta overflows gives inf, which quantize() reports.
    with np.errstate(over="ignore"):
        u = w / delta
    return np.sign(u) * np.maximum(np.abs(u) - theta, 0.0)


def quantize(w, delta: float, theta: float) -> np.ndarray:
    """Integer symbols q = rint(T(w)) = sign(w) max(0, rint(|w| / delta - theta)).

    Args:
        w: weights, any shape.
        delta: step > 0.
        theta: dead zone >= 0, in steps.

    Returns:
        int64 array of the shape of ``w``.

    Raises:
        InputError: bad delta or theta, non-finite weights, or |w| / delta beyond 2^62.
    """
    v = transform(w, delta, theta)
    if v.size and np.max(np.abs(v)) > 2.0**62:
        raise InputError(f"step {delta} is too small for weights up to "
                         f"{np.max(np.abs(_weights(w)))}: symbols would overflow int64")
    return np.rint(v).astype(np.int64)


def dequantize(q, delta: float, theta: float, dtype=np.float64) -> np.ndarray:
    """Reconstruction w_hat = delta (q + sign(q) theta), evaluated in float64.

    The same (q, delta, theta) always give the same bits, so a decoder rebuilds exactly the
    weights the encoder evaluated.

    Args:
        q: integer symbols, any shape.
        delta: step > 0.
        theta: dead zone >= 0, in steps.
        dtype: dtype of the result (rounded from the float64 values).

    Returns:
        Array of the shape of ``q``.

    Raises:
        InputError: non-integer symbols, bad delta or theta.
    """
    delta, theta = _check(delta, theta)
    q = np.asarray(q)
    if not np.issubdtype(q.dtype, np.integer):
        raise InputError(f"symbols must be integers, got dtype {q.dtype}")
    q = q.astype(np.float64)
    return (delta * (q + np.sign(q) * theta)).astype(dtype, copy=False)


def dead_zone(delta: float, theta: float) -> float:
    """Half-width delta (theta + 1/2) of the interval of weights mapped to the symbol 0."""
    delta, theta = _check(delta, theta)
    return delta * (theta + 0.5)


@numba.njit(cache=True)
def _fake_quantize_kernel(w, delta, theta, out):
    # The float64 operations of quantize() then dequantize(), in the same order, so the
    # result is bit for bit theirs.
    for i in range(w.size):
        u = np.float64(w[i]) / delta
        v = np.sign(u) * max(abs(u) - theta, 0.0)
        q = np.rint(v)
        out[i] = delta * (q + np.sign(q) * theta)


def fake_quantize(w, delta: float, theta: float, out: np.ndarray | None = None) -> np.ndarray:
    """w_hat = dequantize(quantize(w, delta, theta), delta, theta) in one pass.

    The training forward of quantization-aware training: bit for bit the same values as the
    two-step form, without the int64 symbols in between.

    Args:
        w: weights, any shape (float32 or float64; cast otherwise).
        delta: step > 0.
        theta: dead zone >= 0, in steps.
        out: optional C-contiguous float array of ``w``'s shape to write into (rounded to its
            dtype); a new float64 array otherwise.

    Returns:
        ``out`` (or the new array).

    Raises:
        InputError: bad delta or theta, or an ``out`` of the wrong shape or layout.
    """
    delta, theta = _check(delta, theta)
    w = np.asarray(w)
    if w.dtype not in (np.float32, np.float64):
        w = _weights(w)
    if out is None:
        out = np.empty(w.shape, dtype=np.float64)
    elif out.shape != w.shape or not out.flags.c_contiguous or \
            out.dtype not in (np.float32, np.float64):
        raise InputError(f"out must be a C-contiguous float array of shape {w.shape}, got "
                         f"{out.dtype} of shape {out.shape}")
    _fake_quantize_kernel(np.ascontiguousarray(w).reshape(-1), delta, theta, out.reshape(-1))
    return out


@numba.njit(cache=True)
def _ste_kernel(w, g, delta, theta):
    """sum_i g_i dw_hat_i/ddelta and sum_i g_i dw_hat_i/dtheta (ste_gradients)."""
    s_delta = 0.0
    s_theta = 0.0
    for i in range(w.size):
        u = np.float64(w[i]) / delta
        excess = abs(u) - theta
        if excess <= 0.0:
            continue
        gi = np.float64(g[i])
        su = np.sign(u)
        q = np.rint(excess)
        if q > 0.0:
            # sign(q) = sign(u): q + sign(q) theta - u, and no theta term.
            s_delta += gi * (su * (q + theta) - u)
        else:
            s_delta -= gi * u
            s_theta -= gi * delta * su
    return s_delta, s_theta


def ste_gradients(w, delta: float, theta: float, grad_w_hat) -> tuple[float, float]:
    """dL/ddelta and dL/dtheta from dL/dw_hat, with a straight-through rounding.

    The backward pass treats rint as the identity and differentiates the rest exactly
    (sign(q) is piecewise constant), with u = w / delta and m = [|u| > theta]:

        dw_hat/ddelta = q + sign(q) theta - u m
                      (= (w_hat - w) / delta for a kept weight, -u in the band of
                      pruned weights just outside theta, 0 deeper in the dead zone),
        dw_hat/dtheta = delta (sign(q) - sign(u) m)
                      (0 for kept weights, -delta sign(u) in the band, 0 deeper).

    For the weights themselves the gradient passes straight through the whole quantizer,
    dL/dw = dL/dw_hat, also inside the dead zone (where the exact derivative m would be 0):
    a pruned weight keeps receiving the task gradient and can grow back. So there is nothing
    to compute for w and only the two scalars are returned.

    Args:
        w: weights, any shape.
        delta, theta: the transform's parameters.
        grad_w_hat: dL/dw_hat, the shape of ``w``.

    Returns:
        (dL/ddelta, dL/dtheta), accumulated in float64.

    Raises:
        InputError: shapes differ, or bad parameters.
    """
    delta, theta = _check(delta, theta)
    w, g = np.asarray(w), np.asarray(grad_w_hat)
    if w.dtype not in (np.float32, np.float64):
        w = _weights(w)
    if g.dtype not in (np.float32, np.float64):
        g = g.astype(np.float64)
    if g.shape != w.shape:
        raise InputError(f"gradient of shape {g.shape} for weights of shape {w.shape}")
    s_delta, s_theta = _ste_kernel(np.ascontiguousarray(w).reshape(-1),
                                   np.ascontiguousarray(g).reshape(-1), delta, theta)
    return float(s_delta), float(s_theta)


@dataclass(frozen=True)
class SoftEntropy:
    """The relaxed entropy of a tensor's symbols and its gradients (module docstring).

    Attributes:
        bits: H, bits per weight.
        grad_w: dH/dw, float64 of the shape of the weights.
        grad_delta: dH/ddelta.
        grad_theta: dH/dtheta.
        centres: the symbol values c_k = q_min, ..., q_max (int64).
        probabilities: the soft histogram p_k over ``centres`` (sums to 1).
    """

    bits: float
    grad_w: np.ndarray
    grad_delta: float
    grad_theta: float
    centres: np.ndarray
    probabilities: np.ndarray


@numba.njit(cache=True)
def _window(x, k0, j0, n_bins, d0, inv_two_s2):
    """Centres lo..hi around the nearest one, j0, whose kernel is within exp(-_CUTOFF)."""
    lo = j0
    while lo > 0:
        d = x - (k0 + lo - 1)
        if (d * d - d0) * inv_two_s2 > _CUTOFF:
            break
        lo -= 1
    hi = j0
    while hi < n_bins - 1:
        d = x - (k0 + hi + 1)
        if (d * d - d0) * inv_two_s2 > _CUTOFF:
            break
        hi += 1
    return lo, hi


@numba.njit(cache=True)
def _responsibilities(x, k0, n_bins, inv_two_s2, r):
    """r[lo..hi] = softmax over the window of -(x - c_k)^2 / (2 s^2); returns (lo, hi)."""
    j0 = min(max(int(np.rint(x)) - k0, 0), n_bins - 1)
    d = x - (k0 + j0)
    d0 = d * d
    lo, hi = _window(x, k0, j0, n_bins, d0, inv_two_s2)
    z = 0.0
    for j in range(lo, hi + 1):
        d = x - (k0 + j)
        # Shifted by the nearest centre's exponent, so the largest term is exactly 1.
        r[j] = np.exp(-(d * d - d0) * inv_two_s2)
        z += r[j]
    for j in range(lo, hi + 1):
        r[j] /= z
    return lo, hi


@numba.njit(cache=True)
def _soft_entropy_kernel(v, k0, n_bins, s):
    """Soft histogram p (n_bins) and dH/dv (per entry) of the module docstring."""
    n = v.size
    inv_two_s2 = 0.5 / (s * s)
    r = np.zeros(n_bins)
    p = np.zeros(n_bins)
    for i in range(n):
        lo, hi = _responsibilities(v[i], k0, n_bins, inv_two_s2, r)
        for j in range(lo, hi + 1):
            p[j] += r[j]
    p /= n
    neg_log = np.zeros(n_bins)
    for j in range(n_bins):
        if p[j] > 0.0:
            neg_log[j] = -np.log2(p[j])
    grad = np.empty(n)
    inv_s2 = 1.0 / (s * s)
    for i in range(n):
        x = v[i]
        lo, hi = _responsibilities(x, k0, n_bins, inv_two_s2, r)
        sa = 0.0
        sg = 0.0
        sga = 0.0
        for j in range(lo, hi + 1):
            a = -(x - (k0 + j)) * inv_s2
            sa += r[j] * a
            sg += neg_log[j] * r[j]
            sga += neg_log[j] * r[j] * a
        grad[i] = (sga - sg * sa) / n
    return p, grad


def soft_entropy(w, delta: float, theta: float, width: float = 0.4) -> SoftEntropy:
    """Differentiable estimate of the entropy of ``quantize(w, delta, theta)``.

    H = -sum_k p_k log2 p_k with the Gaussian soft histogram p_k of the module docstring, and
    its exact gradients in w, delta and theta. The cost is O(n (1 + width)) (kernel terms
    below exp(-50) of the largest are skipped; they do not change a float64 sum).

    Args:
        w: weights, any shape, at least one entry.
        delta: step > 0.
        theta: dead zone >= 0, in steps.
        width: kernel standard deviation s > 0, in steps. Small s: H close to the entropy of
            the symbols but a gradient concentrated near the bin edges; large s: smoother
            gradient, more bias.

    Returns:
        A :class:`SoftEntropy`.

    Raises:
        InputError: empty or non-finite weights, bad delta, theta or width.
    """
    delta, theta = _check(delta, theta)
    width = float(width)
    if not (math.isfinite(width) and width > 0):
        raise InputError(f"the kernel width must be a finite number > 0, got {width}")
    w = _weights(w)
    if w.size == 0:
        raise InputError("soft_entropy needs at least one weight")
    u = w.ravel() / delta
    kept = np.abs(u) > theta
    v = np.sign(u) * np.maximum(np.abs(u) - theta, 0.0)
    q_min, q_max = int(np.rint(v.min())), int(np.rint(v.max()))
    if q_max - q_min >= _MAX_BINS:
        raise InputError(f"symbols span {q_max - q_min + 1} values (step {delta} against "
                         f"weights up to {np.max(np.abs(w))}); at most {_MAX_BINS} fit the "
                         "soft histogram")
    p, grad_v = _soft_entropy_kernel(v, q_min, q_max - q_min + 1, width)
    nz = p[p > 0]
    bits = float(-np.sum(nz * np.log2(nz)))
    grad_v = np.where(kept, grad_v, 0.0)
    return SoftEntropy(bits=bits, grad_w=(grad_v / delta).reshape(w.shape),
                       grad_delta=float(-np.sum(grad_v * u) / delta),
                       grad_theta=float(-np.sum(grad_v * np.sign(u))),
                       centres=np.arange(q_min, q_max + 1, dtype=np.int64), probabilities=p)
