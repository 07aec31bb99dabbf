"""CET (seed 003): curvature-driven bit allocation and long-axis steering on a trained model.

For each weight layer l (its block of the loss Hessian, exact Hessian-vector products from
``nets.curvature``):

* the mean curvature t_l = tr(H_l) / n_l by Hutchinson's estimator;
* the top-k eigenvectors U_l (Ritz vectors of a fixed number of Lanczos steps): the "short
  axes", along which the loss rises fastest.

Uniform b-bit rounding noise of a layer, spread evenly over directions, raises the loss by
about 1/2 t_l ||n_l(b)||^2; these predictions are the knapsack values (weight = b bits per
weight + 32 per scale, budget = ``average_bits`` per weight), so flat layers get fewer bits.
At the allocated bits, the rounding noise is then steered out of span(U_l) into the long-axis
(low-curvature) subspace (``solvers.quantize_steered``) and compared with plain nearest
rounding at the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nets import Sequential
from nets.curvature import LossCurvature
from nets.quantized import QuantizedModel, channel_axis, weight_layers
from ntk.progress import progress_bar
from ntklc.errors import InputError
from solvers import (
    allocate_bits,
    hutchinson_trace,
    quantize_nearest,
    quantize_steered,
    top_ritz_pairs,
)
from validation.experiments.calibration import calibration_loss, nearest_rounding_table

__all__ = ["CETResult", "LayerCurvature", "cet_compress", "layer_curvatures"]



@dataclass(frozen=True)
class LayerCurvature:
    """Curvature of one layer's Hessian block.

    Attributes:
        mean_curvature: tr(H_l) / n_l (Hutchinson), with its standard error.
        top_values: (k,) largest Ritz values (Lanczos).
        directions: (W.size, k) orthonormal top eigenvectors restricted to W.
    """

    mean_curvature: float
    mean_curvature_error: float
    top_values: np.ndarray
    directions: np.ndarray


def layer_curvatures(model: Sequential, X: np.ndarray, y: np.ndarray, *, k: int = 8,
                     probes: int = 16, lanczos_steps: int = 32, seed: int = 0,
                     progress: bool = False) -> dict[int, LayerCurvature]:
    """Hutchinson mean curvature and top-k Ritz directions of every weight layer.

    Costs ``probes + lanczos_steps`` Hessian-vector products per layer over (X, y).
    """
    out = {}
    for i in progress_bar(weight_layers(model), desc="Hessian blocks", disable=not progress):
        curvature = LossCurvature(model, X, y, layers=[i])
        trace, error = hutchinson_trace(curvature.hvp, curvature.n, samples=probes, seed=seed)
        # A fixed budget of Lanczos steps: the directions need only a few digits, and each
        # product costs a forward and backward pass over the batch.
        values, vectors = top_ritz_pairs(curvature.hvp, curvature.n, k=min(k, curvature.n),
                                         steps=min(lanczos_steps, curvature.n), seed=seed)
        size = model.layers[i].W.size
        # W comes first in the block; re-orthonormalise its part of the eigenvectors.
        directions = np.linalg.qr(vectors[:size])[0]
        out[i] = LayerCurvature(mean_curvature=trace / curvature.n,
                                mean_curvature_error=error / curvature.n,
                                top_values=values, directions=directions)
    return out


@dataclass(frozen=True)
class CETResult:
    """Outcome of :func:`cet_compress`.

    Attributes:
        steered: long-axis steered rounding at the allocated bits.
        nearest: plain nearest rounding at the same bits.
        bits: layer index -> bit width.
        predicted_increase: summed 1/2 t_l ||n_l||^2 of the allocation.
        curvatures: the per-layer curvature estimates.
        nearest_loss, steered_loss: calibration losses.
    """

    steered: QuantizedModel
    nearest: QuantizedModel
    bits: dict
    predicted_increase: float
    curvatures: dict
    nearest_loss: float
    steered_loss: float


def cet_compress(model: Sequential, X: np.ndarray, y: np.ndarray, average_bits: float, *,
                 bits=tuple(range(2, 9)), curvatures: dict[int, LayerCurvature] | None = None,
                 k: int = 8, probes: int = 16, seed: int = 0, progress: bool = False
                 ) -> CETResult:
    """CET allocation and steering (module docstring).

    Args:
        model: a trained model; X, y: the calibration batch.
        average_bits: budget in bits per weight (scales included).
        bits: the bit widths a layer may take.
        curvatures: reuse the result of :func:`layer_curvatures` (computed when ``None``).
        k, probes: Lanczos directions and Hutchinson probes per layer.
    """
    if not average_bits > 0:
        raise InputError(f"average_bits must be positive, got {average_bits}")
    layers = weight_layers(model)
    if curvatures is None:
        curvatures = layer_curvatures(model, X, y, k=k, probes=probes, seed=seed,
                                      progress=progress)
    _, sizes, noise = nearest_rounding_table(model, bits)
    values = np.array([[0.5 * curvatures[i].mean_curvature * float(np.sum(noise[(i, b)] ** 2))
                        for b in bits] for i in layers])
    n_weights = sum(model.layers[i].W.size for i in layers)
    choice = allocate_bits(values, sizes, int(average_bits * n_weights))
    chosen = {i: int(bits[c]) for i, c in zip(layers, choice.choice, strict=True)}
    nearest = QuantizedModel(model, {
        i: quantize_nearest(model.layers[i].W, chosen[i], channel_axis(model.layers[i]))
        for i in layers})
    steered = QuantizedModel(model, {
        i: quantize_steered(model.layers[i].W, chosen[i], curvatures[i].directions,
                            channel_axis(model.layers[i]))
        for i in layers})
    return CETResult(steered=steered, nearest=nearest, bits=chosen,
                     predicted_increase=float(choice.value), curvatures=curvatures,
                     nearest_loss=calibration_loss(nearest.to_sequential(), X, y),
                     steered_loss=calibration_loss(steered.to_sequential(), X, y))
