"""Kernels of positively homogeneous activations as functions of the angle alone.

An activation that is a polynomial of degree D on each side of 0 (relu, lrelu, abs, sign, quad)
satisfies sigma(s x) = s^D sigma(x) for s > 0. For (u, v) centred Gaussian with standard
deviations s1, s2 > 0 and correlation cos(theta), theta in [0, pi]:

    E[sigma(u) sigma(v)]   = (s1 s2)^D F(theta),        F(theta)  = E[sigma(xi) sigma(w)],
    E[sigma'(u) sigma'(v)] = (s1 s2)^(D-1) Fd(theta),   Fd(theta) = E[sigma'(xi) sigma'(w)],
    E[sigma(u)]            = s1^D mu,                   mu        = E[sigma(xi)],

with w = cos(theta) xi + sin(theta) eta and xi, eta i.i.d. N(0, 1). F and Fd are analytic in
theta on [0, pi]: in polar coordinates they are integrals over the angle of piecewise
trigonometric polynomials whose pieces move linearly with theta (for relu,
F = (sin theta + (pi - theta) cos theta) / (2 pi), the arc-cosine kernel of Cho and Saul). So a
Chebyshev series in t = 2 theta / pi - 1 reaches double precision with a few dozen terms, and a
kernel entry costs one arccos and two short Clenshaw sums whatever the correlation, where a
Hermite series in cos(theta) needs hundreds of terms near |cos theta| = 1.

The values at Chebyshev nodes of the first kind come from the 2-D quadrature of
``ntk.bivariate`` (accurate at any correlation, with 1 - |cos theta| passed without
cancellation); the node count doubles from 16 until the last third of the coefficients is below
1e-15 of the largest (the quadrature values are accurate to a few 1e-16, the noise floor).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np
from scipy import fft

from ntk.activations import Activation
from ntk.bivariate import pair_moments
from ntklc.errors import InputError

__all__ = ["AngularKernel", "angular_kernel", "chebyshev"]

_FIRST_NODES = 16
_MAX_NODES = 512
_TAIL_TOL = 1e-15


@dataclass(frozen=True, eq=False)
class AngularKernel:
    """F, Fd and mu of a positively homogeneous activation (module docstring).

    Attributes:
        degree: D, with sigma(s x) = s^D sigma(x) for s > 0.
        ck: Chebyshev coefficients of F in t = 2 theta / pi - 1.
        sdot: Chebyshev coefficients of Fd, or ``None`` when sigma has jumps.
        gap: Chebyshev coefficients of (F(0) - F(theta)) / theta, from which F(0) - F(theta)
            of nearly parallel pairs comes without cancellation.
        mean: mu = E[sigma(xi)].
        at_zero: sigma(0), the value of a sample with zero variance.
        parity: 1 for an even sigma, -1 for an odd one, 0 otherwise (an antiparallel pair
            then has the output correlation of the parallel one, up to the sign).
    """

    degree: int
    ck: np.ndarray
    sdot: np.ndarray | None
    gap: np.ndarray
    mean: float
    at_zero: float
    parity: int

    def value(self, theta) -> np.ndarray:
        """F(theta) for theta in [0, pi]."""
        return np.polynomial.chebyshev.chebval(_t(theta), self.ck)

    def derivative(self, theta) -> np.ndarray:
        """Fd(theta) for theta in [0, pi] (``ValueError`` when sigma has jumps)."""
        if self.sdot is None:
            raise InputError("the derivative kernel is undefined for an activation with jumps")
        return np.polynomial.chebyshev.chebval(_t(theta), self.sdot)


def _t(theta) -> np.ndarray:
    return 2.0 * np.asarray(theta, dtype=float) / math.pi - 1.0


@functools.lru_cache(maxsize=64)
def angular_kernel(act: Activation) -> AngularKernel | None:
    """The :class:`AngularKernel` of ``act``, or ``None`` if it is not positively homogeneous.

    Computed once per activation object (about 30-130 2-D quadratures, 0.1-0.3 s).
    """
    # Here, not at the top: ntk.exact imports this module's users.
    from ntk.exact import _degree_in_scale

    degree = _degree_in_scale(act)
    if degree is None:
        return None
    grad = not act.has_jumps
    nodes = _FIRST_NODES
    while True:
        values = _node_values(act, nodes, grad)
        coefs = [_chebyshev_coefficients(v) for v in values]
        if all(_converged(c) for c in coefs) or nodes >= _MAX_NODES:
            break
        nodes *= 2
    ck, sdot, gap = (_trim(c) for c in coefs)
    x = np.linspace(-1.0, 1.0, 9)
    parity = (1 if np.allclose(act.fn(-x), act.fn(x), rtol=0, atol=1e-15)
              else -1 if act.odd else 0)
    return AngularKernel(degree=degree, ck=ck, sdot=sdot if grad else None, gap=gap,
                         mean=_mean(act), at_zero=float(act.fn(np.zeros(1))[0]),
                         parity=parity)


def _mean(act: Activation) -> float:
    """E[sigma(xi)] by the 1-D rule of ntk.quadrature, cut at the kink."""
    from ntk.quadrature import gaussian_rule

    xi, w = gaussian_rule(act.breakpoints, half_width=16.0)
    return float(np.sum(w * act.fn(xi)))


def _nodes(nodes: int) -> np.ndarray:
    """theta at the Chebyshev points of the first kind t_j = cos(pi (j + 1/2) / N)."""
    return math.pi * (np.cos(math.pi * (np.arange(nodes) + 0.5) / nodes) + 1.0) / 2.0


def _node_values(act: Activation, nodes: int, grad: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F, Fd and (F(0) - F) / theta at the nodes (Fd zero without ``grad``).

    F(0) - F(theta) comes without cancellation: where F(theta) >= F(0) / 2 as F(0) times the
    output's 1 - rho' of the quadrature (an integral of a pointwise small integrand)."""
    F0 = pair_moments(act, 0.0, 1.0, 1.0, 1.0, 0.0, grad=False).ck
    F = np.empty(nodes)
    Fd = np.zeros(nodes)
    gap = np.empty(nodes)
    for j, theta in enumerate(_nodes(nodes)):
        # 1 - |cos theta| without cancellation: 2 sin^2(theta/2) or 2 cos^2(theta/2).
        if theta <= math.pi / 2:
            sgn, delta = 1.0, 2.0 * math.sin(theta / 2) ** 2
        else:
            sgn, delta = -1.0, 2.0 * math.cos(theta / 2) ** 2
        pm = pair_moments(act, 0.0, 1.0, 1.0, sgn, min(delta, 1.0), grad=grad,
                          second_moments=(F0, F0))
        F[j], Fd[j] = pm.ck, pm.sdot
        gap[j] = (F0 * pm.delta if pm.ck >= F0 / 2 else F0 - pm.ck) / theta
    return F, Fd, gap


