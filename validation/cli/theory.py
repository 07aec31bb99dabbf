"""The theory commands: ``constants``, ``spectrum``, ``convergence``, ``compare``,
``kurtosis``, ``compress`` and ``cnn-kernel``. Each imports what it runs when it runs."""

from __future__ import annotations

import math
from pathlib import Path

from ntklc.errors import InputError
from validation.cli.common import (
    command_line,
    data_source,
    emit,
    ignored,
    show_progress,
    source_line,
    write_results,
)


def constants_command(args) -> None:
    from ntk.activations import activation
    from ntk.constants import activation_constants

    c = activation_constants(activation(args.act), args.tau, args.method)
    payload = {"activation": activation(args.act).name, **c.as_dict()}
    lines = [f"{payload['activation']} at tau = {c.tau:g} ({c.method})"]
    lines += [f"  {k:<9} = {payload[k]!r}" for k in ("m0", "d1", "d2", "d3", "tau2_next")]
    lines.append(f"  {'esp2':<9} = {'inf (jumps)' if math.isinf(c.esp2) else repr(c.esp2)}")
    emit(payload, args.json, lines)


def _spectrum_lines(r) -> list[str]:
    cmp = r.comparison
    lines = [
        f"{'/'.join(r.acts)} {r.kernel.upper()} equivalent vs {r.reference} kernel "
        f"(n={r.n}, p={r.p}, tau0={r.tau0:.4f})",
        f"  relative spectral error  {100 * cmp.rel_spectral_error:.3f} %",
        "  top eigenvalues (theory / reference / rel. err / alignment):",
    ]
    for lt, lr, e, a in zip(cmp.top_eigs_theory, cmp.top_eigs_reference, cmp.eig_rel_err,
                            cmp.alignment, strict=True):
        lines.append(f"    {lt:12.6f} {lr:12.6f} {e:10.2e} {a:8.4f}")
    if r.noise is not None:
        lines.append(f"  Monte-Carlo noise (half-split, relative): {100 * r.noise:.3f} %")
    if r.storage is not None:
        st = r.storage
        lines.append(f"  exact kernel in {st['folder']}: {st['tiles']} tiles of {st['tile']} "
                     f"({st['dtype']}, {st['disk_bytes'] / 1e9:.2f} GB), {st['tiles_computed']} "
                     f"computed in {st['kernel_seconds']:.1f} s")
        lines += [f"  damaged tile {m}" for m in st["tiles_damaged"]]
    lines.append(f"  {r.seconds:.2f} s")
    return lines


def _agreement_lines(agreement: dict) -> list[str]:
    lines = ["real data vs matched GMM, exact kernels' top eigenpairs (rel. err of the GMM "
             "eigenvalue / alignment):"]
    lines += [f"    {e:10.2e} {a:8.4f}" for e, a in zip(agreement["eig_rel_err"],
                                                     agreement["alignment"], strict=True)]
    lines.append(f"  subspace alignment of the top {len(agreement['alignment'])}: "
                 f"{agreement['subspace_alignment']:.4f}")
    return lines


def spectrum_command(args) -> None:
    from validation.experiments.spectra import network_activations, spectrum_experiment
    from validation.report.figures import plot_spectrum

    acts = network_activations(args.act, args.layers)
    r = spectrum_experiment(acts, args.n, args.p, kernel=args.kernel, reference=args.reference,
                            weights=args.weights or "gaussian", width=args.width or 1000,
                            draws=args.draws or 10, seed=args.seed, k=args.k,
                            progress=show_progress(args), data=data_source(args), path=args.path,
                            storage=_storage(args))
    if args.reference == "exact":  # said once the values are known to be valid
        ignored(args, ("--weights", "--width", "--draws"),
                "the exact reference has no finite network (they apply to --reference mc)")
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        write_results(out, "spectrum", payload)
        plot_spectrum(r, out / "spectrum.png", command=command_line())
        if r.twin is not None:
            plot_spectrum(r.twin, out / "spectrum_gmm.png", command=command_line())
    lines = _spectrum_lines(r)
    if r.twin is not None:
        lines = [source_line(r.source), "real data:", *lines,
                 "matched GMM (estimated means and covariances, same class counts):",
                 *_spectrum_lines(r.twin)]
        if r.twin_agreement is not None:
            lines += _agreement_lines(r.twin_agreement)
    emit(payload, args.json, lines)


def _storage(args) -> dict | None:
    """Where the disk path puts its tiles: OUT/kernels, with the tile options."""
    from validation.experiments.spectra import storage_options

    return storage_options(Path(args.out) / "kernels" if args.out else None, tile=args.tile,
                           dtype=args.tile_dtype, workers=args.workers,
                           scheduler=args.scheduler)


