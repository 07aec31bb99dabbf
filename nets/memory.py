"""Memory of a compressed network against its dense float32 counterpart (spec section 7).

The accounting rule (also carried by every :class:`MemoryReport` in its ``rule`` field):

* A layer is its weight matrix: (d_l, d_{l-1}) for a fully connected layer, (C_l, C_{l-1} k^2)
  (the k x k filters, one row per output channel) for a convolution of a
  :class:`~nets.compressed_cnn.CompressedCNN`, accounted alike. A layer's activation values
  per sample are d_l, or C_l H_l' W_l' for a convolution: its output grid before pooling,
  where the values are still the activation's (a pooled value averages four of them and is
  not one of k levels).
* Dense baseline: every hidden-layer weight is a float32 (32 bits); every layer's activation
  is a fixed function whose only stored parameter is its centring m_l (one float32); an
  activation value takes 32 bits.
* Compressed hidden weights, three ways, each plus one float32 scale per layer:
  (a) ``packed``: 2 bits per weight, each layer rounded up to whole bytes;
  (b) ``bound``: the entropy bound h(eps) + (1 - eps) bits per weight, h the binary entropy,
      for the law's eps (a real number, not rounded);
  (c) ``coded``: 8 x the bytes that ``solvers.entropy.encode_ternary`` actually writes for
      each layer's signs (header and checksum included).
* Compressed activations: a piecewise-constant activation with k levels stores its k - 1
  thresholds and k levels as float32 (32 (2k - 1) bits; the centring folds into the levels)
  and an activation value takes ceil(log2 k) bits; any other activation counts as in the
  dense baseline.
* Readout (when its shape is given): float32 in both, 32 bits per entry, on the d_L features
  (a CNN's readout features: C_L H_L W_L for flatten, C_L for global average pooling).
* Totals add hidden weights, activation parameters and readout. Activation values are
  per-sample working memory, reported per layer and per sample, not in the totals.
* Factors are dense bits / compressed bits, for the hidden layers and the whole model.
* A network drawn by ``CompressedNetwork.random`` or ``CompressedCNN.random`` can also be
  regenerated from its seed and law: 64 bits of seed + 32 bits of eps for all hidden weights
  (``seed_regenerated_bits``). That presumes the exact generator at load time and holds for
  random features only, so it is reported apart and never enters the totals or factors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from nets.compressed import CompressedNetwork
from nets.compressed_cnn import CompressedCNN
from ntk.activations import Activation
from ntklc.errors import InputError
from solvers.entropy import encode_ternary, ternary_entropy_bound

__all__ = ["RULE", "MemoryReport", "memory_report"]

_FLOAT32_BITS = 32
_PACKED_BITS = 2
_SEED_BITS = 64

#: The accounting rule in one paragraph (stored in every report).
RULE = (
    "dense: 32 bits per hidden weight (float32), 32 bits per layer for the activation's "
    "centring, 32 bits per activation value; compressed hidden weights + one float32 scale "
    "per layer, as (a) packed: 2 bits per weight rounded up to whole bytes per layer, (b) "
    "bound: h(eps) + (1 - eps) bits per weight, (c) coded: the bytes written by "
    "solvers.entropy.encode_ternary; a k-level piecewise-constant activation: (2k - 1) "
    "float32 parameters (k - 1 thresholds, k levels, centring folded in) and ceil(log2 k) "
    "bits per value, other activations as dense; readout float32 in both; totals = hidden "
    "weights + activation parameters + readout (activation values are per-sample memory, "
    "not in totals); factor = dense bits / compressed bits; seed regeneration (64-bit seed + "
    "float32 eps) reported apart, never in totals. A convolution counts as its (C_l, "
    "C_{l-1} k^2) filter matrix, its activation values per sample as C_l x H_l x W_l of its "
    "output grid before pooling, its readout on the network's readout features."
)


@dataclass(frozen=True)
class MemoryReport:
    """Bits of a dense float32 network and of its compressed counterpart (see ``RULE``).

    Attributes:
        rule: the accounting rule, verbatim.
        eps: sparsity of the ternary weight law.
        layer_shapes: (d_l, d_{l-1}) of each hidden layer ((C_l, C_{l-1} k^2) of a convolution).
        hidden_weights: number of hidden-layer weights, sum_l d_l d_{l-1} (filter entries).
        dense_hidden_bits: 32 x hidden_weights.
        packed_hidden_bits: (a) 2-bit packing, bytes per layer, plus 32 bits of scale per layer.
        bound_hidden_bits: (b) hidden_weights x (h(eps) + 1 - eps), plus the scales.
        coded_hidden_bits: (c) 8 x encoded bytes of every layer's signs, plus the scales.
        activation_levels: k of each layer's activation (``None``: not piecewise constant).
        dense_activation_bits: activation parameters of the dense network (centrings).
        compressed_activation_bits: activation parameters of the compressed network.
        dense_value_bits: bits per activation value of each dense layer (32).
        compressed_value_bits: bits per activation value of each compressed layer.
        dense_values_per_sample_bits: sum_l d_l x dense_value_bits[l], with d_l the layer's
            activation values per sample (C_l H_l' W_l' of a convolution, before pooling).
        compressed_values_per_sample_bits: sum_l d_l x compressed_value_bits[l].
        readout_shape: (outputs, d_L) of the float32 readout on the d_L readout features, or
            ``None``.
        readout_bits: 32 bits per readout entry (0 without readout).
        dense_total_bits: dense hidden + dense activation parameters + readout.
        packed_total_bits, bound_total_bits, coded_total_bits: the same for (a), (b), (c).
        hidden_factor_packed, hidden_factor_bound, hidden_factor_coded: dense_hidden_bits over
            (a), (b), (c).
        total_factor_packed, total_factor_bound, total_factor_coded: dense_total_bits over the
            compressed totals.
        seed_regenerated_bits: seed + law of the hidden weights when the network records its
            seed, else ``None``; not a headline number (see ``RULE``).
    """

    rule: str
    eps: float
    layer_shapes: tuple[tuple[int, int], ...]
    hidden_weights: int
    dense_hidden_bits: int
    packed_hidden_bits: int
    bound_hidden_bits: float
    coded_hidden_bits: int
    activation_levels: tuple[int | None, ...]
    dense_activation_bits: int
    compressed_activation_bits: int
    dense_value_bits: tuple[int, ...]
    compressed_value_bits: tuple[int, ...]
    dense_values_per_sample_bits: int
    compressed_values_per_sample_bits: int
    readout_shape: tuple[int, int] | None
    readout_bits: int
    dense_total_bits: int
    packed_total_bits: int
    bound_total_bits: float
    coded_total_bits: int
    hidden_factor_packed: float
    hidden_factor_bound: float
    hidden_factor_coded: float
    total_factor_packed: float
    total_factor_bound: float
    total_factor_coded: float
    seed_regenerated_bits: int | None

    def as_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return _lists(asdict(self))


def memory_report(network: CompressedNetwork | CompressedCNN,
                  readout_shape: tuple[int, int] | None = None) -> MemoryReport:
    """Account the memory of ``network`` against the dense float32 baseline.

    Dense: 32 bits per hidden weight. Compressed hidden weights, each plus 32 bits of scale per
    layer: (a) 2 bits per weight (whole bytes per layer), (b) h(eps) + (1 - eps) bits per
    weight, (c) the bytes of ``solvers.entropy.encode_ternary`` on the real signs. A k-level
    step activation costs 32 (2k - 1) bits of parameters and ceil(log2 k) bits per value
    (dense: 32 bits of centring, 32 bits per value). The readout is float32 in both. A CNN is
    accounted alike, layer by layer: its (C_l, C_{l-1} k^2) filter matrices are the weights,
    C_l H_l' W_l' values per sample per layer (the convolution's output grid, before
    pooling), the readout on its ``feature_count`` features. The complete rule is
    ``nets.memory.RULE``.

    Args:
        network: the compressed network (fully connected or convolutional).
        readout_shape: (outputs, d_L) of a float32 readout on the last layer's d_L features,
            or ``None``.

    Returns:
        :class:`MemoryReport`.

    Raises:
        InputError: ``network`` is not a :class:`CompressedNetwork` or
            :class:`~nets.compressed_cnn.CompressedCNN`, or ``readout_shape`` is not two
            positive integers with second entry d_L.
    """
    if not isinstance(network, CompressedNetwork | CompressedCNN):
        raise InputError(f"network must be a CompressedNetwork or CompressedCNN, got "
                         f"{type(network).__name__}")
    values, features = _layer_values(network)
    readout_bits = 0
    if readout_shape is not None:
        readout_shape = _check_readout(readout_shape, features)
        readout_bits = _FLOAT32_BITS * readout_shape[0] * readout_shape[1]
    shapes = tuple(W.shape for W in network.weights)
    sizes = [d_out * d_in for d_out, d_in in shapes]
    hidden = sum(sizes)
    scales = _FLOAT32_BITS * len(shapes)
    dense_hidden = _FLOAT32_BITS * hidden
    packed_hidden = sum(8 * math.ceil(_PACKED_BITS * size / 8) for size in sizes) + scales
    bound_hidden = hidden * ternary_entropy_bound(network.eps) + scales
    coded_hidden = sum(8 * len(encode_ternary(W.to_signs())) for W in network.weights) + scales

    levels = tuple(_levels(act) for act in network.activations)
    dense_act = _FLOAT32_BITS * len(levels)
    compressed_act = sum(_FLOAT32_BITS * (2 * k - 1 if k is not None else 1) for k in levels)
    dense_values = (_FLOAT32_BITS,) * len(levels)
    compressed_values = tuple(math.ceil(math.log2(k)) if k is not None else _FLOAT32_BITS
                              for k in levels)

    dense_total = dense_hidden + dense_act + readout_bits
    packed_total, bound_total, coded_total = (
        h + compressed_act + readout_bits for h in (packed_hidden, bound_hidden, coded_hidden))
    seed_bits = None if network.seed is None else _SEED_BITS + _FLOAT32_BITS
    return MemoryReport(
        rule=RULE,
        eps=network.eps,
        layer_shapes=shapes,
        hidden_weights=hidden,
        dense_hidden_bits=dense_hidden,
        packed_hidden_bits=packed_hidden,
        bound_hidden_bits=bound_hidden,
        coded_hidden_bits=coded_hidden,
        activation_levels=levels,
        dense_activation_bits=dense_act,
        compressed_activation_bits=compressed_act,
        dense_value_bits=dense_values,
        compressed_value_bits=compressed_values,
        dense_values_per_sample_bits=sum(d * b for d, b in zip(values, dense_values,
                                                               strict=True)),
        compressed_values_per_sample_bits=sum(d * b for d, b in zip(values, compressed_values,
                                                                    strict=True)),
        readout_shape=readout_shape,
        readout_bits=readout_bits,
        dense_total_bits=dense_total,
        packed_total_bits=packed_total,
        bound_total_bits=bound_total,
        coded_total_bits=coded_total,
        hidden_factor_packed=dense_hidden / packed_hidden,
        hidden_factor_bound=dense_hidden / bound_hidden,
        hidden_factor_coded=dense_hidden / coded_hidden,
        total_factor_packed=dense_total / packed_total,
        total_factor_bound=dense_total / bound_total,
        total_factor_coded=dense_total / coded_total,
        seed_regenerated_bits=seed_bits,
    )


def _layer_values(network) -> tuple[tuple[int, ...], int]:
    """Activation values per sample of each layer, and the number of readout features."""
    if isinstance(network, CompressedCNN):
        return network.layer_values, network.feature_count
    return network.widths, network.widths[-1]


def _levels(act: Activation) -> int | None:
    """Number of levels k of a piecewise-constant activation, ``None`` for any other."""
    if act.pieces is None or not all(piece.poly.is_number for piece in act.pieces):
        return None
    return len(act.pieces)


def _check_readout(shape, d_last: int) -> tuple[int, int]:
    shape = tuple(shape)
    if len(shape) != 2 or any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1
                              for v in shape):
        raise InputError(f"readout_shape must be two integers >= 1 (outputs, d_L), got {shape}")
    if shape[1] != d_last:
        raise InputError(f"readout_shape {shape} must be (outputs, d_L) with d_L = {d_last}")
    return (int(shape[0]), int(shape[1]))


def _lists(value):
    if isinstance(value, tuple | list):
        return [_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value
