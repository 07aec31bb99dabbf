"""L2 compression on tiny synthetic problems: exact decoding, rate control, accounting, errors."""

import copy

import numpy as np
import pytest

from nets.l2 import L2Result, l2_compress
from nets.layers import Activation, Conv2d, Dense, Flatten
from nets.model import Sequential, mlp
from nets.optim import Adam
from solvers.entropy import decode_integers
from solvers.unified_quantizer import dequantize, quantize


def blobs(n: int, dim: int, classes: int, seed: int):
    """Gaussian class clusters with overlapping tails (a task a float MLP gets ~95 % right)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)) * 0.6
    y = rng.integers(0, classes, n)
    X = centres[y] + rng.standard_normal((n, dim)) * 0.5
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def problem():
    X, y = blobs(1200, 16, 4, seed=0)
    net = mlp(16, (64, 64), 4, rng=1)
    net.fit(X[:800], y[:800], epochs=30, batch_size=32, optimizer=Adam(lr=3e-3), rng=2,
            progress=False)
    return net, X[:800], y[:800], X[800:], y[800:]


# 200 steps with quick parameter moves: enough for the rate term to act on a tiny model.
FAST = {"epochs": 4, "batch_size": 16, "lr": 1e-3, "lr_quant": 1e-2, "rng": 3,
        "progress": False}


@pytest.fixture(scope="module")
def compressed(problem):
    net, X, y, _, _ = problem
    return l2_compress(net, X, y, lam=0.05, **FAST)


def test_codes_decode_to_the_symbols_and_rebuild_the_model_exactly(problem, compressed):
    _, _, _, Xte, _ = problem
    r = compressed
    assert isinstance(r, L2Result)
    assert [layer.index for layer in r.layers] == [0, 2, 4]
    for layer in r.layers:
        W = r.model.layers[layer.index].W
        decoded = decode_integers(layer.code)
        assert decoded.shape == layer.symbols.shape == W.shape
        assert np.array_equal(decoded, layer.symbols)
        assert layer.delta == float(np.float32(layer.delta))
        assert layer.theta == float(np.float32(layer.theta)) and layer.theta >= 0
        assert np.array_equal(W, dequantize(decoded, layer.delta, layer.theta, W.dtype))
        # The stored symbols are the transform's output for the stored weights.
        assert np.array_equal(quantize(W, layer.delta, layer.theta), layer.symbols)
    rebuilt = r.decode()
    assert np.array_equal(rebuilt.predict(Xte), r.model.predict(Xte))
    for a, b in zip(rebuilt.params(), r.model.params(), strict=True):
        assert np.array_equal(a, b)


def test_the_callers_model_is_untouched(problem):
    net, X, y, _, _ = problem
    before = [p.copy() for p in net.params()]
    l2_compress(net, X[:64], y[:64], lam=0.1, epochs=1, batch_size=16, progress=False)
    for a, b in zip(before, net.params(), strict=True):
        assert np.array_equal(a, b)


def test_sizes_follow_the_storage_rule(problem, compressed):
    net, _, _, _, _ = problem
    r = compressed
    weights = sum(layer.n_weights for layer in r.layers)
    biases = sum(net.layers[layer.index].b.size for layer in r.layers)
    assert r.float_bytes == 4 * (weights + biases)
    assert r.coded_bytes == sum(len(layer.code) + 8 + 4 * layer.bias_count
                                for layer in r.layers)
    assert r.ratio == r.float_bytes / r.coded_bytes
    assert r.bits_per_weight == pytest.approx(8 * sum(len(la.code) for la in r.layers) / weights)
    # The coder is within its header overhead of the symbols' own entropy.
    assert r.entropy_bits_per_weight <= r.bits_per_weight
    for layer in r.layers:
        assert layer.bits_per_weight * layer.n_weights - 8 * 60 - 8 * 4 * layer.distinct \
            <= layer.entropy_bits_per_weight * layer.n_weights * 1.02
    summary = r.summary()
    assert summary["coded_bytes"] == r.coded_bytes and len(summary["layers"]) == 3
    assert len(r.history["loss"]) == 4 and len(r.history["deltas"][-1]) == 3


def coded_bits(r: L2Result) -> int:
    return 8 * sum(len(layer.code) for layer in r.layers)


def test_a_larger_rate_weight_gives_fewer_coded_bits(problem, compressed):
    net, X, y, _, _ = problem
    free = l2_compress(net, X, y, lam=0.0, **FAST)
    strong = l2_compress(net, X, y, lam=0.5, **FAST)
    bits = [coded_bits(free), coded_bits(compressed), coded_bits(strong)]
    assert bits[0] > bits[1] > bits[2]
    assert bits[2] < 0.5 * bits[0]
    # The rate term acts on the relaxed entropy, which follows.
    assert free.history["rate_bits"] == [0.0] * 4
    assert strong.history["entropy_bits"][-1] < free.history["entropy_bits"][-1]


def test_sampled_entropy_estimate_also_lowers_the_rate(problem):
    net, X, y, _, _ = problem
    kwargs = FAST | {"entropy_samples": 256}
    assert coded_bits(l2_compress(net, X, y, lam=0.5, **kwargs)) \
        < 0.6 * coded_bits(l2_compress(net, X, y, lam=0.0, **kwargs))


def test_plain_quantization_aware_training_keeps_the_float_accuracy(problem):
    net, X, y, Xte, yte = problem
    _, float_acc = net.evaluate(Xte, yte)
    r = l2_compress(net, X, y, lam=0.0, epochs=2, batch_size=32, lr=1e-3, rng=5,
                    initial_theta=0.0, learn_theta=False, progress=False)
    _, acc = r.model.evaluate(Xte, yte)
    assert float_acc > 0.85
    assert acc >= float_acc - 0.02
    assert all(layer.theta == 0.0 for layer in r.layers)
    # theta = 0: nearest rounding on the grid delta Z.
    for layer in r.layers:
        W = r.model.layers[layer.index].W
        assert np.array_equal(W, (layer.delta * layer.symbols).astype(W.dtype))


def test_same_seed_same_result(problem):
    net, X, y, _, _ = problem
    a, b = (l2_compress(net, X[:200], y[:200], lam=0.1, epochs=1, batch_size=32, rng=6,
                        progress=False) for _ in range(2))
    assert all(la.code == lb.code and la.delta == lb.delta and la.theta == lb.theta
               for la, lb in zip(a.layers, b.layers, strict=True))


def test_initial_grid_has_the_requested_levels(problem):
    net, X, y, _, _ = problem
    r = l2_compress(net, X[:8], y[:8], lam=0.0, epochs=1, batch_size=8, lr=1e-12,
                    lr_quant=1e-12, initial_bits=3, learn_theta=False, progress=False)
    for layer in r.layers:
        # 2^(3-1) - 1 = 3 levels each side of zero at max|W| / 3.
        assert layer.symbols.min() >= -3 and layer.symbols.max() <= 3
        scale = np.max(np.abs(net.layers[layer.index].W))
        assert layer.delta == pytest.approx(scale / 3, rel=1e-6)


def test_conv_and_float64_models():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((48, 1, 6, 6))
    y = (X[:, 0, 2:4, 2:4].sum(axis=(1, 2)) > 0).astype(np.int64)
    net = Sequential([Conv2d(1, 3, 3, padding=1, rng=rng, dtype=np.float64),
                      Activation("relu"), Flatten(), Dense(108, 2, rng=rng, dtype=np.float64)])
    r = l2_compress(net, X, y, lam=0.1, epochs=2, batch_size=16, rng=8, progress=False)
    assert [layer.symbols.shape for layer in r.layers] == [(3, 1, 3, 3), (108, 2)]
    assert np.array_equal(r.decode().predict(X), r.model.predict(X))
    for layer in (r.model.layers[0], r.model.layers[3]):
        # Every float kept is a float32 value; W is defined by its symbols, delta and theta.
        assert np.array_equal(layer.b, layer.b.astype(np.float32))


def test_frozen_layers_are_stored_as_float32():
    rng = np.random.default_rng(9)
    X, y = blobs(64, 5, 2, seed=9)
    net = Sequential([Dense(5, 7, rng=rng, trainable=False), Activation("relu"),
                      Dense(7, 2, rng=rng)])
    frozen = net.layers[0].W.copy()
    r = l2_compress(net, X, y, lam=0.1, epochs=1, batch_size=16, progress=False)
    assert [layer.index for layer in r.layers] == [2]
    assert np.array_equal(r.model.layers[0].W, frozen)
    assert r.float_bytes == 4 * (35 + 7 + 14 + 2)
    assert r.coded_bytes == 4 * (35 + 7) + len(r.layers[0].code) + 8 + 4 * 2


@pytest.mark.parametrize("kwargs,match", [
    ({"lam": -0.1}, "lam"),
    ({"lam": float("nan")}, "lam"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 1.5}, "batch_size"),
    ({"lr": 0.0}, "lr"),
    ({"lr_quant": -1.0}, "lr_quant"),
    ({"initial_bits": 1}, "initial_bits"),
    ({"initial_bits": 17}, "initial_bits"),
    ({"initial_theta": -0.5}, "initial_theta"),
    ({"kernel_width": 0.0}, "kernel_width"),
    ({"entropy_samples": 0}, "entropy_samples"),
    ({"rng": "seed"}, "rng"),
])
def test_bad_arguments_raise(problem, kwargs, match):
    net, X, y, _, _ = problem
    with pytest.raises(ValueError, match=match):
        l2_compress(net, X[:10], y[:10], progress=False, **kwargs)


def test_bad_models_and_data_raise(problem):
    net, X, y, _, _ = problem
    with pytest.raises(ValueError, match="samples but targets"):
        l2_compress(net, X[:10], y[:9], progress=False)
    with pytest.raises(ValueError, match="at least one sample"):
        l2_compress(net, X[:0], y[:0], progress=False)
    with pytest.raises(ValueError, match="Sequential"):
        l2_compress([net], X, y, progress=False)
    frozen = copy.deepcopy(net)
    for layer in frozen.layers:
        layer.trainable = False
    with pytest.raises(ValueError, match="no trainable Dense or Conv2d"):
        l2_compress(frozen, X, y, progress=False)
    with pytest.raises(ValueError, match="no trainable Dense or Conv2d"):
        l2_compress(Sequential([Activation("relu")]), X, y, progress=False)
