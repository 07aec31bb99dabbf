"""The ``ntklc`` command line.

Every subcommand prints a short human-readable summary, or with ``--json`` one JSON object on
stdout and nothing else. Errors a user can make end in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from validation.datasource import DataSource

# Only the standard library at import time: `ntklc --help` and `ntklc constants` must start
# fast. Each command imports what it runs (SymPy, Numba, SciPy, matplotlib, dask...).

# Choices of the parser, spelled out here so that building it imports nothing heavy;
# tests/validation/test_cli.py checks that they equal the library's own tuples.
METHODS = ("auto", "quad", "symbolic", "mpmath")  # ntk.constants.METHODS
FAMILIES = ("auto", "levels", "symmetric", "binary")  # solvers.ternarize.FAMILIES
KERNELS = ("ck", "ntk")  # validation.experiments.KERNELS
REFERENCES = ("exact", "mc")  # validation.experiments.REFERENCES
SPECTRUM_PATHS = ("auto", "dense", "lanczos", "disk")  # validation.experiments.SPECTRUM_PATHS
TILE_DTYPES = ("float64", "float32")  # validation.kernel_store.TILE_DTYPES

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"ntklc: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _int_list(text: str) -> list[int]:
    return [_positive_int(t) for t in text.split(",")]


def _emit(payload: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        json.dump(payload, sys.stdout, indent=2, allow_nan=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")


def _show_progress(args) -> bool:
    """Progress bars go to stderr: shown unless --json output goes to a non-terminal (a script
    reading the JSON does not want bars in its logs; a person running --json still sees them)."""
    return not args.json or sys.stderr.isatty()


def _command_line() -> str:
    return " ".join(["ntklc", *sys.argv[1:]])


def _write_results(out: Path, name: str, payload: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")


def _cmd_constants(args) -> None:
    from ntk.activations import activation
    from ntk.constants import activation_constants

    c = activation_constants(activation(args.act), args.tau, args.method)
    payload = {"activation": activation(args.act).name, **c.as_dict()}
    lines = [f"{payload['activation']} at tau = {c.tau:g} ({c.method})"]
    lines += [f"  {k:<9} = {payload[k]!r}" for k in ("m0", "d1", "d2", "d3", "tau2_next")]
    lines.append(f"  {'esp2':<9} = {'inf (jumps)' if math.isinf(c.esp2) else repr(c.esp2)}")
    _emit(payload, args.json, lines)


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


def _data_source(args) -> DataSource | None:
    """The --data/--features source, or ``None`` for the built-in GMM.

    Raises:
        ValueError: --classes or --data-dir without --data or --features.
    """
    from validation.datasource import DataSource, parse_classes

    if not args.data and not args.features:
        for flag, value in (("--classes", args.classes), ("--data-dir", args.data_dir)):
            if value is not None:
                raise ValueError(f"{flag} needs --data or --features")
        return None
    return DataSource(data=args.data, classes=parse_classes(args.classes),
                      features=args.features, data_dir=args.data_dir)


def _source_line(source: dict) -> str:
    seeds = (f"seed {source['seed']}" if "seed" in source
             else f"seeds {','.join(map(str, source['seeds']))}")
    line = (f"{source['data']}, classes {','.join(map(str, source['classes']))}: p={source['p']}"
            f", {source['n_train']} training samples, class-balanced samples, {seeds}")
    if "effective_dimension" in source:
        line += ("\n  assumptions (theorem: t, T of order 1, effective dimensions of order p): "
                 f"t = {_numbers(source['t'])}, diag T = "
                 f"{_numbers([row[i] for i, row in enumerate(source['T'])])}, effective "
                 f"dimensions tr(C)^2/tr(C^2) = {_numbers(source['effective_dimension'])}")
    return line


def _numbers(values) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"


def _cmd_spectrum(args) -> None:
    from validation.experiments import network_activations, spectrum_experiment
    from validation.figures import plot_spectrum

    acts = network_activations(args.act, args.layers)
    r = spectrum_experiment(acts, args.n, args.p, kernel=args.kernel, reference=args.reference,
                            weights=args.weights, width=args.width, draws=args.draws,
                            seed=args.seed, k=args.k, progress=_show_progress(args),
                            data=_data_source(args), path=args.path,
                            storage=_storage(args))
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        _write_results(out, "spectrum", payload)
        plot_spectrum(r, out / "spectrum.png", command=_command_line())
        if r.twin is not None:
            plot_spectrum(r.twin, out / "spectrum_gmm.png", command=_command_line())
    lines = _spectrum_lines(r)
    if r.twin is not None:
        lines = [_source_line(r.source), "real data:", *lines,
                 "matched GMM (estimated means and covariances, same class counts):",
                 *_spectrum_lines(r.twin)]
        if r.twin_agreement is not None:
            lines += _agreement_lines(r.twin_agreement)
    _emit(payload, args.json, lines)


def _storage(args) -> dict | None:
    """Where the disk path puts its tiles: OUT/kernels, with the tile options."""
    from validation.experiments import storage_options

    return storage_options(Path(args.out) / "kernels" if args.out else None, tile=args.tile,
                           dtype=args.tile_dtype, workers=args.workers,
                           scheduler=args.scheduler)


def _cmd_convergence(args) -> None:
    from validation.experiments import convergence_experiment, network_activations
    from validation.figures import plot_convergence

    acts = network_activations(args.act, args.layers)
    r = convergence_experiment(acts, args.ns, kernel=args.kernel, seeds=args.seeds,
                               progress=_show_progress(args), data=_data_source(args),
                               storage=_storage(args))
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        _write_results(out, "convergence", payload)
        plot_convergence([r], out / "convergence.png", command=_command_line())
        if r.twin is not None:
            plot_convergence([r.twin], out / "convergence_gmm.png", command=_command_line())
    if r.twin is None:
        lines = [f"{'/'.join(r.acts)} {r.kernel.upper()}: error vs n (p = n/2)"]
        lines += [f"  n={n:6d}  {100 * e:.3f} %" for n, e in zip(r.ns, r.errors.mean(axis=1),
                                                                strict=True)]
    else:
        lines = [_source_line(r.source),
                 f"{'/'.join(r.acts)} {r.kernel.upper()}: error vs n, real data / matched GMM"]
        lines += [f"  n={n:6d}  {100 * e:.3f} %  {100 * g:.3f} %"
                  for n, e, g in zip(r.ns, r.errors.mean(axis=1), r.twin.errors.mean(axis=1),
                                     strict=True)]
        lines.append(f"  matched GMM: fitted slope {r.twin.slope:.3f}")
    lines.append(f"  fitted slope {r.slope:.3f} (theory -0.5); {r.seconds:.1f} s")
    _emit(payload, args.json, lines)


def _str_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _float_list(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of numbers, got {text!r}"
                                         ) from None


def _cmd_compare(args) -> None:
    from validation.compression import compression_spectra
    from validation.experiments import network_activations
    from validation.figures import plot_compression_spectra

    acts = network_activations(args.act, args.layers)
    r = compression_spectra(acts, n=args.n, eps_values=args.eps, width=args.width,
                            draws=args.draws, seed=args.seed, progress=_show_progress(args),
                            data=_data_source(args))
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        _write_results(out, "compare", payload)
        plot_compression_spectra(r, out / "compression_spectra.png", command=_command_line())
        if r.twin is not None:
            plot_compression_spectra(r.twin, out / "compression_spectra_gmm.png",
                                     command=_command_line())
    lines = [f"dense {'/'.join(r.dense)} (Gaussian weights) vs compressed (ternary weights), "
             f"centred CK, n={r.n}, width {r.width}, {r.draws} draws; the NTK is not compared: "
             "step activations have no derivative (E[sigma'^2] = inf)"]
    if r.twin is None:
        lines += _compare_rows(r)
    else:
        lines += [_source_line(r.source), "real data:", *_compare_rows(r),
                  "matched GMM (estimated means and covariances, same class counts):",
                  *_compare_rows(r.twin)]
    lines.append(f"  {r.seconds:.1f} s")
    _emit(payload, args.json, lines)


def _compare_rows(r) -> list[str]:
    lines = ["  eps   raw error  centred error  MC noise  top eig dense/compressed  alignment"]
    for row in r.rows:
        lines.append(f"  {row['eps']:<5g} {100 * row['raw_error']:8.2f} % "
                     f"{100 * row['centred_error']:10.2f} % "
                     f"{100 * row['noise']:8.2f} %  {row['top_eigs_dense'][0]:.4f}/"
                     f"{row['top_eigs_compressed'][0]:.4f}  {row['alignment'][0]:9.4f}")
    return lines


def _cmd_kurtosis(args) -> None:
    from validation.experiments import kurtosis_experiment

    r = kurtosis_experiment(args.weights, args.act, p=args.p, n=args.n, width=args.width,
                            draws=args.draws, seed=args.seed, progress=_show_progress(args),
                            data=_data_source(args))
    lines = [
        f"{r.activation}, first layer, weights {r.weights} (excess kurtosis {r.excess_kurtosis:g}),"
        f" p={r.p}, n={r.n}, width {r.width} x {r.draws} draws",
        *_kurtosis_lines(r),
        f"  {r.seconds:.1f} s",
    ]
    if r.twin is not None:
        lines[1:1] = [_source_line(r.source), "real data:"]
        lines[-1:-1] = ["matched GMM (estimated means and covariances, same class counts):",
                        *_kurtosis_lines(r.twin)]
    _emit(r.as_dict(), args.json, lines)


def _kurtosis_lines(r) -> list[str]:
    return [f"  predicted term P: ||P|| / ||CK|| = {100 * r.predicted_rel_norm:.2f} %",
            f"  measured / predicted = {r.ratio:.3f} +- {r.standard_error:.3f} (1 = prediction, "
            "0 = no effect)"]


def _cmd_compress(args) -> None:
    from validation.compression import compression_report
    from validation.experiments import network_activations

    acts = network_activations(args.act, args.layers)
    result, payload = compression_report(acts, args.tau0, eps=args.eps,
                                         max_levels=args.max_levels,
                                         hidden_family=args.hidden_family, p=args.p,
                                         width=args.width, classes=args.classes,
                                         progress=_show_progress(args))
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
    _emit(payload, args.json, lines)


EXPERIMENTS = ("ntklc-real", "compress-compare", "activations", "universality", "cnn")


def _cmd_experiment(args) -> None:
    from validation.figures import plot_accuracy_memory
    from validation.realdata import run_ntklc_real

    if args.name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {args.name!r}; available: "
                         f"{', '.join(EXPERIMENTS)}")
    if args.name == "universality":
        return _universality(args)
    if args.name == "cnn":
        return _cnn(args)
    if args.data == "gmm":
        raise ValueError("--data gmm (Gaussian-mixture feature maps) is an option of the cnn "
                         "experiment")
    if args.classes is not None:
        raise ValueError("--classes is an option of the universality experiment")
    args.data = args.data or "mnist"
    if args.name == "compress-compare":
        _compress_compare(args)
        return
    if args.name == "activations":
        return _activations(args)
    r = run_ntklc_real(_DATA_NAMES[args.data], quick=args.quick, cnn_epochs=args.cnn_epochs,
                       data_dir=args.data_dir, seed=args.seed, progress=_show_progress(args))
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        _write_results(out, "ntklc-real", payload)
        plot_accuracy_memory(r, out / "accuracy_memory.png", command=_command_line())
    tasks = list(r.rows[0]["accuracy"])
    lines = [f"NTK-LC on {r.data}: random features {'-'.join(map(str, r.widths))}, "
             f"{r.n_train} training / {r.n_test} test images, ridge readout",
             "  method        setting                     hidden MB   factor  "
             + "  ".join(f"{t:>12}" for t in tasks)]
    for row in r.rows:
        lines.append(f"  {row['method']:<13} {row['setting']:<27} "
                     f"{row['hidden_bits'] / 8e6:9.3f} {row['factor']:8.1f}  "
                     + "  ".join(f"{100 * row['accuracy'][t]:11.2f}%" for t in tasks))
    lines += [f"  memory rule: {r.rule}", f"  {r.seconds:.0f} s"]
    _emit(payload, args.json, lines)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _activations(args) -> int:
    from validation.activations import activations_experiment
    from validation.figures import plot_activations

    try:
        r = activations_experiment(args.data, args.acts, args.eps or (0.0, 0.9, 0.99),
                                   quick=args.quick, seed=args.seed, data_dir=args.data_dir,
                                   out=Path(args.out) / "sweep" if args.out else None,
                                   workers=args.workers, progress=_show_progress(args))
    except KeyboardInterrupt:
        if not args.out:
            raise
        return _interrupted(args.out)
    lines = [f"NTK-LC per activation on {r.data}: random features "
             f"{'-'.join(map(str, r.widths))}, {r.n_train} training / {r.n_test} test images, "
             f"ridge readout on all classes, seed {args.seed}",
             "  activation    eps    dense acc   NTK-LC acc   pruned acc   memory factor"]
    notes = {}
    for row in r.rows:
        factor = "-" if row["memory_factor"] is None else f"{row['memory_factor']:.1f}x"
        lines.append(f"  {row['act']:<12} {row['eps']:>5g} {_percent(row['dense_accuracy']):>12}"
                     f" {_percent(row['ntklc_accuracy']):>12} "
                     f"{_percent(row['pruned_accuracy']):>12} {factor:>15}")
        if not row["feasible"]:
            notes[row["act"]] = f"NTK-LC infeasible: {row['infeasible_reason']}"
        elif abs(row["delta"]) > 1e-9:
            notes[row["act"]] = (f"output layer matched up to delta = {row['delta']:.2g} "
                                 f"(levels {'/'.join(map(str, row['levels']))})")
    lines += [f"  {act}: {note}" for act, note in notes.items()]
    lines += [f"  rule: {r.rule}",
              f"  {r.seconds:.0f} s ({r.sweep['computed']} tasks computed, "
              f"{r.sweep['cached']} cached)"]
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        _write_results(out, "activations", payload)
        plot_activations(r, out / "activations.png", command=_command_line())
        (out / "table.txt").write_text("\n".join(lines) + "\n")
    _emit(payload, args.json, lines)
    return 0


def _table_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    """A text table, columns padded to their widest cell, indented by two spaces."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
            for line in (header, *rows)]


