"""The sweep commands: ``sweep``, ``plot`` and ``reproduce``."""

from __future__ import annotations

import sys
from pathlib import Path

from ntklc.errors import InputError
from validation.cli.common import command_line, emit, interrupted, show_progress


def sweep_command(args) -> int:
    import logging

    from validation.experiments.tasks import EXPERIMENTS
    from validation.sweeps import load_spec, run_sweep

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
        emit(payload, args.json, lines)
        return 0
    if args.spec is None:
        raise InputError("give a spec file (or --list for the experiments)")
    spec = load_spec(args.spec)
    out = Path(args.out) if args.out else Path("runs") / spec.name
    logging.basicConfig(format="ntklc: %(message)s", level=logging.WARNING, stream=sys.stderr)
    try:
        run = run_sweep(spec, out, workers=args.workers, scheduler=args.scheduler,
                        cache=args.cache, retry_failed=args.retry_failed,
                        progress=not args.no_progress)
    except KeyboardInterrupt:
        return interrupted(out)
    summary = run.summary()
    for label, error in run.failed:
        sys.stderr.write(f"ntklc: task {label} failed: {error}\n")
    lines = [f"sweep {spec.name} ({spec.experiment}): {summary['tasks']} tasks, "
             f"{len(run.computed)} computed, {len(run.cached)} from the cache, "
             f"{len(run.failed)} failed, {run.seconds:.1f} s",
             f"  table: {out / 'results.csv'} (and results.json, provenance.json)"]
    if run.failed:
        lines.append("  rerun failed tasks with --retry-failed")
    emit(summary, args.json, lines)
    return 1 if run.failed else 0


def plot_command(args) -> None:
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
            raise InputError(f"--where takes KEY=VALUE, got {item!r}")
        where[key] = value
    png, slopes = plot_results(rows, meta, out, x=args.x, y=args.y, hue=args.hue, where=where,
                               command=command_line())
    lines = [f"wrote {png} and {png.with_suffix('.pdf')}"]
    lines += [f"  {s['panel'] + ': ' if s['panel'] else ''}{s['line']}: slope {s['slope']:.3f}"
              f" ± {s['ci95']:.3f} (95 % CI)" for s in slopes]
    emit({"png": str(png), "pdf": str(png.with_suffix(".pdf")), "slopes": slopes}, args.json,
          lines)


def reproduce_command(args) -> int:
    from validation.report.reproduce import reproduce

    try:
        result = reproduce(Path(args.out), quick=args.quick, workers=args.workers,
                           scheduler=args.scheduler, progress=show_progress(args))
    except KeyboardInterrupt:
        return interrupted(args.out)
    lines = [f"{s['title']}: {s['verdict']}" for s in result["sections"]]
    lines.append(f"report: {result['report']} and {result['html']} ({result['seconds']:.0f} s)")
    emit(result, args.json, lines)
    return 0
