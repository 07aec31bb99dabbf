"""Run a sweep: look every task up in the cache, run the missing ones, write the table.

Nothing is lost and nothing is recomputed: each finished task is stored in the cache as soon as
its outcome arrives, so an interrupted sweep (Ctrl-C, ``kill -9``, a lost worker) resumes with
the tasks still missing, and a sweep with a changed axis runs only its new tasks. Failed tasks
are cached as failed and rerun only with ``retry_failed``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ntk.progress import progress_bar
from ntklc.errors import InputError, RunError
from validation.sweeps.cache import CorruptEntryError, TaskCache
from validation.sweeps.executors import dask_tasks, local_tasks
from validation.sweeps.provenance import provenance
from validation.sweeps.results import results_row, write_results
from validation.sweeps.spec import SweepSpec, parse_spec

__all__ = ["SweepRun", "run_builtin_sweep", "run_sweep"]

logger = logging.getLogger(__name__)


@dataclass
class SweepRun:
    """What a sweep did.

    Attributes:
        rows: one table row per task that has an outcome, in task order.
        computed, cached: task labels run now / read from the cache.
        failed: ``(label, error)`` of every failed task.
        corrupt: cache files found corrupt (and recomputed).
        missing: labels of tasks without an outcome (an interrupted run).
    """

    spec: SweepSpec
    out: Path
    rows: list[dict] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"sweep": self.spec.name, "experiment": self.spec.experiment,
                "out": str(self.out), "tasks": len(self.rows) + len(self.missing),
                "computed": len(self.computed), "cached": len(self.cached),
                "failed": [{"task": t, "error": e} for t, e in self.failed],
                "corrupt": self.corrupt, "missing": self.missing,
                "complete": not self.missing, "seconds": self.seconds,
                "results": str(self.out / "results.csv")}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_sweep(spec: SweepSpec, out: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, cache: str | Path | None = None,
              retry_failed: bool = False, progress: bool = True) -> SweepRun:
    """Run ``spec`` and write ``out/results.csv``, ``results.json`` and ``provenance.json``.

    Args:
        spec: a checked spec.
        out: output folder.
        workers: local processes (default: cores / threads per task); ignored with
            ``scheduler``.
        scheduler: address of a dask.distributed scheduler, e.g. ``tcp://10.0.0.1:8786``.
        cache: cache folder (default ``out/cache``).
        retry_failed: rerun the tasks cached as failed.
        progress: a progress bar on stderr.

    Returns:
        :class:`SweepRun`. A ``KeyboardInterrupt`` stops the run after writing the table of
        what finished; it is then re-raised.
    """
    start_clock, started = time.perf_counter(), _now()
    out = Path(out)
    store = TaskCache(Path(cache) if cache is not None else out / "cache")
    # Each task runs spec.threads threads: by default fill the cores, no more.
    workers = workers or max(1, (os.cpu_count() or 1) // spec.threads)
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    tasks = spec.tasks()
    axes = list(spec.grid)
    labels = [t.label(axes) for t in tasks]
    run = SweepRun(spec=spec, out=out)
    entries: list[dict | None] = [None] * len(tasks)
    for i, task in enumerate(tasks):
        try:
            entries[i] = store.load(task)
        except CorruptEntryError as exc:
            run.corrupt.append(str(exc))
            logger.warning("corrupt cache entry, recomputing %s: %s", labels[i], exc)
    todo = [i for i, e in enumerate(entries)
            if e is None or (retry_failed and e["status"] == "failed")]
    rerun = set(todo)
    run.cached = [labels[i] for i, e in enumerate(entries) if e is not None and i not in rerun]
    where = scheduler or f"{workers} local worker{'s' * (workers > 1)}"
    bar = progress_bar(total=len(todo), desc=f"sweep {spec.name}", unit="task",
                       disable=not progress, dynamic_ncols=True)
    failed_now = 0

    def status(left: int) -> str:
        # A dask cluster's size is its own business: count running tasks only locally.
        running = "" if scheduler else f", running {min(workers, left)}"
        return f"cached {len(run.cached)}{running}, failed {failed_now}"

    bar.set_postfix_str(status(len(todo)))
    todo_tasks = [tasks[i] for i in todo]
    stream = (dask_tasks(todo_tasks, scheduler, spec.threads) if scheduler
              else local_tasks(todo_tasks, workers, spec.threads))
    try:
        for j, outcome in stream:
            i = todo[j]
            entries[i] = store.store(tasks[i], outcome)
            run.computed.append(labels[i])
            failed_now += outcome["status"] == "failed"
            bar.update()
            bar.set_postfix_str(status(bar.total - bar.n))
    finally:
        stream.close()  # on an interruption: cancel the queued tasks before writing the table
        bar.close()
        order = axes + [k for k in tasks[0].params if k not in axes] if tasks else []
        run.rows = [results_row(e, order) for e in entries if e is not None]
        run.failed = [(labels[i], e["error"]) for i, e in enumerate(entries)
                      if e is not None and e["status"] == "failed"]
        run.missing = [labels[i] for i, e in enumerate(entries) if e is None]
        run.seconds = time.perf_counter() - start_clock
        meta = {"sweep": spec.name, "experiment": spec.experiment, "axes": axes,
                "params": list(tasks[0].params) if tasks else [],
                "seeds": list(spec.seeds), "plot": spec.plot, "complete": not run.missing}
        write_results(run.rows, out, meta)
        record = provenance(start=started, end=_now(), seconds=run.seconds, executor=where,
                            threads_per_task=spec.threads, cache=str(store.root),
                            spec=spec.source, counts={k: v for k, v in run.summary().items()
                                                      if k in ("tasks", "computed", "cached",
                                                               "complete")})
        (out / "provenance.json").write_text(json.dumps(record, indent=1) + "\n")
    return run


def run_builtin_sweep(raw: dict, name: str, out: str | Path | None = None, *,
                      workers: int | None = None, progress: bool = False) -> SweepRun:
    """Run a spec an experiment command builds (a dict, as the parsed TOML), in ``out`` (cached
    there, so a rerun resumes) or in a temporary folder.

    Raises:
        RuntimeError: a task failed (the first failure's label and error in the message).
    """
    spec = parse_spec(raw, name=name)
    with tempfile.TemporaryDirectory(prefix=f"ntklc-{name}-") as scratch:
        run = run_sweep(spec, Path(out) if out is not None else Path(scratch), workers=workers,
                        progress=progress)
    if run.failed:
        label, error = run.failed[0]
        raise RunError(f"task {label} failed: {error}")
    return run
