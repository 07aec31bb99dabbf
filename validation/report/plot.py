"""``ntklc plot``: draw any sweep's table as mean ± standard error over seeds.

One series per combination of the parameters that vary besides ``x`` (coloured by ``hue`` when
given); numeric x on a line with a shaded error band, categorical x as points with error bars.
Axes switch to log scale when the values are positive and span a decade or more; on log-log
axes every series carries its fitted power-law slope with a 95 % confidence interval.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ntklc.errors import InputError
from validation.report.style import color, log_axis, new_figure, paper_style, save_figure
from validation.report.summary import SlopeFit, fit_loglog_slope, mean_and_se

__all__ = ["choose_columns", "draw_table", "log_scales", "plot_results"]

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
        InputError: an unknown column, or nothing numeric to plot.
    """
    if not rows:
        raise InputError("the table has no finished task to plot")
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
            raise InputError(f"{what} {name!r} is not a column; columns: {', '.join(columns)}")
    if x is None or y is None:
        raise InputError("nothing to plot: the table needs a varying parameter and a numeric "
                         "metric")
    series = [p for p in varying if p not in (x, "seed")]
    if hue in series:
        series.remove(hue)
        series.insert(0, hue)
    return x, y, series


def log_scales(rows: list[dict], x: str, y: str, categorical: bool = False
               ) -> tuple[bool, bool]:
    """Log x when x is numeric, positive and spans 8x or more; log y when y is positive and
    spans 10x, or 3x on a log x axis (then the plot is log-log and its slope means a power)."""
    ok = [r for r in rows if r.get("status", "ok") == "ok" and _is_number(r.get(y))]
    xs = [r.get(x) for r in ok]
    ys = np.asarray([float(r[y]) for r in ok])
    log_x = (not categorical and bool(xs) and all(_is_number(v) for v in xs)
             and min(xs) > 0 and max(xs) / min(xs) >= 8)
    log_y = bool(ys.size) and ys.min() > 0 and ys.max() / ys.min() >= (3 if log_x else 10)
    return bool(log_x), bool(log_y)


