"""Figures of the experiments, in the toolkit's paper style (``validation.report.style``).

Every ``plot_*`` function draws one figure from an experiment's result, writes it as PNG
(300 dpi) and PDF (TrueType fonts) next to each other and returns the PNG path. The drawing
itself lives in a ``_draw_*`` function that returns the ``Figure``, so that tests can lay the
figure out and inspect it (tick labels, legends) without reading image files.

Single-panel figures are one journal column wide (3.3 in), two-panel figures two columns
(6.9 in); fonts, line widths and colours all come from the style, so the figures match each
other when they sit on the same page.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ntklc.errors import InputError
from validation.report.style import (
    PALETTE,
    color,
    linear_ticks,
    log_axis,
    new_figure,
    paper_style,
    save_figure,
)
from validation.report.summary import fit_loglog_slope, mean_and_se

__all__ = ["plot_accuracy_memory", "plot_activations", "plot_compress_compare",
           "plot_compression_spectra", "plot_convergence", "plot_neighbourhood",
           "plot_spectrum"]

#: Grey of reference data drawn underneath the compared series (dense kernels, guides).
_REFERENCE_GREY = "0.75"
#: Bins of the eigenvalue histograms: enough to show the bulk's shape, few enough that
#: several overlaid step outlines stay apart at column width.
_BINS = 40
# Samples drawn in the eigenvector panel: enough to show each class's cloud, few enough that
# the clouds do not merge into one blot (n = 60000 did).
_SCATTER_MAX = 4000
_CLASS_COLORS = (*PALETTE, "#882255", "#999933")


def _network(acts) -> str:
    """Short name of a network: ``relu (L=3)`` for repeated activations, else ``relu/tanh``.

    Repeated names ("relu/relu/relu/relu") make titles and legend entries too long for a
    journal column.
    """
    acts = list(acts)
    if len(acts) > 1 and len(set(acts)) == 1:
        return f"{acts[0]} (L={len(acts)})"
    return "/".join(acts)


#: How the reference kernels of ``spectrum_experiment`` are named in figures.
_REFERENCE_NAMES = {"exact": "exact", "mc": "Monte-Carlo"}


def _size_unit(nbytes) -> tuple[str, float]:
    """The largest of B, kB, MB, GB in which the smallest size is at least 0.1.

    Labels then read 1, 10, 100 rather than 0.001 or 5x10^-4 (which is longer than its
    neighbours and runs into them).
    """
    smallest = min(nbytes)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if smallest >= 0.1 * scale:
            return unit, scale
    return "B", 1.0


def _save_drawn(draw, result, path, command) -> Path:
    """Draw ``result`` inside the toolkit's style and write it as PNG + PDF."""
    with paper_style():
        fig = draw(result)
    return save_figure(fig, path, command)


# --- spectrum ------------------------------------------------------------------------------


def _histogram(ax, result, reference: str, error: float) -> None:
    """Both spectra as densities, the equivalent's two largest eigenvalues marked."""
    ref, th = result.eigs_reference, result.eigs_theory
    edges = np.linspace(min(ref.min(), th.min()), max(ref.max(), th.max()), _BINS + 1)
    ax.hist(ref, bins=edges, density=True, color=_REFERENCE_GREY,
            label=f"{reference} {result.kernel.upper()}")
    ax.hist(th, bins=edges, density=True, histtype="step", color=color(3), lw=1.0,
            label=f"equivalent (error {error:.2f} %)")
    for j, lam in enumerate(result.comparison.top_eigs_theory[:2]):
        # The isolated eigenvalues carry the class information; mark where theory puts them.
        ax.axvline(lam, color=color(3), ls=":", lw=0.8,
                   label="its two largest eigenvalues" if j == 0 else None)
    log_axis(ax, "y")
    ax.xaxis.set_major_locator(linear_ticks(5))
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")


def _top_eigenvalues(ax, result, reference: str, error: float) -> None:
    """The Lanczos path has only the top of the spectra: the k largest eigenvalues."""
    cmp = result.comparison
    index = np.arange(1, cmp.top_eigs_reference.size + 1)
    ax.plot(index, cmp.top_eigs_reference, "o", color=_REFERENCE_GREY, ms=5,
            label=f"{reference} {result.kernel.upper()}")
    ax.plot(index, cmp.top_eigs_theory, "x", color=color(3), ms=5,
            label=f"equivalent (error {error:.2f} %)")
    log_axis(ax, "y")
    ax.set_xticks(index)
    ax.set_xlabel("rank i (largest eigenvalues, by Lanczos)")
    ax.set_ylabel("eigenvalue $\\lambda_i$")


