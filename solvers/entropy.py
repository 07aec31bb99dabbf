"""Entropy models and lossless coding of ternary and general integer weight tensors.

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

Byte format of :func:`encode_integers` (version 1), for tensors of arbitrary integers (the
symbols of a quantizer, spec section L2):

    offset  size     field
    0       2        magic b"IC"
    2       1        format version (1)
    3       varint   ndim
            varint   shape[0], ..., shape[ndim - 1]
            varint   K: number of distinct values (>= 1)
            zigzag   v_0: the smallest value, zigzag-mapped (v >= 0 -> 2v, v < 0 -> -2v - 1)
            varint   v_k - v_(k-1) - 1 for k = 1 .. K-1 (the values strictly ascending)
            varint   n_0, ..., n_(K-2): counts of all values but the largest
                     (n_(K-1) = prod(shape) - n_0 - ... - n_(K-2))
            4 m      payload: m little-endian uint32 words of a range code
    end-4   4        CRC-32 (zlib) of every byte before it, little-endian

The payload is the range code (same coder as above) of the index k of every entry's value v_k,
flattened in C order, under one categorical model with probabilities n_k / N. A header costs
about one byte per distinct value for the value gaps plus one varint per count, so this format
pays off for tensors whose values are few compared with their entries, as quantizer outputs
are. At most ``MAX_DISTINCT`` distinct values are accepted: the coder's 24-bit fixed-point
model must give every value a probability of at least 2^-24.
"""

from __future__ import annotations

import math
import zlib

import constriction
import numpy as np

from ntklc.errors import InputError

__all__ = [
    "FORMAT_VERSION",
    "INTEGER_FORMAT_VERSION",
    "MAX_DISTINCT",
    "decode_integers",
    "decode_ternary",
    "empirical_entropy_bits",
    "encode_integers",
    "encode_ternary",
    "ternary_entropy_bound",
]

#: Version byte written by :func:`encode_ternary`.
FORMAT_VERSION = 1

#: Version byte written by :func:`encode_integers`.
INTEGER_FORMAT_VERSION = 1
#: Most distinct values :func:`encode_integers` accepts in one tensor.
MAX_DISTINCT = 2**20

_MAGIC = b"T3"
_INT_MAGIC = b"IC"
_TERNARY = "ternary code"
_INTEGERS = "integer code"
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
        InputError: eps outside [0, 1] or not a number.
    """
    eps = float(eps)
    if not 0.0 <= eps <= 1.0:
        raise InputError(f"the sparsity eps must lie in [0, 1], got {eps}")
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
        InputError: non-integer dtype, empty array, or a value outside {-1, 0, 1}.
    """
    signs = _check_integers(signs, "signs must be an integer array with values in {-1, 0, 1}")
    flat = signs.ravel()
    low, high = int(flat.min()), int(flat.max())
    if low < -1 or high > 1:
        bad = low if low < -1 else high
        raise InputError(f"signs must take values in {{-1, 0, 1}}, found {bad}")
    # Shifting by one maps -1, 0, +1 to the bincount slots 0, 1, 2.
    shifted = flat.astype(np.int32) + 1
    counts = np.bincount(shifted, minlength=3)
    header = _header(_MAGIC, FORMAT_VERSION, signs.shape, counts[0], counts[2])
    present = counts > 0
    payload = b""
    if np.count_nonzero(present) > 1:
        # Model indices run over the symbols that occur only: an absent symbol would otherwise
        # still get the smallest representable probability and cost a little on every entry.
        index_of = np.cumsum(present, dtype=np.int32) - 1
        payload = _range_encode(index_of[shifted], counts[present])
    return _seal(header + payload)


def decode_ternary(data: bytes) -> np.ndarray:
    """Decode the output of :func:`encode_ternary`.

    Args:
        data: the bytes (``bytes``, ``bytearray`` or ``memoryview``).

    Returns:
        int8 array with the encoded shape and values.

    Raises:
        InputError: not bytes, wrong magic or version, CRC mismatch (corrupt or truncated
            data), or a header inconsistent with the payload.
    """
    body = _unframe(data, _MAGIC, FORMAT_VERSION, _TERNARY)
    shape, pos = _read_shape(body, len(_MAGIC) + 1, _TERNARY)
    n_minus, pos = _read_varint(body, pos, _TERNARY)
    n_plus, pos = _read_varint(body, pos, _TERNARY)
    size = math.prod(shape)
    counts = np.array([n_minus, size - n_minus - n_plus, n_plus], dtype=np.int64)
    if size == 0 or counts[1] < 0:
        raise InputError(f"corrupt ternary code: shape {tuple(shape)} cannot hold "
                         f"{n_minus} entries -1 and {n_plus} entries +1")
    present = counts > 0
    indices = _range_decode(body[pos:], counts[present], _TERNARY)
    return _VALUES[present][indices].reshape(shape)


