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
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from ntk.activations import Activation, activation, parse_activations
from ntk.bivariate import PairMoments, pair_moments
from ntk.constants import tau_chain
from ntk.quadrature import gaussian_rules
from ntklc.errors import InputError

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
# Bytes of each (rows, nodes) array when all samples share one rule (_shared_rule_moments).
_SHARED_CHUNK_BYTES = 32 * 2**20


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
class ClosePairs:
    """Pairs (i, j) with |rho_ij| = 1 - delta above the series' reach, rho's sign ``sgn``;
    i and j index the rows and the columns of a kernel (i > j for a whole kernel)."""

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
    layer O(n M T_i + n^2 T_0 + sum_ij (T_ij - T_0)+) with M ~ 1300 quadrature nodes per sample
    (O(n T_i) instead of O(n M T_i) for piecewise polynomials cut at 0 only, such as relu),
    plus ~2 ms per close pair (~10 ms for smooth activations). Memory: the two n x n results
    (updated in place from X^T X, layer after layer, on their lower triangles, mirrored once at
    the end), O(n max T_i), and chunks of ~16-32 MB.

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
        InputError: malformed X or a zero sample, empty ``acts``, bad ``tau0`` or ``tol``, NTK
            requested for an activation with jumps, or a sample with zero variance at some
            layer.
    """
    X, layers = checked_inputs(X, acts, tol, ntk)
    K = _lower_gram(X)
    tau0 = checked_tau0(math.sqrt(np.trace(K) / K.shape[0]) if tau0 is None else tau0)
    consts = tau_chain(layers, tau0)
    cap = tol ** (1.0 / MAX_TERMS)
    # K becomes CK_l and N becomes NTK_l in place, layer after layer. The layers read and write
    # the lower triangles only; the upper ones are filled once at the end. NTK_0 = K_0 is read
    # from K by the first layer, so N starts empty rather than as a copy.
    N = np.empty_like(K) if ntk else np.empty((0, 0))
    close = None
    terms, n_close = [], []
    for layer, (act, const) in enumerate(zip(layers, consts, strict=True), start=1):
        s = checked_scales(np.diag(K), layer)
        best, row_close = _survey(K, s, cap)
        i, j = _gather_close(K, s, row_close, cap)
        rho = K[i, j] / (s[i] * s[j])
        if layer == 1:
            close = data_close_pairs(X, X, i, j, rho)
        else:
            close = hidden_close_pairs(i, j, rho, K.shape[0], close)
        grid = sample_grid(K.shape[0])
        bulk = bulk_terms(grid_correlations(K[np.ix_(grid, grid)], s, grid), tol)
        with np.errstate(divide="ignore"):
            need = np.where(best > 0, np.ceil(math.log(tol) / np.log(best)), 1.0)
        row_terms = np.clip(need, bulk, MAX_TERMS).astype(np.int64)
        lt = layer_terms(act, s, const.m0, row_terms, bulk, ntk=ntk)
        # A flag selects K as NTK_0 inside the compiled loop: passing K a second time in place
        # of N gave wrong entries, as the compiled loop took its two arrays not to overlap.
        ntk_before = (K if layer == 1 else N)[close.i, close.j] if ntk else None
        _layer_update(K, N, layer == 1, s, lt.coef_t, lt.deriv_t, lt.coef, lt.deriv, row_terms,
                      lt.ck_diag, lt.sdot_diag, ntk, math.log(tol), cap)
        ck, ntk_values, close = quadrature_close_pairs(act, const.m0, s, s, lt.ck_diag,
                                                       lt.ck_diag, close, ntk_before)
        K[close.i, close.j] = ck
        if ntk:
            N[close.i, close.j] = ntk_values
        terms.append(int(row_terms.max()))
        n_close.append(int(close.i.size))
    mirror_lower(K)
    if ntk:
        mirror_lower(N)
    return ExactKernels(ck=K, ntk=N if ntk else None, terms=tuple(terms),
                        close_pairs=tuple(n_close), tau0=tau0)


def checked_inputs(X, acts, tol: float, ntk: bool) -> tuple[np.ndarray, list[Activation]]:
    """X as a float array and the parsed activations, or the ValueError of
    :func:`exact_kernels`."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise InputError(f"X must be a 2-D array (p, n) with p, n >= 1, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise InputError("X must be finite (it contains NaN or inf)")
    layers = parse_activations(acts)
    if not (0 < tol < 1):
        raise InputError(f"tol must lie in (0, 1), got {tol}")
    if ntk:
        for act in layers:
            if act.has_jumps:
                raise InputError(f"NTK undefined: E[sigma'^2] is infinite for {act.name}")
    return X, layers


