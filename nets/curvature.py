"""Exact Hessian-vector products of the training loss of a ``Sequential`` model.

For parameters theta of some Dense/Conv2d layers, the mean loss over a data set (X, y)

    L(theta) = (1/N) sum_{i < N} loss(f(x_i; theta), y_i)

has gradient g(theta) (from back-propagation) and Hessian H = d g / d theta. Pearlmutter's
R-operator R{q} = d/dt q(theta + t v) |_{t=0} applied to every quantity of one forward and one
backward pass gives R{g} = H v exactly:

* R-forward: next to each activation x the pass carries R{x} (zero below the lowest selected
  layer), e.g. ``R{x W + b} = R{x} W + x V_W + V_b`` and ``R{sigma(x)} = sigma'(x) R{x}``;
* R-backward: next to each back-propagated g = dL/dx it carries R{g}, e.g. for a dense layer
  ``R{dW} = R{x}^T g + x^T R{g}``, ``R{dx} = R{g} W^T + g V_W^T`` and for an activation
  ``R{dx} = R{g} sigma'(x) + g sigma''(x) R{x}``.

Convolutions use the same formulas on im2col columns; max pooling routes R{x} and R{g} through
the argmax of the forward pass (the a.e. derivative, ties have probability zero); average
pooling and flatten are linear. Kinks (ReLU, max pool) contribute nothing: the result is the
Hessian almost everywhere. Everything runs in float64 on a copy of the weights; the model is
never modified. Data are processed ``batch_size`` samples at a time, each batch contributing
its per-sample sum divided by N, so the batching does not change the result.

The weights are fixed for the life of a ``LossCurvature``, and the R-passes are linear in v:
x, sigma'(x), g sigma''(x), the im2col columns, the max-pool argmaxes, the softmax and the
g of every layer do not depend on v. ``hvp`` computes them once per batch (a forward and a
backward pass, on the first product) and keeps them, so each product runs only the R-forward
and R-backward passes (``benchmarks/bench_hvp.py``: 0.5-0.65 of the time of a product that
recomputes them, for the MLP and the small CNN). Lanczos and Hutchinson call ``hvp`` hundreds
of times at the same weights.

The products feed the matrix-free spectral tools of ``solvers.hessian`` (Lanczos, Hutchinson,
stochastic Lanczos quadrature) through ``hvp`` and ``n``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.sparse.linalg import LinearOperator

from nets.layers import (
    Activation,
    AvgPool2d,
    Conv2d,
    Dense,
    Flatten,
    MaxPool2d,
    _at_b,
    _col2im,
    _im2col,
    _maxpool_backward,
    _maxpool_forward,
)
from nets.model import Sequential
from ntklc.errors import InputError

__all__ = ["DENSE_HESSIAN_MAX", "LossCurvature"]

#: Largest parameter count for which :meth:`LossCurvature.dense_hessian` builds the matrix
#: (5000^2 float64 = 200 MB, and 5000 Hessian-vector products).
DENSE_HESSIAN_MAX = 5000

_F64 = np.float64

# What follows a plain forward pass, so what its per-layer state must hold: nothing (a loss),
# a backward pass (sigma'), or R-passes too (also sigma'').
_EVAL, _GRAD, _R = 0, 1, 2


class _Params(NamedTuple):
    """Weights (float64 copies) of a Dense/Conv2d layer and the direction V on them.

    ``VW``/``Vb`` are ``None`` (V = 0) when the layer is not selected or in a plain (non-R)
    pass; ``selected`` says whether the backward pass must produce its parameter output.
    """

    W: np.ndarray
    b: np.ndarray
    VW: np.ndarray | None = None
    Vb: np.ndarray | None = None
    selected: bool = False


class _Fixed(NamedTuple):
    """The v-independent quantities of one batch at the fixed weights (module docstring).

    ``states[i]``: what layer i's forward pass left for the passes after it; ``kept[i]``: what
    its R-backward uses of dL/d(output of layer i) (``_backward_constant``); both ``None``
    below the lowest selected layer. ``probs``: the softmax of the outputs (cross-entropy).
    """

    states: list
    kept: list
    probs: np.ndarray | None


def _plus(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """a + b, where ``None`` is an exact zero (R-values below the lowest selected layer, and
    V of unselected layers, are zero: skipping them saves whole products). Both are fresh
    temporaries of the caller: the sum overwrites a."""
    if a is None:
        return b
    if b is None:
        return a
    a += b
    return a


# --------------------------------------------------------------------------------------------
# Per-layer passes, each a function of (layer, params, ...):
#   forward(layer, p, x, need) -> (y, state)
#   backward(layer, p, state, g, need_dx, need_params) -> (dx, [dW, db] or None)
#   r_forward(layer, p, state, rx) -> (ry, r_state)
#   r_backward(layer, p, state, r_state, kept, rg, need_dx) -> (R{dx}, [R{dW}, R{db}] or None)
# ``kept`` is ``_backward_constant(layer, state, g)``; rx is None (zero) below the lowest
# selected layer, rg is never None. Parameter outputs only for selected layers.
# --------------------------------------------------------------------------------------------


def _dense_forward(layer, p, x, need):
    """y = x W + b.  x (n, in), W (in, out), y (n, out); the state is x."""
    y = x @ p.W
    y += p.b
    return y, x


def _dense_backward(layer, p, x, g, need_dx, need_params):
    """dW = x^T g, db = sum_rows g, dx = g W^T."""
    out = [_at_b(x, g), g.sum(axis=0)] if need_params else None
    return (g @ p.W.T if need_dx else None), out


def _dense_r_forward(layer, p, x, rx):
    """R{y} = R{x} W + x V_W + V_b."""
    ry = _plus(None if rx is None else rx @ p.W, None if p.VW is None else x @ p.VW + p.Vb)
    return ry, rx


def _dense_r_backward(layer, p, x, rx, g, rg, need_dx):
    """R{dW} = R{x}^T g + x^T R{g}, R{db} = sum_rows R{g}, R{dx} = R{g} W^T + g V_W^T."""
    out = None
    if p.selected:
        out = [_plus(None if rx is None else _at_b(rx, g), _at_b(x, rg)), rg.sum(axis=0)]
    if not need_dx:
        return None, out
    return _plus(rg @ p.W.T, None if p.VW is None else g @ p.VW.T), out


def _columns(layer: Conv2d, x: np.ndarray) -> np.ndarray:
    """im2col patches (n, c k k, H' W') of an NCHW batch."""
    n = x.shape[0]
    k = layer.kernel
    out_h, out_w = layer.output_shape(x.shape[2], x.shape[3])
    cols = np.empty((n, layer.in_ch, k, k, out_h, out_w), dtype=_F64)
    _im2col(np.ascontiguousarray(x), layer.stride, layer.padding, cols)
    return cols.reshape(n, layer.in_ch * k * k, out_h * out_w)


def _conv_forward(layer, p, x, need):
    """y_n = W cols_n + b (W as (o, c k k)); the state is (cols, shape of x)."""
    n = x.shape[0]
    cols = _columns(layer, x)
    y = np.matmul(p.W.reshape(layer.out_ch, -1), cols)
    y += p.b[:, None]
    return y.reshape(n, layer.out_ch, *layer.output_shape(x.shape[2], x.shape[3])), \
        (cols, x.shape)


def _conv_weight_grad(layer, cols, g3):
    """dW = sum_n g_n cols_n^T, as an array of the shape of W."""
    return np.tensordot(g3, cols, axes=([0, 2], [0, 2])).reshape(
        layer.out_ch, layer.in_ch, layer.kernel, layer.kernel)


def _image(layer: Conv2d, dcols: np.ndarray, x_shape) -> np.ndarray:
    """col2im of (n, c k k, H' W') columns back to an NCHW array of shape ``x_shape``."""
    n, _, height, width = x_shape
    k = layer.kernel
    out_h, out_w = layer.output_shape(height, width)
    dx = np.empty(x_shape, dtype=_F64)
    _col2im(np.ascontiguousarray(dcols).reshape(n, layer.in_ch, k, k, out_h, out_w),
            layer.stride, layer.padding, dx)
    return dx


def _conv_backward(layer, p, state, g, need_dx, need_params):
    """dW = sum_n g_n cols_n^T, db = sum g, dx = col2im(W^T g)."""
    cols, x_shape = state
    g3 = g.reshape(x_shape[0], layer.out_ch, -1)
    out = [_conv_weight_grad(layer, cols, g3), g3.sum(axis=(0, 2))] if need_params else None
    if not need_dx:
        return None, out
    return _image(layer, np.matmul(p.W.reshape(layer.out_ch, -1).T, g3), x_shape), out


def _conv_r_forward(layer, p, state, rx):
    """R{y_n} = W R{cols_n} + V_W cols_n + V_b, with R{cols} = im2col(R{x}) (im2col is
    linear); the R-state is R{cols}."""
    cols, x_shape = state
    rcols = None if rx is None else _columns(layer, rx)
    ry = _plus(None if rcols is None else np.matmul(p.W.reshape(layer.out_ch, -1), rcols),
               None if p.VW is None
               else np.matmul(p.VW.reshape(layer.out_ch, -1), cols) + p.Vb[:, None])
    return ry.reshape(x_shape[0], layer.out_ch,
                      *layer.output_shape(x_shape[2], x_shape[3])), rcols


def _conv_r_backward(layer, p, state, rcols, g, rg, need_dx):
    """R{dW} = sum_n (g_n R{cols_n}^T + R{g_n} cols_n^T), R{db} = sum R{g},
    R{dx} = col2im(W^T R{g} + V_W^T g) (col2im is linear, so one call serves both terms)."""
    cols, x_shape = state
    n = x_shape[0]
    g3 = g.reshape(n, layer.out_ch, -1)
    rg3 = rg.reshape(n, layer.out_ch, -1)
    out = None
    if p.selected:
        out = [_plus(None if rcols is None else _conv_weight_grad(layer, rcols, g3),
                     _conv_weight_grad(layer, cols, rg3)), rg3.sum(axis=(0, 2))]
    if not need_dx:
        return None, out
    rdcols = _plus(np.matmul(p.W.reshape(layer.out_ch, -1).T, rg3),
                   None if p.VW is None else np.matmul(p.VW.reshape(layer.out_ch, -1).T, g3))
    return _image(layer, rdcols, x_shape), out


def _windows(x: np.ndarray, k: int) -> np.ndarray:
    """(n, c, H // k, W // k, k k) copy of the k x k windows; entry i k + j is row i, column j
    of a window (the index convention of ``_maxpool_forward``)."""
    n, c, h, w = x.shape
    oh, ow = h // k, w // k
    return (x[:, :, :oh * k, :ow * k].reshape(n, c, oh, k, ow, k)
            .transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, k * k))


def _maxpool_forward_r(layer, p, x, need):
    """y = x at each window's argmax; the state is (argmax, shape of x)."""
    n, c, h, w = x.shape
    y = np.empty((n, c, h // layer.k, w // layer.k), dtype=_F64)
    arg = np.empty(y.shape, dtype=np.int32)
    _maxpool_forward(np.ascontiguousarray(x), layer.k, y, arg, False)
    return y, (arg, x.shape)


def _route(arg, x_shape, k, g):
    """g routed to the argmax of each window (the adjoint of taking the argmax)."""
    dx = np.empty(x_shape, dtype=_F64)
    _maxpool_backward(np.ascontiguousarray(g), arg, k, dx)
    return dx


def _maxpool_backward_r(layer, p, state, g, need_dx, need_params):
    return (_route(*state, layer.k, g) if need_dx else None), None


def _maxpool_r_forward(layer, p, state, rx):
    """R{y} = R{x} at the argmax of the forward pass (the a.e. derivative)."""
    arg = state[0]
    return np.take_along_axis(_windows(rx, layer.k), arg[..., None], axis=-1)[..., 0], None


def _maxpool_r_backward(layer, p, state, r_state, kept, rg, need_dx):
    return (_route(*state, layer.k, rg) if need_dx else None), None


def _avg(x: np.ndarray, k: int) -> np.ndarray:
    return _windows(x, k).mean(axis=-1)


def _unpool_avg(k: int, g: np.ndarray, x_shape) -> np.ndarray:
    """Adjoint of window averaging: g / k^2 on each window, zero on dropped rows/columns."""
    oh, ow = g.shape[2], g.shape[3]
    dx = np.zeros(x_shape, dtype=_F64)
    dx[:, :, :oh * k, :ow * k] = np.repeat(np.repeat(g / (k * k), k, axis=2), k, axis=3)
    return dx


def _avgpool_forward(layer, p, x, need):
    """Linear: y = avg(x); the state is the shape of x."""
    return _avg(x, layer.k), x.shape


def _avgpool_backward(layer, p, x_shape, g, need_dx, need_params):
    return (_unpool_avg(layer.k, g, x_shape) if need_dx else None), None


def _avgpool_r_forward(layer, p, x_shape, rx):
    return _avg(rx, layer.k), None


def _avgpool_r_backward(layer, p, x_shape, r_state, kept, rg, need_dx):
    return (_unpool_avg(layer.k, rg, x_shape) if need_dx else None), None


def _flatten_forward(layer, p, x, need):
    """Linear: (n, d1, d2, ...) -> (n, d1 d2 ...); the state is the shape of x."""
    return x.reshape(x.shape[0], -1), x.shape


def _flatten_backward(layer, p, x_shape, g, need_dx, need_params):
    return (g.reshape(x_shape) if need_dx else None), None


def _flatten_r_forward(layer, p, x_shape, rx):
    return rx.reshape(rx.shape[0], -1), None


def _flatten_r_backward(layer, p, x_shape, r_state, kept, rg, need_dx):
    return (rg.reshape(x_shape) if need_dx else None), None


def _activation_forward(layer, p, x, need):
    """y = sigma(x); the state is (sigma'(x), sigma''(x)), each computed only if ``need``
    asks for it, and sigma'' also ``None`` where it vanishes everywhere (ReLU): its term
    g sigma''(x) R{x} is then an exact zero."""
    act = layer.act
    y = np.asarray(act.fn(x), dtype=_F64)
    d1 = np.asarray(act.grad(x), dtype=_F64) if need >= _GRAD else None
    d2 = np.asarray(act.second_derivative(x), dtype=_F64) if need == _R else None
    return y, (d1, d2 if d2 is not None and d2.any() else None)


def _activation_backward(layer, p, state, g, need_dx, need_params):
    """dx = g sigma'(x)."""
    return (g * state[0] if need_dx else None), None


def _activation_r_forward(layer, p, state, rx):
    """R{y} = sigma'(x) R{x}; the R-state is R{x} when sigma'' does not vanish."""
    d1, d2 = state
    return rx * d1, None if d2 is None else rx


def _activation_r_backward(layer, p, state, rx, kept, rg, need_dx):
    """R{dx} = R{g} sigma'(x) + (g sigma''(x)) R{x}, the bracket kept from the first pass."""
    if not need_dx:
        return None, None
    return _plus(rg * state[0], None if kept is None else kept * rx), None


_OPS = {
    Dense: (_dense_forward, _dense_backward, _dense_r_forward, _dense_r_backward),
    Conv2d: (_conv_forward, _conv_backward, _conv_r_forward, _conv_r_backward),
    MaxPool2d: (_maxpool_forward_r, _maxpool_backward_r, _maxpool_r_forward,
                _maxpool_r_backward),
    AvgPool2d: (_avgpool_forward, _avgpool_backward, _avgpool_r_forward,
                _avgpool_r_backward),
    Flatten: (_flatten_forward, _flatten_backward, _flatten_r_forward, _flatten_r_backward),
    Activation: (_activation_forward, _activation_backward, _activation_r_forward,
                 _activation_r_backward),
}


def _ops(layer):
    for kind, ops in _OPS.items():
        if isinstance(layer, kind):
            return ops
    raise InputError(f"LossCurvature does not support layers of type {type(layer).__name__}")


def _backward_constant(layer, state, g):
    """What the R-backward of a layer uses of g = dL/d(output): g itself (Dense, Conv2d),
    g sigma''(x) (an activation; ``None`` when sigma'' vanishes), nothing for the linear
    layers without parameters."""
    if isinstance(layer, (Dense, Conv2d)):
        return g
    if isinstance(layer, Activation) and state[1] is not None:
        return g * state[1]
    return None


def _root(a: np.ndarray) -> np.ndarray:
    """The array that owns the memory of ``a`` (``a`` itself unless it is a view)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _frozen(a) -> np.ndarray:
    """A read-only float64 (numbers) C-contiguous copy of ``a``; integer labels stay integers."""
    a = np.asarray(a)
    out = np.array(a, dtype=a.dtype if np.issubdtype(a.dtype, np.integer) and a.ndim == 1
                   else _F64, order="C")
    out.flags.writeable = False
    return out


def _arrays(tree):
    """The arrays in nested lists/tuples."""
    if isinstance(tree, np.ndarray):
        yield tree
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            yield from _arrays(item)


def _output_shape(layer, shape: tuple[int, ...], i: int) -> tuple[int, ...]:
    """Shape of one sample's output of layer i from its input shape (batch axis excluded)."""
    where = f"layer {i} ({type(layer).__name__})"
    if isinstance(layer, Dense):
        if shape != (layer.in_features,):
            raise InputError(f"{where} expects samples of shape ({layer.in_features},), got "
                             f"{shape}")
        return (layer.out_features,)
    if isinstance(layer, Conv2d):
        if len(shape) != 3 or shape[0] != layer.in_ch \
                or min(shape[1:]) + 2 * layer.padding < layer.kernel:
            raise InputError(f"{where} expects samples (C, H, W) with C = {layer.in_ch} and "
                             f"H, W + 2 padding >= {layer.kernel}, got {shape}")
        return (layer.out_ch, *layer.output_shape(shape[1], shape[2]))
    if isinstance(layer, (MaxPool2d, AvgPool2d)):
        if len(shape) != 3 or min(shape[1:]) < layer.k:
            raise InputError(f"{where} expects samples (C, H, W) with H, W >= {layer.k}, got "
                             f"{shape}")
        return (shape[0], shape[1] // layer.k, shape[2] // layer.k)
    if isinstance(layer, Flatten):
        if not shape:
            raise InputError(f"{where} needs samples with at least one axis")
        return (int(np.prod(shape)),)
    return shape


class LossCurvature:
    """The mean loss of a model on (X, y) as a function of some layers' parameters.

    L(theta) = (1/N) sum_i loss(f(x_i; theta), y_i) with the model's loss (softmax
    cross-entropy on integer labels, or mse over all n c output entries), theta the
    concatenation of ``W.ravel()`` then ``b.ravel()`` of each selected layer in model order.
    Gradient, exact Hessian-vector products H v (module docstring) and the Hessian are
    evaluated at the model's weights when the object is built: they are copied to float64
    then, read-only, as are X and y, so later changes of the model or of the caller's arrays
    cannot reach the products (build a new ``LossCurvature`` for new weights).

    ``hvp`` keeps the v-independent quantities of each batch (module docstring) after the
    first product. Their memory, per sample and in float64, is for every layer from the lowest
    selected one up: the input of a Dense layer, the im2col columns of a Conv2d layer
    (c k^2 H' W'), sigma' (and g sigma'' where sigma'' does not vanish) of an activation, the
    argmaxes of a max pooling (int32), dL/d(output) of every Dense/Conv2d layer, and the
    c softmax outputs. For an MLP 784-256-256-10 with ReLU that is 12 KB per sample (6 MB for
    512 samples; the first layer's input is a view of X); for ``small_cnn`` on 28 x 28 images
    1.1 MB per sample (287 MB for 256), mostly the im2col columns of the second convolution.
    Batches beyond ``max_cache_bytes`` are recomputed at each product instead (the cost of a
    product without reuse, about 2 gradients). The float64 copy of X takes N x features x 8
    bytes.

    Args:
        model: the network; only read.
        X: (N, ...) inputs, as ``model.forward`` takes them.
        y: (N,) integer labels, or (N, c) float targets for an ``mse`` model.
        layers: indices into ``model.layers`` of Dense/Conv2d layers to differentiate (frozen
            ones too); default: all trainable Dense/Conv2d layers.
        batch_size: samples per pass (bounds memory; the result does not depend on it).
        max_cache_bytes: memory for the quantities ``hvp`` keeps (default 1 GiB; 0 keeps
            nothing). Results do not depend on it.

    Attributes:
        layers: the selected layer indices, ascending.
        shapes: shapes of the selected arrays (W, b per layer).
        n: number of selected parameters.
        cache_bytes: memory held by the kept quantities (grows up to ``max_cache_bytes``
            during the first product).

    Raises:
        InputError: an empty model, no selected layer, a selected layer that is not
            Dense/Conv2d, bad shapes of X or y, labels out of range, a bad batch size or cache
            size, or an activation above the lowest selected layer that has jumps or no
            second derivative (activations below it are only evaluated).
    """

    def __init__(self, model: Sequential, X: np.ndarray, y: np.ndarray,
                 layers: Sequence[int] | None = None, batch_size: int = 1024,
                 max_cache_bytes: int = 1 << 30):
        model_layers = list(getattr(model, "layers", None) or [])
        if not model_layers:
            raise InputError("LossCurvature needs a model with at least one layer")
        if model.loss not in ("cross_entropy", "mse"):
            raise InputError(f"unsupported loss {model.loss!r}")
        for name, value, low in (("batch_size", batch_size, 1),
                                 ("max_cache_bytes", max_cache_bytes, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value < low:
                raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
        self._model_layers = model_layers
        self._loss_kind = model.loss
        self.batch_size = int(batch_size)
        self.max_cache_bytes = int(max_cache_bytes)
        self.layers = self._select(layers)
        self._bottom = self.layers[0]
        self._X, self._y = self._check_data(X, y)
        # float64 copies of every Dense/Conv2d weight: unselected layers are evaluated too.
        # Read-only: the kept quantities of ``hvp`` belong to these weights.
        self._weights = {i: _Params(_frozen(layer.W), _frozen(layer.b))
                         for i, layer in enumerate(model_layers)
                         if isinstance(layer, (Dense, Conv2d))}
        self.shapes: tuple[tuple[int, ...], ...] = tuple(
            a.shape for i in self.layers for a in self._weights[i][:2])
        self._sizes = [int(np.prod(s)) for s in self.shapes]
        self.n = int(sum(self._sizes))
        self._fixed: dict[int, _Fixed] = {}
        self.cache_bytes = 0

    # -- construction checks ---------------------------------------------------------------

    def _select(self, layers) -> tuple[int, ...]:
        all_layers = self._model_layers
        if layers is None:
            chosen = [i for i, layer in enumerate(all_layers)
                      if isinstance(layer, (Dense, Conv2d)) and layer.trainable]
            if not chosen:
                raise InputError("the model has no trainable Dense or Conv2d layer; pass "
                                 "layers=[...] to choose layers explicitly")
        else:
            chosen = [int(i) for i in layers]
            if not chosen:
                raise InputError("layers is empty: select at least one Dense or Conv2d layer")
            if len(set(chosen)) != len(chosen):
                raise InputError(f"layers has repeated indices: {list(layers)}")
            for i in chosen:
                if not 0 <= i < len(all_layers):
                    raise InputError(f"layer index {i} out of range for a model of "
                                     f"{len(all_layers)} layers")
                if not isinstance(all_layers[i], (Dense, Conv2d)):
                    raise InputError(f"layer {i} is a {type(all_layers[i]).__name__}; only "
                                     "Dense and Conv2d layers have parameters")
        chosen = sorted(chosen)
        for i, layer in enumerate(all_layers):
            _ops(layer)
            if i > chosen[0] and isinstance(layer, Activation):
                # R{x} and g are non-zero from the lowest selected layer up: sigma'' is needed.
                if layer.act.has_jumps:
                    raise InputError(f"activation {layer.name!r} (layer {i}) has jumps: its "
                                     "derivative is zero almost everywhere and the Hessian "
                                     "through it is undefined; select only layers above it")
                if layer.act.second_derivative is None:
                    raise InputError(f"activation {layer.name!r} (layer {i}) has no second "
                                     "derivative in the catalogue (user callable?); use a "
                                     "catalogue activation or select only layers above it")
        return tuple(chosen)

    def _check_data(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X)
        if X.ndim < 2 or X.shape[0] == 0:
            raise InputError(f"X must have shape (N, ...) with N >= 1, got {X.shape}")
        if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
            raise InputError(f"X must be numeric, got dtype {X.dtype}")
        shape = tuple(X.shape[1:])
        for i, layer in enumerate(self._model_layers):
            shape = _output_shape(layer, shape, i)
        if len(shape) != 1:
            raise InputError(f"the model's outputs must be (N, classes), got per-sample shape "
                             f"{shape}")
        n, classes = X.shape[0], shape[0]
        y = np.asarray(y)
        if y.ndim == 1:
            if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
                raise InputError(f"y must be {n} integer labels, got {y.dtype} of shape "
                                 f"{y.shape}")
            if y.min() < 0 or y.max() >= classes:
                raise InputError(f"labels must lie in [0, {classes}), got range "
                                 f"[{y.min()}, {y.max()}]")
            if self._loss_kind == "mse":
                y = np.eye(classes, dtype=_F64)[y]
        elif self._loss_kind == "cross_entropy":
            raise InputError(f"cross-entropy needs integer labels of shape ({n},), got shape "
                             f"{y.shape}")
        elif y.shape != (n, classes) or not np.issubdtype(y.dtype, np.number):
            raise InputError(f"mse targets must be numbers of shape ({n}, {classes}), got "
                             f"{y.dtype} of shape {y.shape}")
        else:
            y = np.asarray(y, dtype=_F64)
        return _frozen(X), _frozen(y)

    # -- flat vectors ----------------------------------------------------------------------

    def flatten(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Concatenate arrays paired with ``shapes`` (W, b per selected layer) to (n,) float64.

        Raises:
            InputError: wrong number of arrays or a wrong shape.
        """
        arrays = list(arrays)
        if len(arrays) != len(self.shapes):
            raise InputError(f"expected {len(self.shapes)} arrays (W, b per selected layer), "
                             f"got {len(arrays)}")
        for k, (a, shape) in enumerate(zip(arrays, self.shapes, strict=True)):
            if np.shape(a) != shape:
                raise InputError(f"array {k} has shape {np.shape(a)}, expected {shape}")
        return np.concatenate([np.asarray(a, dtype=_F64).ravel() for a in arrays])

    def unflatten(self, theta: np.ndarray) -> list[np.ndarray]:
        """Split an (n,) vector into float64 arrays of ``shapes`` (the inverse of flatten).

        Raises:
            InputError: ``theta`` is not a vector of length n.
        """
        theta = np.asarray(theta, dtype=_F64)
        if theta.shape != (self.n,):
            raise InputError(f"expected a vector of length n = {self.n}, got shape "
                             f"{theta.shape}")
        pieces = np.split(theta, np.cumsum(self._sizes)[:-1])
        return [p.reshape(s) for p, s in zip(pieces, self.shapes, strict=True)]

    def _params(self, theta=None, v=None) -> dict[int, _Params]:
        """Weights of every parameter layer, selected ones replaced by theta, with V from v."""
        params = dict(self._weights)
        blocks = None if theta is None else self.unflatten(theta)
        dirs = None if v is None else self.unflatten(v)
        for k, i in enumerate(self.layers):
            W, b = params[i][:2] if blocks is None else blocks[2 * k:2 * k + 2]
            VW, Vb = (None, None) if dirs is None else dirs[2 * k:2 * k + 2]
            params[i] = _Params(W, b, VW, Vb, selected=True)
        return params

    # -- passes ----------------------------------------------------------------------------

    def _batches(self):
        """(inputs, targets) of each batch: views of the float64 copies."""
        for start in range(0, self._X.shape[0], self.batch_size):
            yield (self._X[start:start + self.batch_size],
                   self._y[start:start + self.batch_size])

    def _loss_head(self, z, target, backward: bool):
        """Summed per-sample loss / N, dL/dz and softmax(z) of a batch (z: (b, c) outputs).

        Cross-entropy: dL/dz = (p - e_y) / N with p = softmax(z). Mse: dL/dz = 2 (z - t) / (N c)
        (and no p).
        """
        N = self._X.shape[0]
        if self._loss_kind == "cross_entropy":
            shifted = z - z.max(axis=1, keepdims=True)
            exp = np.exp(shifted)
            sums = exp.sum(axis=1)
            rows = np.arange(z.shape[0])
            value = float(np.sum(np.log(sums) - shifted[rows, target])) / N
            if not backward:
                return value, None, None
            p = exp / sums[:, None]
            g = p.copy()
            g[rows, target] -= 1.0
            g /= N
            return value, g, p
        diff = z - target
        scale = 2.0 / (N * z.shape[1])
        value = float(np.sum(diff * diff)) * scale / 2.0
        if not backward:
            return value, None, None
        return value, diff * scale, None

    def _loss_head_r(self, p, rz):
        """R{dL/dz}: (p R{z} - p sum_k p_k R{z}_k) / N (cross-entropy), 2 R{z} / (N c) (mse)."""
        N = self._X.shape[0]
        if self._loss_kind == "cross_entropy":
            return (p * rz - p * np.sum(p * rz, axis=1, keepdims=True)) / N
        return rz * (2.0 / (N * rz.shape[1]))

    def _forward(self, params, x, need) -> tuple[np.ndarray, list]:
        """Outputs of a batch and the state of every layer from the lowest selected one up
        (the layers below it only evaluate: nothing there depends on theta)."""
        states = [None] * len(self._model_layers)
        for i, layer in enumerate(self._model_layers):
            below = i < self._bottom
            x, state = _ops(layer)[0](layer, params.get(i), x, _EVAL if below else need)
            states[i] = None if below else state
        return x, states

    def _run(self, params: dict[int, _Params], backward: bool
             ) -> tuple[float, np.ndarray | None]:
        """Loss and, with ``backward``, the flat gradient at ``params``."""
        total = 0.0
        flat = np.zeros(self.n) if backward else None
        acc = None if flat is None else self.unflatten(flat)  # views into flat
        slot = {i: 2 * k for k, i in enumerate(self.layers)}
        for x, target in self._batches():
            z, states = self._forward(params, x, _GRAD if backward else _EVAL)
            value, g, _ = self._loss_head(z, target, backward)
            total += value
            if not backward:
                continue
            # Nothing below the lowest selected layer depends on theta: stop there.
            for i in range(len(self._model_layers) - 1, self._bottom - 1, -1):
                layer = self._model_layers[i]
                g, out = _ops(layer)[1](layer, params.get(i), states[i], g, i > self._bottom,
                                        i in slot)
                states[i] = None  # free batch-sized arrays early
                if out is not None:
                    acc[slot[i]] += out[0]
                    acc[slot[i] + 1] += out[1]
        return total, flat

    def _fixed_batch(self, k: int, x: np.ndarray, target: np.ndarray) -> _Fixed:
        """The v-independent quantities of batch k: kept from an earlier product, or computed
        by a forward and a backward pass at the fixed weights (and kept if they fit)."""
        if k in self._fixed:
            return self._fixed[k]
        params = self._weights
        z, states = self._forward(params, x, _R)
        _, g, probs = self._loss_head(z, target, backward=True)
        kept = [None] * len(self._model_layers)
        for i in range(len(self._model_layers) - 1, self._bottom - 1, -1):
            layer = self._model_layers[i]
            kept[i] = _backward_constant(layer, states[i], g)
            if i > self._bottom:
                g = _ops(layer)[1](layer, params.get(i), states[i], g, True, False)[0]
        fixed = _Fixed(states, kept, probs)
        size = self._nbytes(fixed)
        if self.cache_bytes + size <= self.max_cache_bytes:
            self._fixed[k] = fixed
            self.cache_bytes += size
        return fixed

    def _nbytes(self, fixed: _Fixed) -> int:
        """Memory owned by the arrays of ``fixed`` (views of X and shared arrays count once,
        X not at all)."""
        roots = {id(a): a for a in map(_root, _arrays((fixed.states, fixed.kept,
                                                        fixed.probs)))}
        roots.pop(id(_root(self._X)), None)
        return sum(a.nbytes for a in roots.values())

    # -- public quantities -----------------------------------------------------------------

    def loss(self, theta: np.ndarray | None = None) -> float:
        """Mean loss L at the model's weights, or with the selected parameters set to theta.

        Raises:
            InputError: ``theta`` is not a vector of length n.
        """
        return self._run(self._params(theta), backward=False)[0]

    def gradient(self, theta: np.ndarray | None = None) -> np.ndarray:
        """dL/dtheta, (n,) float64, at the model's weights or at theta.

        Raises:
            InputError: ``theta`` is not a vector of length n.
        """
        return self._run(self._params(theta), backward=True)[1]

    def hvp(self, v: np.ndarray) -> np.ndarray:
        """Exact Hessian-vector product H v, (n,) float64, at the model's weights.

        Per batch, one R-forward pass carrying R{x} and one R-backward pass carrying R{g}
        (module docstring) on the kept v-independent quantities; the first call computes
        those (a forward and a backward pass more).

        Raises:
            InputError: ``v`` is not a vector of length n.
        """
        params = self._params(v=v)
        flat = np.zeros(self.n)
        acc = self.unflatten(flat)  # views into flat
        slot = {i: 2 * k for k, i in enumerate(self.layers)}
        n_layers = len(self._model_layers)
        for k, (x, target) in enumerate(self._batches()):
            fixed = self._fixed_batch(k, x, target)
            rx = None
            r_states = [None] * n_layers
            for i in range(self._bottom, n_layers):
                layer = self._model_layers[i]
                rx, r_states[i] = _ops(layer)[2](layer, params.get(i), fixed.states[i], rx)
            rg = self._loss_head_r(fixed.probs, rx)
            for i in range(n_layers - 1, self._bottom - 1, -1):
                layer = self._model_layers[i]
                rg, out = _ops(layer)[3](layer, params.get(i), fixed.states[i], r_states[i],
                                         fixed.kept[i], rg, i > self._bottom)
                r_states[i] = None  # free batch-sized arrays early
                if out is not None:
                    acc[slot[i]] += out[0]
                    acc[slot[i] + 1] += out[1]
        return flat

    def operator(self) -> LinearOperator:
        """H as a symmetric ``scipy.sparse.linalg.LinearOperator`` of shape (n, n)."""
        def matvec(v):
            return self.hvp(np.ravel(v))
        return LinearOperator((self.n, self.n), matvec=matvec, rmatvec=matvec, dtype=_F64)

    def dense_hessian(self) -> np.ndarray:
        """The (n, n) Hessian, column j = H e_j (n products; not symmetrised).

        Raises:
            InputError: n > ``DENSE_HESSIAN_MAX``.
        """
        if self.n > DENSE_HESSIAN_MAX:
            raise InputError(f"dense_hessian builds an n x n matrix from n products; n = "
                             f"{self.n} exceeds DENSE_HESSIAN_MAX = {DENSE_HESSIAN_MAX}: use "
                             "hvp or operator() with matrix-free solvers instead")
        H = np.empty((self.n, self.n))
        e = np.zeros(self.n)
        for j in range(self.n):
            e[j] = 1.0
            H[:, j] = self.hvp(e)
            e[j] = 0.0
        return H
