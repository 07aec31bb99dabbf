"""Layers, losses and optimisers: every backward against central finite differences (float64),
the softmax cross-entropy against a direct log-sum-exp, optimiser steps against hand-computed
updates, and clear errors for bad shapes.

Gradient checks use f(x) = sum(R * layer(x)) with a fixed random R, so backward(R) must equal
the gradient of f; central differences with h = 1e-6 have truncation error O(h^2) and rounding
error O(1e-16 / h) = O(1e-10) relative, far inside the 1e-5 tolerance.
"""

import math

import numba
import numpy as np
import pytest

from nets.layers import Activation, AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, init_weights
from nets.losses import mse, one_hot, softmax_cross_entropy
from nets.optim import SGD, Adam
from ntk.activations import step_activation

F64 = np.float64
H = 1e-6
TOL = 1e-5


def rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


def numeric_grad(f, x):
    """Central differences of the scalar f at every entry of x (modified in place, restored)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H
        up = f()
        flat[i] = old - H
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * H)
    return g


def check_layer(layer, x, rng):
    """Input and parameter gradients of a layer against finite differences."""
    y = layer.forward(x, train=True)
    R = rng.standard_normal(y.shape)
    dx = layer.backward(R)
    analytic_params = [g.copy() for g in layer.grads()]

    def f():
        return float(np.sum(R * layer.forward(x, train=False)))

    assert dx.shape == x.shape
    assert rel_err(dx, numeric_grad(f, x)) < TOL
    for p, g in zip(layer.params(), analytic_params, strict=True):
        assert rel_err(g, numeric_grad(f, p)) < TOL


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def test_dense_gradients(rng):
    layer = Dense(5, 3, rng=rng, dtype=F64)
    layer.b[:] = rng.standard_normal(3)
    check_layer(layer, rng.standard_normal((4, 5)), rng)


@pytest.mark.parametrize(("stride", "padding", "kernel", "size"),
                         [(1, 0, 3, 6), (1, 1, 3, 5), (2, 1, 3, 7), (2, 0, 2, 6), (3, 2, 3, 5)])
def test_conv_gradients(rng, stride, padding, kernel, size):
    layer = Conv2d(2, 3, kernel, stride=stride, padding=padding, rng=rng, dtype=F64)
    layer.b[:] = rng.standard_normal(3)
    check_layer(layer, rng.standard_normal((2, 2, size, size + 1)), rng)


def test_conv_matches_direct_sum(rng):
    """Forward against the defining sum, written as plain loops."""
    layer = Conv2d(2, 3, 3, stride=2, padding=1, rng=rng, dtype=F64)
    layer.b[:] = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 5, 6))
    y = layer.forward(x, train=False)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert y.shape == (2, 3, 3, 3)
    for n in range(2):
        for o in range(3):
            for r in range(3):
                for q in range(3):
                    patch = xp[n, :, 2 * r:2 * r + 3, 2 * q:2 * q + 3]
                    expected = layer.b[o] + np.sum(layer.W[o] * patch)
                    assert y[n, o, r, q] == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("pool", [MaxPool2d, AvgPool2d])
@pytest.mark.parametrize("size", [6, 7])
def test_pool_gradients(rng, pool, size):
    # Distinct, well-separated values: no ties, and a step of H never changes a window's max.
    x = rng.permutation(2 * 3 * size * (size + 1)).reshape(2, 3, size, size + 1) * 0.01
    check_layer(pool(2), x.astype(F64), rng)


def test_pool_forward_values():
    x = np.arange(16, dtype=F64).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(MaxPool2d(2).forward(x)[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(AvgPool2d(2).forward(x)[0, 0], [[2.5, 4.5], [10.5, 12.5]])


def test_flatten_gradients(rng):
    check_layer(Flatten(), rng.standard_normal((3, 2, 4, 5)), rng)


@pytest.mark.parametrize("name", ["relu", "tanh", "gelu", "sigmoid", "swish", "lrelu:a=0.2",
                                  "erf", "sin"])
def test_activation_gradients(rng, name):
    x = rng.standard_normal((4, 6))
    # Keep clear of the kink at 0 of the piecewise-linear ones.
    x[np.abs(x) < 1e-3] = 0.5
    check_layer(Activation(name), x, rng)


def test_relu_fast_path_matches_catalogue(rng):
    x = rng.standard_normal((5, 7)).astype(np.float32)
    layer = Activation("relu")
    y = layer.forward(x, train=True)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    g = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(g), g * (x > 0))


def test_step_activation_is_forward_only(rng):
    act = step_activation([-0.5, 0.5], [-1.0, 0.0, 1.0])
    layer = Activation(act)
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(layer.forward(x), act.fn(x))
    with pytest.raises(RuntimeError, match="piecewise constant"):
        layer.backward(np.ones_like(x))


def test_frozen_layer_has_no_params(rng):
    layer = Dense(3, 2, rng=rng, trainable=False, dtype=F64)
    assert layer.params() == [] and layer.grads() == []
    W = layer.W.copy()
    layer.forward(rng.standard_normal((4, 3)))
    dx = layer.backward(np.ones((4, 2)))
    np.testing.assert_array_equal(dx, np.ones((4, 2)) @ W.T)
    np.testing.assert_array_equal(layer.W, W)


def test_initialisation_scales():
    rng = np.random.default_rng(0)
    he = init_weights((1000, 400), 1000, 400, "he", rng)
    assert he.dtype == np.float32
    assert np.std(he) == pytest.approx(math.sqrt(2 / 1000), rel=0.01)
    glorot = init_weights((1000, 400), 1000, 400, "glorot", rng)
    a = math.sqrt(6 / 1400)
    assert np.abs(glorot).max() <= a
    assert np.std(glorot) == pytest.approx(a / math.sqrt(3), rel=0.01)
    with pytest.raises(ValueError, match="rng"):
        init_weights((2, 2), 2, 2, "he", None)
    with pytest.raises(ValueError, match="unknown init"):
        init_weights((2, 2), 2, 2, "orthogonal", rng)


def test_same_generator_state_same_weights():
    a = Conv2d(2, 4, 3, rng=np.random.default_rng(5))
    b = Conv2d(2, 4, 3, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.W, b.W)


def test_bad_shapes_raise(rng):
    with pytest.raises(ValueError, match=r"expects input of shape \(n, 5\)"):
        Dense(5, 3, rng=rng).forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="3 channels"):
        Conv2d(3, 4, 3, rng=rng).forward(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="smaller than"):
        Conv2d(1, 4, 5, rng=rng).forward(np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="NCHW"):
        MaxPool2d(2).forward(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="positive integer"):
        Conv2d(1, 4, 0, rng=rng)
    with pytest.raises(ValueError, match="padding"):
        Conv2d(1, 4, 3, padding=-1, rng=rng)
    with pytest.raises(RuntimeError, match="forward"):
        Dense(2, 2, rng=rng).backward(np.zeros((1, 2)))


def lse_cross_entropy(z, labels):
    """Direct formula: mean of log(sum exp z_i) - z_{i, y_i}, in extended precision."""
    z = z.astype(np.longdouble)
    return float(np.mean(np.log(np.sum(np.exp(z), axis=1)) - z[np.arange(len(z)), labels]))


def test_softmax_cross_entropy_value_and_gradient(rng):
    z = rng.standard_normal((6, 4)) * 3
    labels = rng.integers(0, 4, 6)
    loss, grad = softmax_cross_entropy(z, labels)
    assert loss == pytest.approx(lse_cross_entropy(z, labels), rel=1e-13)
    assert rel_err(grad, numeric_grad(lambda: softmax_cross_entropy(z, labels)[0], z)) < TOL
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-15)


def test_softmax_cross_entropy_is_stable():
    z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 0.0]])
    loss, grad = softmax_cross_entropy(z, np.array([0, 0]))
    assert loss == pytest.approx(1000.0)
    assert np.all(np.isfinite(grad))
    assert softmax_cross_entropy(z.astype(np.float32), np.array([0, 0]))[1].dtype == np.float32


def test_mse_value_and_gradient(rng):
    y = rng.standard_normal((5, 3))
    t = rng.standard_normal((5, 3))
    loss, grad = mse(y, t)
    assert loss == pytest.approx(np.mean((y - t) ** 2), rel=1e-14)
    assert rel_err(grad, numeric_grad(lambda: mse(y, t)[0], y)) < TOL
    labels = np.array([0, 2, 1, 1, 0])
    assert mse(y, labels)[0] == mse(y, one_hot(labels, 3, F64))[0]


def test_loss_errors():
    with pytest.raises(ValueError, match="labels must lie"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integers of shape"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(n, classes\)"):
        softmax_cross_entropy(np.zeros(3), np.array([0]))
    with pytest.raises(ValueError, match="do not match"):
        mse(np.zeros((2, 3)), np.zeros((2, 2)))


def two_params():
    return [np.array([1.0, -2.0])], [np.array([0.5, 0.25])]


def test_sgd_momentum_weight_decay_by_hand():
    (p,), (g,) = two_params()
    opt = SGD(lr=0.1, momentum=0.9, weight_decay=0.01)
    opt.step([p], [g])
    d1 = g + 0.01 * np.array([1.0, -2.0])          # v1 = d1
    p1 = np.array([1.0, -2.0]) - 0.1 * d1
    np.testing.assert_allclose(p, p1, rtol=1e-15)
    opt.step([p], [g])
    v2 = 0.9 * d1 + g + 0.01 * p1
    np.testing.assert_allclose(p, p1 - 0.1 * v2, rtol=1e-15)


def test_sgd_nesterov_and_plain_by_hand():
    (p,), (g,) = two_params()
    opt = SGD(lr=0.1, momentum=0.5, nesterov=True)
    opt.step([p], [g])
    opt.step([p], [g])
    # v1 = g, step g + 0.5 g;  v2 = 1.5 g, step g + 0.75 g.
    np.testing.assert_allclose(p, np.array([1.0, -2.0]) - 0.1 * (1.5 + 1.75) * g, rtol=1e-15)
    (p,), (g,) = two_params()
    SGD(lr=0.2).step([p], [g])
    np.testing.assert_allclose(p, [0.9, -2.05], rtol=1e-15)


def test_adamw_by_hand():
    (p,), (g,) = two_params()
    opt = Adam(lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1)
    opt.step([p], [g])
    # Step 1: m_hat = g, v_hat = g^2, so the Adam part is g / (|g| + eps) ~ sign(g).
    p1 = np.array([1.0, -2.0])
    p1 = p1 - 0.1 * (0.1 * p1 + g / (np.abs(g) + 1e-8))
    np.testing.assert_allclose(p, p1, rtol=1e-15)
    g2 = np.array([-1.0, 0.5])
    opt.step([p], [g2])
    m = 0.9 * 0.1 * g + 0.1 * g2
    v = 0.99 * 0.01 * g**2 + 0.01 * g2**2
    m_hat, v_hat = m / (1 - 0.9**2), v / (1 - 0.99**2)
    np.testing.assert_allclose(p, p1 - 0.1 * (0.1 * p1 + m_hat / (np.sqrt(v_hat) + 1e-8)),
                               rtol=1e-14)


def test_float32_optimiser_keeps_dtype():
    p = np.ones(3, dtype=np.float32)
    Adam().step([p], [np.ones(3, dtype=np.float32)])
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, 1 - 1e-3, rtol=1e-6)


def test_optimiser_errors():
    with pytest.raises(ValueError, match="lr > 0"):
        SGD(lr=0.0)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        Adam(beta1=1.0)
    with pytest.raises(ValueError, match="gradient of shape"):
        SGD().step([np.zeros(2)], [np.zeros(3)])
    opt = SGD()
    opt.step([np.zeros(2)], [np.zeros(2)])
    with pytest.raises(ValueError, match="changed"):
        opt.step([np.zeros(3)], [np.zeros(3)])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_batch_split_threads_give_the_serial_result(rng, threads):
    # Convolution, ReLU on feature maps and max pooling split the batch over Numba's threads;
    # every thread count must give the one-thread result (up to the order of dW's sum).
    x = rng.standard_normal((7, 3, 40, 40))
    layers = [Conv2d(3, 8, 3, padding=1, rng=rng, dtype=np.float64), Activation("relu"),
              MaxPool2d(2)]
    g = rng.standard_normal((7, 8, 20, 20))

    def run(n_threads):
        previous = numba.get_num_threads()
        numba.set_num_threads(n_threads)
        try:
            h = x
            for layer in layers:
                h = layer.forward(h, True)
            d = g
            for layer in layers[::-1]:
                d = layer.backward(d)
            return h, d, layers[0].dW.copy(), layers[0].db.copy()
        finally:
            numba.set_num_threads(previous)

    threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    for serial, split in zip(run(1), run(threads), strict=True):
        np.testing.assert_allclose(split, serial, rtol=1e-13, atol=1e-13)
