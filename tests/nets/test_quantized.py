"""Quantized models: storage rule, exact round trip, dequantized copies."""

import numpy as np
import pytest

from nets import Dense, QuantizedModel, channel_axis, dense_bytes, mlp, small_cnn, weight_layers
from nets.layers import Activation
from nets.model import Sequential
from solvers import quantize_nearest
from solvers.entropy import encode_integers


def quantized(model, bits=4):
    return QuantizedModel(model, {i: quantize_nearest(model.layers[i].W, bits,
                                                      channel_axis(model.layers[i]))
                                  for i in weight_layers(model)})


@pytest.mark.parametrize("make", [lambda: mlp(20, (16, 8), 3),
                                  lambda: small_cnn((1, 8, 8), 3)])
def test_coded_size_follows_the_rule_and_round_trips(make):
    model = make()
    q = quantized(model)
    codes = q.encode()
    assert q.round_trip_exact(codes)
    expected = 0
    for i in weight_layers(model):
        layer = model.layers[i]
        expected += len(encode_integers(q.tensors[i].symbols)) + 4 * layer.b.size
        expected += 4 * q.tensors[i].scale.size
    assert q.coded_bytes(codes) == expected
    assert dense_bytes(model) == 4 * sum(p.size for p in model.params())


def test_dequantized_copy_leaves_the_model_alone():
    model = mlp(10, (6,), 2)
    before = [p.copy() for p in model.params()]
    q = quantized(model, 3)
    copy = q.to_sequential()
    for (i, t) in q.tensors.items():
        np.testing.assert_array_equal(copy.layers[i].W, t.dequantize())
    for p, b in zip(model.params(), before, strict=True):
        np.testing.assert_array_equal(p, b)


def test_unquantized_layers_count_as_float32():
    model = mlp(10, (6,), 2)
    i = weight_layers(model)[0]
    q = QuantizedModel(model, {i: quantize_nearest(model.layers[i].W, 8, 1)})
    last = model.layers[weight_layers(model)[-1]]
    assert q.coded_bytes() > 4 * last.W.size


def test_bad_input():
    model = mlp(10, (6,), 2)
    with pytest.raises(ValueError, match="not a Dense or Conv2d"):
        QuantizedModel(model, {1: quantize_nearest(np.ones((10, 6)), 4)})
    with pytest.raises(ValueError, match="symbols of shape"):
        QuantizedModel(model, {0: quantize_nearest(np.ones((3, 3)), 4)})
    with pytest.raises(ValueError, match="no Dense or Conv2d"):
        weight_layers(Sequential([Activation("relu")]))
    assert channel_axis(Dense(3, 2, rng=np.random.default_rng(0))) == 1
