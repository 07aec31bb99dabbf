"""Empirical CK and NTK of finite random networks, averaged over weight draws (spec section 2).

The network: Sigma_0 = X (p x n); for l = 1..L

    Z_l = W_l Sigma_{l-1},    Sigma_l = (sigma_l(Z_l) - m_l) / sqrt(d_l),

with W_l (d_l x d_{l-1}) i.i.d. from a weight law of mean 0 and variance 1 and the centring
m_l = E[sigma_l(tau_{l-1} xi)] taken along the scalar scale chain of ``ntk.constants.tau_chain``.
Kernels of the readout f(x) = v^T Sigma_L(x), v ~ N(0, I_{d_L}):

    CK_L  = Sigma_L^T Sigma_L
    NTK_L = Sigma_L^T Sigma_L + sum_{m=1..L} (G_m^T G_m) o (Sigma_{m-1}^T Sigma_{m-1})

where G_m = df/dZ_m (d_m x n) comes from closed-form back-propagation,

    G_L     = v o sigma_L'(Z_L) / sqrt(d_L)                      (v broadcast along columns)
    G_{m-1} = (W_m^T G_m) o sigma_{m-1}'(Z_{m-1}) / sqrt(d_{m-1}),

so the NTK costs matrix products only: no per-sample Jacobian, no d x n x n tensor.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg
from scipy.linalg import blas

from ntk.activations import Activation, parse_activations
from ntk.constants import tau_chain
from ntk.progress import progress_bar
from ntk.weights import WeightLaw, parse_weight_law, sample_weights
from ntklc.errors import InputError

__all__ = ["EmpiricalKernels", "empirical_kernels", "mean_over_draws", "network_kernels"]

# Below this size a dense eigensolver is cheap and the Lanczos solver (which needs n > 2) is not
# needed.
_DENSE_NORM_MAX_N = 256


@dataclass(frozen=True)
class EmpiricalKernels:
    """Kernels of finite networks averaged over independent weight draws.

    Attributes:
        ck: (n, n) mean CK over the draws.
        ntk: (n, n) mean NTK over the draws, or ``None`` when not requested.
        draws: number of draws averaged.
        width: hidden width of each layer, (d_1, ..., d_L) (the channels, for a CNN).
        ck_noise: relative operator-norm noise of ``ck``, ||mean_A - mean_B||_2 / (2 ||ck||_2)
            with A, B the even and odd draws (``nan`` when draws < 2).
        ntk_noise: the same for ``ntk`` (``None`` when the NTK was not requested).
    """

    ck: np.ndarray
    ntk: np.ndarray | None
    draws: int
    width: tuple[int, ...]
    ck_noise: float
    ntk_noise: float | None


def network_kernels(X, acts: str | Sequence, weights: str | WeightLaw,
                    rng: np.random.Generator, *, width: int | Sequence[int],
                    tau0: float | None = None, ntk: bool = True,
                    dtype=np.float64) -> tuple[np.ndarray, np.ndarray | None]:
    """CK and NTK of one random network on the columns of ``X``.

    The draw order is fixed: W_1, ..., W_L from ``weights`` (each by
    ``sample_weights(weights, (d_l, d_{l-1}), rng, dtype)``), then, when ``ntk`` is true,
    ``v = rng.standard_normal(d_L, dtype=dtype)``.

    Args:
        X: (p, n) data, one sample per column.
        acts: per-layer activations (names, :class:`Activation` objects or a comma-separated
            string), L >= 1.
        weights: weight law of every W_l (v is always Gaussian).
        rng: the only source of randomness.
        width: d_l of every layer (int) or one entry per layer.
        tau0: input scale of the centring chain; default sqrt(mean_i ||x_i||^2).
        ntk: also compute the NTK.
        dtype: float64 or float32 (the whole computation runs in this precision).

    Returns:
        ``(ck, ntk)``: (n, n) arrays of ``dtype``; ``ntk`` is ``None`` unless requested.

    Raises:
        InputError: bad X, width, tau0 or dtype, empty network, or NTK requested for an
            activation with jumps.
    """
    X, acts, widths, m, dtype = _validate(X, acts, width, tau0, ntk, dtype)
    law = parse_weight_law(weights)
    Sigma = X.astype(dtype, copy=False)
    W, scaled_grads, sigma_grams = [], [], []
    W_next = sample_weights(law, (widths[0], Sigma.shape[0]), rng, dtype)
    for layer, (act, d, m_l) in enumerate(zip(acts, widths, m, strict=True)):
        W.append(W_next)
        if ntk:
            sigma_grams.append(_gram(Sigma))
        Z = W[-1] @ Sigma
        # The next draw, in the documented order, comes right after the product: one thread
        # makes the random numbers while BLAS's idle worker threads still spin (they would slow
        # down the parallel activation kernels below by up to 2x on two cores).
        if layer + 1 < len(acts):
            W_next = sample_weights(law, (widths[layer + 1], d), rng, dtype)
        elif ntk:
            v = rng.standard_normal(d, dtype=dtype)
        inv_sqrt_d = dtype.type(1.0 / math.sqrt(d))
        # Both are evaluated before the in-place updates below, which would corrupt Z if an
        # activation returned its argument. Piecewise activations return float64: the casts
        # keep float32 runs in float32.
        Sigma = np.asarray(act.fn(Z), dtype=dtype)
        if ntk:
            D = np.asarray(act.grad(Z), dtype=dtype)
            # sigma'(Z_l) / sqrt(d_l) is what back-propagation multiplies by at layer l.
            D *= inv_sqrt_d
            scaled_grads.append(D)
        del Z
        Sigma -= dtype.type(m_l)
        Sigma *= inv_sqrt_d
    ck = _gram(Sigma)
    if not ntk:
        return _mirror(ck), None
    G = scaled_grads.pop()
    G *= v[:, None]
    ntk_matrix = None
    for layer in range(len(acts) - 1, -1, -1):
        gram_g = _gram(G)
        # Upper triangles: NTK += (G^T G) o (Sigma^T Sigma), the first term added to CK in the
        # Gram's own buffer.
        if ntk_matrix is None:
            _add_product(gram_g, ck, gram_g, sigma_grams[layer])
            ntk_matrix = gram_g
        else:
            _add_product(ntk_matrix, ntk_matrix, gram_g, sigma_grams[layer])
        if layer > 0:
            G = W[layer].T @ G
            G *= scaled_grads.pop()
    return _mirror(ck), _mirror(ntk_matrix)


def empirical_kernels(X, acts: str | Sequence, *, width: int | Sequence[int] = 1000,
                      draws: int = 10, weights: str | WeightLaw = "gaussian", seed: int = 0,
                      tau0: float | None = None, ntk: bool = True, dtype=np.float64,
                      progress: bool = True) -> EmpiricalKernels:
    """Mean CK (and NTK) of ``draws`` independent random networks.

    The draws are :func:`network_kernels` calls in sequence on one generator,
    ``numpy.random.default_rng(seed)``. Each draw may run in float32; the means accumulate in
    float64.

    Args:
        X: (p, n) data, one sample per column.
        acts: per-layer activations (names, :class:`Activation` objects or a comma-separated
            string), L >= 1.
        width: d_l of every layer (int) or one entry per layer.
        draws: number of independent networks, >= 1.
        weights: weight law of every W_l (v is always Gaussian).
        seed: seed of the random generator.
        tau0: input scale of the centring chain; default sqrt(mean_i ||x_i||^2).
        ntk: also compute the NTK.
        dtype: precision of each draw, float64 or float32.
        progress: show a progress bar over the draws on stderr.

    Returns:
        :class:`EmpiricalKernels` with float64 means and their noise levels.

    Raises:
        InputError: bad X, width, draws, tau0 or dtype, empty network, unknown weight law, or
            NTK requested for an activation with jumps.
    """
    if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
        raise InputError(f"draws must be an integer >= 1, got {draws!r}")
    law = parse_weight_law(weights)
    X, acts, widths, _, dtype = _validate(X, acts, width, tau0, ntk, dtype)
    rng = np.random.default_rng(seed)
    nets = (network_kernels(X, acts, law, rng, width=widths, tau0=tau0, ntk=ntk, dtype=dtype)
            for _ in progress_bar(range(draws), desc="draws", disable=not progress))
    return mean_over_draws(nets, width=widths, ntk=ntk)


def mean_over_draws(kernels: Iterable[tuple[np.ndarray, np.ndarray | None]], *,
                    width: tuple[int, ...], ntk: bool) -> EmpiricalKernels:
    """Means of the (CK, NTK) of independent draws, accumulated in float64, and their
    split-half noise (the even and the odd draws' means; see :class:`EmpiricalKernels`).

    Args:
        kernels: (n, n) CK and NTK (``None`` without the NTK) of each draw, in order.
        width: hidden widths (or channels) of the networks, for the record.
        ntk: whether the draws carry an NTK.
    """
    sums = None
    draws = 0
    for ck, ntk_r in kernels:
        if sums is None:
            sums = {"ck": np.zeros((2, *ck.shape)), "ntk": np.zeros((2, *ck.shape))}
        sums["ck"][draws % 2] += ck
        if ntk:
            sums["ntk"][draws % 2] += ntk_r
        draws += 1
    if sums is None:
        raise InputError("no draws to average")
    ck_mean, ck_noise = _mean_and_noise(sums["ck"], draws)
    if not ntk:
        return EmpiricalKernels(ck=ck_mean, ntk=None, draws=draws, width=width,
                                ck_noise=ck_noise, ntk_noise=None)
    ntk_mean, ntk_noise = _mean_and_noise(sums["ntk"], draws)
    return EmpiricalKernels(ck=ck_mean, ntk=ntk_mean, draws=draws, width=width,
                            ck_noise=ck_noise, ntk_noise=ntk_noise)


def _validate(X, acts, width, tau0, ntk, dtype
              ) -> tuple[np.ndarray, list[Activation], tuple[int, ...], list[float], np.dtype]:
    """Checked inputs: X, activations, widths, centring constants m_l and dtype."""
    X = np.asarray(X)
    if X.ndim != 2 or X.size == 0:
        raise InputError(f"X must be a non-empty 2-D array (p x n), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise InputError(f"X must be real, got dtype {X.dtype}")
    if not np.all(np.isfinite(X)):
        raise InputError("X contains NaN or infinite entries")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype must be float32 or float64, got {dtype}")
    acts = parse_activations(acts)
    if np.ndim(width) == 0:
        widths = (width,) * len(acts)
    else:
        widths = tuple(width)
        if len(widths) != len(acts):
            raise InputError(f"width has {len(widths)} entries for {len(acts)} layers")
    for d in widths:
        if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1:
            raise InputError(f"every width must be an integer >= 1, got {width!r}")
    widths = tuple(int(d) for d in widths)
    if ntk:
        jumpy = [a.name for a in acts if a.has_jumps]
        if jumpy:
            raise InputError(f"NTK undefined for activations with jumps ({', '.join(jumpy)}): "
                             "E[sigma'^2] is infinite; request the CK only (ntk=False)")
    if tau0 is None:
        tau0 = math.sqrt(float(np.mean(np.sum(X.astype(np.float64) ** 2, axis=0))))
    elif not (math.isfinite(tau0) and tau0 > 0):
        raise InputError(f"tau0 must be a positive finite number, got {tau0}")
    m = [c.m0 for c in tau_chain(acts, tau0)]
    return X, acts, widths, m, dtype


def _gram(A: np.ndarray) -> np.ndarray:
    """Upper triangle of A^T A (n x n) for A (d x n) by a symmetric rank-k update.

    Half the flops of a GEMM. The strict lower triangle is zero: sums and entrywise products
    of such matrices stay upper-triangular, so callers mirror once at the end (``_mirror``).
    """
    syrk = blas.get_blas_funcs("syrk", (A,))
    # BLAS is column-major: pick the transpose flag that lets syrk read A without a copy.
    return syrk(1.0, A, trans=1) if A.flags.f_contiguous else syrk(1.0, A.T, trans=0)


def _add_product(out: np.ndarray, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
    """out = A + B o C on the upper triangles of (n, n) arrays, in one pass over half of
    them (NumPy would take two passes over all of them); ``out`` may be ``A`` or ``B``."""
    # The syrk results are Fortran-ordered: their transposes' lower triangles are row-major.
    _add_product_kernel()(out.T, A.T, B.T, C.T)


@functools.cache
def _add_product_kernel():
    """The Numba kernel of :func:`_add_product`, compiled on first use (importing this module
    stays free of Numba). Serial: it runs right after a BLAS call, whose idle worker threads
    still spin for a while."""
    import numba

    @numba.njit(cache=True)
    def lower_add_product(out, A, B, C):
        for i in range(out.shape[0]):
            for j in range(i + 1):
                out[i, j] = A[i, j] + B[i, j] * C[i, j]

    return lower_add_product


def _mirror(U: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose upper triangle is U's (lower triangle of U must be zero)."""
    out = U + U.T
    out.flat[:: U.shape[0] + 1] *= 0.5
    return out


def _mean_and_noise(sums: np.ndarray, draws: int) -> tuple[np.ndarray, float]:
    """Mean over all draws and the split-half estimate of its relative operator-norm noise.

    With a = #even and b = #odd draws, (mean_A - mean_B)/2 has nearly the covariance of the full
    mean (exactly so for even ``draws``), so its norm measures the mean's noise.
    """
    mean = (sums[0] + sums[1]) / draws
    if draws < 2:
        return mean, math.nan
    a, b = (draws + 1) // 2, draws // 2
    diff = sums[0] / a - sums[1] / b
    norm = _opnorm(mean)
    return mean, _opnorm(diff) / (2 * norm) if norm > 0 else math.nan


def _opnorm(M: np.ndarray) -> float:
    """Operator norm of a symmetric matrix: its largest eigenvalue in absolute value."""
    if M.shape[0] <= _DENSE_NORM_MAX_N:
        return float(np.max(np.abs(np.linalg.eigvalsh(M))))
    # A deterministic start vector keeps the result reproducible.
    start = np.ones(M.shape[0])
    top = scipy.sparse.linalg.eigsh(M, k=1, which="LM", v0=start, return_eigenvectors=False)
    return float(abs(top[0]))
