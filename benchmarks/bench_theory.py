"""Speed of the theory engine, as ratios to baselines measured in the same run.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/bench_theory.py [--quick]``).

Rows:
  1. Ktilde (CK equivalent, ReLU L=3) at n = 3000, p = 1500  /  one X^T X product   (goal <= 3)
  2. exact CK + NTK, ReLU L = 3, n = 3000                    /  one X^T X product   (goal <= 2)
  3. one empirical NTK draw, ReLU L = 3, width 2000, n = 1600, p = 800, float64 and float32
                                                             /  GEMM flop bound     (goal <= 2)
     (flop bound: the draw's unavoidable products, Grams counted at n^2 d as by syrk, divided
     by the GEMM rate of the same precision measured in this run)
  4. constants via ``auto`` per (activation, tau) after warm-up, microseconds         (goal < 1000)

Rows 2 and 3 alternate the measured call with its baseline (best of each over the rounds), so
that other load on the machine slows both sides alike.
"""

from __future__ import annotations

import argparse
import math
import os

# Before NumPy loads OpenBLAS, as the ntklc command does (validation/__init__.py): idle OpenBLAS
# workers yield at once instead of spinning on the cores the Numba kernels run on next.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import platform
import time

import numpy as np
from _machine import best_time

from ntk import CATALOGUE, activation_constants
from ntk.empirical import network_kernels
from ntk.equivalents import ck_equivalent
from ntk.exact import exact_kernels
from rmt import gaussian_mixture, sample_gmm


def gemm_call(dtype=np.float64):
    """A call of 2 * 2000^3 flops: the product of two 2000 x 2000 matrices of ``dtype``."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((2, 2000, 2000)).astype(dtype)
    return lambda: A @ B


def gemm_rate(dtype=np.float64) -> float:
    """Measured GEMM rate (flop/s) on square 2000 x 2000 matrices of ``dtype``."""
    return 2 * 2000**3 / best_time(gemm_call(dtype))


def best_alternated(calls, rounds: int = 3) -> list[float]:
    """Smallest wall time of each call over ``rounds`` rounds of all calls in turn (after one
    warm-up call each)."""
    for call in calls:
        call()
    best = [math.inf] * len(calls)
    for _ in range(rounds):
        for k, call in enumerate(calls):
            start = time.perf_counter()
            call()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def draw_flops(n: int, p: int, d: int, L: int) -> float:
    """Flops the NTK draw cannot avoid: forward and backward products, symmetric Grams."""
    forward = 2 * d * p * n + (L - 1) * 2 * d * d * n
    backward = (L - 1) * 2 * d * d * n
    grams = n * n * p + (2 * L - 1) * n * n * d + n * n * d  # Sigma_0..L and G_1..L (syrk)
    return forward + backward + grams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    args = parser.parse_args()
    n, n_mc, d = (800, 400, 500) if args.quick else (3000, 1600, 2000)
    g = sample_gmm(gaussian_mixture(n // 2), n, seed=0)
    X = g.X
    acts = ["relu"] * 3

    t_equiv = best_time(lambda: ck_equivalent(X, g.stats, acts))
    t_xtx, t_exact = best_alternated(
        [lambda: X.T @ X, lambda: exact_kernels(X, acts, g.stats.tau0, ntk=True)])

    gm = sample_gmm(gaussian_mixture(n_mc // 2), n_mc, seed=1)
    rng = np.random.default_rng(0)
    draws, bounds = {}, {}
    for dtype in (np.float64, np.float32):
        t_gemm, draws[dtype] = best_alternated([gemm_call(dtype), lambda dtype=dtype: (
            network_kernels(gm.X, acts, "gaussian", rng, width=d, tau0=gm.stats.tau0,
                            ntk=True, dtype=dtype))])
        bounds[dtype] = draw_flops(n_mc, n_mc // 2, d, 3) / (2 * 2000**3 / t_gemm)
    rate = gemm_rate()

    taus = (0.25, 0.5, 1.0, 2.0, 4.0)
    per_call = {}
    for name in CATALOGUE:
        per_call[name] = best_time(lambda name=name: [activation_constants(name, t)
                                                      for t in taus]) / len(taus)

    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"BLAS threads {threads}, numpy {np.__version__}")
    print(f"GEMM rate {rate / 1e9:.1f} GFlop/s; X^T X (n={n}, p={n // 2}) {t_xtx:.3f} s")
    print()
    print("| measurement | time | baseline | ratio | goal |")
    print("|---|---:|---:|---:|---:|")
    print(f"| Ktilde_CK, ReLU L=3, n={n} | {t_equiv:.3f} s | X^T X {t_xtx:.3f} s | "
          f"{t_equiv / t_xtx:.2f} | <= 3 |")
    print(f"| exact CK+NTK, ReLU L=3, n={n} | {t_exact:.3f} s | X^T X {t_xtx:.3f} s | "
          f"{t_exact / t_xtx:.2f} | <= 2 |")
    for dtype, name in ((np.float64, "float64"), (np.float32, "float32")):
        print(f"| empirical NTK draw, L=3, width {d}, n={n_mc}, {name} | {draws[dtype]:.3f} s | "
              f"flop bound {bounds[dtype]:.3f} s | {draws[dtype] / bounds[dtype]:.2f} | <= 2 |")
    worst = max(per_call, key=per_call.get)
    print(f"| constants (auto), worst: {worst} | {1e6 * per_call[worst]:.0f} us | - | - | "
          "< 1000 us |")
    print()
    print("constants per (activation, tau), microseconds: "
          + ", ".join(f"{k} {1e6 * v:.0f}" for k, v in per_call.items()))


if __name__ == "__main__":
    main()