def _draw_spectrum(result) -> Figure:
    """The spectrum figure (see ``plot_spectrum``); call inside ``paper_style()``."""
    fig = new_figure(columns=2, height=2.7)
    ax_h, ax_v = fig.subplots(1, 2)
    error = 100 * result.comparison.rel_spectral_error
    reference = _REFERENCE_NAMES.get(result.reference, result.reference)
    if result.eigs_reference is None:
        _top_eigenvalues(ax_h, result, reference, error)
    else:
        _histogram(ax_h, result, reference, error)
    ax_h.set_title(f"{_network(result.acts)} {result.kernel.upper()}, "
                   f"n = {result.n}, p = {result.p}")

    _eigenvector_scatter(ax_v, result)
    # Eigenvector entries are ~ 1/sqrt(n): with matplotlib's default seven or more ticks their
    # labels (-0.075, -0.050, ...) ran into each other; at most five intervals on round steps
    # leave room at column width.
    for axis in (ax_v.xaxis, ax_v.yaxis):
        axis.set_major_locator(linear_ticks(5))
    ax_v.set_xlabel("entry in top eigenvector $u_1$")
    ax_v.set_ylabel("entry in second eigenvector $u_2$")
    shown = min(result.n, _SCATTER_MAX)
    ax_v.set_title(f"samples in the top eigenvectors ({reference} kernel)" if shown == result.n
                   else f"{shown} of the {result.n} samples in the top eigenvectors")
    # One legend row under both panels: inside the histogram the marked eigenvalues run the
    # full height at both ends of the spectrum, so no corner is free.
    handles, labels = [], []
    for ax in (ax_h, ax_v):
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6))
    return fig


def _eigenvector_scatter(ax, result) -> None:
    """Each sample's entries in the top two eigenvectors, coloured by class: at most
    ``_SCATTER_MAX`` samples (a fixed random subset), drawn in random order so that no class
    hides the others, with one legend entry per class."""
    classes, index = np.unique(result.labels, return_inverse=True)
    order = np.random.default_rng(0).permutation(result.n)[:_SCATTER_MAX]
    vectors = result.vectors_reference
    ax.scatter(vectors[order, 0], vectors[order, 1], s=4, linewidths=0, alpha=0.7,
               c=[_class_color(i) for i in index[order]])
    for i, a in enumerate(classes):
        ax.plot([], [], "o", ms=5, mew=0, color=_class_color(i), alpha=0.7, label=f"class {a}")


def _class_color(i: int) -> str:
    """Ten distinct colours for class labels (the palette's eight, then two of Paul Tol's
    muted scheme), cycling beyond."""
    return _CLASS_COLORS[i % len(_CLASS_COLORS)]


def plot_spectrum(result, path: str | Path, command: str | None = None) -> Path:
    """Eigenvalues and top eigenvectors of a reference kernel against its equivalent.

    Left: eigenvalue histogram of the reference kernel (grey) with the equivalent's overlaid
    and its two largest eigenvalues marked. Right: each sample's entries in the top two
    reference eigenvectors, coloured by class. Two columns wide.

    Args:
        result: a ``validation.experiments.spectra.SpectrumResult``.
        path: target; written as ``.png`` and ``.pdf``.
        command: the command that regenerates the figure (stored in the files' metadata).

    Returns:
        The PNG path.
    """
    return _save_drawn(_draw_spectrum, result, path, command)


# --- convergence ---------------------------------------------------------------------------


