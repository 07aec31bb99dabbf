"""The paper experiments and the model commands: ``experiment NAME``, ``train`` and ``demo``."""

from __future__ import annotations

import sys
from pathlib import Path

from ntklc.errors import InputError
from validation.cli.common import (
    DATA_NAMES,
    EXPERIMENTS,
    command_line,
    emit,
    interrupted,
    percent,
    show_progress,
    table_lines,
    write_results,
)


def experiment_command(args) -> None:
    from validation.experiments.realdata import run_ntklc_real
    from validation.report.figures import plot_accuracy_memory

    if args.name not in EXPERIMENTS:
        raise InputError(f"unknown experiment {args.name!r}; available: "
                         f"{', '.join(EXPERIMENTS)}")
    if args.name == "universality":
        return _universality(args)
    if args.name == "cnn":
        return _cnn(args)
    if args.data == "gmm":
        raise InputError("--data gmm (Gaussian-mixture feature maps) is an option of the cnn "
                         "experiment")
    if args.classes is not None:
        raise InputError("--classes is an option of the universality experiment")
    args.data = args.data or "mnist"
    if args.name == "compress-compare":
        _compress_compare(args)
        return
    if args.name == "activations":
        return _activations(args)
    r = run_ntklc_real(DATA_NAMES[args.data], quick=args.quick, cnn_epochs=args.cnn_epochs,
                       data_dir=args.data_dir, seed=args.seed, progress=show_progress(args))
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        write_results(out, "ntklc-real", payload)
        plot_accuracy_memory(r, out / "accuracy_memory.png", command=command_line())
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
    emit(payload, args.json, lines)


def _activations(args) -> int:
    from validation.report.activations import activations_experiment
    from validation.report.figures import plot_activations

    try:
        r = activations_experiment(args.data, args.acts, args.eps or (0.0, 0.9, 0.99),
                                   quick=args.quick, seed=args.seed, data_dir=args.data_dir,
                                   out=Path(args.out) / "sweep" if args.out else None,
                                   workers=args.workers, progress=show_progress(args))
    except KeyboardInterrupt:
        if not args.out:
            raise
        return interrupted(args.out)
    lines = [f"NTK-LC per activation on {r.data}: random features "
             f"{'-'.join(map(str, r.widths))}, {r.n_train} training / {r.n_test} test images, "
             f"ridge readout on all classes, seed {args.seed}",
             "  activation    eps    dense acc   NTK-LC acc   pruned acc   memory factor"]
    notes = {}
    for row in r.rows:
        factor = "-" if row["memory_factor"] is None else f"{row['memory_factor']:.1f}x"
        lines.append(f"  {row['act']:<12} {row['eps']:>5g} {percent(row['dense_accuracy']):>12}"
                     f" {percent(row['ntklc_accuracy']):>12} "
                     f"{percent(row['pruned_accuracy']):>12} {factor:>15}")
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
        write_results(out, "activations", payload)
        plot_activations(r, out / "activations.png", command=command_line())
        (out / "table.txt").write_text("\n".join(lines) + "\n")
    emit(payload, args.json, lines)
    return 0


def _universality(args) -> int:
    from validation.report.universality import (
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
                                    progress=show_progress(args))
    except KeyboardInterrupt:
        if not args.out:
            raise
        return interrupted(args.out)
    header, table = universality_table(list(r.rows))
    lines = [f"Equivalent vs exact kernel on real images and on their matched GMM "
             f"(classes {r.classes}; errors = relative spectral error, mean over seeds; "
             "alignment and separability at the largest n)"]
    for name in r.data:
        lines += ["", f"{name}:"]
        lines += table_lines(header[1:], [row[1:] for row in table if row[0] == name])
    lines.append(f"  {r.seconds:.0f} s ({r.summary['computed']} tasks computed, "
                 f"{r.summary['cached']} cached)")
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        write_results(out, "universality", payload)
        (out / "table.txt").write_text("\n".join(lines) + "\n")
        for name in r.data:
            error_figure(list(r.rows), name, out / f"universality_errors_{name}.png",
                         command=command_line())
            universality_figures(name, r.classes, out, n=400 if args.quick else 2000,
                                 data_dir=args.data_dir or "", command=command_line())
    emit(payload, args.json, lines)
    return 0


def _cnn(args) -> int:
    from validation.report.cnn import PARTS, cnn_experiment, cnn_figures, cnn_tables, cnn_verdicts

    if args.classes is not None:
        raise InputError("--classes is an option of the universality experiment")
    data = DATA_NAMES.get(args.data, args.data) if args.data else None
    data = "cifar10" if data == "cifar-10" else data
    try:
        r = cnn_experiment(data, quick=args.quick, out=args.out, workers=args.workers,
                           data_dir=args.data_dir, progress=show_progress(args))
    except KeyboardInterrupt:
        if not args.out:
            raise
        return interrupted(args.out)
    tables = cnn_tables(r.rows)
    verdicts = cnn_verdicts(r.rows)
    lines = [f"Open Question 2, CNNs: {', '.join(r.sources)}"
             f"{' (quick sizes)' if r.quick else ''}"]
    for key, title in PARTS:
        if key not in tables:
            continue
        lines += ["", f"({key}) {title}", *table_lines(*tables[key])]
        lines.append(f"  verdict: {verdicts[key]}")
    lines.append(f"{r.seconds:.0f} s ({r.summary['computed']} tasks computed, "
                 f"{r.summary['cached']} cached)")
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        write_results(out, "cnn", payload)
        cnn_figures(r.rows, out, command=command_line())
        (out / "table.txt").write_text("\n".join(lines) + "\n")
    emit(payload, args.json, lines)
    return 0


_ROUND_TRIP = {True: "exact", False: "FAILED", None: "-"}


def _compress_compare(args) -> None:
    from validation.experiments.compress_compare import compress_compare
    from validation.report.figures import plot_compress_compare, plot_neighbourhood

    data = DATA_NAMES[args.data]
    r = compress_compare(data, args.model, quick=args.quick, model_path=args.model_path,
                         seed=args.seed, data_dir=args.data_dir, progress=show_progress(args))
    payload = r.as_dict()
    if args.out:
        out = Path(args.out)
        write_results(out, "compress-compare", payload)
        plot_compress_compare(r, out / "compress_compare.png", command=command_line())
        plot_neighbourhood(r.neighbourhood, out / "llc_neighbourhood.png", command=command_line())
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
    emit(payload, args.json, lines)


def train_command(args) -> None:
    from validation.experiments.train import train_model

    r = train_model(DATA_NAMES[args.data], args.model, epochs=args.epochs,
                    hidden=args.hidden, batch_size=args.batch_size, optimizer=args.optimizer,
                    lr=args.lr, lr_decay=args.lr_decay, seed=args.seed, threads=args.threads,
                    data_dir=args.data_dir, out=args.out, progress=show_progress(args))
    payload = r.as_dict()
    lines = [f"{r.model} on {r.data}: test accuracy {100 * r.test_accuracy:.2f} % after "
             f"{r.epochs} epochs, {r.seconds:.1f} s ({r.samples_per_second:.0f} samples/s)"]
    if r.model_path:
        lines.append(f"  saved {r.model_path}")
    emit(payload, args.json, lines)


def demo_command(args) -> None:
    from validation.report.demo import run_demo

    report = run_demo(Path(args.out), quick=args.quick)
    sys.stdout.write(report)
