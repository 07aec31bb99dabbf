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
rho^T sqrt(Sdot_ii Sdot_jj): T = ceil(log(tol) / log(max_{i != j} |rho_ij|)) terms make both
series accurate to ``tol`` relative to the kernel scale. On the diagonal (rho = 1, where the
series converge slowly or not at all) CK_ii and Sdot_ii come from quadrature directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numba
import numpy as np

from ntk.activations import Activation, activation, parse_activations
from ntk.constants import tau_chain
from ntk.quadrature import gaussian_rules

__all__ = ["ExactKernels", "exact_kernels", "hermite_coefficients"]

#: Largest number of Hermite terms; beyond it the correlation is too close to 1.
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
        terms: number of Hermite terms T used at each layer (length L).
        tau0: input scale that fixed the centring constants m_l.
    """

    ck: np.ndarray
    ntk: np.ndarray | None
    terms: tuple[int, ...]
    tau0: float


def exact_kernels(X: np.ndarray, acts: str | Sequence[str | Activation | Callable],
                  tau0: float | None = None, *, ntk: bool = True, tol: float = 1e-13
                  ) -> ExactKernels:
    """Exact infinite-width CK_L (and NTK_L) of the columns of ``X``.

    Implements the recursion of the module docstring: Mehler series off the diagonal, truncated
    after T_l = ceil(log(tol) / log(rho_max,l)) terms at layer l, quadrature on the diagonal.
    Cost per layer O(n M T + n^2 T) with M ~ 1300 quadrature nodes per sample. Memory: the two
    n x n results (updated in place from X^T X, layer after layer), O(n T), and quadrature
    chunks of ~16 MB.

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
            requested for an activation with jumps, a sample with zero variance at some layer,
            or a correlation so close to 1 that the series needs more than ``MAX_TERMS`` terms.
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
    # K becomes CK_l and N becomes NTK_l in place, layer after layer.
    N = K.copy() if ntk else np.empty((0, 0))
    terms = []
    for layer, (act, const) in enumerate(zip(layers, consts, strict=True), start=1):
        diag = np.diag(K)
        if np.any(diag <= 0):
            i = int(np.argmin(diag))
            where = "has zero norm" if layer == 1 else f"has zero variance after layer {layer - 1}"
            raise ValueError(f"sample {i} {where}; its correlations are undefined")
        s = np.sqrt(diag)
        n_terms = _n_terms(K, s, tol, layer)
        coef, ck_diag, sdot_diag = _sample_moments(act, s, const.m0, n_terms, grad=ntk)
        # Samples along the contiguous axis: c_k(j) as (T + 1, n), d_k(j) = sqrt(k) c_k(j) / s_j
        # as (T, n).
        coef_t = np.ascontiguousarray(coef.T)
        deriv_t = (np.sqrt(np.arange(1.0, n_terms + 1))[:, None] * coef_t[1:] / s
                   if ntk else np.empty((0, s.size)))
        _layer_update(K, N, s, coef_t, deriv_t, ck_diag, sdot_diag, ntk)
        terms.append(n_terms)
    return ExactKernels(ck=K, ntk=N if ntk else None, terms=tuple(terms), tau0=tau0)


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
    return _sample_moments(activation(act), scales, 0.0, int(n_terms), grad=False)[0]


def _n_terms(K: np.ndarray, s: np.ndarray, tol: float, layer: int) -> int:
    """Terms T with rho_max^T <= tol (the tail bound of the module docstring)."""
    row_max, row_arg = _row_max_correlation(K, s)
    i = int(np.argmax(row_max))
    rho_max = float(row_max[i])
    if rho_max == 0.0:
        return 1
    n_terms = math.inf if rho_max >= 1.0 else math.ceil(math.log(tol) / math.log(rho_max))
    if n_terms > MAX_TERMS:
        raise ValueError(
            f"layer {layer}: the correlation |rho| = {rho_max:.9f} of samples {int(row_arg[i])} "
            f"and {i} is too high for the Hermite expansion: tol={tol:g} needs "
            f"{n_terms} > {MAX_TERMS} terms (near-duplicate samples? remove them or raise tol)")
    return max(1, n_terms)


