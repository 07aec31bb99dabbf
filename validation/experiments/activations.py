"""Open Question 3 of the NTK-LC paper, measured: how the activation changes the accuracy of
the compressed network.

For each activation sigma of a list (relu, tanh, erf, gelu, swish, abs by default), the
random-features network of :mod:`validation.experiments.realdata` (784 -> 2000 -> 2000 ->
1000, sigma in every hidden layer, ridge readout on all 10 classes of MNIST or Fashion-MNIST)
is compared with, at each sparsity eps in {0, 0.9, 0.99}:

* ``ntk-lc``: ternary weights of sparsity eps and the quantized activations solved for sigma;
* ``pruned``: the dense weights magnitude-pruned to NTK-LC's hidden-layer memory at that eps
  (the rule of :mod:`validation.experiments.realdata`).

An activation whose NTK-LC equations have no solution at this depth is reported as
infeasible, with the solver's reason and the dense accuracy alone, not as an error.

One task per (data, activation, eps, seed): :func:`activation_accuracy` is the sweep task
``activations`` of :mod:`validation.experiments.tasks`;
:func:`validation.report.activations.activations_experiment` runs the grid of one data set
through the sweep layer for ``ntklc experiment activations``.
"""

from __future__ import annotations

from ntklc.errors import InputError
from validation.experiments.realdata import (
    InfeasibleCompressionError,
    ntklc_compression,
    ntklc_real_experiment,
)

__all__ = ["ACTIVATIONS", "DATA_SETS", "EPS_VALUES", "QUICK_ACTIVATIONS", "RULE",
           "activation_accuracy", "check_data_set"]

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


def check_data_set(data: str) -> str:
    """``data`` if the experiment runs on it; ValueError otherwise."""
    if data not in DATA_SETS:
        raise InputError(f"unknown data set {data!r} for the activations experiment; choose "
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
        InputError: unknown data set or activation, eps outside [0, 1).
    """
    check_data_set(data)
    if not 0.0 <= eps < 1.0:
        raise InputError(f"eps must lie in [0, 1), got {eps}")
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
