"""Activation constants at an input scale tau, by three independent paths.

With xi ~ N(0, 1) and m = E[sigma(tau xi)] (spec section 3, Stein forms on the right):

    m0        = E[sigma(tau xi)]
    d1        = E[sigma'(tau xi)]            = E[xi sigma(tau xi)] / tau
    d2        = E[sigma''(tau xi)]           = E[(xi^2 - 1) sigma(tau xi)] / tau^2
    d3        = E[((sigma - m)^2)''(tau xi)] = E[(xi^2 - 1)(sigma(tau xi) - m)^2] / tau^2
    tau2_next = Var[sigma(tau xi)]
    esp2      = E[sigma'(tau xi)^2]          (infinite when sigma has jumps)

Paths:

* ``quad``: composite Gauss-Legendre in double precision, cut at the breakpoints; vectorised,
  no SymPy at call time. This is what ``auto`` uses.
* ``symbolic``: closed forms in tau. From the four integrals M = E[sigma(tau xi)],
  N = E[xi sigma(tau xi)], S = E[sigma^2], P = E[sigma'^2] (exact Gaussian moments on each piece
  of a piecewise polynomial, or the hand-derived forms of ``ClosedForm``) the constants follow by
  differentiating in tau, since E[(xi^2 - 1) f(tau xi)] = tau d/dtau E[f(tau xi)]:
  m0 = M, d1 = N / tau, d2 = M' / tau, d3 = (S' - 2 M M') / tau, tau2_next = S - M^2.
  Built once per activation (cached) and evaluated in mpmath at 30 digits.
* ``mpmath``: adaptive tanh-sinh quadrature of the Stein forms at 30 digits.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ntk.activations import Activation, Piece, _symbols, activation, piecewise_mp
from ntk.quadrature import gaussian_rule
from ntklc.errors import InputError

if TYPE_CHECKING:
    import sympy

# mpmath and SymPy are imported by the paths that use them (``symbolic``, ``mpmath``), not with
# this module: ``auto`` / ``quad`` needs neither.

__all__ = ["METHODS", "ActivationConstants", "activation_constants", "tau_chain"]

METHODS = ("auto", "quad", "symbolic", "mpmath")

_MP_DPS = 30


@dataclass(frozen=True)
class ActivationConstants:
    """The constants of one activation at input scale ``tau`` (see module docstring).

    ``esp2`` is ``math.inf`` for activations with jumps.
    """

    tau: float
    m0: float
    d1: float
    d2: float
    d3: float
    tau2_next: float
    esp2: float
    method: str

    def as_dict(self) -> dict[str, float | str | None]:
        """JSON-ready dict; an infinite ``esp2`` becomes ``None``."""
        out = asdict(self)
        if math.isinf(self.esp2):
            out["esp2"] = None
        return out


def activation_constants(act: str | Activation, tau: float, method: str = "auto"
                         ) -> ActivationConstants:
    """Constants m0, d1, d2, d3, tau2_next, esp2 of ``act`` at input scale ``tau``.

    Args:
        act: activation name (``"relu"``, ``"binary:s1=-1,s2=1,b=1"``) or :class:`Activation`.
        tau: input scale, > 0.
        method: ``auto`` (= ``quad``), ``quad``, ``symbolic`` or ``mpmath``.

    Returns:
        :class:`ActivationConstants`.

    Raises:
        InputError: tau <= 0 or not finite, unknown method, or ``symbolic`` for an activation
            without closed form (tanh, sigmoid, swish, bare callables).
    """
    act = activation(act)
    tau = float(tau)
    if not (math.isfinite(tau) and tau > 0):
        raise InputError(f"tau must be a positive finite number, got {tau}")
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method in ("auto", "quad"):
        values = _quad_constants(act, tau)
    elif method == "symbolic":
        values = _symbolic_constants(act, tau)
    else:
        values = _mpmath_constants(act, tau)
    return ActivationConstants(tau=tau, **values, method="quad" if method == "auto" else method)


def tau_chain(acts, tau0: float, method: str = "auto") -> list[ActivationConstants]:
    """Constants of each layer along the network's own scale chain.

    Layer l is evaluated at tau_{l-1}, with tau_l^2 = tau2_next of layer l.

    Args:
        acts: per-layer activations (names or :class:`Activation`), at least one.
        tau0: input scale, > 0.

    Returns:
        One :class:`ActivationConstants` per layer.

    Raises:
        InputError: empty network, or a layer whose output variance vanishes (the next layer's
            scale would be 0).
    """
    acts = list(acts)
    if not acts:
        raise InputError("the network needs at least one layer (L >= 1)")
    out = []
    tau = float(tau0)
    for layer, act in enumerate(acts, start=1):
        c = activation_constants(act, tau, method)
        out.append(c)
        if c.tau2_next <= 0 and layer < len(acts):
            raise InputError(f"layer {layer} has zero output variance; the next layer has no "
                             "input scale")
        tau = math.sqrt(max(c.tau2_next, 0.0))
    return out


# -- quadrature path ---------------------------------------------------------------------------

def _quad_constants(act: Activation, tau: float) -> dict[str, float]:
    cuts = [b / tau for b in act.breakpoints]
    # Poles of tanh-like activations sit at distance ~1/tau from the real xi axis.
    nodes, w = gaussian_rule(cuts, panel=0.5 / max(1.0, tau))
    f = act.fn(tau * nodes)
    h2 = nodes * nodes - 1.0
    m0 = w @ f
    fc = f - m0
    if act.has_jumps:
        esp2 = math.inf
    else:
        g = act.grad(tau * nodes)
        esp2 = float(w @ (g * g))
    return {
        "m0": float(m0),
        "d1": float(w @ (nodes * f)) / tau,
        "d2": float(w @ (h2 * f)) / tau**2,
        "d3": float(w @ (h2 * fc * fc)) / tau**2,
        "tau2_next": float(w @ (fc * fc)),
        "esp2": esp2,
    }


# -- mpmath path -------------------------------------------------------------------------------

def _mp_derivative(act: Activation):
    import mpmath
    import sympy

    _X = _symbols()[0]
    if act.pieces is not None:
        return piecewise_mp([Piece(p.lo, p.hi, sympy.diff(p.poly, _X)) for p in act.pieces])
    fn = _mp_fn(act)
    return lambda x: mpmath.diff(fn, x)


def _mp_fn(act: Activation):
    import mpmath

    if act.mp_fn is not None:
        return act.mp_fn
    return lambda x: mpmath.mpf(float(act.fn(np.array([float(x)]))[0]))


def _mpmath_constants(act: Activation, tau: float) -> dict[str, float]:
    import mpmath

    with mpmath.workdps(_MP_DPS):
        t = mpmath.mpf(tau)
        fn = _mp_fn(act)
        cuts = sorted({mpmath.mpf(b) / t for b in act.breakpoints})
        interval = [-mpmath.inf, *cuts, mpmath.inf]
        norm = 1 / mpmath.sqrt(2 * mpmath.pi)

        def expect(g):
            return mpmath.quad(lambda x: g(x) * mpmath.exp(-x * x / 2) * norm, interval)

        m0 = expect(lambda x: fn(t * x))
        values = {
            "m0": m0,
            "d1": expect(lambda x: x * fn(t * x)) / t,
            "d2": expect(lambda x: (x * x - 1) * fn(t * x)) / t**2,
            "d3": expect(lambda x: (x * x - 1) * (fn(t * x) - m0) ** 2) / t**2,
            "tau2_next": expect(lambda x: (fn(t * x) - m0) ** 2),
        }
        if act.has_jumps:
            values["esp2"] = mpmath.inf
        else:
            deriv = _mp_derivative(act)
            values["esp2"] = expect(lambda x: deriv(t * x) ** 2)
        return {k: float(v) for k, v in values.items()}


# -- symbolic path -----------------------------------------------------------------------------

def _gauss_moment(k: int, a, b) -> sympy.Expr:
    """Closed form of int_a^b x^k phi(x) dx (a, b SymPy expressions or +-oo).

    Recursion: I_k = [-x^(k-1) phi(x)]_a^b + (k - 1) I_(k-2), I_0 = Phi(b) - Phi(a),
    I_1 = phi(a) - phi(b); boundary terms vanish at infinity.
    """
    import sympy

    def phi(x):
        return sympy.exp(-x**2 / 2) / sympy.sqrt(2 * sympy.pi)

    def bracket(j):  # [-x^j phi(x)]_a^b
        out = sympy.Integer(0)
        if b != sympy.oo:
            out -= b**j * phi(b)
        if a != -sympy.oo:
            out += a**j * phi(a)
        return out

    if k == 0:
        cdf_b = 1 if b == sympy.oo else (1 + sympy.erf(b / sympy.sqrt(2))) / 2
        cdf_a = 0 if a == -sympy.oo else (1 + sympy.erf(a / sympy.sqrt(2))) / 2
        return sympy.sympify(cdf_b - cdf_a)
    if k == 1:
        return bracket(0)
    return bracket(k - 1) + (k - 1) * _gauss_moment(k - 2, a, b)


def _piece_expectation(pieces, weight_power: int, square: bool = False,
                       derivative: bool = False) -> sympy.Expr:
    """E[xi^weight_power g(tau xi)] for g = sigma, sigma^2, sigma' or sigma'^2 piecewise."""
    import sympy

    _X, _TAU = _symbols()
    total = sympy.Integer(0)
    for piece in pieces:
        poly = sympy.diff(piece.poly, _X) if derivative else piece.poly
        if square:
            poly = sympy.expand(poly**2)
        a = -sympy.oo if piece.lo == -math.inf else sympy.Float(piece.lo) / _TAU
        b = sympy.oo if piece.hi == math.inf else sympy.Float(piece.hi) / _TAU
        coeffs = sympy.Poly(poly, _X).all_coeffs()[::-1]
        for j, c in enumerate(coeffs):
            if c != 0:
                total += c * _TAU**j * _gauss_moment(j + weight_power, a, b)
    return total


@functools.lru_cache(maxsize=256)
def _symbolic_functions(act: Activation):
    """Lambdified constants (mpmath) of one activation as functions of tau (cached)."""
    import sympy

    _TAU = _symbols()[1]
    if act.pieces is not None:
        M = _piece_expectation(act.pieces, 0)
        N = _piece_expectation(act.pieces, 1)
        S = _piece_expectation(act.pieces, 0, square=True)
        P = None if act.has_jumps else _piece_expectation(act.pieces, 0, square=True,
                                                          derivative=True)
    elif act.closed_form is not None:
        cf = act.closed_form
        M, N, S, P = cf.M, cf.N, cf.S, cf.P
    else:
        raise InputError(f"activation {act.name!r} has no closed form; use method "
                         "'quad' or 'mpmath'")
    dM = sympy.diff(M, _TAU)
    dS = sympy.diff(S, _TAU)
    exprs = {
        "m0": M,
        "d1": N / _TAU,
        "d2": dM / _TAU,
        "d3": (dS - 2 * M * dM) / _TAU,
        "tau2_next": S - M**2,
    }
    if P is not None:
        exprs["esp2"] = P
    return {k: sympy.lambdify(_TAU, v, "mpmath") for k, v in exprs.items()}


def _symbolic_constants(act: Activation, tau: float) -> dict[str, float]:
    import mpmath

    funcs = _symbolic_functions(act)
    with mpmath.workdps(_MP_DPS):
        t = mpmath.mpf(tau)
        values = {k: float(f(t)) for k, f in funcs.items()}
    values.setdefault("esp2", math.inf)
    return values
