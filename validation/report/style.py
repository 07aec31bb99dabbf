"""One figure style for the whole toolkit: journal column widths, print-size fonts, a
colour-blind-safe palette, log axes with uncrowded labels, and PNG + PDF output.

Usage::

    with paper_style():
        fig = new_figure(columns=1)
        ax = fig.subplots()
        ...
        save_figure(fig, "out/convergence.png", command="ntklc convergence ...")

``save_figure`` writes ``convergence.png`` (300 dpi) and ``convergence.pdf`` (TrueType fonts
embedded, ``pdf.fonttype = 42``) and stores the regenerating command in both files' metadata.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogFormatterSciNotation,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    ScalarFormatter,
)

from ntklc.errors import InputError

__all__ = [
    "ONE_COLUMN",
    "PALETTE",
    "TWO_COLUMN",
    "color",
    "linear_ticks",
    "log_axis",
    "new_figure",
    "paper_style",
    "save_figure",
]

#: Width in inches of one journal column and of a full two-column page.
ONE_COLUMN = 3.3
TWO_COLUMN = 6.9

#: Okabe-Ito colours, distinguishable under the common colour-vision deficiencies. Yellow is
#: last: it is faint on white and only used when a figure needs eight series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
           "#F0E442")

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.prop_cycle": cycler(color=PALETTE),
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "figure.dpi": 150,
    "savefig.dpi": 300,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
}


def color(i: int) -> str:
    """The i-th colour of the palette (cycling)."""
    return PALETTE[i % len(PALETTE)]


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Apply the toolkit's style to the figures created and saved inside the block."""
    with mpl.rc_context(STYLE):
        yield


def new_figure(columns: int = 1, aspect: float = 0.75, height: float | None = None) -> Figure:
    """A constrained-layout figure one (3.3 in) or two (6.9 in) columns wide.

    Args:
        columns: 1 or 2.
        aspect: height / width when ``height`` is not given.
        height: height in inches.

    Figures are made without pyplot: no global state, no backend switch for the caller.
    """
    if columns not in (1, 2):
        raise InputError(f"a figure is 1 or 2 columns wide, got {columns}")
    width = ONE_COLUMN if columns == 1 else TWO_COLUMN
    return Figure(figsize=(width, height if height is not None else aspect * width),
                  layout="constrained")


def _plain(value: float) -> str:
    """Tick label without an exponent where that stays short (200, 0.05), else 10^k."""
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)) + 1e-9)
    if -3 <= exponent <= 4:
        return f"{value:g}"
    mantissa = value / 10.0**exponent
    if abs(mantissa - 1) < 1e-9:
        return f"$10^{{{exponent}}}$"
    return f"${mantissa:g}\\times10^{{{exponent}}}$"


def _thin(values: np.ndarray, min_gap: float) -> np.ndarray:
    """Keep the first value, then every value at least ``min_gap`` decades past the last kept."""
    kept = [values[0]]
    for v in values[1:]:
        if math.log10(v / kept[-1]) >= min_gap:
            kept.append(v)
    return np.asarray(kept)


def linear_ticks(n: int) -> MaxNLocator:
    """At most ``n`` ticks on 1, 2, 2.5 or 5 times a power of ten (steps like 0, 1.5, 3, 4.5
    are harder to read off)."""
    return MaxNLocator(n, steps=[1, 2, 2.5, 5, 10], min_n_ticks=3)


def log_axis(ax, which: str = "x", values: Sequence[float] | None = None,
             min_gap: float = 0.25, max_labels: int = 6) -> None:
    """Log scale with labels that cannot collide. Call after plotting: the ticks depend on the
    data limits.

    With ``values`` (the data's own grid, e.g. n = 200, 400, ..., 3200) the labelled ticks sit
    on those values, thinned so that neighbours are at least ``min_gap`` decades apart.
    Otherwise, by the span of the axis:

    * three or more decades inside the axis: decades, every k-th one so that at most
      ``max_labels`` show, written 10^k throughout;
    * fewer: 1-2-5 multiples (or 1-1.5-2-3-5-7) so that at least three labels show;
    * less than a factor ~1.6: no such multiple fits, so round linear steps.

    Minor ticks are drawn without labels, which is where matplotlib's default crowds.
    """
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_formatter(FuncFormatter(lambda x, _pos: _plain(x)))
    axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 1.0, numticks=12))
    axis.set_minor_formatter(NullFormatter())
    if values is not None:
        v = np.unique(np.asarray([x for x in values if x > 0], dtype=float))
        axis.set_major_locator(FixedLocator(_thin(v, min_gap)))
        return
    lo, hi = sorted(axis.get_view_interval())
    span = math.log10(hi / lo) if lo > 0 else 3.0
    if span < 0.2:
        axis.set_major_locator(linear_ticks(4))
        axis.set_major_formatter(ScalarFormatter())
        return
    first = math.floor(math.log10(lo)) if lo > 0 else 0
    if sum(lo <= 10.0**k <= hi for k in range(first, math.ceil(math.log10(hi)) + 1)) >= 3:
        stride = max(1, math.ceil((span + 1) / max_labels))
        decades = [10.0**k for k in range(first, math.ceil(math.log10(hi)) + 1, stride)]
        axis.set_major_locator(FixedLocator(decades))
        axis.set_major_formatter(LogFormatterSciNotation())
        return
    exponents = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for subs in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7)):
        grid = [m * 10.0**k for k in exponents for m in subs if lo <= m * 10.0**k <= hi]
        if len(grid) >= 3:
            break
    axis.set_major_locator(FixedLocator(grid))


def save_figure(fig: Figure, path: str | Path, command: str | None = None) -> Path:
    """Write ``path`` as PNG (300 dpi) and the same stem as PDF (TrueType fonts embedded).

    Args:
        fig: the figure.
        path: target; its suffix is replaced by ``.png`` and ``.pdf``.
        command: the command that regenerates the figure, stored in the files' metadata
            (PNG text chunk ``Comment``, PDF ``Subject``).

    Returns:
        The PNG path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = path.with_suffix(".png"), path.with_suffix(".pdf")
    note = f"regenerate with: {command}" if command else "made by ntklc"
    with paper_style():
        fig.savefig(png, dpi=300, metadata={"Software": "ntklc", "Comment": note})
        fig.savefig(pdf, metadata={"Creator": "ntklc", "Subject": note})
    return png
