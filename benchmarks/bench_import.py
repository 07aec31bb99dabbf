"""The library's speed however it is imported: a script that imports NumPy first vs the command.

Run: ``.venv/bin/python benchmarks/bench_import.py [--rounds R]`` (in ``make bench``).

Each configuration runs in a fresh interpreter, in turn, ``--rounds`` times (so that other
load on the machine slows them alike); each run reports its best of 5 calls:

* ``command``: ``OPENBLAS_THREAD_TIMEOUT=4`` set before NumPy loads, as ``ntklc`` does (idle
  OpenBLAS workers sleep at once instead of spinning ~0.1 s on the cores Numba needs next);
* ``script``: ``import numpy`` first, then ``ntk`` (no variable: NumPy's and SciPy's OpenBLAS
  copies both spin);
* ``script, scipy first``: ``import numpy, scipy.linalg`` before ``ntk``.

Rows: exact CK + NTK (relu, L = 3, n = 3000, p = 1500) over one X^T X of the same run, and
in seconds (the goal: ``script`` equal to ``command`` within noise; the ratio's X^T X itself
is slower in ``command``, whose BLAS workers sleep between calls), and a BLAS-heavy call,
``scipy.linalg.eigh`` of a 2000 x 2000 matrix, in seconds (a fix must not slow it: the
variable does, since sleeping workers take longer to wake for LAPACK's many small calls).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

_RUN = """
import json, os, sys, time
{prelude}
import numpy as np
from ntk.exact import exact_kernels
from rmt import gaussian_mixture, sample_gmm
import scipy.linalg

X = sample_gmm(gaussian_mixture(1500), 3000, seed=0).X
A = np.random.default_rng(0).standard_normal((2000, 2000))
A = A + A.T

def best(call, rounds=5):
    call()
    out = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        out = min(out, time.perf_counter() - start)
    return out

gram = best(lambda: X.T @ X)
exact = best(lambda: exact_kernels(X, ["relu"] * 3))
eigh = best(lambda: scipy.linalg.eigh(A), rounds=3)
print(json.dumps({{"ratio": exact / gram, "exact": exact, "eigh": eigh}}))
"""

CONFIGS = {
    "command": "os.environ['OPENBLAS_THREAD_TIMEOUT'] = '4'",
    "script": "import numpy",
    "script, scipy first": "import numpy, scipy.linalg",
}


def run(prelude: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    done = subprocess.run([sys.executable, "-c", _RUN.format(prelude=prelude)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="fresh interpreters per setup")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    for _ in range(args.rounds):
        for name, prelude in CONFIGS.items():
            results[name].append(run(prelude))
    print(f"# {args.rounds} rounds, median (min - max) over the rounds")
    print(f"{'setup':<22} {'exact / X^T X':>22} {'exact (s)':>22} {'eigh 2000 (s)':>22}")
    for name, rows in results.items():
        cells = []
        for key in ("ratio", "exact", "eigh"):
            values = [r[key] for r in rows]
            cells.append(f"{statistics.median(values):.2f} ({min(values):.2f} - "
                         f"{max(values):.2f})")
        print(f"{name:<22} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}")


if __name__ == "__main__":
    main()
