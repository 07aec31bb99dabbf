"""``ntklc experiment cnn``: the CNN study's sweeps, tables, figures and plain verdicts.

The tasks are ``validation.experiments.cnn``'s (registered in ``validation.experiments.tasks``);
this module builds their built-in sweep specs (:func:`cnn_specs`, also the ``cnn`` section of
``ntklc reproduce``), runs them cached (:func:`cnn_experiment`), and turns the rows into one
table, one figure and one verdict per part (a)-(e). Slopes are least-squares fits of log(error)
against log(n), log(C) or log(channels) with a 95 % confidence interval
(``validation.report.summary.fit_loglog_slope``); an error "falls" when the whole interval lies
below -0.1, "stays" when it lies within +-0.25, and shows "no clear trend" otherwise (too few
points or too much noise to tell).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ntklc.errors import InputError
from validation.experiments.cnn import ACTIVATIONS, REAL_DATA
from validation.report.style import color, log_axis, new_figure, paper_style, save_figure
from validation.report.summary import fit_loglog_slope

__all__ = ["PARTS", "CNNResult", "channel_trends", "cnn_experiment", "cnn_figures",
           "cnn_sources", "cnn_specs", "cnn_tables", "cnn_verdicts"]

#: The parts of the study: (key, title).
PARTS = (("a", "exact kernel, dense vs NTK-LC activations"),
         ("b", "the expanded recursion (the equivalent) vs the exact kernel"),
         ("c", "Hermite order of the quantized activations"),
         ("d", "finite networks, Gaussian and sparse ternary filters"),
         ("e", "random-feature CNN: accuracy vs memory"))
_FALLS = -0.1
_FLAT = 0.25
_EXPERIMENT = {"a": "cnn-compressed", "b": "cnn-equivalent", "c": "cnn-hermite",
               "d": "cnn-finite", "e": "cnn-accuracy"}


def cnn_sources(data: str | None = None, data_dir: str | None = None) -> tuple[str, ...]:
    """The sources of a run: ``data`` alone, or every raw-image set found plus ``gmm``.

    Raises:
        InputError: unknown ``data``; FileNotFoundError: ``data`` is a raw-image set whose
            files are not found (never downloads).
    """
    from nets import find_dataset
    from ntklc.errors import DataNotFoundError
    from validation.experiments.cnn import _LOADER_NAMES

    if data is None:
        return (*(d for d in REAL_DATA if find_dataset(_LOADER_NAMES[d], data_dir)), "gmm")
    if data == "gmm":
        return ("gmm",)
    if data not in REAL_DATA:
        raise InputError(f"unknown data {data!r}; choose from {', '.join((*REAL_DATA, 'gmm'))}")
    if find_dataset(_LOADER_NAMES[data], data_dir) is None:
        raise DataNotFoundError(f"{data} not found: put its files under NTKLC_DATA (or "
                                "--data-dir); the CNN commands do not download")
    return (data,)


def cnn_specs(quick: bool, sources=("mnist", "fashion-mnist", "gmm"), data_dir: str = ""
              ) -> dict[str, dict]:
    """The built-in sweeps, by name (``cnn-`` and the part's letter first).

    Quick (a smoke test in about a minute): the first raw-image set only, 7 x 7 images and
    6 x 6 feature maps, relu and tanh, L = 1, 2, n of 10 to 24. Full: 14 x 14 (16 x 16
    CIFAR-10) images and 8 x 8 feature maps, relu, tanh, gelu, L = 1..3, n up to 256 (flatten)
    and 32 (global average pooling), C in {4, 16, 64, 256}.
    """
    real = [s for s in sources if s != "gmm"][:1 if quick else None]
    acts = ["relu", "tanh"] if quick else list(ACTIVATIONS)
    layers = [1, 2] if quick else [1, 2, 3]
    image = {"size": 7 if quick else 0, "data_dir": data_dir}
    maps = {"data": "gmm", "size": 6 if quick else 0, "data_dir": data_dir}
    channels = [4, 16] if quick else [4, 16, 64, 256]
    specs: dict[str, dict] = {}

    def add(name, experiment, fixed, grid):
        specs[f"cnn-{name}"] = {"experiment": experiment, "fixed": fixed, "grid": grid}

    # Quick: one sweep per part and source kind (each sweep starts its own worker pool);
    # full: global average pooling at smaller n than flatten (it costs (H W)^2 per pair).
    # Both paddings on the feature maps (and flatten images): zero padding lowers the border
    # positions' variance below the chain's tau, circular padding does not.
    readouts = {"": (["flatten", "gap"], [10, 14])} if quick else {
        "": (["flatten"], None), "-gap": (["gap"], None)}
    paddings = ["same", "circular"]
    for part in ("a", "b"):
        experiment = _EXPERIMENT[part]
        for suffix, (readout, quick_n) in readouts.items():
            if real:
                add(f"{part}-images{suffix}", experiment, image,
                    {"data": real, "act": acts, "layers": layers, "readout": readout,
                     "padding": paddings if readout == ["flatten"] else ["same"],
                     "n": quick_n or ([64, 128, 256] if readout == ["flatten"]
                                      else [16, 24, 32])})
            if "gmm" in sources:
                add(f"{part}-maps{suffix}", experiment, maps,
                    {"act": acts, "layers": layers, "channels": channels,
                     "readout": ["flatten"] if quick else readout, "padding": paddings,
                     "n": [12] if quick else ([32, 64, 128] if readout == ["flatten"]
                                              else [16, 32])})
    if real:
        add("c-images", "cnn-hermite", {**image, "readout": "flatten", "n": 24 if quick else 128},
            {"data": real, "act": acts, "layers": [2], "order": [1, 2] if quick
             else [1, 2, 3, 4, 6]})
    finite = {"readout": "flatten", "n": 12 if quick else 48, "draws": 4 if quick else 16,
              "act": "relu"}
    for source in (*real, *(["gmm"] if "gmm" in sources else [])):
        fixed = {**(maps if source == "gmm" else {**image, "data": source}), **finite}
        add(f"d-{source}", "cnn-finite", fixed,
            {"layers": [1] if quick else [1, 2],
             "weights": ["gaussian", "ternary:0.5"] if quick
             else ["gaussian", "ternary:0.5", "ternary:0.9"],
             "width": [8, 32] if quick else [16, 64, 256]})
    mnist_type = [s for s in real if s in ("mnist", "fashion-mnist")]
    if mnist_type:
        add("e-accuracy", "cnn-accuracy", {"quick": quick, "data_dir": data_dir},
            {"data": mnist_type[:1] if quick else mnist_type})
    return specs


@dataclass(frozen=True)
class CNNResult:
    """Rows of every sweep (by name), the sources, the counts and the time."""

    rows: dict[str, list[dict]]
    sources: tuple[str, ...]
    quick: bool
    summary: dict
    seconds: float

    def as_dict(self) -> dict:
        tables = cnn_tables(self.rows)
        return {"sources": list(self.sources), "quick": self.quick, "summary": self.summary,
                "verdicts": cnn_verdicts(self.rows),
                "tables": {k: [dict(zip(h, r, strict=True)) for r in rows]
                           for k, (h, rows) in tables.items()},
                "rows": self.rows, "seconds": self.seconds}


def cnn_experiment(data: str | None = None, *, quick: bool = False, out=None,
                   workers: int | None = None, data_dir: str | None = None,
                   progress: bool = False) -> CNNResult:
    """Run :func:`cnn_specs` (cached in ``out/sweeps``, so a rerun resumes).

    Raises:
        InputError: unknown data; FileNotFoundError: missing data set; RuntimeError: a task
            failed.
    """
    from validation.sweeps import run_builtin_sweep, shared_workers

    start = time.perf_counter()
    sources = cnn_sources(data, data_dir)
    rows, computed, cached = {}, 0, 0
    # Every task is single-threaded: one worker per core, started once for all the sweeps.
    workers = workers or os.cpu_count() or 1
    with shared_workers(workers):
        for name, raw in cnn_specs(quick, sources, data_dir or "").items():
            run = run_builtin_sweep(raw, name,
                                    None if out is None else Path(out) / "sweeps" / name,
                                    workers=workers, progress=progress)
            rows[name] = run.rows
            counts = run.summary()
            computed += counts["computed"]
            cached += counts["cached"]
    return CNNResult(rows=rows, sources=sources, quick=quick,
                     summary={"tasks": sum(len(r) for r in rows.values()),
                              "computed": computed, "cached": cached},
                     seconds=time.perf_counter() - start)


# -- summaries -------------------------------------------------------------------------------

def _ok(rows):
    return [r for r in rows if r.get("status", "ok") == "ok"]


def _part(rows_by_sweep: dict, prefix: str) -> list[dict]:
    """The OK rows of the sweeps of one part (``prefix`` "a-" ... "e-")."""
    return [r for name, rows in rows_by_sweep.items() if name.startswith(f"cnn-{prefix}")
            for r in _ok(rows)]


def _slope(points) -> tuple[float, float]:
    """Slope and 95 % half-width of log y vs log x (``nan`` with fewer than two x)."""
    xs = [x for x, _ in points]
    if len(set(xs)) < 2:
        return float("nan"), float("nan")
    fit = fit_loglog_slope(xs, [y for _, y in points])
    return fit.slope, fit.ci


def channel_trends(rows: list[dict]) -> list[bool]:
    """For each setting of the feature-map rows (activation, depth, readout, padding, n),
    whether the error falls with the channel count (the 95 % interval of the slope below
    -0.1)."""
    maps = [r for r in rows if r["data"] == "gmm"]
    out = []
    for group in _groups(maps, ("act", "layers", "readout", "padding", "n")).values():
        slope, ci = _slope([(r["channels"], r["ck_error"]) for r in group])
        if not np.isnan(slope):
            out.append(bool(slope + (ci if np.isfinite(ci) else 0.0) < _FALLS))
    return out


def _trend(slope: float, ci: float) -> str:
    if np.isnan(slope):
        return "-"
    width = ci if np.isfinite(ci) else 0.0
    if slope + width < _FALLS:
        word = "falls"
    elif abs(slope) + width < _FLAT:
        word = "stays"
    else:
        word = "shows no clear trend"
    return f"{word} ({slope:+.2f}" + (
        f" ± {ci:.2f})" if np.isfinite(ci) else ")")


def _pct(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def _groups(rows: list[dict], keys) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return dict(sorted(out.items(), key=lambda kv: tuple(str(v) for v in kv[0])))


def _versus(rows: list[dict], axis: str, metric: str) -> tuple[list, list[float]]:
    values = sorted({r[axis] for r in rows})
    return values, [float(np.mean([r[metric] for r in rows if r[axis] == v])) for v in values]


def _kernel_table(rows_by_sweep: dict, part: str, metrics: tuple[str, ...]
                  ) -> tuple[list[str], list[list[str]]]:
    """Errors of part a or b: per (data, act, L, readout) over n (images, and maps at their
    largest C) and over C (maps, at their largest n), with the trends."""
    header = ["data", "act", "L", "readout", "padding", "axis", "values",
              *[f"{m.split('_')[0].upper()} error (%)" for m in metrics],
              *[f"{m.split('_')[0].upper()} trend" for m in metrics]]
    table = []
    rows = _part(rows_by_sweep, f"{part}-")
    for (data, act, layers, readout, padding), group in _groups(
            rows, ("data", "act", "layers", "readout", "padding")).items():
        axes = ["n"] if data != "gmm" else ["channels", "n"]
        for axis in axes:
            if axis == "n" and data == "gmm":
                sub = [r for r in group if r["channels"] == max(g["channels"] for g in group)]
            elif axis == "channels":
                sub = [r for r in group if r["n"] == max(g["n"] for g in group)]
            else:
                sub = group
            errors, trends = [], []
            for m in metrics:
                _, ys = _versus(sub, axis, m)
                errors.append(" / ".join(_pct(y) for y in ys))
                trends.append(_trend(*_slope([(r[axis], r[m]) for r in sub])))
            label = "C" if axis == "channels" else "n"
            if axis == "n" and data == "gmm":
                label = f"n (C={max(g['channels'] for g in group)})"
            if axis == "channels":
                label = f"C (n={max(g['n'] for g in group)})"
            table.append([data, act, str(layers), readout, padding, label,
                          "/".join(map(str, _versus(sub, axis, metrics[0])[0])), *errors,
                          *trends])
    return header, table


def _hermite_table(rows_by_sweep: dict) -> tuple[list[str], list[list[str]]]:
    header = ["data", "act", "L", "K", "levels per layer", "bits per value",
              "CK error (%)", "top-5 alignment"]
    rows = _part(rows_by_sweep, "c-")
    return header, [[r["data"], r["act"], str(r["layers"]), str(r["order"]),
                      "/".join(map(str, r["levels"])), str(r["value_bits"]),
                      _pct(r["ck_error"]), f"{r['ck_alignment']:.3f}"]
                     if r["levels"] is not None else
                     [r["data"], r["act"], str(r["layers"]), str(r["order"]),
                      "> 64 (infeasible)", "-", "-", "-"]
                     for r in sorted(rows, key=lambda r: (r["data"], r["act"], r["order"]))]


def _finite_table(rows_by_sweep: dict) -> tuple[list[str], list[list[str]]]:
    header = ["data", "weights", "L", "channels", "CK error (%)", "CK noise (%)",
              "NTK error (%)", "CK trend", "kurtosis measured / predicted",
              "predicted term / ||CK|| (%)"]
    table = []
    rows = _part(rows_by_sweep, "d-")
    for (data, weights, layers), group in _groups(rows, ("data", "weights", "layers")).items():
        widths, errors = _versus(group, "width", "ck_error")
        _, noise = _versus(group, "width", "ck_noise")
        _, ntk = _versus(group, "width", "ntk_error")
        widest = [r for r in group if r["width"] == max(widths)]
        kurt = "-"
        size = "-"
        if "kurtosis_ratio" in widest[0] and widest[0].get("kurtosis_ratio") is not None:
            k = widest[0]
            kurt = f"{k['kurtosis_ratio']:.2f} ± {k['kurtosis_se']:.2f}"
            size = _pct(k["kurtosis_rel_norm"])
        table.append([data, weights, str(layers), "/".join(map(str, widths)),
                      " / ".join(map(_pct, errors)), " / ".join(map(_pct, noise)),
                      " / ".join(map(_pct, ntk)),
                      _trend(*_slope([(r["width"], r["ck_error"]) for r in group])), kurt, size])
    return header, table


def _accuracy_table(rows_by_sweep: dict) -> tuple[list[str], list[list[str]]]:
    header = ["data", "method", "setting", "hidden kB", "factor", "accuracy (%)"]
    table = []
    for r in _part(rows_by_sweep, "e-"):
        for x in r["rows"]:
            table.append([r["data"], x["method"], x["setting"], f"{x['hidden_bits'] / 8e3:.1f}",
                          f"{x['factor']:.1f}x", f"{100 * x['accuracy']:.2f}"])
        table.append([r["data"], "exact kernel", f"{r['kernel_images']} images (ridge)", "-",
                      "-", f"{100 * r['kernel_accuracy']:.2f}"])
    return header, table


def cnn_tables(rows_by_sweep: dict) -> dict[str, tuple[list[str], list[list[str]]]]:
    """One (header, rows) table per part present."""
    tables = {"a": _kernel_table(rows_by_sweep, "a", ("ck_error",)),
              "b": _kernel_table(rows_by_sweep, "b", ("ck_error", "ntk_error")),
              "c": _hermite_table(rows_by_sweep), "d": _finite_table(rows_by_sweep),
              "e": _accuracy_table(rows_by_sweep)}
    return {k: v for k, v in tables.items() if v[1]}


# -- verdicts ----------------------------------------------------------------------------------

def _regime(rows: list[dict], metric: str) -> list[str]:
    """Summary of one kernel metric: on feature maps, per padding, the trend in C (at each
    setting's largest n); on raw images the range of errors at the largest n and the trend in
    n."""
    maps: dict[str, list] = defaultdict(list)
    images = []
    for key, group in _groups(rows, ("data", "act", "layers", "readout", "padding")).items():
        if key[0] == "gmm":
            top_n = max(r["n"] for r in group)
            maps[key[4]].append(_slope([(r["channels"], r[metric]) for r in group
                                        if r["n"] == top_n]))
        else:
            images.append((group, _slope([(r["n"], r[metric]) for r in group])))
    texts = []
    for padding, fits in sorted(maps.items(), key=lambda kv: kv[0] != "circular"):
        slopes = np.array([s for s, _ in fits])
        falls = sum(s + (c if np.isfinite(c) else 0) < _FALLS for s, c in fits)
        texts.append(f"on Gaussian-mixture feature maps with {_PADDING_NAMES[padding]} it falls "
                     f"with the channel count C in {falls} of {len(fits)} settings (slopes in C "
                     f"{slopes.min():+.2f} to {slopes.max():+.2f})")
    if images:
        top = [r[metric] for group, _ in images for r in group
               if r["n"] == max(g["n"] for g in group)]
        falls = sum(s + (c if np.isfinite(c) else 0) < _FALLS for _, (s, c) in images)
        texts.append(f"on raw images it is {100 * min(top):.1f}-{100 * max(top):.1f} % at the "
                     f"largest n and falls with n in {falls} of {len(images)} settings")
    return texts


_PADDING_NAMES = {"same": "zero padding", "circular": "circular padding", "valid": "no padding"}


def _joined(parts) -> str:
    return "; ".join(p for p in parts if p)


def cnn_verdicts(rows_by_sweep: dict) -> dict[str, str]:
    """One plain sentence (or two) per part present, from the numbers."""
    out = {}
    a = _part(rows_by_sweep, "a-")
    if a:
        out["a"] = ("The relative spectral error of the exact CNN CK with NTK-LC's quantized "
                    "activations: " + _joined(_regime(a, "ck_error")) + ".")
    b = _part(rows_by_sweep, "b-")
    if b:
        texts = []
        for metric in ("ck_error", "ntk_error"):
            texts.append(f"{metric.split('_')[0].upper()}: " + _joined(_regime(b, metric)))
        out["b"] = "The expanded recursion against the exact kernel. " + ". ".join(texts) + "."
    c = _part(rows_by_sweep, "c-")
    if c:
        lines = []
        for (data, act), group in _groups(c, ("data", "act")).items():
            group = sorted(group, key=lambda r: r["order"])
            lines.append(f"{data} {act}: " + ", ".join(
                f"K={r['order']} {100 * r['ck_error']:.1f} % ({r['value_bits']} bits)"
                if r["levels"] is not None else f"K={r['order']} no step of <= 64 levels"
                for r in group))
        out["c"] = ("CK error of the quantized network vs the number K of matched Hermite "
                    "coefficients (bits per activation value): " + "; ".join(lines) + ".")
    d = _part(rows_by_sweep, "d-")
    if d:
        lines = []
        for (data, weights), group in _groups(
                [r for r in d if r["layers"] == 1], ("data", "weights")).items():
            s, ci = _slope([(r["width"], r["ck_error"]) for r in group])
            widest = max(group, key=lambda r: r["width"])
            text = f"{data} {weights}: CK error {_trend(s, ci)} in channels"
            if widest.get("kurtosis_ratio") is not None:
                text += (f", kurtosis term {100 * widest['kurtosis_rel_norm']:.2f} % of the "
                         f"kernel, measured / predicted {widest['kurtosis_ratio']:.2f} ± "
                         f"{widest['kurtosis_se']:.2f}")
            lines.append(text)
        out["d"] = ("Finite CNNs (L = 1) against the exact kernel: " + "; ".join(lines)
                    + ". The first layer's fan-in is C k^2 whatever the width, so the "
                      "weight-kurtosis term of sparse ternary filters does not vanish with the "
                      "channels.")
    e = _part(rows_by_sweep, "e-")
    if e:
        lines = []
        for r in e:
            dense = r["dense_accuracy"]
            lc = [x for x in r["rows"] if x["method"] == "ntk-lc"]
            pruned = [x for x in r["rows"] if x["method"] == "pruning"]
            quantized = [x for x in r["rows"] if x["method"] == "quantization"]
            smallest = max(quantized, key=lambda x: x["factor"], default=None)
            lines.append(f"{r['data']}: dense {100 * dense:.2f} %, " + ", ".join(
                f"NTK-LC {x['setting']} {100 * x['accuracy']:.2f} % at {x['factor']:.0f}x less "
                f"memory (magnitude pruning at the same bytes {100 * p['accuracy']:.2f} %)"
                for x, p in zip(lc, pruned, strict=True))
                + (f", uniform {smallest['setting']} quantization {100 * smallest['accuracy']:.2f}"
                   f" % at {smallest['factor']:.0f}x" if smallest else "")
                + f"; exact CNN-GP kernel {100 * r['kernel_accuracy']:.2f} % on "
                  f"{r['kernel_images']} images")
        out["e"] = "Random-feature CNN: " + "; ".join(lines) + "."
    return out


# -- figures -----------------------------------------------------------------------------------

def _label(key: tuple) -> str:
    return " ".join(f"L={v}" if isinstance(v, int) else str(v) for v in key)


def _error_axes(ax, rows, axis, metric, label_key, title):
    """Error (%) vs ``axis`` on log-log axes, one line per ``label_key`` group."""
    for i, (label, group) in enumerate(_groups(rows, label_key).items()):
        xs, ys = _versus(group, axis, metric)
        ax.plot(xs, [100 * y for y in ys], "-o", ms=2.5, color=color(i), label=_label(label))
    log_axis(ax, "x", values=sorted({r[axis] for r in rows}))
    log_axis(ax, "y")
    ax.set_title(title)


_STYLES = ("-", "--", ":", "-.")


def _kernel_figure(rows: list[dict], metric: str, title: str):
    """Part (a) or (b): one column per activation; top row raw images (flatten, zero padding)
    vs n, bottom row GMM feature maps (flatten, largest n) vs C. Colour = depth L, line style =
    data set (top) or padding (bottom), so that no panel carries more than six lines."""
    images = [r for r in rows if r["data"] != "gmm" and r["readout"] == "flatten"
              and r["padding"] == "same"]
    maps = [r for r in rows if r["data"] == "gmm" and r["readout"] == "flatten"]
    maps = [r for r in maps if r["n"] == max(m["n"] for m in maps)] if maps else []
    panels = [(name, sub, axis, key) for name, sub, axis, key in (
        ("raw images, zero padding", images, "n", "data"),
        ("GMM feature maps", maps, "channels", "padding")) if sub]
    acts = [a for a in ACTIVATIONS if any(r["act"] == a for r in rows)]
    fig = new_figure(2, aspect=0.33 * len(panels) + 0.08)
    axes = fig.subplots(len(panels), len(acts), squeeze=False)
    for row, (name, sub, axis, key) in zip(axes, panels, strict=True):
        styles = {v: _STYLES[i % len(_STYLES)] for i, v in enumerate(sorted({r[key] for r in sub}))}
        for ax, act in zip(row, acts, strict=True):
            for (layers, style), group in _groups([r for r in sub if r["act"] == act],
                                                  ("layers", key)).items():
                xs, ys = _versus(group, axis, metric)
                ax.plot(xs, [100 * y for y in ys], styles[style], marker="o", ms=2.5,
                        color=color(layers - 1),
                        label=f"L={layers} {'zero padding' if style == 'same' else style}")
            log_axis(ax, "x", values=sorted({r[axis] for r in sub}))
            log_axis(ax, "y")
            ax.set_title(f"{act}: {name}", fontsize=7)
            ax.set_xlabel("n" if axis == "n" else "channels C")
        row[0].set_ylabel(f"rel. spectral error, {metric.split('_')[0].upper()} (%)")
        row[0].legend(fontsize=5)
    fig.suptitle(title)
    return fig


def cnn_figures(rows_by_sweep: dict, out: Path, command: str | None = None) -> list[Path]:
    """One figure per kernel part (a, b: error vs n on images, vs C on maps; c: error vs K;
    d: error vs channels) and the accuracy-memory plane (e). PNG + PDF."""
    out = Path(out)
    paths = []
    for part, title in (("a", "dense vs NTK-LC activations (exact CNN kernels)"),
                        ("b", "expanded recursion vs exact CNN kernel")):
        rows = _part(rows_by_sweep, f"{part}-")
        if rows:
            with paper_style():
                fig = _kernel_figure(rows, "ck_error", title)
                paths.append(save_figure(fig, out / f"cnn_{part}.png", command))
    c = _part(rows_by_sweep, "c-")
    if c:
        with paper_style():
            fig = new_figure(2, aspect=0.4)
            err_ax, bits_ax = fig.subplots(1, 2)
            feasible = [r for r in c if r["levels"] is not None]
            for i, (label, group) in enumerate(_groups(feasible, ("data", "act")).items()):
                for ax, metric, scale in ((err_ax, "ck_error", 100), (bits_ax, "value_bits", 1)):
                    xs, ys = _versus(group, "order", metric)
                    ax.plot(xs, [scale * y for y in ys], _STYLES[i // len(ACTIVATIONS)],
                            marker="o", ms=3, color=color(i % len(ACTIVATIONS)),
                            label=_label(label))
            log_axis(err_ax, "y")
            for ax in (err_ax, bits_ax):
                ax.set_xticks(sorted({r["order"] for r in c}))
                ax.set_xlabel("K (Hermite coefficients matched)")
            err_ax.set_ylabel("rel. spectral error of the CK (%)")
            bits_ax.set_ylabel("bits per activation value")
            err_ax.set_title("kernel error (L = 2, flatten)")
            bits_ax.set_title("memory of the activation")
            fig.legend(*err_ax.get_legend_handles_labels(), loc="outside right center",
                       fontsize=6)
            paths.append(save_figure(fig, out / "cnn_c.png", command))
    d = _part(rows_by_sweep, "d-")
    if d:
        with paper_style():
            fig = new_figure(2, aspect=0.42)
            ax = fig.subplots()
            first = [r for r in d if r["layers"] == 1]
            laws = sorted({r["weights"] for r in first})
            sources = sorted({r["data"] for r in first})
            for (data, weights), group in _groups(first, ("data", "weights")).items():
                xs, ys = _versus(group, "width", "ck_error")
                ax.plot(xs, [100 * y for y in ys], _STYLES[sources.index(data) % len(_STYLES)],
                        marker="o", ms=3, color=color(laws.index(weights)),
                        label=f"{data} {weights}")
            widths = sorted({r["width"] for r in first})
            start = 100 * min(r["ck_error"] for r in first if r["width"] == widths[0])
            ax.plot(widths, [start * (w / widths[0]) ** -0.5 for w in widths], "k", lw=0.6,
                    ls=(0, (1, 1)), label=r"channels$^{-1/2}$")
            log_axis(ax, "x", values=widths)
            log_axis(ax, "y")
            ax.set_xlabel("channels")
            ax.set_ylabel("rel. spectral error of the mean CK (%)")
            ax.set_title("finite CNNs (L = 1) vs the exact kernel; colour: filter law, "
                         "line: data", fontsize=7)
            fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", fontsize=6)
            paths.append(save_figure(fig, out / "cnn_d.png", command))
    e = _part(rows_by_sweep, "e-")
    if e:
        with paper_style():
            fig = new_figure(2, aspect=0.4)
            axes = np.atleast_1d(fig.subplots(1, len(e)))
            for ax, r in zip(axes, e, strict=True):
                for i, method in enumerate(("dense", "ntk-lc", "pruning", "quantization")):
                    pts = [x for x in r["rows"] if x["method"] == method]
                    ax.plot([x["hidden_bits"] / 8e3 for x in pts],
                            [100 * x["accuracy"] for x in pts], "o", color=color(i),
                            label=method)
                ax.axhline(100 * r["kernel_accuracy"], color="0.4", ls=":", lw=0.8,
                           label="exact kernel (subset)")
                log_axis(ax, "x")
                ax.set_xlabel("hidden-layer memory (kB)")
                ax.set_ylabel("test accuracy (%)")
                ax.set_title(r["data"])
            axes[0].legend(fontsize=5)
            paths.append(save_figure(fig, out / "cnn_e.png", command))
    return paths
