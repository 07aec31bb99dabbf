"""The ``ntklc`` command line, fuzzed: command lines drawn from its own argparse parser.

For every subcommand, Hypothesis draws a subset of its options, each with a valid tiny value, a
value of the wrong type, a number out of range (negative, zero, NaN, inf, huge), an empty or
unknown name, sometimes repeated, with conflicting options left in. Every run must end with
exit 0, 1 or 2; exit 2 with exactly one line on stderr; never a traceback, never the message of
an internal error; and nothing written outside its output folder (the run's working folder
holds nothing else afterwards).

Commands that start worker processes (``sweep``, ``reproduce``, ``experiment``) run in a
subprocess; the others in this process. Valid draws use sizes that finish in well under a
second; the commands that cannot (``train``, ``experiment``, ``reproduce``, ``demo``) get at
least one bad value per draw, so that they stop before the work. ``--scheduler`` is drawn only
as a malformed address: a well-formed one would wait for dask's connect timeout.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from run_cli import run_in_process

from validation.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[2]
DATA = os.environ.get("NTKLC_DATA")
#: Examples per subcommand: the CI profile keeps the whole fuzzer near half a minute; the
#: nightly profile (NTKLC_HYPOTHESIS_PROFILE=ntklc-nightly) runs ten times more.
EXAMPLES = 150 if os.environ.get("NTKLC_HYPOTHESIS_PROFILE") == "ntklc-nightly" else 15
FORKING = ("sweep", "reproduce", "experiment")
#: Commands whose valid runs take minutes: every draw carries a bad value.
SLOW = ("train", "experiment", "reproduce", "demo")

_SUBPARSERS = next(a for a in build_parser()._actions
                   if isinstance(a, argparse._SubParsersAction)).choices

BAD_NUMBERS = ("-1", "0", "nan", "inf", "-inf", "1e309", "99999999999999999999", "abc", "",
               "1.5", "--", "0x10")
BAD_NAMES = ("", "nope", "relu:a=x", "ternary:1.5", "student:2", "a,,b", "../..", "ü\t")
#: Tiny valid values of the options whose default would take too long or that need a value.
VALID = {
    "--act": ("relu", "tanh", "relu,tanh", "lrelu:a=0.2", "erf"),
    "--acts": ("relu", "relu,tanh"),
    "--batch-size": ("8",),
    "--channels": ("1", "2"),
    "--classes": ("0,1", "1,2"),
    "--cnn-epochs": ("1",),
    "--data": ("mnist", "fashion-mnist"),
    "--draws": ("1", "2"),
    "--epochs": ("1",),
    "--eps": ("0", "0.5", "0,0.9"),
    "--filter-size": ("1", "3"),
    "--hidden": ("4", "4,4"),
    "--k": ("1", "2"),
    "--layers": ("1", "2"),
    "--lr": ("0.01",),
    "--lr-decay": ("0.5",),
    "--max-levels": ("4", "32"),
    "--n": ("12", "20"),
    "--ns": ("12,24",),
    "--p": ("6", "10"),
    "--pool": ("1",),
    "--seed": ("0", "3"),
    "--seeds": ("1", "2"),
    "--size": ("6",),
    "--tau": ("0.5", "2"),
    "--tau0": ("1", "0.5"),
    "--threads": ("1",),
    "--tile": ("8", "16"),
    "--weights": ("gaussian", "rademacher", "ternary:0.5", "student:5"),
    "--width": ("16", "24"),
    "--workers": ("1",),
    "--x": ("n",), "--y": ("rel_spectral_error",), "--hue": ("act",),
    "--where": ("act=relu", "layers=1"),
}
#: Values that are wrong for an option whatever the mode: a run given one must refuse it (exit
#: 2) or say on stderr that the option is ignored, never succeed in silence.
INVALID = {name: set(BAD_NUMBERS) | set(BAD_NAMES) for name in ("--act", "--acts", "--weights")}
INVALID |= {name: {"-1", "nan", "inf", "-inf", "1e309", "99999999999999999999", "abc", "",
                   "1.5", "--", "0x10"} for name in ("--eps",)}
INVALID |= {name: {"-1", "0"} | set(BAD_NUMBERS) - {"1.5"} - {"99999999999999999999"}
            for name in ("--layers", "--max-levels")}
#: Command lines that once went wrong, tried before the drawn ones.
REGRESSIONS = {
    "spectrum": [["spectrum", "--n", "12", "--weights", "ternary:1.5"],
                 ["spectrum", "--n", "12", "--weights", "student:2"]],
    "plot": [["plot", "results.csv"], ["plot", "results.json"]],
}
#: Options with a file or folder value: drawn from what the sandbox holds.
PATHS = ("--images", "--features", "--model-path", "--data-dir", "--cache", "results", "spec")
#: Options that must not be drawn (see the module docstring) or are set by the harness.
SKIPPED = ("--scheduler", "--out", "-h")
#: Options each command gets before the drawn ones, so that a valid draw is tiny.
BASE = {
    "spectrum": ["--n", "12", "--width", "16", "--draws", "1"],
    "convergence": ["--ns", "12,24"],
    "compress": ["--layers", "1", "--width", "16", "--p", "8"],
    "compare": ["--n", "12", "--width", "16", "--draws", "1", "--eps", "0"],
    "kurtosis": ["--n", "12", "--p", "6", "--width", "16", "--draws", "2"],
    "cnn-kernel": ["--n", "4", "--size", "6", "--channels", "1"],
    "train": ["--epochs", "1", "--hidden", "4"],
    "experiment": ["ntklc-real", "--quick"],
    "sweep": ["tiny.toml", "--workers", "1", "--no-progress"],
    "plot": ["results.json"],
}
TINY_SPEC = """experiment = "spectrum"
seeds = 1
[grid]
n = [12]
width = [16]
"""


def _option_values(command: str, action: argparse.Action) -> st.SearchStrategy[list[str]]:
    """The words one drawn option adds: nothing, the flag, or the flag and a value."""
    name = action.option_strings[0] if action.option_strings else action.dest
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return st.just([name])
    good = list(action.choices) if action.choices else list(VALID.get(name, ()))
    if name in PATHS:
        good = ["data.npz", "model.npz", "results.json", "results.csv", "tiny.toml", "folder",
                "missing.npz"]
    values = st.sampled_from(good + list(BAD_NUMBERS) + list(BAD_NAMES)) if good else \
        st.sampled_from(BAD_NUMBERS + BAD_NAMES)
    if not action.option_strings:  # a positional: its value alone
        return values.map(lambda v: [v])
    return values.map(lambda v: [name, v])


@st.composite
def command_lines(draw, command: str) -> list[str]:
    parser = _SUBPARSERS[command]
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)
               and (a.option_strings or a.dest) and not set(a.option_strings) & set(SKIPPED)]
    optional = [a for a in actions if a.option_strings]
    chosen = draw(st.lists(st.sampled_from(optional), max_size=4)) if optional else []
    words = list(BASE.get(command, []))
    positional = [a for a in actions if not a.option_strings]
    if positional and draw(st.booleans()):
        words = [w for w in words if not w.endswith((".toml", ".json")) and w != "ntklc-real"]
        for action in positional:
            words[:0] = draw(_option_values(command, action))
    for action in chosen:  # repeated options come from drawing the same action twice
        words += draw(_option_values(command, action))
    if command in SLOW:
        words += draw(st.sampled_from([["--seed", "x"], ["--workers", "0"], ["--data", ""],
                                       ["--epochs", "-1"], ["--quick", "--nope"]]))
    return [command, *words]


def _sandbox(folder: Path) -> None:
    """The files a drawn command line may name, in the run's working folder."""
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", X=rng.standard_normal((40, 6)), y=np.repeat([0, 1], 20))
    (folder / "model.npz").write_bytes(b"PK\x03\x04 not a model")
    (folder / "results.json").write_text('{"rows": [{"n": 1, "x": 2}]}')
    (folder / "results.csv").write_text("a,b\n1,[1]\n")
    (folder / "tiny.toml").write_text(TINY_SPEC)
    (folder / "folder").mkdir()