def convergence_command(args) -> None:
    from validation.experiments.spectra import convergence_experiment, network_activations
    from validation.report.figures import plot_convergence

    acts = network_activations(args.act, args.layers)
    r = convergence_experiment(acts, args.ns, kernel=args.kernel, seeds=args.seeds,
                               progress=show_progress(args), data=data_source(args),
                               storage=_storage(args))
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        write_results(out, "convergence", payload)
        plot_convergence([r], out / "convergence.png", command=command_line())
        if r.twin is not None:
            plot_convergence([r.twin], out / "convergence_gmm.png", command=command_line())
    if r.twin is None:
        lines = [f"{'/'.join(r.acts)} {r.kernel.upper()}: error vs n (p = n/2)"]
        lines += [f"  n={n:6d}  {100 * e:.3f} %" for n, e in zip(r.ns, r.errors.mean(axis=1),
                                                                strict=True)]
    else:
        lines = [source_line(r.source),
                 f"{'/'.join(r.acts)} {r.kernel.upper()}: error vs n, real data / matched GMM"]
        lines += [f"  n={n:6d}  {100 * e:.3f} %  {100 * g:.3f} %"
                  for n, e, g in zip(r.ns, r.errors.mean(axis=1), r.twin.errors.mean(axis=1),
                                     strict=True)]
        lines.append(f"  matched GMM: fitted slope {r.twin.slope:.3f}")
    lines.append(f"  fitted slope {r.slope:.3f} (theory -0.5); {r.seconds:.1f} s")
    emit(payload, args.json, lines)


def compare_command(args) -> None:
    from validation.experiments.compression import compression_spectra
    from validation.experiments.spectra import network_activations
    from validation.report.figures import plot_compression_spectra

    acts = network_activations(args.act, args.layers)
    r = compression_spectra(acts, n=args.n, eps_values=args.eps, width=args.width,
                            draws=args.draws, seed=args.seed, progress=show_progress(args),
                            data=data_source(args))
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        write_results(out, "compare", payload)
        plot_compression_spectra(r, out / "compression_spectra.png", command=command_line())
        if r.twin is not None:
            plot_compression_spectra(r.twin, out / "compression_spectra_gmm.png",
                                     command=command_line())
    lines = [f"dense {'/'.join(r.dense)} (Gaussian weights) vs compressed (ternary weights), "
             f"centred CK, n={r.n}, width {r.width}, {r.draws} draws; the NTK is not compared: "
             "step activations have no derivative (E[sigma'^2] = inf)"]
    if r.twin is None:
        lines += _compare_rows(r)
    else:
        lines += [source_line(r.source), "real data:", *_compare_rows(r),
                  "matched GMM (estimated means and covariances, same class counts):",
                  *_compare_rows(r.twin)]
    lines.append(f"  {r.seconds:.1f} s")
    emit(payload, args.json, lines)


def _compare_rows(r) -> list[str]:
    lines = ["  eps   raw error  centred error  MC noise  top eig dense/compressed  alignment"]
    for row in r.rows:
        lines.append(f"  {row['eps']:<5g} {100 * row['raw_error']:8.2f} % "
                     f"{100 * row['centred_error']:10.2f} % "
                     f"{100 * row['noise']:8.2f} %  {row['top_eigs_dense'][0]:.4f}/"
                     f"{row['top_eigs_compressed'][0]:.4f}  {row['alignment'][0]:9.4f}")
    return lines


def kurtosis_command(args) -> None:
    from validation.experiments.spectra import kurtosis_experiment

    r = kurtosis_experiment(args.weights, args.act, p=args.p, n=args.n, width=args.width,
                            draws=args.draws, seed=args.seed, progress=show_progress(args),
                            data=data_source(args))
    lines = [
        f"{r.activation}, first layer, weights {r.weights} (excess kurtosis {r.excess_kurtosis:g}),"
        f" p={r.p}, n={r.n}, width {r.width} x {r.draws} draws",
        *_kurtosis_lines(r),
        f"  {r.seconds:.1f} s",
    ]
    if r.twin is not None:
        lines[1:1] = [source_line(r.source), "real data:"]
        lines[-1:-1] = ["matched GMM (estimated means and covariances, same class counts):",
                        *_kurtosis_lines(r.twin)]
    emit(r.as_dict(), args.json, lines)


