"""Grouped knapsack: dynamic programming against the exact MILP, timed in the same run.

Run: ``.venv/bin/python benchmarks/bench_knapsack.py`` (50 groups x 7 choices x 10^4 budget
steps, the size of a mixed-precision allocation over 50 layers and bit widths 2..8).
"""

from __future__ import annotations

import os
import platform

import numpy as np
from _machine import best_time, cpu_name

from solvers.knapsack import grouped_knapsack, grouped_knapsack_milp


def main() -> None:
    rng = np.random.default_rng(0)
    groups, items, budget = 50, 7, 10_000
    bits = np.arange(2, 9)
    # Weight ~ layer size x bits (discretised), value ~ loss change falling with the bits.
    sizes = rng.integers(20, 60, groups)
    weights = sizes[:, None] * bits[None, :]  # from 4000 (all 2-bit) to 16000 (all 8-bit)
    values = rng.uniform(0.5, 2.0, groups)[:, None] * 4.0 ** -bits[None, :]
    dp = grouped_knapsack(values, weights, budget)
    milp = grouped_knapsack_milp(values, weights, budget)
    t_dp = best_time(lambda: grouped_knapsack(values, weights, budget))
    t_milp = best_time(lambda: grouped_knapsack_milp(values, weights, budget))
    print(f"machine: {platform.platform()}; {cpu_name()}, {os.cpu_count()} logical CPUs")
    print(f"{groups} groups x {items} choices, budget {budget} steps; optimum DP "
          f"{dp.value:.6e}, MILP {milp.value:.6e}")
    print()
    print("| solver | time | ratio |")
    print("|---|---:|---:|")
    print(f"| DP (Numba) | {1e3 * t_dp:.2f} ms | 1 |")
    print(f"| MILP (scipy.optimize.milp) | {1e3 * t_milp:.2f} ms | {t_milp / t_dp:.1f}x |")


if __name__ == "__main__":
    main()
