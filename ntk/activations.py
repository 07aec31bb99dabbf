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
from typing import TYPE_CHECKING

import numpy as np

from ntklc.errors import InputError

if TYPE_CHECKING:
    import sympy

__all__ = [
    "CATALOGUE",
    "Activation",
    "ClosedForm",
    "Piece",
    "activation",
    "parse_activations",
    "step_activation",
]

# SymPy, mpmath, Numba and scipy.special are imported on first use, not with this module: the
# quadrature path of ``ntk.constants`` (what ``ntklc constants`` runs) needs none of them. The
# SymPy pieces, closed forms and mpmath functions of an activation are built when first read
# (``_LazyField``), from the same expressions as before, so every path gives the same numbers.


@functools.cache
def _symbols():
    import sympy

    return sympy.Symbol("x", real=True), sympy.Symbol("tau", positive=True)


@functools.cache
def _special():
    from scipy import special

    return special


class _Deferred:
    """A field value computed by ``make()`` when the field is first read."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]):
        self.make = make


class _LazyField:
    """Data descriptor for a dataclass field that may hold a :class:`_Deferred` value.

    The first read evaluates it and stores the result on the instance, so later reads (and
    identity checks such as ``act.pieces is None``) see an ordinary value. The class-level
    default is ``None``.
    """

    def __set_name__(self, owner, name: str) -> None:
        self.slot = f"_lazy_{name}"

    def __get__(self, obj, owner=None):
        if obj is None:
            return None
        value = obj.__dict__[self.slot]
        if isinstance(value, _Deferred):
            value = value.make()
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.slot] = value


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
    mp_fn: Callable | None = _LazyField()  # type: ignore[assignment]
    pieces: tuple[Piece, ...] | None = _LazyField()  # type: ignore[assignment]
    closed_form: ClosedForm | None = _LazyField()  # type: ignore[assignment]
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
    for i in _prange(x.shape[0]):
        v = x[i]
        # Piece = number of cuts <= v (cuts ascend, so the same as stopping at the first cut
        # above v); counting without a branch lets the loop vectorise (about 3x faster).
        k = 0
        for c in range(n_cuts):
            k += v >= his[c]
        acc = coef[0, k]
        for d in range(1, degree + 1):
            acc = acc * v + coef[d, k]
        out[i] = acc


# Replaced by numba.prange when the kernels are compiled (``_numba_kernels``).
_prange = range
# Whether this process has loaded the Numba kernels (then they serve every size).
_numba_loaded = False


@functools.cache
def _numba_kernels():
    """The parallel and serial Numba kernels of ``_piecewise_loop`` (compiled on first use)."""
    global _numba_loaded, _prange
    import numba

    _prange = numba.prange
    kernels = (numba.njit(parallel=True, cache=True)(_piecewise_loop),
               numba.njit(cache=True)(_piecewise_loop))
    _numba_loaded = True
    return kernels


def _piecewise_numpy(x, his, coef):
    """``_piecewise_loop`` in NumPy, operation for operation (the same bits), for small arrays.

    Piece k of an entry is the number of leading cuts it is >= to (as the loop's ``while``);
    Horner's rule then runs with the same multiplications and additions in the same order.
    """
    k = np.zeros(x.shape, dtype=np.intp)
    if his.size:
        alive = x >= his[0]
        k += alive
        for h in his[1:]:
            alive &= x >= h
            k += alive
    acc = coef[0].take(k)
    for d in range(1, coef.shape[0]):
        acc = acc * x + coef[d].take(k)
    return acc


# Below this size waking the thread pool costs more than the loop itself.
_PARALLEL_MIN_SIZE = 1 << 16
# Up to this size NumPy does the evaluation until the process has loaded the Numba kernels, so
# that short calls (the quadrature path of the activation constants, ``ntklc constants``)
# neither import Numba nor load its kernels. Both give the same bits.
_NUMPY_MAX_SIZE = 4096


def _normalised(coeffs: Sequence[float]) -> tuple[float, ...]:
    """Ascending coefficients as floats, without zero high-degree terms (at least one term)."""
    c = [float(v) + 0.0 for v in coeffs]  # + 0.0: no negative zeros
    while len(c) > 1 and c[-1] == 0.0:
        c.pop()
    return tuple(c)


def _poly_derivative(coeffs: Sequence[float]) -> tuple[float, ...]:
    return _normalised([j * c for j, c in enumerate(coeffs)][1:] or [0.0])


def _poly_value(coeffs: Sequence[float], x: float) -> float:
    acc = 0.0
    for c in reversed(coeffs):
        acc = acc * x + c
    return acc


def _piecewise_fn(his: Sequence[float], polys: Sequence[Sequence[float]]
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """Evaluation of a piecewise polynomial (value at a breakpoint: the right piece).

    ``his``: the upper ends of all pieces but the last; ``polys``: each piece's ascending
    coefficients. One fused Numba pass per call finds each entry's piece and runs Horner's rule
    there (NumPy, with the same operations, for small inputs). Float32 input stays float32;
    anything else is computed in float64.
    """
    polys = [_normalised(c)[::-1] for c in polys]  # descending, as Horner reads them
    degree = max(len(c) for c in polys) - 1
    # coef[d, k]: coefficient of x^(degree - d) on piece k.
    coef = np.zeros((degree + 1, len(polys)))
    for k, c in enumerate(polys):
        coef[degree + 1 - len(c):, k] = c
    his = np.array(his, dtype=float)
    tables = {np.dtype(t): (his.astype(t), coef.astype(t)) for t in (np.float32, np.float64)}

    def fn(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        dtype = np.dtype(np.float32) if x.dtype == np.float32 else np.dtype(np.float64)
        x = np.ascontiguousarray(x, dtype=dtype)
        if x.size <= _NUMPY_MAX_SIZE and not _numba_loaded:
            return _piecewise_numpy(x.reshape(-1), *tables[dtype]).reshape(x.shape)
        out = np.empty_like(x)
        parallel, serial = _numba_kernels()
        kernel = parallel if x.size >= _PARALLEL_MIN_SIZE else serial
        kernel(x.reshape(-1), *tables[dtype], out.reshape(-1))
        return out

    return fn


def piecewise_mp(pieces: Sequence[Piece]) -> Callable:
    """mpmath evaluation of a piecewise polynomial (value at a breakpoint: the right piece)."""
    import sympy

    x = _symbols()[0]
    funcs = [(p.hi, sympy.lambdify(x, p.poly, "mpmath")) for p in pieces]

    def fn(x):
        for hi, f in funcs:
            if x < hi:
                return f(x)
        return funcs[-1][1](x)

    return fn


def _from_pieces(name: str, spec: list[tuple[float, float, tuple[float, ...]]],
                 make_pieces: Callable[[], list[Piece]], params: dict[str, float],
                 odd: bool = False) -> Activation:
    """Build an activation from its pieces; kinks and jumps are read off the pieces.

    ``spec`` lists each piece as ``(lo, hi, ascending coefficients)`` in floats: the numeric
    functions, kinks and jumps come from it, without SymPy. ``make_pieces`` returns the same
    pieces as :class:`Piece` with SymPy polynomials; it runs when ``pieces`` or ``mp_fn`` is
    first read (the symbolic and mpmath paths). ``tests/ntk/test_startup.py`` checks that the
    two descriptions agree.

    The derivatives are those of the pieces, so at a kink they take the right piece's value
    and the second derivative leaves out the Dirac mass (it is the almost-everywhere one).
    """
    his = [hi for _, hi, _ in spec[:-1]]
    polys = [_normalised(c) for _, _, c in spec]
    derivs = [_poly_derivative(c) for c in polys]
    second = [_poly_derivative(c) for c in derivs]
    breakpoints = []
    has_jumps = False
    for k in range(len(spec) - 1):
        b = spec[k][1]
        value_gap = _poly_value(polys[k], b) - _poly_value(polys[k + 1], b)
        slope_gap = _poly_value(derivs[k], b) - _poly_value(derivs[k + 1], b)
        if value_gap != 0.0:
            has_jumps = True
        if value_gap != 0.0 or slope_gap != 0.0:
            breakpoints.append(float(b))
    pieces = functools.cache(lambda: tuple(make_pieces()))
    return Activation(
        name=name, fn=_piecewise_fn(his, polys), derivative=_piecewise_fn(his, derivs),
        breakpoints=tuple(breakpoints), has_jumps=has_jumps, odd=odd,
        mp_fn=_Deferred(lambda: piecewise_mp(pieces())), pieces=_Deferred(pieces),
        params=params,
        # A jump makes sigma'' a derivative of a Dirac mass: no curvature to report.
        second_derivative=None if has_jumps else _piecewise_fn(his, second))


_INF = math.inf


def _sympy():
    import sympy

    return sympy


def _relu(params):
    def pieces():
        sympy, x = _sympy(), _symbols()[0]
        return [Piece(-_INF, 0.0, sympy.Integer(0)), Piece(0.0, _INF, x)]
    return _from_pieces("relu", [(-_INF, 0.0, (0,)), (0.0, _INF, (0, 1))], pieces, params)


def _lrelu(params):
    a = params["a"]
    name = f"lrelu:a={_fmt(a)}"

    def pieces():
        sympy, x = _sympy(), _symbols()[0]
        return [Piece(-_INF, 0.0, sympy.Float(a) * x), Piece(0.0, _INF, x)]
    return _from_pieces(name, [(-_INF, 0.0, (0, a)), (0.0, _INF, (0, 1))], pieces, params)


def _abs(params):
    def pieces():
        x = _symbols()[0]
        return [Piece(-_INF, 0.0, -x), Piece(0.0, _INF, x)]
    return _from_pieces("abs", [(-_INF, 0.0, (0, -1)), (0.0, _INF, (0, 1))], pieces, params)


def _sign(params):
    def pieces():
        sympy = _sympy()
        return [Piece(-_INF, 0.0, sympy.Integer(-1)), Piece(0.0, _INF, sympy.Integer(1))]
    return _from_pieces("sign", [(-_INF, 0.0, (-1,)), (0.0, _INF, (1,))], pieces, params,
                        odd=True)


def _quad(params):
    def pieces():
        x = _symbols()[0]
        return [Piece(-_INF, _INF, x**2)]
    return _from_pieces("quad", [(-_INF, _INF, (0, 0, 1))], pieces, params)


def _check_thresholds(kind: str, params: dict[str, float]) -> None:
    if not params["s1"] <= params["s2"]:
        raise InputError(f"{kind}: thresholds must satisfy s1 <= s2, got s1={params['s1']}, "
                         f"s2={params['s2']}")
    if params["b"] == 0:
        raise InputError(f"{kind}: level b must be non-zero")


def _binary(params):
    _check_thresholds("binary", params)
    s1, s2, b = params["s1"], params["s2"], params["b"]
    name = f"binary:s1={_fmt(s1)},s2={_fmt(s2)},b={_fmt(b)}"

    def pieces():
        sympy = _sympy()
        bb = sympy.Float(b)
        if s1 == s2:
            return [Piece(-_INF, s1, bb), Piece(s2, _INF, bb)]
        return [Piece(-_INF, s1, bb), Piece(s1, s2, sympy.Integer(0)), Piece(s2, _INF, bb)]
    spec = [(-_INF, s1, (b,)), (s1, s2, (0,)), (s2, _INF, (b,))]
    if s1 == s2:
        spec = [(-_INF, s1, (b,)), (s2, _INF, (b,))]
    return _from_pieces(name, spec, pieces, params)


def _ternary(params):
    _check_thresholds("ternary", params)
    s1, s2, b = params["s1"], params["s2"], params["b"]
    name = f"ternary:s1={_fmt(s1)},s2={_fmt(s2)},b={_fmt(b)}"

    def pieces():
        sympy = _sympy()
        bb = sympy.Float(b)
        if s1 == s2:
            return [Piece(-_INF, s1, -bb), Piece(s2, _INF, bb)]
        return [Piece(-_INF, s1, -bb), Piece(s1, s2, sympy.Integer(0)), Piece(s2, _INF, bb)]
    spec = [(-_INF, s1, (-b,)), (s1, s2, (0,)), (s2, _INF, (b,))]
    if s1 == s2:
        spec = [(-_INF, s1, (-b,)), (s2, _INF, (b,))]
    return _from_pieces(name, spec, pieces, params, odd=(s1 == -s2))


def step_activation(thresholds: Sequence[float], levels: Sequence[float]) -> Activation:
    """A piecewise-constant activation in canonical form.

    sigma(x) = levels[0] for x < thresholds[0], levels[j] for thresholds[j-1] <= x <
    thresholds[j], and levels[-1] for x >= thresholds[-1].

    Args:
        thresholds: (k-1,) strictly ascending finite numbers.
        levels: (k,) finite numbers.

    Raises:
        InputError: wrong lengths, unsorted or non-finite values.
    """
    th = [float(t) for t in thresholds]
    lv = [float(v) for v in levels]
    if len(lv) != len(th) + 1 or not th:
        raise InputError(f"a step activation needs k >= 2 levels and k - 1 thresholds, got "
                         f"{len(lv)} levels and {len(th)} thresholds")
    if not all(math.isfinite(v) for v in th + lv):
        raise InputError("thresholds and levels must be finite")
    if any(b <= a for a, b in itertools.pairwise(th)):
        raise InputError(f"thresholds must be strictly ascending, got {th}")
    edges = [-_INF, *th, _INF]
    bounds = list(zip(edges[:-1], edges[1:], lv, strict=True))

    def pieces():
        sympy = _sympy()
        return [Piece(lo, hi, sympy.Float(v)) for lo, hi, v in bounds]
    spec = [(lo, hi, (v,)) for lo, hi, v in bounds]
    odd = th == [-t for t in reversed(th)] and lv == [-v for v in reversed(lv)]
    name = "steps:t=[" + ",".join(map(_fmt, th)) + "],v=[" + ",".join(map(_fmt, lv)) + "]"
    params = {f"t{j}": t for j, t in enumerate(th)} | {f"v{j}": v for j, v in enumerate(lv)}
    return _from_pieces(name, spec, pieces, params, odd=odd)


@functools.cache
def _closed_forms() -> dict[str, ClosedForm]:
    """Closed forms of the smooth activations (xi ~ N(0, 1)); derivations in docs of
    ClosedForm. Built on first use (SymPy)."""
    import sympy

    _t = _symbols()[1]
    sin = ClosedForm(M=sympy.Integer(0), N=_t * sympy.exp(-_t**2 / 2),
                     S=(1 - sympy.exp(-2 * _t**2)) / 2, P=(1 + sympy.exp(-2 * _t**2)) / 2)
    cos = ClosedForm(M=sympy.exp(-_t**2 / 2), N=sympy.Integer(0),
                     S=(1 + sympy.exp(-2 * _t**2)) / 2, P=(1 - sympy.exp(-2 * _t**2)) / 2)
    # erf: E[xi erf(tau xi)] = tau E[erf'(tau xi)];  E[erf(a xi)^2] = (2/pi) asin(2a^2/(1+2a^2)).
    erf = ClosedForm(
        M=sympy.Integer(0),
        N=2 * _t / sympy.sqrt(sympy.pi * (1 + 2 * _t**2)),
        S=2 / sympy.pi * sympy.asin(2 * _t**2 / (1 + 2 * _t**2)),
        P=4 / (sympy.pi * sympy.sqrt(1 + 4 * _t**2)))
    # gelu = x Phi(x).  Stein's lemma with E[Phi(a xi)^2] = 1/4 + asin(a^2/(1+a^2))/(2 pi),
    # E[phi(a xi)^2] = 1/(2 pi sqrt(1+2a^2)) and E[xi Phi(a xi) phi(a xi)] = a/(2 pi (1+a^2)
    # sqrt(1+2a^2)) gives the four integrals below.
    gelu_phi2 = sympy.Rational(1, 4) + sympy.asin(_t**2 / (1 + _t**2)) / (2 * sympy.pi)
    gelu_cross = _t**2 / (sympy.pi * (1 + _t**2) * sympy.sqrt(1 + 2 * _t**2))
    gelu = ClosedForm(
        M=_t**2 / sympy.sqrt(2 * sympy.pi * (1 + _t**2)),
        N=_t / 2,
        S=_t**2 * (gelu_phi2 + gelu_cross),
        P=gelu_phi2 + gelu_cross + _t**2 / (2 * sympy.pi * (1 + 2 * _t**2)
                                            ** sympy.Rational(3, 2)))
    return {"sin": sin, "cos": cos, "erf": erf, "gelu": gelu}


@functools.cache
def _mpmath():
    import mpmath

    return mpmath


def _phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _ndtr_mp(x):
    mpmath = _mpmath()
    return (1 + mpmath.erf(x / mpmath.sqrt(2))) / 2


def _smooth(name, fn, derivative, second_derivative, mp_fn, closed_form=False, odd=False):
    """``mp_fn``: returns the mpmath function (called on first use); ``closed_form``: whether
    ``_closed_forms()`` has one under ``name``."""
    def make(params):
        return Activation(
            name=name, fn=fn, derivative=derivative, mp_fn=_Deferred(mp_fn),
            closed_form=_Deferred(lambda: _closed_forms()[name]) if closed_form else None,
            odd=odd, params=params, second_derivative=second_derivative)
    return make


def _erf_np(x):
    return _special().erf(x)


def _ndtr_np(x):
    return _special().ndtr(x)


def _sigmoid_np(x):
    return _special().expit(x)


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
                         lambda: _mpmath().tanh, odd=True)),
    "erf": ({}, _smooth("erf", _erf_np,
                        lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x),
                        lambda x: -4 / math.sqrt(math.pi) * x * np.exp(-x * x),
                        lambda: _mpmath().erf, closed_form=True, odd=True)),
    "sin": ({}, _smooth("sin", np.sin, np.cos, lambda x: -np.sin(x), lambda: _mpmath().sin,
                        closed_form=True, odd=True)),
    "cos": ({}, _smooth("cos", np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x),
                        lambda: _mpmath().cos, closed_form=True)),
    "gelu": ({}, _smooth("gelu", lambda x: x * _ndtr_np(x),
                         lambda x: _ndtr_np(x) + x * _phi(x), _gelu_dd,
                         lambda: lambda x: x * _ndtr_mp(x), closed_form=True)),
    "swish": ({}, _smooth("swish", lambda x: x * _sigmoid_np(x),
                          lambda x: _sigmoid_np(x) * (1 + x * (1 - _sigmoid_np(x))), _swish_dd,
                          lambda: lambda x: x / (1 + _mpmath().exp(-x)))),
    "sigmoid": ({}, _smooth("sigmoid", _sigmoid_np,
                            lambda x: _sigmoid_np(x) * (1 - _sigmoid_np(x)), _sigmoid_dd,
                            lambda: lambda x: 1 / (1 + _mpmath().exp(-x)))),
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
            raise InputError(f"malformed parameter {item!r} of activation {name!r}: "
                             "expected key=value")
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise InputError(f"activation {name!r} has no parameter {key!r} (known: {known})")
        try:
            params[key] = float(value)
        except ValueError:
            raise InputError(f"parameter {key} of activation {name!r} must be a number, "
                             f"got {value!r}") from None
        if not math.isfinite(params[key]):
            raise InputError(f"parameter {key} of activation {name!r} must be finite")
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
        InputError: unknown name, unknown or malformed parameter.
    """
    if isinstance(spec, Activation):
        return spec
    if callable(spec):
        name = getattr(spec, "__name__", "callable")
        return Activation(name=name, fn=lambda x: np.asarray(spec(np.asarray(x)), dtype=float))
    if not isinstance(spec, str):
        raise InputError(f"activation must be a name or a callable, got {type(spec).__name__}")
    name, _, text = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in _FACTORIES:
        raise InputError(f"unknown activation {name!r}; known: {', '.join(CATALOGUE)}")
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
        InputError: empty list, or any element that :func:`activation` rejects.
    """
    if not isinstance(text, str):
        items = list(text)
        if not items:
            raise InputError("at least one activation is needed")
        return [activation(a) for a in items]
    specs: list[str] = []
    for token in text.split(","):
        token = token.strip()
        if not token:
            raise InputError(f"empty activation name in {text!r}")
        if "=" in token and ":" not in token:
            if not specs:
                raise InputError(f"parameter {token!r} comes before any activation name")
            sep = "," if ":" in specs[-1] else ":"
            specs[-1] += sep + token
        else:
            specs.append(token)
    return [activation(s) for s in specs]