def _kurtosis_lines(r) -> list[str]:
    return [f"  predicted term P: ||P|| / ||CK|| = {100 * r.predicted_rel_norm:.2f} %",
            f"  measured / predicted = {r.ratio:.3f} +- {r.standard_error:.3f} (1 = prediction, "
            "0 = no effect)"]


def compress_command(args) -> None:
    from validation.experiments.compression import compression_report
    from validation.experiments.spectra import network_activations

    acts = network_activations(args.act, args.layers)
    result, payload = compression_report(acts, args.tau0, eps=args.eps,
                                         max_levels=args.max_levels,
                                         hidden_family=args.hidden_family, p=args.p,
                                         width=args.width, classes=args.classes,
                                         progress=show_progress(args))
    mem = payload["memory"]
    lines = [f"NTK-LC compression of {'/'.join(result.dense_names)}"
             f" (tau0 = {result.tau0:g}, eps = {args.eps:g})"]
    for i, layer in enumerate(result.layers, start=1):
        lines.append(f"  layer {i} ({layer.role}): {layer.step.family}, {layer.step.n_levels} "
                     f"levels, tau_in {layer.tau_in:.4f}, max residual {layer.residual:.1e}")
    ad, ac = result.alphas_dense, result.alphas_compressed
    lines.append("  final (a1, a2, a3, tau_L^2) dense      " + " ".join(
        f"{ad[k]:.10g}" for k in ("a1", "a2", "a3", "tau2")))
    lines.append("  final (a1, a2, a3, tau_L^2) compressed " + " ".join(
        f"{ac[k]:.10g}" for k in ("a1", "a2", "a3", "tau2")))
    lines.append(f"  delta (identity shift of the equivalent) {result.delta:.3g}")
    lines.append(f"  memory, p={args.p}, width {args.width}, readout {args.classes}: hidden "
                 f"weights x{mem['hidden_factor_packed']:.1f} (2-bit), "
                 f"x{mem['hidden_factor_bound']:.1f} (entropy bound), "
                 f"x{mem['hidden_factor_coded']:.1f} (coded); whole model "
                 f"x{mem['total_factor_coded']:.1f} (coded)")
    emit(payload, args.json, lines)


def cnn_kernel_command(args) -> None:
    import numpy as np

    from validation.experiments.cnn import cnn_images, kernel_summary, read_images

    if (args.images is None) == (args.data is None):
        raise InputError("give --images PATH.npz or --data NAME (one of them)")
    from validation.experiments.spectra import network_activations
    from validation.report.cnn import cnn_sources

    acts = network_activations(args.act, args.layers)
    jumpy = [a.name for a in acts if a.has_jumps]
    if jumpy and args.kernel == "both":
        raise InputError(f"the NTK is undefined for activations with jumps ({', '.join(jumpy)})"
                         ": use --kernel ck")
    if args.images is not None:
        x = read_images(args.images)
    else:
        data = "cifar10" if args.data == "cifar-10" else args.data
        cnn_sources(data, args.data_dir)  # a missing data set: one error, no download
        x = cnn_images(data, args.n, args.seed, channels=args.channels, size=args.size or 0,
                       data_dir=args.data_dir or "")[0]
    summary, kernels = kernel_summary(
        x, acts, filter_size=args.filter_size, padding=args.padding, pool=args.pool,
        readout=args.readout, ntk=args.kernel != "ck", centring=args.centring,
        compare=args.compare)
    if args.out:
        out = Path(args.out)
        write_results(out, "cnn_kernel", summary)
        np.savez(out / "kernels.npz", **kernels)
    lines = [f"{'/'.join(summary['activations'])} CNN, {summary['architecture']}: n = "
             f"{summary['n']} images {'x'.join(map(str, summary['image_shape']))}, "
             f"{summary['seconds']:.2f} s"]
    for name, eigs in summary["top_eigenvalues"].items():
        lines.append(f"  top eigenvalues of the {name.upper()}: "
                     + " ".join(f"{v:.6g}" for v in eigs))
    if "equivalent" in summary:
        lines.append("  expanded recursion vs exact: " + ", ".join(
            f"{k.split('_')[0].upper()} {100 * v:.2f} %" for k, v in
            summary["equivalent"].items()) + " (relative spectral error, centred kernels)")
    if "compressed" in summary:
        c = summary["compressed"]
        lines.append(f"  NTK-LC activations ({'/'.join(map(str, c['levels']))} levels) vs dense: "
                     f"CK {100 * c['ck_error']:.2f} % (relative spectral error, centred)")
    if args.out:
        lines.append(f"  wrote {Path(args.out) / 'kernels.npz'} and cnn_kernel.json")
    emit(summary, args.json, lines)
