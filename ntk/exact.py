"""Exact infinite-width CK and NTK of given data, by Hermite (Mehler) expansion, no Monte Carlo.

For the centred fully connected network of the spec (section 2) with Gaussian weights, the
kernels of infinitely wide layers follow a deterministic recursion over the n x n Gram matrix.
With K_0 = NTK_0 = X^T X and, for layer l with activation sigma and centring constant
m_l = E[sigma(tau_{l-1} xi)] (the scalar scale of ``ntk.constants.tau_chain``):

    s_i = sqrt(K_{l-1}(i, i)),   rho_ij = K_{l-1}(i, j) / (s_i s_j),
    (u, v) ~ N(0, [[s_i^2, K_ij], [K_ij, s_j^2]]),
    CK_l(i, j)   = E[(sigma(u) - m_l)(sigma(v) - m_l)],
    Sdot_l(i, j) = E[sigma'(u) sigma'(v)],
    NTK_l        = CK_l + Sdot_l o NTK_{l-1}            (o: entrywise product).

Off the diagonal, Mehler's formula with the per-sample normalised Hermite coefficients
c_k(i) = E[sigma(s_i xi) h_k(xi)], h_k = He_k / sqrt(k!) (and c_0 replaced by c_0 - m_l), gives

    CK_ij   = sum_{k>=0} c_k(i) c_k(j) rho_ij^k,
    Sdot_ij = sum_{k>=1} d_k(i) d_k(j) rho_ij^(k-1),   d_k(i) = sqrt(k) c_k(i) / s_i,

the second by Price's theorem (d/dK_ij of the first). By Stein's lemma d_k(i) is the k-1-th
Hermite coefficient of sigma'(s_i .), so sum_k c_k(i)^2 = CK_ii and sum_k d_k(i)^2 = Sdot_ii.
Cauchy-Schwarz then bounds the tails after T terms by rho^(T+1) sqrt(CK_ii CK_jj) and
rho^T sqrt(Sdot_ii Sdot_jj): T_ij = ceil(log(tol) / log |rho_ij|) terms make both series
accurate to ``tol`` relative to the kernel scale. On the diagonal (rho = 1, where the series
converge slowly or not at all) CK_ii and Sdot_ii come from quadrature directly.

Each pair gets its own T_ij. All pairs share the first T_0 terms, summed by Horner's rule
vectorised over a row; the few pairs with T_ij > T_0 add their remaining terms one by one.
T_0 minimises the estimated cost of both (from a sample of the pairs), so data without highly
correlated pairs (Gaussian mixtures) cost what one short series costs, and real images, whose
correlations spread up to 1, pay for their long series only where they need them.

Pairs with |rho_ij| > tol^(1 / MAX_TERMS) (0.942 at tol = 1e-13; near-duplicate or duplicate
samples) would need more than ``MAX_TERMS`` terms. They are computed by 2-D quadrature instead
(``ntk.bivariate.pair_moments``), which is accurate up to |rho| = 1 given delta = 1 - |rho|
without cancellation: at the first layer from the data, delta = ||x_i/|x_i| -+ x_j/|x_j| ||^2 / 2,
and at the next layers from the previous layer's quadrature, which returns the output's delta
as an integral of a small integrand. Computing delta as 1 - |K_ij| / (s_i s_j) instead would
lose all its digits at delta ~ 1e-16 (exact duplicates), and the kernels of activations with
kinks or jumps depend on sqrt(delta).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numba
import numpy as np

from ntk.activations import Activation, activation, parse_activations
from ntk.bivariate import PairMoments, pair_moments
from ntk.constants import tau_chain
from ntk.quadrature import gaussian_rules

__all__ = ["ExactKernels", "exact_kernels", "hermite_coefficients"]

#: Largest number of Hermite terms of a pair; closer pairs go to 2-D quadrature.
MAX_TERMS = 500

# |h_k(xi)| phi(xi) <= 1.09 exp(-xi^2 / 4) / sqrt(2 pi) for every k (Cramer's inequality), so
# cutting the integrals at |xi| = 16 loses below 1e-27 of the activation's size whatever k is.
# Panels of 0.5 with 20 Legendre nodes resolve h_k far beyond k = MAX_TERMS (its wavelength near
# the origin is about 2 pi / sqrt(k)). Unless sigma is piecewise polynomial they shrink like 1 / s
# for large scales s: the oscillations of sin(s xi) and the complex poles of tanh(s xi), at
# distance ~1 / s from the real axis, then set the error.
_HALF_WIDTH = 16.0
_PANEL = 0.5
_ORDER = 20
# Bytes of the per-chunk (rows, nodes) arrays while evaluating the activation: small chunks reuse
# the same heap blocks, where fresh 100 MB temporaries would cost page faults (2x slower).
_CHUNK_BYTES = 16 * 2**20


@dataclass(frozen=True, eq=False)
class ExactKernels:
    """Exact infinite-width kernels of a data set.

    Attributes:
        ck: (n, n) conjugate kernel CK_L of the last layer.
        ntk: (n, n) neural tangent kernel NTK_L, or ``None`` when not requested.
        terms: largest number of Hermite terms T_ij used at each layer (length L).
        close_pairs: pairs (i < j) computed by 2-D quadrature at each layer (length L).
        tau0: input scale that fixed the centring constants m_l.
    """

    ck: np.ndarray
    ntk: np.ndarray | None
    terms: tuple[int, ...]
    close_pairs: tuple[int, ...]
    tau0: float


@dataclass(frozen=True)
class _ClosePairs:
    """Pairs i > j with |rho_ij| = 1 - delta above the series' reach, rho's sign ``sgn``."""

    i: np.ndarray
    j: np.ndarray
    sgn: np.ndarray
    delta: np.ndarray


def exact_kernels(X: np.ndarray, acts: str | Sequence[str | Activation | Callable],
                  tau0: float | None = None, *, ntk: bool = True, tol: float = 1e-13
                  ) -> ExactKernels:
    """Exact infinite-width CK_L (and NTK_L) of the columns of ``X``, at any correlation.

    Implements the recursion of the module docstring: per pair a Mehler series of
    T_ij = ceil(log(tol) / log |rho_ij|) terms, 2-D quadrature for the pairs with |rho_ij| >
    tol^(1 / MAX_TERMS) (near-duplicates and duplicates), quadrature on the diagonal. Cost per
    layer O(n M T_i + n^2 T_0 + sum_ij (T_ij - T_0)+) with M ~ 1300 quadrature nodes per sample,
    plus ~2 ms per close pair (~10 ms for smooth activations). Memory: the two n x n results
    (updated in place from X^T X, layer after layer), O(n max T_i), and chunks of ~16 MB.

    Args:
        X: (p, n) data, one sample per column, finite, n >= 1, p >= 1.
        acts: the L >= 1 layer activations (names, :class:`Activation`, callables, or one
            comma-separated string as in ``parse_activations``). A bare callable's derivative
            is a central difference, which limits its NTK diagonal to ~1e-10 relative.
        tau0: input scale of the centring chain, > 0; default sqrt(mean_i ||x_i||^2).
        ntk: also compute the NTK.
        tol: truncation tolerance of the Hermite series relative to the kernel scale,
            in (0, 1).

    Returns:
        :class:`ExactKernels`.

    Raises:
        ValueError: malformed X or a zero sample, empty ``acts``, bad ``tau0`` or ``tol``, NTK
            requested for an activation with jumps, or a sample with zero variance at some
            layer.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a 2-D array (p, n) with p, n >= 1, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite (it contains NaN or inf)")
    layers = parse_activations(acts)
    if not (0 < tol < 1):
        raise ValueError(f"tol must lie in (0, 1), got {tol}")
    if ntk:
        for act in layers:
            if act.has_jumps:
                raise ValueError(f"NTK undefined: E[sigma'^2] is infinite for {act.name}")
    K = X.T @ X
    if tau0 is None:
        tau0 = math.sqrt(np.trace(K) / K.shape[0])
    tau0 = float(tau0)
    if not (math.isfinite(tau0) and tau0 > 0):
        raise ValueError(f"tau0 must be a positive finite number, got {tau0}")
    consts = tau_chain(layers, tau0)
    cap = tol ** (1.0 / MAX_TERMS)
    # K becomes CK_l and N becomes NTK_l in place, layer after layer.
    N = K.copy() if ntk else np.empty((0, 0))
    close = None
    terms, n_close = [], []
    for layer, (act, const) in enumerate(zip(layers, consts, strict=True), start=1):
        diag = np.diag(K)
        if np.any(diag <= 0):
            i = int(np.argmin(diag))
            where = "has zero norm" if layer == 1 else f"has zero variance after layer {layer - 1}"
            raise ValueError(f"sample {i} {where}; its correlations are undefined")
        s = np.sqrt(diag)
        best, row_close = _survey(K, s, cap)
        close = (_close_pairs_of_data(X, K, s, row_close, cap) if layer == 1
                 else _close_pairs(K, s, row_close, cap, close))
        bulk = _bulk_terms(K, s, tol)
        with np.errstate(divide="ignore"):
            need = np.where(best > 0, np.ceil(math.log(tol) / np.log(best)), 1.0)
        row_terms = np.clip(need, bulk, MAX_TERMS).astype(np.int64)
        coef, ck_diag, sdot_diag = _sample_moments(act, s, const.m0, row_terms, grad=ntk)
        deriv = (np.sqrt(np.arange(1.0, coef.shape[1]))[None, :] * coef[:, 1:] / s[:, None]
                 if ntk else np.empty((0, 0)))
        # The shared first terms with samples along the contiguous axis: c_k(j) as (T_0 + 1, n)
        # and d_k(j) as (T_0, n).
        coef_t = np.ascontiguousarray(coef[:, :bulk + 1].T)
        deriv_t = np.ascontiguousarray(deriv[:, :bulk].T) if ntk else np.empty((0, 0))
        ntk_before = N[close.i, close.j] if ntk else None
        _layer_update(K, N, s, coef_t, deriv_t, coef, deriv, row_terms, ck_diag, sdot_diag,
                      ntk, math.log(tol), cap)
        close = _close_pair_update(K, N, act, const.m0, s, close, ck_diag, ntk_before)
        terms.append(int(row_terms.max()))
        n_close.append(int(close.i.size))
    return ExactKernels(ck=K, ntk=N if ntk else None, terms=tuple(terms),
                        close_pairs=tuple(n_close), tau0=tau0)


