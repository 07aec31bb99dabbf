"""Open Question 3 of the NTK-LC paper as a study: the activations experiment's grid of
(activation, sparsity) tasks of one data set, run through the sweep layer (cached task by task,
in parallel) for ``ntklc experiment activations``. The task itself is
:func:`validation.experiments.activations.activation_accuracy`.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from nets.data import load_dataset
from ntk import parse_activations
from ntklc.errors import InputError
from validation.experiments.activations import (
    ACTIVATIONS,
    EPS_VALUES,
    QUICK_ACTIVATIONS,
    RULE,
    check_data_set,
)
from validation.sweeps import run_builtin_sweep

__all__ = ["ActivationsResult", "activations_experiment"]


@dataclass(frozen=True)
class ActivationsResult:
    """Accuracy of dense, NTK-LC and pruned networks per activation and sparsity.

    Attributes:
        rows: one dict per (activation, eps), activation-major: ``act``, ``eps``, ``seed``,
            the metrics of :func:`activation_accuracy` and the task's wall time ``seconds``.
        sweep: the summary of the sweep that ran the tasks (computed / cached counts).
    """

    data: str
    widths: tuple[int, ...]
    n_train: int
    n_test: int
    acts: tuple[str, ...]
    eps_values: tuple[float, ...]
    rows: tuple[dict, ...]
    rule: str
    seconds: float
    sweep: dict

    def as_dict(self) -> dict:
        return {"data": self.data, "widths": list(self.widths), "n_train": self.n_train,
                "n_test": self.n_test, "activations": list(self.acts),
                "eps": list(self.eps_values), "rule": self.rule, "rows": list(self.rows),
                "seconds": self.seconds, "sweep": self.sweep}


_ROW_KEYS = ("act", "eps", "seed")
_DROPPED = ("data", "quick", "data_dir", "status", "error", "worker", "n_train", "n_test",
            "widths")


def activations_experiment(data: str = "mnist", acts=None, eps_values=EPS_VALUES, *,
                           quick: bool = False, seed: int = 0, data_dir=None, out=None,
                           workers: int | None = None, progress: bool = False
                           ) -> ActivationsResult:
    """Run :func:`activation_accuracy` for every (activation, eps) as a sweep.

    Args:
        data: ``mnist`` or ``fashion-mnist``.
        acts: activations (default :data:`ACTIVATIONS`, :data:`QUICK_ACTIVATIONS` with
            ``quick``).
        eps_values: NTK-LC sparsities.
        quick: the task's small sizes.
        seed: seed of every network.
        data_dir: searched before ``NTKLC_DATA`` and the cache.
        out: folder of the sweep (results table, provenance and cache: rerunning with the same
            folder computes only the missing tasks); a temporary folder when ``None``.
        workers: local processes. Default: 1 with ``quick``, whose tasks take about a second
            and a second process would only repeat the NTK-LC solves (memoised per process);
            else the cores, at most 4 (a full-size task holds ~2 GB).
        progress: a progress bar over the tasks on stderr.

    Raises:
        InputError: unknown data set or activation, bad eps, repeated values.
        FileNotFoundError: the data set is not available.
        RuntimeError: a task failed (its error is in the message).
    """
    start = time.perf_counter()
    check_data_set(data)
    acts = tuple(acts) if acts else (QUICK_ACTIVATIONS if quick else ACTIVATIONS)
    parse_activations(list(acts))
    eps_values = tuple(float(e) for e in eps_values)
    bad = [e for e in eps_values if not (math.isfinite(e) and 0.0 <= e < 1.0)]
    if bad or not eps_values:
        raise InputError(f"eps values must lie in [0, 1), got {', '.join(map(str, bad))}")
    # Both splits are loaded once here: a missing data set is one clear error before any
    # worker starts, and a download happens once instead of in every worker.
    for split in ("train", "test"):
        load_dataset(data, split, data_dir)
    run = run_builtin_sweep({"experiment": "activations", "seeds": [int(seed)],
                             "fixed": {"data": data, "quick": bool(quick),
                                       "data_dir": "" if data_dir is None else str(data_dir)},
                             "grid": {"act": list(acts), "eps": list(eps_values)},
                             "plot": {"x": "eps", "y": "ntklc_accuracy", "hue": "act"}},
                            f"activations-{data}", out,
                            workers=workers or (1 if quick else _default_workers()),
                            progress=progress)
    first = run.rows[0]
    rows = tuple({**{k: row[k] for k in _ROW_KEYS},
                  **{k: v for k, v in row.items() if k not in _ROW_KEYS + _DROPPED}}
                 for row in run.rows)
    summary = {k: v for k, v in run.summary().items()
               if k in ("tasks", "computed", "cached", "seconds")}
    return ActivationsResult(data=data, widths=tuple(first["widths"]),
                             n_train=first["n_train"], n_test=first["n_test"], acts=acts,
                             eps_values=eps_values, rows=rows, rule=RULE,
                             seconds=time.perf_counter() - start, sweep=summary)


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