def draw_table(rows: list[dict], x: str, y: str, series: list[str], *, title: str = "",
               ax=None, categorical: bool = False, order: list[tuple] | None = None,
               slopes_in_legend: bool = True, scales: tuple[bool, bool] | None = None
               ) -> dict[str, SlopeFit]:
    """Draw mean ± SE of ``y`` against ``x`` on ``ax`` (one line per ``series`` combination).

    Args:
        rows: table rows; failed tasks and non-numeric ``y`` are left out.
        x, y: columns.
        series: parameters whose value combinations are the lines.
        title: axes title.
        ax: matplotlib axes.
        categorical: place numeric x values at equal spacing (e.g. eps = 0, 0.5, 0.9, 0.99).
        order: series keys in colour order, so that facets share colours (default: the order
            of appearance).
        slopes_in_legend: on log-log axes, append each line's fitted slope to its label.
        scales: (log x, log y); default :func:`log_scales` of ``rows`` (pass the whole
            table's choice so that facets agree).

    Returns:
        The fitted log-log slope of each line by label (empty unless both axes are log).
    """
    ok = [r for r in rows if r.get("status", "ok") == "ok" and _is_number(r.get(y))]
    groups: dict[tuple, dict] = defaultdict(lambda: defaultdict(list))
    for r in ok:
        groups[tuple(r.get(s) for s in series)][r.get(x)].append(float(r[y]))
    xs_all = sorted({r.get(x) for r in ok}, key=lambda v: (not _is_number(v), v if
                                                           _is_number(v) else str(v)))
    numeric_x = not categorical and all(_is_number(v) for v in xs_all)
    log_x, log_y = scales if scales is not None else log_scales(rows, x, y, categorical)
    order = list(order) if order is not None else list(groups)
    fits = {}
    for key, by_x in groups.items():
        i = order.index(key)
        label = ", ".join(f"{s}={v}" for s, v in zip(series, key, strict=True)) or y
        xv = [v for v in xs_all if v in by_x]
        stats = np.asarray([mean_and_se(by_x[v]) for v in xv])
        pos = np.asarray(xv, dtype=float) if numeric_x else np.asarray(
            [xs_all.index(v) for v in xv], dtype=float)
        if log_x and log_y and len(xv) >= 2:
            fit = fit_loglog_slope(*zip(*[(v, e) for v in xv for e in by_x[v]], strict=True))
            fits[label] = fit
            if slopes_in_legend:
                label += f" ({fit.label()})"
        marker = _MARKERS[i // 8 % len(_MARKERS)]
        if numeric_x:
            ax.plot(pos, stats[:, 0], marker + "-", color=color(i), label=label)
            se = np.nan_to_num(stats[:, 1])
            if np.any(se > 0):
                ax.fill_between(pos, stats[:, 0] - se, stats[:, 0] + se, color=color(i),
                                alpha=0.25, lw=0)
        else:
            ax.errorbar(pos + 0.08 * (i - len(order) / 2), stats[:, 0],
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
    return fits


def _where(rows: list[dict], where: dict) -> list[dict]:
    keep = [r for r in rows if all(str(r.get(k)) == str(v) for k, v in where.items())]
    if not keep:
        raise InputError(f"no row matches {', '.join(f'{k}={v}' for k, v in where.items())}")
    return keep


def plot_results(rows: list[dict], meta: dict, out: str | Path, *, x=None, y=None, hue=None,
                 where: dict | None = None, command: str | None = None
                 ) -> tuple[Path, list[dict]]:
    """Draw a sweep table (see the module docstring) into ``out`` as PNG and PDF.

    Lines are coloured by ``hue``; every other parameter that varies makes its own panel (at
    most 12; narrow the table with ``where``, e.g. ``{"kernel": "ck"}``).

    Returns:
        The PNG path, ``out/<sweep>_<y>_vs_<x>.png``, and the fitted slopes (one dict per line
        and panel; empty unless both axes are log).

    Raises:
        InputError: unknown columns, nothing to plot, or too many panels.
    """
    # A list or dict cell (a layer's widths, say) groups by its JSON text.
    rows = [{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()}
            for r in rows]
    if where:
        rows = _where(rows, where)
    x, y, series = choose_columns(rows, meta, x, y, hue)
    hue_params, facet_params = series[:1], series[1:]
    hue_keys = list(dict.fromkeys(tuple(r.get(s) for s in hue_params) for r in rows))
    panels = list(dict.fromkeys(tuple(r.get(f) for f in facet_params) for r in rows))
    if len(panels) > 12:
        raise InputError(f"{len(panels)} panels ({', '.join(facet_params)} vary besides "
                         f"{x} and the hue); choose --hue or narrow with --where KEY=VALUE")
    slopes, scales = [], log_scales(rows, x, y)
    filters = ", ".join(f"{k}={v}" for k, v in (where or {}).items())
    with paper_style():
        cols = min(3, len(panels))
        n_rows = -(-len(panels) // cols)
        fig = (new_figure(1, aspect=0.9) if len(panels) == 1 else
               new_figure(2, height=0.6 + 1.9 * n_rows))
        axes = np.atleast_1d(fig.subplots(n_rows, cols, sharex=True, sharey=True,
                                          squeeze=False).ravel())
        for ax, panel in zip(axes, panels, strict=False):
            sub = [r for r in rows if tuple(r.get(f) for f in facet_params) == panel]
            title = ", ".join(f"{f}={v}" for f, v in zip(facet_params, panel, strict=True))
            if not title:
                title = meta.get("sweep", "") + (f" ({filters})" if where else "")
            fits = draw_table(sub, x, y, hue_params, title=title,
                              ax=ax, order=hue_keys, slopes_in_legend=len(panels) == 1,
                              scales=scales)
            slopes += [{"panel": title, "line": k, "slope": f.slope, "ci95": f.ci}
                       for k, f in fits.items()]
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        for ax in axes[:len(panels)]:
            ax.label_outer()  # axis labels once per row and column of the grid
        handles, labels = axes[0].get_legend_handles_labels()
        # Below the axes, never over the data; as many columns as fit the width at 7 pt
        # (about 55 characters per one-column line).
        room = 55 if len(panels) == 1 else 115
        ncol = max(1, min(len(labels), room // (max(map(len, labels), default=1) + 6)))
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol)
        name = f"{meta.get('sweep', 'sweep')}_{y}_vs_{x}"
        return save_figure(fig, Path(out) / f"{name}.png", command=command), slopes
