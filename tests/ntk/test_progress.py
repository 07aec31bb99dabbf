"""Progress bars: whole lines, a few per interval, where stderr is not a terminal."""

import io
import subprocess
import sys
from pathlib import Path

import ntk.progress
from ntk.progress import progress_bar

ROOT = Path(__file__).resolve().parents[2]


def test_a_file_gets_a_few_whole_lines(monkeypatch):
    """Within one interval a bar written to a file prints its first and last state only,
    however often it is refreshed (set_postfix forces a redraw, as the sweep bar's does)."""
    monkeypatch.setattr(ntk.progress, "LOG_INTERVAL", 1e9)
    log = io.StringIO()
    with progress_bar(total=400, desc="work", file=log) as bar:
        for i in range(400):
            bar.update()
            bar.set_postfix(step=i)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 2
    assert lines[0].startswith("work:   0%") and "400/400" in lines[-1]
    assert all(len(line) <= 100 for line in lines)


def test_a_terminal_keeps_the_redrawing_bar():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    for _ in progress_bar(range(50), desc="work", file=term, mininterval=0):
        pass
    assert term.getvalue().count("\r") >= 10


def test_a_command_redirected_to_a_file_writes_little(tmp_path):
    """A sweep of 8 tasks run as a batch job (stderr a file, not a terminal) writes whole
    lines: its bar's first and last state, not one redraw per task."""
    with open(tmp_path / "err.log", "w") as err:
        done = subprocess.run([sys.executable, "-m", "validation.cli", "sweep",
                               ROOT / "sweeps" / "smoke.toml",
                               "--out", tmp_path / "out", "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=err, timeout=300, cwd=ROOT)
    assert done.returncode == 0
    text = (tmp_path / "err.log").read_text()
    assert "\r" not in text
    assert len(text.splitlines()) <= 4, text
