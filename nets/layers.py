"""Layers of the CPU training engine: dense, convolution, pooling, flatten, activations.

Every layer maps a batch to a batch and caches, during ``forward(x, train=True)``, what its
``backward`` needs; ``backward(grad)`` takes dL/d(output) and returns dL/d(input), storing the
parameter gradients so that ``grads()[k]`` pairs with ``params()[k]``. Images are NCHW
(batch, channels, height, width). Parameters are float32 by default (float64 for gradient
checks); inputs are cast to the layer's dtype.

A layer built with ``trainable=False`` keeps its weights fixed: ``params()`` and ``grads()`` are
empty and ``backward`` computes only the input gradient (the random-features setting, where
hidden layers are frozen and only a readout is trained).
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numba
import numpy as np
import threadpoolctl

from ntk.activations import Activation as _ScalarActivation
from ntk.activations import activation as _lookup_activation
from ntk.activations import step_activation
from ntklc.errors import InputError

__all__ = [
    "Activation",
    "AvgPool2d",
    "Conv2d",
    "Dense",
    "Flatten",
    "Layer",
    "MaxPool2d",
    "init_weights",
]

INITS = ("he", "glorot", "zeros")


def init_weights(shape: tuple[int, ...], fan_in: int, fan_out: int, init: str,
                 rng: np.random.Generator | None, dtype=np.float32) -> np.ndarray:
    """Initial weights.

    * ``"he"`` (Kaiming normal): W ~ N(0, 2 / fan_in), which keeps the second moment of ReLU
      pre-activations constant through depth;
    * ``"glorot"`` (Xavier uniform): W ~ U(-a, a) with a = sqrt(6 / (fan_in + fan_out));
    * ``"zeros"``: all zeros (no randomness; used by ``Sequential.load`` before filling in).

    Args:
        shape: shape of the weight array.
        fan_in, fan_out: inputs and outputs per unit (``in_ch * k * k`` for a convolution).
        init: one of ``"he"``, ``"glorot"``, ``"zeros"``.
        rng: the only source of randomness; required unless ``init == "zeros"``.
        dtype: dtype of the result.

    Raises:
        InputError: unknown ``init``, or missing ``rng``.
    """
    if init not in INITS:
        raise InputError(f"unknown init {init!r}; known: {', '.join(INITS)}")
    if init == "zeros":
        return np.zeros(shape, dtype=dtype)
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"init {init!r} needs rng, a numpy.random.Generator")
    if init == "he":
        w = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
    else:
        a = math.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-a, a, size=shape)
    return w.astype(dtype)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _at_b(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a^T b for a (k, m) and b (k, n), with the larger of m, n as the rows of the BLAS product.

    Weight gradients sum over a long k (batch times output pixels). Multi-threaded OpenBLAS
    splits such products badly when the result has fewer rows than columns: on two shared cores
    (64 x 25088) @ (25088 x 288) took 450 ms against 16 ms for the transposed product.
    """
    return a.T @ b if a.shape[1] >= b.shape[1] else (b.T @ a).T


