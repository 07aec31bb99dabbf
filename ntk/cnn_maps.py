"""The bivariate map of a convolutional layer, position pair by position pair, by strategy.

A layer of the convolutional recursion (``ntk.cnn_exact``) turns, for every image pair (i, j)
and position pair (a, b = a + e), the pre-activation covariance S_ij(a, b) and the variances
q_i(a), q_j(b) into

    K_ij(a, b)  = E[(sigma(u) - m)(sigma(v) - m)],   Kd_ij(a, b) = E[sigma'(u) sigma'(v)],

and with the NTK input Theta into N = K + Kd Theta. Every catalogue activation is served by one
of three exact strategies, chosen by what the activation is:

* :class:`AngularMap` for positively homogeneous activations (relu, lrelu, abs, sign, quad):
  one arccos and two Chebyshev sums per entry (``ntk.angular``), at any correlation.
* :class:`SeriesMap` for all others: the per-sample Hermite series of ``ntk.exact`` (Mehler's
  formula), truncated per pair at T = ceil(log(tol) / log|rho|) terms, and for smooth
  activations also where the coefficient tails of both samples fall below tol (then the series
  converges even at |rho| = 1: tanh, erf, gelu need a few dozen terms). The coefficients of step
  activations are closed forms (``ntk.step_kernels``); the pairs a series cannot reach go to
  orthant probabilities (steps, ``ntk.bvn``) or to the 2-D quadrature of ``ntk.bivariate``.
* :class:`ExpandedMap`, not exact: the fully connected deterministic equivalent's expansion of
  the map in the constants d1, d2, d3, E[sigma'^2] and tau of the scale chain (the "expanded
  recursion" of ``../shared/spec/cnn-kernels.md``).

A sample of variance 0 (an all-zero patch under zero padding) has the constant sigma(0): then
K = (sigma(0) - m)(E[sigma(v)] - m) and Kd is set to 0, which is exact for the NTK because
Theta vanishes wherever the variance does (Theta_1 = S_1, and Theta_l(a, a) = 0 whenever
q_l(a) = 0 by induction over the layers).

Every map writes, for the planes of a block of image pairs (arrays (B, offsets, H, W)), K and N
in place; positions whose partner a + e lies outside the grid (zero or valid padding) get 0,
and the maps (like every kernel of ``ntk.cnn_exact``) loop over the rectangle of the others
only (:func:`_span`): with global average pooling most planes are small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from ntk.activations import Activation
from ntk.angular import AngularKernel, chebyshev
from ntk.bivariate import pair_moments
from ntk.constants import ActivationConstants
from ntk.exact import MAX_TERMS, _sample_moments
from ntk.step_kernels import step_coefficients, step_pair_moment

__all__ = ["AngularMap", "ExpandedMap", "PlaneBlock", "SeriesMap"]

# |rho| above which the angle comes from 1 - |rho| (exact from the data at the first layer)
# rather than from arccos(rho), whose derivative grows like 1 / sqrt(1 - |rho|).
_ACOS_MAX = 0.9
# First number of Hermite terms tried per sample for smooth activations (doubled up to
# MAX_TERMS while a sample's coefficient tail is above tol).
_FIRST_TERMS = 64


@dataclass
class PlaneBlock:
    """The planes of one block of image pairs at one layer.

    Attributes:
        ii, jj: (B,) image indices of the pairs.
        eh, ew: (E,) offsets e of the planes on this layer's grid.
        circular: partner positions wrap around the grid.
        diag: the pairs with i == j are self pairs (their offset-0 plane is the diagonal).
        S: (B, E, H, W) pre-activation covariances S_ij(a, a + e).
        theta: (B, E, H, W) NTK input Theta, or an empty array without the NTK.
        delta: (B, E, H, W) 1 - |rho| where computed without cancellation, else negative
            (then 1 - |rho| of S is used).
    """

    ii: np.ndarray
    jj: np.ndarray
    eh: np.ndarray
    ew: np.ndarray
    circular: bool
    diag: bool
    S: np.ndarray
    theta: np.ndarray
    delta: np.ndarray


def _or_placeholder(a: np.ndarray | None) -> np.ndarray:
    """``a``, or a 4-D placeholder that a kernel told not to write it never touches."""
    return np.empty((1, 1, 1, 1)) if a is None else a


@numba.njit(cache=True, inline="always")
def _span(offset, size, circular):
    """The positions a in [lo, hi) whose partner a + offset lies on a grid of ``size``
    (every position when the grid wraps around)."""
    if circular:
        return 0, size
    return max(0, -offset), min(size, size - offset)


@numba.njit(cache=True, inline="always")
def _partner(h, w, eh, ew, H, W, circular):
    """The partner (h + eh, w + ew) of a position inside :func:`_span`'s rectangle."""
    if circular:
        return (h + eh) % H, (w + ew) % W
    return h + eh, w + ew


