"""Open Question 3 of the NTK-LC paper, measured: how the activation changes the accuracy of
the compressed network.

For each activation sigma of a list (relu, tanh, erf, gelu, swish, abs by default), the
random-features network of :mod:`validation.realdata` (784 -> 2000 -> 2000 -> 1000, sigma in
every hidden layer, ridge readout on all 10 classes of MNIST or Fashion-MNIST) is compared
with, at each sparsity eps in {0, 0.9, 0.99}:

* ``ntk-lc``: ternary weights of sparsity eps and the quantized activations solved for sigma;
* ``pruned``: the dense weights magnitude-pruned to NTK-LC's hidden-layer memory at that eps
  (the rule of :mod:`validation.realdata`).

An activation whose NTK-LC equations have no solution at this depth is reported as
infeasible, with the solver's reason and the dense accuracy alone, not as an error.

One task per (data, activation, eps, seed): :func:`activation_accuracy` is the sweep task
``activations`` of :mod:`validation.tasks`, and :func:`activations_experiment` runs the grid
of one data set through the sweep layer (cached task by task, in parallel) for
``ntklc experiment activations``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from nets.data import load_dataset
from ntk import parse_activations
from validation.realdata import (
    InfeasibleCompressionError,
    ntklc_compression,
    ntklc_real_experiment,
)

__all__ = ["ACTIVATIONS", "DATA_SETS", "EPS_VALUES", "QUICK_ACTIVATIONS", "ActivationsResult",
           "activation_accuracy", "activations_experiment"]

ACTIVATIONS = ("relu", "tanh", "erf", "gelu", "swish", "abs")
#: The activations of ``--quick``: the two whose NTK-LC solve takes seconds (gelu's takes
#: ~40 s, swish's ~25 s before it fails).
QUICK_ACTIVATIONS = ("relu", "tanh")
EPS_VALUES = (0.0, 0.9, 0.99)
DATA_SETS = ("mnist", "fashion-mnist")
#: (hidden widths, training images; None: all 60000) of the full and the quick run.
_SIZES = {False: ((2000, 2000, 1000), None), True: ((200, 200, 100), 2000)}
_TASK = "all 10"
RULE = ("memory factor = dense hidden-layer bits (32 per weight + one float32 per layer) / "
        "NTK-LC hidden-layer bits (bytes written by the entropy coder + quantized-activation "
        "parameters, nets.memory); pruned: the dense network's largest-magnitude fraction f of "
        "weights, 32 f + h(f) bits per weight = NTK-LC's coded bits per weight; accuracy: "
        "ridge readout on all 10 classes, test set")


def _check_data(data: str) -> str:
    if data not in DATA_SETS:
        raise ValueError(f"unknown data set {data!r} for the activations experiment; choose "
                         f"from {', '.join(DATA_SETS)}")
    return data


def activation_accuracy(data: str, act: str, eps: float, *, quick: bool = False,
                        seed: int = 0, data_dir=None) -> dict:
    """Dense, NTK-LC and matched-memory pruned accuracy of one activation at one sparsity.

    Args:
        data: ``mnist`` or ``fashion-mnist``.
        act: activation of every hidden layer.
        eps: sparsity of NTK-LC's ternary weights, in [0, 1).
        quick: widths 200-200-100 and 2000 training images (all 10000 test images).
        seed: seed of every random network.
        data_dir: searched before ``NTKLC_DATA`` and the cache.

    Returns:
        Flat metrics: ``dense_accuracy``, ``ntklc_accuracy``, ``pruned_accuracy``,
        ``memory_factor``, ``pruned_keep`` (kept fraction of the dense weights), ``feasible``,
        ``infeasible_reason`` (the solver's message, ``""`` when feasible), ``levels`` (output
        levels of each quantized activation), ``delta`` (mismatch of the last layer's variance),
        ``n_train``, ``n_test``, ``widths``. The NTK-LC and pruning entries are ``None`` when
        NTK-LC is infeasible.

    Raises:
        ValueError: unknown data set or activation, eps outside [0, 1).
    """
    _check_data(data)
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must lie in [0, 1), got {eps}")
    widths, n_train = _SIZES[bool(quick)]
    acts = [act] * len(widths)
    try:
        solved, reason = ntklc_compression(acts), ""
    except InfeasibleCompressionError as exc:
        solved, reason = None, str(exc)
    r = ntklc_real_experiment(data, widths=widths, eps_values=(eps,) if solved else (),
                              bits=(), n_train=n_train, act=act, tasks=(_TASK,),
                              data_dir=data_dir, seed=seed)
    rows = {row["method"]: row for row in r.rows}
    metrics = {"dense_accuracy": rows["dense"]["accuracy"][_TASK], "ntklc_accuracy": None,
               "pruned_accuracy": None, "memory_factor": None, "pruned_keep": None,
               "feasible": solved is not None, "infeasible_reason": reason, "levels": None,
               "delta": None, "n_train": r.n_train, "n_test": r.n_test,
               "widths": list(r.widths)}
    if solved is not None:
        metrics |= {"ntklc_accuracy": rows["ntk-lc"]["accuracy"][_TASK],
                    "pruned_accuracy": rows["pruning"]["accuracy"][_TASK],
                    "memory_factor": rows["ntk-lc"]["factor"],
                    "pruned_keep": rows["pruning"]["keep"],
                    "levels": [layer.step.n_levels for layer in solved.layers],
                    "delta": solved.delta}
    return metrics


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
        ValueError: unknown data set or activation, bad eps, repeated values.
        FileNotFoundError: the data set is not available.
        RuntimeError: a task failed (its error is in the message).
    """
    from validation.sweeps import run_builtin_sweep

    start = time.perf_counter()
    _check_data(data)
    acts = tuple(acts) if acts else (QUICK_ACTIVATIONS if quick else ACTIVATIONS)
    parse_activations(list(acts))
    eps_values = tuple(float(e) for e in eps_values)
    bad = [e for e in eps_values if not (math.isfinite(e) and 0.0 <= e < 1.0)]
    if bad or not eps_values:
        raise ValueError(f"eps values must lie in [0, 1), got {', '.join(map(str, bad))}")
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
