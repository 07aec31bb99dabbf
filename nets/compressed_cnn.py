"""Compressed random-features CNNs: sparse ternary filters, quantized activations.

The convolutional network of ``ntk.cnn_architecture`` (``../shared/spec/cnn-kernels.md``) in the
NTK parameterisation, with filters W_l of shape (C_l, C_{l-1}, k, k) and i.i.d. entries of mean
0 and variance 1. For images y_0 = x (n, C_0, H, W), layer l = 1..L computes

    z_l = conv(W_l, padded(y_{l-1})) / sqrt(C_{l-1} k^2),   y_l = sigma_l(z_l) - m_l,

followed by a 2 x 2 average pooling of stride 2 when l is in ``arch.pool``. The readout features
of image i are

    flatten:  vec(y_L,i) / sqrt(C_L H_L W_L)          (C_L H_L W_L features),
    gap:      mean_a y_L,i(a) / sqrt(C_L)             (C_L features),

so that features^T features is the conjugate kernel in the convention of the CNN kernels
(``R[K_L]``: the flatten readout averages the diagonal positions, gap all position pairs).

:class:`CompressedCNN` holds W_l = s S_l with signs S_l in {-1, 0, +1} from the sparse ternary
law (0 w.p. eps, +-1 w.p. (1 - eps)/2 each) and s = 1/sqrt(1 - eps), as one
:class:`~nets.compressed.TernaryMatrix` of shape (C_l, C_{l-1} k^2) per convolution: a
convolution is the product of that matrix with the im2col patches of the padded maps,
rearranged to (C_{l-1} k^2, n H_l' W_l'), computed by additions and subtractions only.
:class:`DenseCNN` is the same network with dense float32 filters, the uncompressed baseline
(and, built from given filters, any pruned or quantized variant of it).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nets.compressed import (
    TernaryMatrix,
    _check_dtype,
    _check_eps,
    _check_layers,
    sample_ternary_signs,
)
from nets.layers import _im2col
from ntk.activations import Activation, parse_activations
from ntk.cnn_architecture import ConvArchitecture, check_images, fan_in_scale
from ntk.constants import tau_chain
from ntk.weights import sample_weights
from ntklc.errors import InputError

__all__ = ["CompressedCNN", "DenseCNN"]

#: Bytes of the largest layer's patches per block of images in the forward pass: the working
#: memory stays bounded whatever the number of images.
_BLOCK_BYTES = 1 << 25


def _check_input_shape(shape) -> tuple[int, int, int]:
    shape = tuple(shape)
    if len(shape) != 3 or any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1
                              for v in shape):
        raise InputError(f"input_shape must be three integers >= 1 (C, H, W), got {shape}")
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def _check_channels(channels, layers: int) -> tuple[int, ...]:
    channels = tuple(channels)
    if any(isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 1 for c in channels):
        raise InputError(f"every channel count must be an integer >= 1, got {channels!r}")
    if len(channels) != layers:
        raise InputError(f"{len(channels)} channel counts for {layers} activations")
    return tuple(int(c) for c in channels)


def _check_tau0(tau0) -> float:
    tau0 = float(tau0)
    if not (math.isfinite(tau0) and tau0 > 0):
        raise InputError(f"tau0 must be a positive finite number, got {tau0}")
    return tau0


def _check_arch(arch) -> ConvArchitecture:
    if not isinstance(arch, ConvArchitecture):
        raise InputError(f"arch must be a ConvArchitecture, got {type(arch).__name__}")
    return arch


def _check_network(channels: Sequence[tuple[int, int]], arch, input_shape, activations,
                   centring) -> tuple[tuple[int, int, int], tuple[Activation, ...],
                                      tuple[float, ...]]:
    """Checked input shape, activations and centring of a CNN whose convolutions map
    ``channels[l] = (C_l, C_{l-1})``; ``arch`` (a checked architecture) must fit the input
    grid."""
    input_shape = _check_input_shape(input_shape)
    if len(channels) != arch.layers:
        raise InputError(f"the architecture has {arch.layers} layers, got {len(channels)} "
                         "convolutions")
    c_prev = input_shape[0]
    for layer, (c_out, c_in) in enumerate(channels, start=1):
        if c_in != c_prev:
            raise InputError(f"layer {layer} expects {c_in} input channels but "
                             f"{'the images have' if layer == 1 else 'the layer below has'} "
                             f"{c_prev}")
        c_prev = c_out
    arch.grids(*input_shape[1:])
    acts, centring = _check_layers(channels, activations, centring)
    return input_shape, acts, centring


def _convolve(y: np.ndarray, product: Callable[[np.ndarray], np.ndarray],
              arch: ConvArchitecture) -> np.ndarray:
    """z = conv(W, padded(y)) / sqrt(C k^2) of one block.

    Args:
        y: (b, C, H, W) C-contiguous maps, float32 or float64.
        product: P -> W P for the (C_out, C k^2) matrix of the filters and patches P of shape
            (C k^2, b H' W') in y's dtype.

    Returns:
        (C_out, b, H', W') pre-activations in y's dtype.
    """
    k = arch.filter_size
    x = arch.padded(y)
    b, c = x.shape[:2]
    h, w = x.shape[2] - k + 1, x.shape[3] - k + 1
    cols = np.empty((b, c, k, k, h, w), dtype=y.dtype)
    # The window was padded above, so the engine's kernel runs unpadded at stride 1.
    _im2col(np.ascontiguousarray(x), 1, 0, cols)
    z = product(cols.transpose(1, 2, 3, 0, 4, 5).reshape(c * k * k, b * h * w))
    z *= z.dtype.type(fan_in_scale(c, k))
    return z.reshape(-1, b, h, w)


class _ConvNetwork:
    """What both CNN classes derive from their architecture, input shape and weights."""

    @property
    def channels(self) -> tuple[int, ...]:
        """(C_1, ..., C_L)."""
        return tuple(W.shape[0] for W in self.weights)

    @property
    def grids(self) -> tuple[tuple[int, int], ...]:
        """The (H, W) grid of the input and of every layer's output after its pooling."""
        return self.arch.grids(*self.input_shape[1:])

    @property
    def _conv_grids(self) -> tuple[tuple[int, int], ...]:
        """(H_l', W_l'), the output grid of each convolution, before its pooling."""
        return tuple((2 * h, 2 * w) if layer in self.arch.pool else (h, w)
                     for layer, (h, w) in enumerate(self.grids[1:], start=1))

    @property
    def layer_values(self) -> tuple[int, ...]:
        """Activation values per image of each layer, C_l H_l' W_l': its convolution's output
        grid before pooling, where the values are still those of the activation."""
        return tuple(c * h * w for c, (h, w) in zip(self.channels, self._conv_grids,
                                                    strict=True))

    @property
    def _patch_entries(self) -> int:
        """Entries of the largest per-image patch matrix, max_l C_{l-1} k^2 H_l' W_l'."""
        inputs = (self.input_shape[0], *self.channels[:-1])
        return max(c * self.arch.filter_size ** 2 * h * w
                   for c, (h, w) in zip(inputs, self._conv_grids, strict=True))

    @property
    def feature_count(self) -> int:
        """d, the number of readout features."""
        return self.arch.features(self.channels[-1], *self.input_shape[1:])

    def _features(self, images, products: Sequence[Callable[[np.ndarray], np.ndarray]],
                  dtype) -> np.ndarray:
        """The (d, n) features with products[l](P) = W_l P in ``dtype``."""
        x = np.asarray(images)
        if x.ndim != 4 or x.shape[0] < 1 or x.shape[1:] != self.input_shape:
            raise InputError(f"images must have shape (n, {', '.join(map(str, self.input_shape))}"
                             f") with n >= 1, got {x.shape}")
        per_block = max(1, _BLOCK_BYTES // (self._patch_entries * dtype.itemsize))
        out = np.empty((self.feature_count, x.shape[0]), dtype=dtype)
        readout = self.arch.readout
        for start in range(0, x.shape[0], per_block):
            block = slice(start, start + per_block)
            y = check_images(x[block]).astype(dtype)
            for layer, (product, act, m) in enumerate(
                    zip(products, self.activations, self.centring, strict=True), start=1):
                z = _convolve(y, product, self.arch)
                # Piecewise activations keep float32; callables may return float64: cast back.
                y = np.asarray(act.fn(z), dtype=dtype)
                y -= dtype.type(m)
                if layer in self.arch.pool:
                    c, b, h, w = y.shape
                    y = y.reshape(c, b, h // 2, 2, w // 2, 2).mean(axis=(3, 5), dtype=dtype)
                if layer < len(products):
                    y = np.ascontiguousarray(y.transpose(1, 0, 2, 3))
            c, b, h, w = y.shape
            if readout == "flatten":
                out[:, block] = y.transpose(0, 2, 3, 1).reshape(c * h * w, b)
                out[:, block] *= dtype.type(1.0 / math.sqrt(c * h * w))
            else:
                out[:, block] = y.mean(axis=(2, 3), dtype=dtype)
                out[:, block] *= dtype.type(1.0 / math.sqrt(c))
        return out


@dataclass(frozen=True, eq=False)
class CompressedCNN(_ConvNetwork):
    """A random-features CNN with sparse ternary filters (module docstring).

    Attributes:
        weights: one :class:`TernaryMatrix` per convolution, W_l of shape (C_l, C_{l-1} k^2):
            row o is the filter (C_{l-1}, k, k) of output channel o flattened in C order, and
            the scale is 1/sqrt(1 - eps) for unit-variance entries.
        activations: sigma_1..sigma_L (names are parsed; e.g. the ``activations`` of
            ``solvers.compress_network``).
        centring: m_1..m_L, subtracted after each activation.
        arch: the :class:`ConvArchitecture` (padding, pooling, readout; ``arch.layers`` = L).
        input_shape: (C_0, H, W) of the images.
        eps: sparsity of the weight law the signs were drawn from, in [0, 1).
        seed: the seed that regenerates the weights with :meth:`random`, if known.
    """

    weights: tuple[TernaryMatrix, ...]
    activations: tuple[Activation, ...]
    centring: tuple[float, ...]
    arch: ConvArchitecture
    input_shape: tuple[int, int, int]
    eps: float
    seed: int | None = None

    def __post_init__(self):
        weights = tuple(self.weights)
        if not all(isinstance(W, TernaryMatrix) for W in weights):
            raise InputError("weights must be TernaryMatrix instances")
        k2 = _check_arch(self.arch).filter_size ** 2
        channels = []
        for layer, W in enumerate(weights, start=1):
            if W.shape[1] % k2:
                raise InputError(f"layer {layer}: a ({W.shape[0]}, C k^2) matrix needs a "
                                 f"multiple of k^2 = {k2} columns, got {W.shape[1]}")
            channels.append((W.shape[0], W.shape[1] // k2))
        input_shape, acts, centring = _check_network(channels, self.arch, self.input_shape,
                                                     self.activations, self.centring)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "centring", centring)
        object.__setattr__(self, "input_shape", input_shape)
        object.__setattr__(self, "eps", _check_eps(self.eps))

    @classmethod
    def random(cls, input_shape, channels: Sequence[int], activations, eps: float, tau0: float,
               arch: ConvArchitecture, seed: int = 0) -> CompressedCNN:
        """Draw a network: W_l = S_l / sqrt(1 - eps), m_l from ``ntk.constants.tau_chain``.

        The signs are drawn layer by layer from ``rng = numpy.random.default_rng(seed)`` with
        ``nets.compressed.sample_ternary_signs((C_l, C_{l-1}, k, k), eps, rng)``, so that
        ``weights[l].to_dense().reshape(C_l, C_{l-1}, k, k)`` equals, bit for bit,
        ``ntk.weights.sample_weights(f"ternary:{eps}", (C_l, C_{l-1}, k, k), rng)`` drawn in
        the same order from the same seed.

        Args:
            input_shape: (C_0, H, W) of the images.
            channels: (C_1, ..., C_L), each >= 1.
            activations: one activation per layer (names, :class:`Activation` objects or a
                comma-separated string).
            eps: sparsity in [0, 1).
            tau0: input scale (> 0), e.g. ``solvers.cnn_input_scale(images, arch)``:
                m_l = E[sigma_l(tau_{l-1} xi)] along the fully connected chain
                tau_l^2 = Var[sigma_l(tau_{l-1} xi)].
            arch: the architecture, with ``arch.layers`` = L.
            seed: seed of the generator.

        Raises:
            InputError: bad input shape, channels, eps, tau0, activations or an architecture
                that does not fit the input grid.
        """
        acts = parse_activations(activations)
        channels = _check_channels(channels, len(acts))
        eps = _check_eps(eps)
        centring = [c.m0 for c in tau_chain(acts, _check_tau0(tau0))]
        input_shape = _check_input_shape(input_shape)
        k = _check_arch(arch).filter_size
        rng = np.random.default_rng(seed)
        scale = 1.0 / math.sqrt(1.0 - eps)
        weights = tuple(
            TernaryMatrix(sample_ternary_signs((c, c_prev, k, k), eps, rng).reshape(c, -1),
                          scale)
            for c_prev, c in zip((input_shape[0], *channels[:-1]), channels, strict=True))
        return cls(weights, tuple(acts), tuple(centring), arch, input_shape, eps, seed)

    def features(self, images, dtype=np.float32) -> np.ndarray:
        """The (d, n) readout features of the images (module docstring).

        Every convolution is a packed ternary product of the im2col patches; images go through
        in blocks, so memory does not grow with n. A step activation is discontinuous: a
        pre-activation within rounding of a threshold may land on either side depending on
        precision and summation order.

        Args:
            images: (n, C_0, H, W) real, finite images.
            dtype: float32 (default) or float64; the whole forward pass runs in it.

        Raises:
            InputError: images of another shape than (n, *input_shape), not real or not
                finite; bad dtype.
        """
        dtype = _check_dtype(dtype)
        return self._features(images, [W.matmul for W in self.weights], dtype)


@dataclass(frozen=True, eq=False)
class DenseCNN(_ConvNetwork):
    """The same CNN with dense float32 filters: the uncompressed baseline.

    Build it from given filters (e.g. pruned or uniformly quantized copies of another
    network's ``weights``) or draw Gaussian ones with :meth:`random`.

    Attributes:
        weights: W_1..W_L, float32 filters of shape (C_l, C_{l-1}, k, k).
        activations: sigma_1..sigma_L.
        centring: m_1..m_L.
        arch: the :class:`ConvArchitecture`.
        input_shape: (C_0, H, W) of the images.
    """

    weights: tuple[np.ndarray, ...]
    activations: tuple[Activation, ...]
    centring: tuple[float, ...]
    arch: ConvArchitecture
    input_shape: tuple[int, int, int]

    def __post_init__(self):
        weights = tuple(np.asarray(W, dtype=np.float32) for W in self.weights)
        k = _check_arch(self.arch).filter_size
        for layer, W in enumerate(weights, start=1):
            if W.ndim != 4 or W.size == 0 or W.shape[2:] != (k, k):
                raise InputError(f"layer {layer}: filters must be a non-empty (C_l, C_{{l-1}}, "
                                 f"{k}, {k}) array, got shape {W.shape}")
        input_shape, acts, centring = _check_network([W.shape[:2] for W in weights], self.arch,
                                                     self.input_shape, self.activations,
                                                     self.centring)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "centring", centring)
        object.__setattr__(self, "input_shape", input_shape)

    @classmethod
    def random(cls, input_shape, channels: Sequence[int], activations, tau0: float,
               arch: ConvArchitecture, seed: int = 0) -> DenseCNN:
        """Draw filters with i.i.d. N(0, 1) float32 entries; m_l as in
        :meth:`CompressedCNN.random`.

        The filters are ``ntk.weights.sample_weights("gaussian", (C_l, C_{l-1}, k, k), rng,
        np.float32)`` in layer order from ``rng = numpy.random.default_rng(seed)``.

        Raises:
            InputError: bad input shape, channels, tau0, activations or architecture.
        """
        acts = parse_activations(activations)
        channels = _check_channels(channels, len(acts))
        centring = [c.m0 for c in tau_chain(acts, _check_tau0(tau0))]
        input_shape = _check_input_shape(input_shape)
        k = _check_arch(arch).filter_size
        rng = np.random.default_rng(seed)
        weights = tuple(sample_weights("gaussian", (c, c_prev, k, k), rng, np.float32)
                        for c_prev, c in zip((input_shape[0], *channels[:-1]), channels,
                                             strict=True))
        return cls(weights, tuple(acts), tuple(centring), arch, input_shape)

    def features(self, images, dtype=np.float32) -> np.ndarray:
        """The (d, n) readout features (see :meth:`CompressedCNN.features`); each convolution
        is one BLAS product of the (C_l, C_{l-1} k^2) filter matrix with the patches."""
        dtype = _check_dtype(dtype)
        products = [functools.partial(np.matmul, W.reshape(W.shape[0], -1).astype(dtype))
                    for W in self.weights]
        return self._features(images, products, dtype)