def encode_integers(symbols: np.ndarray) -> bytes:
    """Entropy-code a tensor of arbitrary integers (format in the module docstring).

    The distinct values v_k and their counts n_k go into the header; the entries are range
    coded against the categorical law p_k = n_k / N. The payload is therefore within a few
    words of the empirical entropy -sum_k n_k log2(n_k / N) (the coder's flush plus the loss
    of the 24-bit fixed-point model), and the header adds 3 bytes, one varint per dimension and
    about two per distinct value, plus 4 bytes of CRC. A constant tensor has an empty payload.

    Args:
        symbols: integer array of any shape with at least one entry and values in the int64
            range (e.g. quantizer outputs).

    Returns:
        The self-describing byte string; :func:`decode_integers` inverts it exactly.

    Raises:
        InputError: non-integer dtype, empty array, a value beyond int64, or more than
            ``MAX_DISTINCT`` distinct values.
    """
    symbols = _check_integers(symbols, "symbols must be an integer array")
    flat = symbols.ravel()
    high = int(flat.max())
    if high > np.iinfo(np.int64).max:
        raise InputError(f"symbols must fit in int64, found {high}")
    values, counts, indices = _distinct(flat)
    if values.size > MAX_DISTINCT:
        raise InputError(f"symbols take {values.size} distinct values; the coder's model "
                         f"holds at most {MAX_DISTINCT}")
    # Differences of int64 values can exceed int64; in uint64 arithmetic (modulo 2^64) they
    # are exact, since every true gap lies in [0, 2^64 - 2].
    wide = values.astype(np.uint64)
    gaps = wide[1:] - wide[:-1] - np.uint64(1)
    header = _header(_INT_MAGIC, INTEGER_FORMAT_VERSION, symbols.shape, values.size,
                     _zigzag(int(values[0])), *gaps.tolist(), *counts[:-1].tolist())
    payload = _range_encode(indices, counts) if values.size > 1 else b""
    return _seal(header + payload)


def decode_integers(data: bytes) -> np.ndarray:
    """Decode the output of :func:`encode_integers`.

    Args:
        data: the bytes (``bytes``, ``bytearray`` or ``memoryview``).

    Returns:
        Array of the encoded shape and values, of the narrowest of int8, int16, int32, int64
        that holds the values (equal, by ``np.array_equal``, to what was encoded).

    Raises:
        InputError: not bytes, wrong magic or version, CRC mismatch (corrupt or truncated
            data), or a header inconsistent with itself or with the payload.
    """
    body = _unframe(data, _INT_MAGIC, INTEGER_FORMAT_VERSION, _INTEGERS)
    shape, pos = _read_shape(body, len(_INT_MAGIC) + 1, _INTEGERS)
    size = math.prod(shape)
    n_values, pos = _read_varint(body, pos, _INTEGERS)
    if not 1 <= n_values <= min(size, MAX_DISTINCT):
        raise InputError(f"corrupt integer code: shape {tuple(shape)} cannot hold "
                         f"{n_values} distinct values")
    first, pos = _read_varint(body, pos, _INTEGERS)
    values = [_unzigzag(first)]
    for _ in range(n_values - 1):
        gap, pos = _read_varint(body, pos, _INTEGERS)
        values.append(values[-1] + gap + 1)
    info = np.iinfo(np.int64)
    if values[0] < info.min or values[-1] > info.max:
        raise InputError("corrupt integer code: a value beyond the int64 range")
    counts = []
    for _ in range(n_values - 1):
        n, pos = _read_varint(body, pos, _INTEGERS)
        counts.append(n)
    counts.append(size - sum(counts))
    if min(counts) < 1:
        raise InputError(f"corrupt integer code: counts {counts[:-1]} of the first values "
                         f"leave {counts[-1]} of the {size} entries for the last one")
    table = np.array(values, dtype=_narrowest_int(values[0], values[-1]))
    indices = _range_decode(body[pos:], np.array(counts, dtype=np.int64), _INTEGERS)
    return table[indices].reshape(shape)


def _check_integers(array, message: str) -> np.ndarray:
    """The array of a non-empty integer tensor, else InputError(message + what was wrong)."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{message}, got dtype {array.dtype}")
    if array.size == 0:
        raise InputError(f"cannot encode an empty array (shape {array.shape})")
    return array


def _distinct(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ascending distinct values (int64), their counts and each entry's index among them."""
    low, high = int(flat.min()), int(flat.max())
    if high - low < 2**16:
        # A narrow range (the usual quantizer output): counting is O(N) where sorting is
        # O(N log N), 5-10x faster at 1e6 entries.
        shifted = flat.astype(np.int64) - low
        counts = np.bincount(shifted, minlength=high - low + 1)
        present = np.flatnonzero(counts)
        index_of = np.zeros(counts.size, dtype=np.int32)
        index_of[present] = np.arange(present.size, dtype=np.int32)
        return present + low, counts[present], index_of[shifted]
    values, indices, counts = np.unique(flat, return_inverse=True, return_counts=True)
    return values.astype(np.int64), counts, indices.reshape(-1).astype(np.int32)


