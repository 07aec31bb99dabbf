"""Empirical CK and NTK of finite random CNNs, averaged over weight draws.

The network is the one of :class:`ntk.cnn_architecture.ConvArchitecture` (neural-tangents'
``stax`` convention in the NTK parameterisation, ``../shared/spec/cnn-kernels.md``) with C_l
channels in hidden layer l: y_0 = the images (n, C_0, H, W) and, for l = 1..L,

    z_l = conv(W_l, pad(y_{l-1})) / sqrt(C_{l-1} k^2),    y_l = pool_l(sigma_l(z_l) - m_l),

with W_l (C_l, C_{l-1}, k, k) i.i.d. from a weight law of mean 0 and variance 1, no bias, the
convolution a stride-1 cross-correlation of the padded maps (``ConvArchitecture.padded``),
pool_l the 2 x 2 average pooling of the layers in ``pool`` (the identity elsewhere) and m_l an
optional scalar centring (0 by default, neural-tangents' convention). The readout features
F (n, P) of the last layer's maps (C_L, H_L, W_L) are

    flatten:  F_i = vec(y_L,i) / sqrt(C_L H_L W_L)                        (P = C_L H_L W_L)
    gap:      F_i[c] = mean_a y_L,i[c, a] / sqrt(C_L)                     (P = C_L)

and the network's output is f(x) = v . F(x) with v ~ N(0, I_P). Kernels of one network:

    CK  = F F^T                       (= R[(1/C_L) sum_c y_L,c y_L,c], the spec's readout)
    NTK = F F^T + sum_l J_l J_l^T,    J_l(x_i) = vec(df(x_i)/dW_l)
                                               = vec(g_l,i cols_l,i^T) / sqrt(C_{l-1} k^2),

where cols_l,i (C_{l-1} k^2, H_l' W_l') are the im2col patches of the padded input of layer l
and g_l,i = df(x_i)/dz_l (C_l, H_l' W_l') comes from back-propagation: through each pooling
(every pooled gradient spread as 1/4 over its window), each activation (times sigma_l'(z_l))
and each convolution (col2im of W_l^T g_l / sqrt(C_{l-1} k^2), then the adjoint of the
padding). As the channels grow, the mean kernels tend to the exact ones of
``ntk.cnn_exact.cnn_kernels`` (whose scalar centring, ``centring=True``, is this network's with
its ``centring`` attribute passed as ``centring``).

The patches and the per-sample weight gradients are formed a block of input channels at a
time, so that memory stays near ``_BLOCK_BYTES`` beyond the feature maps themselves. The work
of each block is split by samples over threads with BLAS on one thread
(``nets.layers._batch_parallel``): these products are small, and on two shared cores threaded
BLAS ran them 5-10 times slower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nets.layers import _batch_parallel, _col2im, _im2col
from ntk.activations import Activation, parse_activations
from ntk.cnn_architecture import ConvArchitecture, check_images, fan_in_scale
from ntk.empirical import EmpiricalKernels, _gram, _mirror, mean_over_draws
from ntk.progress import progress_bar
from ntk.weights import WeightLaw, parse_weight_law, sample_weights
from ntklc.errors import InputError

__all__ = ["cnn_network_kernels", "empirical_cnn_kernels"]

#: Bytes of patches plus per-sample weight gradients formed at once (one block of input
#: channels of one layer).
_BLOCK_BYTES = 1 << 25


@dataclass(frozen=True)
class _Setup:
    """Checked inputs shared by every draw."""

    images: np.ndarray
    acts: list[Activation]
    arch: ConvArchitecture
    channels: tuple[int, ...]
    centring: tuple[float, ...]
    dtype: np.dtype


def cnn_network_kernels(images, acts: str | Sequence, weights: str | WeightLaw,
                        rng: np.random.Generator, *, channels: int | Sequence[int],
                        filter_size: int = 3, padding: str = "same", pool: Sequence[int] = (),
                        readout: str = "flatten", ntk: bool = True,
                        centring: Sequence[float] | None = None,
                        dtype=np.float64) -> tuple[np.ndarray, np.ndarray | None]:
    """CK and NTK of one random CNN on ``images``.

    The draw order is fixed: W_1, ..., W_L (each by
    ``sample_weights(weights, (C_l, C_{l-1}, k, k), rng, dtype)``), then, when ``ntk`` is
    true, ``v = rng.standard_normal(P, dtype=dtype)`` (the CK does not depend on v, which is
    then not drawn).

    Args:
        images: (n, C_0, H, W) images, used as given.
        acts: per-layer activations (names, ``ntk.activations.Activation`` objects or a
            comma-separated string), one per convolution, L >= 1.
        weights: weight law of every filter (v is always Gaussian).
        rng: the only source of randomness.
        channels: C_l of every hidden layer (int) or one entry per layer.
        filter_size: k, the side of every filter.
        padding: "same", "circular" or "valid".
        pool: the layers (1-based) followed by a 2 x 2 average pooling.
        readout: "flatten" or "gap" (global average pooling).
        ntk: also compute the NTK.
        centring: m_l subtracted after each activation (one per layer); ``None`` for none.
        dtype: float64 or float32 (the whole computation runs in this precision).

    Returns:
        ``(ck, ntk)``: (n, n) arrays of ``dtype``; ``ntk`` is ``None`` unless requested.

    Raises:
        InputError: bad images, channels, centring or dtype, an architecture that does not
            fit the images, or the NTK requested for an activation with jumps.
    """
    setup = _validate(images, acts, channels, filter_size, padding, pool, readout, ntk,
                      centring, dtype)
    return _network(setup, parse_weight_law(weights), rng, ntk)


def empirical_cnn_kernels(images, acts: str | Sequence, *, channels: int | Sequence[int] = 256,
                          draws: int = 10, weights: str | WeightLaw = "gaussian", seed: int = 0,
                          filter_size: int = 3, padding: str = "same", pool: Sequence[int] = (),
                          readout: str = "flatten", ntk: bool = True,
                          centring: Sequence[float] | None = None, dtype=np.float64,
                          progress: bool = True) -> EmpiricalKernels:
    """Mean CK (and NTK) of ``draws`` independent random CNNs.

    The draws are :func:`cnn_network_kernels` calls in sequence on one generator,
    ``numpy.random.default_rng(seed)``. Each draw may run in float32; the means accumulate in
    float64.

    Args:
        images: (n, C_0, H, W) images, used as given.
        acts: per-layer activations, one per convolution, L >= 1.
        channels: C_l of every hidden layer (int) or one entry per layer.
        draws: number of independent networks, >= 1.
        weights: weight law of every filter (v is always Gaussian).
        seed: seed of the random generator.
        filter_size, padding, pool, readout: the architecture (see :func:`cnn_network_kernels`).
        ntk: also compute the NTK.
        centring: m_l subtracted after each activation (one per layer); ``None`` for none.
        dtype: precision of each draw, float64 or float32.
        progress: show a progress bar over the draws on stderr.

    Returns:
        ``ntk.empirical.EmpiricalKernels`` with float64 means, their noise levels and the
        channels of each hidden layer as ``width``.

    Raises:
        InputError: bad images, channels, draws, centring or dtype, unknown weight law, an
            architecture that does not fit the images, or the NTK requested for an activation
            with jumps.
    """
    if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
        raise InputError(f"draws must be an integer >= 1, got {draws!r}")
    law = parse_weight_law(weights)
    setup = _validate(images, acts, channels, filter_size, padding, pool, readout, ntk,
                      centring, dtype)
    rng = np.random.default_rng(seed)
    nets = (_network(setup, law, rng, ntk)
            for _ in progress_bar(range(draws), desc="draws", disable=not progress))
    return mean_over_draws(nets, width=setup.channels, ntk=ntk)


def _validate(images, acts, channels, filter_size, padding, pool, readout, ntk, centring,
              dtype) -> _Setup:
    """Checked inputs; the architecture is checked against the images' grid."""
    x = check_images(images)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise InputError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype must be float32 or float64, got {dtype}")
    acts = parse_activations(acts)
    L = len(acts)
    if not isinstance(pool, list | tuple):
        raise InputError(f"pool must list integer layer numbers, got {pool!r}")
    arch = ConvArchitecture(layers=L, filter_size=filter_size, padding=padding,
                            pool=tuple(pool), readout=readout)
    arch.grids(x.shape[2], x.shape[3])
    counts = (channels,) * L if np.ndim(channels) == 0 else tuple(channels)
    if len(counts) != L:
        raise InputError(f"channels has {len(counts)} entries for {L} layers")
    if any(isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 1 for c in counts):
        raise InputError(f"every channel count must be an integer >= 1, got {channels!r}")
    if ntk:
        jumpy = [a.name for a in acts if a.has_jumps]
        if jumpy:
            raise InputError(f"NTK undefined for activations with jumps ({', '.join(jumpy)}): "
                             "E[sigma'^2] is infinite; request the CK only (ntk=False)")
    if centring is None:
        m = (0.0,) * L
    else:
        m = tuple(np.asarray(centring, dtype=np.float64).reshape(-1))
        if np.ndim(centring) != 1 or len(m) != L or not all(map(math.isfinite, m)):
            raise InputError(f"centring must hold {L} finite numbers (one per layer), got "
                             f"{centring!r}")
    return _Setup(images=x.astype(dtype, copy=False), acts=acts, arch=arch,
                  channels=tuple(int(c) for c in counts), centring=tuple(float(v) for v in m),
                  dtype=dtype)


