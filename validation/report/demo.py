"""``ntklc demo``: NTK-LC on built-in GMM data, end to end, in a few minutes on a CPU.

1. Compress a 3-layer ReLU network (``solvers.ternarize``), with memory (``nets.memory``).
2. Dense vs compressed CK spectra against their common equivalent, for several sparsities.
3. The theory underneath: equivalents vs exact infinite-width kernels, error vs n.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from ntk.progress import progress_bar
from rmt import gaussian_mixture, sample_gmm
from validation.experiments.compression import compression_report, compression_spectra
from validation.experiments.spectra import convergence_experiment, spectrum_experiment
from validation.report.figures import plot_compression_spectra, plot_convergence, plot_spectrum
from validation.report.summary import fit_loglog_slope

__all__ = ["run_demo"]

#: Data seeds of the convergence sweep.
SEEDS = 3


def run_demo(out: Path, quick: bool = False) -> str:
    """Run the demo, write figures (PNG + PDF), ``results.json`` and ``report.md`` into ``out``.

    Returns:
        The report (Markdown).
    """
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    n = 400 if quick else 800
    ns = (100, 200, 400) if quick else (200, 400, 800, 1600)
    width, draws = (400, 6) if quick else (1000, 60)
    dense = ["relu"] * 3
    steps = progress_bar(total=4, desc="demo", leave=False)
    # Stored in each figure's metadata: how to make it again.
    command = f"ntklc demo{' --quick' if quick else ''} --out {out}"

    tau0 = sample_gmm(gaussian_mixture(n // 2), n, seed=0).stats.tau0
    result, payload = compression_report(dense, tau0, eps=0.9, p=n // 2, width=width,
                                         classes=2)
    _, paper = compression_report(dense, tau0, eps=0.9, p=784, width=2000, classes=10)
    steps.update()
    spectra = compression_spectra(dense, n=n, width=width, draws=draws, result=result)
    plot_compression_spectra(spectra, out / "compression_spectra.png", command=command)
    steps.update()
    exact = {}
    for L, kernel in [(L, k) for L in (1, 2, 3) for k in ("ck", "ntk")]:
        exact[L, kernel] = spectrum_experiment(["relu"] * L, n, kernel=kernel)
    plot_spectrum(exact[3, "ck"], out / "spectrum_relu_L3_ck.png", command=command)
    steps.update()
    # Three data seeds: the figure's error band and the slopes' confidence intervals need a
    # spread over seeds (the exact kernels cost well under a second per n here).
    conv = [convergence_experiment(["relu"], ns, kernel="ck", seeds=SEEDS),
            convergence_experiment(["relu"] * 3, ns, kernel="ntk", seeds=SEEDS),
            convergence_experiment(["tanh"] * 2, ns, kernel="ck", seeds=SEEDS)]
    plot_convergence(conv, out / "convergence.png", command=command)
    steps.update()
    steps.close()

    results = {
        "compression": payload,
        "memory_paper_shape": paper["memory"],
        "spectra": spectra.as_dict(),
        "exact": [r.as_dict() for r in exact.values()],
        "convergence": [r.as_dict() for r in conv],
        "seconds": time.perf_counter() - start,
        "machine": platform.platform(),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report = _report(result, payload, paper, spectra, exact, conv, n, results["seconds"],
                     quick)
    (out / "report.md").write_text(report)
    return report


def _report(result, payload, paper, spectra, exact, conv, n, seconds, quick) -> str:
    mem, big = payload["memory"], paper["memory"]
    lines = [
        "# NTK-LC demo",
        "",
        f"Command: `ntklc demo{' --quick' if quick else ''}`. Data: 2-class GMM "
        f"(||mu_1 - mu_2|| = 3, t = (-2, 2), identity covariance), n = {n}, p = n/2, seed 0.",
        "",
        f"## 1. Compressing a 3-layer ReLU network (tau0 = {result.tau0:.4f})",
        "",
        "| layer | role | family | levels | max residual |",
        "|---|---|---|---:|---:|",
    ]
    for i, layer in enumerate(result.layers, start=1):
        lines.append(f"| {i} | {layer.role} | {layer.step.family} | {layer.step.n_levels} | "
                     f"{layer.residual:.1e} |")
    ad, ac = result.alphas_dense, result.alphas_compressed
    lines += [
        "",
        "| | a1 | a2 | a3 | tau_L^2 |",
        "|---|---:|---:|---:|---:|",
        "| dense | " + " | ".join(f"{ad[k]:.10g}" for k in ("a1", "a2", "a3", "tau2")) + " |",
        "| compressed | " + " | ".join(f"{ac[k]:.10g}" for k in ("a1", "a2", "a3", "tau2"))
        + " |",
        "",
        "The compressed values are recomputed from the quantized activations by generic "
        "quadrature along the compressed network's own scale chain.",
        "",
        "Memory (ternary weights, eps = 0.9; rule: dense float32 weights; compressed weights "
        "2-bit packed / entropy bound h(eps) + (1 - eps) / bytes written by the range coder, "
        "each + one float32 scale per layer; activations (2k - 1) float32 parameters; readout "
        "float32 in both):",
        "",
        "| network | dense | 2-bit | entropy bound | coded | hidden-layer factor (coded) |"
        " whole-model factor (coded) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in ((f"demo, {n // 2}-{spectra.width}x3-2", mem),
                    ("paper shape, 784-2000x3-10", big)):
        lines.append(f"| {name} | {m['dense_total_bits'] / 8e6:.2f} MB | "
                     f"{m['packed_total_bits'] / 8e6:.3f} MB | "
                     f"{m['bound_total_bits'] / 8e6:.3f} MB | "
                     f"{m['coded_total_bits'] / 8e6:.3f} MB | "
                     f"{m['hidden_factor_coded']:.1f}x | {m['total_factor_coded']:.1f}x |")
    lines += [
        "",
        f"## 2. Dense vs compressed CK (empirical, width {spectra.width}, {spectra.draws} "
        "draws each)",
        "",
        f"Dense network (Gaussian weights) vs its equivalent, centred: "
        f"{100 * spectra.dense_vs_equivalent:.2f} % (Monte-Carlo noise of the dense average "
        f"{100 * spectra.dense_noise:.2f} %).",
        "",
        "| eps | raw error | centred error | MC noise | top eig dense / compressed / "
        "equivalent | top-eigvec alignment |",
        "|---:|---:|---:|---:|---|---:|",
    ]
    for r in spectra.rows:
        eigs = " / ".join(f"{r[k][0]:.4f}" for k in ("top_eigs_dense", "top_eigs_compressed",
                                                      "top_eigs_equivalent"))
        lines.append(f"| {r['eps']:g} | {100 * r['raw_error']:.1f} % | "
                     f"{100 * r['centred_error']:.1f} % | {100 * r['noise']:.1f} % | {eigs} | "
                     f"{r['alignment'][0]:.4f} |")
    lines += [
        "",
        "Errors are ||K_compressed - K_dense||_2 / ||K_dense||_2; MC noise is the half-split "
        "noise of the two averages combined. Centring (P K P) removes the constant direction, "
        "where sparse ternary weights add the excess-kurtosis term (k4/4) d2^2 "
        "offdiag[(X o X)^T (X o X)] (k4 = 1/(1 - eps) - 3): that term, not noise, is the raw "
        "error at large eps.",
        "",
        f"## 3. The theory underneath: equivalent vs exact infinite-width kernel (ReLU, n = {n})",
        "",
        "| L | kernel | rel. spectral error | top-eig rel. error | top-eigvec alignment |",
        "|---|--------|--------------------:|-------------------:|---------------------:|",
    ]
    for (L, kernel), r in exact.items():
        c = r.comparison
        lines.append(f"| {L} | {kernel.upper()} | {100 * c.rel_spectral_error:.2f} % | "
                     f"{100 * c.eig_rel_err[0]:.3f} % | {c.alignment[0]:.4f} |")
    lines += [
        "",
        f"Error vs n (mean over {SEEDS} data seeds; slope: least-squares fit of log error on "
        "log n over every (n, seed) point, with its 95 % confidence interval; theory -0.5):",
        "",
        "| network | " + " | ".join(f"n={v}" for v in conv[0].ns) + " | slope |",
        "|---|" + "---:|" * (len(conv[0].ns) + 1),
    ]
    for r in conv:
        errs = " | ".join(f"{100 * e:.2f} %" for e in r.errors.mean(axis=1))
        fit = fit_loglog_slope([n for n in r.ns for _ in range(r.errors.shape[1])],
                               r.errors.ravel())
        lines.append(f"| {'/'.join(r.acts)} {r.kernel.upper()} | {errs} | "
                     f"{fit.label().removeprefix('slope ')} |")
    lines += [
        "",
        "Figures, each as PNG (300 dpi) and PDF: `compression_spectra`, "
        "`spectrum_relu_L3_ck`, `convergence` (the command that made them is in their "
        "metadata).",
        f"Total time {seconds:.0f} s.",
        "",
    ]
    return "\n".join(lines)