def checked_tau0(tau0) -> float:
    tau0 = float(tau0)
    if not (math.isfinite(tau0) and tau0 > 0):
        raise InputError(f"tau0 must be a positive finite number, got {tau0}")
    return tau0


def checked_scales(diag: np.ndarray, layer: int) -> np.ndarray:
    """s_i = sqrt(K_{l-1}(i, i)) at layer ``layer`` (from 1), or a ValueError naming the first
    sample without variance."""
    if np.any(diag <= 0):
        i = int(np.argmin(diag))
        where = "has zero norm" if layer == 1 else f"has zero variance after layer {layer - 1}"
        raise InputError(f"sample {i} {where}; its correlations are undefined")
    return np.sqrt(diag)


# Rows of X^T X per block of _lower_gram: one dsyrk of a whole n = 25600, p = 12800 Gram
# crashed inside OpenBLAS 0.3.30 (segmentation fault); blocks of this size stay far below that.
_GRAM_BLOCK = 4096


def _lower_gram(X: np.ndarray) -> np.ndarray:
    """The lower triangle of X^T X (n, n), C-ordered; the upper triangle holds the diagonal
    blocks' and zeros, and nothing reads it before the final mirror.

    Half the flops of a product: each block of rows is a symmetric rank-p update (NumPy's
    B^T B is a syrk) on the diagonal and a product with the columns before it. The rows are cut in
    one band per BLAS thread, balanced by the triangle's area (band k ends at row
    n sqrt(k / threads)), run by :func:`blas_in_threads`.
    """
    n = X.shape[1]
    threads = _blas_threads()
    edges = np.unique(np.round(n * np.sqrt(np.arange(threads + 1) / threads)).astype(int))
    K = np.zeros((n, n))

    def band(start: int, stop: int) -> None:
        for b0 in range(start, stop, _GRAM_BLOCK):
            b1 = min(b0 + _GRAM_BLOCK, stop)
            block = X[:, b0:b1]
            np.matmul(block.T, block, out=K[b0:b1, b0:b1])
            if b0:
                np.matmul(block.T, X[:, :b0], out=K[b0:b1, :b0])

    blas_in_threads([lambda a=a, b=b: band(a, b) for a, b in pairwise(edges)])
    return K


def _blas_threads() -> int:
    return max([c.num_threads for c in ThreadpoolController().lib_controllers] or [1])


