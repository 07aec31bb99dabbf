"""LLC on a tiny model: neighbourhood against exact curvature, allocation, rounding."""

import math

import numpy as np
import pytest

from nets import weight_layers
from validation.experiments.calibration import calibration_loss, weight_gradients
from validation.experiments.llc import llc_compress, loss_neighbourhood


def test_gradients_match_finite_differences(tiny):
    model, X, y = tiny
    grads = weight_gradients(model, X, y, batch_size=128)
    i = weight_layers(model)[1]
    rng = np.random.default_rng(1)
    d = rng.standard_normal(model.layers[i].W.shape)
    h = 1e-5
    model.layers[i].W += h * d
    up = calibration_loss(model, X, y)
    model.layers[i].W -= 2 * h * d
    down = calibration_loss(model, X, y)
    model.layers[i].W += h * d
    assert np.sum(grads[i] * d) == pytest.approx((up - down) / (2 * h), rel=1e-6)


def test_second_order_model_tracks_the_measured_change(untrained):
    model, X, y = untrained
    r = loss_neighbourhood(model, X, y, sizes=(1e-4, 1e-3, 1e-2), draws=3)
    # Taylor: the second-order model is off by O(sigma^3), the first-order one by O(sigma^2):
    # ten times the noise multiplies the errors by ~1000 and ~100 (same draws' directions
    # differ, so allow a factor 3 either way on the means).
    second_error = np.abs(r.second_order - r.measured).mean(1)
    first_error = np.abs(r.first_order - r.measured).mean(1)
    assert second_error[2] / second_error[1] > 300
    assert 30 < first_error[2] / first_error[1] < 300
    assert np.all(second_error[1:] < 0.02 * np.abs(r.measured[1:]).mean(1))
    # At an untrained point the gradient dominates small noise: first order within 5 %.
    assert np.all(first_error[0] <= 0.05 * np.abs(r.measured[0]))


def test_neighbourhood_ends_where_first_order_fails(tiny):
    model, X, y = tiny
    r = loss_neighbourhood(model, X, y, sizes=(1e-5, 1e-1, 1.0), draws=2)
    assert r.sizes[0] < r.neighbourhood_end <= 1.0
    mean = r.measured.mean(1)
    k = int(np.searchsorted(r.sizes, r.neighbourhood_end))
    assert abs(mean[k] - r.first_order.mean(1)[k]) > 0.5 * abs(mean[k])


def test_llc_respects_budget_and_neighbourhood(tiny):
    model, X, y = tiny
    layers = weight_layers(model)
    r = llc_compress(model, X, y, 6.0, max_relative_noise=0.3)
    n = sum(model.layers[i].W.size for i in layers)
    stored = sum(b * model.layers[i].W.size + 32 * r.quantized.tensors[i].scale.size
                 for i, b in r.bits.items())
    assert stored <= 6.0 * n
    for i in layers:
        W = model.layers[i].W
        noise = r.nearest.tensors[i].dequantize() - W
        assert np.linalg.norm(noise) <= 0.3 * np.linalg.norm(W) * (1 + 1e-6)
    # kappa = inf is nearest rounding, measured through the other code path.
    assert r.loss_by_kappa[math.inf] == pytest.approx(r.nearest_loss, rel=1e-12)
    assert r.opposed_loss == min(r.loss_by_kappa.values()) <= r.nearest_loss


def test_gradient_opposed_rounding_lowers_the_calibration_loss(tiny):
    model, X, y = tiny
    r = llc_compress(model, X, y, 5.0, max_relative_noise=1.0)
    assert r.opposed_loss < r.nearest_loss
    assert r.kappa < math.inf


def test_llc_bad_budget(tiny):
    model, X, y = tiny
    with pytest.raises(ValueError, match="neighbourhood"):
        llc_compress(model, X, y, 2.0, max_relative_noise=0.01)
    with pytest.raises(ValueError, match="average_bits"):
        llc_compress(model, X, y, 0.0)
    with pytest.raises(ValueError, match="sizes"):
        loss_neighbourhood(model, X, y, sizes=(-1.0,))