def hermite_coefficients(act: str | Activation | Callable, scales: np.ndarray, n_terms: int
                         ) -> np.ndarray:
    """Normalised Hermite coefficients c_k(i) = E[sigma(s_i xi) He_k(xi)] / sqrt(k!).

    So that sigma(s_i xi) = sum_k c_k(i) He_k(xi) / sqrt(k!) in L2(N(0, 1)) and
    E[sigma(s_i xi)^2] = sum_k c_k(i)^2.

    Args:
        act: activation (name, :class:`Activation` or callable).
        scales: (n,) positive scales s_i.
        n_terms: highest degree K >= 0.

    Returns:
        (n, K + 1) array, row i holding c_0(i), ..., c_K(i).
    """
    scales = np.atleast_1d(np.asarray(scales, dtype=float))
    if scales.ndim != 1 or not np.all(np.isfinite(scales) & (scales > 0)):
        raise ValueError("scales must be a 1-D array of positive finite numbers")
    if n_terms < 0:
        raise ValueError(f"n_terms must be >= 0, got {n_terms}")
    row_terms = np.full(scales.size, int(n_terms), dtype=np.int64)
    return _sample_moments(activation(act), scales, 0.0, row_terms, grad=False)[0]


# The bulk Horner step costs about this fraction of a tail term (vectorised over a row against
# one pair at a time), and a pair with a tail costs this many terms' worth more to set up: both
# measured by benchmarks/bench_exact.py.
_BULK_VS_TAIL = 0.25
_TAIL_SETUP = 8.0
# Pairs sampled to choose T_0.
_SAMPLE_PAIRS = 1 << 14


