"""Grouped knapsack: dynamic programming against an exact MILP and brute force."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.knapsack import allocate_bits, grouped_knapsack, grouped_knapsack_milp
from validation.kit.oracles import milp_knapsack
from validation.kit.strategies import knapsack_instances

# Integer costs (unit 1) and a budget at least the lightest allocation: the DP's domain.
FEASIBLE = knapsack_instances(units=(1.0,), budgets=("tight", "exact", "everything"))


def as_dp(instance):
    """(values, weights, budget) of the DP, which minimises: losses -v, and +inf at the
    dearest cost where a group has fewer choices (never taken, never the lightest)."""
    costs, values = instance.as_arrays(fill_cost=max(float(c.max()) for c in instance.costs))
    return -values, costs.astype(np.int64), int(instance.budget)


@settings(max_examples=300, deadline=None)
@given(instance=FEASIBLE)
def test_dp_matches_milp(instance):
    values, weights, budget = as_dp(instance)
    dp = grouped_knapsack(values, weights, budget)
    milp = grouped_knapsack_milp(values, weights, budget)
    _, oracle = milp_knapsack(*instance)
    # HiGHS stops within its ~1e-6 optimality tolerance: it may miss a 6e-8 improvement.
    assert dp.value == pytest.approx(milp.value, abs=1e-6)
    assert dp.value == pytest.approx(-oracle, abs=1e-6)
    assert dp.value <= min(milp.value, -oracle) + 1e-12
    for sol in (dp, milp):
        assert sol.weight <= budget
        assert sol.value == pytest.approx(values[np.arange(len(sol.choice)), sol.choice].sum())


@settings(max_examples=50, deadline=None)
@given(instance=FEASIBLE)
def test_dp_matches_brute_force(instance):
    values, weights, budget = as_dp(instance)
    if values.shape[1] ** values.shape[0] > 5000:
        return
    best = min((sum(values[g, j] for g, j in enumerate(c)), c)
               for c in itertools.product(range(values.shape[1]), repeat=values.shape[0])
               if sum(weights[g, j] for g, j in enumerate(c)) <= budget)
    assert grouped_knapsack(values, weights, budget).value == pytest.approx(best[0], abs=1e-9)


def test_missing_items_are_skipped():
    values = np.array([[np.inf, 1.0], [0.5, np.inf]])
    weights = np.array([[0, 3], [2, 0]])
    sol = grouped_knapsack(values, weights, 5)
    assert sol.choice.tolist() == [1, 0] and sol.value == 1.5 and sol.weight == 5


@pytest.mark.parametrize("values, weights, budget, message", [
    (np.ones((2, 3)), np.ones((2, 3), dtype=int), 1, "below the smallest allocation"),
    (np.ones((2, 3)), np.ones((3, 2), dtype=int), 5, "shape of values"),
    (np.ones(3), np.ones(3, dtype=int), 5, r"\(groups, items\)"),
    (np.ones((2, 2)), np.full((2, 2), 0.5), 5, "non-negative integers"),
    (np.ones((1, 2)), np.ones((1, 2), dtype=int), -1, "non-negative integer"),
    (np.full((1, 2), np.inf), np.ones((1, 2), dtype=int), 5, "at least one item"),
    (np.full((1, 2), np.nan), np.ones((1, 2), dtype=int), 5, "finite"),
])
def test_bad_input(values, weights, budget, message):
    with pytest.raises(ValueError, match=message):
        grouped_knapsack(values, weights, budget)


@settings(max_examples=100, deadline=None)
@given(instance=FEASIBLE, resolution=st.integers(8, 400))
def test_allocate_bits_respects_the_true_budget(instance, resolution):
    values, weights, _ = as_dp(instance)
    sizes = weights * 1000 + 7  # bit counts much finer than the DP's budget steps
    lightest = int(sizes.min(axis=1).sum())
    budget = lightest + int(0.5 * (sizes.max(axis=1).sum() - lightest)) + 1
    try:
        sol = allocate_bits(values, sizes, budget, resolution=resolution)
    except ValueError:
        # Rounding sizes up may exclude the lightest allocation when it nearly fills the budget.
        units = np.ceil(sizes / (budget / resolution))
        assert units.min(axis=1).sum() > resolution
        return
    assert sol.weight == sizes[np.arange(len(sol.choice)), sol.choice].sum() <= budget
    # Never better than the exact optimum over true sizes, and exact when units are bits.
    exact = grouped_knapsack_milp(values, sizes, budget)
    # HiGHS accepts a solution within its 1e-6-scale feasibility/optimality tolerances.
    assert sol.value >= exact.value - 1e-6
    assert allocate_bits(values, sizes, budget, resolution=budget).value == pytest.approx(
        exact.value, abs=1e-6)


def test_allocate_bits_bad_budget():
    with pytest.raises(ValueError, match="below the smallest allocation"):
        allocate_bits(np.zeros((2, 2)), np.array([[8, 16], [8, 16]]), 15)
    with pytest.raises(ValueError, match="integers"):
        allocate_bits(np.zeros((1, 2)), np.array([[8.0, 16.0]]), 20)