def cross_products(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A^T B ((n_a, n_b), C-ordered) of A (p, n_a) and B (p, n_b), as
    :func:`blas_in_threads` runs it: one band of rows per BLAS thread."""
    out = np.empty((A.shape[1], B.shape[1]))
    edges = np.linspace(0, A.shape[1], _blas_threads() + 1).round().astype(int)
    blas_in_threads([lambda a=a, b=b: np.matmul(A[:, a:b].T, B, out=out[a:b])
                     for a, b in pairwise(edges) if b > a])
    return out


def blas_in_threads(tasks: Sequence[Callable[[], object]]) -> None:
    """Run BLAS-heavy ``tasks`` (NumPy products, which release the GIL) each on a Python
    thread of its own, with BLAS itself single-threaded, when called from the main thread.

    As fast as one multithreaded call when there is a task per BLAS thread, and it leaves no
    OpenBLAS worker spinning: after a multithreaded call they spin for ~0.1 s on the cores
    that the compiled layers use next, unless OPENBLAS_THREAD_TIMEOUT was set before NumPy
    loaded, which a library cannot do for a script that imported NumPy first
    (``benchmarks/bench_import.py``).
    """
    if len(tasks) == 1 or threading.current_thread() is not threading.main_thread():
        # Off the main thread (a dask worker's task, a user's thread pool) the tasks run in
        # turn with BLAS as it is: threads started from a dask worker's task thread were seen
        # to hang there at start-up.
        for task in tasks:
            task()
        return
    with ThreadpoolController().limit(limits=1), ThreadPoolExecutor(len(tasks)) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()


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
        raise InputError("scales must be a 1-D array of positive finite numbers")
    if n_terms < 0:
        raise InputError(f"n_terms must be >= 0, got {n_terms}")
    row_terms = np.full(scales.size, int(n_terms), dtype=np.int64)
    return _sample_moments(activation(act), scales, 0.0, row_terms, grad=False)[0]


# The bulk Horner step costs about this fraction of a tail term (vectorised over a row against
# one pair at a time), and a pair with a tail costs this many terms' worth more to set up: both
# measured by benchmarks/bench_exact.py.
_BULK_VS_TAIL = 0.25
_TAIL_SETUP = 8.0
# Samples on each side of the grid of pairs sampled to choose T_0 (about 2^15 pairs).
_GRID = 256


def sample_grid(n: int) -> np.ndarray:
    """The samples whose pairs (i > j) choose T_0: up to ``_GRID`` evenly spaced indices.

    A grid rather than scattered pairs so that a tiled computation gets the same sample as
    one tile (``ntk.tiles``)."""
    return np.unique(np.linspace(0, n - 1, min(n, _GRID)).round().astype(np.int64))


def grid_correlations(K_grid: np.ndarray, s: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """|rho_ij| of the pairs i > j of the grid, from K_grid = K[grid][:, grid] (its lower
    triangle is enough) and the scales s of all samples."""
    rho = np.abs(K_grid) / (s[grid, None] * s[None, grid])
    return rho[grid[:, None] > grid[None, :]]


def bulk_terms(rho: np.ndarray, tol: float) -> int:
    """T_0 minimising the estimated cost n^2 T_0 b + sum_ij [(T_ij - T_0) + setup]_(T_ij > T_0),
    the T_ij taken from the sampled correlations |rho| (any shape) of distinct pairs."""
    rho = np.ravel(rho)
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


def data_close_pairs(X_rows: np.ndarray, X_cols: np.ndarray, i: np.ndarray, j: np.ndarray,
                     rho: np.ndarray) -> ClosePairs:
    """Close pairs of the input (rows i of a kernel over the samples X_rows, columns j over
    X_cols; correlations rho): delta = ||x_i/|x_i| - sgn x_j/|x_j| ||^2 / 2 from the data."""
    sgn = np.where(rho >= 0, 1.0, -1.0)
    delta = np.empty(i.size)
    for start in range(0, i.size, 4096):
        block = slice(start, start + 4096)
        u = X_rows[:, i[block]] / np.linalg.norm(X_rows[:, i[block]], axis=0)
        v = X_cols[:, j[block]] / np.linalg.norm(X_cols[:, j[block]], axis=0)
        diff = u - sgn[block] * v
        delta[block] = 0.5 * np.einsum("ij,ij->j", diff, diff)
    return ClosePairs(i=i, j=j, sgn=sgn, delta=np.minimum(delta, 1.0))


def hidden_close_pairs(i: np.ndarray, j: np.ndarray, rho: np.ndarray, stride: int,
                       previous: ClosePairs) -> ClosePairs:
    """Close pairs of a hidden layer (i * stride + j increasing): delta from the previous
    layer's quadrature where the pair was close there, else 1 - |rho| (then at least
    1 - cap, no digits lost)."""
    sgn = np.where(rho >= 0, 1.0, -1.0)
    delta = 1.0 - np.abs(rho)
    key = i * stride + j
    old_key = previous.i * stride + previous.j
    if old_key.size:
        pos = np.minimum(np.searchsorted(old_key, key), old_key.size - 1)
        known = old_key[pos] == key
        delta[known] = previous.delta[pos[known]]
        sgn[known] = previous.sgn[pos[known]]
    return ClosePairs(i=i, j=j, sgn=sgn, delta=np.clip(delta, 0.0, 1.0))


def _gather_close(K, s, row_close, cap) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i > j, of the pairs with |rho_ij| > cap, sorted by i * n + j."""
    rows = np.flatnonzero(row_close)
    if rows.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i, j = _close_in_rows(K, s, rows, row_close[rows], cap)
    return i, j


