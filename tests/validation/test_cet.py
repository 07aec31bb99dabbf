"""CET on a tiny model: curvature estimates against the exact Hessian, allocation, steering."""

import itertools

import numpy as np
import pytest

from nets import LossCurvature, channel_axis, weight_layers
from solvers import quantize_nearest
from validation.experiments.cet import cet_compress, layer_curvatures


def test_layer_curvatures_match_the_dense_hessian(tiny):
    model, X, y = tiny
    curvatures = layer_curvatures(model, X, y, k=3, probes=200)
    for i in weight_layers(model):
        H = LossCurvature(model, X, y, layers=[i]).dense_hessian()
        H = 0.5 * (H + H.T)
        c = curvatures[i]
        exact = np.trace(H) / H.shape[0]
        # Hutchinson with 200 probes: 4 standard errors.
        assert abs(c.mean_curvature - exact) <= 4 * c.mean_curvature_error
        top = np.linalg.eigvalsh(H)[::-1][:3]
        # 32 Lanczos steps: the top Ritz values of these small blocks have converged.
        np.testing.assert_allclose(c.top_values, top, rtol=1e-2, atol=1e-3 * top[0])
        W = model.layers[i].W
        assert c.directions.shape == (W.size, 3)
        np.testing.assert_allclose(c.directions.T @ c.directions, np.eye(3), atol=1e-10)


def test_allocation_is_optimal_and_steering_leaks_less(tiny):
    model, X, y = tiny
    curvatures = layer_curvatures(model, X, y, k=4, probes=50)
    r = cet_compress(model, X, y, 5.0, curvatures=curvatures)
    layers = weight_layers(model)
    stored = sum(b * model.layers[i].W.size + 32 * r.nearest.tensors[i].scale.size
                 for i, b in r.bits.items())
    assert stored <= 5.0 * sum(model.layers[i].W.size for i in layers)
    for i in layers:
        W = model.layers[i].W
        U = curvatures[i].directions
        leak = [np.linalg.norm(U.T @ (q.tensors[i].dequantize() - W).ravel())
                for q in (r.nearest, r.steered)]
        assert leak[1] <= leak[0] + 1e-9
        assert r.steered.tensors[i].bits == r.nearest.tensors[i].bits == r.bits[i]
    # The allocation is the optimum of the curvature model, found here by brute force.
    best = np.inf
    for combo in itertools.product(range(2, 9), repeat=len(layers)):
        size, value = 0, 0.0
        for i, b in zip(layers, combo, strict=True):
            W = model.layers[i].W
            q = quantize_nearest(W, b, channel_axis(model.layers[i]))
            size += b * W.size + 32 * q.scale.size
            value += 0.5 * curvatures[i].mean_curvature * np.sum((q.dequantize() - W) ** 2)
        if size <= 5.0 * sum(model.layers[i].W.size for i in layers):
            best = min(best, value)
    assert r.predicted_increase == pytest.approx(best, rel=1e-5)


def test_bad_budget(tiny):
    model, X, y = tiny
    with pytest.raises(ValueError, match="average_bits"):
        cet_compress(model, X, y, -1.0, curvatures={})
    curvatures = layer_curvatures(model, X, y, k=2, probes=4)
    with pytest.raises(ValueError, match="below the smallest allocation"):
        cet_compress(model, X, y, 1.0, curvatures=curvatures)
