"""What the commands share: printing (a summary or one JSON object), progress on stderr,
results files, the data source of the theory commands and the names of the data sets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ntklc.errors import InputError

if TYPE_CHECKING:
    from validation.data.datasource import DataSource

__all__ = ["DATA_NAMES", "EXPERIMENTS", "command_line", "data_source", "emit", "ignored",
           "interrupted", "numbers", "percent", "show_progress", "source_line", "table_lines",
           "write_results"]

DATA_NAMES = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "cifar10": "cifar-10",
               "cifar-10": "cifar-10"}


EXPERIMENTS = ("ntklc-real", "compress-compare", "activations", "universality", "cnn")


def emit(payload: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        json.dump(payload, sys.stdout, indent=2, allow_nan=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")


def show_progress(args) -> bool:
    """Progress bars go to stderr: shown unless --json output goes to a non-terminal (a script
    reading the JSON does not want bars in its logs; a person running --json still sees them)."""
    return not args.json or sys.stderr.isatty()


def ignored(args, options: tuple[str, ...], reason: str) -> None:
    """One stderr line naming the ``options`` given on the command line that this mode does not
    use (an option not given is ``None`` in ``args``); values are still validated."""
    given = [o for o in options if getattr(args, o.lstrip("-").replace("-", "_")) is not None]
    if given:
        sys.stderr.write(f"ntklc: note: {', '.join(given)} ignored: {reason}\n")


def command_line() -> str:
    return " ".join(["ntklc", *sys.argv[1:]])


def write_results(out: Path, name: str, payload: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")


def data_source(args) -> DataSource | None:
    """The --data/--features source, or ``None`` for the built-in GMM.

    Raises:
        InputError: --classes or --data-dir without --data or --features.
    """
    from validation.data.datasource import DataSource, parse_classes

    if not args.data and not args.features:
        for flag, value in (("--classes", args.classes), ("--data-dir", args.data_dir)):
            if value is not None:
                raise InputError(f"{flag} needs --data or --features")
        return None
    return DataSource(data=args.data, classes=parse_classes(args.classes),
                      features=args.features, data_dir=args.data_dir)


def source_line(source: dict) -> str:
    seeds = (f"seed {source['seed']}" if "seed" in source
             else f"seeds {','.join(map(str, source['seeds']))}")
    line = (f"{source['data']}, classes {','.join(map(str, source['classes']))}: p={source['p']}"
            f", {source['n_train']} training samples, class-balanced samples, {seeds}")
    if "effective_dimension" in source:
        line += ("\n  assumptions (theorem: t, T of order 1, effective dimensions of order p): "
                 f"t = {numbers(source['t'])}, diag T = "
                 f"{numbers([row[i] for i, row in enumerate(source['T'])])}, effective "
                 f"dimensions tr(C)^2/tr(C^2) = {numbers(source['effective_dimension'])}")
    return line


def numbers(values) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"


def percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def table_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    """A text table, columns padded to their widest cell, indented by two spaces."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
            for line in (header, *rows)]


def interrupted(out) -> int:
    """Ctrl-C during a cached run: say how to resume; exit code 130 (128 + SIGINT)."""
    sys.stderr.write(f"ntklc: interrupted; finished tasks are cached in {out}; rerun the same "
                     "command to resume\n")
    return 130
