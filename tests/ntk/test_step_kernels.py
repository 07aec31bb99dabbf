"""Closed-form Gaussian moments of step activations against independent paths: the activation
constants of ``solvers.steps``, quadrature Hermite coefficients, Mehler series and the plain
sum of orthant probabilities."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special

from ntk.activations import step_activation
from ntk.bvn import bvn_upper_array
from ntk.exact import hermite_coefficients
from ntk.step_kernels import step_coefficients, step_levels, step_pair_moment
from solvers.steps import step_constants

THRESHOLDS = np.array([-0.8, -0.1, 0.3, 1.2])
LEVELS = np.array([-1.0, -0.3, 0.2, 0.9, 1.7])


@pytest.mark.parametrize("scale", [0.05, 0.4, 1.0, 2.5])
def test_coefficients_match_constants_and_quadrature(scale):
    coef, second = step_coefficients(THRESHOLDS, LEVELS, 0.0, np.array([scale]), 60)
    c = step_constants(THRESHOLDS, LEVELS, scale)
    assert coef[0, 0] == pytest.approx(c.m0, abs=1e-15)
    assert coef[0, 1] == pytest.approx(scale * c.d1, abs=1e-15)
    assert coef[0, 2] == pytest.approx(scale**2 * c.d2 / math.sqrt(2), abs=1e-15)
    assert second[0] == pytest.approx(c.tau2_next + c.m0**2, rel=1e-14)
    quad = hermite_coefficients(step_activation(THRESHOLDS, LEVELS), np.array([scale]), 60)
    np.testing.assert_allclose(coef, quad, rtol=0, atol=1e-13)


def test_zero_scale_is_the_constant_at_zero():
    coef, second = step_coefficients(THRESHOLDS, LEVELS, 0.25, np.array([0.0]), 5)
    np.testing.assert_array_equal(coef[0], [0.2 - 0.25, 0, 0, 0, 0, 0])
    assert second[0] == pytest.approx((0.2 - 0.25) ** 2)


def orthant_sum(s1, s2, sgn, delta, m):
    """The module docstring's sum with every orthant probability by ``bvn_upper`` (itself
    checked against mpmath in test_bvn.py): no sharp-threshold shortcut."""
    a, b = THRESHOLDS / s1, THRESHOLDS / s2
    jumps = np.diff(LEVELS)
    base = LEVELS[0] - m
    total = base**2 + base * np.sum(jumps * (special.ndtr(-a) + special.ndtr(-b)))
    return total + jumps @ bvn_upper_array(a[:, None], b[None, :], sgn, delta) @ jumps


@given(s1=st.floats(0.2, 3.0), s2=st.floats(0.2, 3.0), log_delta=st.floats(-300, 0),
       sgn=st.sampled_from([1.0, -1.0]), m=st.floats(-0.5, 0.5))
def test_pair_moment_shortcut_changes_nothing(s1, s2, log_delta, sgn, m):
    """Skipping the quadrature of thresholds many r apart changes the sum by at most 1e-19 a
    term: the two agree up to the rounding of 25 terms of size <= 3 summed in another order."""
    delta = 10.0**log_delta
    got = step_pair_moment(THRESHOLDS, LEVELS, m, s1, s2, sgn, delta)
    assert got == pytest.approx(orthant_sum(s1, s2, sgn, delta, m), abs=25 * 3 * 2.2e-16)


@pytest.mark.parametrize("rho", [-0.6, 0.2, 0.7])
def test_pair_moment_matches_the_mehler_series(rho):
    s1, s2, m = 0.7, 1.3, 0.1
    coef, _ = step_coefficients(THRESHOLDS, LEVELS, m, np.array([s1, s2]), 400)
    series = float(np.sum(coef[0] * coef[1] * rho ** np.arange(401)))
    got = step_pair_moment(THRESHOLDS, LEVELS, m, s1, s2, math.copysign(1, rho), 1 - abs(rho))
    assert got == pytest.approx(series, abs=1e-14)


def test_step_levels_reads_piecewise_constant_activations_only():
    th, lv = step_levels(step_activation(THRESHOLDS, LEVELS))
    np.testing.assert_array_equal(th, THRESHOLDS)
    np.testing.assert_array_equal(lv, LEVELS)
    from ntk.activations import activation

    assert step_levels(activation("relu")) is None
    assert step_levels(activation("tanh")) is None
    th, lv = step_levels(activation("sign"))
    np.testing.assert_array_equal(lv, [-1.0, 1.0])
