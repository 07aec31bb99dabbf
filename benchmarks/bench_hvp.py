"""Exact Hessian-vector products against a gradient of the same loss, timed in the same run.

Run: ``.venv/bin/python benchmarks/bench_hvp.py`` (MLP 784-1024-1024-10 and the small CNN,
random MNIST-shaped inputs, all weights selected). Both sides are float64 passes of
``nets.LossCurvature`` over the same batch; an R-operator product does one forward pass with its
R-forward and one backward pass with its R-backward, so about 2-3 gradients is the expected
cost.
"""

from __future__ import annotations

import os
import platform

import numpy as np
from _machine import best_time, cpu_name

from nets import LossCurvature, mlp, small_cnn


def main() -> None:
    rng = np.random.default_rng(0)
    cases = [("MLP 784-1024-1024-10", mlp(784), (1024, 784)),
             ("small CNN", small_cnn(), (256, 1, 28, 28))]
    print(f"machine: {platform.platform()}; {cpu_name()}, {os.cpu_count()} logical CPUs")
    print()
    print("| model | samples | parameters | gradient | HVP | HVP / gradient |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, model, shape in cases:
        X = rng.standard_normal(shape).astype(np.float32)
        y = rng.integers(0, 10, shape[0])
        curvature = LossCurvature(model, X, y)
        v = rng.standard_normal(curvature.n)
        t_grad = best_time(curvature.gradient)
        t_hvp = best_time(lambda c=curvature, v=v: c.hvp(v))
        print(f"| {name} | {shape[0]} | {curvature.n:,} | {1e3 * t_grad:.0f} ms | "
              f"{1e3 * t_hvp:.0f} ms | {t_hvp / t_grad:.2f} |")


if __name__ == "__main__":
    main()
