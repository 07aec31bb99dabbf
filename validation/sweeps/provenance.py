"""What a result was computed with: package versions, git commit, machine, times."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["git_commit", "package_versions", "provenance"]

_PACKAGES = ("ntklc", "numpy", "scipy", "numba", "llvmlite", "sympy", "mpmath", "matplotlib",
             "threadpoolctl", "constriction", "dask", "distributed")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages results depend on (``None`` when absent)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> dict | None:
    """Commit of the source tree this package runs from, and whether it has local changes;
    ``None`` outside a git checkout (an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def provenance(**extra) -> dict:
    """Versions, commit and machine, plus ``extra`` (times, spec, executor)."""
    return {
        "packages": package_versions(),
        "git": git_commit(),
        "machine": {"hostname": socket.gethostname(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count()},
        "command": " ".join(["ntklc", *sys.argv[1:]]) if sys.argv else None,
        **extra,
    }
