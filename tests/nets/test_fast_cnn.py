"""The fast CNN paths against independent references: chunked im2col convolution, the padded
col2im, the unrolled 2 x 2 max pooling, ReLU fused into max pooling, and a short training run
of the small CNN against the same steps written with NumPy sliding windows.

The references are plain NumPy (``sliding_window_view`` and ``einsum``), written from the
defining sums, not from the kernels under test. float64 checks are tight (1e-12); float32
ones allow the round-off of sums in another order (1e-5 relative).
"""

import numba
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import nets.layers as layers
from nets.layers import Activation, Conv2d, MaxPool2d
from nets.losses import softmax_cross_entropy
from nets.model import small_cnn
from nets.optim import Adam


def windows(x, k, stride, pad):
    """(n, c, H', W', k, k) view: windows[n, c, r, q, i, j] = xpad[n, c, r s + i, q s + j]."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    return sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]


def ref_conv(x, W, b, stride, pad):
    return np.einsum("ncrqij,ocij->norq", windows(x, W.shape[2], stride, pad), W,
                     optimize=True) + b[:, None, None]


def ref_conv_backward(x, W, g, stride, pad):
    """dW, db, dx of y = conv(x) for dL/dy = g, from the same sums."""
    k = W.shape[2]
    dW = np.einsum("norq,ncrqij->ocij", g, windows(x, k, stride, pad), optimize=True)
    n, c, h, w = x.shape
    oh, ow = g.shape[2:]
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += np.einsum(
                "norq,oc->ncrq", g, W[:, :, i, j])
    return dW, g.sum(axis=(0, 2, 3)), dxp[:, :, pad:pad + h, pad:pad + w]


def ref_maxpool(x, k):
    """Values and first-argmax routing of non-overlapping k x k max pooling."""
    n, c, h, w = x.shape
    oh, ow = h // k, w // k
    win = x[:, :, :oh * k, :ow * k].reshape(n, c, oh, k, ow, k).transpose(0, 1, 2, 4, 3, 5)
    win = win.reshape(n, c, oh, ow, k * k)
    return win.max(axis=-1), win.argmax(axis=-1)


def ref_maxpool_backward(g, arg, k, x_shape):
    n, c, oh, ow = g.shape
    dx = np.zeros(x_shape, dtype=g.dtype)
    view = dx[:, :, :oh * k, :ow * k].reshape(n, c, oh, k, ow, k)
    nn, cc, rr, qq = np.indices(g.shape)
    view[nn, cc, rr, arg // k, qq, arg % k] = g
    return dx


def tol(dtype):
    return {"rtol": 1e-12, "atol": 1e-12} if dtype == np.float64 else \
        {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("c_in", "kernel", "stride", "pad", "size"),
                         [(1, 3, 1, 1, 28), (3, 3, 1, 0, 9), (2, 3, 2, 1, 7), (2, 2, 2, 0, 6),
                          (3, 3, 3, 2, 5), (2, 5, 1, 2, 8)])
def test_conv_matches_sliding_window_reference(rng, monkeypatch, dtype, c_in, kernel, stride,
                                               pad, size):
    # Chunks of one sample on two threads: the chunk loop, the thread split and the sum of
    # the threads' partial dW all run on a small batch (one thread is the training test's).
    monkeypatch.setattr(layers, "_CHUNK_BYTES", 1)
    layer = Conv2d(c_in, 4, kernel, stride=stride, padding=pad, rng=rng, dtype=dtype)
    layer.b[:] = rng.standard_normal(4)
    x = rng.standard_normal((5, c_in, size, size + 1)).astype(dtype)
    previous = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        y = layer.forward(x, train=True)
        g = rng.standard_normal(y.shape).astype(dtype)
        dx = layer.backward(g)
        y_eval = layer.forward(x, train=False)
    finally:
        numba.set_num_threads(previous)
    x64, W64, g64 = x.astype(np.float64), layer.W.astype(np.float64), g.astype(np.float64)
    np.testing.assert_allclose(y, ref_conv(x64, W64, layer.b.astype(np.float64), stride, pad),
                               **tol(dtype))
    np.testing.assert_array_equal(y_eval, y)
    dW, db, dx_ref = ref_conv_backward(x64, W64, g64, stride, pad)
    for got, want in ((layer.dW, dW), (layer.db, db), (dx, dx_ref)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol(dtype))


def test_conv_reuses_its_patch_buffer_and_frees_it_for_inference(rng):
    layer = Conv2d(2, 3, 3, padding=1, rng=rng)
    x = rng.standard_normal((4, 2, 6, 6)).astype(np.float32)
    layer.forward(x)
    buffer = layer._cols
    layer.forward(x[::-1])
    assert layer._cols is buffer
    layer.forward(x, train=False)
    assert layer._cols is None
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(np.ones((4, 3, 6, 6), dtype=np.float32))


def scatter_col2im(cols, stride, pad, dx):
    """The scatter that ``_col2im`` replaced, in its loop order (for the bitwise check)."""
    kh, kw, oh, ow = cols.shape[2:]
    h, w = dx.shape[2:]
    dx[:] = 0
    for i in range(kh):
        for j in range(kw):
            for r in range(oh):
                hh = r * stride + i - pad
                if 0 <= hh < h:
                    for q in range(ow):
                        ww = q * stride + j - pad
                        if 0 <= ww < w:
                            dx[:, :, hh, ww] += cols[:, :, i, j, r, q]


@pytest.mark.parametrize(("kernel", "stride", "pad"), [(3, 1, 1), (3, 2, 0), (2, 3, 2)])
def test_padded_col2im_is_bitwise_the_scatter(rng, kernel, stride, pad):
    h, w = 7, 8
    oh, ow = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    cols = rng.standard_normal((2, 3, kernel, kernel, oh, ow))
    dx, want = np.empty((2, 3, h, w)), np.empty((2, 3, h, w))
    layers._col2im(cols, stride, pad, dx)
    scatter_col2im(cols, stride, pad, want)
    np.testing.assert_array_equal(dx, want)


def pool_input(rng, shape):
    """Random values with ties, zeros and all-negative windows (the cases routing decides)."""
    x = rng.integers(-3, 4, shape).astype(np.float64)
    x[0, 0, :4, :4] = -1.0
    x[0, 1, :2, :2] = 0.0
    return x


@pytest.mark.parametrize(("k", "size"), [(2, 8), (2, 9), (3, 10)])
def test_maxpool_matches_reference(rng, k, size):
    x = pool_input(rng, (2, 3, size, size + 1))
    layer = MaxPool2d(k)
    y = layer.forward(x)
    want, arg = ref_maxpool(x, k)
    np.testing.assert_array_equal(y, want)
    g = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(layer.backward(g), ref_maxpool_backward(g, arg, k, x.shape))


@pytest.mark.parametrize(("k", "size"), [(2, 8), (2, 9), (3, 10)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_fused_into_maxpool_equals_the_two_layers(rng, k, size, dtype):
    x = pool_input(rng, (2, 3, size, size + 1)).astype(dtype)
    relu, pool, fused = Activation("relu"), MaxPool2d(k), MaxPool2d(k)
    y = fused.forward_relu(x)
    np.testing.assert_array_equal(y, pool.forward(relu.forward(x)))
    g = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(fused.backward(g), relu.backward(pool.backward(g)))


def test_sequential_fuses_relu_and_pool_with_the_same_gradients(rng):
    model = small_cnn((1, 12, 12), classes=3, rng=1, dtype=np.float64)
    x = rng.standard_normal((4, 1, 12, 12))
    out = model.forward(x, train=True)
    dx = model.backward(np.ones_like(out), input_grad=True)
    grads = [g.copy() for g in model.grads()]
    with pytest.raises(RuntimeError, match="forward"):
        model.layers[1].backward(np.ones((4, 32, 12, 12)))
    # Layer by layer, ReLU and pooling apart.
    h = x
    for layer in model.layers:
        h = layer.forward(h, True)
    np.testing.assert_array_equal(h, out)
    d = np.ones_like(out)
    for layer in model.layers[::-1]:
        d = layer.backward(d)
    np.testing.assert_array_equal(d, dx)
    for got, want in zip(model.grads(), grads, strict=True):
        np.testing.assert_array_equal(got, want)


class ReferenceCNN:
    """``small_cnn`` written with the NumPy references above, in float32."""

    def __init__(self, model):
        self.params = [p.copy() for p in model.params()]

    def step(self, x, y, opt):
        W1, b1, W2, b2, W3, b3, W4, b4 = self.params
        a1 = ref_conv(x, W1, b1, 1, 1)
        p1, arg1 = ref_maxpool(np.maximum(a1, 0), 2)
        a2 = ref_conv(p1, W2, b2, 1, 1)
        p2, arg2 = ref_maxpool(np.maximum(a2, 0), 2)
        f = p2.reshape(len(x), -1)
        h = np.maximum(f @ W3 + b3, 0)
        loss, g = softmax_cross_entropy(h @ W4 + b4, y)
        dW4, db4 = h.T @ g, g.sum(axis=0)
        gh = (g @ W4.T) * (h > 0)
        dW3, db3 = f.T @ gh, gh.sum(axis=0)
        g2 = ref_maxpool_backward((gh @ W3.T).reshape(p2.shape), arg2, 2, a2.shape) * (a2 > 0)
        dW2, db2, gp1 = ref_conv_backward(p1, W2, g2, 1, 1)
        g1 = ref_maxpool_backward(gp1, arg1, 2, a1.shape) * (a1 > 0)
        dW1, db1, _ = ref_conv_backward(x, W1, g1, 1, 1)
        grads = [dW1, db1, dW2, db2, dW3, db3, dW4, db4]
        opt.step(self.params, [g.astype(np.float32) for g in grads])
        return loss


def test_short_training_run_matches_the_reference(rng):
    # MNIST-shaped images whose class is the brighter quadrant: learnable in a few steps.
    n, batch = 128, 32
    y = rng.integers(0, 4, n)
    X = rng.random((n, 1, 28, 28), dtype=np.float32) * 0.5
    for label in range(4):
        r, q = divmod(label, 2)
        X[y == label, :, 14 * r:14 * r + 14, 14 * q:14 * q + 14] += 0.5
    model = small_cnn(classes=4, rng=3)
    ref = ReferenceCNN(model)
    opt, ref_opt = Adam(lr=1e-3), Adam(lr=1e-3)
    losses, ref_losses = [], []
    for i in range(0, n, batch):
        xb, yb = X[i:i + batch], y[i:i + batch]
        loss, grad = softmax_cross_entropy(model.forward(xb, train=True), yb)
        model.backward(grad)
        opt.step(model.params(), model.grads())
        losses.append(loss)
        ref_losses.append(ref.step(xb, yb, ref_opt))
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
    assert losses[-1] < losses[0]
    for p, q in zip(model.params(), ref.params, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-5)