def _universality(args) -> int:
    from validation.universality import (
        error_figure,
        universality_experiment,
        universality_figures,
        universality_table,
    )

    data = (args.data,) if args.data else ("mnist", "fashion-mnist")
    classes = args.classes or "all"
    try:
        r = universality_experiment(data, classes, quick=args.quick,
                                    out=Path(args.out) / "sweeps" if args.out else None,
                                    workers=args.workers, data_dir=args.data_dir,
                                    progress=_show_progress(args))
    except KeyboardInterrupt:
        if not args.out:
            raise
        return _interrupted(args.out)
    header, table = universality_table(list(r.rows))
    lines = [f"Equivalent vs exact kernel on real images and on their matched GMM "
             f"(classes {r.classes}; errors = relative spectral error, mean over seeds; "
             "alignment and separability at the largest n)"]
    for name in r.data:
        lines += ["", f"{name}:"]
        lines += _table_lines(header[1:], [row[1:] for row in table if row[0] == name])
    lines.append(f"  {r.seconds:.0f} s ({r.summary['computed']} tasks computed, "
                 f"{r.summary['cached']} cached)")
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        _write_results(out, "universality", payload)
        (out / "table.txt").write_text("\n".join(lines) + "\n")
        for name in r.data:
            error_figure(list(r.rows), name, out / f"universality_errors_{name}.png",
                         command=_command_line())
            universality_figures(name, r.classes, out, n=400 if args.quick else 2000,
                                 data_dir=args.data_dir or "", command=_command_line())
    _emit(payload, args.json, lines)
    return 0


def _cmd_cnn_kernel(args) -> None:
    import numpy as np

    from validation.cnn import cnn_images, kernel_summary, read_images

    if (args.images is None) == (args.data is None):
        raise ValueError("give --images PATH.npz or --data NAME (one of them)")
    from validation.cnn_report import cnn_sources
    from validation.experiments import network_activations

    acts = network_activations(args.act, args.layers)
    jumpy = [a.name for a in acts if a.has_jumps]
    if jumpy and args.kernel == "both":
        raise ValueError(f"the NTK is undefined for activations with jumps ({', '.join(jumpy)})"
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
        _write_results(out, "cnn_kernel", summary)
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
    _emit(summary, args.json, lines)


def _cnn(args) -> int:
    from validation.cnn_report import PARTS, cnn_experiment, cnn_figures, cnn_tables, cnn_verdicts

    if args.classes is not None:
        raise ValueError("--classes is an option of the universality experiment")
    data = _DATA_NAMES.get(args.data, args.data) if args.data else None
    data = "cifar10" if data == "cifar-10" else data
    try:
        r = cnn_experiment(data, quick=args.quick, out=args.out, workers=args.workers,
                           data_dir=args.data_dir, progress=_show_progress(args))
    except KeyboardInterrupt:
        if not args.out:
            raise
        return _interrupted(args.out)
    tables = cnn_tables(r.rows)
    verdicts = cnn_verdicts(r.rows)
    lines = [f"Open Question 2, CNNs: {', '.join(r.sources)}"
             f"{' (quick sizes)' if r.quick else ''}"]
    for key, title in PARTS:
        if key not in tables:
            continue
        lines += ["", f"({key}) {title}", *_table_lines(*tables[key])]
        lines.append(f"  verdict: {verdicts[key]}")
    lines.append(f"{r.seconds:.0f} s ({r.summary['computed']} tasks computed, "
                 f"{r.summary['cached']} cached)")
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        _write_results(out, "cnn", payload)
        cnn_figures(r.rows, out, command=_command_line())
        (out / "table.txt").write_text("\n".join(lines) + "\n")
    _emit(payload, args.json, lines)
    return 0


_ROUND_TRIP = {True: "exact", False: "FAILED", None: "-"}


def _compress_compare(args) -> None:
    from validation.compress_compare import compress_compare
    from validation.figures import plot_compress_compare, plot_neighbourhood

    data = _DATA_NAMES[args.data]
    r = compress_compare(data, args.model, quick=args.quick, model_path=args.model_path,
                         seed=args.seed, data_dir=args.data_dir, progress=_show_progress(args))
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        _write_results(out, "compress-compare", payload)
        plot_compress_compare(r, out / "compress_compare.png", command=_command_line())
        plot_neighbourhood(r.neighbourhood, out / "llc_neighbourhood.png", command=_command_line())
    lines = [f"compress-compare on {r.data}, {r.model}: dense {100 * r.dense_accuracy:.2f} % "
             f"in {r.dense_bytes} bytes",
             "  method        setting                bytes     ratio  accuracy  calib loss  "
             "round trip"]
    for row in r.rows:
        calib = ("" if row["calibration_loss"] is None
                 else f"{row['calibration_loss']:.4g}")
        lines.append(f"  {row['method']:<13} {row['setting']:<19} {row['bytes']:>10} "
                     f"{row['ratio']:8.1f}x {100 * row['accuracy']:8.2f}%  {calib:>10}  "
                     f"{_ROUND_TRIP[row['round_trip']]}")
    end = r.neighbourhood["neighbourhood_end"]
    lines += ["  first-order neighbourhood ends at relative weight noise "
              + ("(not reached)" if end is None else f"{end:.3g}"),
              f"  rule: {r.rule}", f"  {r.seconds:.0f} s"]
    if args.out:
        (Path(args.out) / "table.txt").write_text("\n".join(lines) + "\n")
    _emit(payload, args.json, lines)


_DATA_NAMES = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "cifar10": "cifar-10",
               "cifar-10": "cifar-10"}


def _cmd_train(args) -> None:
    from validation.train import train_model

    r = train_model(_DATA_NAMES[args.data], args.model, epochs=args.epochs,
                    hidden=args.hidden, batch_size=args.batch_size, optimizer=args.optimizer,
                    lr=args.lr, lr_decay=args.lr_decay, seed=args.seed, threads=args.threads,
                    data_dir=args.data_dir, out=args.out, progress=_show_progress(args))
    payload = r.as_dict()
    lines = [f"{r.model} on {r.data}: test accuracy {100 * r.test_accuracy:.2f} % after "
             f"{r.epochs} epochs, {r.seconds:.1f} s ({r.samples_per_second:.0f} samples/s)"]
    if r.model_path:
        lines.append(f"  saved {r.model_path}")
    _emit(payload, args.json, lines)


def _cmd_demo(args) -> None:
    from validation.demo import run_demo

    report = run_demo(Path(args.out), quick=args.quick)
    sys.stdout.write(report)


def _interrupted(out) -> int:
    """Ctrl-C during a cached run: say how to resume; exit code 130 (128 + SIGINT)."""
    sys.stderr.write(f"ntklc: interrupted; finished tasks are cached in {out}; rerun the same "
                     "command to resume\n")
    return 130


def _cmd_sweep(args) -> int:
    import logging

    from validation.sweeps import load_spec, run_sweep
    from validation.tasks import EXPERIMENTS

    if args.list:
        payload = {e.name: {"summary": e.summary, "version": e.version,
                            "params": {k: {"type": p.kind.__name__, "default": p.default,
                                           "help": p.help} for k, p in e.params.items()}}
                   for e in EXPERIMENTS.values()}
        lines = []
        for e in EXPERIMENTS.values():
            lines.append(f"{e.name}: {e.summary}")
            lines += [f"    {k:<14} {p.kind.__name__:<5} default {p.default!r:<11} {p.help}"
                      for k, p in e.params.items()]
        _emit(payload, args.json, lines)
        return 0
    if args.spec is None:
        raise ValueError("give a spec file (or --list for the experiments)")
    spec = load_spec(args.spec)
    out = Path(args.out) if args.out else Path("runs") / spec.name
    logging.basicConfig(format="ntklc: %(message)s", level=logging.WARNING, stream=sys.stderr)
    try:
        run = run_sweep(spec, out, workers=args.workers, scheduler=args.scheduler,
                        cache=args.cache, retry_failed=args.retry_failed,
                        progress=not args.no_progress)
    except KeyboardInterrupt:
        return _interrupted(out)
    summary = run.summary()
    for label, error in run.failed:
        sys.stderr.write(f"ntklc: task {label} failed: {error}\n")
    lines = [f"sweep {spec.name} ({spec.experiment}): {summary['tasks']} tasks, "
             f"{len(run.computed)} computed, {len(run.cached)} from the cache, "
             f"{len(run.failed)} failed, {run.seconds:.1f} s",
             f"  table: {out / 'results.csv'} (and results.json, provenance.json)"]
    if run.failed:
        lines.append("  rerun failed tasks with --retry-failed")
    _emit(summary, args.json, lines)
    return 1 if run.failed else 0


def _cmd_plot(args) -> None:
    from validation.report.plot import plot_results
    from validation.sweeps import read_results

    rows, meta = read_results(args.results)
    source = Path(args.results)
    out = Path(args.out) if args.out else (source if source.is_dir() else source.parent
                                           ) / "figures"
    where = {}
    for item in args.where:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--where takes KEY=VALUE, got {item!r}")
        where[key] = value
    png, slopes = plot_results(rows, meta, out, x=args.x, y=args.y, hue=args.hue, where=where,
                               command=_command_line())
    lines = [f"wrote {png} and {png.with_suffix('.pdf')}"]
    lines += [f"  {s['panel'] + ': ' if s['panel'] else ''}{s['line']}: slope {s['slope']:.3f}"
              f" ± {s['ci95']:.3f} (95 % CI)" for s in slopes]
    _emit({"png": str(png), "pdf": str(png.with_suffix(".pdf")), "slopes": slopes}, args.json,
          lines)


def _cmd_reproduce(args) -> int:
    from validation.report.reproduce import reproduce

    try:
        result = reproduce(Path(args.out), quick=args.quick, workers=args.workers,
                           scheduler=args.scheduler, progress=_show_progress(args))
    except KeyboardInterrupt:
        return _interrupted(args.out)
    lines = [f"{s['title']}: {s['verdict']}" for s in result["sections"]]
    lines.append(f"report: {result['report']} and {result['html']} ({result['seconds']:.0f} s)")
    _emit(result, args.json, lines)
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ntklc", description="Verify, simulate and apply NTK-LC compression.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("constants", help="activation constants m0, d1, d2, d3, tau2, esp2")
    p.add_argument("--act", required=True, help="activation, e.g. relu or lrelu:a=0.2")
    p.add_argument("--tau", type=_positive_float, default=1.0, help="input scale (default 1)")
    p.add_argument("--method", choices=METHODS, default="auto")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_cmd_constants)

    def network_args(p):
        p.add_argument("--act", default="relu",
                       help="activation(s): one for all layers or a comma list, one per layer")
        p.add_argument("--layers", type=int, default=None, help="depth L (default: 1 or the "
                       "number of activations)")
        p.add_argument("--kernel", choices=KERNELS, default="ck")
        p.add_argument("--json", action="store_true", help="one JSON object on stdout")
        p.add_argument("--out", help="folder for figures and results JSON")

    def data_args(p):
        p.add_argument("--data", default=None,
                       help="real data instead of the built-in GMM: mnist, fashion-mnist, "
                            "cifar10 or PATH.npz (X (N, p) or (N, H, W[, C]), integer y); "
                            "the result also holds the same check on its matched GMM")
        p.add_argument("--classes", default=None,
                       help="comma list of classes of --data (default: all)")
        p.add_argument("--features", default=None,
                       help="PATH.npz of features (X, y) used instead of the inputs of --data")
        p.add_argument("--data-dir", default=None, help="folder searched before NTKLC_DATA")

    def tile_args(p):
        p.add_argument("--tile", type=_positive_int, default=4096,
                       help="disk path (kernels beyond memory, in OUT/kernels): tile side "
                            "(default 4096)")
        p.add_argument("--tile-dtype", choices=TILE_DTYPES, default="float64",
                       help="disk path: storage of the tiles (default float64)")
        p.add_argument("--workers", type=_positive_int, default=1,
                       help="disk path: processes computing tiles (default 1: this process, "
                            "every core)")
        p.add_argument("--scheduler", default=None,
                       help="disk path: dask.distributed scheduler address "
                            "(tcp://host:8786) computing the tiles instead")

    p = sub.add_parser("spectrum", help="equivalent vs exact or Monte-Carlo kernel spectrum")
    network_args(p)
    data_args(p)
    p.add_argument("--n", type=_positive_int, default=800, help="samples (default 800)")
    p.add_argument("--p", type=_positive_int, default=None,
                   help="dimension (default n/2; the data's with --data)")
    p.add_argument("--reference", choices=REFERENCES, default="exact")
    p.add_argument("--weights", default="gaussian",
                   help="weight law of the mc reference: gaussian, rademacher, uniform, "
                        "student:NU, ternary:EPS")
    p.add_argument("--width", type=_positive_int, default=1000)
    p.add_argument("--draws", type=_positive_int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--path", choices=SPECTRUM_PATHS, default="auto",
                   help="dense: every eigenvalue (histogram), O(n^3); lanczos: the top of the "
                        "spectra and the error only, by Lanczos with the equivalent as an "
                        "operator, one n x n kernel in memory; disk: lanczos with the exact "
                        "kernel in tiles in OUT/kernels, none in memory (resumable); auto "
                        "(default): dense up to n = 6400, lanczos while the kernel fits in "
                        "memory, disk beyond")
    p.add_argument("--k", type=_positive_int, default=None,
                   help="top eigenpairs compared (default 5; 20 on the disk path)")
    tile_args(p)
    p.set_defaults(func=_cmd_spectrum)

    p = sub.add_parser("convergence", help="error of the equivalent vs n, with a fitted slope")
    network_args(p)
    data_args(p)
    p.add_argument("--ns", type=_int_list, default=[200, 400, 800, 1600],
                   help="comma list of n (default 200,400,800,1600)")
    p.add_argument("--seeds", type=_positive_int, default=1, help="data draws per n")
    tile_args(p)
    p.set_defaults(func=_cmd_convergence)

    p = sub.add_parser("compress", help="solve the NTK-LC quantized activations, count memory")
    p.add_argument("--act", default="relu", help="dense activation(s)")
    p.add_argument("--layers", type=int, default=None, help="depth L")
    p.add_argument("--eps", type=float, default=0.9, help="ternary sparsity in [0, 1)")
    p.add_argument("--max-levels", type=int, default=32, help="cap on the output levels")
    p.add_argument("--hidden-family", choices=FAMILIES, default="auto",
                   help="hidden-layer family (binary: the spec's two-level family, matched "
                        "up to the gauge only)")
    p.add_argument("--tau0", type=_positive_float, default=1.0, help="data scale")
    p.add_argument("--p", type=_positive_int, default=784, help="input dimension (memory)")
    p.add_argument("--width", type=_positive_int, default=2000, help="hidden width (memory)")
    p.add_argument("--classes", type=_positive_int, default=10, help="readout outputs")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_cmd_compress)

    p = sub.add_parser("compare", help="dense vs compressed CK spectra against the equivalent")
    p.add_argument("--act", default="relu", help="dense activation(s)")
    p.add_argument("--layers", type=int, default=None, help="depth L")
    data_args(p)
    p.add_argument("--n", type=_positive_int, default=800,
                   help="samples (p = n/2; the data's with --data)")
    p.add_argument("--eps", type=_float_list, default=[0.0, 0.5, 0.9, 0.99],
                   help="comma list of ternary sparsities")
    p.add_argument("--width", type=_positive_int, default=1000)
    p.add_argument("--draws", type=_positive_int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--out", help="folder for the figure and results JSON")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("kurtosis", help="measure the weight-kurtosis term of the first-layer CK")
    p.add_argument("--weights", default="rademacher", help="non-Gaussian weight law")
    p.add_argument("--act", default="relu", help="activation (needs d2 != 0)")
    data_args(p)
    p.add_argument("--p", type=_positive_int, default=None,
                   help="dimension (default 200; the data's with --data)")
    p.add_argument("--n", type=_positive_int, default=800)
    p.add_argument("--width", type=_positive_int, default=2500)
    p.add_argument("--draws", type=_positive_int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_cmd_kurtosis)

    p = sub.add_parser("cnn-kernel", help="exact CNN-GP / CNTK kernels of images (optionally "
                       "against the expanded recursion or NTK-LC's activations)")
    p.add_argument("--images", default=None,
                   help="PATH.npz with X of shape (N, H, W) or (N, H, W, C)")
    p.add_argument("--data", choices=[*sorted(_DATA_NAMES), "gmm"], default=None,
                   help="a data set instead of --images (class-balanced sample, centred, "
                        "scaled to tau0 = 1; gmm: Gaussian-mixture feature maps)")
    p.add_argument("--n", type=_positive_int, default=64, help="images of --data (default 64)")
    p.add_argument("--size", type=_positive_int, default=None,
                   help="image side of --data (default 14 MNIST-type, 16 CIFAR-10, 8 gmm)")
    p.add_argument("--channels", type=_positive_int, default=16, help="channels of --data gmm")
    p.add_argument("--data-dir", default=None, help="folder searched before NTKLC_DATA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--act", default="relu",
                   help="activation(s): one for all layers or a comma list, one per layer")
    p.add_argument("--layers", type=int, default=None, help="convolutions L (default: 1 or "
                   "the number of activations)")
    p.add_argument("--filter-size", type=_positive_int, default=3)
    p.add_argument("--padding", choices=("same", "circular", "valid"), default="same")
    p.add_argument("--pool", type=_int_list, default=[],
                   help="comma list of the layers followed by 2x2 average pooling")
    p.add_argument("--readout", choices=("flatten", "gap"), default="flatten")
    p.add_argument("--kernel", choices=("ck", "both"), default="both",
                   help="ck: the CK only (needed for step activations, whose NTK is undefined)")
    p.add_argument("--centring", action="store_true",
                   help="centre every activation by the scalar tau chain (the fully connected "
                        "kernels' convention; default: uncentred, as neural-tangents)")
    p.add_argument("--compare", choices=("none", "equivalent", "compressed"), default="none",
                   help="also the expanded recursion or NTK-LC's quantized activations, and "
                        "their relative spectral error (implies --centring)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--out", help="folder for kernels.npz and the results JSON")
    p.set_defaults(func=_cmd_cnn_kernel)

    p = sub.add_parser("train", help="train the MLP or CNN of nets/ on an image data set")
    p.add_argument("--data", choices=sorted(_DATA_NAMES), default="mnist")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--hidden", type=_int_list, default=[1024, 1024], help="MLP widths")
    p.add_argument("--batch-size", type=_positive_int, default=128)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="adam")
    p.add_argument("--lr", type=_positive_float, default=None)
    p.add_argument("--lr-decay", type=_positive_float, default=0.8,
                   help="learning-rate factor applied after every epoch (default 0.8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive_int, default=None)
    p.add_argument("--data-dir", default=None, help="folder searched before NTKLC_DATA")
    p.add_argument("--out", default=None, help="folder for model.npz")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("experiment", help="run a paper experiment end to end "
                       "(ntklc-real, compress-compare, activations, universality, cnn)")
    p.add_argument("name", help="experiment name: ntklc-real, compress-compare, activations, "
                   "universality or cnn")
    p.add_argument("--data", choices=[*sorted(_DATA_NAMES), "gmm"], default=None,
                   help="data set (default mnist; universality: mnist and fashion-mnist; cnn: "
                        "every data set found and gmm, the Gaussian-mixture feature maps)")
    p.add_argument("--classes", default=None,
                   help="universality: comma list of classes (default all)")
    p.add_argument("--data-dir", default=None, help="folder searched before NTKLC_DATA")
    p.add_argument("--quick", action="store_true",
                   help="widths 500-500-250, 10000 training images, 1 CNN epoch (activations: "
                        "200-200-100, 2000 images, relu and tanh; universality: MNIST 0/1, "
                        "relu and tanh, L = 1, 2, n = 200, 400; cnn: 7x7 images, tiny n)")
    p.add_argument("--cnn-epochs", type=_positive_int, default=10,
                   help="CIFAR-10: epochs of the CNN that provides the features")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                   help="compress-compare: the trained model to compress")
    p.add_argument("--model-path", default=None,
                   help="compress-compare: a model.npz from 'ntklc train --out' (else trained)")
    p.add_argument("--acts", type=_str_list, default=None,
                   help="activations: comma list (default relu,tanh,erf,gelu,swish,abs)")
    p.add_argument("--eps", type=_float_list, default=None,
                   help="activations: NTK-LC sparsities (default 0,0.9,0.99)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="activations, universality, cnn: local processes (activations: "
                        "default 1 with --quick, else the cores up to 4; others: the cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--out", help="folder for the figure and results JSON")
    p.set_defaults(func=_cmd_experiment)

    p = sub.add_parser("sweep", help="run a grid of tasks of one experiment (TOML spec), "
                       "cached and resumable, on local processes or a dask cluster")
    p.add_argument("spec", nargs="?", help="TOML spec file (see sweeps/ for examples)")
    p.add_argument("--list", action="store_true",
                   help="list the experiments and their parameters, then exit")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", default=None,
                   help="dask.distributed scheduler address, e.g. tcp://HOST:8786")
    p.add_argument("--out", default=None, help="output folder (default runs/SPEC-NAME)")
    p.add_argument("--cache", default=None, help="cache folder (default OUT/cache)")
    p.add_argument("--retry-failed", action="store_true", help="rerun tasks cached as failed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="one JSON summary on stdout")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("plot", help="draw a sweep's results table (mean ± s.e. over seeds)")
    p.add_argument("results", help="a sweep's output folder, results.json or results.csv")
    p.add_argument("--x", default=None, help="column on the x axis")
    p.add_argument("--y", default=None, help="metric on the y axis")
    p.add_argument("--hue", default=None, help="parameter that colours the lines; other "
                   "varying parameters make panels")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="keep only rows with this value (repeatable)")
    p.add_argument("--out", default=None, help="folder for PNG + PDF (default RESULTS/figures)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("reproduce", help="run the built-in sweeps that reproduce the papers' "
                       "claims; write report.md, report.html, results/ and figures/")
    p.add_argument("--quick", action="store_true", help="smaller sizes (under 10 minutes)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    p.add_argument("--out", default="reproduction", help="output folder (default reproduction)")
    p.add_argument("--json", action="store_true", help="one JSON summary on stdout")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("demo", help="the main job on built-in GMM data: figures and a report")
    p.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    p.set_defaults(func=_cmd_demo)
    return parser


def _check_writable(folder: Path) -> None:
    """Fail now, not after the computation, when ``folder`` could not hold the results: its
    nearest existing ancestor (or itself) must be a folder we may write in. Creates nothing.

    Raises:
        OSError: NotADirectoryError or PermissionError, with the path.
    """
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(existing))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ntklc`` console script; returns the exit code."""
    args = _build_parser().parse_args(argv)
    try:
        if getattr(args, "out", None):
            _check_writable(Path(args.out))
        code = args.func(args)
    except (ValueError, FileNotFoundError) as exc:  # user errors: bad input, missing data
        sys.stderr.write(f"ntklc: error: {exc}\n")
        return 2
    except OSError as exc:  # an output folder that cannot be written (read-only, full, a file)
        where = f" {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"ntklc: error: cannot write{where}: {exc.strerror or exc}\n")
        return 2
    except RuntimeError as exc:  # the run broke (e.g. a worker died); its message says why
        sys.stderr.write(f"ntklc: {exc}\n")
        return 1
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
