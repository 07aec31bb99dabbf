"""Regenerate the figures of the documentation pages with the commands their pages give.

    python docs/make_figures.py                  # quick sizes: every figure, in about 10 minutes
    python docs/make_figures.py --full           # the pages' sizes (hours: the CNN study alone
                                                 # takes about 70 minutes)
    python docs/make_figures.py --only theory    # the figures of one page (repeatable)

Quick runs write to ``docs/_build/figures`` by default: they check that every figure can still
be drawn, end to end, without replacing the pages' figures, which come from the full runs. The
full runs write to ``docs/``. Every figure carries the command that drew it in its metadata
(PNG ``Comment``). The commands' own output folders go to ``--work`` (default
``docs/_build/figure-runs``), so that a rerun resumes the cached sweeps. The offline data sets
are found through ``NTKLC_DATA``, as for every command (``make figures`` sets it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Run:
    """The commands that draw some figures of a page.

    Attributes:
        page: the page (file name without ``.md``) that shows the figures.
        full: the commands (arguments after ``ntklc``) as the page gives them; ``{out}`` is this
            run's output folder.
        quick: the same commands at quick sizes (``None``: the full ones are already quick).
        figures: file the commands write (relative to ``{out}``) -> file name in the docs.
        full_only: figures the quick commands do not draw (a data set the quick run skips).
    """

    page: str
    full: tuple[tuple[str, ...], ...]
    figures: dict[str, str]
    quick: tuple[tuple[str, ...], ...] | None = None
    full_only: frozenset[str] = field(default_factory=frozenset)


def _command(*words: str) -> tuple[str, ...]:
    return tuple(" ".join(words).split())


RUNS = (
    Run("theory", (_command("spectrum --act relu --layers 2 --n 400 --out {out}"),),
        {"spectrum.png": "theory_spectrum.png"}),
    Run("theory", (_command("convergence --act relu --layers 2 --ns 200,400,800,1600",
                            "--seeds 3 --out {out}"),),
        {"convergence.png": "theory_convergence.png"}),
    Run("ntklc", (_command("compare --act relu --layers 2 --n 800 --eps 0,0.9,0.99",
                           "--out {out}"),),
        {"compression_spectra.png": "ntklc_compression_spectra.png"}),
    Run("scale", (_command("spectrum --data mnist --n 60000 --act relu --layers 2 --out {out}"),),
        {"spectrum.png": "mnist60k_spectrum.png"},
        quick=(_command("spectrum --data mnist --n 2000 --act relu --layers 2 --path disk",
                        "--tile 512 --out {out}"),)),
    Run("realdata", (_command("experiment universality --out {out}"),),
        {"universality_errors_mnist.png": "universality_errors_mnist.png",
         "universality_errors_fashion-mnist.png": "universality_errors_fashion-mnist.png",
         "universality_spectrum_mnist.png": "universality_spectrum_mnist.png"},
        quick=(_command("experiment universality --quick --out {out}"),),
        full_only=frozenset({"universality_errors_fashion-mnist.png"})),
    *(Run("realdata", (_command(f"experiment activations --data {data} --out {{out}}"),),
          {"activations.png": f"activations_{data}.png"},
          quick=(_command(f"experiment activations --data {data} --quick --out {{out}}"),))
      for data in ("mnist", "fashion-mnist")),
    Run("cnn", (_command("experiment cnn --workers 2 --out {out}"),),
        {f"cnn_{part}.png": f"cnn_{part}.png" for part in "abcde"},
        quick=(_command("experiment cnn --quick --out {out}"),)),
    Run("posttraining", (_command("experiment compress-compare --data mnist --out {out}"),),
        {"compress_compare.png": "compress_compare_mnist.png",
         "llc_neighbourhood.png": "llc_neighbourhood_mnist.png"},
        quick=(_command("experiment compress-compare --data mnist --quick --out {out}"),)),
    Run("sweeps", (_command("sweep sweeps/convergence.toml --out {out} --no-progress"),
                   _command("plot {out} --where kernel=ck --where layers=2")),
        {"figures/convergence_rel_spectral_error_vs_n.png": "sweeps_convergence.png"},
        quick=(_command("sweep sweeps/smoke.toml --out {out} --no-progress"),
               _command("plot {out} --where layers=1")),
        full_only=frozenset({"figures/convergence_rel_spectral_error_vs_n.png"})),
    Run("sweeps", (_command("reproduce --out {out}"),),
        {"figures/convergence.png": "reproduce_convergence.png",
         "figures/universality.png": "reproduce_universality.png"},
        quick=(_command("reproduce --quick --out {out}"),)),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="the pages' sizes, into docs/ (hours)")
    parser.add_argument("--only", action="append", default=[], metavar="PAGE",
                        choices=sorted({run.page for run in RUNS}),
                        help="only the figures of this page (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the figures go (default docs/ with --full, else "
                             "docs/_build/figures)")
    parser.add_argument("--work", type=Path, default=DOCS / "_build" / "figure-runs",
                        help="the commands' output folders (kept, so a rerun resumes)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = args.out or (DOCS if args.full else DOCS / "_build" / "figures")
    out.mkdir(parents=True, exist_ok=True)
    runs = [run for run in RUNS if not args.only or run.page in args.only]
    for number, run in enumerate(runs):
        folder = args.work / ("full" if args.full else "quick") / f"{run.page}-{number}"
        commands = run.full if args.full or run.quick is None else run.quick
        start = time.perf_counter()
        for words in commands:
            # The folder relative to the repository: the figures' metadata quote this command.
            line = [word.replace("{out}", os.path.relpath(folder, DOCS.parent)) for word in words]
            sys.stderr.write(f"ntklc {' '.join(line)}\n")
            done = subprocess.run([sys.executable, "-m", "validation.cli", *line],
                                  cwd=DOCS.parent, stdout=subprocess.DEVNULL)
            if done.returncode != 0:
                sys.stderr.write(f"make_figures: `ntklc {' '.join(line)}` failed "
                                 f"(exit {done.returncode})\n")
                return 1
        for made, name in run.figures.items():
            if not args.full and made in run.full_only:
                continue
            shutil.copyfile(folder / made, out / name)
            sys.stderr.write(f"  {out / name}\n")
        sys.stderr.write(f"  {time.perf_counter() - start:.0f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
