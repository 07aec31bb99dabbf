"""The kit's checks fail a user's function for a wrong answer only, never for its time.

Each public check runs under Hypothesis' own default settings (its 200 ms deadline, as in a
user's test suite that loads no ntklc profile; fewer examples, to keep this test short) on a
correct implementation whose first call takes 0.3 s, as a first call that compiles or fills
a cache does. Each must pass.
"""

import functools
import time

import numpy as np
import pytest
from hypothesis import settings

from solvers.entropy import decode_integers, encode_integers
from solvers.rounding import quantize_nearest
from solvers.ternarize import solve_output_layer
from validation.kit import checks, oracles
from validation.kit.checks import (
    check_entropy_coder,
    check_knapsack_solver,
    check_rounding,
    check_ternarization_solver,
    check_trace_estimator,
)

settings.register_profile("hypothesis-default-few", parent=settings.get_profile("default"),
                          max_examples=5)  # Hypothesis' own default profile, deadline 200 ms


def slow_first_call(fn, seconds: float = 0.3):
    """``fn``, but its first call sleeps ``seconds`` first."""
    calls = []

    @functools.wraps(fn)
    def slow(*args):
        if not calls:
            time.sleep(seconds)
        calls.append(None)
        return fn(*args)

    return slow


def knapsack(costs, values, budget):
    return oracles.milp_knapsack(costs, values, budget)[0]


def hutchinson(matvec, n, rng, probes=8):
    z = rng.choice([-1.0, 1.0], size=(probes, n))
    return float(np.mean([v @ matvec(v) for v in z]))


def ternarization(d1, d2, d3, tau2, tau_in):
    from ntk import ActivationConstants

    target = ActivationConstants(tau=tau_in, m0=0.0, d1=d1, d2=d2, d3=d3, tau2_next=tau2,
                                 esp2=float("inf"), method="target")
    solution = solve_output_layer(target, tau_in, max_levels=32)
    if "tau_L^2" not in solution.residuals:
        raise ValueError("tau2 cannot be matched with at most 32 levels")
    return solution.step.thresholds, solution.step.levels


RUNS = {
    "check_knapsack_solver": lambda: check_knapsack_solver(slow_first_call(knapsack)),
    "check_entropy_coder": lambda: check_entropy_coder(
        slow_first_call(encode_integers), lambda data, n: decode_integers(data)),
    "check_rounding": lambda: check_rounding(slow_first_call(quantize_nearest)),
    "check_trace_estimator": lambda: check_trace_estimator(slow_first_call(hutchinson)),
    "check_ternarization_solver": lambda: check_ternarization_solver(
        slow_first_call(ternarization)),
}


def test_every_public_check_is_here():
    assert sorted(RUNS) == sorted(n for n in checks.__all__ if n.startswith("check_"))


@pytest.mark.parametrize("check", sorted(RUNS))
def test_a_slow_first_call_passes_under_the_default_profile(check):
    previous = settings.get_current_profile_name()
    settings.load_profile("hypothesis-default-few")
    try:
        assert settings.default.deadline is not None  # Hypothesis' own deadline is active
        RUNS[check]()
    finally:
        settings.load_profile(previous)