@numba.njit(cache=True, inline="always")
def _zero_outside(A, p, e, h0, h1, w0, w1):
    """A[p, e] = 0 outside the rectangle [h0, h1) x [w0, w1): the positions whose partner
    is off the grid, which the readout and the next window read as 0."""
    for h in range(A.shape[2]):
        if h < h0 or h >= h1:
            A[p, e, h, :] = 0.0
        else:
            A[p, e, h, :w0] = 0.0
            A[p, e, h, w1:] = 0.0


@numba.njit(cache=True, inline="always")
def _output_rectangle(K, N, with_ntk, p, e, eh, ew, H, W, circular):
    """The rectangle [h0, h1) x [w0, w1) of plane (p, e) whose partners (offset (eh, ew)) are
    on the grid, after zeroing K (and N, with ``with_ntk``) outside it: what every map kernel
    does before its loop over the rectangle."""
    h0, h1 = _span(eh, H, circular)
    w0, w1 = _span(ew, W, circular)
    _zero_outside(K, p, e, h0, h1, w0, w1)
    if with_ntk:
        _zero_outside(N, p, e, h0, h1, w0, w1)
    return h0, h1, w0, w1


@numba.njit(cache=True, inline="always")
def _angle(rho, delta):
    """theta of the pair, from delta = 1 - |rho| near |rho| = 1 when it is known."""
    if abs(rho) <= _ACOS_MAX:
        return math.acos(rho)
    if delta < 0:
        delta = max(0.0, 1.0 - abs(rho))
    half = 2.0 * math.asin(math.sqrt(min(delta, 1.0) / 2.0))
    return half if rho > 0 else math.pi - half


