"""Memory accounting: every number of a tiny network by hand, and coded size against the bound."""

import json
import math

import numpy as np
import pytest

from nets.compressed import CompressedNetwork, TernaryMatrix
from nets.compressed_cnn import CompressedCNN
from nets.memory import RULE, MemoryReport, memory_report
from ntk.activations import step_activation
from ntk.cnn_architecture import ConvArchitecture
from ntk.weights import sample_weights
from solvers.entropy import encode_ternary, ternary_entropy_bound

STEP2 = step_activation([0.1], [-1.0, 1.0])
STEP4 = step_activation([-0.8, 0.0, 0.8], [-1.5, -0.5, 0.5, 1.5])
S1 = np.array([[1, 0, -1], [0, -1, 1]], dtype=np.int8)
S2 = np.array([[1, -1], [0, 0], [-1, 1], [1, 0]], dtype=np.int8)


@pytest.fixture(scope="module")
def tiny():
    weights = (TernaryMatrix(S1, math.sqrt(2)), TernaryMatrix(S2, math.sqrt(2)))
    return CompressedNetwork(weights, (STEP2, STEP4), (0.0, 0.1), eps=0.5)


def test_tiny_network_by_hand(tiny):
    r = memory_report(tiny, readout_shape=(3, 4))
    assert r.rule == RULE
    assert r.layer_shapes == ((2, 3), (4, 2))
    assert r.hidden_weights == 6 + 8
    assert r.dense_hidden_bits == 32 * 14
    # 2 bits x 6 = 12 bits -> 2 bytes; 2 bits x 8 = 16 bits -> 2 bytes; two float32 scales.
    assert r.packed_hidden_bits == 16 + 16 + 64
    # h(0.5) + 0.5 = 1.5 bits per weight.
    assert r.bound_hidden_bits == pytest.approx(14 * 1.5 + 64)
    coded = [len(encode_ternary(S)) for S in (S1, S2)]
    # magic 2 + version 1 + ndim 1 + two dims + two counts (1 byte each) + whole words + CRC 4.
    assert all(n_bytes >= 2 + 1 + 1 + 2 + 2 + 4 and (n_bytes - 12) % 4 == 0
               for n_bytes in coded)
    assert r.coded_hidden_bits == 8 * sum(coded) + 64
    assert r.activation_levels == (2, 4)
    # (2k - 1) float32 each: 3 and 7 parameters; the dense network stores one centring each.
    assert r.compressed_activation_bits == 32 * (3 + 7)
    assert r.dense_activation_bits == 32 * 2
    assert r.compressed_value_bits == (1, 2)
    assert r.dense_value_bits == (32, 32)
    assert r.compressed_values_per_sample_bits == 2 * 1 + 4 * 2
    assert r.dense_values_per_sample_bits == 32 * (2 + 4)
    assert r.readout_shape == (3, 4) and r.readout_bits == 32 * 12
    assert r.dense_total_bits == 448 + 64 + 384
    assert r.packed_total_bits == 96 + 320 + 384
    assert r.bound_total_bits == pytest.approx(85 + 320 + 384)
    assert r.coded_total_bits == r.coded_hidden_bits + 320 + 384
    assert r.hidden_factor_packed == pytest.approx(448 / 96)
    assert r.hidden_factor_bound == pytest.approx(448 / 85)
    assert r.hidden_factor_coded == pytest.approx(448 / r.coded_hidden_bits)
    assert r.total_factor_packed == pytest.approx(896 / 800)
    assert r.total_factor_bound == pytest.approx(896 / 789)
    assert r.total_factor_coded == pytest.approx(896 / r.coded_total_bits)
    assert r.seed_regenerated_bits is None


def test_without_readout_and_with_dense_activations():
    W = TernaryMatrix(np.array([[1, -1, 0, 0, 1]], dtype=np.int8), 2.0)
    r = memory_report(CompressedNetwork((W,), ("relu",), (0.4,), eps=0.75))
    assert r.readout_shape is None and r.readout_bits == 0
    assert r.activation_levels == (None,)
    assert r.compressed_value_bits == (32,)
    assert r.compressed_activation_bits == r.dense_activation_bits == 32
    # 10 bits round up to 2 bytes.
    assert r.packed_hidden_bits == 16 + 32
    assert r.bound_hidden_bits == pytest.approx(5 * ternary_entropy_bound(0.75) + 32)
    assert r.dense_total_bits == 5 * 32 + 32


def test_seed_regeneration_is_reported_apart():
    net = CompressedNetwork.random(20, (30, 10), [STEP4, STEP2], 0.9, 1.0, seed=17)
    r = memory_report(net, readout_shape=(2, 10))
    # 64-bit seed + float32 eps for all hidden weights; the totals do not use it.
    assert r.seed_regenerated_bits == 96
    assert r.coded_total_bits == r.coded_hidden_bits + r.compressed_activation_bits + 32 * 20


def test_as_dict_is_json_ready(tiny):
    d = memory_report(tiny, readout_shape=(3, 4)).as_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["layer_shapes"] == [[2, 3], [4, 2]]
    assert d["activation_levels"] == [2, 4]
    assert set(d) == {f.name for f in MemoryReport.__dataclass_fields__.values()}


