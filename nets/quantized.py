"""A trained model whose weight tensors are stored as integers on uniform grids, entropy coded.

Storage rule (what ``coded_bytes`` counts): for every Dense/Conv2d layer, the bytes written by
``solvers.entropy.encode_integers`` for its integer weights (self-describing: header, range
code, CRC), plus 4 bytes per float32 scale and per float32 bias. Layers without weights
(activations, pooling) cost nothing; a layer left unquantized costs 4 bytes per weight.

Each Dense layer has one scale per output unit (``W`` is (in, out), channel axis 1), each
Conv2d one per output channel (``W`` is (out, in, k, k), channel axis 0).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from nets.layers import Conv2d, Dense
from nets.model import Sequential
from ntklc.errors import InputError
from solvers.entropy import decode_integers, encode_integers
from solvers.rounding import QuantizedTensor

__all__ = ["QuantizedModel", "channel_axis", "dense_bytes", "weight_layers"]

_FLOAT_BYTES = 4


def weight_layers(model: Sequential) -> list[int]:
    """Indices in ``model.layers`` of the Dense and Conv2d layers.

    Raises:
        InputError: the model has none.
    """
    found = [i for i, layer in enumerate(model.layers) if isinstance(layer, (Dense, Conv2d))]
    if not found:
        raise InputError("the model has no Dense or Conv2d layer to compress")
    return found


def channel_axis(layer) -> int:
    """Axis of ``layer.W`` that indexes output channels (1 for Dense, 0 for Conv2d)."""
    return 1 if isinstance(layer, Dense) else 0


@dataclass(frozen=True)
class QuantizedModel:
    """A model and the quantized form of some of its weight tensors.

    Attributes:
        model: the original trained model (never modified).
        tensors: layer index -> :class:`solvers.rounding.QuantizedTensor` of that layer's W.
    """

    model: Sequential
    tensors: Mapping[int, QuantizedTensor]

    def __post_init__(self):
        layers = set(weight_layers(self.model))
        for i, q in self.tensors.items():
            if i not in layers:
                raise InputError(f"layer {i} is not a Dense or Conv2d layer of the model")
            if q.symbols.shape != self.model.layers[i].W.shape:
                raise InputError(f"layer {i}: symbols of shape {q.symbols.shape}, weights "
                                 f"{self.model.layers[i].W.shape}")

    def to_sequential(self) -> Sequential:
        """A copy of the model with every quantized W replaced by its dequantized values."""
        out = copy.deepcopy(self.model)
        for i, q in self.tensors.items():
            out.layers[i].W[...] = q.dequantize()
        return out

    def encode(self) -> dict[int, bytes]:
        """Range-coded integer weights of every quantized layer."""
        return {i: encode_integers(q.symbols) for i, q in self.tensors.items()}

    def coded_bytes(self, codes: Mapping[int, bytes] | None = None) -> int:
        """Stored size in bytes by the rule of the module docstring."""
        codes = self.encode() if codes is None else codes
        total = 0
        for i in weight_layers(self.model):
            layer = self.model.layers[i]
            total += _FLOAT_BYTES * layer.b.size
            if i in self.tensors:
                total += len(codes[i]) + _FLOAT_BYTES * self.tensors[i].scale.size
            else:
                total += _FLOAT_BYTES * layer.W.size
        return total

    def round_trip_exact(self, codes: Mapping[int, bytes] | None = None) -> bool:
        """Whether decoding every code gives back the stored integers bit for bit."""
        codes = self.encode() if codes is None else codes
        # array_equal compares the shapes too.
        return all(np.array_equal(decode_integers(codes[i]), q.symbols)
                   for i, q in self.tensors.items())

    def bits(self) -> dict[int, int]:
        """Bit width of every quantized layer."""
        return {i: q.bits for i, q in self.tensors.items()}


def dense_bytes(model: Sequential) -> int:
    """Float32 size of all weights and biases of the weight layers."""
    return sum(_FLOAT_BYTES * (model.layers[i].W.size + model.layers[i].b.size)
               for i in weight_layers(model))
