"""The activation catalogue: names with parameters, or any callable.

An :class:`Activation` bundles what the three constant paths and the kernels need:

* ``fn``: vectorised NumPy function ``sigma(x)``;
* ``derivative``: its almost-everywhere derivative ``sigma'(x)`` (``None`` for user callables,
  which then fall back to central differences);
* ``second_derivative``: its almost-everywhere second derivative ``sigma''(x)``, for exact
  Hessian-vector products (``None`` for user callables and activations with jumps);
* ``breakpoints``: the x where ``sigma`` or ``sigma'`` is not smooth (kinks or jumps), so that
  quadrature can split its panels there;
* ``has_jumps``: ``sigma`` itself is discontinuous, so ``E[sigma'(tau xi)^2]`` is infinite and the
  NTK is undefined;
* ``mp_fn``: the same function in mpmath arithmetic, for the arbitrary-precision path;
* ``pieces`` / ``closed_form``: what the symbolic path integrates (see ``ntk.constants``).

Names follow the spec: ``relu``, ``lrelu:a=0.1``, ``abs``, ``tanh``, ``erf``, ``sin``, ``cos``,
``sign``, ``gelu``, ``swish``, ``sigmoid``, ``quad``, ``binary:s1=..,s2=..,b=..`` and
``ternary:s1=..,s2=..,b=..``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import mpmath
import numba
import numpy as np
import sympy
from scipy import special

__all__ = [
    "CATALOGUE",
    "Activation",
    "ClosedForm",
    "Piece",
    "activation",
    "parse_activations",
    "step_activation",
]

_X = sympy.Symbol("x", real=True)
_TAU = sympy.Symbol("tau", positive=True)


@dataclass(frozen=True)
class Piece:
    """One polynomial piece of a piecewise-polynomial activation.

    ``sigma(x) = poly(x)`` for ``lo < x < hi``; ``poly`` is a SymPy expression in ``x`` whose
    coefficients are numbers (the activation's parameters already substituted).
    """

    lo: float
    hi: float
    poly: sympy.Expr


@dataclass(frozen=True)
class ClosedForm:
    """Hand-derived Gaussian integrals of a smooth activation, as SymPy expressions in ``tau``.

    With xi ~ N(0, 1):  M = E[sigma(tau xi)],  N = E[xi sigma(tau xi)],  S = E[sigma(tau xi)^2],
    P = E[sigma'(tau xi)^2].  All activation constants follow from these by differentiation in
    tau (see ``ntk.constants``), so the symbolic path never integrates numerically.
    """

    M: sympy.Expr
    N: sympy.Expr
    S: sympy.Expr
    P: sympy.Expr


@dataclass(frozen=True, eq=False)
class Activation:
    """A scalar activation function with what the constant and kernel paths need.

    Attributes:
        name: canonical name with parameters, e.g. ``"lrelu:a=0.1"``.
        fn: vectorised ``sigma``; maps an array to an array of the same shape.
        derivative: vectorised almost-everywhere ``sigma'``, or ``None`` (central differences).
        breakpoints: sorted x where ``sigma`` or ``sigma'`` is not smooth.
        has_jumps: ``sigma`` is discontinuous (``E[sigma'^2]`` is infinite).
        odd: ``sigma`` is odd, so ``d2 = 0`` at every scale.
        mp_fn: ``sigma`` on mpmath numbers, or ``None`` (the float ``fn`` is used).
        pieces: piecewise-polynomial form, or ``None``.
        closed_form: hand-derived Gaussian integrals, or ``None``.
        params: the parameters by name.
        second_derivative: vectorised almost-everywhere ``sigma''`` (the Dirac masses at kinks
            are left out), or ``None`` when unknown (user callables) or meaningless (jumps).
    """

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray] | None = None
    breakpoints: tuple[float, ...] = ()
    has_jumps: bool = False
    odd: bool = False
    mp_fn: Callable | None = None
    pieces: tuple[Piece, ...] | None = None
    closed_form: ClosedForm | None = None
    params: dict[str, float] = field(default_factory=dict)
    # Last, so that positional construction of the fields above keeps its meaning.
    second_derivative: Callable[[np.ndarray], np.ndarray] | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(x)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"

    @property
    def has_symbolic(self) -> bool:
        """Whether the symbolic (closed-form) path exists for this activation."""
        return self.pieces is not None or self.closed_form is not None

    def grad(self, x: np.ndarray) -> np.ndarray:
        """``sigma'(x)`` almost everywhere (central differences for a bare callable)."""
        if self.derivative is not None:
            return self.derivative(x)
        x = np.asarray(x, dtype=float)
        h = 1e-5 * np.maximum(1.0, np.abs(x))
        return (self.fn(x + h) - self.fn(x - h)) / (2 * h)


def _piecewise_loop(x, his, coef, out):
    """out[i] = polynomial of x[i]'s piece (Horner), for flat arrays x and out."""
    n_cuts = his.shape[0]
    degree = coef.shape[0] - 1
    for i in numba.prange(x.shape[0]):
        v = x[i]
        k = 0
        while k < n_cuts and v >= his[k]:
            k += 1
        acc = coef[0, k]
        for d in range(1, degree + 1):
            acc = acc * v + coef[d, k]
        out[i] = acc


_piecewise_parallel = numba.njit(parallel=True, cache=True)(_piecewise_loop)
_piecewise_serial = numba.njit(cache=True)(_piecewise_loop)
# Below this size waking the thread pool costs more than the loop itself.
_PARALLEL_MIN_SIZE = 1 << 16


def _piecewise_fn(pieces: Sequence[Piece]) -> Callable[[np.ndarray], np.ndarray]:
    """Evaluation of a piecewise polynomial (value at a breakpoint: the right piece).

    One fused Numba pass per call finds each entry's piece and runs Horner's rule there.
    Float32 input stays float32; anything else is computed in float64.
    """
    polys = [sympy.Poly(p.poly, _X).all_coeffs() for p in pieces]
    degree = max(len(c) for c in polys) - 1
    # coef[d, k]: coefficient of x^(degree - d) on piece k.
    coef = np.zeros((degree + 1, len(pieces)))
    for k, c in enumerate(polys):
        coef[degree + 1 - len(c):, k] = [float(v) for v in c]
    his = np.array([p.hi for p in pieces[:-1]], dtype=float)
    tables = {np.dtype(t): (his.astype(t), coef.astype(t)) for t in (np.float32, np.float64)}

    def fn(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        dtype = np.dtype(np.float32) if x.dtype == np.float32 else np.dtype(np.float64)
        x = np.ascontiguousarray(x, dtype=dtype)
        out = np.empty_like(x)
        kernel = _piecewise_parallel if x.size >= _PARALLEL_MIN_SIZE else _piecewise_serial
        kernel(x.reshape(-1), *tables[dtype], out.reshape(-1))
        return out

    return fn


def piecewise_mp(pieces: Sequence[Piece]) -> Callable:
    """mpmath evaluation of a piecewise polynomial (value at a breakpoint: the right piece)."""
    funcs = [(p.hi, sympy.lambdify(_X, p.poly, "mpmath")) for p in pieces]

    def fn(x):
        for hi, f in funcs:
            if x < hi:
                return f(x)
        return funcs[-1][1](x)

    return fn


def _from_pieces(name: str, pieces: list[Piece], params: dict[str, float],
                 odd: bool = False) -> Activation:
    """Build an activation from its pieces; kinks and jumps are read off the pieces.

    The derivatives are those of the pieces, so at a kink they take the right piece's value
    and the second derivative leaves out the Dirac mass (it is the almost-everywhere one).
    """
    pieces_t = tuple(pieces)
    derivs = [Piece(p.lo, p.hi, sympy.diff(p.poly, _X)) for p in pieces_t]
    second = [Piece(p.lo, p.hi, sympy.diff(p.poly, _X, 2)) for p in pieces_t]
    breakpoints = []
    has_jumps = False
    for left, right in itertools.pairwise(pieces_t):
        b = left.hi
        value_gap = float(left.poly.subs(_X, b) - right.poly.subs(_X, b))
        slope_gap = float(sympy.diff(left.poly, _X).subs(_X, b)
                          - sympy.diff(right.poly, _X).subs(_X, b))
        if value_gap != 0.0:
            has_jumps = True
        if value_gap != 0.0 or slope_gap != 0.0:
            breakpoints.append(float(b))
    return Activation(
        name=name, fn=_piecewise_fn(pieces_t), derivative=_piecewise_fn(derivs),
        breakpoints=tuple(breakpoints), has_jumps=has_jumps, odd=odd,
        mp_fn=piecewise_mp(pieces_t), pieces=pieces_t, params=params,
        # A jump makes sigma'' a derivative of a Dirac mass: no curvature to report.
        second_derivative=None if has_jumps else _piecewise_fn(second))


_INF = math.inf


def _relu(params):
    return _from_pieces("relu", [Piece(-_INF, 0.0, sympy.Integer(0)), Piece(0.0, _INF, _X)],
                        params)


def _lrelu(params):
    a = params["a"]
    name = f"lrelu:a={_fmt(a)}"
    return _from_pieces(name, [Piece(-_INF, 0.0, sympy.Float(a) * _X), Piece(0.0, _INF, _X)],
                        params)


def _abs(params):
    return _from_pieces("abs", [Piece(-_INF, 0.0, -_X), Piece(0.0, _INF, _X)], params)


def _sign(params):
    return _from_pieces("sign", [Piece(-_INF, 0.0, sympy.Integer(-1)),
                                 Piece(0.0, _INF, sympy.Integer(1))], params, odd=True)


def _quad(params):
    return _from_pieces("quad", [Piece(-_INF, _INF, _X**2)], params)


def _check_thresholds(kind: str, params: dict[str, float]) -> None:
    if not params["s1"] <= params["s2"]:
        raise ValueError(f"{kind}: thresholds must satisfy s1 <= s2, got s1={params['s1']}, "
                         f"s2={params['s2']}")
    if params["b"] == 0:
        raise ValueError(f"{kind}: level b must be non-zero")


def _binary(params):
    _check_thresholds("binary", params)
    s1, s2, b = params["s1"], params["s2"], params["b"]
    name = f"binary:s1={_fmt(s1)},s2={_fmt(s2)},b={_fmt(b)}"
    bb = sympy.Float(b)
    pieces = [Piece(-_INF, s1, bb), Piece(s1, s2, sympy.Integer(0)), Piece(s2, _INF, bb)]
    if s1 == s2:
        pieces = [Piece(-_INF, s1, bb), Piece(s2, _INF, bb)]
    return _from_pieces(name, pieces, params)


def _ternary(params):
    _check_thresholds("ternary", params)
    s1, s2, b = params["s1"], params["s2"], params["b"]
    name = f"ternary:s1={_fmt(s1)},s2={_fmt(s2)},b={_fmt(b)}"
    bb = sympy.Float(b)
    pieces = [Piece(-_INF, s1, -bb), Piece(s1, s2, sympy.Integer(0)), Piece(s2, _INF, bb)]
    if s1 == s2:
        pieces = [Piece(-_INF, s1, -bb), Piece(s2, _INF, bb)]
    return _from_pieces(name, pieces, params, odd=(s1 == -s2))


def step_activation(thresholds: Sequence[float], levels: Sequence[float]) -> Activation:
    """A piecewise-constant activation in canonical form.

    sigma(x) = levels[0] for x < thresholds[0], levels[j] for thresholds[j-1] <= x <
    thresholds[j], and levels[-1] for x >= thresholds[-1].

    Args:
        thresholds: (k-1,) strictly ascending finite numbers.
        levels: (k,) finite numbers.

    Raises:
        ValueError: wrong lengths, unsorted or non-finite values.
    """
    th = [float(t) for t in thresholds]
    lv = [float(v) for v in levels]
    if len(lv) != len(th) + 1 or not th:
        raise ValueError(f"a step activation needs k >= 2 levels and k - 1 thresholds, got "
                         f"{len(lv)} levels and {len(th)} thresholds")
    if not all(math.isfinite(v) for v in th + lv):
        raise ValueError("thresholds and levels must be finite")
    if any(b <= a for a, b in itertools.pairwise(th)):
        raise ValueError(f"thresholds must be strictly ascending, got {th}")
    edges = [-_INF, *th, _INF]
    pieces = [Piece(lo, hi, sympy.Float(v)) for lo, hi, v in zip(edges[:-1], edges[1:], lv,
                                                                  strict=True)]
    odd = th == [-t for t in reversed(th)] and lv == [-v for v in reversed(lv)]
    name = "steps:t=[" + ",".join(map(_fmt, th)) + "],v=[" + ",".join(map(_fmt, lv)) + "]"
    params = {f"t{j}": t for j, t in enumerate(th)} | {f"v{j}": v for j, v in enumerate(lv)}
    return _from_pieces(name, pieces, params, odd=odd)


# Closed forms of the smooth activations (xi ~ N(0, 1)); derivations in docs of ClosedForm.
_t = _TAU
_SIN = ClosedForm(M=sympy.Integer(0), N=_t * sympy.exp(-_t**2 / 2),
                  S=(1 - sympy.exp(-2 * _t**2)) / 2, P=(1 + sympy.exp(-2 * _t**2)) / 2)
_COS = ClosedForm(M=sympy.exp(-_t**2 / 2), N=sympy.Integer(0),
                  S=(1 + sympy.exp(-2 * _t**2)) / 2, P=(1 - sympy.exp(-2 * _t**2)) / 2)
# erf: E[xi erf(tau xi)] = tau E[erf'(tau xi)];  E[erf(a xi)^2] = (2/pi) asin(2a^2/(1+2a^2)).
_ERF = ClosedForm(
    M=sympy.Integer(0),
    N=2 * _t / sympy.sqrt(sympy.pi * (1 + 2 * _t**2)),
    S=2 / sympy.pi * sympy.asin(2 * _t**2 / (1 + 2 * _t**2)),
    P=4 / (sympy.pi * sympy.sqrt(1 + 4 * _t**2)))
# gelu = x Phi(x).  Stein's lemma with E[Phi(a xi)^2] = 1/4 + asin(a^2/(1+a^2))/(2 pi),
# E[phi(a xi)^2] = 1/(2 pi sqrt(1+2a^2)) and E[xi Phi(a xi) phi(a xi)] = a/(2 pi (1+a^2)
# sqrt(1+2a^2)) gives the four integrals below.
_GELU_PHI2 = sympy.Rational(1, 4) + sympy.asin(_t**2 / (1 + _t**2)) / (2 * sympy.pi)
_GELU_CROSS = _t**2 / (sympy.pi * (1 + _t**2) * sympy.sqrt(1 + 2 * _t**2))
_GELU = ClosedForm(
    M=_t**2 / sympy.sqrt(2 * sympy.pi * (1 + _t**2)),
    N=_t / 2,
    S=_t**2 * (_GELU_PHI2 + _GELU_CROSS),
    P=_GELU_PHI2 + _GELU_CROSS + _t**2 / (2 * sympy.pi * (1 + 2 * _t**2) ** sympy.Rational(3, 2)))


def _phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _ndtr_mp(x):
    return (1 + mpmath.erf(x / mpmath.sqrt(2))) / 2


def _smooth(name, fn, derivative, second_derivative, mp_fn, closed_form=None, odd=False):
    def make(params):
        return Activation(name=name, fn=fn, derivative=derivative, mp_fn=mp_fn,
                          closed_form=closed_form, odd=odd, params=params,
                          second_derivative=second_derivative)
    return make


def _sigmoid_np(x):
    return special.expit(x)


def _tanh_dd(x):
    # tanh'' = -2 tanh (1 - tanh^2)
    t = np.tanh(x)
    return -2 * t * (1 - t * t)


def _gelu_dd(x):
    # (x Phi)'' = (Phi + x phi)' = 2 phi + x phi' = (2 - x^2) phi
    return (2 - x * x) * _phi(x)


def _swish_dd(x):
    # (x s)'' = 2 s' + x s'' with s' = s (1 - s) and s'' = s (1 - s) (1 - 2 s)
    s = _sigmoid_np(x)
    return s * (1 - s) * (2 + x * (1 - 2 * s))


def _sigmoid_dd(x):
    s = _sigmoid_np(x)
    return s * (1 - s) * (1 - 2 * s)


_FACTORIES: dict[str, tuple[dict[str, float], Callable[[dict[str, float]], Activation]]] = {
    "relu": ({}, _relu),
    "lrelu": ({"a": 0.1}, _lrelu),
    "abs": ({}, _abs),
    "sign": ({}, _sign),
    "quad": ({}, _quad),
    "binary": ({"s1": -1.0, "s2": 1.0, "b": 1.0}, _binary),
    "ternary": ({"s1": -1.0, "s2": 1.0, "b": 1.0}, _ternary),
    "tanh": ({}, _smooth("tanh", np.tanh, lambda x: 1 - np.tanh(x) ** 2, _tanh_dd,
                         mpmath.tanh, odd=True)),
    "erf": ({}, _smooth("erf", special.erf,
                        lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x),
                        lambda x: -4 / math.sqrt(math.pi) * x * np.exp(-x * x), mpmath.erf,
                        closed_form=_ERF, odd=True)),
    "sin": ({}, _smooth("sin", np.sin, np.cos, lambda x: -np.sin(x), mpmath.sin,
                        closed_form=_SIN, odd=True)),
    "cos": ({}, _smooth("cos", np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x), mpmath.cos,
                        closed_form=_COS)),
    "gelu": ({}, _smooth("gelu", lambda x: x * special.ndtr(x),
                         lambda x: special.ndtr(x) + x * _phi(x), _gelu_dd,
                         lambda x: x * _ndtr_mp(x), closed_form=_GELU)),
    "swish": ({}, _smooth("swish", lambda x: x * _sigmoid_np(x),
                          lambda x: _sigmoid_np(x) * (1 + x * (1 - _sigmoid_np(x))), _swish_dd,
                          lambda x: x / (1 + mpmath.exp(-x)))),
    "sigmoid": ({}, _smooth("sigmoid", _sigmoid_np,
                            lambda x: _sigmoid_np(x) * (1 - _sigmoid_np(x)), _sigmoid_dd,
                            lambda x: 1 / (1 + mpmath.exp(-x)))),
}

#: Names of the catalogue activations.
CATALOGUE: tuple[str, ...] = tuple(_FACTORIES)


def _fmt(v: float) -> str:
    return repr(float(v)).removesuffix(".0") if float(v).is_integer() else repr(float(v))


def _parse_params(name: str, text: str, defaults: dict[str, float]) -> dict[str, float]:
    params = dict(defaults)
    if not text:
        return params
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"malformed parameter {item!r} of activation {name!r}: "
                             "expected key=value")
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise ValueError(f"activation {name!r} has no parameter {key!r} (known: {known})")
        try:
            params[key] = float(value)
        except ValueError:
            raise ValueError(f"parameter {key} of activation {name!r} must be a number, "
                             f"got {value!r}") from None
        if not math.isfinite(params[key]):
            raise ValueError(f"parameter {key} of activation {name!r} must be finite")
    return params


def activation(spec: str | Activation | Callable, **params: float) -> Activation:
    """Return the activation named by ``spec``.

    Args:
        spec: a catalogue name with optional parameters (``"binary:s1=-0.5,s2=0.5,b=1"``),
            an :class:`Activation` (returned as is), or any vectorised callable (wrapped; its
            derivative is taken by central differences and it has no symbolic path).
        **params: parameters given as keywords instead of in the string.

    Returns:
        The :class:`Activation`.

    Raises:
        ValueError: unknown name, unknown or malformed parameter.
    """
    if isinstance(spec, Activation):
        return spec
    if callable(spec):
        name = getattr(spec, "__name__", "callable")
        return Activation(name=name, fn=lambda x: np.asarray(spec(np.asarray(x)), dtype=float))
    if not isinstance(spec, str):
        raise ValueError(f"activation must be a name or a callable, got {type(spec).__name__}")
    name, _, text = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in _FACTORIES:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(CATALOGUE)}")
    defaults, _ = _FACTORIES[name]
    extra = ",".join(f"{key}={value}" for key, value in params.items())
    merged = _parse_params(name, ",".join(filter(None, (text, extra))), defaults)
    return _build(name, tuple(sorted(merged.items())))


@functools.lru_cache(maxsize=1024)
def _build(name: str, params: tuple[tuple[str, float], ...]) -> Activation:
    """Cached so that equal specs give one object (the symbolic path caches per object)."""
    return _FACTORIES[name][1](dict(params))


def parse_activations(text: str | Sequence) -> list[Activation]:
    """Parse a comma-separated list of activations, one per layer.

    Parameters stay with the activation before them: ``"binary:s1=-1,s2=1,b=1,tanh"`` is two
    activations. A sequence of names or callables is accepted too.

    Raises:
        ValueError: empty list, or any element that :func:`activation` rejects.
    """
    if not isinstance(text, str):
        items = list(text)
        if not items:
            raise ValueError("at least one activation is needed")
        return [activation(a) for a in items]
    specs: list[str] = []
    for token in text.split(","):
        token = token.strip()
        if not token:
            raise ValueError(f"empty activation name in {text!r}")
        if "=" in token and ":" not in token:
            if not specs:
                raise ValueError(f"parameter {token!r} comes before any activation name")
            sep = "," if ":" in specs[-1] else ":"
            specs[-1] += sep + token
        else:
            specs.append(token)
    return [activation(s) for s in specs]
