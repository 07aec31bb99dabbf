"""Uniform grids and the three roundings: properties against brute force over grid points."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.rounding import (
    grid_scale,
    quantize_gradient_opposed,
    quantize_nearest,
    quantize_steered,
)
from validation.kit.checks import check_rounding
from validation.kit.oracles import brute_force_rounding
from validation.kit.strategies import quantization_problems


@settings(max_examples=200, deadline=None)
@given(problem=quantization_problems())
def test_nearest_rounding_is_within_half_a_step(problem):
    W, _, bits, axis, _ = problem
    q = quantize_nearest(W, bits, axis)
    top = problem.levels
    assert np.abs(q.symbols).max() <= top
    assert q.scale.shape == (grid_scale(W, bits, axis)).shape
    # The largest entry of each channel sits on the grid's end point.
    assert np.abs(q.symbols).max() == (top if np.any(W) else 0)
    noise = q.symbols * q.scale.astype(float) - W
    assert np.all(np.abs(noise) <= q.scale * (0.5 + 1e-6))


def test_nearest_rounding_passes_the_kit_check():
    check_rounding(quantize_nearest)


@settings(max_examples=200, deadline=None)
@given(problem=quantization_problems(curvatures=(0.0, 0.3, 10.0)))
def test_gradient_opposed_minimises_the_per_entry_model(problem):
    W, G, bits, axis, h = problem
    q = quantize_gradient_opposed(W, G, bits, curvature=h, channel_axis=axis)
    s = q.scale.astype(float)
    top = problem.levels
    # Brute force over the neighbouring grid points of every entry, on the solver's own grid.
    best = brute_force_rounding(W, s, top, G, h)

    def cost(k):
        return G * (k * s - W) + 0.5 * h * (k * s - W) ** 2

    # The float32 scale puts the grid's end point up to ~1e-7 relative off max|W|.
    slack = 1e-6 * top * s * (np.abs(G) + h * top * s)
    assert np.all(np.abs(q.symbols * s - W) <= s * (1 + 1e-6 * top))
    assert np.all(cost(q.symbols) <= cost(best) + slack)
    if h == 0.0:
        assert np.all(G * (q.symbols * s - W) <= slack)


@settings(max_examples=100, deadline=None)
@given(problem=quantization_problems())
def test_infinite_curvature_is_nearest_rounding(problem):
    W, G, bits, axis, _ = problem
    far = quantize_gradient_opposed(W, G, bits, curvature=np.inf, channel_axis=axis)
    np.testing.assert_array_equal(far.symbols, quantize_nearest(W, bits, axis).symbols)


def test_gradient_opposed_lowers_a_quadratic_loss():
    # L(w) = 1/2 (w - w*)^T A (w - w*) + c^T w, at a point with a real gradient.
    rng = np.random.default_rng(3)
    n = 400
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = (Q * rng.uniform(0.01, 1.0, n)) @ Q.T
    W = rng.standard_normal(n)
    G = A @ W + rng.standard_normal(n)

    def loss(w):
        return 0.5 * w @ A @ w + (G - A @ W) @ w

    near = quantize_nearest(W, 3).dequantize().astype(float)
    opposed = quantize_gradient_opposed(W, G, 3, curvature=np.trace(A) / n)
    assert loss(opposed.dequantize().astype(float)) < loss(near)


@settings(max_examples=60, deadline=None)
@given(problem=quantization_problems(), k=st.integers(0, 4))
def test_steering_never_leaks_more_than_nearest(problem, k):
    W, _, bits, axis, _ = problem
    k = min(k, W.size)
    U = np.linalg.qr(np.random.default_rng(k).standard_normal((W.size, k)))[0][:, :k]
    steered = quantize_steered(W, bits, U, axis)
    near = quantize_nearest(W, bits, axis)
    top = 2 ** (bits - 1) - 1
    assert np.abs(steered.symbols).max() <= top

    def leak(q):
        return np.linalg.norm(U.T @ (q.symbols * q.scale.astype(float) - W).ravel())

    assert leak(steered) <= leak(near) + 1e-12


def test_steering_moves_the_noise_out_of_the_subspace():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((120, 80))
    U = np.linalg.qr(rng.standard_normal((W.size, 12)))[0]
    near, steered = quantize_nearest(W, 3, 1), quantize_steered(W, 3, U, 1)
    leak = [np.linalg.norm(U.T @ (q.dequantize() - W).ravel()) for q in (near, steered)]
    total = [np.linalg.norm(q.dequantize() - W) for q in (near, steered)]
    assert leak[1] < 0.2 * leak[0]
    assert total[1] < 1.01 * total[0]


def test_bad_input():
    W = np.ones((3, 3))
    with pytest.raises(ValueError, match="bits"):
        quantize_nearest(W, 1)
    with pytest.raises(ValueError, match="non-empty"):
        quantize_nearest(np.zeros((0, 3)), 4)
    with pytest.raises(ValueError, match="channel_axis"):
        quantize_nearest(W, 4, channel_axis=2)
    with pytest.raises(ValueError, match="shape of W"):
        quantize_gradient_opposed(W, np.ones(3), 4)
    with pytest.raises(ValueError, match="curvature"):
        quantize_gradient_opposed(W, W, 4, curvature=-1.0)
    with pytest.raises(ValueError, match="directions"):
        quantize_steered(W, 4, np.ones((8, 2)))
