"""Kill a command mid-run, as a crash, an out-of-memory kill or `kill -9` would."""

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def kill_mid_run(argv: list[str], ready: Callable[[], bool], timeout: float = 240.0) -> None:
    """Start ``argv`` in the repository in a session of its own, wait until ``ready()`` holds
    (or ``timeout`` seconds pass), then SIGKILL its whole process group and reap it."""
    proc = subprocess.Popen(argv, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not ready():
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
