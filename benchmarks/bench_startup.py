"""Start-up time of the ``ntklc`` command, as a ratio to a bare interpreter in the same run.

Run: ``.venv/bin/python benchmarks/bench_startup.py [--repeat 5]``.

Each row is the median wall time of ``--repeat`` fresh processes (after one unmeasured warm-up
process, so that the OS file cache and Numba's on-disk cache are warm):

  0. ``python -c pass``                      (the floor: interpreter start-up)
  1. ``ntklc --help``
  2. ``ntklc constants --act relu``          (method ``auto``)
  3. ``ntklc constants --act relu --method symbolic``
  4. ``ntklc constants --act relu --method mpmath``

and the ratio of each to row 0. Where the time goes: ``python -X importtime -c "import
validation.cli"``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_name


def _ntklc() -> list[str]:
    """The console script next to this interpreter, else ``python -m validation.cli``."""
    script = Path(sys.executable).with_name("ntklc")
    if script.exists():
        return [str(script)]
    found = shutil.which("ntklc")
    return [found] if found else [sys.executable, "-m", "validation.cli"]


def wall_time(cmd: list[str], repeat: int) -> float:
    """Median wall time of ``repeat`` fresh processes running ``cmd`` (after one warm-up)."""
    env = dict(os.environ)
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="processes per row (default 5)")
    args = parser.parse_args()
    ntklc = _ntklc()
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("ntklc --help", [*ntklc, "--help"]),
        ("ntklc constants --act relu", [*ntklc, "constants", "--act", "relu"]),
        ("  ... --method symbolic", [*ntklc, "constants", "--act", "relu", "--method",
                                     "symbolic"]),
        ("  ... --method mpmath", [*ntklc, "constants", "--act", "relu", "--method", "mpmath"]),
    ]
    print(f"start-up, median of {args.repeat} fresh processes ({cpu_name()})")
    base = None
    for label, cmd in rows:
        t = wall_time(cmd, args.repeat)
        base = base or t
        print(f"  {label:<34} {1e3 * t:8.1f} ms   {t / base:6.1f}x python -c pass")


if __name__ == "__main__":
    main()