def quadrature_close_pairs(act, m, s_rows, s_cols, ck_rows, ck_cols, close: ClosePairs,
                           ntk_before) -> tuple[np.ndarray, np.ndarray | None, ClosePairs]:
    """The close pairs' CK (and NTK) entries by 2-D quadrature, and their output delta for
    the next layer. Pairs with the same (s_i, s_j, sgn, delta), such as duplicates, are
    computed once.

    Args:
        s_rows, s_cols, ck_rows, ck_cols: scales and E[(sigma - m)^2] of the samples the
            pairs' i (rows) and j (columns) index.
        ntk_before: NTK_{l-1} of the pairs, or ``None`` for the CK alone.
    """
    with_ntk = ntk_before is not None
    ck = np.empty(close.i.size)
    ntk = np.empty(close.i.size) if with_ntk else None
    delta_next = np.empty(close.i.size)
    sgn_next = np.empty(close.i.size)
    done: dict[tuple[float, float, float, float], PairMoments] = {}
    for k, (i, j) in enumerate(zip(close.i, close.j, strict=True)):
        key = (s_rows[i], s_cols[j], close.sgn[k], close.delta[k])
        if key not in done:
            done[key] = pair_moments(act, m, s_rows[i], s_cols[j], close.sgn[k], close.delta[k],
                                     grad=with_ntk, second_moments=(ck_rows[i], ck_cols[j]))
        pm = done[key]
        ck[k] = pm.ck
        if with_ntk:
            ntk[k] = pm.ck + pm.sdot * ntk_before[k]
        delta_next[k], sgn_next[k] = pm.delta, pm.sgn
    return ck, ntk, ClosePairs(i=close.i, j=close.j, sgn=sgn_next, delta=delta_next)


@dataclass(frozen=True, eq=False)
class LayerTerms:
    """Per-sample Hermite terms of one layer (``n`` samples, T_0 shared terms).

    Attributes:
        coef: (n, T + 1) c_k(i) of sigma(s_i .) - m, zeros beyond T_i.
        deriv: (n, T) d_k(i) = sqrt(k) c_k(i) / s_i, k >= 1 (empty without the NTK).
        coef_t, deriv_t: (T_0 + 1, n) and (T_0, n): the shared terms, samples contiguous.
        ck_diag, sdot_diag: (n,) E[(sigma(s_i xi) - m)^2] and E[sigma'(s_i xi)^2].
    """

    coef: np.ndarray
    deriv: np.ndarray
    coef_t: np.ndarray
    deriv_t: np.ndarray
    ck_diag: np.ndarray
    sdot_diag: np.ndarray


def layer_terms(act: Activation, s: np.ndarray, m: float, row_terms: np.ndarray, bulk: int,
                *, ntk: bool) -> LayerTerms:
    """The :class:`LayerTerms` of samples with scales s, T_i = ``row_terms``, T_0 = ``bulk``."""
    coef, ck_diag, sdot_diag = _sample_moments(act, s, m, row_terms, grad=ntk)
    deriv = (np.sqrt(np.arange(1.0, coef.shape[1]))[None, :] * coef[:, 1:] / s[:, None]
             if ntk else np.empty((0, 0)))
    return LayerTerms(coef=coef, deriv=deriv, coef_t=np.ascontiguousarray(coef[:, :bulk + 1].T),
                      deriv_t=np.ascontiguousarray(deriv[:, :bulk].T) if ntk
                      else np.empty((0, 0)), ck_diag=ck_diag, sdot_diag=sdot_diag)


