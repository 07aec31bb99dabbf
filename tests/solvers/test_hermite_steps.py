"""Step functions matching K Hermite coefficients: checked by independent quadrature of the
returned step function (``ntk.exact.hermite_coefficients``, ``ntk.constants``)."""

import numpy as np
import pytest

from ntk.constants import activation_constants
from ntk.exact import hermite_coefficients
from solvers.hermite_steps import hermite_step


@pytest.mark.parametrize(("act", "tau", "order"), [("relu", 1.0, 2), ("relu", 0.6, 4),
                                                   ("tanh", 1.0, 3), ("gelu", 1.4, 2),
                                                   ("erf", 0.8, 5)])
def test_matches_coefficients_and_variance(act, tau, order):
    step = hermite_step(act, tau, order)
    got = hermite_coefficients(step.activation(), np.array([tau]), order)[0]
    want = hermite_coefficients(act, np.array([tau]), order)[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
    assert activation_constants(step.activation(), tau).tau2_next == pytest.approx(
        activation_constants(act, tau).tau2_next, rel=1e-12)
    assert step.n_levels >= order + 2
    assert list(step.thresholds) == sorted(step.thresholds)


def test_more_coefficients_leave_a_smaller_remainder():
    """Matching more degrees moves the step's higher Hermite energy towards sigma's own: the
    L2 distance beyond the matched degrees, computed by quadrature, falls from K = 1 to 4."""
    def remainder(order):
        step = hermite_step("tanh", 1.0, order)
        c_step = hermite_coefficients(step.activation(), np.array([1.0]), 60)[0]
        c_act = hermite_coefficients("tanh", np.array([1.0]), 60)[0]
        return np.sum((c_step - c_act)[order + 1:] ** 2)

    assert remainder(4) < remainder(1)


def test_fixed_level_count_and_errors():
    with pytest.raises(ValueError, match="at least 4 levels"):
        hermite_step("relu", 1.0, 2, levels=3)
    with pytest.raises(ValueError, match="no step function"):
        hermite_step("relu", 1.0, 2, levels=4)
    for bad in ({"tau": 0.0}, {"order": 0}, {"order": 1.5}):
        with pytest.raises(ValueError):
            hermite_step("relu", **{"tau": 1.0, "order": 2, **bad})