class AngularMap:
    """Exact map of a positively homogeneous activation (see ``ntk.angular``)."""

    def __init__(self, kernel: AngularKernel, m: float, ntk: bool):
        self.kernel = kernel
        self.m = float(m)
        self.ntk = ntk
        self.terms = 0

    def prepare(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-sample variances q, means E[sigma(sqrt(q) xi)] and second moments
        E[(sigma - m)^2] of the layer, each (n, H, W)."""
        k = self.kernel
        q = np.ascontiguousarray(q)
        mean = np.where(q > 0, np.sqrt(q) ** k.degree * k.mean, k.at_zero)
        second = np.empty_like(q)
        _angular_second(q, mean, k.ck, k.degree, self.m, second)
        return q, mean, second

    @staticmethod
    def diagonal(state) -> np.ndarray:
        return state[2]

    def evaluate(self, state, block: PlaneBlock, K: np.ndarray, N: np.ndarray,
                 out_delta: np.ndarray | None) -> int:
        q, mean, second = state
        k = self.kernel
        sdot = k.sdot if self.ntk else np.zeros(1)
        _angular_planes(block.S, block.theta, block.delta, block.ii, block.jj, block.eh,
                        block.ew, block.circular, block.diag, q, mean, second, k.ck, sdot,
                        k.gap, k.degree, k.mean, k.parity, self.m, self.ntk, K, N,
                        _or_placeholder(out_delta), out_delta is not None)
        return 0


@numba.njit(cache=True, inline="always")
def _angular_value(qi, qj, theta, mi, mj, m, cF, degree):
    """E[(sigma(u) - m)(sigma(v) - m)] = (s_i s_j)^D F(theta) - m (mu_i + mu_j) + m^2."""
    return (math.sqrt(qi * qj) ** degree * chebyshev(cF, theta) - m * (mi + mj) + m * m)


@numba.njit(cache=True)
def _angular_second(q, mean, cF, degree, m, out):
    """The diagonal: the value of a sample with itself (theta = 0), as the planes compute it."""
    flat_q = q.reshape(-1)
    flat_m = mean.reshape(-1)
    flat = out.reshape(-1)
    for t in range(flat_q.size):
        mi = flat_m[t]
        if flat_q[t] == 0.0:
            flat[t] = (mi - m) * (mi - m)
        else:
            flat[t] = _angular_value(flat_q[t], flat_q[t], 0.0, mi, mi, m, cF, degree)


# Below this 1 - |rho'| of the output, it is recomputed without cancellation (above, the
# rounding of rho' costs at most 1e-13 of it).
_DELTA_EXACT_BELOW = 1e-3


@numba.njit(cache=True, inline="always")
def _angular_delta(value, qi, qj, theta, A, B, cG, degree, mu, parity, F0, m):
    """1 - |rho'| of the output pair, rho' = value / sqrt(A B), without cancellation.

    With lambda = sqrt(A / B), a = s_i^D - lambda s_j^D and c = m (1 - lambda), the distance
    E[(f(u) - lambda f(v))^2] (f = sigma - m) equals a^2 (F(0) - mu^2) + (mu a - c)^2
    + 2 lambda (s_i s_j)^D (F(0) - F(theta)), a sum of non-negative terms with F(0) - F(theta)
    = theta G(theta) from its own interpolant; then 1 - |rho'| = distance / (2 A). An
    antiparallel pair of an even (odd) activation has the output of the parallel pair at
    pi - theta (negated). Other pairs keep 1 - |rho'| as computed.
    """
    naive = max(0.0, 1.0 - abs(value) / math.sqrt(A * B))
    if naive >= _DELTA_EXACT_BELOW:
        return naive
    if theta > 0.5 * math.pi:
        if parity == 0:
            return naive
        theta = math.pi - theta
        value = parity * value
    if value <= 0.0:
        return naive
    lam = math.sqrt(A / B)
    a = math.sqrt(qi) ** degree - lam * math.sqrt(qj) ** degree
    c = m * (1.0 - lam)
    gap = theta * chebyshev(cG, theta)
    dist = (a * a * (F0 - mu * mu) + (mu * a - c) ** 2
            + 2.0 * lam * math.sqrt(qi * qj) ** degree * gap)
    return min(1.0, max(0.0, dist / (2.0 * A)))


@numba.njit(parallel=True, cache=True)
def _angular_planes(S, T, D, ii, jj, eh, ew, circular, diag, q, mean, second, cF, cFd, cG,
                    degree, mu, parity, m, with_ntk, K, N, D_out, with_delta):
    """K (and N) of :class:`AngularMap` for every plane of a block, and with ``with_delta``
    the output's 1 - |rho'| (``_angular_delta``) in D_out.

    rho = S / sqrt(q_i q_j) and (s_i s_j) = sqrt(q_i q_j), not products of square roots: for
    duplicates (S = q_i = q_j) that gives rho = 1 and the diagonal's value bit for bit."""
    B, n_off, H, W = S.shape
    F0 = chebyshev(cF, 0.0)
    for p in numba.prange(B):
        i = ii[p]
        j = jj[p]
        for e in range(n_off):
            self_plane = diag and i == j and eh[e] == 0 and ew[e] == 0
            h0, h1, w0, w1 = _output_rectangle(K, N, with_ntk, p, e, eh[e], ew[e], H, W,
                                               circular)
            for h in range(h0, h1):
                for w in range(w0, w1):
                    hb, wb = _partner(h, w, eh[e], ew[e], H, W, circular)
                    qi = q[i, h, w]
                    qj = q[j, hb, wb]
                    kd = 0.0
                    if qi == 0.0 or qj == 0.0:
                        value = (mean[i, h, w] - m) * (mean[j, hb, wb] - m)
                        if with_delta:
                            prod = math.sqrt(second[i, h, w] * second[j, hb, wb])
                            D_out[p, e, h, w] = (max(0.0, 1.0 - abs(value) / prod) if prod > 0
                                                 else 1.0)
                    else:
                        prod = math.sqrt(qi * qj)
                        theta = 0.0 if self_plane else _angle(S[p, e, h, w] / prod,
                                                              D[p, e, h, w])
                        value = _angular_value(qi, qj, theta, mean[i, h, w], mean[j, hb, wb],
                                               m, cF, degree)
                        if with_ntk:
                            kd = prod ** (degree - 1) * chebyshev(cFd, theta)
                        if with_delta:
                            D_out[p, e, h, w] = 0.0 if self_plane else _angular_delta(
                                value, qi, qj, theta, second[i, h, w], second[j, hb, wb], cG,
                                degree, mu, parity, F0, m)
                    K[p, e, h, w] = value
                    if with_ntk:
                        N[p, e, h, w] = value + kd * T[p, e, h, w]


class SeriesMap:
    """Exact map by per-sample Hermite series, with a close-pair path (module docstring).

    Args:
        act: the activation.
        m: centring constant.
        tol: truncation tolerance relative to the kernel scale.
        ntk: also the derivative series.
        steps: (thresholds, levels) when ``act`` is a step function (closed-form
            coefficients, orthant probabilities for close pairs), else ``None``.
    """

    def __init__(self, act: Activation, m: float, tol: float, ntk: bool,
                 steps: tuple[np.ndarray, np.ndarray] | None):
        self.act = act
        self.m = float(m)
        self.log_tol = math.log(tol)
        self.tol = tol
        self.ntk = ntk
        self.steps = steps
        self.terms = 0
        self._at_zero = float(np.asarray(act.fn(np.zeros(1)), dtype=float)[0])

    def prepare(self, q: np.ndarray):
        """Per-sample coefficients c_k (and d_k), diagonal moments and truncation orders."""
        shape = q.shape
        s = np.sqrt(q).reshape(-1)
        if self.steps is not None:
            coef, second = step_coefficients(*self.steps, self.m, s, MAX_TERMS)
            deriv = np.zeros((1, 1))
            sdot = np.zeros(s.size)
            # Step series converge like a power of rho only: no sample tail is small.
            converged = np.full(s.size, MAX_TERMS + 1, dtype=np.int64)
            stored = np.full(s.size, MAX_TERMS, dtype=np.int64)
        else:
            coef, deriv, second, sdot, converged, stored = self._smooth_moments(s)
        self.terms = max(self.terms, int(stored.max()))
        return (np.ascontiguousarray(q), coef.reshape(*shape, -1), deriv.reshape(*shape, -1)
                if self.ntk and self.steps is None else np.zeros((1, 1, 1, 1)),
                second.reshape(shape), sdot.reshape(shape), converged.reshape(shape),
                stored.reshape(shape))

    def _smooth_moments(self, s: np.ndarray):
        """Coefficients by quadrature, doubling T per sample until its tails are below tol.

        A sample's order T*_i is the least T with E[(sigma - m)^2] - sum_(k <= T) c_k^2 and
        E[sigma'^2] - sum_(1 <= k <= T) d_k^2 both below tol times the moment. Then for a pair
        of such samples the terms beyond max(T*_i, T*_j) sum to at most tol times the kernel
        scale (Cauchy-Schwarz), at any correlation.
        """
        n = s.size
        live = np.flatnonzero(s > 0)
        at_zero = self._at_zero - self.m
        converged = np.zeros(n, dtype=np.int64)
        terms = np.zeros(n, dtype=np.int64)
        rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        second = np.full(n, at_zero * at_zero)
        sdot = np.zeros(n)
        todo = live
        order = _FIRST_TERMS
        while todo.size:
            order = min(order, MAX_TERMS)
            coef, ck_diag, sd_diag = _moments_by_scale(self.act, s[todo], self.m, order,
                                                       self.ntk)
            second[todo] = ck_diag
            sdot[todo] = sd_diag
            star = _tail_order(coef, ck_diag, s[todo], sd_diag if self.ntk else None,
                               self.tol)
            done = star <= order
            for idx, row in zip(todo, coef, strict=True):
                rows[int(idx)] = row
            converged[todo] = np.where(done, star, MAX_TERMS + 1)
            terms[todo] = order
            if order >= MAX_TERMS:
                break
            todo = todo[~done]
            order *= 2
        conv = converged[live]
        top_converged = int(conv[conv <= MAX_TERMS].max()) if np.any(conv <= MAX_TERMS) else 0
        # Every row holds at least max T*: a pair of converged samples sums that far.
        width = max(top_converged, int(terms.max()) if n else 0)
        short = [i for i in live if terms[i] < top_converged]
        if short:
            coef = _moments_by_scale(self.act, s[short], self.m, top_converged, False)[0]
            for idx, row in zip(short, coef, strict=True):
                rows[int(idx)] = row
            terms[short] = top_converged
        full = np.zeros((n, width + 1))
        full[:, 0] = at_zero
        for idx, row in rows.items():
            full[idx, :row.size] = row
        deriv = (np.sqrt(np.arange(1.0, width + 1))[None, :] * full[:, 1:]
                 / np.where(s > 0, s, 1.0)[:, None]) if self.ntk else np.zeros((1, 1))
        if self.ntk:
            deriv[s == 0] = 0.0
        return full, deriv, second, sdot, converged, terms

    @staticmethod
    def diagonal(state) -> np.ndarray:
        return state[3]

    def evaluate(self, state, block: PlaneBlock, K: np.ndarray, N: np.ndarray,
                 out_delta: np.ndarray | None) -> int:
        q, coef, deriv, second, sdot, converged, stored = state
        close = np.zeros(block.S.shape, dtype=np.bool_)
        _series_planes(block.S, block.theta, block.delta, block.ii, block.jj, block.eh,
                       block.ew, block.circular, block.diag, q, coef, deriv, second, sdot,
                       converged, stored, self.log_tol, self.ntk and self.steps is None, K, N,
                       close, _or_placeholder(out_delta), out_delta is not None)
        where = np.nonzero(close)
        if where[0].size:
            self._close_pairs(where, state, block, K, N, out_delta)
        return int(where[0].size)

    def _close_pairs(self, where, state, block: PlaneBlock, K, N,
                     out_delta: np.ndarray | None) -> None:
        """Pairs beyond the series: orthant probabilities (steps) or 2-D quadrature; their
        output 1 - |rho'| into ``out_delta`` unless it is ``None``."""
        q = state[0]
        p, e, h, w = where
        i, j = block.ii[p], block.jj[p]
        H, W = q.shape[1:]
        hb, wb = h + block.eh[e], w + block.ew[e]
        if block.circular:
            hb, wb = hb % H, wb % W
        s1, s2 = np.sqrt(q[i, h, w]), np.sqrt(q[j, hb, wb])
        rho = block.S[p, e, h, w] / np.sqrt(q[i, h, w] * q[j, hb, wb])
        delta = block.delta[p, e, h, w]
        delta = np.where(delta >= 0, delta, np.clip(1.0 - np.abs(rho), 0.0, 1.0))
        sgn = np.where(rho >= 0, 1.0, -1.0)
        second = state[3]
        A, B = second[i, h, w], second[j, hb, wb]
        if self.steps is not None:
            values = _step_close(*self.steps, self.m, s1, s2, sgn, delta)
            K[p, e, h, w] = values
            if out_delta is not None:
                prod = np.sqrt(A * B)
                ratio = np.divide(np.abs(values), prod, out=np.zeros_like(prod), where=prod > 0)
                out_delta[p, e, h, w] = np.clip(1.0 - ratio, 0.0, 1.0)
            return
        done: dict[tuple[float, ...], tuple[float, float, float]] = {}
        values = np.empty(p.size)
        derivs = np.empty(p.size)
        deltas = np.empty(p.size)
        for k, key in enumerate(zip(s1, s2, sgn, delta, A, B, strict=True)):
            if key not in done:
                pm = pair_moments(self.act, self.m, *key[:4], grad=self.ntk,
                                  second_moments=key[4:])
                done[key] = (pm.ck, pm.sdot, pm.delta)
            values[k], derivs[k], deltas[k] = done[key]
        K[p, e, h, w] = values
        if out_delta is not None:
            out_delta[p, e, h, w] = deltas
        if self.ntk:
            N[p, e, h, w] = values + derivs * block.theta[p, e, h, w]


def _moments_by_scale(act: Activation, s: np.ndarray, m: float, order: int, grad: bool):
    """``ntk.exact._sample_moments`` of every sample to ``order`` terms, in groups of scales
    within a factor 2: the quadrature's panels shrink like 1 / (largest scale) for smooth
    activations, so a few large scales would otherwise set the cost of all samples."""
    group = np.ceil(np.log2(np.maximum(s, 1.0))).astype(np.int64)
    coef = np.empty((s.size, order + 1))
    second = np.empty(s.size)
    sdot = np.empty(s.size)
    for g in np.unique(group):
        idx = np.flatnonzero(group == g)
        coef[idx], second[idx], sdot[idx] = _sample_moments(
            act, s[idx], m, np.full(idx.size, order, dtype=np.int64), grad=grad)
    return coef, second, sdot


def _tail_order(coef, second, s, sdot, tol) -> np.ndarray:
    """Per row, the least T with both coefficient tails below tol (``T + 1`` past the end when
    not reached within the row)."""
    tail = second[:, None] - np.cumsum(coef * coef, axis=1)
    ok = tail <= tol * second[:, None]
    if sdot is not None:
        d2 = np.arange(coef.shape[1]) * coef * coef / (s * s)[:, None]
        dtail = sdot[:, None] - np.cumsum(d2, axis=1)
        ok &= dtail <= tol * sdot[:, None]
    first = np.argmax(ok, axis=1)
    return np.where(ok.any(axis=1), first, coef.shape[1]).astype(np.int64)


@numba.njit(parallel=True, cache=True)
def _step_close(thresholds, levels, m, s1, s2, sgn, delta):
    out = np.empty(s1.shape[0])
    for k in numba.prange(s1.shape[0]):
        out[k] = step_pair_moment(thresholds, levels, m, s1[k], s2[k], sgn[k], delta[k])
    return out


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _series_planes(S, T, D, ii, jj, eh, ew, circular, diag, q, coef, deriv, second, sdot,
                   converged, stored, log_tol, with_ntk, K, N, close, D_out, with_delta):
    """K (and N) of :class:`SeriesMap` for every plane; pairs beyond reach are marked.

    Duplicates (1 - |rho| = 0, equal variances) take the diagonal's values bit for bit (and
    an output 1 - |rho'| of 0); otherwise D_out is 1 - |rho'| as computed (with
    ``with_delta``)."""
    B, n_off, H, W = S.shape
    for p in numba.prange(B):
        i = ii[p]
        j = jj[p]
        for e in range(n_off):
            self_plane = diag and i == j and eh[e] == 0 and ew[e] == 0
            h0, h1, w0, w1 = _output_rectangle(K, N, with_ntk, p, e, eh[e], ew[e], H, W,
                                               circular)
            for h in range(h0, h1):
                for w in range(w0, w1):
                    hb, wb = _partner(h, w, eh[e], ew[e], H, W, circular)
                    qi = q[i, h, w]
                    qj = q[j, hb, wb]
                    rho = 0.0 if qi == 0.0 or qj == 0.0 else S[p, e, h, w] / math.sqrt(qi * qj)
                    r = abs(rho)
                    duplicate = qi == qj and rho > 0 and (D[p, e, h, w] == 0.0 or (
                        D[p, e, h, w] < 0 and r >= 1.0))
                    if self_plane or duplicate:
                        value = second[i, h, w]
                        kd = sdot[i, h, w]
                    elif qi == 0.0 or qj == 0.0:
                        value = coef[i, h, w, 0] * coef[j, hb, wb, 0]
                        kd = 0.0
                    else:
                        need = 1 if r == 0.0 else (
                            stored[i, h, w] + stored[j, hb, wb] + 2 if r >= 1.0
                            else math.ceil(log_tol / math.log(r)))
                        ti = converged[i, h, w]
                        tj = converged[j, hb, wb]
                        top = min(need, max(ti, tj))
                        if top > min(stored[i, h, w], stored[j, hb, wb]):
                            close[p, e, h, w] = True
                            K[p, e, h, w] = math.nan
                            continue
                        acc = 0.0
                        acc_d = 0.0
                        for k in range(top, 0, -1):
                            acc = acc * rho + coef[i, h, w, k] * coef[j, hb, wb, k]
                            if with_ntk:
                                acc_d = acc_d * rho + deriv[i, h, w, k - 1] * deriv[j, hb, wb,
                                                                                     k - 1]
                        value = acc * rho + coef[i, h, w, 0] * coef[j, hb, wb, 0]
                        kd = acc_d
                    K[p, e, h, w] = value
                    if with_delta:
                        prod = math.sqrt(second[i, h, w] * second[j, hb, wb])
                        D_out[p, e, h, w] = (0.0 if self_plane or duplicate else
                                             max(0.0, 1.0 - abs(value) / prod) if prod > 0
                                             else 1.0)
                    if with_ntk:
                        N[p, e, h, w] = value + kd * T[p, e, h, w]


class ExpandedMap:
    """The map expanded in the fully connected constants of the scale chain (not exact).

    With tau the chain's input scale of the layer and its constants (``ntk.constants``):

        off the diagonal:  K  = d1^2 c + (d2^2 / 2) c^2 + (d2^2 / 4)(q_i - tau^2)(q_j - tau^2)
                           Kd = d1^2 + d2^2 c
        on the diagonal:   K  = tau_next^2 + (d3 / 2)(q - tau^2),   Kd = E[sigma'^2]

    the terms that the CK and NTK equivalents (``ntk.equivalents``) keep, position pair by
    position pair. Meant for centred activations (m = E[sigma(tau xi)]).
    """

    def __init__(self, constants: ActivationConstants, ntk: bool):
        self.c = constants
        self.ntk = ntk
        self.terms = 0

    def prepare(self, q: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(q)

    def diagonal(self, q) -> np.ndarray:
        return self.c.tau2_next + 0.5 * self.c.d3 * (q - self.c.tau**2)

    def evaluate(self, q, block: PlaneBlock, K: np.ndarray, N: np.ndarray,
                 out_delta: np.ndarray | None) -> int:
        c = self.c
        esp2 = c.esp2 if self.ntk else 0.0
        _expanded_planes(block.S, block.theta, block.ii, block.jj, block.eh, block.ew,
                         block.circular, block.diag, q, c.tau**2, c.d1, c.d2, c.d3,
                         c.tau2_next, esp2, self.ntk, K, N)
        if out_delta is not None:  # the expansion has no angle: nothing downstream needs it
            out_delta.fill(-1.0)
        return 0


@numba.njit(parallel=True, cache=True)
def _expanded_planes(S, T, ii, jj, eh, ew, circular, diag, q, tau2, d1, d2, d3, tau2_next,
                     esp2, with_ntk, K, N):
    B, n_off, H, W = S.shape
    for p in numba.prange(B):
        i = ii[p]
        j = jj[p]
        for e in range(n_off):
            self_plane = diag and i == j and eh[e] == 0 and ew[e] == 0
            h0, h1, w0, w1 = _output_rectangle(K, N, with_ntk, p, e, eh[e], ew[e], H, W,
                                               circular)
            for h in range(h0, h1):
                for w in range(w0, w1):
                    hb, wb = _partner(h, w, eh[e], ew[e], H, W, circular)
                    c = S[p, e, h, w]
                    if self_plane:
                        value = tau2_next + 0.5 * d3 * (q[i, h, w] - tau2)
                        kd = esp2
                    else:
                        value = (d1 * d1 * c + 0.5 * d2 * d2 * c * c
                                 + 0.25 * d2 * d2 * (q[i, h, w] - tau2) * (q[j, hb, wb] - tau2))
                        kd = d1 * d1 + d2 * d2 * c
                    K[p, e, h, w] = value
                    if with_ntk:
                        N[p, e, h, w] = value + kd * T[p, e, h, w]