def _sample_moments(act: Activation, s: np.ndarray, m: float, row_terms: np.ndarray, *,
                    grad: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample quadrature: Hermite coefficients of sigma(s_i .) - m and the diagonal moments.

    The kinks and jumps of sigma(s_i xi) sit at b / s_i for the breakpoints b of sigma, so in
    general each sample has its own rule. When every b is 0 (relu, abs, sign, ...) or there is
    none (smooth activations), all samples share one rule (:func:`_shared_rule_moments`).

    Returns:
        coef (n, max T_i + 1) with c_k(i) of sigma(s_i xi) - m for k <= T_i (zeros beyond);
        ck_diag (n,) E[(sigma(s_i xi) - m)^2]; sdot_diag (n,) E[sigma'(s_i xi)^2] (zeros
        unless ``grad``).
    """
    breaks = np.asarray(act.breakpoints, dtype=float)
    panel = _PANEL if act.pieces is not None else _PANEL / max(1.0, float(s.max()))
    degree = _degree_in_scale(act)
    if degree is not None:
        return _interpolated_moments(act, s, m, row_terms, degree, grad=grad)
    if np.all(breaks == 0):
        return _shared_rule_moments(act, s, m, row_terms, panel, grad=grad)
    n = s.shape[0]
    n_nodes = (math.ceil(2 * _HALF_WIDTH / panel) + breaks.size) * _ORDER
    rows = max(1, _CHUNK_BYTES // (5 * 8 * n_nodes))
    coef = np.zeros((n, int(row_terms.max()) + 1))
    ck_diag = np.empty(n)
    sdot_diag = np.zeros(n)
    for start in range(0, n, rows):
        chunk = slice(start, start + rows)
        scale = s[chunk, None]
        nodes, w = gaussian_rules(breaks[None, :] / scale, half_width=_HALF_WIDTH, panel=panel,
                                  order=_ORDER)
        f = act.fn(scale * nodes) - m
        _hermite_project(nodes, w * f, row_terms[chunk], coef[chunk])
        ck_diag[chunk] = np.einsum("ij,ij->i", w, f * f)
        if grad:
            g = act.grad(scale * nodes)
            sdot_diag[chunk] = np.einsum("ij,ij->i", w, g * g)
    return coef, ck_diag, sdot_diag


def _degree_in_scale(act: Activation) -> int | None:
    """D such that sigma(s xi) is a polynomial of degree D in s at every xi: sigma piecewise
    polynomial of degree D with every piece boundary at 0 (relu, lrelu, abs, sign, quad);
    ``None`` otherwise."""
    if act.pieces is None:
        return None
    # Here, not at module level: the pieces are sympy polynomials, built (with sympy) on first
    # use, so a command that never asks for them does not import sympy.
    import sympy

    if any(b not in (-math.inf, 0.0, math.inf) for p in act.pieces for b in (p.lo, p.hi)):
        return None
    degrees = [sympy.degree(p.poly, next(iter(p.poly.free_symbols))) if p.poly.free_symbols
               else 0 for p in act.pieces]
    return int(max(degrees))


def _interpolated_moments(act: Activation, s: np.ndarray, m: float, row_terms: np.ndarray,
                          degree: int, *, grad: bool
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_sample_moments` when sigma(s xi) is a polynomial of degree D in s at every xi.

    Then so are the quadrature sums: c_k(s) (degree D), E[(sigma(s xi) - m)^2] (2D) and
    E[sigma'(s xi)^2] (2D - 2). They are computed at the 2D + 1 scales t_d = s_max (d + 1) /
    (2D + 1) on the shared rule and interpolated at every s_i in (0, s_max]: O(n T) work
    instead of O(n M T), exact but for rounding relative to the largest sample's moments
    (amplified by at most 2^(2D + 1) - 1, the sum of |Lagrange basis| at s -> 0: 7 for relu).
    """
    n_scales = 2 * degree + 1
    top = float(s.max())
    t = top * np.arange(1, n_scales + 1) / n_scales
    coef_t, ck_t, sdot_t = _shared_rule_moments(act, t, m, np.full(n_scales, row_terms.max()),
                                                _PANEL, grad=grad)
    # Monomial coefficients in s / s_max of every moment, then their values at each s_i by
    # Horner. Not a product: a multithreaded BLAS call here (n x 7 by 7 x T is above OpenBLAS's
    # threading threshold) leaves OpenBLAS's workers spinning for ~0.1 s on the cores that the
    # layer update, next, runs on (benchmarks/bench_import.py).
    power = np.linalg.solve(np.vander(t / top, n_scales, increasing=True),
                            np.column_stack([coef_t, ck_t, sdot_t]))
    x = (s / top)[:, None]
    moments = np.repeat(power[-1][None, :], s.size, axis=0)
    for d in range(n_scales - 2, -1, -1):
        moments *= x
        moments += power[d]
    coef = np.ascontiguousarray(moments[:, :-2])
    coef[np.arange(coef.shape[1])[None, :] > row_terms[:, None]] = 0.0
    # Contiguous like the other paths' moments: the compiled layer update then has one
    # signature, not a second one (of about 3 s compile) for strided views.
    return coef, np.ascontiguousarray(moments[:, -2]), np.ascontiguousarray(moments[:, -1])


def _shared_rule_moments(act: Activation, s: np.ndarray, m: float, row_terms: np.ndarray,
                         panel: float, *, grad: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_sample_moments` when all samples share one rule of M nodes xi_q, weights w_q.

    Then w_q h_k(xi_q) is one (T + 1, M) table for all samples, and one pass over the values
    sigma(s_i xi_q) per sample gives its coefficients and diagonal moments. The chunks are large
    (``_SHARED_CHUNK_BYTES`` per (rows, M) array) because each makes one parallel call, whose
    start waits for every thread: on a busy machine that wait, not the work, dominates small
    chunks.
    """
    n = s.shape[0]
    # The kinks at 0 stay at 0 whatever the scale.
    nodes, w = gaussian_rules(np.asarray(act.breakpoints, dtype=float)[None, :],
                              half_width=_HALF_WIDTH, panel=panel, order=_ORDER)
    top = int(row_terms.max())
    table = _hermite_table(nodes[0], w[0], top)
    rows = max(1, _SHARED_CHUNK_BYTES // (8 * nodes.size))
    coef = np.empty((n, top + 1))
    ck_diag = np.empty(n)
    sdot_diag = np.zeros(n)
    # Rows sorted by T_i: each chunk's table stops at its own largest T_i.
    order = np.argsort(row_terms, kind="stable")
    for start in range(0, n, rows):
        chunk = order[start:start + rows]
        x = s[chunk, None] * nodes
        grads = act.grad(x) if grad else np.empty((0, 0))
        ck_diag[chunk], sdot_diag[chunk], coef[chunk] = _project_shared(
            act.fn(x), grads, m, w[0], table, row_terms[chunk])
    return coef, ck_diag, sdot_diag


def _hermite_table(x: np.ndarray, w: np.ndarray, n_terms: int) -> np.ndarray:
    """(n_terms + 1, M) table of w_q h_k(x_q), k = 0..n_terms, by the recurrence of
    :func:`_hermite_project`."""
    table = np.empty((n_terms + 1, x.size))
    table[0] = 1.0
    if n_terms >= 1:
        table[1] = x
    for k in range(1, n_terms):
        table[k + 1] = (x * table[k] - math.sqrt(k) * table[k - 1]) * (1.0 / math.sqrt(k + 1))
    table *= w
    return table


# Reassociation lets LLVM vectorise the sums over nodes; their order does not matter here.
@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _project_row(r, values, grads, m, w, table, row_terms, squares, grad_squares, out):
    """Row r of :func:`_project_shared`."""
    n_nodes = values.shape[1]
    acc = 0.0
    for q in range(n_nodes):
        f = values[r, q] - m
        acc += w[q] * f * f
    squares[r] = acc
    if grads.shape[0] > 0:
        acc = 0.0
        for q in range(n_nodes):
            acc += w[q] * grads[r, q] * grads[r, q]
        grad_squares[r] = acc
    for k in range(table.shape[0]):
        if k > row_terms[r]:
            out[r, k] = 0.0
            continue
        acc = 0.0
        for q in range(n_nodes):
            acc += (values[r, q] - m) * table[k, q]
        out[r, k] = acc


@numba.njit(parallel=True, cache=True)
def _project_shared(values, grads, m, w, table, row_terms):
    """Per row r of the (rows, M) values v of sigma at one shared rule (weights w), f = v - m:
    sum_q w_q f_rq^2, sum_q w_q g_rq^2 of the (rows, M) ``grads`` g (zeros when g has no rows),
    and the (rows, K + 1) coefficients sum_q f_rq table[k, q] for k <= row_terms[r], zeros
    beyond. ``row_terms`` is sorted; pairing row t with row rows - 1 - t balances the threads."""
    rows = values.shape[0]
    squares = np.empty(rows)
    grad_squares = np.zeros(rows)
    out = np.empty((rows, table.shape[0]))
    # One call site, so one compiled signature of the row.
    for t in numba.prange((rows + 1) // 2):
        for side in range(2 if rows - 1 - t != t else 1):
            r = t + side * (rows - 1 - 2 * t)
            _project_row(r, values, grads, m, w, table, row_terms, squares, grad_squares, out)
    return squares, grad_squares, out


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


# Column maxima of the lower triangle are gathered per block of rows, then reduced: enough
# blocks to balance the threads, few enough that the (blocks, n) partial maxima stay small.
_SURVEY_BLOCKS = 16


@numba.njit(parallel=True, cache=True)
def _survey(K, s, cap):
    """Per sample i: max |rho_ij| over j != i with |rho_ij| <= cap, and the number of j < i
    with |rho_ij| > cap. Reads the lower triangle of K only (rho is symmetric)."""
    n = K.shape[0]
    row_best = np.zeros(n)
    col_best = np.zeros((_SURVEY_BLOCKS, n))
    n_close = np.zeros(n, dtype=np.int64)
    for b in numba.prange(_SURVEY_BLOCKS):
        # Row i costs O(i): block b takes the rows t and n - 1 - t for t = b, b + blocks, ...
        for t in range(b, (n + 1) // 2, _SURVEY_BLOCKS):
            _survey_row(t, K, s, cap, row_best, col_best[b], n_close)
            if n - 1 - t != t:
                _survey_row(n - 1 - t, K, s, cap, row_best, col_best[b], n_close)
    best = row_best
    for b in range(_SURVEY_BLOCKS):
        for j in range(n):
            best[j] = max(best[j], col_best[b, j])
    return best, n_close


# error_model="numpy": no zero-division check (the scales are positive), which would stop LLVM
# from vectorising the loops over j.
@numba.njit(cache=True, error_model="numpy")
def _survey_row(i, K, s, cap, row_best, col_best, n_close):
    """Row i of :func:`_survey`: its pairs j < i, counted in row i and in the columns j."""
    count = 0
    best = row_best[i]
    for j in range(i):
        r = abs(K[i, j]) / (s[i] * s[j])
        if r > cap:
            count += 1
            r = 0.0
        best = max(best, r)
        col_best[j] = max(col_best[j], r)
    row_best[i] = best
    n_close[i] = count


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
def _layer_update(K, N, first, s, coef_t, deriv_t, coef, deriv, row_terms, ck_diag,
                  sdot_diag, with_ntk, log_tol, cap):
    """One layer in place: K <- CK_l, and N <- NTK_l when ``with_ntk``. NTK_{l-1} is read
    from N, or at the ``first`` layer from K (NTK_0 = K_0), each entry before it is
    overwritten.

    coef_t (T_0 + 1, n) and deriv_t (T_0, n) hold the shared terms c_k(j), d_k(j) with samples
    contiguous, so their Horner steps run vectorised over j; coef (n, T + 1) and deriv (n, T)
    hold all terms per sample for the tails (deriv, deriv_t and N are not read unless
    ``with_ntk``). Pairs with |rho| > cap get the bulk value only; the caller overwrites them.
    Only the lower triangles are read and written: row i reads and writes K[i, :i + 1] and
    N[i, :i + 1] alone, so the in-place update is race-free (the upper triangles, written
    column by column, would cost a cache miss per entry; :func:`mirror_lower` fills them once
    at the end).
    """
    n = K.shape[0]
    # Row i costs O(i): pairing row t with row n - 1 - t balances the threads. The row is
    # inlined, so it has one call site (each site would be compiled anew).
    for t in numba.prange((n + 1) // 2):
        for side in range(2 if n - 1 - t != t else 1):
            i = t + side * (n - 1 - 2 * t)
            _series_row(K, N, i, i, first, s, coef_t, deriv_t, coef, deriv, row_terms, s, coef_t,
                        deriv_t, coef, deriv, row_terms, with_ntk, log_tol, cap)
            if with_ntk:
                N[i, i] = ck_diag[i] + sdot_diag[i] * (K[i, i] if first else N[i, i])
            K[i, i] = ck_diag[i]


@numba.njit(parallel=True, cache=True)
def tile_update(K, N, first, diag_col, s_r, ct_r, dt_r, coef_r, deriv_r, terms_r, s_c, ct_c,
                 dt_c, coef_c, deriv_c, terms_c, ck_diag_r, sdot_diag_r, with_ntk, log_tol,
                 cap):
    """:func:`_layer_update` on a rectangular tile: rows a of K (rows, cols) hold the pairs
    (row sample a, column sample b), the per-sample arrays come in a row set (``*_r``) and a
    column set (``*_c``), and ``diag_col[a]`` is the column of the row's own sample, or -1.
    Every entry of the tile is computed (no triangle), the diagonal ones by quadrature."""
    for a in numba.prange(K.shape[0]):
        b = diag_col[a]
        before = 0.0
        if b >= 0 and with_ntk:
            before = K[a, b] if first else N[a, b]
        _series_row(K, N, a, K.shape[1], first, s_r, ct_r, dt_r, coef_r, deriv_r, terms_r, s_c,
                    ct_c, dt_c, coef_c, deriv_c, terms_c, with_ntk, log_tol, cap)
        if b >= 0:
            if with_ntk:
                N[a, b] = ck_diag_r[a] + sdot_diag_r[a] * before
            K[a, b] = ck_diag_r[a]


# Inlined into the parallel loops: called as a function, its Horner loops ran at half speed
# (measured with benchmarks/bench_theory.py).
@numba.njit(cache=True, error_model="numpy", inline="always")
def _series_row(K, N, i, m, first, s_r, ct_r, dt_r, coef_r, deriv_r, terms_r, s_c, ct_c, dt_c,
                coef_c, deriv_c, terms_c, with_ntk, log_tol, cap):
    """The Mehler series of row i in place, entries j < m: K[i, j] goes from K_{l-1} to CK_l,
    N[i, j] from NTK_{l-1} (read from K at the ``first`` layer; N is not read unless
    ``with_ntk``) to NTK_l, for the row's sample (entry i of the row arrays ``*_r``) and the
    column's (entry j of the column arrays ``*_c``): s (scales), ct (T_0 + 1, .) and dt
    (T_0, .) the shared terms, coef (., T + 1) and deriv (., T) all terms, terms the T_i.
    Whole arrays and indices, not row views: the compiled loops then take K and N not to
    overlap and vectorise (views made here ran the layer at 2.4x the time)."""
    bulk = ct_r.shape[0] - 1
    rho = np.empty(m)
    for j in range(m):
        rho[j] = K[i, j] / (s_r[i] * s_c[j])
    # Horner in rho for both series at once: after the k = T_0..1 steps acc_c holds
    # sum_{k=1}^{T_0} c_k(i) c_k(j) rho^(k-1) and acc_d the same sum of d_k(i) d_k(j).
    acc_c = np.zeros(m)
    acc_d = np.zeros(m)
    for k in range(bulk, 0, -1):
        ci = ct_r[k, i]
        if with_ntk:
            di = dt_r[k - 1, i]
            for j in range(m):
                acc_c[j] = acc_c[j] * rho[j] + ci * ct_c[k, j]
                acc_d[j] = acc_d[j] * rho[j] + di * dt_c[k - 1, j]
        else:
            for j in range(m):
                acc_c[j] = acc_c[j] * rho[j] + ci * ct_c[k, j]
    # Tails: the terms k = T_0 + 1..T_ij of the pairs that need them, rho^T_0 times
    # sum_k c_k(i) c_k(j) rho^(k - 1 - T_0) by Horner.
    reach = math.exp(log_tol / bulk)
    for j in range(m):
        r = abs(rho[j])
        if r <= reach or r > cap:
            continue
        top = min(math.ceil(log_tol / math.log(r)), terms_r[i], terms_c[j])
        tail_c = 0.0
        tail_d = 0.0
        for k in range(top, bulk, -1):
            tail_c = tail_c * rho[j] + coef_r[i, k] * coef_c[j, k]
            if with_ntk:
                tail_d = tail_d * rho[j] + deriv_r[i, k - 1] * deriv_c[j, k - 1]
        power = rho[j] ** bulk
        acc_c[j] += tail_c * power
        acc_d[j] += tail_d * power
    c0 = ct_r[0, i]
    if with_ntk:
        for j in range(m):
            ck = acc_c[j] * rho[j] + c0 * ct_c[0, j]
            before = K[i, j] if first else N[i, j]
            K[i, j] = ck
            N[i, j] = ck + acc_d[j] * before
    else:
        for j in range(m):
            K[i, j] = acc_c[j] * rho[j] + c0 * ct_c[0, j]


# Tiles of the mirror copy: a tile's rows are read and its columns written within cache.
_TILE = 64


@numba.njit(parallel=True, cache=True)
def mirror_lower(A):
    """A[j, i] = A[i, j] for i > j, in place: the symmetric matrix of A's lower triangle."""
    n_tiles = (A.shape[0] + _TILE - 1) // _TILE
    # Column tile t costs O(n_tiles - t): pairing t with n_tiles - 1 - t balances the threads.
    # One call site, so one compiled signature of the tile copy.
    for t in numba.prange((n_tiles + 1) // 2):
        for side in range(2 if n_tiles - 1 - t != t else 1):
            _mirror_columns(A, t + side * (n_tiles - 1 - 2 * t))


@numba.njit(cache=True)
def _mirror_columns(A, tile):
    """The mirror copy of the lower triangle's column tile ``tile``, row tile by row tile."""
    n = A.shape[0]
    j0 = tile * _TILE
    j1 = min(n, j0 + _TILE)
    for i0 in range(j0, n, _TILE):
        for i in range(i0, min(n, i0 + _TILE)):
            for j in range(j0, min(j1, i)):
                A[j, i] = A[i, j]
