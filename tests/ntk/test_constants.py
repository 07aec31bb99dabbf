"""Activation constants: three independent paths agree; Stein forms equal derivative forms."""

import math

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from ntk import (
    CATALOGUE,
    activation,
    activation_constants,
    gaussian_rule,
    step_activation,
    tau_chain,
)

KEYS = ("m0", "d1", "d2", "d3", "tau2_next", "esp2")
TAUS = (0.25, 0.5, 1.0, 2.0, 4.0)
TOL = 1e-12


def assert_close(a, b, tol=TOL):
    """Absolute agreement, relative when |value| > 1; infinities must match."""
    for key in KEYS:
        x, y = getattr(a, key), getattr(b, key)
        if math.isinf(x) or math.isinf(y):
            assert x == y, key
            continue
        assert abs(x - y) <= tol * max(1.0, abs(y)), (key, x, y)


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("name", CATALOGUE)
def test_quad_matches_mpmath(name, tau):
    assert_close(activation_constants(name, tau, "quad"),
                 activation_constants(name, tau, "mpmath"))


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("name", [n for n in CATALOGUE if activation(n).has_symbolic])
def test_symbolic_matches_mpmath(name, tau):
    assert_close(activation_constants(name, tau, "symbolic"),
                 activation_constants(name, tau, "mpmath"))


def test_auto_is_quad():
    assert activation_constants("tanh", 1.3).method == "quad"
    assert activation_constants("tanh", 1.3) == activation_constants("tanh", 1.3, "quad")


@settings(max_examples=25, deadline=None)
@given(tau=st.floats(0.2, 5.0),
       s1=st.floats(-2.5, 2.5), gap=st.floats(0.01, 3.0), b=st.floats(0.1, 3.0),
       family=st.sampled_from(["binary", "ternary"]))
def test_step_families_three_paths(tau, s1, gap, b, family):
    act = activation(f"{family}:s1={s1!r},s2={s1 + gap!r},b={b!r}")
    ref = activation_constants(act, tau, "mpmath")
    assert_close(activation_constants(act, tau, "quad"), ref)
    assert_close(activation_constants(act, tau, "symbolic"), ref)


@settings(max_examples=15, deadline=None)
@given(tau=st.floats(0.2, 5.0), a=st.floats(-2.0, 2.0))
def test_leaky_relu_three_paths(tau, a):
    act = activation(f"lrelu:a={a!r}")
    ref = activation_constants(act, tau, "mpmath")
    assert_close(activation_constants(act, tau, "quad"), ref)
    assert_close(activation_constants(act, tau, "symbolic"), ref)


@settings(max_examples=30, deadline=None)
@given(tau=st.floats(0.1, 6.0), name=st.sampled_from(CATALOGUE))
def test_quad_matches_mpmath_any_tau(tau, name):
    assert_close(activation_constants(name, tau, "quad"),
                 activation_constants(name, tau, "mpmath"), tol=1e-11)


# Stein forms (what the code computes) against derivative forms E[sigma'], E[sigma''],
# E[((sigma - m)^2)''] with derivatives taken symbolically here, integrated by quadrature.
_x = sympy.Symbol("x", real=True)
SMOOTH = {
    "tanh": sympy.tanh(_x),
    "erf": sympy.erf(_x),
    "sin": sympy.sin(_x),
    "cos": sympy.cos(_x),
    "gelu": _x * (1 + sympy.erf(_x / sympy.sqrt(2))) / 2,
    "swish": _x / (1 + sympy.exp(-_x)),
    "sigmoid": 1 / (1 + sympy.exp(-_x)),
    "quad": _x**2,
}


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_stein_forms_equal_derivative_forms(name, tau):
    expr = SMOOTH[name]
    f1 = sympy.lambdify(_x, sympy.diff(expr, _x), ["scipy", "numpy"])
    f2 = sympy.lambdify(_x, sympy.diff(expr, _x, 2), ["scipy", "numpy"])
    f0 = sympy.lambdify(_x, expr, ["scipy", "numpy"])
    xi, w = gaussian_rule(panel=0.5 / max(1.0, tau))
    u = tau * xi
    c = activation_constants(name, tau)
    m = w @ (f0(u) + 0 * u)
    # ((f - m)^2)'' = 2 f'^2 + 2 (f - m) f''
    d3 = w @ (2 * f1(u) ** 2 + 2 * (f0(u) - m) * f2(u))
    for got, want in [(c.d1, w @ (f1(u) + 0 * u)), (c.d2, w @ (f2(u) + 0 * u)), (c.d3, d3),
                      (c.esp2, w @ (f1(u) ** 2 + 0 * u))]:
        assert abs(got - want) <= 1e-12 * max(1.0, abs(want))