def _narrowest_int(low: int, high: int) -> np.dtype:
    """The smallest signed integer dtype holding every integer of [low, high]."""
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _zigzag(value: int) -> int:
    """Signed -> unsigned: 0, -1, 1, -2, 2, ... -> 0, 1, 2, 3, 4, ..."""
    return 2 * value if value >= 0 else -2 * value - 1


def _unzigzag(value: int) -> int:
    """Inverse of :func:`_zigzag`."""
    return value >> 1 if value % 2 == 0 else -(value >> 1) - 1


def _model(counts: np.ndarray):
    """Categorical model with probabilities proportional to ``counts`` (>= 2 symbols)."""
    # Counts below 2^53 are exact in float64, so encoder and decoder build the same model.
    return constriction.stream.model.Categorical(counts.astype(np.float64), perfect=False)


def _range_encode(indices: np.ndarray, counts: np.ndarray) -> bytes:
    """Range code of model indices (int) under the law counts / sum(counts) (>= 2 counts)."""
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(indices.astype(np.int32, copy=False), _model(counts))
    return encoder.get_compressed().astype(_WORD, copy=False).tobytes()


def _range_decode(payload: bytes, counts: np.ndarray, what: str) -> np.ndarray:
    """Model indices of the ``sum(counts)`` entries coded by :func:`_range_encode`.

    One count means a constant tensor, whose payload must be empty. The decoded indices must
    use up the payload and reproduce ``counts`` exactly.
    """
    if len(payload) % _WORD.itemsize:
        raise InputError(f"corrupt {what}: payload is not a whole number of 32-bit words")
    size = int(counts.sum())
    if counts.size == 1:
        if payload:
            raise InputError(f"corrupt {what}: constant tensor with a non-empty payload")
        return np.zeros(size, dtype=np.intp)
    words = np.frombuffer(payload, dtype=_WORD).astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    indices = decoder.decode(_model(counts), size)
    if not decoder.maybe_exhausted() or not np.array_equal(
            np.bincount(indices, minlength=counts.size), counts):
        raise InputError(f"corrupt {what}: payload does not match the header's counts")
    return indices


def _header(magic: bytes, version: int, shape: tuple[int, ...], *fields) -> bytes:
    """Magic, version byte, ndim, shape and then ``fields``, all but the magic as varints."""
    out = bytearray(magic)
    out.append(version)
    for value in (len(shape), *shape, *fields):
        out += _varint(int(value))
    return bytes(out)


def _seal(body: bytes) -> bytes:
    """``body`` followed by its CRC-32, little-endian."""
    return body + zlib.crc32(body).to_bytes(_CRC_BYTES, "little")


def _unframe(data, magic: bytes, version: int, what: str) -> bytes:
    """Check type, magic, version and CRC of a sealed code; return the bytes before the CRC."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < len(magic) + 2 + _CRC_BYTES or data[:len(magic)] != magic:
        article = "an" if what[0] in "aeiou" else "a"
        raise InputError(f"not {article} {what}: missing magic bytes {magic!r} (truncated or "
                         "foreign data)")
    if data[len(magic)] != version:
        raise InputError(f"unsupported {what} version {data[len(magic)]} (this reader "
                         f"knows version {version})")
    body, crc = data[:-_CRC_BYTES], int.from_bytes(data[-_CRC_BYTES:], "little")
    if zlib.crc32(body) != crc:
        raise InputError(f"corrupt {what}: CRC-32 mismatch (data altered or truncated)")
    return body


def _read_shape(data: bytes, pos: int, what: str) -> tuple[list[int], int]:
    """ndim and the dimensions at ``data[pos:]``; returns the shape and the position after."""
    ndim, pos = _read_varint(data, pos, what)
    shape = []
    for _ in range(ndim):
        d, pos = _read_varint(data, pos, what)
        shape.append(d)
    return shape, pos


def _varint(value: int) -> bytes:
    """LEB128 encoding of a non-negative integer."""
    if value < 0:
        raise InputError(f"a varint holds non-negative integers, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """Decode the LEB128 integer at ``data[pos:]``; returns it and the position after it."""
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise InputError(f"corrupt {what}: header ends inside an integer")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise InputError(f"corrupt {what}: header integer longer than 64 bits")
