"""``ntklc plot``: draw any sweep's table as mean ± standard error over seeds.

One series per combination of the parameters that vary besides ``x`` (coloured by ``hue`` when
given); numeric x on a line with a shaded error band, categorical x as points with error bars.
Axes switch to log scale when the values are positive and span a decade or more; on log-log
axes every series carries its fitted power-law slope with a 95 % confidence interval.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from validation.report.style import color, log_axis, new_figure, paper_style, save_figure
from validation.report.summary import fit_loglog_slope, mean_and_se

__all__ = ["choose_columns", "draw_table", "plot_results"]

_BOOKKEEPING = ("seed", "status", "error", "seconds", "worker", "traceback")
_MARKERS = "os^Dv<>ph*"


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def choose_columns(rows: list[dict], meta: dict, x=None, y=None, hue=None
                   ) -> tuple[str, str, list[str]]:
    """Pick x, y and the parameters that tell series apart (hue first), checking the names.

    Defaults: the spec's ``[plot]``, then the first numeric grid axis for x and the first
    numeric metric for y.

    Raises:
        ValueError: an unknown column, or nothing numeric to plot.
    """
    if not rows:
        raise ValueError("the table has no finished task to plot")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    params = meta.get("params") or [c for c in columns if c not in _BOOKKEEPING]
    axes = meta.get("axes") or []
    varying = [p for p in params if len({repr(r.get(p)) for r in rows}) > 1]
    metrics = [c for c in columns if c not in params and c not in _BOOKKEEPING
               and any(_is_number(r.get(c)) for r in rows)]
    plot = meta.get("plot") or {}
    x = x or plot.get("x") or next((a for a in axes if all(_is_number(r.get(a)) for r in rows)),
                                   (axes or varying or [None])[0])
    y = y or plot.get("y") or (metrics[0] if metrics else None)
    hue = hue or plot.get("hue")
    for name, what in ((x, "--x"), (y, "--y"), (hue, "--hue")):
        if name is not None and name not in columns:
            raise ValueError(f"{what} {name!r} is not a column; columns: {', '.join(columns)}")
    if x is None or y is None:
        raise ValueError("nothing to plot: the table needs a varying parameter and a numeric "
                         "metric")
    series = [p for p in varying if p not in (x, "seed")]
    if hue in series:
        series.remove(hue)
        series.insert(0, hue)
    return x, y, series


def draw_table(rows: list[dict], x: str, y: str, series: list[str], *, title: str = "",
               ax=None, categorical: bool = False):
    """Draw mean ± SE of ``y`` against ``x`` on ``ax`` (one line per ``series`` combination).

    ``categorical`` places numeric x values at equal spacing (e.g. eps = 0, 0.5, 0.9, 0.99).

    Returns:
        The axes.
    """
    ok = [r for r in rows if r.get("status", "ok") == "ok" and _is_number(r.get(y))]
    groups: dict[tuple, dict] = defaultdict(lambda: defaultdict(list))
    for r in ok:
        groups[tuple(r.get(s) for s in series)][r.get(x)].append(float(r[y]))
    xs_all = sorted({r.get(x) for r in ok}, key=lambda v: (not _is_number(v), v if
                                                           _is_number(v) else str(v)))
    numeric_x = not categorical and all(_is_number(v) for v in xs_all)
    ys = np.asarray([float(r[y]) for r in ok])
    log_x = numeric_x and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 8
    log_y = ys.size > 0 and ys.min() > 0 and ys.max() / ys.min() >= 10
    for i, (key, by_x) in enumerate(groups.items()):
        label = ", ".join(f"{s}={v}" for s, v in zip(series, key, strict=True)) or y
        xv = [v for v in xs_all if v in by_x]
        stats = np.asarray([mean_and_se(by_x[v]) for v in xv])
        pos = np.asarray(xv, dtype=float) if numeric_x else np.asarray(
            [xs_all.index(v) for v in xv], dtype=float)
        if log_x and log_y and len(xv) >= 2:
            fit = fit_loglog_slope(*zip(*[(v, e) for v in xv for e in by_x[v]], strict=True))
            label += f" ({fit.label()})"
        marker = _MARKERS[i // 8 % len(_MARKERS)]
        if numeric_x:
            ax.plot(pos, stats[:, 0], marker + "-", color=color(i), label=label)
            se = np.nan_to_num(stats[:, 1])
            if np.any(se > 0):
                ax.fill_between(pos, stats[:, 0] - se, stats[:, 0] + se, color=color(i),
                                alpha=0.25, lw=0)
        else:
            ax.errorbar(pos + 0.08 * (i - len(groups) / 2), stats[:, 0],
                        yerr=np.nan_to_num(stats[:, 1]), fmt=marker, color=color(i),
                        capsize=2, label=label)
    if not numeric_x:
        ax.set_xticks(range(len(xs_all)), [str(v) for v in xs_all])
    if log_x:
        log_axis(ax, "x", values=xs_all)
    if log_y:
        log_axis(ax, "y")
    ax.set_xlabel(x)
    ax.set_ylabel(f"{y} (mean ± s.e.)" if any(len(v) > 1 for g in groups.values()
                                               for v in g.values()) else y)
    if title:
        ax.set_title(title)
    return ax


def plot_results(rows: list[dict], meta: dict, out: str | Path, *, x=None, y=None, hue=None,
                 command: str | None = None) -> Path:
    """Draw a sweep table (see the module docstring) into ``out`` as PNG and PDF.

    Returns:
        The PNG path, ``out/<sweep>_<y>_vs_<x>.png``.
    """
    x, y, series = choose_columns(rows, meta, x, y, hue)
    n_series = len({tuple(r.get(s) for s in series) for r in rows})
    with paper_style():
        wide = n_series > 6
        fig = new_figure(2 if wide else 1, aspect=0.5 if wide else 0.9)
        ax = fig.subplots()
        draw_table(rows, x, y, series, title=meta.get("sweep", ""), ax=ax)
        # Below the axes, never over the data.
        fig.legend(loc="outside lower center", ncol=(3 if wide else 2) if n_series > 1 else 1)
        name = f"{meta.get('sweep', 'sweep')}_{y}_vs_{x}"
        return save_figure(fig, Path(out) / f"{name}.png", command=command)
