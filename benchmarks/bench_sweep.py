"""Sweep scaling: a CPU-bound sweep on 2 local workers against 1, and the per-task overhead of
the local pool and of a dask cluster against the tasks' own time, all in the same run.

Run: ``.venv/bin/python benchmarks/bench_sweep.py [--tasks 24] [--n 700]``. Each run starts
from an empty cache. The overhead per task is (wall time x workers - sum of the tasks' own
times) / tasks: process start-up, pickling, scheduling and cache writes.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

from _machine import cpu_name

from validation.sweeps import parse_spec, run_sweep


def _spec(tasks: int, n: int):
    return parse_spec({"experiment": "convergence", "seeds": tasks,
                       "fixed": {"act": "relu", "layers": 2, "kernel": "ntk", "n": n}},
                      name="bench")


def _timed(spec, **kwargs) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run = run_sweep(spec, out, progress=False, **kwargs)
        wall = time.perf_counter() - start
    assert not run.failed and not run.missing
    return wall, sum(r["seconds"] for r in run.rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--n", type=int, default=700, help="samples per task (sets its cost)")
    args = parser.parse_args()
    spec = _spec(args.tasks, args.n)
    print(f"machine: {platform.platform()}; {cpu_name()}, {os.cpu_count()} logical CPUs")
    print(f"sweep: {args.tasks} tasks of convergence (relu L=2 NTK, n={args.n}), 1 thread each")
    results = {}
    for workers in (1, 2):
        wall, own = _timed(spec, workers=workers)
        results[f"local {workers}"] = (wall, own, workers)
    try:
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster:
            wall, own = _timed(spec, scheduler=cluster.scheduler_address)
        results["dask 2"] = (wall, own, 2)
    except ImportError:
        print("dask.distributed not installed: no dask row")
    print(f"{'executor':<10} {'wall s':>8} {'task s (sum)':>13} {'mean task s':>12} "
          f"{'overhead/task s':>16} {'overhead / task':>16}")
    for name, (wall, own, workers) in results.items():
        mean = own / args.tasks
        overhead = (wall * workers - own) / args.tasks
        print(f"{name:<10} {wall:8.2f} {own:13.2f} {mean:12.3f} {overhead:16.3f} "
              f"{overhead / mean:15.1%}")
    speedup = results["local 1"][0] / results["local 2"][0]
    print(f"scaling: 2 workers vs 1 = {speedup:.2f}x (goal >= 1.8)")


if __name__ == "__main__":
    main()