def _draw_convergence(results) -> Figure:
    """The convergence figure (see ``plot_convergence``); call inside ``paper_style()``."""
    results = list(results)
    if not results:
        raise InputError("plot_convergence needs at least one result")
    # Taller than the default aspect: the legend sits below the axes, one entry per line.
    fig = new_figure(columns=1, height=2.2 + 0.16 * (len(results) + 2))
    ax = fig.subplots()
    grid, first_means = set(), []
    for i, r in enumerate(results):
        ns = np.asarray(r.ns, dtype=float)
        errors = np.asarray(r.errors, dtype=float).reshape(len(ns), -1)
        stats = np.array([mean_and_se(row) for row in errors])
        mean, se = stats[:, 0], stats[:, 1]
        # The slope and its CI come from every (n, seed) point, not from the means: the
        # spread over seeds is what the interval has to reflect.
        fit = fit_loglog_slope(np.repeat(ns, errors.shape[1]), errors.ravel())
        # A typographic minus: the label sits next to mathtext, which uses one.
        slope = fit.label().replace("-", "\N{MINUS SIGN}")
        ax.plot(ns, mean, "o-", color=color(i),
                label=f"{_network(r.acts)} {r.kernel.upper()}: {slope}")
        if errors.shape[1] > 1 and np.all(np.isfinite(se)):
            # A band reaching zero cannot be drawn on a log axis; floor it at a tenth of the
            # mean (a band that wide already says "not resolved").
            ax.fill_between(ns, np.maximum(mean - se, mean / 10), mean + se, color=color(i),
                            alpha=0.25, lw=0)
        grid.update(ns.tolist())
        first_means.append(mean[0])
    ns = np.asarray(sorted(grid))
    # The guide only shows the slope: start it above the highest curve so it crosses none.
    ax.plot(ns, 1.4 * max(first_means) * (ns / ns[0]) ** -0.5, "--", color="0.4", lw=0.8,
            label=r"$n^{-1/2}$ guide")
    log_axis(ax, "x", values=ns)
    log_axis(ax, "y")
    # On the built-in GMM p grows with n; on real data (and its twin) p is the data's.
    on_gmm = all(r.source is None for r in results)
    ax.set_xlabel("sample size $n$ ($p = n/2$)" if on_gmm else "sample size $n$")
    ax.set_ylabel(r"$\|K - \tilde K\|_2 \,/\, \|K\|_2$")
    seeds = {np.asarray(r.errors).reshape(len(r.ns), -1).shape[1] for r in results}
    band = " ± 1 s.e." if max(seeds) > 1 else ""
    fig.legend(loc="outside lower center", ncol=1,
               title=f"mean over seeds{band}; log-log slope with 95 % CI")
    return fig


def plot_convergence(results, path: str | Path, command: str | None = None) -> Path:
    """Relative spectral error of the equivalent against n, on log-log axes.

    One line per result: the mean over seeds with markers at the measured n, a band of
    ± one standard error when there are several seeds, and in the legend the log-log slope
    fitted over every (n, seed) point with its 95 % confidence interval. A dashed n^-1/2
    guide shows the expected rate. One column wide; the legend sits below the axes so it
    never covers data.

    Args:
        results: ``validation.experiments.spectra.ConvergenceResult`` objects.
        path: target; written as ``.png`` and ``.pdf``.
        command: the command that regenerates the figure (stored in the files' metadata).

    Returns:
        The PNG path.
    """
    return _save_drawn(_draw_convergence, results, path, command)


# --- compression spectra -------------------------------------------------------------------


def _draw_compression_spectra(result) -> Figure:
    """The compression figure (see ``plot_compression_spectra``); inside ``paper_style()``."""
    fig = new_figure(columns=2, height=2.6)
    ax_h, ax_e = fig.subplots(1, 2)
    everything = np.concatenate([result.dense_eigs, result.equivalent_eigs,
                                 *result.compressed_eigs.values()])
    # The top 0.5 % are isolated spikes far right; binning up to them would squeeze the bulk.
    edges = np.linspace(everything.min(), np.quantile(everything, 0.995), _BINS + 1)
    ax_h.hist(result.dense_eigs, bins=edges, density=True, color=_REFERENCE_GREY,
              label="dense (Gaussian $W$)")
    for i, (eps, eigs) in enumerate(result.compressed_eigs.items()):
        ax_h.hist(eigs, bins=edges, density=True, histtype="step", lw=0.9, color=color(i),
                  label=f"compressed, $\\varepsilon$ = {eps:g}")
    ax_h.hist(result.equivalent_eigs, bins=edges, density=True, histtype="step", lw=1.2,
              color="k", ls="--", label="equivalent")
    log_axis(ax_h, "y")
    ax_h.xaxis.set_major_locator(linear_ticks(5))
    ax_h.set_xlabel("eigenvalue (centred CK)")
    ax_h.set_ylabel("density")
    ax_h.set_title(f"{_network(result.dense)}: n = {result.n}, width {result.width}, "
                   f"{result.draws} draws")
    ax_h.legend(loc="upper right")

    eps = [r["eps"] for r in result.rows]
    x = np.arange(len(eps))
    # Sparsities are not evenly spaced (0, 0.5, 0.9, 0.99): equal steps keep them apart.
    ax_e.plot(x, [r["raw_error"] for r in result.rows], "s-", color=color(0), label="raw")
    ax_e.plot(x, [r["centred_error"] for r in result.rows], "o-", color=color(1),
              label="centred")
    ax_e.plot(x, [r["noise"] for r in result.rows], ":", color="k", lw=1.0,
              label="Monte-Carlo noise")
    log_axis(ax_e, "y")
    ax_e.set_xticks(x, [f"{e:g}" for e in eps])
    ax_e.set_xlabel(r"sparsity $\varepsilon$ of the ternary weights")
    ax_e.set_ylabel(r"$\|K_c - K_d\|_2 \,/\, \|K_d\|_2$")
    ax_e.set_title("compressed vs dense CK")
    ax_e.legend(loc="best")
    return fig


