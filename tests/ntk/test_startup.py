"""Start-up: the light paths import nothing heavy, and their SymPy-free shortcuts give the same
bits as the SymPy-derived originals.

Piecewise activations are described twice (``ntk.activations._from_pieces``): by float
coefficients, from which their NumPy/Numba functions, kinks and jumps are built without SymPy,
and by SymPy pieces, which the symbolic and mpmath paths read. Here the SymPy pieces rebuild
everything the way the module did before start-up was made lazy (``Poly.all_coeffs``,
``diff``, ``subs``, the Numba kernels), and the two must agree bit for bit: the functions on
floats including +-0, +-inf, NaN and the breakpoints in float32 and float64, and the ``quad``
constants.
"""

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import sympy

import ntk.activations as acts_module
from ntk.activations import CATALOGUE, Activation, activation, step_activation
from ntk.constants import _quad_constants, activation_constants

X = sympy.Symbol("x", real=True)

PIECEWISE = [
    *[name for name in CATALOGUE if activation(name).pieces is not None],
    "lrelu:a=0.2", "lrelu:a=0", "lrelu:a=-1.5", "binary:s1=-0.5,s2=0.25,b=0.3",
    "binary:s1=0.5,s2=0.5,b=-2", "ternary:s1=-0.3,s2=0.3,b=1.7", "ternary:s1=0,s2=0,b=1",
    step_activation([-1.0, 0.0, 2.5], [-0.0, 0.1, 1.0, -3.0]),
    step_activation([0.1], [0.0, 0.0]),
]


def _ids(spec):
    return spec if isinstance(spec, str) else spec.name


def _sympy_fn(pieces):
    """The evaluation as built before: tables from SymPy coefficients, run by Numba."""
    polys = [sympy.Poly(p.poly, X).all_coeffs() for p in pieces]
    degree = max(len(c) for c in polys) - 1
    coef = np.zeros((degree + 1, len(pieces)))
    for k, c in enumerate(polys):
        coef[degree + 1 - len(c):, k] = [float(v) for v in c]
    his = np.array([p.hi for p in pieces[:-1]], dtype=float)
    _, serial = acts_module._numba_kernels()

    def fn(x):
        x = np.asarray(x)
        dtype = np.float32 if x.dtype == np.float32 else np.float64
        x = np.ascontiguousarray(x, dtype=dtype)
        out = np.empty_like(x)
        serial(x.reshape(-1), his.astype(dtype), coef.astype(dtype), out.reshape(-1))
        return out

    return fn


def _sympy_reference(act: Activation):
    pieces = act.pieces
    derivs = [acts_module.Piece(p.lo, p.hi, sympy.diff(p.poly, X)) for p in pieces]
    second = [acts_module.Piece(p.lo, p.hi, sympy.diff(p.poly, X, 2)) for p in pieces]
    breakpoints, has_jumps = [], False
    for left, right in itertools.pairwise(pieces):
        b = left.hi
        value_gap = float(left.poly.subs(X, b) - right.poly.subs(X, b))
        slope_gap = float(sympy.diff(left.poly, X).subs(X, b)
                          - sympy.diff(right.poly, X).subs(X, b))
        has_jumps |= value_gap != 0.0
        if value_gap != 0.0 or slope_gap != 0.0:
            breakpoints.append(float(b))
    return Activation(name=act.name, fn=_sympy_fn(pieces), derivative=_sympy_fn(derivs),
                      breakpoints=tuple(breakpoints), has_jumps=has_jumps,
                      second_derivative=None if has_jumps else _sympy_fn(second))


def _inputs(act, size, dtype):
    rng = np.random.default_rng(size)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e308, -1e308, 5e-324]
    for b in act.breakpoints + tuple(p.hi for p in act.pieces):
        if math.isfinite(b):
            special += [b, np.nextafter(b, -np.inf), np.nextafter(b, np.inf)]
    x = np.concatenate([special, 3 * rng.standard_normal(size)])
    with np.errstate(over="ignore"):
        return x.astype(dtype)


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("numba_loaded", [False, True])
@pytest.mark.parametrize("spec", PIECEWISE, ids=_ids)
def test_float_description_matches_sympy_pieces(spec, numba_loaded, monkeypatch):
    # Small inputs go to NumPy until the process has loaded the Numba kernels.
    act = activation(spec)
    ref = _sympy_reference(act)  # loads the Numba kernels: set the switch after it
    monkeypatch.setattr(acts_module, "_numba_loaded", numba_loaded)
    assert act.breakpoints == ref.breakpoints
    assert act.has_jumps == ref.has_jumps
    assert (act.second_derivative is None) == (ref.second_derivative is None)
    pairs = [(act.fn, ref.fn), (act.derivative, ref.derivative)]
    if ref.second_derivative is not None:
        pairs.append((act.second_derivative, ref.second_derivative))
    # Sizes on both sides of the NumPy / Numba switch (and the parallel kernel).
    small, big = acts_module._NUMPY_MAX_SIZE, acts_module._PARALLEL_MIN_SIZE
    sizes = [0, 5, small - 40, small + 1, big]
    for dtype, size, (got, want) in itertools.product((np.float32, np.float64), sizes, pairs):
        x = _inputs(act, size, dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            assert _same_bits(got(x), want(x)), (dtype, size)
            assert _same_bits(got(x.reshape(1, -1)), want(x).reshape(1, -1))
    with np.errstate(invalid="ignore"):
        assert _same_bits(act.fn(np.float64(0.5)), ref.fn(np.float64(0.5)))


@pytest.mark.parametrize("spec", PIECEWISE, ids=_ids)
@pytest.mark.parametrize("tau", [0.3, 1.0, 2.0, 7.5])
def test_quad_constants_match_sympy_pieces(spec, tau, monkeypatch):
    act = activation(spec)
    ref = _sympy_reference(act)
    monkeypatch.setattr(acts_module, "_numba_loaded", False)  # the NumPy path, as in the CLI
    assert _quad_constants(act, tau) == _quad_constants(ref, tau)


def test_lazy_fields_and_reexports():
    import ntk
    import validation

    relu = activation("relu")
    assert relu.pieces is relu.pieces and len(relu.pieces) == 2
    assert relu.closed_form is None and activation("erf").closed_form is not None
    import mpmath

    assert activation("tanh").mp_fn is mpmath.tanh
    for package in (ntk, validation):
        for name in package.__all__:
            assert getattr(package, name) is not None
    with pytest.raises(AttributeError):
        ntk.no_such_name  # noqa: B018
    assert activation_constants("relu", 1.0, "symbolic").method == "symbolic"


HEAVY = ("sympy", "mpmath", "numba", "matplotlib", "scipy.optimize", "dask", "scipy.special",
         "solvers", "nets", "torch")


def test_help_and_constants_import_nothing_heavy():
    code = ("import contextlib, io, json, sys\n"
            "from validation.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            "        main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "    main(['constants', '--act', 'relu', '--json'])\n"
            "    main(['constants', '--act', 'binary:s1=-1,s2=0.5,b=2', '--tau', '2'])\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == []
