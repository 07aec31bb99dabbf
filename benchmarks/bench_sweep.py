"""Sweep scaling: sweeps on 2 local workers against 1, and the per-task overhead of the local
pool and of a dask cluster against the tasks' own time, all in the same run.

Run: ``.venv/bin/python benchmarks/bench_sweep.py [--quick]``. Two sweeps, each from an empty
cache: the NTK-LC solver (relu, L = 2; scalar quadrature and root finding, CPU-bound) and the
exact-kernel convergence task at n = 2400 (eigendecompositions of 2400 x 2400 matrices, which
also load the memory bus). The overhead per task is (wall time x workers - sum of the tasks'
own times) / tasks: worker start-up (a spawned Python importing the toolkit, ~2 s), pickling,
scheduling and cache writes.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

from _machine import cpu_name

from validation.sweeps import parse_spec, run_sweep


def _timed(spec, **kwargs) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run = run_sweep(spec, out, progress=False, **kwargs)
        wall = time.perf_counter() - start
    assert not run.failed and not run.missing
    return wall, sum(r["seconds"] for r in run.rows)


def _bench(name: str, spec) -> None:
    tasks = len(spec.tasks())
    print(f"\n{name}: {tasks} tasks, 1 thread each")
    results = {}
    for workers in (1, 2):
        results[f"local {workers}"] = (*_timed(spec, workers=workers), workers)
    try:
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster:
            results["dask 2"] = (*_timed(spec, scheduler=cluster.scheduler_address), 2)
    except ImportError:
        print("dask.distributed not installed: no dask row")
    print(f"{'executor':<10} {'wall s':>8} {'task s (sum)':>13} {'mean task s':>12} "
          f"{'overhead/task s':>16} {'overhead / task':>16}")
    for label, (wall, own, workers) in results.items():
        mean = own / tasks
        overhead = (wall * workers - own) / tasks
        print(f"{label:<10} {wall:8.2f} {own:13.2f} {mean:12.3f} {overhead:16.3f} "
              f"{overhead / mean:15.1%}")
    speedup = results["local 1"][0] / results["local 2"][0]
    print(f"scaling: 2 workers vs 1 = {speedup:.2f}x (goal >= 1.8)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller tasks")
    args = parser.parse_args()
    seeds = 6 if args.quick else 24
    print(f"machine: {platform.platform()}; {cpu_name()}, {os.cpu_count()} logical CPUs")
    _bench("solver sweep (compress relu L=2, CPU-bound)", parse_spec(
        {"experiment": "compress", "seeds": seeds, "fixed": {"layers": 2, "p": 64, "width": 64}},
        name="bench-solver"))
    _bench(f"kernel sweep (convergence relu L=2 NTK, n={1200 if args.quick else 2400})",
           parse_spec({"experiment": "convergence", "seeds": seeds + 8,
                       "fixed": {"layers": 2, "kernel": "ntk",
                                 "n": 1200 if args.quick else 2400}}, name="bench-kernels"))


if __name__ == "__main__":
    main()