def plot_compression_spectra(result, path: str | Path, command: str | None = None) -> Path:
    """Dense vs compressed conjugate kernels against their common equivalent.

    Left: centred CK eigenvalue histograms of the dense network (grey), the compressed
    network for each sparsity and the equivalent (dashed). Right: raw and centred errors of
    compressed against dense over the sparsity, with the Monte-Carlo noise. Two columns wide.

    Args:
        result: a ``validation.experiments.compression.CompressionSpectra``.
        path: target; written as ``.png`` and ``.pdf``.
        command: the command that regenerates the figure (stored in the files' metadata).

    Returns:
        The PNG path.
    """
    return _save_drawn(_draw_compression_spectra, result, path, command)


# --- accuracy against memory (random features) ---------------------------------------------

#: Marker and palette index of each method of ``validation.experiments.realdata``; the dense
#: network is the reference, drawn in black.
_REALDATA_STYLE = {"dense": ("*", "k"), "ntk-lc": ("o", color(0)),
                   "pruning": ("s", color(1)), "quantization": ("^", color(2))}


def _draw_accuracy_memory(result) -> Figure:
    """The accuracy-memory figure (see ``plot_accuracy_memory``); inside ``paper_style()``."""
    tasks = list(result.rows[0]["accuracy"])
    methods = list(dict.fromkeys(r["method"] for r in result.rows))
    extra = [m for m in methods if m not in _REALDATA_STYLE]
    style = {**_REALDATA_STYLE, **{m: ("D", color(3 + i)) for i, m in enumerate(extra)}}
    fig = new_figure(columns=2 if len(tasks) > 1 else 1, height=2.6)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    unit, scale = _size_unit([r["hidden_bits"] / 8 for r in result.rows])
    for ax, task in zip(axes, tasks, strict=True):
        for method in methods:
            rows = sorted((r for r in result.rows if r["method"] == method),
                          key=lambda r: r["hidden_bits"])
            marker, c = style[method]
            ax.plot([r["hidden_bits"] / 8 / scale for r in rows],
                    [100 * r["accuracy"][task] for r in rows], marker + "-", color=c,
                    ms=7 if method == "dense" else None, label=method)
        log_axis(ax, "x")
        ax.set_xlabel(f"hidden-layer memory ({unit})")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{result.data}, {task}")
    # One legend for both panels, below them: the panels' corners are where the curves are.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    return fig


def plot_accuracy_memory(result, path: str | Path, command: str | None = None) -> Path:
    """Test accuracy against hidden-layer memory (log axis), one panel per task.

    Args:
        result: a ``validation.experiments.realdata.RealDataResult``.
        path: target; written as ``.png`` and ``.pdf``.
        command: the command that regenerates the figure (stored in the files' metadata).

    Returns:
        The PNG path.
    """
    return _save_drawn(_draw_accuracy_memory, result, path, command)


# --- accuracy per activation (Open Question 3) ---------------------------------------------


