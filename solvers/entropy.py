"""Entropy models and lossless coding of sparse ternary weight tensors (spec section 7).

A weight of the law "0 w.p. eps, +-1/sqrt(1 - eps) w.p. (1 - eps)/2 each" carries, once its
scale is known, one of three symbols {-1, 0, +1} with probabilities ((1 - eps)/2, eps,
(1 - eps)/2). Its entropy in bits is

    H(eps) = h(eps) + (1 - eps),   h(q) = -q log2 q - (1 - q) log2(1 - q),

(h(eps) to say whether the weight is zero, one more bit for the sign of a non-zero one). No
lossless code of i.i.d. weights does better on average, so this is the bound the coder is
measured against. A given tensor is coded against its own symbol frequencies, whose total
information is the empirical entropy -sum_k n_k log2(n_k / N).

Byte format of :func:`encode_ternary` (version 1), all integers unsigned:

    offset  size     field
    0       2        magic b"T3"
    2       1        format version (1)
    3       varint   ndim
            varint   shape[0], ..., shape[ndim - 1]
            varint   n_minus: number of -1 entries
            varint   n_plus: number of +1 entries  (the zeros are prod(shape) - n_minus - n_plus)
            4 k      payload: k little-endian uint32 words of a range code
    end-4   4        CRC-32 (zlib) of every byte before it, little-endian

Varints are LEB128 (7 bits per byte, low group first, high bit set on all but the last byte).
The payload codes the flattened (C order) tensor, one symbol per entry, with the range coder of
``constriction`` (``constriction.stream.queue.RangeEncoder``: 32-bit words, 64-bit state) and one
categorical model over the symbols that occur (in the order -1, 0, +1), built by
``constriction.stream.model.Categorical(counts, perfect=False)`` from the counts in the header.
A tensor with a single distinct symbol has an empty payload. The header makes the bytes
self-describing: decoding needs nothing else, and the CRC turns any corruption or truncation
into an error instead of a silently wrong tensor.
"""

from __future__ import annotations

import math
import zlib

import constriction
import numpy as np

__all__ = [
    "FORMAT_VERSION",
    "decode_ternary",
    "empirical_entropy_bits",
    "encode_ternary",
    "ternary_entropy_bound",
]

#: Version byte written by :func:`encode_ternary`.
FORMAT_VERSION = 1

_MAGIC = b"T3"
_CRC_BYTES = 4
_WORD = np.dtype("<u4")
# Symbol values in the order their model indices are assigned.
_VALUES = np.array([-1, 0, 1], dtype=np.int8)


def ternary_entropy_bound(eps: float) -> float:
    """Entropy of one sparse ternary weight, in bits: h(eps) + (1 - eps).

    Args:
        eps: sparsity, the probability of a zero, in [0, 1].

    Returns:
        Bits per weight, from 1 (eps = 0: a fair sign) through log2(3) (eps = 1/3) to 0
        (eps = 1).

    Raises:
        ValueError: eps outside [0, 1] or not a number.
    """
    eps = float(eps)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"the sparsity eps must lie in [0, 1], got {eps}")
    h = 0.0
    for q in (eps, 1.0 - eps):
        if q > 0.0:
            h -= q * math.log2(q)
    return h + (1.0 - eps)


def empirical_entropy_bits(symbols) -> float:
    """Total information of a sequence under its own symbol frequencies, in bits.

    H_emp = -sum_k n_k log2(n_k / N), with n_k the count of each distinct value and N the
    number of entries. This is what an ideal coder with the tensor's own (static) frequencies
    spends, model excluded.

    Args:
        symbols: array-like of any shape; entries are compared by value.

    Returns:
        Total bits (0 for an empty or constant input).
    """
    values = np.asarray(symbols).ravel()
    if values.size == 0:
        return 0.0
    _, counts = np.unique(values, return_counts=True)
    counts = counts.astype(np.float64)
    return float(-np.sum(counts * np.log2(counts / values.size)))


