"""Figures of the experiments (PNG, readable at single-column paper width)."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_accuracy_memory", "plot_compress_compare", "plot_compression_spectra",
           "plot_convergence", "plot_neighbourhood", "plot_spectrum"]

_STYLE = {"font.size": 9, "axes.titlesize": 9, "legend.fontsize": 8, "figure.dpi": 150}


def plot_spectrum(result, path: str | Path) -> Path:
    """Eigenvalue histogram of the reference kernel with the equivalent's eigenvalues overlaid,
    and each sample's entries in the top two reference eigenvectors, coloured by class."""
    path = Path(path)
    with mpl.rc_context(_STYLE):
        # Figure without pyplot: no global state, no backend switch for the caller.
        fig = Figure(figsize=(7.0, 2.8), layout="constrained")
        ax_h, ax_v = fig.subplots(1, 2)
        ref, th = result.eigs_reference, result.eigs_theory
        edges = np.linspace(min(ref.min(), th.min()), max(ref.max(), th.max()), 61)
        ax_h.hist(ref, bins=edges, density=True, color="0.75",
                  label=f"{result.reference} {result.kernel.upper()}")
        ax_h.hist(th, bins=edges, density=True, histtype="step", color="C3", lw=1.2,
                  label="equivalent")
        for lam in result.comparison.top_eigs_theory[:2]:
            ax_h.axvline(lam, color="C3", ls=":", lw=0.8)
        ax_h.set_yscale("log")
        ax_h.set_xlabel("eigenvalue")
        ax_h.set_ylabel("density")
        ax_h.set_title(f"{'/'.join(result.acts)}, n={result.n}, p={result.p}: "
                       f"rel. error {100 * result.comparison.rel_spectral_error:.2f} %")
        ax_h.legend(frameon=False)
        for a in np.unique(result.labels):
            sel = result.labels == a
            ax_v.plot(result.vectors_reference[sel, 0], result.vectors_reference[sel, 1], "o",
                      ms=2, color=f"C{a}", alpha=0.6, label=f"class {a}")
        ax_v.set_xlabel("top eigenvector $u_1$")
        ax_v.set_ylabel("second eigenvector $u_2$")
        ax_v.set_title("samples in the top eigenvectors (reference)")
        ax_v.legend(frameon=False, markerscale=3)
        fig.savefig(path)
    return path


def plot_convergence(results, path: str | Path) -> Path:
    """Relative spectral error vs n on log-log axes with an n^-1/2 guide line."""
    path = Path(path)
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(3.6, 2.8), layout="constrained")
        ax = fig.subplots()
        for i, r in enumerate(results):
            ns = np.asarray(r.ns, dtype=float)
            err = r.errors.mean(axis=1)
            ax.loglog(ns, err, "o-", color=f"C{i}", ms=3,
                      label=f"{'/'.join(r.acts)} {r.kernel.upper()} (slope {r.slope:.2f})")
        ns = np.asarray(results[0].ns, dtype=float)
        top = max(r.errors.mean(axis=1)[0] for r in results)
        ax.loglog(ns, 1.2 * top * (ns / ns[0]) ** -0.5, "k--", lw=0.8, label=r"$n^{-1/2}$")
        ax.set_xlabel("n (p = n/2)")
        ax.set_ylabel(r"$\|K - \tilde K\|_2 / \|K\|_2$")
        ax.legend(frameon=False)
        fig.savefig(path)
    return path