@pytest.mark.parametrize("tau", TAUS)
def test_relu_known_closed_forms(tau):
    c = activation_constants("relu", tau)
    assert abs(c.d1 - 0.5) < 1e-14
    assert abs(c.d2 - 1 / (tau * math.sqrt(2 * math.pi))) < 1e-13
    assert abs(c.tau2_next - tau**2 * (0.5 - 1 / (2 * math.pi))) < 1e-13 * max(1, tau**2)
    assert abs(c.esp2 - 0.5) < 1e-14


@pytest.mark.parametrize("name", ["tanh", "erf", "sin", "sign", "ternary:s1=-0.7,s2=0.7,b=2"])
def test_odd_activations_have_zero_d2(name):
    assert activation(name).odd
    for tau in TAUS:
        assert abs(activation_constants(name, tau).d2) < 1e-14


def test_gelu_d1_is_one_half():
    # d1 = E[Phi(tau xi)] + E[tau xi phi(tau xi)] = 1/2 + 0 at every scale.
    for tau in TAUS:
        assert abs(activation_constants("gelu", tau).d1 - 0.5) < 1e-14


def test_steps_have_infinite_esp2():
    c = activation_constants("binary:s1=-1,s2=0.5,b=1", 1.0)
    assert math.isinf(c.esp2)
    assert c.as_dict()["esp2"] is None


def test_custom_callable_matches_catalogue():
    got = activation_constants(lambda x: np.maximum(x, 0), 1.5)
    # A bare callable has no declared kink, so quadrature error is larger; still close.
    assert_close(got, activation_constants("relu", 1.5), tol=1e-5)


def test_tau_chain_follows_variances():
    chain = tau_chain(["relu", "tanh", "gelu"], 0.8)
    assert chain[0].tau == 0.8
    assert chain[1].tau == pytest.approx(math.sqrt(chain[0].tau2_next), rel=1e-15)
    assert chain[2].tau == pytest.approx(math.sqrt(chain[1].tau2_next), rel=1e-15)


@pytest.mark.parametrize("tau", [0.0, -1.0, math.nan, math.inf])
def test_bad_tau(tau):
    with pytest.raises(ValueError, match="tau"):
        activation_constants("relu", tau)


def test_bad_method_and_missing_closed_form():
    with pytest.raises(ValueError, match="unknown method"):
        activation_constants("relu", 1.0, "simpson")
    with pytest.raises(ValueError, match="no closed form"):
        activation_constants("tanh", 1.0, "symbolic")
    with pytest.raises(ValueError, match="at least one layer"):
        tau_chain([], 1.0)


@settings(max_examples=15, deadline=None)
@given(tau=st.floats(0.3, 4.0),
       cuts=st.lists(st.floats(-3.0, 3.0), min_size=1, max_size=6, unique=True),
       data=st.data())
def test_general_step_activations_three_paths(tau, cuts, data):
    cuts = sorted(cuts)
    if min(np.diff(cuts), default=1.0) < 1e-3:
        cuts = cuts[:1]
    levels = data.draw(st.lists(st.floats(-3.0, 3.0), min_size=len(cuts) + 1,
                                max_size=len(cuts) + 1))
    act = step_activation(cuts, levels)
    ref = activation_constants(act, tau, "mpmath")
    assert_close(activation_constants(act, tau, "quad"), ref)
    assert_close(activation_constants(act, tau, "symbolic"), ref)
