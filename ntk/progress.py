"""Progress bars that suit where stderr goes: a live bar on a terminal or in a notebook, a few
whole lines in a log file.

On a terminal a tqdm bar redraws itself in place with ``\\r``. Written to a file (a batch job,
CI, ``nohup``, ``2> log``) the same redraws pile up as one line of thousands of updates. Every
bar of the toolkit therefore comes from :func:`progress_bar`, which keeps tqdm's bar where it
can redraw and otherwise prints whole lines: the bar's state when it starts, at most one line
per ``LOG_INTERVAL`` seconds while it runs, and its final state. It lives in ``ntk``, the lowest
package with a long computation, so that every package above can use it.
"""

from __future__ import annotations

import sys
import time

from tqdm import autonotebook, std
from tqdm.auto import tqdm as auto_tqdm

__all__ = ["LOG_INTERVAL", "progress_bar"]

#: Seconds between two lines of a bar written to a file.
LOG_INTERVAL = 30.0


class _Lines:
    """A text stream wrapper that turns tqdm's ``\\r``-redraws into whole lines.

    tqdm writes ``"\\r" + state + padding`` for each redraw, and a bare ``"\\n"`` or ``"\\r"``
    when a bar closes; blank writes are dropped, the others end in one newline. A line that
    repeats the previous one up to its rate (a bar closed right after its last redraw) is
    dropped too.
    """

    def __init__(self, stream):
        self.stream = stream
        self.last = None

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        key = line.split("<", 1)[0]  # description, bar, count and elapsed time
        if line and key != self.last:
            self.stream.write(line + "\n")
            self.last = key

    def flush(self) -> None:
        self.stream.flush()


class _LogBar(std.tqdm):
    """A tqdm bar that draws at most one line per :data:`LOG_INTERVAL` seconds (its first and
    last state always), however often the caller refreshes it (``set_postfix`` does)."""

    def __init__(self, *args, **kwargs):
        self._last_line = -float("inf")
        self._closing = False
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        now = time.monotonic()
        if not self._closing and now - self._last_line < LOG_INTERVAL:
            return True
        self._last_line = now
        return super().display(msg, pos)

    def close(self):
        self._closing = True
        super().close()


def _redraws(stream) -> bool:
    """True when a bar on ``stream`` can redraw in place (a terminal) or tqdm.auto chose a
    notebook widget."""
    if autonotebook.tqdm is not std.tqdm:  # a Jupyter front end: the widget is fine
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(iterable=None, **kwargs) -> std.tqdm:
    """A tqdm bar (same arguments) on ``file`` (default ``sys.stderr``).

    Where ``file`` cannot redraw (not a terminal), the bar prints whole lines, at most one
    per :data:`LOG_INTERVAL` seconds plus its first and last state, instead of every update.

    Returns:
        The bar (usable as an iterator and a context manager, as tqdm's).
    """
    stream = kwargs.pop("file", None) or sys.stderr
    if _redraws(stream):
        return auto_tqdm(iterable, file=stream, **kwargs)
    kwargs["mininterval"] = max(kwargs.get("mininterval", 0.0), LOG_INTERVAL)
    kwargs.setdefault("maxinterval", kwargs["mininterval"])
    kwargs["ascii"] = True  # block characters read badly in log viewers
    # tqdm's terminal width is meaningless in a file: the default bar would take 10 columns.
    kwargs.setdefault("ncols", 100)
    return _LogBar(iterable, file=_Lines(stream), **kwargs)
