"""K-class Gaussian mixture data and the statistics the kernel equivalents use.

Model (spec section 1): x_i = (mu_a + w_i) / sqrt(p), w_i ~ N(0, C_a) for i in class a, with
class proportions c_a. Statistics, with C° = sum_a c_a C_a:

    tau0^2 = tr(C°)/p,   t_a = tr(C_a - C°)/sqrt(p),   T_ab = tr(C_a C_b)/p,
    J = class indicator columns (n x K),   psi_i = ||z_i||^2 - tr(C_a)/p  (z_i = w_i/sqrt(p)),
    V = [J/sqrt(p), psi]   (n x (K+1)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ntklc.errors import InputError

__all__ = [
    "GMMSample",
    "GMMStatistics",
    "GaussianMixture",
    "ar1_matrix",
    "estimate_tau0",
    "gaussian_mixture",
    "sample_gmm",
]


@dataclass(frozen=True)
class GaussianMixture:
    """A K-class Gaussian mixture in dimension p.

    Attributes:
        means: (K, p) class means mu_a (``||mu_a|| = O(1)``; data are ``(mu_a + w)/sqrt(p)``).
        covariances: (K, p, p) class covariances C_a.
        proportions: (K,) class proportions c_a, summing to 1.
    """

    means: np.ndarray
    covariances: np.ndarray
    proportions: np.ndarray

    def __post_init__(self):
        means = np.asarray(self.means, dtype=float)
        cov = np.asarray(self.covariances, dtype=float)
        c = np.asarray(self.proportions, dtype=float)
        # Stored as arrays: sample_gmm and statistics() do array arithmetic on them.
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covariances", cov)
        object.__setattr__(self, "proportions", c)
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise InputError(f"means must have shape (K, p) with K, p >= 1, got {means.shape}")
        k, p = means.shape
        if cov.shape != (k, p, p):
            raise InputError(f"covariances must have shape {(k, p, p)}, got {cov.shape}")
        if c.shape != (k,) or np.any(c <= 0) or not math.isclose(c.sum(), 1.0, abs_tol=1e-9):
            raise InputError(f"proportions must be {k} positive numbers summing to 1, got {c}")
        if not (np.all(np.isfinite(means)) and np.all(np.isfinite(cov))):
            raise InputError("means and covariances must be finite")

    @property
    def n_classes(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def statistics(self) -> tuple[float, np.ndarray, np.ndarray]:
        """``(tau0, t, T)``: tau0 = sqrt(tr(C°)/p), t (K,), T (K, K)."""
        p = self.dim
        traces = np.trace(self.covariances, axis1=1, axis2=2)
        c0_trace = float(self.proportions @ traces)
        t = (traces - c0_trace) / math.sqrt(p)
        T = np.einsum("aij,bji->ab", self.covariances, self.covariances) / p
        return math.sqrt(c0_trace / p), t, T


def ar1_matrix(p: int, rho: float) -> np.ndarray:
    """AR(1) correlation matrix (p, p) with entries rho^|i - j| (trace p), |rho| < 1."""
    if not -1 < rho < 1:
        raise InputError(f"AR(1) parameter must lie in (-1, 1), got {rho}")
    idx = np.arange(p)
    return rho ** np.abs(idx[:, None] - idx[None, :])


def gaussian_mixture(p: int, *, n_classes: int = 2, mean_distance: float = 3.0,
                     t: tuple[float, ...] | None = (-2.0, 2.0), structure: str = "identity",
                     proportions: tuple[float, ...] | None = None) -> GaussianMixture:
    """The structured GMM of spec section 6: separated means, scaled covariances.

    Means are ``mean_distance / sqrt(2)`` times distinct unit basis vectors, centred by their
    proportion-weighted average, so every pair of means is ``mean_distance`` apart (two classes:
    mu = +-(mean_distance / 2) u). Covariances are ``C_a = (1 + t_a/sqrt(p)) S`` with S the
    identity or an AR(1) matrix (trace p), so that ``tr(C_a - C°)/sqrt(p) = t_a`` when the
    ``t_a`` average to zero under the proportions.

    Args:
        p: dimension, >= n_classes.
        n_classes: K >= 1.
        mean_distance: distance between any two means (before the 1/sqrt(p) scaling).
        t: the K covariance offsets (default (-2, 2)); ``None`` for zeros.
        structure: ``"identity"`` or ``"ar1:<rho>"``.
        proportions: class proportions (default equal).
    """
    if p < 1 or n_classes < 1 or p < n_classes:
        raise InputError(f"need p >= n_classes >= 1, got p={p}, n_classes={n_classes}")
    c = (np.full(n_classes, 1.0 / n_classes) if proportions is None
         else np.asarray(proportions, dtype=float))
    t_arr = np.zeros(n_classes) if t is None else np.asarray(t, dtype=float)
    if t_arr.shape != (n_classes,):
        raise InputError(f"t must have {n_classes} entries, got {t_arr.shape[0]}")
    scales = 1.0 + t_arr / math.sqrt(p)
    if np.any(scales <= 0):
        raise InputError("1 + t_a/sqrt(p) must be positive; increase p or shrink t")
    if structure == "identity":
        base = np.eye(p)
    elif structure.startswith("ar1:"):
        base = ar1_matrix(p, float(structure.removeprefix("ar1:")))
    else:
        raise InputError(f"unknown covariance structure {structure!r} (identity or ar1:<rho>)")
    means = np.zeros((n_classes, p))
    means[np.arange(n_classes), np.arange(n_classes)] = mean_distance / math.sqrt(2)
    # Centre the means (the data then has mean zero): for two classes mu = +-(Delta/2) u.
    means -= c @ means
    cov = scales[:, None, None] * base[None]
    return GaussianMixture(means=means, covariances=cov, proportions=c)


@dataclass(frozen=True)
class GMMStatistics:
    """Statistics of a GMM sample used by the equivalents (spec section 1).

    Attributes:
        tau0: the data estimate sqrt(mean_i ||x_i||^2) that the equivalents use; it absorbs
            the O(1/p) mean terms of ||x_i||^2 (spec section 1, "in practice estimated").
        tau0_model: sqrt(tr(C°)/p) of the model.
        t: (K,) covariance trace offsets.
        T: (K, K) tr(C_a C_b)/p.
        J: (n, K) class indicators.
        psi: (n,) ||z_i||^2 - tr(C_a)/p.
        V: (n, K + 1) [J/sqrt(p), psi].
    """

    tau0: float
    tau0_model: float
    t: np.ndarray
    T: np.ndarray
    J: np.ndarray
    psi: np.ndarray
    V: np.ndarray


@dataclass(frozen=True)
class GMMSample:
    """A draw from a :class:`GaussianMixture`.

    Attributes:
        X: (p, n) data, one sample per column.
        labels: (n,) class of each column.
        stats: the :class:`GMMStatistics` of this draw.
        model: the mixture it was drawn from.
    """

    X: np.ndarray
    labels: np.ndarray
    stats: GMMStatistics
    model: GaussianMixture


def sample_gmm(model: GaussianMixture, n: int, *, seed: int | np.random.Generator = 0,
               dtype=np.float64, sort: bool = True) -> GMMSample:
    """Draw n samples of ``model``; class sizes are round(n c_a) (the rest in the last class).

    Covariances may be singular (positive semi-definite): w = F g with F F^T = C_a, F the
    Cholesky factor when C_a is positive definite, else its symmetric square root.

    Args:
        model: the mixture.
        n: number of samples, >= 1.
        seed: integer seed or Generator.
        dtype: float64 or float32 for ``X``; statistics are float64.
        sort: order the columns by class (convenient for plotting kernels).

    Returns:
        :class:`GMMSample` with X of shape (p, n).
    """
    if int(n) != n or n < 1:
        raise InputError(f"n must be a positive integer, got {n}")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InputError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    rng = np.random.default_rng(seed)
    k, p = model.n_classes, model.dim
    sizes = np.floor(n * model.proportions + 0.5).astype(int)
    sizes[-1] = n - sizes[:-1].sum()
    if np.any(sizes < 0):
        raise InputError("n is too small for these class proportions")
    labels = np.repeat(np.arange(k), sizes)
    if not sort:
        labels = rng.permutation(labels)
    W = np.empty((p, n))
    for a in range(k):
        idx = np.flatnonzero(labels == a)
        W[:, idx] = _draw(model.covariances[a], rng.standard_normal((p, idx.size)))
    X = (model.means[labels].T + W) / math.sqrt(p)
    tau0, t, T = model.statistics()
    traces = np.trace(model.covariances, axis1=1, axis2=2)
    psi = np.sum(W * W, axis=0) / p - traces[labels] / p
    J = (labels[:, None] == np.arange(k)[None, :]).astype(float)
    V = np.column_stack([J / math.sqrt(p), psi])
    X = X.astype(dtype, copy=False)
    stats = GMMStatistics(tau0=estimate_tau0(X), tau0_model=tau0, t=t, T=T, J=J, psi=psi, V=V)
    return GMMSample(X=X, labels=labels, stats=stats, model=model)


def _draw(C: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """F Z for the factor F of :func:`_square_root`: (p, m) draws of covariance C.

    A positive diagonal C (the built-in mixtures, scaled identities) has the Cholesky factor
    diag(sqrt(C_ii)), and F Z is then sqrt(C_ii) Z_ij exactly (the product's other terms are
    exact zeros), so the p x p product, O(p^2 m), is skipped with the same draws.
    """
    d = np.diag(C)
    if np.all(d > 0) and np.count_nonzero(C) == d.size:
        return np.sqrt(d)[:, None] * Z
    return _square_root(C) @ Z


def _square_root(C: np.ndarray) -> np.ndarray:
    """A factor F with F F^T = C: Cholesky, or for a covariance that is only positive
    semi-definite (estimated from images with constant pixels) the symmetric square root
    U diag(sqrt(max(w, 0))) of its eigendecomposition. Positive-definite models keep the
    Cholesky factor, so their draws for a given seed do not change."""
    try:
        return np.linalg.cholesky(C)
    except np.linalg.LinAlgError:
        w, U = np.linalg.eigh(0.5 * (C + C.T))
        return U * np.sqrt(np.clip(w, 0.0, None))


def estimate_tau0(X: np.ndarray) -> float:
    """Data estimate of tau0: sqrt(mean_i ||x_i||^2) for X of shape (p, n)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.size == 0:
        raise InputError(f"X must be a non-empty 2-D array (p, n), got shape {X.shape}")
    return float(np.sqrt(np.mean(np.sum(np.asarray(X, dtype=float) ** 2, axis=0))))