def _draw_activations(result) -> Figure:
    """The activations figure (see ``plot_activations``); call inside ``paper_style()``."""
    acts = list(result.acts)
    eps_values = list(result.eps_values)
    ncols = min(3, len(acts))
    nrows = math.ceil(len(acts) / ncols)
    # One column (a single activation): the title and the legend take a line per item.
    narrow = ncols == 1
    fig = new_figure(columns=1 if narrow else 2, height=1.9 * nrows + (1.2 if narrow else 0.5))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    # Sparsities are not evenly spaced (0, 0.9, 0.99): equal steps keep them apart.
    x = np.arange(len(eps_values))
    for ax, act in zip(axes, acts, strict=False):
        rows = {r["eps"]: r for r in result.rows if r["act"] == act}
        ordered = [rows[e] for e in eps_values]
        dense = 100 * np.mean([r["dense_accuracy"] for r in ordered])
        marker, c = _REALDATA_STYLE["dense"]
        ax.axhline(dense, color=c, ls="--", lw=0.9, label="dense (float32)")
        if all(r["feasible"] for r in ordered):
            for method, key, label in (("ntk-lc", "ntklc_accuracy", "NTK-LC"),
                                       ("pruning", "pruned_accuracy",
                                        "pruned to NTK-LC's memory")):
                marker, c = _REALDATA_STYLE[method]
                ax.plot(x, [100 * r[key] for r in ordered], marker + "-", color=c,
                        label=label)
            # The memory factor is set by eps (the activation's levels add a few bytes): it
            # goes under each sparsity, where a reader looks for the cost of that point.
            ticks = [f"{e:g}\n{r['memory_factor']:.0f}\N{MULTIPLICATION SIGN}"
                     for e, r in zip(eps_values, ordered, strict=True)]
        else:
            ticks = [f"{e:g}" for e in eps_values]
            ax.text(0.5, 0.35, f"NTK-LC infeasible\nat L = {len(result.widths)}",
                    transform=ax.transAxes, ha="center", va="center", color="0.3")
        ax.set_xticks(x, ticks)
        ax.set_xlim(-0.4, len(x) - 0.6)
        ax.set_title(act)
    for ax in axes[len(acts):]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel("test accuracy (%)")
    for ax in axes[len(acts) - ncols:len(acts)]:
        ax.set_xlabel(r"sparsity $\varepsilon$ / memory factor")
    sep = "\n" if narrow else ", "
    fig.suptitle(f"{result.data}: random features {'-'.join(map(str, result.widths))}{sep}"
                 f"{result.n_train} training images, all classes", fontsize="medium")
    # One legend for every panel, below them: the panels' corners are where the curves are.
    handles = {}
    for ax in axes[:len(acts)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center",
               ncol=1 if narrow else len(handles))
    return fig


def plot_activations(result, path: str | Path, command: str | None = None) -> Path:
    """Test accuracy against the NTK-LC sparsity, one panel per activation.

    Each panel: the dense network (dashed), its NTK-LC compression and the dense network
    pruned to the same memory, at each eps (the memory factor under each tick). A panel whose
    activation NTK-LC cannot match shows the dense accuracy and says so. Panels share the
    accuracy axis; three per row, two columns wide.

    Args:
        result: a ``validation.report.activations.ActivationsResult``.
        path: target; written as ``.png`` and ``.pdf``.
        command: the command that regenerates the figure (stored in the files' metadata).

    Returns:
        The PNG path.
    """
    return _save_drawn(_draw_activations, result, path, command)


# --- compress-compare ----------------------------------------------------------------------

#: Marker, colour and line style of each method of
#: ``validation.experiments.compress_compare``. The dense
#: model and the dense random features are references (black, grey); a method's variant
#: (``cet-plain``) shares its colour with open markers and a dashed line. Palette index 6
#: (black) is left to the dense reference and 7 (yellow, faint on white) to unknown methods.
_COMPARE_STYLE = {
    "dense": ("*", "k", "-", True), "pruning": ("s", color(0), "-", True),
    "uniform": ("^", color(1), "-", True), "llc": ("D", color(2), "-", True),
    "cet": ("o", color(3), "-", True), "cet-plain": ("o", color(3), "--", False),
    "l2": ("p", color(4), "-", True), "rf-dense": ("P", "0.5", "-", True),
    "ntk-lc": ("X", color(5), "-", True),
}


def _compare_style(methods) -> dict:
    spare = iter([color(7), *(color(i) for i in range(6))] * len(methods))
    markers = iter("<>hpd" * len(methods))
    return {m: _COMPARE_STYLE.get(m) or (next(markers), next(spare), "-.", True)
            for m in methods}


