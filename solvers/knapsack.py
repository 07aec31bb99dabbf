"""Grouped (multiple-choice) knapsack: one item per group, total weight within a budget.

The mixed-precision problem of LLC and CET (compression-methods spec): group = layer, item =
bit width, weight = bits used (an integer after discretising the budget), value = predicted
loss change. Minimise

    sum_g values[g, choice_g]   subject to   sum_g weights[g, choice_g] <= budget.

``grouped_knapsack`` solves it exactly by dynamic programming over the budget,
best[b] = min_j best_prev[b - w_gj] + v_gj, in O(G J B) time (Numba) and O(G B) memory for the
back-tracking table; ``grouped_knapsack_milp`` solves the same problem as a mixed-integer
linear program (``scipy.optimize.milp``), the independent cross-check of the tests.
Missing items are given the value ``inf``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy import optimize, sparse

from ntklc.errors import InputError

__all__ = ["KnapsackSolution", "allocate_bits", "grouped_knapsack", "grouped_knapsack_milp"]


@dataclass(frozen=True)
class KnapsackSolution:
    """An allocation: ``choice[g]`` is the item taken in group g; its total value and weight."""

    choice: np.ndarray
    value: float
    weight: int


def _check(values, weights, budget) -> tuple[np.ndarray, np.ndarray, int]:
    values = np.asarray(values, dtype=float)
    weights = np.asarray(weights)
    if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] < 1:
        raise InputError(f"values must be a (groups, items) array, got shape {values.shape}")
    if weights.shape != values.shape:
        raise InputError(f"weights must have the shape of values {values.shape}, got "
                         f"{weights.shape}")
    if not np.issubdtype(weights.dtype, np.integer) or np.any(weights < 0):
        raise InputError("weights must be non-negative integers (discretise the budget first)")
    if np.any(np.isnan(values)) or np.any(values == -np.inf):
        raise InputError("values must be finite or +inf (for a missing item)")
    if int(budget) != budget or budget < 0:
        raise InputError(f"budget must be a non-negative integer, got {budget}")
    budget = int(budget)
    available = np.where(np.isfinite(values), weights, np.iinfo(np.int64).max)
    if np.any(np.all(~np.isfinite(values), axis=1)):
        raise InputError("every group needs at least one item with a finite value")
    smallest = int(np.sum(available.min(axis=1)))
    if smallest > budget:
        raise InputError(f"budget {budget} is below the smallest allocation ({smallest}: the "
                         "lightest item of every group)")
    return values, weights.astype(np.int64), budget


@numba.njit(cache=True)
def _dp(values, weights, budget):
    groups, items = values.shape
    inf = np.inf
    best = np.full(budget + 1, inf)
    best[0] = 0.0
    choice = np.full((groups, budget + 1), -1, dtype=np.int16)
    for g in range(groups):
        new = np.full(budget + 1, inf)
        for j in range(items):
            v = values[g, j]
            w = weights[g, j]
            if v == inf or w > budget:
                continue
            for b in range(w, budget + 1):
                candidate = best[b - w] + v
                if candidate < new[b]:
                    new[b] = candidate
                    choice[g, b] = j
        best = new
    return best, choice


def grouped_knapsack(values, weights, budget: int) -> KnapsackSolution:
    """Exact minimum by dynamic programming over the integer budget.

    Args:
        values: (G, J) value of item j in group g (``inf`` where the item does not exist).
        weights: (G, J) non-negative integer weights.
        budget: largest total weight.

    Returns:
        The optimal :class:`KnapsackSolution` (ties: the smallest total weight).

    Raises:
        InputError: bad shapes or types, or a budget below the lightest allocation.
    """
    values, weights, budget = _check(values, weights, budget)
    best, choice = _dp(values, weights, budget)
    b = int(np.argmin(best))  # argmin takes the first minimum: the lightest optimal weight
    total = float(best[b])
    picks = np.empty(values.shape[0], dtype=np.int64)
    for g in range(values.shape[0] - 1, -1, -1):
        picks[g] = choice[g, b]
        b -= int(weights[g, picks[g]])
    return KnapsackSolution(choice=picks, value=total,
                            weight=int(weights[np.arange(len(picks)), picks].sum()))


def grouped_knapsack_milp(values, weights, budget: int) -> KnapsackSolution:
    """The same problem as a 0/1 MILP (``scipy.optimize.milp``): x_gj in {0, 1},
    sum_j x_gj = 1 per group, sum w x <= budget, minimise sum v x."""
    values, weights, budget = _check(values, weights, budget)
    groups, items = values.shape
    usable = np.isfinite(values).ravel()
    cost = np.where(usable, values.ravel(), 0.0)
    one_each = sparse.kron(sparse.eye(groups), np.ones((1, items)))
    constraints = [optimize.LinearConstraint(one_each, 1, 1),
                   optimize.LinearConstraint(weights.ravel()[None, :], -np.inf, budget)]
    bounds = optimize.Bounds(0, np.where(usable, 1.0, 0.0))
    res = optimize.milp(cost, constraints=constraints, integrality=np.ones(cost.size),
                        bounds=bounds, options={"mip_rel_gap": 0.0})
    if not res.success:
        raise InputError(f"MILP failed: {res.message}")
    picks = np.argmax(res.x.reshape(groups, items), axis=1)
    return KnapsackSolution(choice=picks, value=float(values[np.arange(groups), picks].sum()),
                            weight=int(weights[np.arange(groups), picks].sum()))


def allocate_bits(losses, sizes, budget: int, resolution: int = 4096) -> KnapsackSolution:
    """Mixed precision: one bit width per layer, minimising the summed predicted loss change.

    Sizes (bits, often millions) are discretised in units u = budget / resolution and rounded
    *up*, so the allocation found never exceeds the budget in true bits; the DP then runs over
    ``resolution + 1`` budget steps. The result is optimal for the rounded-up sizes, which can
    only exclude allocations within G u bits of the budget.

    Args:
        losses: (layers, choices) predicted loss change of each choice (``inf``: not allowed,
            e.g. outside the first-order neighbourhood).
        sizes: (layers, choices) non-negative integer sizes in bits.
        budget: total size allowed, in bits.
        resolution: budget steps of the DP.

    Returns:
        ``KnapsackSolution`` whose ``weight`` is the true total size in bits.

    Raises:
        InputError: bad shapes, or a budget below the smallest allocation.
    """
    sizes = np.asarray(sizes)
    if not np.issubdtype(sizes.dtype, np.integer):
        raise InputError(f"sizes must be integers (bits), got dtype {sizes.dtype}")
    if int(resolution) != resolution or resolution < 1:
        raise InputError(f"resolution must be a positive integer, got {resolution}")
    if int(budget) != budget or budget <= 0:
        raise InputError(f"budget must be a positive number of bits, got {budget}")
    allowed = np.isfinite(np.asarray(losses, dtype=float))
    if sizes.shape == allowed.shape and allowed.any(axis=1).all():
        lightest = int(np.where(allowed, sizes, np.iinfo(np.int64).max).min(axis=1).sum())
        if lightest > budget:
            raise InputError(f"budget of {int(budget)} bits is below the smallest allocation "
                             f"({lightest} bits)")
    unit = budget / resolution
    units = np.ceil(sizes / unit).astype(np.int64)
    solution = grouped_knapsack(losses, units, int(resolution))
    picked = sizes[np.arange(sizes.shape[0]), solution.choice]
    return KnapsackSolution(choice=solution.choice, value=solution.value,
                            weight=int(picked.sum()))