@pytest.mark.parametrize("eps", [0.0, 0.5, 0.9])
def test_coded_within_2_percent_of_bound_on_drawn_weights(eps):
    # 2.4e5 weights: sampling moves the signs' own entropy by < 0.5 % (1 sd) at eps = 0.9,
    # the coder adds a few hundred bits per layer (tests/solvers/test_entropy.py).
    net = CompressedNetwork.random(300, (400, 300), [STEP4, STEP2], eps, 1.0, seed=2)
    r = memory_report(net)
    assert r.hidden_weights == 240_000
    assert r.coded_hidden_bits == pytest.approx(r.bound_hidden_bits, rel=0.02)
    assert r.hidden_factor_packed == pytest.approx(16, rel=1e-3)
    assert r.hidden_factor_coded == pytest.approx(32 / ternary_entropy_bound(eps), rel=0.02)


def test_coded_within_2_percent_of_bound_at_eps_099():
    # At eps = 0.99 a drawn tensor's entropy fluctuates by 0.8 % (1 sd) even at 1e6 weights, so
    # the signs carry the law's proportions exactly (shuffled).
    eps, d = 0.99, 1000
    zeros = round(eps * d * d)
    plus = (d * d - zeros) // 2
    values = np.repeat(np.array([0, 1, -1], dtype=np.int8), [zeros, plus, d * d - zeros - plus])
    signs = np.random.default_rng(3).permutation(values).reshape(d, d)
    net = CompressedNetwork((TernaryMatrix(signs, 10.0),), (STEP4,), (0.0,), eps=eps)
    r = memory_report(net)
    assert r.coded_hidden_bits == pytest.approx(r.bound_hidden_bits, rel=0.02)
    assert r.hidden_factor_bound == pytest.approx(32 / ternary_entropy_bound(eps), rel=1e-3)


def test_rejects_bad_input(tiny):
    for shape in ((3, 5), (3,), (0, 4), (3, 4, 1), (2.0, 4)):
        with pytest.raises(ValueError, match="readout_shape"):
            memory_report(tiny, readout_shape=shape)
    with pytest.raises(ValueError, match="CompressedNetwork"):
        memory_report("net")


# -- convolutional networks -----------------------------------------------------------------------

def test_cnn_report_follows_the_rule():
    eps = 0.5
    arch = ConvArchitecture(2, 3, "same", pool=(1,), readout="flatten")
    net = CompressedCNN.random((2, 6, 8), (3, 4), [STEP2, STEP4], eps, 1.0, arch, seed=5)
    r = memory_report(net, readout_shape=(10, 4 * 3 * 4))
    # The signs again, from the weight law of ntk.weights with the same seed.
    rng = np.random.default_rng(5)
    signs = [np.rint(sample_weights(f"ternary:{eps}", shape, rng) * math.sqrt(1 - eps))
             .astype(np.int8).reshape(shape[0], -1) for shape in ((3, 2, 3, 3), (4, 3, 3, 3))]
    assert r.layer_shapes == ((3, 18), (4, 27))
    assert r.hidden_weights == 54 + 108
    assert r.dense_hidden_bits == 32 * 162
    # 108 bits -> 14 bytes, 216 bits -> 27 bytes; two float32 scales.
    assert r.packed_hidden_bits == 8 * (14 + 27) + 64
    assert r.bound_hidden_bits == pytest.approx(162 * 1.5 + 64)
    assert r.coded_hidden_bits == 8 * sum(len(encode_ternary(S)) for S in signs) + 64
    assert r.activation_levels == (2, 4)
    assert r.compressed_activation_bits == 32 * (3 + 7)
    assert r.dense_activation_bits == 32 * 2
    # Values per image: 3 channels x 6 x 8 before the pooling, 4 channels x 3 x 4 after it.
    assert r.compressed_values_per_sample_bits == 144 * 1 + 48 * 2
    assert r.dense_values_per_sample_bits == 32 * (144 + 48)
    assert r.readout_bits == 32 * 10 * 48
    assert r.dense_total_bits == 32 * 162 + 64 + 32 * 480
    assert r.coded_total_bits == r.coded_hidden_bits + 320 + 32 * 480
    assert r.total_factor_packed == pytest.approx((32 * 162 + 64 + 32 * 480)
                                                  / (8 * 41 + 64 + 320 + 32 * 480))
    assert r.seed_regenerated_bits == 96
    assert r.rule == RULE


def test_cnn_readout_is_on_the_readout_features():
    gap = ConvArchitecture(1, 2, "valid", readout="gap")
    net = CompressedCNN.random((1, 5, 5), (6,), ["relu"], 0.9, 1.0, gap, seed=1)
    r = memory_report(net, readout_shape=(3, 6))
    assert r.readout_bits == 32 * 18
    # A "valid" 2 x 2 filter: a 4 x 4 output grid of 6 channels, 32-bit values (ReLU).
    assert r.dense_values_per_sample_bits == r.compressed_values_per_sample_bits == 32 * 96
    with pytest.raises(ValueError, match="d_L = 6"):
        memory_report(net, readout_shape=(3, 96))