class Layer:
    """Base class: a layer without parameters.

    Attributes:
        trainable: whether ``params()`` exposes the weights to an optimiser.
    """

    trainable: bool = False

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        """Output for the batch ``x``; with ``train`` the layer caches what backward needs."""
        raise NotImplementedError

    def backward(self, grad: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dL/d(input) from dL/d(output) of the last training forward.

        Args:
            grad: dL/d(output), same shape as the output.
            input_grad: compute dL/d(input); ``False`` (the bottom trainable layer of a model)
                stores the parameter gradients only and returns ``None``.
        """
        raise NotImplementedError

    def params(self) -> list[np.ndarray]:
        """Trainable arrays, updated in place by optimisers (empty when frozen)."""
        return []

    def grads(self) -> list[np.ndarray]:
        """Gradients of the last backward, paired with ``params()``."""
        return []

    def arrays(self) -> dict[str, np.ndarray]:
        """All stored arrays by name, trainable or not (what ``save`` writes)."""
        return {}

    def config(self) -> dict:
        """JSON-serialisable constructor arguments (what ``save`` writes)."""
        return {"type": type(self).__name__}

    def _cache(self, train: bool, **values) -> None:
        # Inference must not hold on to batch-sized arrays.
        for key, value in values.items():
            setattr(self, key, value if train else None)

    def _cached(self, value):
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a forward(x, train=True) "
                               "first")
        return value


class _ParamLayer(Layer):
    """A layer with weight ``W``, bias ``b`` and their gradients ``dW``, ``db``."""

    def params(self) -> list[np.ndarray]:
        return [self.W, self.b] if self.trainable else []

    def grads(self) -> list[np.ndarray]:
        return [self.dW, self.db] if self.trainable else []

    def arrays(self) -> dict[str, np.ndarray]:
        return {"W": self.W, "b": self.b}


class Dense(_ParamLayer):
    """Fully connected layer ``y = x W + b``.

    Shapes: x (n, in_features), W (in_features, out_features), b (out_features,),
    y (n, out_features). Backward: dW = x^T g, db = sum_rows g, dx = g W^T; all three are BLAS
    products on C-contiguous arrays.

    Args:
        in_features, out_features: layer sizes.
        rng: generator for the initial weights (required unless ``init == "zeros"``).
        init: ``"he"`` (default), ``"glorot"`` or ``"zeros"``; the bias starts at zero.
        trainable: ``False`` freezes the layer.
        dtype: float32 (default) or float64.
    """

    def __init__(self, in_features: int, out_features: int, *,
                 rng: np.random.Generator | None = None, init: str = "he",
                 trainable: bool = True, dtype=np.float32):
        self.in_features = _positive_int("in_features", in_features)
        self.out_features = _positive_int("out_features", out_features)
        self.dtype = np.dtype(dtype)
        self.trainable = bool(trainable)
        self.W = init_weights((self.in_features, self.out_features), self.in_features,
                              self.out_features, init, rng, self.dtype)
        self.b = np.zeros(self.out_features, dtype=self.dtype)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self._x = None

    def forward(self, x, train=True):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise InputError(f"Dense({self.in_features}, {self.out_features}) expects input "
                             f"of shape (n, {self.in_features}), got {x.shape}")
        self._cache(train, _x=x)
        y = x @ self.W
        y += self.b
        return y

    def backward(self, grad, input_grad=True):
        x = self._cached(self._x)
        grad = np.ascontiguousarray(grad, dtype=self.dtype)
        if self.trainable:
            np.copyto(self.dW, _at_b(x, grad))
            np.sum(grad, axis=0, out=self.db)
        return grad @ self.W.T if input_grad else None

    def config(self):
        return {"type": "Dense", "in_features": self.in_features,
                "out_features": self.out_features, "trainable": self.trainable}


#: ReLU of a feature map (3-D or more) with at least this many entries is split by samples;
#: smaller arrays and dense-layer activations stay on the calling thread, where measured
#: dispatch overhead outweighed the gain (MLP 784-1024-1024-10, batch 128, two threads).
_PARALLEL_MIN_SIZE = 1 << 16


@cache
def _executor(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ntklc-nets")


@cache
def _blas() -> threadpoolctl.ThreadpoolController:
    return threadpoolctl.ThreadpoolController()


def _batch_parallel(fn, n: int) -> None:
    """Call ``fn(s)`` on contiguous slices s of range(n), one per thread, BLAS on one thread.

    The thread count is Numba's (``numba.set_num_threads``, which ``ntklc train --threads``
    sets). Convolutions and pooling are chains of small per-sample products and memory-bound
    loops; split by samples, each thread runs its whole chain on its own data (the Numba
    kernels and NumPy's products release the GIL). On two cores this beats threaded BLAS on
    tiny per-sample GEMMs and also prange loops, whose thread pool competes with OpenBLAS's.
    OpenBLAS's idle workers still spin after every threaded product elsewhere in the model
    (e.g. a dense layer) and take a core from these threads unless ``OPENBLAS_THREAD_TIMEOUT``
    is small: the ``ntklc`` command sets it to 4 before NumPy loads (see docs/speed.md).
    """
    workers = min(numba.get_num_threads(), n)
    if workers <= 1:
        fn(slice(0, n))
        return
    bounds = np.linspace(0, n, workers + 1).astype(int)
    slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    with _blas().limit(limits=1, user_api="blas"):
        # list() re-raises here an exception raised in any worker.
        list(_executor(workers).map(fn, slices))


# All kernels release the GIL: _batch_parallel runs them on slices of the batch in threads.
@numba.njit(cache=True, nogil=True)
def _im2col(x, stride, pad, cols):
    """cols[n, c, i, j, r, q] = x[n, c, r s + i - pad, q s + j - pad], zero outside x.

    The output pixel (r, q) is the last, contiguous axis: the inner loop copies a row of x
    into a row of cols, and ``W (o, c k k) @ cols[n] (c k k, H' W')`` is directly the NCHW
    output of sample n, with no transpose.
    """
    n_batch, channels, height, width = x.shape
    _, _, kh, kw, out_h, out_w = cols.shape
    for n in range(n_batch):
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    for r in range(out_h):
                        h = r * stride + i - pad
                        if h < 0 or h >= height:
                            cols[n, c, i, j, r, :] = 0.0
                            continue
                        for q in range(out_w):
                            w = q * stride + j - pad
                            cols[n, c, i, j, r, q] = x[n, c, h, w] if 0 <= w < width else 0.0


@numba.njit(cache=True, nogil=True)
def _col2im(cols, stride, pad, dx):
    """The adjoint of ``_im2col``: dx[n, c, h, w] = sum of the cols entries that copied it.

    Each channel is accumulated in a zero-padded plane (H + 2p, W + 2p), so the inner loop
    has no bounds test (entries that fall on the padding are dropped when the interior is
    copied out), in the same order as a direct scatter into dx: the sums are bit for bit
    those of the scatter.
    """
    n_batch, channels, kh, kw, out_h, out_w = cols.shape
    height, width = dx.shape[2], dx.shape[3]
    plane = np.empty((height + 2 * pad, width + 2 * pad), dtype=dx.dtype)
    for n in range(n_batch):
        for c in range(channels):
            plane[:] = 0.0
            for i in range(kh):
                for j in range(kw):
                    for r in range(out_h):
                        dst = plane[r * stride + i]
                        src = cols[n, c, i, j, r]
                        for q in range(out_w):
                            dst[q * stride + j] += src[q]
            dx[n, c] = plane[pad:pad + height, pad:pad + width]


#: Samples per im2col chunk: about this many bytes of patches, so that a chunk's patch matrix
#: is still in cache when its product reads it (and dcols when col2im reads it).
_CHUNK_BYTES = 1 << 20


def _chunks(s: slice, per_sample_bytes: int):
    """Consecutive sub-slices of ``s`` of about ``_CHUNK_BYTES`` each."""
    m = max(1, _CHUNK_BYTES // per_sample_bytes)
    return [slice(i, min(i + m, s.stop)) for i in range(s.start, s.stop, m)]


class Conv2d(_ParamLayer):
    """2-D convolution (cross-correlation, as in PyTorch) by im2col and one GEMM.

    y[n, o, r, q] = b[o] + sum_{c, i, j} W[o, c, i, j] x[n, c, r s + i - p, q s + j - p]
    (zero outside x), with output size H' = (H + 2p - k) // s + 1 (same for width).

    The patches of each sample form a matrix ``cols[n]`` of shape (c k k, H' W'), so the
    forward pass is one batched product ``W cols`` (BLAS) that is already NCHW, and backward is
    dW = sum_n g_n cols_n^T, dcols = W^T g, dx = col2im(dcols). im2col/col2im are Numba loops
    whose inner loop runs along an image row. Each thread walks its samples in chunks of about
    ``_CHUNK_BYTES`` of patches, so that a product reads the patches (or col2im the dcols) of a
    chunk while they are still in cache; the patches of a training batch are kept for backward
    in one buffer that the next batch of the same shape reuses.

    Shapes: x (n, in_ch, H, W), W (out_ch, in_ch, k, k), b (out_ch,), y (n, out_ch, H', W').

    Args:
        in_ch, out_ch: input and output channels.
        kernel: side k of the square kernel.
        stride, padding: s >= 1 and zero padding p >= 0 on every side.
        rng, init, trainable, dtype: as for :class:`Dense` (fan_in = in_ch k^2).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0,
                 *, rng: np.random.Generator | None = None, init: str = "he",
                 trainable: bool = True, dtype=np.float32):
        self.in_ch = _positive_int("in_ch", in_ch)
        self.out_ch = _positive_int("out_ch", out_ch)
        self.kernel = _positive_int("kernel", kernel)
        self.stride = _positive_int("stride", stride)
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) \
                or padding < 0:
            raise InputError(f"padding must be a non-negative integer, got {padding!r}")
        self.padding = int(padding)
        self.dtype = np.dtype(dtype)
        self.trainable = bool(trainable)
        k = self.kernel
        self.W = init_weights((self.out_ch, self.in_ch, k, k), self.in_ch * k * k,
                              self.out_ch * k * k, init, rng, self.dtype)
        self.b = np.zeros(self.out_ch, dtype=self.dtype)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self._cols = None
        self._x_shape = None

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """(H', W') for an input of spatial size (height, width)."""
        k, s, p = self.kernel, self.stride, self.padding
        return (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1

    def forward(self, x, train=True):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        k, p = self.kernel, self.padding
        if x.ndim != 4 or x.shape[1] != self.in_ch:
            raise InputError(f"Conv2d({self.in_ch}, {self.out_ch}) expects NCHW input with "
                             f"{self.in_ch} channels, got shape {x.shape}")
        if min(x.shape[2], x.shape[3]) + 2 * p < k:
            raise InputError(f"Conv2d: input {x.shape[2]}x{x.shape[3]} with padding {p} is "
                             f"smaller than the {k}x{k} kernel")
        n = x.shape[0]
        out_h, out_w = self.output_shape(x.shape[2], x.shape[3])
        shape = (n, self.in_ch, k, k, out_h, out_w)
        if train:
            # Kept for backward and reused by the next batch of the same shape: a fresh
            # batch-sized array per step costs page faults on every first touch.
            if self._cols is None or self._cols.shape != shape:
                self._cols = np.empty(shape, dtype=self.dtype)
            cols = self._cols
        y = np.empty((n, self.out_ch, out_h * out_w), dtype=self.dtype)
        W = self.W.reshape(self.out_ch, -1)
        bias = self.b[:, None]
        per_sample = self.in_ch * k * k * out_h * out_w * self.dtype.itemsize

        def part(s):
            for c in _chunks(s, per_sample):
                # Inference needs the patches of one chunk at a time only.
                chunk = cols[c] if train else np.empty((c.stop - c.start, *shape[1:]),
                                                       dtype=self.dtype)
                _im2col(x[c], self.stride, p, chunk)
                # (o, c k k) @ (m, c k k, H'W') -> (m, o, H'W'), already NCHW.
                np.matmul(W, chunk.reshape(chunk.shape[0], -1, out_h * out_w), out=y[c])
                y[c] += bias

        _batch_parallel(part, n)
        if not train:
            self._cols = None
        self._x_shape = x.shape if train else None
        return y.reshape(n, self.out_ch, out_h, out_w)

    def backward(self, grad, input_grad=True):
        n, _, height, width = self._cached(self._x_shape)
        cols = self._cols
        grad = np.asarray(grad, dtype=self.dtype)
        out_h, out_w = self.output_shape(height, width)
        if grad.shape != (n, self.out_ch, out_h, out_w):
            raise InputError(f"Conv2d.backward: gradient of shape {grad.shape}, expected "
                             f"{(n, self.out_ch, out_h, out_w)}")
        g = np.ascontiguousarray(grad).reshape(n, self.out_ch, out_h * out_w)
        cols3 = cols.reshape(n, -1, out_h * out_w)
        WT = self.W.reshape(self.out_ch, -1).T
        dx = np.empty((n, self.in_ch, height, width), dtype=self.dtype) if input_grad else None
        partial = {}

        def part(s):
            dW = np.zeros((self.out_ch, cols3.shape[1]), dtype=self.dtype)
            db = np.zeros(self.out_ch, dtype=self.dtype)
            dcols = None
            for c in _chunks(s, cols3[0].nbytes):
                if self.trainable:
                    # dW = sum_n g_n cols_n^T, a chunk at a time while its patches are in cache.
                    dW += np.matmul(g[c], cols3[c].transpose(0, 2, 1)).sum(axis=0)
                    db += g[c].sum(axis=(0, 2))
                if input_grad:
                    m = c.stop - c.start
                    if dcols is None or dcols.shape[0] != m:
                        dcols = np.empty((m, *cols3.shape[1:]), dtype=self.dtype)
                    np.matmul(WT, g[c], out=dcols)
                    _col2im(dcols.reshape(m, *cols.shape[1:]), self.stride, self.padding,
                            dx[c])
            partial[s.start] = dW, db

        _batch_parallel(part, n)
        if self.trainable:
            # Summed in slice order: a given thread count always gives the same bits.
            keys = sorted(partial)
            np.copyto(self.dW.reshape(self.out_ch, -1), sum(partial[key][0] for key in keys))
            np.copyto(self.db, sum(partial[key][1] for key in keys))
        return dx

    def config(self):
        return {"type": "Conv2d", "in_ch": self.in_ch, "out_ch": self.out_ch,
                "kernel": self.kernel, "stride": self.stride, "padding": self.padding,
                "trainable": self.trainable}


@numba.njit(cache=True, nogil=True)
def _maxpool_forward(x, k, out, arg, relu):
    """out = max over each k x k window; arg = flat index i k + j of the (first) maximum.

    With ``relu``: out = max(window max, 0), which is the max pooling of relu(x) (the two
    commute), and arg = -1 where the window max is not positive: relu(x) is 0 there, so
    its gradient is 0. The 2 x 2 case is unrolled into branch-free selects.
    """
    n_batch, channels, out_h, out_w = out.shape
    for n in range(n_batch):
        for c in range(channels):
            xp = x[n, c]
            op = out[n, c]
            ap = arg[n, c]
            for r in range(out_h):
                for q in range(out_w):
                    if k == 2:
                        best = xp[2 * r, 2 * q]
                        best_at = 0
                        for t in range(1, 4):
                            v = xp[2 * r + t // 2, 2 * q + t % 2]
                            best_at = t if v > best else best_at
                            best = v if v > best else best
                    else:
                        best = xp[r * k, q * k]
                        best_at = 0
                        for i in range(k):
                            for j in range(k):
                                v = xp[r * k + i, q * k + j]
                                if v > best:
                                    best = v
                                    best_at = i * k + j
                    if relu:
                        # As relu then pooling: a NaN first entry stays NaN with no gradient.
                        best_at = best_at if best > 0 else -1
                        best = 0.0 if best <= 0 else best
                    op[r, q] = best
                    ap[r, q] = best_at


@numba.njit(cache=True, nogil=True)
def _maxpool_backward(grad, arg, k, dx):
    """Route each window's gradient to its maximum (windows do not overlap; none if arg < 0)."""
    n_batch, channels, out_h, out_w = grad.shape
    for n in range(n_batch):
        for c in range(channels):
            d = dx[n, c]
            gp = grad[n, c]
            ap = arg[n, c]
            d[:] = 0.0
            for r in range(out_h):
                for q in range(out_w):
                    a = ap[r, q]
                    if a < 0:
                        continue
                    if k == 2:
                        # Shifts: a // k and a % k with k unknown at compile time are
                        # integer divisions, the slowest part of this loop.
                        d[2 * r + (a >> 1), 2 * q + (a & 1)] = gp[r, q]
                    else:
                        d[r * k + a // k, q * k + a % k] = gp[r, q]


class _Pool2d(Layer):
    def __init__(self, k: int):
        self.k = _positive_int("k", k)
        self._x_shape = None

    def _check(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or min(x.shape[2], x.shape[3]) < self.k:
            raise InputError(f"{type(self).__name__}({self.k}) expects NCHW input at least "
                             f"{self.k}x{self.k}, got shape {x.shape}")
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float32)
        return np.ascontiguousarray(x)

    def config(self):
        return {"type": type(self).__name__, "k": self.k}


class MaxPool2d(_Pool2d):
    """Max pooling over non-overlapping k x k windows (stride k).

    y[n, c, r, q] = max_{i, j < k} x[n, c, r k + i, q k + j]; H' = H // k (trailing rows and
    columns that do not fill a window are dropped, as in PyTorch). The gradient goes to the
    first maximum of each window.
    """

    def __init__(self, k: int):
        super().__init__(k)
        self._arg = None

    def forward(self, x, train=True):
        x = self._check(x)
        n, c, h, w = x.shape
        out = np.empty((n, c, h // self.k, w // self.k), dtype=x.dtype)
        arg = np.empty(out.shape, dtype=np.int32)
        _batch_parallel(lambda s: _maxpool_forward(x[s], self.k, out[s], arg[s], False), n)
        self._cache(train, _arg=arg, _x_shape=x.shape)
        return out

    def forward_relu(self, x, train=True):
        """Max pooling of relu(x) in one pass over x: ``Activation("relu")`` then this layer.

        Equal to the two layers run in turn, values and gradients: max and ReLU commute, and
        ``backward`` then returns dL/dx before the ReLU (zero in windows whose max is not
        positive). It saves the ReLU's pass over the largest feature map and its mask.
        """
        x = self._check(x)
        n, c, h, w = x.shape
        out = np.empty((n, c, h // self.k, w // self.k), dtype=x.dtype)
        arg = np.empty(out.shape, dtype=np.int32)
        _batch_parallel(lambda s: _maxpool_forward(x[s], self.k, out[s], arg[s], True), n)
        self._cache(train, _arg=arg, _x_shape=x.shape)
        return out

    def backward(self, grad, input_grad=True):
        arg = self._cached(self._arg)
        if not input_grad:
            return None
        grad = np.ascontiguousarray(grad)
        if grad.shape != arg.shape:
            raise InputError(f"MaxPool2d.backward: gradient of shape {grad.shape}, expected "
                             f"{arg.shape}")
        dx = np.empty(self._x_shape, dtype=grad.dtype)
        _batch_parallel(lambda s: _maxpool_backward(grad[s], arg[s], self.k, dx[s]),
                        grad.shape[0])
        return dx


class AvgPool2d(_Pool2d):
    """Average pooling over non-overlapping k x k windows (stride k).

    y[n, c, r, q] = (1 / k^2) sum_{i, j < k} x[n, c, r k + i, q k + j]; H' = H // k; backward
    spreads g / k^2 evenly over each window (zero on dropped rows and columns).
    """

    def forward(self, x, train=True):
        x = self._check(x)
        n, c, h, w = x.shape
        k = self.k
        oh, ow = h // k, w // k
        self._cache(train, _x_shape=x.shape)
        return x[:, :, :oh * k, :ow * k].reshape(n, c, oh, k, ow, k).mean(axis=(3, 5))

    def backward(self, grad, input_grad=True):
        shape = self._cached(self._x_shape)
        if not input_grad:
            return None
        n, c, h, w = shape
        k = self.k
        oh, ow = h // k, w // k
        if grad.shape != (n, c, oh, ow):
            raise InputError(f"AvgPool2d.backward: gradient of shape {grad.shape}, expected "
                             f"{(n, c, oh, ow)}")
        dx = np.zeros(shape, dtype=grad.dtype)
        view = dx[:, :, :oh * k, :ow * k].reshape(n, c, oh, k, ow, k)
        view[...] = (grad / (k * k))[:, :, :, None, :, None]
        return dx


class Flatten(Layer):
    """(n, d1, d2, ...) -> (n, d1 d2 ...), in C order."""

    def __init__(self):
        self._x_shape = None

    def forward(self, x, train=True):
        x = np.asarray(x)
        if x.ndim < 2:
            raise InputError(f"Flatten expects at least 2 dimensions, got shape {x.shape}")
        self._cache(train, _x_shape=x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, grad, input_grad=True):
        shape = self._cached(self._x_shape)
        return grad.reshape(shape) if input_grad else None


@numba.njit(cache=True, nogil=True)
def _relu_kernel(x, y):
    """y = max(x, 0) entrywise, NaN kept (C-contiguous arrays of one shape)."""
    a, b = x.reshape(-1), y.reshape(-1)
    for i in range(a.size):
        b[i] = 0.0 if a[i] <= 0 else a[i]


@numba.njit(cache=True, nogil=True)
def _relu_mask_kernel(g, y, d):
    """d = g where y > 0, else 0 (C-contiguous arrays of one shape)."""
    a, b, c = g.reshape(-1), y.reshape(-1), d.reshape(-1)
    for i in range(a.size):
        c[i] = a[i] if b[i] > 0 else 0.0


def _relu_forward(x: np.ndarray) -> np.ndarray:
    if x.ndim < 3 or x.size < _PARALLEL_MIN_SIZE:
        return np.maximum(x, 0)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _batch_parallel(lambda s: _relu_kernel(x[s], y[s]), x.shape[0])
    return y


def _relu_backward(grad: np.ndarray, y: np.ndarray) -> np.ndarray:
    if y.ndim < 3 or y.size < _PARALLEL_MIN_SIZE:
        return grad * (y > 0)
    grad = np.ascontiguousarray(grad)
    d = np.empty_like(grad)
    _batch_parallel(lambda s: _relu_mask_kernel(grad[s], y[s], d[s]), y.shape[0])
    return d


class Activation(Layer):
    """Elementwise ``y = sigma(x)`` for an activation of ``ntk.activations``.

    Backward is ``dx = g * sigma'(x)`` with the catalogue derivative; ReLU has a fast path
    (``max(x, 0)`` and a mask). Activations with jumps (``sign``, ``binary``, ``ternary``,
    ``step_activation``) are forward only: their derivative is zero almost everywhere, so no
    gradient reaches the layers below. They are meant for random-features networks whose
    layers below are frozen (``trainable=False``): ``Sequential`` never back-propagates
    through them then, and ``backward`` raises otherwise.

    Args:
        act: a catalogue name (``"relu"``, ``"tanh"``, ``"gelu"``, ``"lrelu:a=0.2"`` ...) or an
            ``ntk.activations.Activation``.
    """

    def __init__(self, act: str | _ScalarActivation):
        if not isinstance(act, (str, _ScalarActivation)):
            raise InputError(f"activation must be a name or an ntk.activations.Activation, "
                             f"got {type(act).__name__}")
        self.act = _lookup_activation(act)
        self._relu = self.act.name == "relu"
        self._x = None

    @property
    def name(self) -> str:
        """Canonical name of the activation."""
        return self.act.name

    def forget(self) -> None:
        """Drop the cached input of the last training forward: ``backward`` raises until the
        next one (``Sequential`` calls it when max pooling runs this ReLU for it)."""
        self._x = None

    def forward(self, x, train=True):
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float32)
        if self._relu:
            y = _relu_forward(x)
            # The output is enough for the mask (y > 0 iff x > 0).
            self._cache(train, _x=y)
            return y
        self._cache(train, _x=x)
        return np.asarray(self.act.fn(x), dtype=x.dtype)

    def backward(self, grad, input_grad=True):
        x = self._cached(self._x)
        if not input_grad:
            return None
        if self.act.has_jumps:
            raise RuntimeError(f"activation {self.name!r} is piecewise constant: its gradient "
                               "is zero almost everywhere, so the layers below it cannot be "
                               "trained; freeze them with trainable=False")
        if grad.shape != x.shape:
            raise InputError(f"Activation.backward: gradient of shape {grad.shape}, expected "
                             f"{x.shape}")
        if self._relu:
            return _relu_backward(grad, x)
        return grad * np.asarray(self.act.grad(x), dtype=x.dtype)

    def config(self):
        if self.name.startswith("steps:"):
            pieces = self.act.pieces
            return {"type": "Activation",
                    "steps": {"thresholds": [p.hi for p in pieces[:-1]],
                              "levels": [float(p.poly) for p in pieces]}}
        if self.act.pieces is None and self.act.closed_form is None and self.act.mp_fn is None:
            raise InputError(f"activation {self.name!r} is a user callable and cannot be saved")
        return {"type": "Activation", "act": self.name}

    @classmethod
    def from_config(cls, cfg: dict) -> Activation:
        """Inverse of :meth:`config`."""
        if "steps" in cfg:
            return cls(step_activation(cfg["steps"]["thresholds"], cfg["steps"]["levels"]))
        return cls(cfg["act"])
