"""Inference speed of sparse ternary products against dense float32 GEMM, in the same run.

Run: ``.venv/bin/python benchmarks/bench_ternary.py [--quick] [--repeat R]``. For one thread on
both sides: ``NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/...``.

Rows: ``TernaryMatrix.matmul`` (S / sqrt(1 - eps)) X against ``W32 @ X32`` with a dense float32
matrix of the same shape, for eps = 0.9 and 0.99 at d_out = d_in = 2000 and 4000, n = 1000.
The two are timed alternately, R times each, and the best time of each is kept, so that a
background load on the machine hits both alike. The ternary kernel does nnz n additions,
(1 - eps) / 2 of the dense product's 2 d_out d_in n flops: the ideal speed-up is 2 / (1 - eps).
"""

from __future__ import annotations

import argparse
import math
import os

import numba
import numpy as np
from _machine import cpu_name, interleaved_best

from nets.compressed import TernaryMatrix, sample_ternary_signs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    parser.add_argument("--repeat", type=int, default=10, help="timed rounds per row")
    args = parser.parse_args()
    shapes = [(500, 500, 200)] if args.quick else [(2000, 2000, 1000), (4000, 4000, 1000)]
    rng = np.random.default_rng(0)

    blas_threads = os.environ.get("OPENBLAS_NUM_THREADS",
                                  os.environ.get("OMP_NUM_THREADS", f"default ({os.cpu_count()})"))
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; load average {load}")
    print(f"threads: Numba {numba.get_num_threads()}, BLAS {blas_threads}; numpy {np.__version__}, "
          f"numba {numba.__version__}; best of {args.repeat} alternating rounds")
    print()
    print("| d_out x d_in | n | eps | nnz/weight | dense W32 @ X32 | ternary matmul | "
          "speed-up | ideal | max rel. diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d_out, d_in, n in shapes:
        X = rng.standard_normal((d_in, n), dtype=np.float32)
        for eps in (0.9, 0.99):
            T = TernaryMatrix(sample_ternary_signs((d_out, d_in), eps, rng),
                              1.0 / math.sqrt(1.0 - eps))
            W32 = T.to_dense(np.float32)
            times = interleaved_best({"dense": lambda W32=W32, X=X: W32 @ X,
                                      "ternary": lambda T=T, X=X: T.matmul(X)}, args.repeat)
            ref = W32 @ X
            diff = float(np.max(np.abs(T.matmul(X) - ref)) / np.max(np.abs(ref)))
            speedup = times["dense"] / times["ternary"]
            print(f"| {d_out} x {d_in} | {n} | {eps} | {T.nnz / (d_out * d_in):.4f} | "
                  f"{1e3 * times['dense']:.1f} ms | {1e3 * times['ternary']:.1f} ms | "
                  f"{speedup:.1f}x | {2 / (1 - eps):.0f}x | {diff:.1e} |")
            del W32, ref


if __name__ == "__main__":
    main()
