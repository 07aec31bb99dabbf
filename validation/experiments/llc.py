"""LLC (seed 001): the total-differential error neighbourhood, knapsack mixed precision and
gradient-opposed rounding, on a trained ``nets`` model.

* ``loss_neighbourhood``: weight noise n of relative size sigma (n_l = sigma rms(W_l) z,
  z ~ N(0, I), every weight layer at once) changes the calibration loss by dL; the total
  differential predicts g . n, the second-order model g . n + 1/2 n^T H n (exact Hessian-vector
  products). The first-order neighbourhood ends at the first sigma where the prediction is off
  by more than half the measured change.
* ``llc_compress``: one bit width per layer from ``bits`` by the grouped knapsack
  (``solvers.allocate_bits``): value = predicted first-order change g_l . n_l(b) of nearest
  rounding, allowed only inside the neighbourhood ||n_l|| <= max_relative_noise ||W_l||;
  weight = b bits per weight + 32 per scale; budget = ``average_bits`` per weight. The weights
  are then rounded against the gradient taken at the nearest-rounded model, with the
  curvature guard h_l = kappa max|g_l| / mean(s_l) (the rounding threshold of an entry moves by
  at most 1/kappa of a step); kappa is chosen on the calibration loss from a grid that includes
  kappa = inf (nearest rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nets import Sequential
from nets.curvature import LossCurvature
from nets.quantized import QuantizedModel, channel_axis, weight_layers
from ntk.progress import progress_bar
from ntklc.errors import InputError
from solvers import allocate_bits, grid_scale, quantize_gradient_opposed, quantize_nearest
from validation.experiments.calibration import (
    calibration_loss,
    nearest_rounding_table,
    weight_gradients,
    with_weights,
)

__all__ = ["LLCResult", "NeighbourhoodResult", "llc_compress", "loss_neighbourhood"]

#: Relative noise sizes of ``loss_neighbourhood``: 1e-4 to 1, two per decade.
SIZES = tuple(float(s) for s in np.logspace(-4, 0, 9))
KAPPAS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, math.inf)


@dataclass(frozen=True)
class NeighbourhoodResult:
    """Measured and predicted loss changes over the noise size (means over draws).

    Attributes:
        sizes: (S,) relative noise sizes sigma.
        measured, first_order, second_order: (S, draws) loss changes.
        neighbourhood_end: the first sigma where |measured - first order| > |measured| / 2 in
            the mean over draws (``nan`` if none).
    """

    sizes: np.ndarray
    measured: np.ndarray
    first_order: np.ndarray
    second_order: np.ndarray
    base_loss: float
    neighbourhood_end: float

    def as_dict(self) -> dict:
        return {"sizes": self.sizes.tolist(), "measured": self.measured.tolist(),
                "first_order": self.first_order.tolist(),
                "second_order": self.second_order.tolist(), "base_loss": self.base_loss,
                "neighbourhood_end": (None if math.isnan(self.neighbourhood_end)
                                      else self.neighbourhood_end)}


def loss_neighbourhood(model: Sequential, X: np.ndarray, y: np.ndarray,
                       sizes=SIZES, draws: int = 4, seed: int = 0,
                       progress: bool = False) -> NeighbourhoodResult:
    """Measured vs first- and second-order loss change under weight noise (module docstring).

    Args:
        model: a trained model; X, y: the calibration batch.
        sizes: relative noise sizes sigma > 0.
        draws: noise draws per size.
    """
    sizes = np.asarray(sizes, dtype=float)
    if sizes.ndim != 1 or sizes.size == 0 or np.any(sizes <= 0):
        raise InputError("sizes must be a non-empty list of positive numbers")
    if draws < 1:
        raise InputError(f"draws must be positive, got {draws}")
    layers = weight_layers(model)
    base = calibration_loss(model, X, y)
    grads = weight_gradients(model, X, y)
    curvature = LossCurvature(model, X, y, layers=layers)
    rng = np.random.default_rng(seed)
    measured, first, second = (np.empty((sizes.size, draws)) for _ in range(3))
    with progress_bar(total=sizes.size * draws, desc="noise sizes", disable=not progress) as bar:
        for a, sigma in enumerate(sizes):
            for d in range(draws):
                noise = {i: sigma * np.sqrt(np.mean(np.square(model.layers[i].W, dtype=float)))
                         * rng.standard_normal(model.layers[i].W.shape) for i in layers}
                noisy = with_weights(model, {i: model.layers[i].W + noise[i] for i in layers})
                measured[a, d] = calibration_loss(noisy, X, y) - base
                first[a, d] = sum(float(np.sum(grads[i] * noise[i])) for i in layers)
                v = curvature.flatten([noise[i] if kind == "W" else np.zeros(shape)
                                       for i, kind, shape in _blocks(model, layers)])
                second[a, d] = first[a, d] + 0.5 * float(v @ curvature.hvp(v))
                bar.update()
    off = np.abs(measured.mean(1) - first.mean(1)) > 0.5 * np.abs(measured.mean(1))
    end = float(sizes[np.argmax(off)]) if off.any() else math.nan
    return NeighbourhoodResult(sizes=sizes, measured=measured, first_order=first,
                               second_order=second, base_loss=base, neighbourhood_end=end)


def _blocks(model, layers):
    """(layer, "W" | "b", shape) in the parameter order of ``LossCurvature``."""
    for i in layers:
        yield i, "W", model.layers[i].W.shape
        yield i, "b", model.layers[i].b.shape


@dataclass(frozen=True)
class LLCResult:
    """Outcome of :func:`llc_compress`.

    Attributes:
        quantized: the gradient-opposed rounding at the chosen bits.
        nearest: nearest rounding at the same bits (the comparison at equal bits).
        bits: layer index -> bit width.
        predicted_change: summed first-order prediction of the allocation.
        kappa: the chosen guard (inf: nearest rounding was best).
        loss_by_kappa: calibration loss of every kappa tried.
        nearest_loss, opposed_loss: calibration losses.
    """

    quantized: QuantizedModel
    nearest: QuantizedModel
    bits: dict
    predicted_change: float
    kappa: float
    loss_by_kappa: dict
    nearest_loss: float
    opposed_loss: float


def llc_compress(model: Sequential, X: np.ndarray, y: np.ndarray, average_bits: float, *,
                 bits=tuple(range(2, 9)), max_relative_noise: float = 0.2,
                 kappas=KAPPAS) -> LLCResult:
    """LLC mixed precision and gradient-opposed rounding (module docstring).

    Args:
        model: a trained model; X, y: the calibration batch.
        average_bits: budget in bits per weight (scales included).
        bits: the bit widths a layer may take.
        max_relative_noise: the weight neighbourhood ||n|| / ||W|| of the first-order model.
        kappas: guards tried for the rounding.

    Raises:
        InputError: no allocation fits the budget inside the neighbourhood.
    """
    if not average_bits > 0:
        raise InputError(f"average_bits must be positive, got {average_bits}")
    grads = weight_gradients(model, X, y)
    layers, sizes, noise = nearest_rounding_table(model, bits)
    values = np.full(sizes.shape, np.inf)
    for row, i in enumerate(layers):
        for col, b in enumerate(bits):
            n = noise[(i, b)]
            if np.linalg.norm(n) <= max_relative_noise * np.linalg.norm(model.layers[i].W):
                values[row, col] = float(np.sum(grads[i] * n))
    n_weights = sum(model.layers[i].W.size for i in layers)
    try:
        choice = allocate_bits(values, sizes, int(average_bits * n_weights))
    except ValueError as err:
        raise InputError(f"LLC: no allocation of {average_bits} bits per weight stays inside "
                         f"the neighbourhood (max relative noise {max_relative_noise}): "
                         f"{err}") from None
    chosen = {i: int(bits[c]) for i, c in zip(layers, choice.choice, strict=True)}
    nearest = QuantizedModel(model, {i: quantize_nearest(model.layers[i].W, chosen[i],
                                                         channel_axis(model.layers[i]))
                                     for i in layers})
    nearest_model = nearest.to_sequential()
    g_near = weight_gradients(nearest_model, X, y)
    candidates, losses = {}, {}
    for kappa in kappas:
        tensors = {}
        for i in layers:
            layer = model.layers[i]
            scale = grid_scale(layer.W, chosen[i], channel_axis(layer))
            h = (math.inf if math.isinf(kappa)
                 else kappa * np.max(np.abs(g_near[i])) / float(np.mean(scale)))
            tensors[i] = quantize_gradient_opposed(layer.W, g_near[i], chosen[i],
                                                   curvature=h, channel_axis=channel_axis(layer))
        candidates[kappa] = QuantizedModel(model, tensors)
        losses[kappa] = calibration_loss(candidates[kappa].to_sequential(), X, y)
    best = min(losses, key=losses.get)
    return LLCResult(quantized=candidates[best], nearest=nearest, bits=chosen,
                     predicted_change=float(choice.value), kappa=best,
                     loss_by_kappa=losses, nearest_loss=calibration_loss(nearest_model, X, y),
                     opposed_loss=losses[best])
