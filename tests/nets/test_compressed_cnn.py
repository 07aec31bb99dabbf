"""Compressed CNNs: packed ternary inference against a literal float64 convolution written here,
the weights against ``ntk.weights``, entropy-coded round trips, and input validation.

Step activations are discontinuous: where a pre-activation lies within rounding of a threshold,
two correct computations in different precisions or summation orders may pick different levels,
and the difference then propagates to every later feature. So the packed path is compared
(a) end to end in float64, after checking in the reference that no pre-activation lies within
1e-9 of a threshold (float64 sums here differ by ~1e-15, so no level can flip), and (b) layer
by layer in float32, each layer given the same input, where its pre-activations must agree to
1e-5 and its levels wherever the reference is farther than that from every threshold. ReLU is
continuous and is compared end to end in float32 as well.
"""

import math

import numpy as np
import pytest

from nets import compressed_cnn
from nets.compressed import TernaryMatrix
from nets.compressed_cnn import CompressedCNN, DenseCNN, _convolve
from ntk.cnn_architecture import PADDINGS, READOUTS, ConvArchitecture
from ntk.weights import sample_weights
from solvers.entropy import decode_ternary, encode_ternary
from solvers.ternarize import compress_network

C0, CHANNELS, N_IMAGES = 2, (5, 4), 3


@pytest.fixture(scope="module")
def steps():
    return compress_network(["relu", "relu"], 1.0).activations


def architectures():
    return [ConvArchitecture(2, k, padding, pool, readout)
            for k in (2, 3) for padding in PADDINGS for pool in ((), (1,))
            for readout in READOUTS]


def input_shape(arch):
    # Even grids before the pooling after layer 1, and H != W so that swapped axes show.
    h = 6 + (arch.filter_size - 1 if arch.padding == "valid" else 0)
    return (C0, h, h + 2)


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal((N_IMAGES, *shape))


