"""Gaussian expectations of highly correlated pairs, E[f(u) g(v)], accurate up to |rho| = 1.

For (u, v) centred Gaussian with standard deviations s_1, s_2 and correlation rho, write
rho = sgn (1 - delta) with sgn = +-1 and 0 <= delta <= 1 given *directly* (not as 1 - |rho|,
which loses every digit of delta near |rho| = 1), r = sqrt(delta (2 - delta)) = sqrt(1 - rho^2),
and

    u = s_1 xi,   v = sgn s_2 (|rho| xi + r eta),   xi, eta i.i.d. N(0, 1),

so that

    E[f(u) g(v)] = E_xi[ f(s_1 xi) G(s_2 |rho| xi) ],   G(y) = E_eta[g~(y + s_2 r eta)],

with g~(y) = g(sgn y). The outer integral over xi is a composite Gauss-Legendre rule
(``ntk.quadrature``) cut at the kinks b / s_1 of f and, around each kink b of g~, at
c = b / (s_2 |rho|) and c +- w 2^k: there G has a transition layer of width w = r / |rho| in
xi (a kink smoothed by the Gaussian eta), which the geometrically graded panels resolve
whatever w is. The inner expectation G is

* in closed form for piecewise-polynomial g (relu, lrelu, abs, sign, steps, ...): on a piece
  lo < y + t < hi of polynomial P, E[P(y + t) 1{...}] = sum_m P^(m)(y) / m! sigma^m M_m with
  t = sigma eta, sigma = s_2 r, and the truncated Gaussian moments
  M_m = E[eta^m 1{alpha < eta < beta}] = alpha^(m-1) phi(alpha) - beta^(m-1) phi(beta)
  + (m - 1) M_(m-2), M_0 = Phi(beta) - Phi(alpha), M_1 = phi(alpha) - phi(beta);
* a composite Gauss-Legendre rule in eta on [-9, 9] (tail mass below 1e-18) with panels no
  wider than 1 / (2 sigma) otherwise (smooth activations and callables).

At delta = 0 the pair is degenerate (v = sgn (s_2 / s_1) u) and G = g~ itself. The cost per
pair is about 2000 outer nodes (x 360 inner nodes for smooth g): meant for the few pairs that
a Hermite series cannot reach (``ntk.exact``), and as an independent reference.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy
from scipy import special

from ntk.activations import Activation, activation
from ntk.quadrature import gaussian_rule
from ntklc.errors import InputError

__all__ = ["PairMoments", "bivariate_expectation", "pair_moments"]

# Outer rule: as the per-sample diagonal quadrature of ntk.exact (half-width 16: Gaussian tail
# below 1e-55; 20 Legendre nodes per panel of 0.5, divided by the scale for smooth sigma).
_HALF_WIDTH = 16.0
_PANEL = 0.5
_ORDER = 20
# Inner rule for smooth g: [-9, 9] loses a Gaussian mass of 2e-19.
_INNER_HALF_WIDTH = 9.0
# Graded cuts at c +- w 2^k from k = _GRADE_FROM on: Phi((xi - c) / w) is resolved on panels
# of width w / 8 at its centre, and each panel is at most twice its distance to c.
_GRADE_FROM = -3

_X = sympy.Symbol("x", real=True)


def pair_moments(act: str | Activation | Callable, m: float, s1: float, s2: float, sgn: float,
                 delta: float, *, grad: bool = True,
                 second_moments: tuple[float, float] | None = None) -> PairMoments:
    """The kernel entries of one layer (``ntk.exact``) for one highly correlated pair.

    For samples with input scales s1, s2 and correlation sgn (1 - delta): the CK entry
    C = E[(sigma(u) - m)(sigma(v) - m)], the derivative moment E[sigma'(u) sigma'(v)], and,
    given the output second moments A = E[(sigma(u) - m)^2] and B = E[(sigma(v) - m)^2],
    the output's 1 - |rho'| with rho' = C / sqrt(A B), again without cancellation:

        1 - |rho'| = E[(f(u) - s lambda f(v))^2] / (2 A),  lambda = sqrt(A / B), s = sgn(C),

    with f = sigma - m, an integral of a pointwise small integrand. (Expanding the square gives
    2 A (1 - s C / sqrt(A B)); an error e in lambda changes it by a factor 1 + O(e) only,
    since its derivative in lambda is 2 sqrt(A B) (1 - |rho'|).) Given xi the square splits
    into (f(u) - s lambda G(xi))^2 + lambda^2 Var_eta f(v), the variance taken as
    E[(f(y + t) - f(y))^2] - E[f(y + t) - f(y)]^2 with f(y + t) - f(y) expanded in t, so that
    nothing of size 1 is cancelled.

    Args:
        act: the activation.
        m: centring constant.
        s1, s2: input standard deviations, > 0.
        sgn: sign of the input correlation, +1 or -1.
        delta: 1 - |rho| of the input in [0, 1], computed without cancellation.
        grad: also compute the derivative moment (else it is 0).
        second_moments: (A, B) as above, to get the output's 1 - |rho'|; else it is ``nan``.
    """
    act = activation(act)
    f = _shifted(act, m)
    rule = _PairRule(s1, s2, sgn, delta, act.breakpoints, smooth=act.pieces is None)
    f_u = _evaluate(f, s1 * rule.xi)
    mean_v, var_v = rule.smooth(f, variance=second_moments is not None)
    ck = float(np.sum(rule.w * f_u * mean_v))
    sdot = 0.0
    if grad:
        g = _derivative(act)
        sdot = float(np.sum(rule.w * _evaluate(g, s1 * rule.xi) * rule.smooth(g)[0]))
    delta_next, sgn_next = math.nan, 1.0 if ck >= 0 else -1.0
    if second_moments is not None:
        a_moment, b_moment = (float(v) for v in second_moments)
        if a_moment <= 0 or b_moment <= 0:
            # A silent output (a deep step network's variance can underflow to 0).
            delta_next = 1.0
        else:
            lam = sgn_next * math.sqrt(a_moment / b_moment)
            dist = np.sum(rule.w * ((f_u - lam * mean_v) ** 2 + lam * lam * var_v))
            delta_next = min(1.0, max(0.0, float(dist) / (2 * a_moment)))
    return PairMoments(ck=ck, sdot=sdot, delta=delta_next, sgn=sgn_next)


@dataclass(frozen=True)
class PairMoments:
    """Output of :func:`pair_moments`: CK entry, derivative moment, and the output
    correlation as sgn (1 - delta)."""

    ck: float
    sdot: float
    delta: float
    sgn: float


def bivariate_expectation(f, g, s1: float, s2: float, sgn: float, delta: float, *,
                          breakpoints=()) -> float:
    """E[f(u) g(v)] for the pair of the module docstring.

    Args:
        f, g: each a vectorised callable, or a tuple of pieces ``((lo, hi, coeffs), ...)``
            (coeffs ascending, right-continuous at the cuts) for the closed-form inner
            expectation.
        s1, s2: standard deviations of u and v, > 0.
        sgn: sign of the correlation, +1 or -1.
        delta: 1 - |rho| in [0, 1].
        breakpoints: x where f or g is not smooth (kinks or jumps).
    """
    rule = _PairRule(s1, s2, sgn, delta, breakpoints, smooth=not _is_pieces(f))
    return float(np.sum(rule.w * _evaluate(f, s1 * rule.xi) * rule.smooth(g)[0]))


class _PairRule:
    """Outer nodes xi and weights w, and the inner expectations over eta at those nodes."""

    def __init__(self, s1, s2, sgn, delta, breakpoints, *, smooth: bool):
        if not (s1 > 0 and s2 > 0 and math.isfinite(s1) and math.isfinite(s2)):
            raise InputError(f"scales must be positive and finite, got {s1}, {s2}")
        if not 0.0 <= delta <= 1.0:
            raise InputError(f"delta = 1 - |rho| must lie in [0, 1], got {delta}")
        if sgn not in (1, -1):
            raise InputError(f"sgn must be +1 or -1, got {sgn}")
        self.sgn = sgn
        a = 1.0 - delta
        r = math.sqrt(delta * (2.0 - delta))
        self.sigma = s2 * r
        breaks = np.asarray(breakpoints, dtype=float)
        cuts = [breaks / s1]
        panel = _PANEL / max(1.0, s1, s2) if smooth else _PANEL
        if a > 0:
            # The kinks of g~(y) = g(sgn y) sit at sgn b, so at sgn b / (s2 a) in xi.
            centres = sgn * breaks / (s2 * a)
            cuts.append(centres)
            w = r / a
            if w > 0:
                top = max(_GRADE_FROM, math.ceil(math.log2(max(panel / w, 1.0))))
                steps = w * 2.0 ** np.arange(_GRADE_FROM, top + 1)
                cuts += [centres[:, None] + steps, centres[:, None] - steps]
        self.xi, self.w = gaussian_rule(np.concatenate([np.ravel(c) for c in cuts]),
                                        half_width=_HALF_WIDTH, panel=panel, order=_ORDER)
        self.y = s2 * a * self.xi

    def smooth(self, g, variance: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """E_eta[g~(y + sigma eta)] at the outer nodes, and Var_eta when ``variance``."""
        if _is_pieces(g):
            pieces = _reflect(g) if self.sgn < 0 else g
            return _piecewise_smoothed(pieces, self.y, self.sigma, variance)
        g_fn = g if self.sgn > 0 else (lambda x: g(-x))
        return _smoothed(g_fn, self.y, self.sigma, variance)


def _is_pieces(h) -> bool:
    return isinstance(h, tuple)


def _evaluate(h, x: np.ndarray) -> np.ndarray:
    if not _is_pieces(h):
        return np.asarray(h(x), dtype=float)
    own = _piece_index(h, x)
    out = np.zeros_like(x)
    for k, (_, _, coeffs) in enumerate(h):
        out[own == k] = np.polynomial.polynomial.polyval(x[own == k], coeffs)
    return out


def _reflect(pieces: tuple) -> tuple:
    """Pieces of y -> g(-y): piece (lo, hi, P(x)) becomes (-hi, -lo, P(-x))."""
    return tuple((-hi, -lo, tuple(c * (-1) ** k for k, c in enumerate(coeffs)))
                 for lo, hi, coeffs in reversed(pieces))


def _piecewise_smoothed(pieces: tuple, y: np.ndarray, sigma: float, variance: bool
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """E[g(y + t)] and Var[g(y + t)], t = sigma eta, for a piecewise polynomial g.

    With q(t) = g(y + t) - g(y), on piece p: q = sum_m e_m t^m, e_0 = P_p(y) - g(y) (exactly 0
    on y's own piece) and e_m = P_p^(m)(y) / m!, so E[q] = sum_m e_m sigma^m M_m and
    E[q^2] = sum_(m, m') e_m e_m' sigma^(m + m') M_(m + m') over the pieces; then
    E[g] = g(y) + E[q] and Var[g] = E[q^2] - E[q]^2, all terms small where g is smooth.
    """
    g_y = _evaluate(pieces, y)
    if sigma == 0.0:
        return g_y, (np.zeros_like(y) if variance else None)
    mean_q = np.zeros_like(y)
    square_q = np.zeros_like(y)
    own = _piece_index(pieces, y)
    for k, (lo, hi, coeffs) in enumerate(pieces):
        degree = len(coeffs) - 1
        moments = _truncated_moments((lo - y) / sigma, (hi - y) / sigma,
                                     2 * degree if variance else degree)
        poly = np.polynomial.Polynomial(coeffs)
        e = [np.where(own == k, 0.0, poly(y) - g_y)]
        factor = 1.0
        for order in range(1, degree + 1):
            poly = poly.deriv()
            factor /= order
            e.append(poly(y) * factor)
        for order, e_m in enumerate(e):
            mean_q += e_m * sigma ** order * moments[order]
            if variance:
                for order2, e_m2 in enumerate(e):
                    square_q += e_m * e_m2 * sigma ** (order + order2) * moments[order + order2]
    var = np.maximum(square_q - mean_q * mean_q, 0.0) if variance else None
    return g_y + mean_q, var


def _piece_index(pieces: tuple, x: np.ndarray) -> np.ndarray:
    """Index of the piece holding each x (right-continuous at the cuts)."""
    return np.searchsorted(np.array([hi for _, hi, _ in pieces[:-1]]), x, side="right")


def _truncated_moments(alpha: np.ndarray, beta: np.ndarray, degree: int) -> list[np.ndarray]:
    """M_m = E[eta^m 1{alpha < eta < beta}], m = 0..degree, eta ~ N(0, 1); ends may be inf."""
    # Phi(beta) - Phi(alpha) from the tail on the side away from 0: no cancellation of two
    # numbers near 1.
    upper = alpha > 0
    m0 = np.where(upper, special.ndtr(-alpha) - special.ndtr(-beta),
                  special.ndtr(beta) - special.ndtr(alpha))
    phi_a = _phi(alpha)
    phi_b = _phi(beta)
    moments = [m0, phi_a - phi_b]
    finite_a = np.where(np.isfinite(alpha), alpha, 0.0)
    finite_b = np.where(np.isfinite(beta), beta, 0.0)
    for k in range(2, degree + 1):
        # alpha^(k-1) phi(alpha) is 0 at alpha = +-inf, where phi = 0 (inf * 0 would be nan).
        moments.append(finite_a ** (k - 1) * phi_a - finite_b ** (k - 1) * phi_b
                       + (k - 1) * moments[k - 2])
    return moments[:degree + 1]


def _phi(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _smoothed(g: Callable, y: np.ndarray, sigma: float, variance: bool
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """E[g(y + sigma eta)] (and the variance, in two passes) by Gauss-Legendre in eta."""
    if sigma == 0.0:
        return np.asarray(g(y), dtype=float), (np.zeros_like(y) if variance else None)
    panel = min(1.0, 0.5 / sigma)
    eta, w = gaussian_rule((), half_width=_INNER_HALF_WIDTH, panel=panel, order=_ORDER)
    mean = np.empty_like(y)
    var = np.empty_like(y) if variance else None
    # Rows of the (outer, inner) grid in chunks of ~8 MB.
    rows = max(1, (1 << 20) // eta.size)
    for start in range(0, y.size, rows):
        block = slice(start, start + rows)
        values = np.asarray(g(y[block, None] + sigma * eta[None, :]), dtype=float)
        mean[block] = values @ w
        if variance:
            var[block] = (values - mean[block, None]) ** 2 @ w
    return mean, var


@functools.lru_cache(maxsize=256)
def _shifted(act: Activation, m: float):
    """sigma - m as pieces when sigma is piecewise polynomial, else as a callable."""
    if act.pieces is None:
        return lambda x: act.fn(x) - m
    return tuple((p.lo, p.hi, _coefficients(p.poly - m)) for p in act.pieces)


@functools.lru_cache(maxsize=256)
def _derivative(act: Activation):
    if act.pieces is None:
        return act.grad
    return tuple((p.lo, p.hi, _coefficients(sympy.diff(p.poly, _X))) for p in act.pieces)


def _coefficients(poly: sympy.Expr) -> tuple[float, ...]:
    """Ascending float coefficients of a polynomial in x (the activations' symbol)."""
    x = next(iter(poly.free_symbols), _X)
    return tuple(float(c) for c in reversed(sympy.Poly(poly, x).all_coeffs()))
