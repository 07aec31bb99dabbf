"""Does the theory hold on real data? The universality study: the sweeps of
:func:`validation.experiments.universality.universality_task` over data sets, activations,
depths and sample sizes, their table, trends and figures (``ntklc experiment universality``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.lines import Line2D

from ntk import ck_equivalent, exact_kernels, parse_activations
from rmt import top_eigenpairs
from validation.experiments.universality import ACTIVATIONS, KERNELS, SOURCES, training_set
from validation.report.style import PALETTE, color, log_axis, new_figure, paper_style, save_figure
from validation.report.summary import SlopeFit, fit_loglog_slope, mean_and_se
from validation.sweeps import run_builtin_sweep

__all__ = ["UniversalityResult", "error_figure", "trend_summary", "universality_experiment",
           "universality_figures", "universality_specs", "universality_table"]

# A slope whose 95 % interval lies below this decays; otherwise the error stalls.
_DECAY_SLOPE = -0.1


def universality_specs(quick: bool, data=("mnist", "fashion-mnist"), classes: str = "all",
                       data_dir: str = "") -> dict[str, dict]:
    """The sweep specs (one per data set) of ``ntklc experiment universality``.

    Full: activations ``ACTIVATIONS``, L = 1..3, n in {500, 1000, 2000, 4000}, 2 seeds.
    Quick (a smoke test in seconds): MNIST classes 0 and 1, relu and tanh, L = 1, 2, n in
    {200, 400}, one seed.
    """
    if quick:
        data, classes = ("mnist",), "0,1"
    return {f"universality-{name}": {
        "experiment": "universality", "seeds": 1 if quick else 2,
        "fixed": {"data": name, "classes": classes, "data_dir": data_dir},
        "grid": {"act": ["relu", "tanh"] if quick else list(ACTIVATIONS),
                 "layers": [1, 2] if quick else [1, 2, 3],
                 "n": [200, 400] if quick else [500, 1000, 2000, 4000]}} for name in data}


@dataclass(frozen=True)
class UniversalityResult:
    """The sweeps' rows (one per task) and where they were written."""

    rows: tuple[dict, ...]
    data: tuple[str, ...]
    classes: str
    summary: dict
    seconds: float

    def as_dict(self) -> dict:
        header, table = universality_table(list(self.rows))
        return {"data": list(self.data), "classes": self.classes, "summary": self.summary,
                "trends": trend_summary(list(self.rows)),
                "table": [dict(zip(header, row, strict=True)) for row in table],
                "rows": list(self.rows), "seconds": self.seconds}


def universality_experiment(data=("mnist", "fashion-mnist"), classes: str = "all", *,
                            quick: bool = False, out=None, workers: int | None = None,
                            data_dir: str | None = None, progress: bool = False
                            ) -> UniversalityResult:
    """Run the sweeps of :func:`universality_specs` (cached in ``out``, so a rerun resumes).

    Raises:
        InputError: unknown data set or class; FileNotFoundError: data set missing;
        RuntimeError: a task failed.
    """
    start = time.perf_counter()
    specs = universality_specs(quick, tuple(data), classes, data_dir or "")
    for spec in specs.values():  # a missing data set or unknown class: one error, no workers
        fixed = spec["fixed"]
        training_set(fixed["data"], fixed["classes"], fixed["data_dir"]).check_size(
            max(spec["grid"]["n"]))
    rows, computed, cached = [], 0, 0
    for name, raw in specs.items():
        run = run_builtin_sweep(raw, name, None if out is None else Path(out) / name,
                                workers=workers, progress=progress)
        rows += run.rows
        summary = run.summary()
        computed += summary["computed"]
        cached += summary["cached"]
    first = next(iter(specs.values()))
    return UniversalityResult(rows=tuple(rows),
                              data=tuple(s["fixed"]["data"] for s in specs.values()),
                              classes=first["fixed"]["classes"],
                              summary={"tasks": len(rows), "computed": computed,
                                       "cached": cached},
                              seconds=time.perf_counter() - start)