def _environment(cache: Path) -> dict:
    env = dict(os.environ)
    env.update({"XDG_CACHE_HOME": str(cache), "NTKLC_DATA_URL": "http://127.0.0.1:9",
                "PYTHONPATH": str(ROOT)})
    if not DATA:
        env["NTKLC_DATA"] = str(cache / "no-data")
    return env


def _run(argv: list[str], folder: Path, cache: Path) -> tuple[int, str]:
    """Exit code and stderr of ``ntklc argv`` run in ``folder``."""
    if argv[0] in FORKING:
        done = subprocess.run([sys.executable, "-m", "validation.cli", *argv], cwd=folder,
                              env=_environment(cache), capture_output=True, text=True,
                              timeout=300)
        return done.returncode, done.stderr
    return run_in_process(argv, folder)


def _check(argv: list[str], code: int, stderr: str, folder: Path, before: set[str]) -> None:
    line = " ".join(map(repr, argv))
    assert code in (0, 1, 2), f"ntklc {line}: exit {code}\n{stderr}"
    assert "Traceback" not in stderr, f"ntklc {line}: a traceback\n{stderr}"
    assert "please report" not in stderr, f"ntklc {line}: an internal error\n{stderr}"
    if code == 2:
        lines = stderr.strip("\n").split("\n")
        assert len(lines) == 1, f"ntklc {line}: exit 2 with {len(lines)} lines\n{stderr}"
    last = dict(itertools.pairwise(argv))  # a repeated option: argparse keeps the last value
    wrong = [name for name, value in last.items() if value in INVALID.get(name, ())]
    if code == 0 and wrong:
        assert all(name in stderr for name in wrong), \
            f"ntklc {line}: accepted {', '.join(wrong)} in silence\n{stderr}"
    new = {p for p in _tree(folder) if p not in before}
    outside = [p for p in new if not p.startswith(_out_folders(argv))]
    assert not outside, f"ntklc {line}: wrote outside its output folder: {sorted(outside)}"


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _out_folders(argv: list[str]) -> tuple[str, ...]:
    """Where a run may write: its --out and --cache, else its command's default folder."""
    defaults = {"reproduce": ("reproduction",), "demo": ("demo-output",), "sweep": ("runs",),
                "plot": ("figures",)}
    given = {w: argv[i + 1] for i, w in enumerate(argv[:-1]) if w in ("--out", "--cache")}
    default = () if "--out" in given else defaults.get(argv[0], ())
    return (*given.values(), *default) or ("\x00",)


@pytest.mark.parametrize("command", sorted(_SUBPARSERS))
def test_every_command_line_ends_cleanly(command, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(argv=command_lines(command), with_out=st.booleans())
    def fuzz(argv, with_out):
        folder = tmp_path_factory.mktemp(command)
        _sandbox(folder)
        if with_out:
            argv = [*argv, "--out", "out"]
        before = _tree(folder)
        code, stderr = _run(argv, folder, cache)
        _check(argv, code, stderr, folder, before)

    for argv in REGRESSIONS.get(command, ()):
        fuzz = example(argv=argv, with_out=False)(fuzz)
    fuzz()
