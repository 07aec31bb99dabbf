"""Gaussian moments of step activations in closed form, for kernels at any correlation.

A k-level step function sigma(x) = v_0 + sum_t Delta_t 1[x >= b_t] (thresholds b_1 < ... <
b_{k-1}, jumps Delta_t = v_t - v_{t-1}; the value at a threshold is the right level, as
``ntk.activations.step_activation`` defines it), centred by a scalar m. For a sample of scale
s > 0, with a_t = b_t / s, P_r the probability of level r and h_k = He_k / sqrt(k!):

    E[sigma(s xi)] - m        = sum_r (v_r - m) P_r                       (c_0)
    c_k = E[sigma(s xi) h_k]  = sum_t Delta_t h_(k-1)(a_t) phi(a_t) / sqrt(k),   k >= 1,
    E[(sigma(s xi) - m)^2]    = sum_r (v_r - m)^2 P_r,

since the integral of h_k phi over [a, inf) is h_(k-1)(a) phi(a) / sqrt(k). The products
g_k = h_k(a) phi(a) follow the Hermite recurrence from g_0 = phi(a) and stay bounded
(|g_k| <= 1.09 exp(-a^2 / 4) / sqrt(2 pi), Cramer's inequality), so no power of a overflows. A
sample of scale 0 has the constant sigma(0): c_0 = sigma(0) - m, c_k = 0.

For a pair of scales s1, s2 > 0 and correlation sgn (1 - delta), with X = u / s1, Y = v / s2,

    E[(sigma(u) - m)(sigma(v) - m)] = (v_0 - m)^2 + (v_0 - m) sum_t Delta_t (Phibar(b_t / s1)
                                      + Phibar(b_t / s2)) + sum_(t, t') Delta_t Delta_t'
                                      P(X >= b_t / s1, Y >= b_t' / s2),

the orthant probabilities by Genz's algorithm (``ntk.bvn``), accurate up to |rho| = 1 given
delta. That costs (k - 1)^2 orthant probabilities a pair, so the Hermite series (O(T) a pair)
serves the pairs it reaches and this form the close pairs only.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ntk.activations import Activation
from ntk.bvn import bvn_upper

__all__ = ["step_coefficients", "step_levels", "step_pair_moment", "step_second_moment"]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)


def step_levels(act: Activation) -> tuple[np.ndarray, np.ndarray] | None:
    """(thresholds, levels) of a piecewise-constant activation, or ``None`` for any other."""
    if not act.has_jumps or act.pieces is None:
        return None
    if not all(piece.poly.is_number for piece in act.pieces):
        return None
    thresholds = np.array([float(piece.hi) for piece in act.pieces[:-1]])
    levels = np.array([float(piece.poly) for piece in act.pieces])
    return thresholds, levels


@numba.njit(cache=True)
def _upper_tail(x):
    """Phibar(x) = P(xi >= x), accurate in both tails."""
    return 0.5 * math.erfc(x * _SQRT_HALF)


@numba.njit(cache=True)
def _level_probabilities(thresholds, s, out):
    """P_r of each level at scale s > 0, from the tail away from 0 (no cancellation)."""
    k = out.shape[0]
    for r in range(k):
        lo = -math.inf if r == 0 else thresholds[r - 1] / s
        hi = math.inf if r == k - 1 else thresholds[r] / s
        if lo >= 0:
            out[r] = _upper_tail(lo) - _upper_tail(hi)
        else:
            out[r] = _upper_tail(-hi) - _upper_tail(-lo)


@numba.njit(parallel=True, cache=True)
def step_coefficients(thresholds, levels, m, scales, n_terms):
    """Hermite coefficients c_0..c_T of sigma(s xi) - m for every scale (module docstring).

    Args:
        thresholds: (k - 1,) ascending; levels: (k,).
        m: centring constant.
        scales: (N,) scales s >= 0.
        n_terms: T >= 0.

    Returns:
        coef (N, T + 1) and second (N,) = E[(sigma(s xi) - m)^2].
    """
    n = scales.shape[0]
    k = levels.shape[0]
    coef = np.zeros((n, n_terms + 1))
    second = np.empty(n)
    zero_level = levels[np.searchsorted(thresholds, 0.0, side="right")]
    for i in numba.prange(n):
        s = scales[i]
        if s == 0.0:
            coef[i, 0] = zero_level - m
            second[i] = (zero_level - m) ** 2
            continue
        prob = np.empty(k)
        _level_probabilities(thresholds, s, prob)
        c0 = 0.0
        sq = 0.0
        for r in range(k):
            c0 += (levels[r] - m) * prob[r]
            sq += (levels[r] - m) ** 2 * prob[r]
        coef[i, 0] = c0
        second[i] = sq
        for t in range(k - 1):
            a = thresholds[t] / s
            jump = levels[t + 1] - levels[t]
            g_prev = 0.0
            g = math.exp(-0.5 * a * a) * _INV_SQRT_2PI
            if g == 0.0:
                continue
            # c_k += Delta g_(k-1) / sqrt(k); g_k = (a g_(k-1) - sqrt(k-1) g_(k-2)) / sqrt(k).
            for order in range(1, n_terms + 1):
                root = math.sqrt(order)
                coef[i, order] += jump * g / root
                g, g_prev = (a * g - math.sqrt(order - 1) * g_prev) / root, g
    return coef, second


# Beyond this many standard deviations of Y - rho X the orthant probability of a positively
# correlated pair equals its one-sided limit to within Phi(-9) = 1.1e-19.
_SHARP = 9.0


@numba.njit(cache=True)
def step_pair_moment(thresholds, levels, m, s1, s2, sgn, delta):
    """E[(sigma(u) - m)(sigma(v) - m)] for scales s1, s2 > 0 and correlation sgn (1 - delta),
    by orthant probabilities (module docstring).

    For rho = 1 - delta > 0 and r = sqrt(1 - rho^2), P(X >= a, Y >= b) differs from
    Phibar(max(a, b)) by at most Phi(-|rho a - b| / r) when rho a - b has the sign of a - b
    (Y - rho X is N(0, r^2) and independent of X), so thresholds whose standardised values
    are many r apart need no quadrature: a close pair of a k-level step costs about k
    orthant probabilities instead of (k - 1)^2."""
    k = levels.shape[0]
    base = levels[0] - m
    total = base * base
    tail_u = np.empty(k - 1)
    tail_v = np.empty(k - 1)
    for t in range(k - 1):
        tail_u[t] = _upper_tail(thresholds[t] / s1)
        tail_v[t] = _upper_tail(thresholds[t] / s2)
        total += base * (levels[t + 1] - levels[t]) * (tail_u[t] + tail_v[t])
    rho = sgn * (1.0 - delta)
    r = math.sqrt(delta * (2.0 - delta))
    for t in range(k - 1):
        a = thresholds[t] / s1
        acc = 0.0
        for u in range(k - 1):
            b = thresholds[u] / s2
            gap = rho * a - b
            if sgn > 0 and a >= b and gap > _SHARP * r:
                prob = tail_u[t]
            elif sgn > 0 and a < b and -gap > _SHARP * r:
                prob = tail_v[u]
            else:
                prob = bvn_upper(a, b, sgn, delta)
            acc += (levels[u + 1] - levels[u]) * prob
        total += (levels[t + 1] - levels[t]) * acc
    return total


def step_second_moment(thresholds, levels, m, scales) -> np.ndarray:
    """E[(sigma(s xi) - m)^2] for every scale (the diagonal of the kernel)."""
    scales = np.ascontiguousarray(scales, dtype=float)
    return step_coefficients(np.asarray(thresholds, float), np.asarray(levels, float),
                             float(m), scales, 0)[1]
