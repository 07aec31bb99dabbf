"""Entropy coding of ternary tensors: round trips, coded size against entropy, errors.

Size tolerance. For a tensor of N entries with counts n_k the coded size is

    8 len(code) = H_emp + header + flush + model loss,

with H_emp = -sum n_k log2(n_k / N) (what any static code fitted to the tensor spends),
header = 3 bytes + one LEB128 varint per dimension and per stored count + 4 bytes of CRC
(about 17 bytes for a 1-D tensor of 1e6 entries), flush = the range coder's final state, at most
two 32-bit words, and model loss = N KL(p || q) with q the 24-bit fixed-point model, about
N 2^-24 / min_k p_k bits (12 bits at N = 1e6, p = 0.005). So the overhead is a few hundred bits
at most whatever N: measured 150-300 bits. At eps = 0.99 the entropy is 0.091 bits per weight,
9.1e3 bits at N = 1e5 (overhead 1.8 %, too close to 2 % to pin) and 9.1e4 bits at N = 1e6
(0.3 %): the bound tests run at N = 1e6, where the 2 % asked for holds with a wide margin, and
check the absolute overhead against the budget above as well.

The bound h(eps) + (1 - eps) is an expectation over the law; a drawn tensor's own entropy
fluctuates around it (at eps = 0.99, N = 1e5 by 2.6 % per standard deviation). Tests against the
bound therefore use tensors with exactly the law's proportions, shuffled; tests on drawn tensors
compare with their empirical entropy.
"""

import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.entropy import (
    FORMAT_VERSION,
    decode_ternary,
    empirical_entropy_bits,
    encode_ternary,
    ternary_entropy_bound,
)

EPS = (0.0, 0.5, 0.9, 0.99)
# Header, CRC, coder flush and model loss (module docstring), with room to spare.
OVERHEAD_BITS = 8 * (3 + 4 * 10 + 4 + 8) + 64


def exact_law(eps: float, size: int, rng) -> np.ndarray:
    """A shuffled tensor with exactly round(eps N) zeros and the rest split evenly by sign."""
    zeros = round(eps * size)
    plus = (size - zeros) // 2
    values = np.repeat(np.array([0, 1, -1], dtype=np.int8), [zeros, plus, size - zeros - plus])
    return rng.permutation(values)


def drawn(eps: float, shape, rng) -> np.ndarray:
    u = rng.random(shape)
    return np.where(u < eps, 0, np.where(u < (1 + eps) / 2, -1, 1)).astype(np.int8)


# -- entropy models ------------------------------------------------------------------------------

@pytest.mark.parametrize("eps", [0.0, 0.1, 1 / 3, 0.5, 0.9, 0.99, 1.0])
def test_bound_is_the_entropy_of_the_three_symbol_law(eps):
    probs = [(1 - eps) / 2, eps, (1 - eps) / 2]
    direct = -sum(p * math.log2(p) for p in probs if p > 0)
    assert ternary_entropy_bound(eps) == pytest.approx(direct, rel=1e-14, abs=1e-15)


def test_bound_closed_values():
    assert ternary_entropy_bound(0.0) == 1.0
    assert ternary_entropy_bound(1.0) == 0.0
    assert ternary_entropy_bound(1 / 3) == pytest.approx(math.log2(3), rel=1e-15)


@pytest.mark.parametrize("eps", [-0.01, 1.01, math.nan])
def test_bound_rejects_eps_outside_unit_interval(eps):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ternary_entropy_bound(eps)


def test_empirical_entropy_by_hand():
    assert empirical_entropy_bits([0, 0, 1, 1]) == pytest.approx(4.0)
    # counts 2, 1, 1 of 4: 2 log2 2 + 1 log2 4 + 1 log2 4 = 6 bits.
    assert empirical_entropy_bits(np.array([[-1, 0], [-1, 1]])) == pytest.approx(6.0)
    assert empirical_entropy_bits([5, 5, 5]) == 0.0
    assert empirical_entropy_bits([]) == 0.0


@pytest.mark.parametrize("eps", EPS)
def test_empirical_entropy_of_exact_proportions_is_the_bound(eps):
    s = exact_law(eps, 10**5, np.random.default_rng(1))
    assert empirical_entropy_bits(s) == pytest.approx(10**5 * ternary_entropy_bound(eps),
                                                      rel=1e-9)


# -- round trips ---------------------------------------------------------------------------------

@st.composite
def ternary_arrays(draw):
    shape = tuple(draw(st.lists(st.integers(1, 12), min_size=0, max_size=4)))
    eps = draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0))
    dtype = draw(st.sampled_from([np.int8, np.int16, np.int32, np.int64]))
    seed = draw(st.integers(0, 2**32 - 1))
    return drawn(eps, shape, np.random.default_rng(seed)).astype(dtype)


@settings(max_examples=200, deadline=None)
@given(ternary_arrays())
def test_round_trip_is_exact(signs):
    out = decode_ternary(encode_ternary(signs))
    assert out.dtype == np.int8
    assert out.shape == signs.shape
    assert np.array_equal(out, signs)