def _bulk_terms(K: np.ndarray, s: np.ndarray, tol: float) -> int:
    """T_0 minimising the estimated cost n^2 T_0 b + sum_ij [(T_ij - T_0) + setup]_(T_ij > T_0),
    the T_ij taken from a deterministic sample of the pairs below the diagonal."""
    n = K.shape[0]
    if n < 2:
        return 1
    flat = np.linspace(0, n * n - 1, min(n * n, 4 * _SAMPLE_PAIRS)).astype(np.int64)
    i, j = flat // n, flat % n
    keep = i > j
    i, j = i[keep], j[keep]
    if i.size == 0:
        i, j = np.array([1]), np.array([0])
    rho = np.abs(K[i, j]) / (s[i] * s[j])
    rho = rho[rho <= tol ** (1.0 / MAX_TERMS)]
    with np.errstate(divide="ignore"):
        need = np.ceil(math.log(tol) / np.log(rho[rho > 0])) if rho.size else np.ones(1)
    need = np.sort(need)
    candidates = np.unique(np.clip(need, 1, MAX_TERMS)).astype(int)
    if candidates.size == 0:
        return 1
    # sum over pairs with T_ij > T_0 of (T_ij - T_0 + setup), for each candidate T_0.
    above = need.size - np.searchsorted(need, candidates, side="right")
    suffix = np.concatenate([np.cumsum(need[::-1])[::-1], [0.0]])
    tail_sum = suffix[need.size - above]
    cost = (_BULK_VS_TAIL * candidates * rho.size
            + tail_sum - (candidates - _TAIL_SETUP) * above)
    return int(max(1, candidates[int(np.argmin(cost))]))