def _draw_compress_compare(result) -> Figure:
    """The compress-compare figure (see ``plot_compress_compare``); in ``paper_style()``."""
    methods = list(dict.fromkeys(r["method"] for r in result.rows))
    style = _compare_style(methods)
    ncol = 3
    fig = new_figure(columns=1, height=2.5 + 0.15 * math.ceil((len(methods) + 1) / ncol))
    ax = fig.subplots()
    # Zoom on the accurate end, where the methods differ; points below it are marked on the
    # bottom edge rather than silently dropped.
    floor = max(0.0, 100 * result.dense_accuracy - 10)
    clipped = False
    unit, scale = _size_unit([r["bytes"] for r in result.rows])
    for method in methods:
        rows = sorted((r for r in result.rows if r["method"] == method),
                      key=lambda r: r["bytes"])
        size = np.array([r["bytes"] / scale for r in rows])
        acc = np.array([100 * r["accuracy"] for r in rows])
        marker, c, ls, filled = style[method]
        ax.plot(size, acc, marker=marker, ls=ls, color=c, lw=0.8,
                ms=7 if method == "dense" else 4, mfc=c if filled else "white", label=method)
        low = acc < floor
        if low.any():
            clipped = True
            ax.plot(size[low], np.full(low.sum(), floor), "v", color=c, ms=4, clip_on=False,
                    zorder=3)
    log_axis(ax, "x")
    ax.set_ylim(floor, max(100 * r["accuracy"] for r in result.rows) + 1)
    ax.set_xlabel(f"stored size ({unit})")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{result.data}, {result.model}")
    handles, labels = ax.get_legend_handles_labels()
    if clipped:
        handles.append(Line2D([], [], marker="v", ls="", color="0.4", ms=4))
        labels.append(f"below {floor:.0f} %")
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol)
    return fig


def plot_compress_compare(result, path: str | Path, command: str | None = None) -> Path:
    """Test accuracy against stored size (log axis), one series per compression method.

    The accuracy axis starts 10 points below the dense model; results under it are marked by
    a triangle on the bottom edge. One column wide, legend below the axes.

    Args:
        result: a ``validation.experiments.compress_compare.CompareResult``.
        path: target; written as ``.png`` and ``.pdf``.
        command: the command that regenerates the figure (stored in the files' metadata).

    Returns:
        The PNG path.
    """
    return _save_drawn(_draw_compress_compare, result, path, command)


# --- loss neighbourhood --------------------------------------------------------------------


def _draw_neighbourhood(neighbourhood) -> Figure:
    """The neighbourhood figure (see ``plot_neighbourhood``); inside ``paper_style()``."""
    if hasattr(neighbourhood, "as_dict"):
        neighbourhood = neighbourhood.as_dict()
    sizes = np.asarray(neighbourhood["sizes"], dtype=float)
    fig = new_figure(columns=1, height=2.9)
    ax = fig.subplots()
    for key, label, fmt, c in (
            ("measured", "measured", "o-", "k"),
            ("first_order", r"first order $g \cdot n$", "s--", color(0)),
            ("second_order", r"second order, $+\frac{1}{2}\, n^{T} H n$", "^:", color(1))):
        # The mean over draws, in absolute value: the sign of a loss change is not on a
        # log axis, and first-order changes average out towards zero.
        ax.plot(sizes, np.abs(np.mean(neighbourhood[key], axis=1)), fmt, color=c, label=label)
    log_axis(ax, "x")
    log_axis(ax, "y")
    end = neighbourhood.get("neighbourhood_end")
    if end is not None and math.isfinite(end):
        ax.axvline(end, color="0.6", lw=0.8, zorder=0)
        # Horizontal text just right of the line, at the top: the curves only reach the top
        # at the largest noise, and the legend takes the upper left.
        ax.annotate("first order\nfails here", (end, 1), xycoords=("data", "axes fraction"),
                    xytext=(3, -2), textcoords="offset points", ha="left", va="top",
                    color="0.3")
    ax.set_xlabel(r"relative weight noise $\sigma$")
    ax.set_ylabel("|loss change| (calibration batch)")
    # The curves rise with the noise size: the upper left is empty.
    ax.legend(loc="upper left")
    return fig


def plot_neighbourhood(neighbourhood, path: str | Path, command: str | None = None) -> Path:
    """|Loss change| under weight noise: measured, first- and second-order predictions.

    A vertical line marks where the first-order prediction fails (the end of the
    neighbourhood). One column wide.

    Args:
        neighbourhood: ``validation.experiments.llc.NeighbourhoodResult`` or its ``as_dict()``.
        path: target; written as ``.png`` and ``.pdf``.
        command: the command that regenerates the figure (stored in the files' metadata).

    Returns:
        The PNG path.
    """
    return _save_drawn(_draw_neighbourhood, neighbourhood, path, command)
