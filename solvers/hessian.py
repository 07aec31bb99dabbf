"""Spectral tools for a symmetric operator known only through matrix-vector products (CET).

For a Hessian H available as ``hvp(v) = H v`` (n parameters):

* ``extreme_eigenpairs``: top or bottom eigenpairs by Lanczos (``scipy.sparse.linalg.eigsh``
  on a ``LinearOperator``), to a tolerance;
* ``top_ritz_pairs``: the top Ritz pairs of a fixed number of Lanczos steps (a known cost);
* ``hutchinson_trace``: tr(H) ~ mean_k z_k^T H z_k with Rademacher z_k, with its standard
  error from the sample variance;
* ``slq_density``: the spectral density by stochastic Lanczos quadrature: for each random unit
  vector, m Lanczos steps give a tridiagonal T whose eigenvalues theta_j and squared first
  eigenvector components w_j are a Gauss quadrature of the spectral measure; averaging gives
  n sum_j w_j delta(lambda - theta_j) (smoothed by a Gaussian for plotting).

Randomness only through an explicit seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import linalg
from scipy.sparse.linalg import LinearOperator, eigsh

from ntklc.errors import InputError

__all__ = ["SpectralDensity", "extreme_eigenpairs", "hutchinson_trace", "slq_density",
           "top_ritz_pairs"]


def _operator(hvp: Callable[[np.ndarray], np.ndarray], n: int) -> LinearOperator:
    if n < 1:
        raise InputError(f"the operator needs n >= 1 parameters, got {n}")
    return LinearOperator((n, n), matvec=lambda v: np.asarray(hvp(np.ravel(v)), dtype=float),
                          dtype=float)


def extreme_eigenpairs(hvp, n: int, k: int = 5, which: str = "LA", tol: float = 1e-12,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k eigenpairs at one end of the spectrum (``LA``: largest, ``SA``: smallest).

    Returns:
        ``(values (k,), vectors (n, k))``, values sorted from the extreme inwards.
    """
    if which not in ("LA", "SA"):
        raise InputError(f"which must be 'LA' or 'SA', got {which!r}")
    if not 1 <= k < n:
        raise InputError(f"need 1 <= k < n for Lanczos, got k={k}, n={n}")
    v0 = np.random.default_rng(seed).standard_normal(n)
    vals, vecs = eigsh(_operator(hvp, n), k=k, which=which, tol=tol, v0=v0)
    order = np.argsort(vals)[::-1] if which == "LA" else np.argsort(vals)
    return vals[order], vecs[:, order]


def top_ritz_pairs(hvp, n: int, k: int, steps: int, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The k largest Ritz pairs of ``steps`` Lanczos steps: a fixed budget of ``steps`` products.

    Unlike :func:`extreme_eigenpairs`, which iterates to a tolerance, the cost is known in
    advance; the extreme Ritz values converge first (Kaniel-Paige), so a few times k steps give
    the top directions to a few digits, which is what steering a rounding needs.

    Returns:
        ``(values (k,), vectors (n, k))``, values in decreasing order, orthonormal vectors.
    """
    if not 1 <= k <= steps:
        raise InputError(f"need 1 <= k <= steps, got k={k}, steps={steps}")
    op = _operator(hvp, n)
    v0 = np.random.default_rng(seed).standard_normal(n)
    alpha, beta, Q = _lanczos(op, v0, min(steps, n))
    theta, S = linalg.eigh_tridiagonal(alpha, beta)
    top = np.argsort(theta)[::-1][:k]
    return theta[top], Q.T @ S[:, top]


def hutchinson_trace(hvp, n: int, samples: int = 100, seed: int = 0) -> tuple[float, float]:
    """Hutchinson's estimate of tr(H) and its standard error (Rademacher probes)."""
    if samples < 2:
        raise InputError(f"need at least 2 samples for a standard error, got {samples}")
    op = _operator(hvp, n)
    rng = np.random.default_rng(seed)
    estimates = np.empty(samples)
    for i in range(samples):
        z = rng.choice([-1.0, 1.0], size=n)
        estimates[i] = z @ op.matvec(z)
    return float(estimates.mean()), float(estimates.std(ddof=1) / np.sqrt(samples))


@dataclass(frozen=True)
class SpectralDensity:
    """Gauss-quadrature nodes and weights of the spectral measure (weights sum to n)."""

    nodes: np.ndarray
    weights: np.ndarray

    def smoothed(self, grid: np.ndarray, width: float) -> np.ndarray:
        """Density on ``grid`` with each node spread as a Gaussian of standard deviation width."""
        z = (np.asarray(grid)[:, None] - self.nodes[None, :]) / width
        return (np.exp(-0.5 * z * z) @ self.weights) / (width * np.sqrt(2 * np.pi))

    def cumulative(self, x: float) -> float:
        """Estimated number of eigenvalues <= x."""
        return float(self.weights[self.nodes <= x].sum())


def _lanczos(op: LinearOperator, v: np.ndarray, steps: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tridiagonal (alpha, beta) and basis Q (m, n) of m <= ``steps`` Lanczos steps from v,
    fully reorthogonalised."""
    n = v.size
    Q = np.zeros((steps, n))
    alpha, beta = np.zeros(steps), np.zeros(max(steps - 1, 0))
    q = v / np.linalg.norm(v)
    for j in range(steps):
        Q[j] = q
        w = op.matvec(q)
        alpha[j] = q @ w
        # Full reorthogonalisation keeps the quadrature exact in floating point.
        w -= Q[: j + 1].T @ (Q[: j + 1] @ w)
        if j == steps - 1:
            break
        b = np.linalg.norm(w)
        if b < 1e-12:
            return alpha[: j + 1], beta[:j], Q[: j + 1]
        beta[j] = b
        q = w / b
    return alpha, beta, Q


def slq_density(hvp, n: int, steps: int = 30, probes: int = 10, seed: int = 0
                ) -> SpectralDensity:
    """Stochastic Lanczos quadrature of the spectral density of H (module docstring)."""
    if steps < 1 or probes < 1:
        raise InputError(f"steps and probes must be positive, got {steps}, {probes}")
    op = _operator(hvp, n)
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    for _ in range(probes):
        alpha, beta, _ = _lanczos(op, rng.standard_normal(n), min(steps, n))
        theta, S = linalg.eigh_tridiagonal(alpha, beta)
        nodes.append(theta)
        weights.append(n * S[0] ** 2 / probes)
    return SpectralDensity(nodes=np.concatenate(nodes), weights=np.concatenate(weights))