@pytest.mark.parametrize("signs", [
    np.zeros((7, 5), dtype=np.int8),
    np.ones(9, dtype=np.int8),
    -np.ones((2, 2, 2), dtype=np.int8),
    np.array(1, dtype=np.int8),
    np.array([-1, 1, -1, 1], dtype=np.int8),
], ids=["all-zero", "all-plus", "all-minus", "0-d", "eps0"])
def test_round_trip_special_tensors(signs):
    code = encode_ternary(signs)
    out = decode_ternary(code)
    assert out.dtype == np.int8 and out.shape == signs.shape
    assert np.array_equal(out, signs)


def test_constant_tensor_costs_only_the_header():
    code = encode_ternary(np.zeros((1000, 1000), dtype=np.int8))
    assert len(code) <= 16
    assert decode_ternary(bytearray(code)).sum() == 0


def test_non_contiguous_input_round_trips():
    s = drawn(0.7, (40, 30), np.random.default_rng(3))
    view = s[::2, ::-3]
    assert np.array_equal(decode_ternary(memoryview(encode_ternary(view))), view)


# -- coded size ----------------------------------------------------------------------------------

@pytest.mark.parametrize("eps", EPS)
def test_coded_size_within_2_percent_of_the_bound(eps):
    size = 10**6
    s = exact_law(eps, size, np.random.default_rng(2))
    bits = 8 * len(encode_ternary(s))
    bound = size * ternary_entropy_bound(eps)
    assert bound <= bits <= 1.02 * bound
    assert bits - bound <= OVERHEAD_BITS


@pytest.mark.parametrize("eps", EPS)
def test_coded_size_within_2_percent_of_the_empirical_entropy(eps):
    s = drawn(eps, (1000, 1000), np.random.default_rng(4))
    bits = 8 * len(encode_ternary(s))
    h_emp = empirical_entropy_bits(s)
    # A static model cannot beat the tensor's own frequencies (Gibbs' inequality).
    assert h_emp <= bits <= 1.02 * h_emp
    assert bits - h_emp <= OVERHEAD_BITS


@pytest.mark.parametrize("eps", [0.5, 0.9])
def test_coded_size_at_1e5_weights(eps):
    s = exact_law(eps, 10**5, np.random.default_rng(5))
    assert 8 * len(encode_ternary(s)) <= 1.02 * 10**5 * ternary_entropy_bound(eps)


# -- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.array([0, 2, 1]), np.array([[-2, 0]]),
                                 np.array([127], dtype=np.int8)])
def test_encode_rejects_values_outside_the_alphabet(bad):
    with pytest.raises(ValueError, match=r"\{-1, 0, 1\}"):
        encode_ternary(bad)


def test_encode_rejects_float_and_empty_input():
    with pytest.raises(ValueError, match="integer"):
        encode_ternary(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="empty"):
        encode_ternary(np.zeros((3, 0), dtype=np.int8))


@pytest.fixture(scope="module")
def code():
    return encode_ternary(drawn(0.6, (50, 40), np.random.default_rng(6)))


def test_decode_rejects_every_single_byte_corruption(code):
    for pos in range(len(code)):
        corrupt = bytearray(code)
        corrupt[pos] ^= 0x10
        with pytest.raises(ValueError, match="ternary code"):
            decode_ternary(bytes(corrupt))


def test_decode_rejects_truncated_or_extended_data(code):
    for cut in (0, 1, 3, 5, len(code) // 2, len(code) - 4, len(code) - 1):
        with pytest.raises(ValueError, match="ternary code"):
            decode_ternary(code[:cut])
    with pytest.raises(ValueError, match="ternary code"):
        decode_ternary(code + b"\x00")


def test_decode_rejects_foreign_version_and_non_bytes(code):
    body = code[:2] + bytes([FORMAT_VERSION + 1]) + code[3:-4]
    with pytest.raises(ValueError, match="version"):
        decode_ternary(body + zlib.crc32(body).to_bytes(4, "little"))
    with pytest.raises(ValueError, match="bytes"):
        decode_ternary("T3")


def test_decode_rejects_a_header_that_contradicts_the_payload():
    # A valid CRC over an inconsistent header: claim one -1 more than the shape can hold.
    s = np.array([[1, -1]], dtype=np.int8)
    good = encode_ternary(s)[:-4]
    # Layout: magic(2) version(1) ndim(1) shape(2 x 1 byte) n_minus(1) n_plus(1) payload.
    body = good[:6] + bytes([3]) + good[7:]
    with pytest.raises(ValueError, match="cannot hold"):
        decode_ternary(body + zlib.crc32(body).to_bytes(4, "little"))
    body = good[:6] + bytes([0, 2]) + good[8:]
    with pytest.raises(ValueError, match="payload"):
        decode_ternary(body + zlib.crc32(body).to_bytes(4, "little"))