def _groups(rows: list[dict]) -> dict[tuple, dict[int, list[dict]]]:
    """OK rows by (data, act, layers), then by n."""
    out: dict[tuple, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["status"] == "ok":
            out[r["data"], r["act"], int(r["layers"])][int(r["n"])].append(r)
    return out


def _trend(by_n: dict[int, list[dict]], key: str) -> str:
    """``decays n^slope`` when the 95 % interval of the log-log slope (fitted over every n and
    seed) lies below -0.1, else ``stalls``; ``-`` with fewer than three sizes."""
    if len(by_n) < 3:
        return "-"
    fit = _fit(by_n, key)
    verdict = "decays" if fit.slope + fit.ci < _DECAY_SLOPE else "stalls"
    return f"{verdict} n^{fit.slope:.2f}±{fit.ci:.2f}"


def _fit(by_n: dict[int, list[dict]], key: str) -> SlopeFit:
    ns = [n for n, group in by_n.items() for _ in group]
    return fit_loglog_slope(ns, [r[key] for group in by_n.values() for r in group])


def universality_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """One row per (data, act, L, kernel): errors over n for real data and twin (mean over
    seeds), their trend, and alignment and separability at the largest n."""
    header = ["data", "act", "L", "kernel", "n", "error real (%)", "error GMM twin (%)",
              "trend real", "trend twin", "alignment real / twin", "separability exact real / "
              "equivalent real / exact twin"]
    out = []
    for (data, act, layers), by_n in sorted(_groups(rows).items()):
        ns = sorted(by_n)
        last = by_n[ns[-1]]
        for kernel in KERNELS:
            err = {s: [mean_and_se([r[f"err_{kernel}_{s}"] for r in by_n[n]])[0] for n in ns]
                   for s in SOURCES}

            def mean(key, group=last):
                return float(np.mean([r[key] for r in group]))

            out.append([
                data, act, str(layers), kernel.upper(), "/".join(map(str, ns)),
                " / ".join(f"{100 * e:.1f}" for e in err["real"]),
                " / ".join(f"{100 * e:.1f}" for e in err["gmm"]),
                _trend(by_n, f"err_{kernel}_real"), _trend(by_n, f"err_{kernel}_gmm"),
                f"{mean(f'align_{kernel}_real'):.3f} / {mean(f'align_{kernel}_gmm'):.3f}",
                f"{mean(f'sep_{kernel}_real'):.3f} / {mean(f'sep_eq_{kernel}_real'):.3f} / "
                f"{mean(f'sep_{kernel}_gmm'):.3f}"])
    return header, out


def error_figure(rows: list[dict], data: str, path, command: str | None = None):
    """Relative spectral error vs n: rows L = 1..3, columns CK and NTK; one colour per
    activation, solid for the real images, dashed for their GMM twin (mean ± s.e. over
    seeds)."""
    groups = {key: by_n for key, by_n in _groups(rows).items() if key[0] == data}
    depths = sorted({key[2] for key in groups})
    acts = list(dict.fromkeys(key[1] for key in groups))
    with paper_style():
        fig = new_figure(2, height=1.6 * len(depths) + 0.5)
        axes = np.atleast_2d(fig.subplots(len(depths), 2, sharex=True, squeeze=False))
        for i, layers in enumerate(depths):
            for j, kernel in enumerate(KERNELS):
                ax = axes[i, j]
                for a, act in enumerate(acts):
                    by_n = groups.get((data, act, layers))
                    if not by_n:
                        continue
                    ns = sorted(by_n)
                    for source, style in (("real", "-"), ("gmm", "--")):
                        stats = [mean_and_se([r[f"err_{kernel}_{source}"] for r in by_n[n]])
                                 for n in ns]
                        m = np.array([s[0] for s in stats])
                        se = np.array([s[1] for s in stats])
                        ax.plot(ns, m, style, color=color(a), marker="o", ms=2.5)
                        ax.fill_between(ns, m - se, m + se, color=color(a), alpha=0.15, lw=0)
                ax.set_ylim(bottom=0)
                log_axis(ax, "x", values=sorted({n for by_n in groups.values() for n in by_n}))
                ax.set_title(f"{kernel.upper()}, L = {layers}")
                if j == 0:
                    ax.set_ylabel("rel. spectral error")
                if i == len(depths) - 1:
                    ax.set_xlabel("n")
        handles = [Line2D([], [], color=color(a), marker="o", ms=2.5, label=act)
                   for a, act in enumerate(acts)]
        handles += [Line2D([], [], color="0.3", ls=ls, label=label)
                    for ls, label in (("-", "real images"), ("--", "GMM twin"))]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle(f"{data}: equivalent vs exact kernel (mean ± s.e. over seeds)")
        return save_figure(fig, path, command)


def universality_figures(data: str, classes: str, out, *, act: str = "relu", layers: int = 2,
                         n: int = 2000, seed: int = 0, data_dir: str = "",
                         command: str | None = None) -> list:
    """The paper-style figure of one configuration: eigenvalue histograms of the exact CK on
    the real images, on their GMM twin and of the equivalent on the real images; and the real
    images in the top two eigenvectors of the exact CK, by class.

    Returns:
        The paths written (PNG; a PDF is written beside each).
    """
    acts = parse_activations(act) * int(layers)
    train = training_set(data, classes, data_dir)
    sample = train.sample(n, seed)
    real = exact_kernels(sample.X, acts, sample.stats.tau0, ntk=False).ck
    twin = exact_kernels(sample.twin.X, acts, sample.twin.stats.tau0, ntk=False).ck
    equivalent = ck_equivalent(sample.X, sample.stats, acts)
    eigs = {name: np.linalg.eigvalsh(K) for name, K in
            (("exact, real images", real), ("exact, GMM twin", twin),
             ("equivalent, real images", equivalent))}
    _, U = top_eigenpairs(real, 2)
    with paper_style():
        fig = new_figure(2, aspect=0.36)
        ax_h, ax_s = fig.subplots(1, 2)
        # The bulk sits near 0 and a few spikes far out: a log x axis shows both.
        lo = max(min(e[e > 0].min() for e in eigs.values()), 1e-6)
        hi = max(e.max() for e in eigs.values())
        edges = np.geomspace(lo, hi * 1.05, 60)
        for i, (name, e) in enumerate(eigs.items()):
            ax_h.hist(e[e > 0], bins=edges, histtype="step", color=color(i), lw=1.1,
                      label=name, density=False)
        ax_h.set_xscale("log")
        ax_h.set_yscale("log")
        # Headroom above the tallest bar for the legend.
        ax_h.set_ylim(0.7, ax_h.get_ylim()[1] * 30)
        ax_h.set_xlabel("eigenvalue")
        ax_h.set_ylabel("count")
        ax_h.set_title(f"CK spectrum, {act} L = {layers}, n = {n}")
        ax_h.legend(loc="upper left")
        classes_present = np.unique(sample.labels)
        # Okabe-Ito has 8 colours; 9 or more classes need a longer (still distinct) palette.
        colours = (PALETTE if classes_present.size <= len(PALETTE)
                   else [matplotlib.colormaps["tab10" if classes_present.size <= 10
                                              else "tab20"](i)
                         for i in range(classes_present.size)])
        for i, c in enumerate(classes_present):
            pick = sample.labels == c
            ax_s.scatter(U[pick, 0], U[pick, 1], s=3, color=colours[i % len(colours)],
                         label=str(c), alpha=0.7, lw=0)
        ax_s.set_xlabel("eigenvector 1")
        ax_s.set_ylabel("eigenvector 2")
        ax_s.set_title(f"{data}: top eigenvectors of the exact CK")
        ax_s.legend(title="class", ncols=2 if classes_present.size > 5 else 1, markerscale=3,
                    loc="center left", bbox_to_anchor=(1.0, 0.5))
        path = save_figure(fig, out / f"universality_spectrum_{data}.png", command)
    return [path]


def trend_summary(rows: list[dict]) -> dict[str, int]:
    """How many (data, act, L, kernel) groups decay and stall, on real data and on the twin."""
    counts: dict[str, int] = defaultdict(int)
    for by_n in _groups(rows).values():
        if len(by_n) < 3:
            continue
        for kernel in KERNELS:
            for source in SOURCES:
                counts[f"{source} {_trend(by_n, f'err_{kernel}_{source}').split()[0]}"] += 1
    return dict(counts)
