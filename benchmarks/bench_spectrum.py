"""``ntklc spectrum`` (ReLU CK, exact reference) against the floor of its eigenvalue
decompositions, measured in one run.

Run: ``.venv/bin/python benchmarks/bench_spectrum.py [--n 6400] [--repeat 2] [--old]``.

Rows:
  1. floor: ``scipy.linalg.eigvalsh`` (float64, no vectors, in place) of the equivalent and of
     the exact kernel, the two eigenvalue decompositions the comparison needs
  2. the spectral comparison on those two kernels (``compare_full_spectra``: all eigenvalues,
     top-5 pairs, operator-norm error), and its ratio to row 1                (goal <= 1.3)
  3. the whole ``spectrum_experiment`` (data, both kernels, spectra) in a fresh process, its
     ratio to row 1 and its peak resident memory                  (goals <= 1.3, < 1.5 GB)
  4. with ``--old``: the spectral computations before issue 13 (``compare_spectra``, a full
     ``eigh`` of the reference, ``eigvalsh`` of the equivalent), once
Rows 1-3 alternate, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
from _machine import cpu_name
from scipy import linalg

from ntk.equivalents import ck_equivalent
from ntk.exact import exact_kernels
from rmt import compare_spectra, gaussian_mixture, sample_gmm
from rmt.spectral import compare_full_spectra

# Run in a fresh interpreter; its peak is VmHWM, the high-water mark of its own address space
# (ru_maxrss of a forked child also counts the parent's resident memory at the fork).
_CHILD = """
import json, sys, time
from validation.experiments.spectra import spectrum_experiment
start = time.perf_counter()
spectrum_experiment(["relu"], int(sys.argv[1]))
seconds = time.perf_counter() - start
with open("/proc/self/status") as f:
    kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "maxrss_gb": kb / 1e6}))
"""


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def experiment_in_child(n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(n)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6400)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--old", action="store_true", help="also time the old spectra once")
    args = parser.parse_args()
    n = args.n
    g = sample_gmm(gaussian_mixture(n // 2), n, seed=0)
    ref = exact_kernels(g.X, ["relu"], g.stats.tau0, ntk=False).ck
    eq = ck_equivalent(g.X, g.stats, ["relu"])

    def floor() -> float:
        a, b = eq.copy(), ref.copy()
        return timed(lambda: [linalg.eigvalsh(m, overwrite_a=True, check_finite=False)
                              for m in (a, b)])

    def spectra() -> float:
        a, b = eq.copy(), ref.copy()
        return timed(lambda: compare_full_spectra(a, b, k=5, overwrite=True))

    floors, fast, whole = [], [], []
    for _ in range(args.repeat):
        floors.append(floor())
        fast.append(spectra())
        whole.append(experiment_in_child(n))
    t_floor, t_fast = min(floors), min(fast)
    t_whole = min(w["seconds"] for w in whole)
    rss = max(w["maxrss_gb"] for w in whole)
    print(f"spectrum, ReLU CK vs exact kernel, n = {n}, p = {n // 2}; {cpu_name()}; "
          f"best of {args.repeat}")
    print(f"  floor: eigvalsh float64 x 2          {t_floor:8.2f} s")
    print(f"  spectral comparison (both kernels)   {t_fast:8.2f} s   ratio "
          f"{t_fast / t_floor:5.2f}   (goal <= 1.3)")
    print(f"  spectrum_experiment (fresh process)  {t_whole:8.2f} s   ratio "
          f"{t_whole / t_floor:5.2f}   (goal <= 1.3)   peak RSS {rss:.2f} GB (goal < 1.5)")
    if args.old:
        t_old = timed(lambda: (compare_spectra(eq, ref, k=5), np.linalg.eigh(ref),
                               np.linalg.eigvalsh(eq)))
        print(f"  old spectra (Lanczos + eigh + eigvalsh) {t_old:5.2f} s   ratio "
              f"{t_old / t_floor:5.2f}")


if __name__ == "__main__":
    main()
