"""Closed forms of step-activation constants against the generic quadrature of ntk.constants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntk import activation_constants, step_activation
from solvers.steps import StepFunction, level_projections, step_constants
from validation.kit.oracles import mpmath_constants
from validation.kit.strategies import step_functions

KEYS = ("m0", "d1", "d2", "d3", "tau2_next")


@settings(max_examples=60, deadline=None)
@given(step=step_functions(), tau=st.floats(0.3, 4.0))
def test_closed_forms_match_quadrature(step, tau):
    cuts, levels = step.thresholds, step.levels
    got = step_constants(cuts, levels, tau)
    want = activation_constants(step_activation(cuts, levels), tau, "quad")
    for key in KEYS:
        assert abs(getattr(got, key) - getattr(want, key)) <= 1e-12 * max(
            1.0, abs(getattr(want, key))), key
    assert np.isinf(got.esp2)


@settings(max_examples=30, deadline=None)
@given(step=step_functions())
def test_level_projections_sum_rules(step):
    P, a, b = level_projections(step.thresholds)
    assert abs(P.sum() - 1) < 1e-15 and abs(a.sum()) < 1e-15 and abs(b.sum()) < 1e-15
    assert np.all(P > 0)


@settings(max_examples=10, deadline=None)
@given(step=step_functions(max_levels=5), tau=st.floats(0.3, 4.0))
def test_closed_forms_match_mpmath(step, tau):
    got = step_constants(step.thresholds, step.levels, tau)
    want = mpmath_constants(step.activation(), tau, dps=20)
    for key in KEYS:
        assert abs(getattr(got, key) - want[key]) <= 1e-12 * max(1.0, abs(want[key])), key


def test_two_level_sign_function():
    # sign: d1 = 2 phi(0) / tau, d2 = 0, variance 1.
    c = step_constants([0.0], [-1.0, 1.0], 2.0)
    assert c.d1 == pytest.approx(2 / np.sqrt(2 * np.pi) / 2, rel=1e-15)
    assert abs(c.d2) < 1e-17 and c.tau2_next == pytest.approx(1.0, rel=1e-15)


def test_step_function_object():
    s = StepFunction("binary", {"s1": -1.0, "s2": 1.0, "b": 2.0}, (-1.0, 1.0), (2.0, 0.0, 2.0))
    assert s.n_levels == 3
    assert s.scaled(0.5).levels == (1.0, 0.0, 1.0) and s.scaled(0.5).params["b"] == 1.0
    np.testing.assert_array_equal(s.activation().fn(np.array([-2.0, 0.0, 2.0])), [2, 0, 2])
    assert s.as_dict()["thresholds"] == [-1.0, 1.0]


@pytest.mark.parametrize("cuts, levels, message", [
    ([0.0], [1.0], "k >= 2"),
    ([1.0, 0.0], [0.0, 1.0, 2.0], "ascending"),
    ([0.0], [1.0, np.inf], "finite"),
])
def test_bad_step_functions(cuts, levels, message):
    with pytest.raises(ValueError, match=message):
        step_constants(cuts, levels, 1.0)
    with pytest.raises(ValueError, match="tau"):
        step_constants([0.0], [0.0, 1.0], -1.0)