def _close_pairs_of_data(X: np.ndarray, K: np.ndarray, s: np.ndarray, row_close: np.ndarray,
                         cap: float) -> _ClosePairs:
    """Close pairs of the input, delta = ||x_i/|x_i| - sgn x_j/|x_j| ||^2 / 2 from X."""
    i, j = _gather_close(K, s, row_close, cap)
    sgn = np.where(K[i, j] >= 0, 1.0, -1.0)
    unit = X / np.linalg.norm(X, axis=0)
    delta = np.empty(i.size)
    for start in range(0, i.size, 4096):
        block = slice(start, start + 4096)
        diff = unit[:, i[block]] - sgn[block] * unit[:, j[block]]
        delta[block] = 0.5 * np.einsum("ij,ij->j", diff, diff)
    return _ClosePairs(i=i, j=j, sgn=sgn, delta=np.minimum(delta, 1.0))


def _close_pairs(K: np.ndarray, s: np.ndarray, row_close: np.ndarray, cap: float,
                 previous: _ClosePairs) -> _ClosePairs:
    """Close pairs of a hidden layer: delta from the previous layer's quadrature where the pair
    was close there, else 1 - |K_ij| / (s_i s_j) (then at least 1 - cap, no digits lost)."""
    i, j = _gather_close(K, s, row_close, cap)
    rho = K[i, j] / (s[i] * s[j])
    sgn = np.where(rho >= 0, 1.0, -1.0)
    delta = 1.0 - np.abs(rho)
    n = K.shape[0]
    key = i * n + j
    old_key = previous.i * n + previous.j
    pos = np.searchsorted(old_key, key)
    pos = np.minimum(pos, max(0, old_key.size - 1))
    known = (old_key.size > 0) & (old_key[pos] == key) if old_key.size else np.zeros(0, bool)
    if old_key.size:
        delta[known] = previous.delta[pos[known]]
        sgn[known] = previous.sgn[pos[known]]
    return _ClosePairs(i=i, j=j, sgn=sgn, delta=np.clip(delta, 0.0, 1.0))


