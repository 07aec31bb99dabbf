"""Step functions that match an activation's first K Hermite coefficients.

NTK-LC (``solvers.ternarize``) matches the constants the fully connected equivalent needs: in
Hermite terms the coefficients of degree 1 and 2 of sigma(tau xi) (c_1 = tau d1,
c_2 = tau^2 d2 / sqrt 2) and the variance. A convolutional layer sees strongly correlated
patches, where the higher degrees of the bivariate map matter (``../shared/spec/cnn-kernels.md``),
so the CNN experiments ask what matching more coefficients buys. :func:`hermite_step` returns
the k-level step function s with

    E[s(tau xi) h_j(xi)] = E[sigma(tau xi) h_j(xi)],  j = 0..K,   E[s^2] = E[sigma^2],

closest to sigma in L2(N(0, tau^2)) among step functions with its thresholds. The thresholds
are those of Lloyd's quantizer of sigma's output values (``solvers.quantizer``), so that the
levels follow sigma's shape; k >= K + 2 levels (K + 1 linear conditions and the second
moment) at least, more where those cannot match (:func:`hermite_step`). For fixed
thresholds the problem is a quadratic programme in the levels v,

    minimise  sum_r P_r v_r^2 - 2 sum_r b_r v_r   subject to  A v = c,  sum_r P_r v_r^2 = E2,

with P_r the bins' probabilities, b_r = E[sigma 1_r], A_jr = E[1_r h_j] (closed forms). Its
Lagrangian's stationary point for a multiplier mu of the quadratic condition is the linear
solve v(mu) = D^-1 (b - A^T lam) / (1 + mu), whose second moment falls from infinity
(mu -> -1) to that of the minimum-energy solution of A v = c (mu -> inf): a bracketed root
(``scipy.optimize.brentq``) gives the match, or the conditions are infeasible with these
thresholds (then more levels are needed, and the error says so).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from ntk.activations import Activation, activation
from ntk.exact import hermite_coefficients
from ntk.quadrature import gaussian_rule
from ntklc.errors import InputError
from solvers.quantizer import activation_thresholds
from solvers.steps import StepFunction

__all__ = ["hermite_step"]


def hermite_step(act: str | Activation, tau: float, order: int, levels: int | None = None,
                 max_levels: int = 64) -> StepFunction:
    """The step function of the module docstring.

    Step functions put much of their variance in high Hermite degrees, so matching degrees
    0..K and the variance often needs many more than K + 2 levels (ReLU, K = 2: about ten, as
    for NTK-LC's output layer). Without ``levels`` the smallest feasible k from K + 2 up to
    ``max_levels`` is used.

    Args:
        act: the activation sigma.
        tau: input scale, > 0.
        order: K >= 1, the highest Hermite degree matched (0..K all match).
        levels: k, a fixed number of levels (at least K + 2), or ``None`` to search.
        max_levels: the largest k of the search.

    Returns:
        :class:`~solvers.steps.StepFunction` of family ``"hermite"``.

    Raises:
        InputError: bad arguments, or no k (up to ``max_levels``) meets the conditions.
    """
    act = activation(act)
    if not (math.isfinite(tau) and tau > 0):
        raise InputError(f"tau must be a positive finite number, got {tau}")
    if isinstance(order, bool) or int(order) != order or order < 1:
        raise InputError(f"order must be an integer >= 1, got {order}")
    order = int(order)
    candidates = range(order + 2, max_levels + 1) if levels is None else [int(levels)]
    if levels is not None and int(levels) < order + 2:
        raise InputError(f"matching degrees 0..{order} and the variance needs at least "
                         f"{order + 2} levels, got {levels}")
    c = hermite_coefficients(act, np.array([tau]), order)[0]
    second = _bin_means(act, tau, np.zeros(0))[1]
    for k in candidates:
        z = _thresholds(act, tau, k, order, c, second)
        if z is None:
            continue
        v = _levels(_bin_projections(z, order), _bin_means(act, tau, z)[0], c, second)
        if v is not None:
            return StepFunction(family="hermite", params={"order": float(order)},
                                thresholds=tuple(float(t) for t in tau * z),
                                levels=tuple(float(x) for x in v))
    raise InputError(f"no step function with {candidates[0]}..{candidates[-1]} levels matches "
                     f"Hermite degrees 0..{order} and the variance of {act.name} at tau = "
                     f"{tau:g}")


def _min_energy(z: np.ndarray, order: int, c: np.ndarray) -> float:
    """Second moment of the smallest step function (thresholds z) with A v = c."""
    return _min_energy_of(_bin_projections(z, order), c)


def _min_energy_of(A: np.ndarray, c: np.ndarray) -> float:
    P = A[0]
    if np.any(P <= 1e-300):
        return math.inf
    try:
        return float(c @ np.linalg.solve((A / P) @ A.T, c))
    except np.linalg.LinAlgError:  # thresholds merged in the search: no solution there
        return math.inf


def _thresholds(act: Activation, tau: float, k: int, order: int, c: np.ndarray,
                second: float) -> np.ndarray | None:
    """Standardised thresholds of k levels whose minimum-energy match is within sigma's second
    moment: the better of the Gaussian quantiles and Lloyd's thresholds of sigma, moved by
    L-BFGS (on ascending gaps) to lower that energy when neither is feasible."""
    starts = [special.ndtri(np.arange(1, k) / k)]
    lloyd = activation_thresholds(act.fn, tau, k, symmetric=act.odd)
    if lloyd is not None and lloyd.size == k - 1:
        starts.append(lloyd)
    best = min(starts, key=lambda z: _min_energy(z, order, c))
    if _min_energy(best, order, c) <= second:
        return best

    def unpack(x):
        return x[0] + np.concatenate([[0.0], np.cumsum(np.exp(x[1:]))])

    def energy(x):
        value = _min_energy(unpack(x), order, c)
        return value if math.isfinite(value) else 1e300

    x0 = np.concatenate([[best[0]], np.log(np.maximum(np.diff(best), 1e-6))])
    res = optimize.minimize(energy, x0, method="L-BFGS-B")
    z = unpack(res.x)
    return z if _min_energy(z, order, c) <= second else None


def _bin_projections(z: np.ndarray, order: int) -> np.ndarray:
    """A[j, r] = E[1{z_r <= xi < z_(r+1)} h_j(xi)], j = 0..order, for thresholds z.

    The integral of h_j phi over [a, inf) is h_(j-1)(a) phi(a) / sqrt(j) (j >= 1), Phibar(a)
    for j = 0; a bin is the difference of its two edges."""
    edges = np.concatenate([[-np.inf], z, [np.inf]])
    finite = np.isfinite(edges)
    x = np.where(finite, edges, 0.0)
    phi = np.where(finite, np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi), 0.0)
    upper = np.empty((order + 1, edges.size))
    upper[0] = special.ndtr(-edges)
    h_prev, h = np.zeros_like(x), np.ones_like(x)
    for j in range(1, order + 1):
        upper[j] = h * phi / math.sqrt(j)
        h, h_prev = (x * h - math.sqrt(j - 1) * h_prev) / math.sqrt(j), h
    return upper[:, :-1] - upper[:, 1:]


def _bin_means(act: Activation, tau: float, z: np.ndarray) -> tuple[np.ndarray, float]:
    """b_r = E[sigma(tau xi) 1_r] per bin and E[sigma(tau xi)^2], by quadrature cut at the
    thresholds and the activation's breakpoints."""
    cuts = np.concatenate([z, np.asarray(act.breakpoints, dtype=float) / tau])
    xi, w = gaussian_rule(cuts, half_width=12.0, panel=0.25 / max(1.0, tau))
    f = act.fn(tau * xi)
    b = np.bincount(np.searchsorted(z, xi, side="right"), weights=w * f, minlength=z.size + 1)
    return b, float(np.sum(w * f * f))


def _levels(A: np.ndarray, b: np.ndarray, c: np.ndarray, second: float) -> np.ndarray | None:
    """The quadratic programme of the module docstring (``None`` when infeasible)."""
    P = A[0]
    if np.any(P <= 0) or not math.isfinite(_min_energy_of(A, c)):
        return None
    M = (A / P) @ A.T

    def solve(mu):
        lam = np.linalg.solve(M, A @ (b / P) - (1.0 + mu) * c)
        return (b - A.T @ lam) / P / (1.0 + mu)

    def excess(mu):
        v = solve(mu)
        return float(P @ (v * v)) - second

    v_min = A.T @ np.linalg.solve(M, c) / P
    if float(P @ (v_min * v_min)) > second * (1 + 1e-12):
        return None
    hi = 1.0
    while excess(hi) > 0:
        hi *= 4.0
        if hi > 1e12:
            return v_min
    lo = 0.0
    while excess(lo) < 0:
        lo = -1.0 + (lo + 1.0) / 4.0
    mu = optimize.brentq(excess, lo, hi, xtol=1e-15, rtol=1e-15, maxiter=500)
    return solve(mu)