def plot_compression_spectra(result, path: str | Path) -> Path:
    """Centred CK eigenvalue histograms (dense, compressed per eps, equivalent) and the
    dense-vs-compressed errors against eps with the Monte-Carlo noise."""
    path = Path(path)
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(7.0, 2.8), layout="constrained")
        ax_h, ax_e = fig.subplots(1, 2)
        everything = np.concatenate([result.dense_eigs, result.equivalent_eigs,
                                     *result.compressed_eigs.values()])
        edges = np.linspace(everything.min(), np.quantile(everything, 0.995), 61)
        ax_h.hist(result.dense_eigs, bins=edges, density=True, color="0.75",
                  label="dense (Gaussian W)")
        for i, (eps, eigs) in enumerate(result.compressed_eigs.items()):
            ax_h.hist(eigs, bins=edges, density=True, histtype="step", lw=1.0,
                      color=f"C{i}", label=f"compressed, eps={eps:g}")
        ax_h.hist(result.equivalent_eigs, bins=edges, density=True, histtype="step", lw=1.4,
                  color="k", ls="--", label="equivalent")
        ax_h.set_yscale("log")
        ax_h.set_xlabel("eigenvalue (centred CK)")
        ax_h.set_ylabel("density")
        ax_h.set_title(f"{'/'.join(result.dense)}: n={result.n}, width {result.width}, "
                       f"{result.draws} draws")
        ax_h.legend(frameon=False, fontsize=7)
        eps = [r["eps"] for r in result.rows]
        x = np.arange(len(eps))
        ax_e.semilogy(x, [r["raw_error"] for r in result.rows], "s-", label="raw")
        ax_e.semilogy(x, [r["centred_error"] for r in result.rows], "o-", label="centred")
        ax_e.semilogy(x, [r["noise"] for r in result.rows], "k:", label="MC noise")
        ax_e.set_xticks(x, [f"{e:g}" for e in eps])
        ax_e.set_xlabel("eps (ternary sparsity)")
        ax_e.set_ylabel(r"$\|K_c - K_d\|_2 / \|K_d\|_2$")
        ax_e.set_title("compressed vs dense CK")
        ax_e.legend(frameon=False)
        fig.savefig(path)
    return path


def plot_accuracy_memory(result, path: str | Path) -> Path:
    """Test accuracy against hidden-layer memory (log axis), one panel per task."""
    path = Path(path)
    tasks = list(result.rows[0]["accuracy"])
    markers = {"dense": "*", "ntk-lc": "o", "pruning": "s", "quantization": "^"}
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(7.0, 2.8), layout="constrained")
        axes = fig.subplots(1, len(tasks), squeeze=False)[0]
        for ax, task in zip(axes, tasks, strict=True):
            for i, method in enumerate(markers):
                rows = [r for r in result.rows if r["method"] == method]
                rows.sort(key=lambda r: r["hidden_bits"])
                ax.semilogx([r["hidden_bits"] / 8e6 for r in rows],
                            [100 * r["accuracy"][task] for r in rows], markers[method] + "-",
                            color=f"C{i}", ms=5 if method != "dense" else 9, label=method)
            ax.set_xlabel("hidden-layer memory (MB)")
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{result.data}, {task}")
            ax.legend(frameon=False)
        fig.savefig(path)
    return path


def plot_compress_compare(result, path: str | Path) -> Path:
    """Test accuracy against stored bytes (log axis), one series per method."""
    path = Path(path)
    methods = list(dict.fromkeys(r["method"] for r in result.rows))
    markers = "*s^DoPvX<>hd"
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(3.6, 3.0), layout="constrained")
        ax = fig.subplots()
        for i, method in enumerate(methods):
            rows = sorted((r for r in result.rows if r["method"] == method),
                          key=lambda r: r["bytes"])
            ax.semilogx([r["bytes"] for r in rows], [100 * r["accuracy"] for r in rows],
                        markers[i % len(markers)] + "-", color=f"C{i % 10}",
                        ms=8 if method == "dense" else 4, lw=0.8, label=method)
        ax.set_xlabel("stored bytes")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(max(0.0, 100 * result.dense_accuracy - 10), None)
        ax.set_title(f"{result.data}, {result.model}")
        ax.legend(frameon=False, ncol=2, fontsize=7)
        fig.savefig(path)
    return path


def plot_neighbourhood(neighbourhood: dict, path: str | Path) -> Path:
    """|loss change| under weight noise: measured, first-order and second-order predictions."""
    path = Path(path)
    sizes = np.asarray(neighbourhood["sizes"])
    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(3.6, 3.0), layout="constrained")
        ax = fig.subplots()
        for key, label, style in (("measured", "measured", "ko-"),
                                  ("first_order", "first order g.n", "C0s--"),
                                  ("second_order", "+ 1/2 n'Hn", "C1^:")):
            values = np.abs(np.mean(neighbourhood[key], axis=1))
            ax.loglog(sizes, values, style, ms=4, label=label)
        end = neighbourhood["neighbourhood_end"]
        if end is not None:
            ax.axvline(end, color="0.5", lw=0.8)
            ax.annotate("first order fails", (end, ax.get_ylim()[1]), fontsize=7,
                        ha="right", va="top", rotation=90)
        ax.set_xlabel("relative weight noise sigma")
        ax.set_ylabel("|loss change| (calibration batch)")
        ax.legend(frameon=False)
        fig.savefig(path)
    return path
