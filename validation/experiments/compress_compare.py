"""``ntklc experiment compress-compare``: accuracy against stored bytes for every method.

On one trained model (``nets`` MLP or CNN, trained here or loaded) and one calibration batch
of the training set:

* ``dense``: float32 weights and biases;
* ``pruning``: per layer, the largest-magnitude fraction f of weights kept (float32), the
  0/1 mask range coded;
* ``uniform``: nearest rounding to b bits per weight (one scale per output channel);
* ``llc``: knapsack bits inside the first-order neighbourhood + gradient-opposed rounding
  (``validation.experiments.llc``); its low-rank search (the smallest rank per layer inside the same
  neighbourhood, ``solvers.search_rank``) is reported in ``details["llc_rank"]``;
* ``cet``: curvature-driven knapsack bits + long-axis steered rounding
  (``validation.experiments.cet``);
* ``l2``: entropy-regularised fine-tuning of the unified pruning+quantization transform
  (``nets.l2``);
* ``rf-dense`` / ``ntk-lc``: the random-features setting of the NTK-LC paper with the same
  hidden widths (MLP) and a ridge readout (``validation.experiments.realdata``); their bytes count
  the hidden layers as coded by ``nets.memory`` plus the float32 readout.

Stored bytes (the rule of ``nets.quantized``): range-coded integers (``encode_integers``) of
each weight tensor + 4 bytes per scale and per bias; every code is decoded again and compared
bit for bit with what was encoded (``round_trip`` in each row).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np

from nets import Sequential
from nets.l2 import l2_compress
from nets.quantized import QuantizedModel, channel_axis, dense_bytes, weight_layers
from ntk.progress import progress_bar
from solvers import quantize_nearest, search_rank
from solvers.entropy import decode_integers, encode_integers
from validation.experiments.calibration import calibration_batch, calibration_loss, weight_gradients
from validation.experiments.cet import cet_compress, layer_curvatures
from validation.experiments.llc import llc_compress, loss_neighbourhood
from validation.experiments.train import fit_model, image_arrays

__all__ = ["CompareResult", "compress_compare"]

_FLOAT_BYTES = 4
RULE = ("stored bytes = range-coded integer weights (solvers.entropy.encode_integers, header "
        "and CRC included) + 4 bytes per float32 scale, bias or kept pruned weight; random "
        "features: coded hidden layers (nets.memory) + float32 readout")


@dataclass(frozen=True)
class CompareResult:
    """Rows of the comparison and what each method measured on the way.

    Attributes:
        rows: one dict per (method, setting) with ``accuracy``, ``bytes``, ``ratio`` (dense
            bytes / bytes), ``calibration_loss`` (``None`` for random features), ``bits``,
            ``round_trip`` (``None`` where nothing is coded here: the dense model, and the
            random-features rows, whose sizes come from ``nets.memory``).
        neighbourhood: ``validation.experiments.llc.NeighbourhoodResult.as_dict()``.
        details: per-method extras (allocations, rounding comparisons).
    """

    data: str
    model: str
    dense_accuracy: float
    dense_bytes: int
    rows: tuple[dict, ...]
    neighbourhood: dict
    details: dict = field(default_factory=dict)
    rule: str = RULE
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__, rows=list(self.rows))


def _row(method, setting, model: Sequential, nbytes: int, dense: int, X_test, y_test,
         calib=None, bits=None, round_trip=True) -> dict:
    accuracy = model.evaluate(X_test, y_test)[1]
    return {"method": method, "setting": setting, "accuracy": float(accuracy),
            "bytes": int(nbytes), "ratio": dense / nbytes,
            "calibration_loss": None if calib is None else calibration_loss(model, *calib),
            "bits": bits, "round_trip": None if round_trip is None else bool(round_trip)}


def _quantized_row(method, setting, q: QuantizedModel, dense, X_test, y_test, calib) -> dict:
    codes = q.encode()
    return _row(method, setting, q.to_sequential(), q.coded_bytes(codes), dense, X_test,
                y_test, calib, bits={str(i): b for i, b in q.bits().items()},
                round_trip=q.round_trip_exact(codes))


def _pruned_row(model: Sequential, keep: float, dense, X_test, y_test, calib) -> dict:
    out = copy.deepcopy(model)
    nbytes, exact = 0, True
    for i in weight_layers(model):
        W = out.layers[i].W
        k = max(1, round(keep * W.size))
        threshold = np.partition(np.abs(W).ravel(), W.size - k)[W.size - k]
        mask = (np.abs(W) >= threshold).astype(np.int8)
        W *= mask
        code = encode_integers(mask)
        exact &= bool(np.array_equal(decode_integers(code), mask))
        nbytes += len(code) + _FLOAT_BYTES * (int(mask.sum()) + out.layers[i].b.size)
    return _row("pruning", f"keep {keep:g}", out, nbytes, dense, X_test, y_test, calib,
                round_trip=exact)


def _l2_row(result, dense, X_test, y_test, calib) -> dict:
    decoded = result.decode()
    # The decoder sees only the codes, steps, dead zones and biases: it must rebuild the
    # fine-tuned model exactly.
    exact = all(np.array_equal(a.W, b.W) for a, b in zip(
        (decoded.layers[la.index] for la in result.layers),
        (result.model.layers[la.index] for la in result.layers), strict=True))
    return _row("l2", f"lam {result.settings['lam']:g}", decoded, result.coded_bytes, dense,
                X_test, y_test, calib, bits=None, round_trip=exact)


def _random_features_rows(data, hidden, n_train, data_dir, seed, dense) -> list[dict]:
    from validation.experiments.realdata import ntklc_real_experiment

    r = ntklc_real_experiment(data, widths=tuple(hidden), eps_values=(0.9, 0.99), bits=(),
                              n_train=n_train, data_dir=data_dir, seed=seed)
    rows = []
    for row in r.rows:
        if row["method"] not in ("dense", "ntk-lc"):
            continue
        nbytes = int(np.ceil(row["total_bits"] / 8))
        rows.append({"method": "rf-dense" if row["method"] == "dense" else "ntk-lc",
                     "setting": f"{'-'.join(map(str, hidden))} {row['setting']}",
                     "accuracy": row["accuracy"]["all 10"], "bytes": nbytes,
                     "ratio": dense / nbytes, "calibration_loss": None, "bits": None,
                     # Sizes from nets.memory's coder; no tensor of this model is coded here.
                     "round_trip": None})
    return rows


def compress_compare(data: str = "mnist", model: str = "mlp", *, quick: bool = False,
                     model_path: str | None = None, epochs: int | None = None,
                     calibration: int | None = None, curvature_samples: int = 512,
                     keep=(0.5, 0.2, 0.1, 0.05),
                     uniform_bits=(2, 3, 4, 8), llc_bits=(5.0, 6.0), cet_bits=(2.5, 3.0, 4.0),
                     l2_lams=None, random_features: bool = True, seed: int = 0,
                     data_dir=None, progress: bool = True) -> CompareResult:
    """Run every method on one trained model (module docstring).

    Args:
        data: ``mnist`` or ``fashion-mnist`` (or ``cifar-10``).
        model: ``mlp`` (784-1024-1024-10) or ``cnn`` (``nets.small_cnn``).
        quick: a smoke-test size: 10000 training images, MLP 256-256, 2000 test images,
            2 epochs, small calibration batch and random-features widths.
        model_path: a model saved by ``ntklc train --out``, instead of training here.
        epochs: training epochs (default 10, quick 2).
        calibration: calibration batch size (default 2048, quick 512).
        curvature_samples: the first samples of the calibration batch over which Hessian-vector
            products are taken (the neighbourhood's measured and predicted changes, CET's
            curvature): each product is a forward and backward pass in float64.
        keep, uniform_bits, llc_bits, cet_bits: the settings of each method (bits are
            averages per weight for LLC and CET).
        l2_lams: entropy weights of L2 (default: those of ``nets.l2``'s default).
        random_features: add the NTK-LC random-features rows.
    """
    start = time.perf_counter()
    # A bad model file should fail before the data are read.
    net = None if model_path is None else Sequential.load(model_path)
    Xtr, ytr, Xte, yte, classes = image_arrays(data, model, data_dir)
    hidden = (256, 256) if quick else (1024, 1024)
    if quick:
        Xtr, ytr, Xte, yte = Xtr[:10000], ytr[:10000], Xte[:2000], yte[:2000]
    if net is None:
        net, _ = fit_model(Xtr, ytr, classes, model, hidden=hidden,
                           epochs=epochs or (2 if quick else 10), seed=seed,
                           progress=progress)
    calib = calibration_batch(Xtr, ytr, calibration or (512 if quick else 2048), seed)
    dense = dense_bytes(net)
    rows = [_row("dense", "float32", net, dense, dense, Xte, yte, calib, round_trip=None)]
    details: dict = {}
    steps = progress_bar(total=6, desc="methods", disable=not progress)
    # Each stage can take minutes on the full models: say which one is running.
    steps.set_postfix_str("pruning, uniform")
    for f in keep:
        rows.append(_pruned_row(net, f, dense, Xte, yte, calib))
    for b in uniform_bits:
        q = QuantizedModel(net, {i: quantize_nearest(net.layers[i].W, b,
                                                     channel_axis(net.layers[i]))
                                 for i in weight_layers(net)})
        rows.append(_quantized_row("uniform", f"{b} bit", q, dense, Xte, yte, calib))
    steps.update()
    steps.set_postfix_str("LLC neighbourhood")
    hessian_batch = (calib[0][:curvature_samples], calib[1][:curvature_samples])
    neighbourhood = loss_neighbourhood(net, *hessian_batch, draws=2 if quick else 4, seed=seed)
    steps.update()
    steps.set_postfix_str("LLC bits and ranks")
    details["llc"] = {}
    for b in llc_bits:
        try:
            r = llc_compress(net, *calib, b)
        except ValueError as err:
            details["llc"][f"{b:g}"] = {"error": str(err)}
            continue
        rows.append(_quantized_row("llc", f"{b:g} bit avg", r.quantized, dense, Xte, yte,
                                   calib))
        nearest = _quantized_row("llc-nearest", f"{b:g} bit avg", r.nearest, dense, Xte,
                                 yte, calib)
        details["llc"][f"{b:g}"] = {
            "bits": {str(k): v for k, v in r.bits.items()},
            "predicted_first_order_change": r.predicted_change,
            # None: kappa = inf, i.e. nearest rounding had the lowest calibration loss.
            "kappa": None if math.isinf(r.kappa) else r.kappa,
            "calibration_loss_nearest": r.nearest_loss,
            "calibration_loss_gradient_opposed": r.opposed_loss,
            "loss_by_kappa": {f"{k:g}": v for k, v in r.loss_by_kappa.items()},
            "nearest_accuracy": nearest["accuracy"], "nearest_bytes": nearest["bytes"]}
    # LLC low rank: the smallest rank of each layer inside the same neighbourhood (one SVD).
    grads = weight_gradients(net, *calib)
    details["llc_rank"] = {}
    for i in weight_layers(net):
        # A convolution is the matrix (out, in k k) of its im2col product.
        W, G = (a.reshape(a.shape[0], -1) for a in (net.layers[i].W, grads[i]))
        r = search_rank(W, G, tolerance=math.inf, max_relative_noise=0.2)
        details["llc_rank"][str(i)] = {
            "rank": r.rank, "full_rank": r.full_rank,
            "factor_entries_over_weights": r.parameters / net.layers[i].W.size,
            "predicted_change": r.predicted_change, "relative_noise": r.relative_noise}
    steps.update()
    steps.set_postfix_str("CET curvature")
    curvatures = layer_curvatures(net, *hessian_batch, k=4 if quick else 8, seed=seed)
    details["cet"] = {"mean_curvature": {str(i): c.mean_curvature
                                         for i, c in curvatures.items()},
                      "top_eigenvalues": {str(i): c.top_values.tolist()
                                          for i, c in curvatures.items()}}
    for b in cet_bits:
        r = cet_compress(net, *calib, b, curvatures=curvatures)
        rows.append(_quantized_row("cet", f"{b:g} bit avg", r.steered, dense, Xte, yte, calib))
        plain = _quantized_row("cet-plain", f"{b:g} bit avg", r.nearest, dense, Xte, yte,
                               calib)
        rows.append(plain)
        details["cet"][f"{b:g}"] = {"bits": {str(k): v for k, v in r.bits.items()},
                                    "predicted_increase": r.predicted_increase,
                                    "calibration_loss_plain": r.nearest_loss,
                                    "calibration_loss_steered": r.steered_loss}
    steps.update()
    steps.set_postfix_str("L2")
    details["l2"] = {}
    for lam in (l2_lams if l2_lams is not None else (None,)):
        kwargs = {} if lam is None else {"lam": lam}
        r = l2_compress(net, Xtr, ytr, rng=seed, progress=progress, **kwargs)
        rows.append(_l2_row(r, dense, Xte, yte, calib))
        details["l2"][rows[-1]["setting"]] = r.summary()
    steps.update()
    steps.set_postfix_str("NTK-LC random features")
    if random_features and model == "mlp":
        rows += _random_features_rows(data, hidden, 5000 if quick else None, data_dir, seed,
                                      dense)
    steps.update()
    steps.close()
    return CompareResult(data=data, model=model, dense_accuracy=rows[0]["accuracy"],
                         dense_bytes=dense, rows=tuple(rows),
                         neighbourhood=neighbourhood.as_dict(), details=details,
                         seconds=time.perf_counter() - start)
