"""Sweep specifications: one experiment, fixed arguments, grid axes and seeds.

A spec is a TOML file::

    experiment = "convergence"      # a name of validation.experiments.tasks.EXPERIMENTS
    name = "relu-tanh"              # optional; default: the file's stem
    seeds = 5                       # seeds 0..4, or an explicit list [0, 7, 11]
    threads = 1                     # BLAS / Numba threads of each task (default 1)

    [fixed]                         # arguments shared by every task
    kernel = "ck"

    [grid]                          # axes: lists; the sweep is their product
    act = ["relu", "tanh"]
    layers = [1, 2, 3]
    n = [200, 400, 800, 1600]

    [plot]                          # optional defaults of `ntklc plot`
    x = "n"
    y = "error"
    hue = "act"

Every value is checked against the experiment's declared parameters before any task runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ntklc.errors import InputError
from validation.experiments.tasks import EXPERIMENTS, experiment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["SpecError", "SweepSpec", "Task", "load_spec", "parse_spec"]

_TOP_KEYS = {"experiment", "name", "description", "seeds", "threads", "fixed", "grid", "plot"}
_PLOT_KEYS = {"x", "y", "hue"}


class SpecError(InputError):
    """A spec that cannot run; the message is one line that says why."""


@dataclass(frozen=True)
class Task:
    """One experiment run: parameters (every declared one, defaults filled in) and a seed.

    ``key`` identifies the result in the cache: the SHA-256 of the experiment's name, its code
    version, the parameters and the seed in canonical JSON.
    """

    experiment: str
    params: dict
    seed: int
    version: str

    @property
    def key(self) -> str:
        blob = json.dumps({"experiment": self.experiment, "version": self.version,
                           "params": self.params, "seed": self.seed}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def label(self, axes=None) -> str:
        """``convergence[act=relu, n=400, seed=1]`` (only ``axes`` among the parameters)."""
        names = self.params if axes is None else axes
        inner = ", ".join(f"{k}={self.params[k]}" for k in names)
        return f"{self.experiment}[{inner}{', ' if inner else ''}seed={self.seed}]"


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, checked spec. ``tasks()`` lists the product of the grid and the seeds."""

    experiment: str
    name: str
    fixed: dict
    grid: dict[str, list]
    seeds: tuple[int, ...]
    threads: int = 1
    plot: dict = field(default_factory=dict)
    description: str = ""
    source: dict = field(default_factory=dict)

    def tasks(self) -> list[Task]:
        """Tasks in grid order (last axis fastest), seeds innermost."""
        exp = EXPERIMENTS[self.experiment]
        base = {k: p.default for k, p in exp.params.items()} | self.fixed
        axes = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[a] for a in axes)):
            params = base | dict(zip(axes, values, strict=True))
            out += [Task(self.experiment, params, s, exp.version) for s in self.seeds]
        return out


def _fail(where: str, message: str) -> SpecError:
    return SpecError(f"{where}: {message}")


def parse_spec(raw: dict, name: str = "sweep", where: str = "spec") -> SweepSpec:
    """Check a spec given as a dict (the parsed TOML) and return it.

    Raises:
        SpecError: unknown experiment, key or parameter; an empty or non-list axis; a value of
            the wrong type; bad seeds or threads.
    """
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(sorted(unknown))}; allowed: "
                    f"{', '.join(sorted(_TOP_KEYS))}")
    if "experiment" not in raw:
        raise _fail(where, f"no 'experiment'; available: {', '.join(EXPERIMENTS)}")
    if not isinstance(raw["experiment"], str):
        raise _fail(where, "'experiment' must be a string")
    try:
        exp = experiment(raw["experiment"])
    except ValueError as exc:
        raise _fail(where, str(exc)) from None
    fixed, grid = raw.get("fixed", {}), raw.get("grid", {})
    for table, value in (("fixed", fixed), ("grid", grid), ("plot", raw.get("plot", {}))):
        if not isinstance(value, dict):
            raise _fail(where, f"[{table}] must be a table")
    known = ", ".join(exp.params)
    checked_fixed, checked_grid = {}, {}
    for key, value in fixed.items():
        if key not in exp.params:
            raise _fail(where, f"unknown parameter {key!r} of experiment {exp.name} in "
                        f"[fixed]; known: {known}")
        try:
            checked_fixed[key] = exp.params[key].check(key, value)
        except TypeError as exc:
            raise _fail(where, f"[fixed] {exc}") from None
    for key, values in grid.items():
        if key not in exp.params:
            raise _fail(where, f"unknown axis {key!r} of experiment {exp.name}; known: {known}")
        if key in fixed:
            raise _fail(where, f"{key!r} is both fixed and a grid axis")
        if not isinstance(values, list):
            raise _fail(where, f"axis {key!r} must be a list, got {values!r}")
        if not values:
            raise _fail(where, f"axis {key!r} is empty: the grid has no tasks")
        try:
            checked_grid[key] = [exp.params[key].check(key, v) for v in values]
        except TypeError as exc:
            raise _fail(where, f"axis {exc}") from None
        if len({json.dumps(v) for v in checked_grid[key]}) != len(values):
            raise _fail(where, f"axis {key!r} repeats a value")
    seeds = raw.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise _fail(where, f"'seeds' must be >= 1, got {seeds}")
        seeds = tuple(range(seeds))
    elif isinstance(seeds, list) and seeds and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        if len(set(seeds)) != len(seeds):
            raise _fail(where, "'seeds' repeats a seed")
        seeds = tuple(seeds)
    else:
        raise _fail(where, f"'seeds' must be a positive integer or a non-empty list of "
                    f"non-negative integers, got {seeds!r}")
    threads = raw.get("threads", 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise _fail(where, f"'threads' must be a positive integer, got {threads!r}")
    plot = raw.get("plot", {})
    bad = set(plot) - _PLOT_KEYS
    if bad or not all(isinstance(v, str) for v in plot.values()):
        raise _fail(where, f"[plot] takes string values for {', '.join(sorted(_PLOT_KEYS))}")
    for key in ("name", "description"):
        if not isinstance(raw.get(key, ""), str):
            raise _fail(where, f"'{key}' must be a string")
    return SweepSpec(experiment=exp.name, name=raw.get("name", name), fixed=checked_fixed,
                     grid=checked_grid, seeds=seeds, threads=threads, plot=dict(plot),
                     description=raw.get("description", ""), source=raw)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a TOML spec file.

    Raises:
        SpecError: a missing or malformed file, or any problem of :func:`parse_spec`.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: malformed TOML: {exc}") from None
    return parse_spec(raw, name=path.stem, where=str(path))