def encode_ternary(signs: np.ndarray) -> bytes:
    """Entropy-code a tensor with entries in {-1, 0, +1} (format in the module docstring).

    The coded size is the empirical entropy of the tensor plus O(1) words of coder flush,
    the header (a few bytes plus one varint per dimension) and the small loss of the model's
    24-bit fixed-point probabilities.

    Args:
        signs: integer array of any shape with at least one entry, values in {-1, 0, 1}.

    Returns:
        The self-describing byte string; :func:`decode_ternary` inverts it exactly.

    Raises:
        ValueError: non-integer dtype, empty array, or a value outside {-1, 0, 1}.
    """
    signs = np.asarray(signs)
    if not np.issubdtype(signs.dtype, np.integer):
        raise ValueError(f"signs must be an integer array with values in {{-1, 0, 1}}, got "
                         f"dtype {signs.dtype}")
    if signs.size == 0:
        raise ValueError(f"cannot encode an empty array (shape {signs.shape})")
    flat = signs.ravel()
    low, high = int(flat.min()), int(flat.max())
    if low < -1 or high > 1:
        bad = low if low < -1 else high
        raise ValueError(f"signs must take values in {{-1, 0, 1}}, found {bad}")
    # Shifting by one maps -1, 0, +1 to the bincount slots 0, 1, 2.
    shifted = flat.astype(np.int32) + 1
    counts = np.bincount(shifted, minlength=3)
    header = bytearray(_MAGIC)
    header.append(FORMAT_VERSION)
    for value in (signs.ndim, *signs.shape, counts[0], counts[2]):
        header += _varint(int(value))
    present = counts > 0
    payload = b""
    if np.count_nonzero(present) > 1:
        # Model indices run over the symbols that occur only: an absent symbol would otherwise
        # still get the smallest representable probability and cost a little on every entry.
        index_of = np.cumsum(present, dtype=np.int32) - 1
        encoder = constriction.stream.queue.RangeEncoder()
        encoder.encode(index_of[shifted], _model(counts[present]))
        payload = encoder.get_compressed().astype(_WORD, copy=False).tobytes()
    body = bytes(header) + payload
    return body + zlib.crc32(body).to_bytes(_CRC_BYTES, "little")


def decode_ternary(data: bytes) -> np.ndarray:
    """Decode the output of :func:`encode_ternary`.

    Args:
        data: the bytes (``bytes``, ``bytearray`` or ``memoryview``).

    Returns:
        int8 array with the encoded shape and values.

    Raises:
        ValueError: not bytes, wrong magic or version, CRC mismatch (corrupt or truncated
            data), or a header inconsistent with the payload.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < len(_MAGIC) + 2 + _CRC_BYTES or data[:len(_MAGIC)] != _MAGIC:
        raise ValueError("not a ternary code: missing magic bytes b'T3' (truncated or "
                         "foreign data)")
    if data[len(_MAGIC)] != FORMAT_VERSION:
        raise ValueError(f"unsupported ternary code version {data[len(_MAGIC)]} (this reader "
                         f"knows version {FORMAT_VERSION})")
    body, crc = data[:-_CRC_BYTES], int.from_bytes(data[-_CRC_BYTES:], "little")
    if zlib.crc32(body) != crc:
        raise ValueError("corrupt ternary code: CRC-32 mismatch (data altered or truncated)")
    pos = len(_MAGIC) + 1
    ndim, pos = _read_varint(body, pos)
    shape = []
    for _ in range(ndim):
        d, pos = _read_varint(body, pos)
        shape.append(d)
    n_minus, pos = _read_varint(body, pos)
    n_plus, pos = _read_varint(body, pos)
    size = math.prod(shape)
    counts = np.array([n_minus, size - n_minus - n_plus, n_plus], dtype=np.int64)
    if size == 0 or counts[1] < 0:
        raise ValueError(f"corrupt ternary code: shape {tuple(shape)} cannot hold "
                         f"{n_minus} entries -1 and {n_plus} entries +1")
    payload = body[pos:]
    if len(payload) % _WORD.itemsize:
        raise ValueError("corrupt ternary code: payload is not a whole number of 32-bit words")
    present = counts > 0
    values = _VALUES[present]
    if values.size == 1:
        if payload:
            raise ValueError("corrupt ternary code: constant tensor with a non-empty payload")
        return np.full(shape, values[0], dtype=np.int8)
    words = np.frombuffer(payload, dtype=_WORD).astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    indices = decoder.decode(_model(counts[present]), size)
    out = values[indices]
    if not decoder.maybe_exhausted() or not np.array_equal(
            np.bincount(indices, minlength=values.size), counts[present]):
        raise ValueError("corrupt ternary code: payload does not match the header's counts")
    return out.reshape(shape)


def _model(counts: np.ndarray):
    """Categorical model with probabilities proportional to ``counts`` (>= 2 symbols)."""
    # Counts below 2^53 are exact in float64, so encoder and decoder build the same model.
    return constriction.stream.model.Categorical(counts.astype(np.float64), perfect=False)


def _varint(value: int) -> bytes:
    """LEB128 encoding of a non-negative integer."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode the LEB128 integer at ``data[pos:]``; returns it and the position after it."""
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError("corrupt ternary code: header ends inside an integer")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("corrupt ternary code: header integer longer than 64 bits")