def _network(setup: _Setup, law: WeightLaw, rng: np.random.Generator, ntk: bool
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """CK and NTK of one network: the forward pass keeps the padded maps and sigma'(z_l),
    the backward pass forms J_l J_l^T a block of input channels at a time."""
    arch, dtype = setup.arch, setup.dtype
    k = arch.filter_size
    filters, padded, slopes = [], [], []
    y = setup.images
    n = y.shape[0]
    for layer, (act, c_out, m_l) in enumerate(
            zip(setup.acts, setup.channels, setup.centring, strict=True), start=1):
        W = sample_weights(law, (c_out, y.shape[1], k, k), rng, dtype).reshape(c_out, -1)
        xp = np.ascontiguousarray(arch.padded(y))
        h, w = _grid(xp, k)
        z = _convolve(W, xp, k)
        # Piecewise activations return float64: the casts keep float32 runs in float32.
        y = np.asarray(act.fn(z), dtype=dtype)
        if ntk:
            filters.append(W)
            padded.append(xp)
            slopes.append(np.asarray(act.grad(z), dtype=dtype))
        del z
        y -= dtype.type(m_l)
        y = y.reshape(n, c_out, h, w)
        if layer in arch.pool:
            y = y.reshape(n, c_out, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    c_last, h_last, w_last = y.shape[1:]
    if arch.readout == "flatten":
        features = y.reshape(n, -1) * dtype.type(1.0 / math.sqrt(c_last * h_last * w_last))
    else:
        features = y.mean(axis=(2, 3)) * dtype.type(1.0 / math.sqrt(c_last))
    ck = _gram(features.T)
    if not ntk:
        return _mirror(ck), None
    v = rng.standard_normal(features.shape[1], dtype=dtype)
    # df/dy_L: the readout's weights spread over the positions the features read.
    if arch.readout == "flatten":
        upstream = v.reshape(c_last, h_last, w_last) / math.sqrt(features.shape[1])
    else:
        upstream = (v / (math.sqrt(c_last) * h_last * w_last))[:, None, None]
    upstream = np.broadcast_to(upstream.astype(dtype), y.shape)
    del y
    ntk_matrix = ck.copy()
    for layer in range(arch.layers, 0, -1):
        if layer in arch.pool:
            upstream = _unpool(upstream)
        xp, W = padded.pop(), filters.pop()
        g = np.ascontiguousarray(upstream.reshape(n, W.shape[0], -1) * slopes.pop())
        upstream = _backward(W, xp, g, arch, ntk_matrix, layer > 1)
    return _mirror(ck), _mirror(ntk_matrix)


def _convolve(W: np.ndarray, xp: np.ndarray, k: int) -> np.ndarray:
    """z = W cols / sqrt(C k^2): (n, C_l, h w) pre-activations of the padded maps ``xp``
    (n, C, H_p, W_p) for filters ``W`` (C_l, C k^2)."""
    n, c_in = xp.shape[:2]
    h, w = _grid(xp, k)
    z = np.zeros((n, W.shape[0], h * w), dtype=xp.dtype)
    blocks = _channel_blocks(xp, W.shape[0], k)

    def part(s: slice) -> None:
        for block in blocks:
            # (C_l, |block| k^2) @ (m, |block| k^2, h w): the block's share of W cols.
            w_block = W[:, block.start * k * k:block.stop * k * k]
            z[s] += np.matmul(w_block, _patches(xp[s], block, k))

    _batch_parallel(part, n)
    z *= xp.dtype.type(fan_in_scale(c_in, k))
    return z


def _backward(W: np.ndarray, xp: np.ndarray, g: np.ndarray, arch: ConvArchitecture,
              ntk_matrix: np.ndarray, input_grad: bool) -> np.ndarray | None:
    """Add J_l J_l^T to (the upper triangle of) ``ntk_matrix`` and return df/dy_{l-1}.

    Args:
        W: (C_l, C k^2) filters of layer l.
        xp: (n, C, H_p, W_p) padded input maps of layer l.
        g: (n, C_l, h w) df/dz_l.
        arch: the architecture.
        ntk_matrix: (n, n) upper-triangular sum, updated in place.
        input_grad: also back-propagate to the input maps.

    Returns:
        (n, C, H, W) df/dy_{l-1} (the unpadded input maps), or ``None``.
    """
    k = arch.filter_size
    n, c_in = xp.shape[:2]
    dtype = xp.dtype
    scale = dtype.type(fan_in_scale(c_in, k))
    # The unpadded input grid: "same" and "circular" keep it, "valid" pads nothing.
    height, width = xp.shape[2:] if arch.padding == "valid" else _grid(xp, k)
    below = np.empty((n, c_in, height, width), dtype=dtype) if input_grad else None
    for block in _channel_blocks(xp, W.shape[0], k):
        w_block = W[:, block.start * k * k:block.stop * k * k]
        jac = np.empty((n, W.shape[0], w_block.shape[1]), dtype=dtype)

        def part(s: slice, block: slice = block, w_block: np.ndarray = w_block,
                 jac: np.ndarray = jac) -> None:
            cols = _patches(xp[s], block, k)
            # df/dW_l of the samples s on the block's input channels:
            # (m, C_l, h w) @ (m, h w, |block| k^2).
            np.matmul(g[s], cols.transpose(0, 2, 1), out=jac[s])
            if input_grad:
                dcols = np.matmul(w_block.T, g[s])
                m = dcols.shape[0]
                dxp = np.empty((m, block.stop - block.start, *xp.shape[2:]), dtype=dtype)
                _col2im(dcols.reshape(m, -1, k, k, *_grid(xp, k)), 1, 0, dxp)
                below[s, block] = _pad_adjoint(dxp, arch, height, width)

        _batch_parallel(part, n)
        # J_l carries the fan-in factor once, J_l J_l^T twice: applied to the (n, n) Gram.
        gram = _gram(jac.reshape(n, -1).T)
        gram *= scale * scale
        ntk_matrix += gram
    if input_grad:
        # The fan-in factor of dcols, applied once to the input maps (k^2 times smaller).
        below *= scale
    return below


def _grid(xp: np.ndarray, k: int) -> tuple[int, int]:
    """Output grid of a stride-1 'valid' k x k convolution of the padded maps ``xp``."""
    return xp.shape[2] - k + 1, xp.shape[3] - k + 1


def _channel_blocks(xp: np.ndarray, c_out: int, k: int) -> list[slice]:
    """Blocks of input channels whose patches (n, |block| k^2, h w) and per-sample weight
    gradients (n, C_l, |block| k^2) together take about ``_BLOCK_BYTES``."""
    n, c_in = xp.shape[:2]
    h, w = _grid(xp, k)
    per_channel = n * k * k * (h * w + c_out) * xp.dtype.itemsize
    size = max(1, _BLOCK_BYTES // per_channel)
    return [slice(s, min(s + size, c_in)) for s in range(0, c_in, size)]


def _patches(xp: np.ndarray, block: slice, k: int) -> np.ndarray:
    """im2col patches (m, |block| k^2, h w) of the input channels ``block`` of the padded maps
    (m, C, H_p, W_p), rows ordered (channel, i, j) like the columns of W.reshape(C_l, -1)."""
    x = np.ascontiguousarray(xp[:, block])
    h, w = _grid(xp, k)
    cols = np.empty((x.shape[0], x.shape[1], k, k, h, w), dtype=x.dtype)
    _im2col(x, 1, 0, cols)
    return cols.reshape(x.shape[0], -1, h * w)


def _unpool(grad: np.ndarray) -> np.ndarray:
    """Adjoint of the 2 x 2 average pooling: each entry spread as 1/4 over its window."""
    n, c, h, w = grad.shape
    spread = np.broadcast_to(grad[:, :, :, None, :, None], (n, c, h, 2, w, 2))
    return spread.reshape(n, c, 2 * h, 2 * w) * grad.dtype.type(0.25)


def _pad_adjoint(grad: np.ndarray, arch: ConvArchitecture, height: int, width: int
                 ) -> np.ndarray:
    """The adjoint of ``arch.padded`` for (n, C, height, width) maps.

    ``grad`` (n, C, H_p, W_p) is a gradient with respect to the padded maps. "valid" pads
    nothing; "same" pads zeros, whose gradient is dropped; "circular" pads copies, whose
    gradient is folded back onto the positions they copied.

    Returns:
        (n, C, height, width).
    """
    if arch.padding == "valid":
        return grad
    lo = (arch.filter_size - 1) // 2
    if arch.padding == "same":
        return grad[:, :, lo:lo + height, lo:lo + width]
    # Padded index t copies t - lo modulo the size, however many times the padding wraps.
    return _fold(height, grad.shape[2], lo, grad.dtype) @ grad \
        @ _fold(width, grad.shape[3], lo, grad.dtype).T


def _fold(size: int, padded: int, lo: int, dtype) -> np.ndarray:
    """(size, padded) 0/1 matrix M with M[(t - lo) mod size, t] = 1: M^T wraps, M folds."""
    M = np.zeros((size, padded), dtype=dtype)
    t = np.arange(padded)
    M[(t - lo) % size, t] = 1
    return M
