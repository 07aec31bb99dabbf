"""The L2 unified transform: quantize/dequantize properties, relaxed entropy, gradients."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from solvers.entropy import empirical_entropy_bits
from solvers.unified_quantizer import (
    dead_zone,
    dequantize,
    fake_quantize,
    quantize,
    soft_entropy,
    ste_gradients,
    transform,
)

# Margin (in steps) kept from the rounding boundaries, where float rounding of |w| / delta - theta
# may fall on either side.
MARGIN = 1e-9

weights = hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=8),
                     elements=st.floats(-10.0, 10.0, allow_subnormal=False))
deltas = st.floats(1e-3, 5.0)
thetas = st.floats(0.0, 4.0)


# -- quantize / dequantize -----------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(weights, deltas)
def test_theta_zero_is_nearest_rounding(w, delta):
    q = quantize(w, delta, 0.0)
    assert q.dtype == np.int64 and q.shape == w.shape
    assert np.array_equal(q, np.rint(w / delta))
    assert np.array_equal(dequantize(q, delta, 0.0), delta * q)
    assert np.all(np.abs(w - dequantize(q, delta, 0.0)) <= delta / 2 * (1 + 1e-12))


@settings(max_examples=300, deadline=None)
@given(weights, deltas, thetas)
def test_dead_zone_is_exactly_zero_and_kept_weights_round_to_the_nearest_level(w, delta, theta):
    q = quantize(w, delta, theta)
    w_hat = dequantize(q, delta, theta)
    excess = np.abs(w) / delta - theta
    inside, outside = excess < 0.5 - MARGIN, excess > 0.5 + MARGIN
    assert np.all(q[inside] == 0) and np.all(w_hat[inside] == 0.0)
    assert np.all(np.abs(w[inside]) < dead_zone(delta, theta))
    assert np.all(q[outside] != 0) and np.array_equal(np.sign(q[outside]), np.sign(w[outside]))
    assert np.all(np.abs(w - w_hat)[outside] <= delta / 2 + 1e-12 * delta * (1 + np.abs(q[outside])
                                                                             + theta))
    # Reconstruction levels: 0 and +-delta (theta + k), k >= 1.
    assert np.allclose(np.abs(w_hat[q != 0]), delta * (theta + np.abs(q[q != 0])), rtol=1e-14)


@settings(max_examples=200, deadline=None)
@given(weights, deltas, thetas)
def test_one_rounding_forms_agree_and_are_odd(w, delta, theta):
    q = quantize(w, delta, theta)
    assert np.array_equal(q, np.rint(transform(w, delta, theta)))
    assert np.array_equal(q, np.sign(w) * np.maximum(0, np.rint(np.abs(w) / delta - theta)))
    assert np.array_equal(quantize(-w, delta, theta), -q)


@settings(max_examples=200, deadline=None)
@given(weights, deltas, thetas, st.sampled_from([np.float32, np.float64]))
def test_fake_quantize_is_quantize_then_dequantize_bit_for_bit(w, delta, theta, dtype):
    expected = dequantize(quantize(w, delta, theta), delta, theta, dtype=dtype)
    out = np.empty(w.shape, dtype=dtype)
    assert fake_quantize(w.astype(dtype), delta, theta, out=out) is out
    if dtype == np.float64:
        assert np.array_equal(out, expected)
    else:
        # float32 weights: compare with the float32 weights quantized.
        assert np.array_equal(out, dequantize(quantize(w.astype(np.float32), delta, theta),
                                              delta, theta, dtype=np.float32))
    assert np.array_equal(fake_quantize(w, delta, theta), dequantize(quantize(w, delta, theta),
                                                                     delta, theta))


def test_ste_gradients_accept_float32_and_match_float64():
    rng = np.random.default_rng(5)
    w, g = rng.standard_normal((20, 30)).astype(np.float32), rng.standard_normal((20, 30))
    a = ste_gradients(w, 0.2, 0.5, g.astype(np.float32))
    b = ste_gradients(w.astype(np.float64), 0.2, 0.5, g.astype(np.float32).astype(np.float64))
    assert a == b


def test_dequantize_keeps_the_requested_dtype_and_is_deterministic():
    q = np.array([[-3, 0], [1, 7]], dtype=np.int8)
    a = dequantize(q, np.float32(0.1), np.float32(0.25), dtype=np.float32)
    assert a.dtype == np.float32
    assert np.array_equal(a, dequantize(q.astype(np.int64), np.float32(0.1), np.float32(0.25),
                                        dtype=np.float32))
    assert a[0, 1] == 0.0
    assert a[1, 1] == np.float32(float(np.float32(0.1)) * (7 + float(np.float32(0.25))))


@pytest.mark.parametrize("call,match", [
    (lambda: quantize([1.0], 0.0, 0.0), "delta"),
    (lambda: quantize([1.0], -1.0, 0.0), "delta"),
    (lambda: quantize([1.0], float("nan"), 0.0), "delta"),
    (lambda: quantize([1.0], 1.0, -0.1), "theta"),
    (lambda: quantize([np.nan], 1.0, 0.0), "finite"),
    (lambda: quantize([1e300], 1e-300, 0.0), "overflow"),
    (lambda: quantize(["a"], 1.0, 0.0), "real"),
    (lambda: dequantize([0.5], 1.0, 0.0), "integers"),
    (lambda: soft_entropy([], 1.0, 0.0), "at least one"),
    (lambda: soft_entropy([1.0], 1.0, 0.0, width=0.0), "width"),
    (lambda: soft_entropy([1.0, -1e9], 1e-3, 0.0), "span"),
    (lambda: ste_gradients([1.0, 2.0], 1.0, 0.0, [1.0]), "shape"),
    (lambda: fake_quantize(np.ones(3), 1.0, 0.0, out=np.empty(4)), "out"),
    (lambda: fake_quantize(np.ones(3), 1.0, 0.0, out=np.empty(3, dtype=np.int32)), "out"),
])
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- relaxed entropy -----------------------------------------------------------------------------

def test_soft_entropy_is_a_distribution_over_the_symbols_present():
    w = np.random.default_rng(0).standard_normal((30, 20)) * 0.2
    e = soft_entropy(w, 0.05, 0.8, width=0.4)
    q = quantize(w, 0.05, 0.8)
    assert np.array_equal(e.centres, np.arange(q.min(), q.max() + 1))
    assert e.probabilities.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(e.probabilities > 0)
    assert 0.0 < e.bits <= np.log2(e.centres.size)
    assert e.grad_w.shape == w.shape


def test_all_pruned_tensor_has_zero_entropy_and_gradient():
    w = np.linspace(-0.1, 0.1, 50)
    e = soft_entropy(w, 0.1, 1.0)
    assert e.bits == 0.0 and np.array_equal(e.probabilities, [1.0])
    assert not np.any(e.grad_w) and e.grad_delta == 0.0 and e.grad_theta == 0.0


@pytest.mark.parametrize("theta", [0.0, 0.7])
def test_soft_entropy_tends_to_the_empirical_entropy_as_the_kernel_narrows(theta):
    w = np.random.default_rng(1).standard_normal(5000) * 0.1
    delta = 0.04
    h_emp = empirical_entropy_bits(quantize(w, delta, theta)) / w.size
    errors = [abs(soft_entropy(w, delta, theta, width=s).bits - h_emp)
              for s in (0.3, 0.1, 0.03, 0.01, 0.001)]
    assert errors[0] > 1e-3
    # The error is the mass of the weights within a few s of a bin edge: O(s) for smooth
    # weight densities.
    assert errors[-2] < 3e-3 and errors[-1] < 3e-4
    assert errors[-1] < errors[0] / 100


def finite_difference(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("width", [0.15, 0.4, 1.0])
@pytest.mark.parametrize("theta", [0.0, 0.6])
def test_soft_entropy_gradients_match_finite_differences(width, theta):
    rng = np.random.default_rng(2)
    w = rng.standard_normal(400) * 0.1
    delta = 0.03
    e = soft_entropy(w, delta, theta, width)

    def bits(w=w, delta=delta, theta=theta):
        return soft_entropy(w, delta, theta, width).bits

    assert e.grad_delta == pytest.approx(
        finite_difference(lambda d: bits(delta=d), delta, 1e-6 * delta), rel=1e-5)
    if theta > 0:
        assert e.grad_theta == pytest.approx(
            finite_difference(lambda t: bits(theta=t), theta, 1e-6), rel=1e-5)
    # Entries away from the dead-zone kink and from the extreme symbols (whose rounding sets
    # the centre range). One entry's gradient is O(1/n): the steps are large enough that
    # float rounding of H (1e-16) stays far below it.
    v = transform(w, delta, theta)
    ok = (np.abs(np.abs(w) / delta - theta) > 1e-2) & (np.abs(v) < np.abs(v).max() - 1)
    z = np.where(ok, rng.standard_normal(w.size), 0.0)
    directional = finite_difference(lambda x: bits(w=w + x * z), 0.0, 1e-5 * delta)
    assert float(e.grad_w.ravel() @ z) == pytest.approx(directional, rel=1e-5)
    for i in rng.choice(np.flatnonzero(ok), 25, replace=False):
        def along(x, i=i):
            wi = w.copy()
            wi[i] = x
            return bits(w=wi)

        fd = finite_difference(along, w[i], 1e-4 * delta)
        assert e.grad_w[i] == pytest.approx(fd, rel=1e-4, abs=1e-10)
    assert not np.any(e.grad_w[np.abs(w) / delta < theta])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.1, 1.5), st.floats(0.01, 2.0))
def test_soft_entropy_delta_and_theta_gradients_match_finite_differences(seed, width, theta):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(300) * rng.uniform(0.05, 1.0)
    delta = float(np.abs(w).max() / rng.uniform(2, 20))
    # Keep every weight off the kinks and centre-range changes for the size of the step.
    v = transform(w, delta, theta)
    assume(np.min(np.abs(np.abs(w) / delta - theta)) > 1e-4)
    assume(np.min(np.abs(np.abs(v) % 1 - 0.5)) > 1e-4)
    e = soft_entropy(w, delta, theta, width)
    h = 1e-7
    fd_delta = finite_difference(lambda d: soft_entropy(w, d, theta, width).bits, delta,
                                 h * delta)
    fd_theta = finite_difference(lambda t: soft_entropy(w, delta, t, width).bits, theta, h)
    assert e.grad_delta == pytest.approx(fd_delta, rel=1e-4, abs=1e-7 / delta)
    assert e.grad_theta == pytest.approx(fd_theta, rel=1e-4, abs=1e-7)


# -- straight-through backward -------------------------------------------------------------------

def test_ste_gradients_are_the_derivatives_of_the_unrounded_transform():
    # Surrogate of the STE: w_hat = delta (q + s theta) with rint's derivative replaced by 1
    # (q moves with v) and s = sign(q) frozen at the point of evaluation.
    rng = np.random.default_rng(3)
    w = rng.standard_normal(500) * 0.1
    g = rng.standard_normal(500)
    delta, theta = 0.02, 0.9
    q = quantize(w, delta, theta)
    s, v = np.sign(q), transform(w, delta, theta)

    def loss(delta=delta, theta=theta):
        # Forward value q, derivative that of v.
        return float(g @ (delta * (q + transform(w, delta, theta) - v + s * theta)))

    grad_delta, grad_theta = ste_gradients(w, delta, theta, g)
    assert grad_delta == pytest.approx(finite_difference(lambda d: loss(delta=d), delta, 1e-8),
                                       rel=1e-6)
    assert grad_theta == pytest.approx(finite_difference(lambda t: loss(theta=t), theta, 1e-7),
                                       rel=1e-6)


def test_ste_step_gradient_without_dead_zone_is_lsq():
    # theta = 0: dw_hat/ddelta = round(u) - u = (w_hat - w) / delta for every weight.
    rng = np.random.default_rng(4)
    w, g = rng.standard_normal(100), rng.standard_normal(100)
    w_hat = dequantize(quantize(w, 0.3, 0.0), 0.3, 0.0)
    grad_delta, grad_theta = ste_gradients(w, 0.3, 0.0, g)
    assert grad_delta == pytest.approx(float(g @ (w_hat - w)) / 0.3, rel=1e-12)
    # Only the band theta < |u| <= theta + 1/2 of pruned weights moves theta: at theta = 0
    # these are the weights rounded to 0.
    band = np.abs(w / 0.3) <= 0.5
    assert grad_theta == pytest.approx(-0.3 * float(g[band] @ np.sign(w[band])), rel=1e-12)
