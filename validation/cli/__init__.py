"""The ``ntklc`` command line.

Every subcommand prints a short human-readable summary, or with ``--json`` one JSON object on
stdout and nothing else. Errors a user can make end in one line on stderr and exit code 2.

One parser (:mod:`validation.cli.parser`); the commands sit in one module per group
(:mod:`validation.cli.theory`, :mod:`validation.cli.experiment`, :mod:`validation.cli.sweeps`)
and share :mod:`validation.cli.common`. Only the standard library is imported at start-up:
``ntklc --help`` and ``ntklc constants`` must start fast, and each command imports what it runs
(SymPy, Numba, SciPy, matplotlib, dask...).
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

from validation.cli.parser import build_parser

__all__ = ["main"]

def _check_writable(folder: Path) -> None:
    """Fail now, not after the computation, when ``folder`` could not hold the results: its
    nearest existing ancestor (or itself) must be a folder we may write in. Creates nothing.

    Raises:
        OSError: NotADirectoryError or PermissionError, with the path.
    """
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(existing))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ntklc`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "out", None):
            _check_writable(Path(args.out))
        code = args.func(args)
    except (ValueError, FileNotFoundError) as exc:  # user errors: bad input, missing data
        sys.stderr.write(f"ntklc: error: {exc}\n")
        return 2
    except OSError as exc:  # an output folder that cannot be written (read-only, full, a file)
        where = f" {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"ntklc: error: cannot write{where}: {exc.strerror or exc}\n")
        return 2
    except RuntimeError as exc:  # the run broke (e.g. a worker died); its message says why
        sys.stderr.write(f"ntklc: {exc}\n")
        return 1
    return code or 0
