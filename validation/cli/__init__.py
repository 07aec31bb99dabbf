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
import traceback
from pathlib import Path

from ntklc.errors import InputError, RunError
from validation.cli.parser import build_parser

__all__ = ["main"]

def _check_writable(folder: Path) -> None:
    """Fail now, not after the computation, when ``folder`` could not hold the results: its
    nearest existing ancestor (or itself) must be a folder we may write in. Creates nothing.

    Raises:
        InputError: the nearest existing ancestor is not a folder, or not writable.
    """
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot write {existing}: {os.strerror(errno.ENOTDIR)}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {existing}: {os.strerror(errno.EACCES)}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n")) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ntklc`` console script; returns the exit code.

    The error contract (:mod:`ntklc.errors`): bad input (``InputError``, ``DataNotFoundError``),
    files that cannot be read or written (``OSError``) and sizes beyond the machine (memory,
    overflow, NumPy's size limit) end in one line on stderr and exit code 2; a run that could
    not finish (``RunError``) in one line and exit code 1; any other exception is a bug: one
    line asking for a report and exit code 1, with the traceback before it under ``--debug``
    or ``NTKLC_DEBUG=1``.
    """
    args = build_parser().parse_args(argv)
    try:
        for folder in (getattr(args, "out", None), getattr(args, "cache", None)):
            if folder:
                _check_writable(Path(folder))
        code = args.func(args)
    except InputError as exc:
        return _fail(2, f"ntklc: error: {_one_line(exc)}")
    except OSError as exc:  # a file that cannot be read or written (a folder, read-only, full)
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(2, f"ntklc: error: {where}{exc.strerror or _one_line(exc)}")
    except (MemoryError, OverflowError) as exc:  # sizes or scales beyond this machine
        return _fail(2, f"ntklc: error: too large for this machine ({type(exc).__name__}: "
                        f"{_one_line(exc)}); try smaller sizes")
    except ValueError as exc:
        if not _impossible_size(exc):
            return _internal_error(args, exc)
        return _fail(2, f"ntklc: error: too large for this machine ({_one_line(exc)}); try "
                        "smaller sizes")
    except RunError as exc:
        return _fail(1, f"ntklc: {_one_line(exc)}")
    except KeyboardInterrupt:
        return _fail(130, "ntklc: interrupted")
    except Exception as exc:  # the contract: anything else is a bug
        return _internal_error(args, exc)
    return code or 0


def _impossible_size(exc: ValueError) -> bool:
    """NumPy refuses an array whose size does not fit its index type with a ValueError."""
    return any(text in str(exc) for text in ("Maximum allowed", "array is too big"))


def _internal_error(args, exc: Exception) -> int:
    if args.debug or os.environ.get("NTKLC_DEBUG", "") not in ("", "0"):
        traceback.print_exc()
    return _fail(1, f"ntklc: internal error ({type(exc).__name__}: {_one_line(exc)}): a bug in "
                    "ntklc; please report it with the command line and the traceback that "
                    "ntklc --debug ... prints")


def _fail(code: int, line: str) -> int:
    sys.stderr.write(line + "\n")
    return code