def _chebyshev_coefficients(values: np.ndarray) -> np.ndarray:
    """Coefficients of the interpolant at the first-kind points (DCT-II)."""
    c = fft.dct(values, type=2) / values.size
    c[0] /= 2
    return c


def _converged(c: np.ndarray) -> bool:
    scale = np.max(np.abs(c))
    return scale == 0 or np.max(np.abs(c[2 * c.size // 3:])) <= _TAIL_TOL * scale


def _trim(c: np.ndarray) -> np.ndarray:
    """Drop trailing coefficients below 1e-16 of the largest (the noise floor of the values)."""
    scale = np.max(np.abs(c))
    keep = np.flatnonzero(np.abs(c) > 1e-16 * scale)
    return np.ascontiguousarray(c[:keep[-1] + 1] if keep.size else c[:1])


@numba.njit(cache=True, inline="always")
def chebyshev(c, theta):
    """sum_k c_k T_k(t) at t = 2 theta / pi - 1, by Clenshaw's recurrence (Numba)."""
    t = 2.0 * theta / math.pi - 1.0
    b1 = 0.0
    b2 = 0.0
    for k in range(c.shape[0] - 1, 0, -1):
        b1, b2 = 2.0 * t * b1 - b2 + c[k], b1
    return t * b1 - b2 + c[0]