def _sample_moments(act: Activation, s: np.ndarray, m: float, n_terms: int, *, grad: bool
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample quadrature: Hermite coefficients of sigma(s_i .) - m and the diagonal moments.

    Returns:
        coef (n, T + 1) with c_k(i) of sigma(s_i xi) - m; ck_diag (n,) E[(sigma(s_i xi) - m)^2];
        sdot_diag (n,) E[sigma'(s_i xi)^2] (zeros unless ``grad``).
    """
    n = s.shape[0]
    breaks = np.asarray(act.breakpoints, dtype=float)
    panel = _PANEL if act.pieces is not None else _PANEL / max(1.0, float(s.max()))
    n_nodes = (math.ceil(2 * _HALF_WIDTH / panel) + breaks.size) * _ORDER
    rows = max(1, _CHUNK_BYTES // (5 * 8 * n_nodes))
    coef = np.empty((n, n_terms + 1))
    ck_diag = np.empty(n)
    sdot_diag = np.zeros(n)
    for start in range(0, n, rows):
        chunk = slice(start, start + rows)
        scale = s[chunk, None]
        # The kinks and jumps of sigma(s_i xi) sit at b / s_i: one rule per sample.
        nodes, w = gaussian_rules(breaks[None, :] / scale, half_width=_HALF_WIDTH, panel=panel,
                                  order=_ORDER)
        f = act.fn(scale * nodes) - m
        coef[chunk] = _hermite_project(nodes, w * f, n_terms)
        ck_diag[chunk] = np.einsum("ij,ij->i", w, f * f)
        if grad:
            g = act.grad(scale * nodes)
            sdot_diag[chunk] = np.einsum("ij,ij->i", w, g * g)
    return coef, ck_diag, sdot_diag


# Reassociation lets LLVM vectorise the sums over nodes; their order does not matter here.
@numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def _hermite_project(nodes, wf, n_terms):
    """out[i, k] = sum_q wf[i, q] h_k(nodes[i, q]), k = 0..n_terms.

    h_k = He_k / sqrt(k!) by the recurrence h_{k+1} = (x h_k - sqrt(k) h_{k-1}) / sqrt(k + 1),
    which stays O(exp(x^2 / 4)) where the explicit polynomials would overflow or cancel.
    """
    rows, n_nodes = nodes.shape
    out = np.empty((rows, n_terms + 1))
    for i in numba.prange(rows):
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
    return out


@numba.njit(parallel=True, cache=True)
def _row_max_correlation(K, s):
    """Per row i: max_{j < i} |K_ij| / (s_i s_j) and the j attaining it."""
    n = K.shape[0]
    best = np.zeros(n)
    arg = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        for j in range(i):
            r = abs(K[i, j]) / (s[i] * s[j])
            if r > best[i]:
                best[i] = r
                arg[i] = j
    return best, arg


@numba.njit(parallel=True, cache=True)
def _layer_update(K, N, s, coef_t, deriv_t, ck_diag, sdot_diag, with_ntk):
    """One layer in place: K <- CK_l, and N <- NTK_l when ``with_ntk``.

    coef_t (T + 1, n) and deriv_t (T, n) hold c_k(j) and d_k(j) with samples contiguous, so the
    Horner steps run vectorised over j (deriv_t and N are not read unless ``with_ntk``).
    Row i reads only K[i, :i + 1] and N[i, :i + 1] and writes them and their mirrors
    K[:i, i], N[:i, i], which no other row reads: the in-place update is race-free.
    """
    n = K.shape[0]
    # Row i costs O(i): pairing row t with row n - 1 - t balances the threads.
    for t in numba.prange((n + 1) // 2):
        _layer_row(t, K, N, s, coef_t, deriv_t, ck_diag, sdot_diag, with_ntk)
        if n - 1 - t != t:
            _layer_row(n - 1 - t, K, N, s, coef_t, deriv_t, ck_diag, sdot_diag, with_ntk)


@numba.njit(cache=True)
def _layer_row(i, K, N, s, coef_t, deriv_t, ck_diag, sdot_diag, with_ntk):
    """Row i of :func:`_layer_update`: entries (i, j <= i) and their mirrors."""
    n_terms = coef_t.shape[0] - 1
    rho = np.empty(i)
    for j in range(i):
        rho[j] = K[i, j] / (s[i] * s[j])
    # Horner in rho for both series at once: after the k = T..1 steps acc_c holds
    # sum_{k>=1} c_k(i) c_k(j) rho^(k-1) and acc_d holds Sdot_ij.
    acc_c = np.zeros(i)
    acc_d = np.zeros(i)
    for k in range(n_terms, 0, -1):
        ci = coef_t[k, i]
        for j in range(i):
            acc_c[j] = acc_c[j] * rho[j] + ci * coef_t[k, j]
        if with_ntk:
            di = deriv_t[k - 1, i]
            for j in range(i):
                acc_d[j] = acc_d[j] * rho[j] + di * deriv_t[k - 1, j]
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