def reference_conv(y, W, padding):
    """z[n, o, a] = sum_{c, d} W[o, c, d] y[n, c, a + d] / sqrt(C k^2), index by index."""
    n, C, H, Wd = y.shape
    k = W.shape[-1]
    offsets = range(k) if padding == "valid" else range(-((k - 1) // 2), k // 2 + 1)
    h, w = (H - k + 1, Wd - k + 1) if padding == "valid" else (H, Wd)
    z = np.zeros((n, W.shape[0], h, w))
    for i, di in enumerate(offsets):
        for j, dj in enumerate(offsets):
            rows, cols = np.arange(h) + di, np.arange(w) + dj
            if padding == "circular":
                rows, cols = rows % H, cols % Wd
            inside = (((rows >= 0) & (rows < H))[:, None] & ((cols >= 0) & (cols < Wd))[None])
            shifted = y[:, :, np.clip(rows, 0, H - 1)][:, :, :, np.clip(cols, 0, Wd - 1)]
            z += np.einsum("oc,nchw->nohw", W[:, :, i, j], shifted * inside)
    return z / math.sqrt(C * k * k)


def reference_forward(x, filters, acts, centring, arch):
    """Features (d, n), every layer's input and pre-activation, all in float64."""
    y = np.asarray(x, dtype=np.float64)
    inputs, pre = [], []
    for layer, (W, act, m) in enumerate(zip(filters, acts, centring, strict=True), start=1):
        inputs.append(y)
        z = reference_conv(y, np.asarray(W, dtype=np.float64), arch.padding)
        pre.append(z)
        y = act.fn(z) - m
        if layer in arch.pool:
            n, c, h, w = y.shape
            y = y.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    n, c, h, w = y.shape
    if arch.readout == "flatten":
        return y.reshape(n, -1).T / math.sqrt(c * h * w), inputs, pre
    return y.mean(axis=(2, 3)).T / math.sqrt(c), inputs, pre


def ternary_filters(net):
    k = net.arch.filter_size
    return [W.to_dense().reshape(W.shape[0], -1, k, k) for W in net.weights]


def threshold_margin(pre, acts):
    """Smallest distance of a pre-activation from a threshold of its layer's activation."""
    return min((np.min(np.abs(z[..., None] - np.array(act.breakpoints)))
                for z, act in zip(pre, acts, strict=True) if act.breakpoints), default=np.inf)


def network(arch, acts, eps=0.5, seed=1):
    return CompressedCNN.random(input_shape(arch), CHANNELS, acts, eps, 1.0, arch, seed=seed)


# -- packed inference against the literal convolution ---------------------------------------------

@pytest.mark.parametrize("arch", architectures(), ids=ConvArchitecture.describe)
def test_packed_step_network_equals_dense_float64_forward(arch, steps):
    net = network(arch, steps)
    x = images(net.input_shape)
    expected, _, pre = reference_forward(x, ternary_filters(net), net.activations,
                                         net.centring, arch)
    assert threshold_margin(pre, net.activations) > 1e-9
    F = net.features(x, np.float64)
    assert F.shape == (net.feature_count, N_IMAGES) and F.dtype == np.float64
    np.testing.assert_allclose(F, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("arch", architectures(), ids=ConvArchitecture.describe)
def test_packed_step_network_float32_layer_by_layer(arch, steps):
    net = network(arch, steps)
    _, inputs, _ = reference_forward(images(net.input_shape), ternary_filters(net),
                                     net.activations, net.centring, arch)
    for y, W, act in zip(inputs, net.weights, net.activations, strict=True):
        y32 = y.astype(np.float32)
        z32 = _convolve(y32, W.matmul, arch).transpose(1, 0, 2, 3)
        z64 = reference_conv(y32.astype(np.float64), W.to_dense().reshape(
            W.shape[0], -1, arch.filter_size, arch.filter_size), arch.padding)
        assert z32.dtype == np.float32
        np.testing.assert_allclose(z32, z64, rtol=0, atol=1e-5)
        near = np.min(np.abs(z64[..., None] - np.array(act.breakpoints)), axis=-1) <= 1e-5
        # The same level (float32 levels from float32 pre-activations) away from ties.
        assert np.array_equal(act.fn(z32)[~near], act.fn(z64).astype(np.float32)[~near])


@pytest.mark.parametrize("arch", architectures(), ids=ConvArchitecture.describe)
def test_packed_relu_network_equals_dense_forward(arch):
    net = network(arch, ["relu", "relu"], eps=0.9)
    x = images(net.input_shape)
    expected, _, _ = reference_forward(x, ternary_filters(net), net.activations, net.centring,
                                       arch)
    F32 = net.features(x)
    assert F32.dtype == np.float32
    np.testing.assert_allclose(F32, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(net.features(x, np.float64), expected, rtol=0, atol=1e-10)


def test_features_do_not_depend_on_the_blocks(monkeypatch, steps):
    arch = ConvArchitecture(2, 3, "same", (1,), "gap")
    net = network(arch, steps)
    x = images(net.input_shape)
    whole = net.features(x)
    # One image per block.
    monkeypatch.setattr(compressed_cnn, "_BLOCK_BYTES", 1)
    np.testing.assert_array_equal(net.features(x), whole)


def test_features_give_the_kernel_convention():
    # One 1 x 1 "convolution" of a 1 x 2 grid with filter 1: features^T features is the CK,
    # flatten: mean_a y_i(a) y_j(a); gap: mean_{a,b} y_i(a) y_j(b).
    x = np.array([[[[1.0, 3.0]]], [[[-2.0, 0.5]]]])
    y = np.maximum(x.reshape(2, 2), 0)
    for readout, ck in (("flatten", y @ y.T / 2), ("gap", np.outer(y.mean(1), y.mean(1)))):
        arch = ConvArchitecture(1, 1, "same", readout=readout)
        net = DenseCNN((np.ones((1, 1, 1, 1)),), ("relu",), (0.0,), arch, (1, 1, 2))
        F = net.features(x, np.float64)
        np.testing.assert_allclose(F.T @ F, ck, rtol=1e-15)


# -- weights --------------------------------------------------------------------------------------

@pytest.mark.parametrize("eps", [0.0, 0.5, 0.9])
def test_weights_reproduce_sample_weights_ternary(eps):
    arch = ConvArchitecture(2, 3)
    net = CompressedCNN.random((C0, 6, 6), CHANNELS, ["relu", "tanh"], eps, 1.0, arch, seed=4)
    rng = np.random.default_rng(4)
    for W, shape in zip(net.weights, [(5, C0, 3, 3), (4, 5, 3, 3)], strict=True):
        assert W.shape == (shape[0], shape[1] * 9)
        assert W.scale == 1.0 / math.sqrt(1.0 - eps)
        np.testing.assert_array_equal(W.to_dense().reshape(shape),
                                      sample_weights(f"ternary:{eps}", shape, rng))
    assert net.seed == 4 and net.eps == eps and net.input_shape == (C0, 6, 6)


def test_dense_weights_reproduce_sample_weights_gaussian():
    arch = ConvArchitecture(2, 2, "valid")
    net = DenseCNN.random((C0, 6, 6), CHANNELS, "relu,relu", 1.0, arch, seed=9)
    rng = np.random.default_rng(9)
    for W, shape in zip(net.weights, [(5, C0, 2, 2), (4, 5, 2, 2)], strict=True):
        np.testing.assert_array_equal(W, sample_weights("gaussian", shape, rng, np.float32))


def test_entropy_coded_signs_rebuild_the_same_network(steps):
    arch = ConvArchitecture(2, 3, "circular", (1,), "flatten")
    net = network(arch, steps, eps=0.9)
    decoded = []
    for W in net.weights:
        S = W.to_signs()
        D = decode_ternary(encode_ternary(S))
        assert D.dtype == np.int8
        np.testing.assert_array_equal(D, S)
        decoded.append(TernaryMatrix(D, W.scale))
    rebuilt = CompressedCNN(tuple(decoded), net.activations, net.centring, arch,
                            net.input_shape, net.eps)
    x = images(net.input_shape)
    np.testing.assert_array_equal(rebuilt.features(x), net.features(x))


# -- the dense baseline ---------------------------------------------------------------------------

@pytest.mark.parametrize("arch", architectures()[::3], ids=ConvArchitecture.describe)
def test_dense_network_equals_direct_computation(arch, steps):
    shape = input_shape(arch)
    x = images(shape, seed=2)
    relu = DenseCNN.random(shape, CHANNELS, "relu,relu", 1.0, arch, seed=3)
    expected, _, _ = reference_forward(x, relu.weights, relu.activations, relu.centring, arch)
    np.testing.assert_allclose(relu.features(x), expected, rtol=0, atol=1e-5)
    # The same class evaluates given filters (here rounded to multiples of 1/2), with steps.
    quantized = tuple(np.round(W * 2) / 2 for W in relu.weights)
    stepped = DenseCNN(quantized, steps, relu.centring, arch, shape)
    expected, _, pre = reference_forward(x, quantized, steps, relu.centring, arch)
    assert threshold_margin(pre, stepped.activations) > 1e-9
    np.testing.assert_allclose(stepped.features(x, np.float64), expected, rtol=0, atol=1e-10)


def test_dense_and_compressed_agree_on_the_same_filters(steps):
    arch = ConvArchitecture(2, 3, "same", (1,), "gap")
    net = network(arch, steps)
    dense = DenseCNN(tuple(ternary_filters(net)), net.activations, net.centring, arch,
                     net.input_shape)
    x = images(net.input_shape)
    np.testing.assert_allclose(dense.features(x, np.float64), net.features(x, np.float64),
                               rtol=0, atol=1e-12)


def test_layer_values_and_feature_count():
    arch = ConvArchitecture(2, 3, "valid", (1,), "flatten")
    net = network(arch, ["relu", "relu"])
    # 8 x 10 -> conv 6 x 8 (5 channels) -> pool 3 x 4 -> conv 1 x 2 (4 channels).
    assert net.layer_values == (5 * 6 * 8, 4 * 1 * 2)
    assert net.feature_count == 4 * 1 * 2
    gap = network(ConvArchitecture(2, 3, "same", (1,), "gap"), ["relu", "relu"])
    assert gap.layer_values == (5 * 6 * 8, 4 * 3 * 4) and gap.feature_count == 4


# -- validation -----------------------------------------------------------------------------------

def test_rejects_bad_images():
    arch = ConvArchitecture(2, 3)
    net = CompressedCNN.random((C0, 6, 6), CHANNELS, "relu,relu", 0.5, 1.0, arch)
    dense = DenseCNN.random((C0, 6, 6), CHANNELS, "relu,relu", 1.0, arch)
    x = images((C0, 6, 6))
    for model in (net, dense):
        for bad in (x[:, :1], x[:, :, :5], x[0], x[:0], np.zeros((3, 6, 6, C0))):
            with pytest.raises(ValueError, match=r"shape \(n, 2, 6, 6\)"):
                model.features(bad)
        for value in (np.nan, np.inf):
            y = x.copy()
            y[2, 1, 3, 4] = value
            with pytest.raises(ValueError, match="finite"):
                model.features(y)
        with pytest.raises(ValueError, match="real"):
            model.features(x.astype(complex))
        for dtype in (np.float16, np.int64):
            with pytest.raises(ValueError, match="dtype"):
                model.features(x, dtype)


def test_rejects_bad_parameters():
    arch = ConvArchitecture(2, 3)
    for eps in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            CompressedCNN.random((1, 6, 6), (2, 2), "relu,relu", eps, 1.0, arch)
    for channels, match in (((2,), "1 activations|2 activations"), ((2, 0), ">= 1"),
                            ((2, 2.5), ">= 1"), ((2, True), ">= 1")):
        with pytest.raises(ValueError, match=match):
            CompressedCNN.random((1, 6, 6), channels, "relu,relu", 0.5, 1.0, arch)
        with pytest.raises(ValueError, match=match):
            DenseCNN.random((1, 6, 6), channels, "relu,relu", 1.0, arch)
    for shape in ((1, 6), (0, 6, 6), (1, 6, 6.0)):
        with pytest.raises(ValueError, match="input_shape"):
            CompressedCNN.random(shape, (2, 2), "relu,relu", 0.5, 1.0, arch)
    for tau0 in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="tau0"):
            DenseCNN.random((1, 6, 6), (2, 2), "relu,relu", tau0, arch)
    with pytest.raises(ValueError, match="ConvArchitecture"):
        CompressedCNN.random((1, 6, 6), (2, 2), "relu,relu", 0.5, 1.0, "same")
    with pytest.raises(ValueError, match="architecture has 2 layers"):
        CompressedCNN.random((1, 6, 6), (2, 2, 2), "relu,relu,relu", 0.5, 1.0, arch)


def test_architecture_errors_come_from_conv_architecture():
    with pytest.raises(ValueError, match="does not fit"):
        CompressedCNN.random((1, 4, 4), (2, 2), "relu,relu", 0.5, 1.0,
                             ConvArchitecture(2, 3, "valid"))
    with pytest.raises(ValueError, match="even grid"):
        DenseCNN.random((1, 5, 6), (2, 2), "relu,relu", 1.0, ConvArchitecture(2, 3, pool=(1,)))


def test_rejects_inconsistent_weights():
    arch = ConvArchitecture(1, 3)
    W = TernaryMatrix(np.ones((2, 9), dtype=np.int8), 1.0)
    with pytest.raises(ValueError, match="input channels"):
        CompressedCNN((W,), ("relu",), (0.0,), arch, (2, 6, 6), 0.5)
    with pytest.raises(ValueError, match="multiple of k"):
        CompressedCNN((TernaryMatrix(np.ones((2, 8), dtype=np.int8), 1.0),), ("relu",), (0.0,),
                      arch, (1, 6, 6), 0.5)
    with pytest.raises(ValueError, match="TernaryMatrix"):
        CompressedCNN((np.ones((2, 9)),), ("relu",), (0.0,), arch, (1, 6, 6), 0.5)
    with pytest.raises(ValueError, match="centring"):
        CompressedCNN((W,), ("relu",), (0.0, 1.0), arch, (1, 6, 6), 0.5)
    with pytest.raises(ValueError, match=r"\(C_l, C_\{l-1\}, 3, 3\)"):
        DenseCNN((np.ones((2, 1, 2, 2)),), ("relu",), (0.0,), arch, (1, 6, 6))
    with pytest.raises(ValueError, match="input channels"):
        DenseCNN((np.ones((2, 1, 3, 3)), np.ones((2, 3, 3, 3))), ("relu", "relu"), (0.0, 0.0),
                 ConvArchitecture(2, 3), (1, 6, 6))