def _gather_close(K, s, row_close, cap) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i > j, of the pairs with |rho_ij| > cap, sorted by i * n + j."""
    rows = np.flatnonzero(row_close)
    if rows.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i, j = _close_in_rows(K, s, rows, row_close[rows], cap)
    return i, j


def _close_pair_update(K, N, act, m, s, close: _ClosePairs, ck_diag, ntk_before
                       ) -> _ClosePairs:
    """Overwrite the close pairs' entries by 2-D quadrature; their output delta for the next
    layer. Pairs with the same (s_i, s_j, sgn, delta), such as duplicates, are computed once."""
    with_ntk = ntk_before is not None
    delta_next = np.empty(close.i.size)
    sgn_next = np.empty(close.i.size)
    done: dict[tuple[float, float, float, float], PairMoments] = {}
    for k, (i, j) in enumerate(zip(close.i, close.j, strict=True)):
        key = (s[i], s[j], close.sgn[k], close.delta[k])
        if key not in done:
            done[key] = pair_moments(act, m, s[i], s[j], close.sgn[k], close.delta[k],
                                     grad=with_ntk, second_moments=(ck_diag[i], ck_diag[j]))
        pm = done[key]
        K[i, j] = K[j, i] = pm.ck
        if with_ntk:
            N[i, j] = N[j, i] = pm.ck + pm.sdot * ntk_before[k]
        delta_next[k], sgn_next[k] = pm.delta, pm.sgn
    return _ClosePairs(i=close.i, j=close.j, sgn=sgn_next, delta=delta_next)


def _sample_moments(act: Activation, s: np.ndarray, m: float, row_terms: np.ndarray, *,
                    grad: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample quadrature: Hermite coefficients of sigma(s_i .) - m and the diagonal moments.

    Returns:
        coef (n, max T_i + 1) with c_k(i) of sigma(s_i xi) - m for k <= T_i (zeros beyond);
        ck_diag (n,) E[(sigma(s_i xi) - m)^2]; sdot_diag (n,) E[sigma'(s_i xi)^2] (zeros
        unless ``grad``).
    """
    n = s.shape[0]
    breaks = np.asarray(act.breakpoints, dtype=float)
    panel = _PANEL if act.pieces is not None else _PANEL / max(1.0, float(s.max()))
    n_nodes = (math.ceil(2 * _HALF_WIDTH / panel) + breaks.size) * _ORDER
    rows = max(1, _CHUNK_BYTES // (5 * 8 * n_nodes))
    coef = np.zeros((n, int(row_terms.max()) + 1))
    ck_diag = np.empty(n)
    sdot_diag = np.zeros(n)
    for start in range(0, n, rows):
        chunk = slice(start, start + rows)
        scale = s[chunk, None]
        # The kinks and jumps of sigma(s_i xi) sit at b / s_i: one rule per sample.
        nodes, w = gaussian_rules(breaks[None, :] / scale, half_width=_HALF_WIDTH, panel=panel,
                                  order=_ORDER)
        f = act.fn(scale * nodes) - m
        _hermite_project(nodes, w * f, row_terms[chunk], coef[chunk])
        ck_diag[chunk] = np.einsum("ij,ij->i", w, f * f)
        if grad:
            g = act.grad(scale * nodes)
            sdot_diag[chunk] = np.einsum("ij,ij->i", w, g * g)
    return coef, ck_diag, sdot_diag


# Reassociation lets LLVM vectorise the sums over nodes; their order does not matter here.
@numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def _hermite_project(nodes, wf, row_terms, out):
    """out[i, k] = sum_q wf[i, q] h_k(nodes[i, q]), k = 0..row_terms[i] (the rest untouched).

    h_k = He_k / sqrt(k!) by the recurrence h_{k+1} = (x h_k - sqrt(k) h_{k-1}) / sqrt(k + 1),
    which stays O(exp(x^2 / 4)) where the explicit polynomials would overflow or cancel.
    """
    rows, n_nodes = nodes.shape
    for i in numba.prange(rows):
        n_terms = row_terms[i]
        h_prev = np.ones(n_nodes)
        h = nodes[i].copy()
        out[i, 0] = np.sum(wf[i])
        if n_terms >= 1:
            out[i, 1] = np.sum(wf[i] * h)
        for k in range(1, n_terms):
            a = math.sqrt(k)
            b = 1.0 / math.sqrt(k + 1)
            acc = 0.0
            for q in range(n_nodes):
                h_next = (nodes[i, q] * h[q] - a * h_prev[q]) * b
                h_prev[q] = h[q]
                h[q] = h_next
                acc += wf[i, q] * h_next
            out[i, k + 1] = acc


@numba.njit(parallel=True, cache=True)
def _survey(K, s, cap):
    """Per sample i: max |rho_ij| over j != i with |rho_ij| <= cap, and the number of j < i
    with |rho_ij| > cap."""
    n = K.shape[0]
    best = np.zeros(n)
    n_close = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        for j in range(n):
            if j == i:
                continue
            r = abs(K[i, j]) / (s[i] * s[j])
            if r > cap:
                if j < i:
                    n_close[i] += 1
            elif r > best[i]:
                best[i] = r
    return best, n_close


@numba.njit(cache=True)
def _close_in_rows(K, s, rows, counts, cap):
    """(i, j) of the pairs j < i with |rho_ij| > cap in the given rows, row by row."""
    total = counts.sum()
    out_i = np.empty(total, dtype=np.int64)
    out_j = np.empty(total, dtype=np.int64)
    k = 0
    for i in rows:
        for j in range(i):
            if abs(K[i, j]) / (s[i] * s[j]) > cap:
                out_i[k] = i
                out_j[k] = j
                k += 1
    return out_i, out_j


@numba.njit(parallel=True, cache=True)
def _layer_update(K, N, s, coef_t, deriv_t, coef, deriv, row_terms, ck_diag, sdot_diag,
                  with_ntk, log_tol, cap):
    """One layer in place: K <- CK_l, and N <- NTK_l when ``with_ntk``.

    coef_t (T_0 + 1, n) and deriv_t (T_0, n) hold the shared terms c_k(j), d_k(j) with samples
    contiguous, so their Horner steps run vectorised over j; coef (n, T + 1) and deriv (n, T)
    hold all terms per sample for the tails (deriv, deriv_t and N are not read unless
    ``with_ntk``). Pairs with |rho| > cap get the bulk value only; the caller overwrites them.
    Row i reads only K[i, :i + 1] and N[i, :i + 1] and writes them and their mirrors
    K[:i, i], N[:i, i], which no other row reads: the in-place update is race-free.
    """
    n = K.shape[0]
    # Row i costs O(i): pairing row t with row n - 1 - t balances the threads.
    for t in numba.prange((n + 1) // 2):
        _layer_row(t, K, N, s, coef_t, deriv_t, coef, deriv, row_terms, ck_diag, sdot_diag,
                   with_ntk, log_tol, cap)
        if n - 1 - t != t:
            _layer_row(n - 1 - t, K, N, s, coef_t, deriv_t, coef, deriv, row_terms, ck_diag,
                       sdot_diag, with_ntk, log_tol, cap)


@numba.njit(cache=True)
def _layer_row(i, K, N, s, coef_t, deriv_t, coef, deriv, row_terms, ck_diag, sdot_diag,
               with_ntk, log_tol, cap):
    """Row i of :func:`_layer_update`: entries (i, j <= i) and their mirrors."""
    bulk = coef_t.shape[0] - 1
    rho = np.empty(i)
    for j in range(i):
        rho[j] = K[i, j] / (s[i] * s[j])
    # Horner in rho for both series at once: after the k = T_0..1 steps acc_c holds
    # sum_{k=1}^{T_0} c_k(i) c_k(j) rho^(k-1) and acc_d the same sum of d_k(i) d_k(j).
    acc_c = np.zeros(i)
    acc_d = np.zeros(i)
    for k in range(bulk, 0, -1):
        ci = coef_t[k, i]
        for j in range(i):
            acc_c[j] = acc_c[j] * rho[j] + ci * coef_t[k, j]
        if with_ntk:
            di = deriv_t[k - 1, i]
            for j in range(i):
                acc_d[j] = acc_d[j] * rho[j] + di * deriv_t[k - 1, j]
    # Tails: the terms k = T_0 + 1..T_ij of the pairs that need them, rho^T_0 times
    # sum_k c_k(i) c_k(j) rho^(k - 1 - T_0) by Horner.
    reach = math.exp(log_tol / bulk)
    for j in range(i):
        r = abs(rho[j])
        if r <= reach or r > cap:
            continue
        top = min(math.ceil(log_tol / math.log(r)), row_terms[i], row_terms[j])
        tail_c = 0.0
        tail_d = 0.0
        for k in range(top, bulk, -1):
            tail_c = tail_c * rho[j] + coef[i, k] * coef[j, k]
            if with_ntk:
                tail_d = tail_d * rho[j] + deriv[i, k - 1] * deriv[j, k - 1]
        power = rho[j] ** bulk
        acc_c[j] += tail_c * power
        acc_d[j] += tail_d * power
    c0 = coef_t[0, i]
    for j in range(i):
        ck = acc_c[j] * rho[j] + c0 * coef_t[0, j]
        K[i, j] = ck
        K[j, i] = ck
        if with_ntk:
            nt = ck + acc_d[j] * N[i, j]
            N[i, j] = nt
            N[j, i] = nt
    K[i, i] = ck_diag[i]
    if with_ntk:
        N[i, i] = ck_diag[i] + sdot_diag[i] * N[i, i]
