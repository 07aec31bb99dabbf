"""``ntklc`` run in this process, as the command line would run it, for tests that run many."""

import contextlib
import io
import os
from pathlib import Path

from validation.cli import main


def run_in_process(argv: list[str], folder: Path) -> tuple[int, str]:
    """Exit code and stderr of ``ntklc argv`` run with ``folder`` as the working folder."""
    stderr = io.StringIO()
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's own exit (usage errors, --help)
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(cwd)
    return code, stderr.getvalue()
