"""Sequential models: gradients of whole networks, training on a separable problem,
reproducibility, save/load round trips, frozen layers, and errors."""

import numpy as np
import pytest

from nets.layers import Activation, Conv2d, Dense, Flatten, MaxPool2d
from nets.losses import softmax_cross_entropy
from nets.model import Sequential, mlp, small_cnn
from nets.optim import SGD, Adam
from ntk.activations import activation, step_activation

F64 = np.float64


def blobs(n, rng, d=10, classes=3, sep=4.0):
    """Gaussian blobs around well-separated centres: linearly separable up to ~1e-4 overlap."""
    centres = rng.standard_normal((classes, d)) * sep
    y = rng.integers(0, classes, n)
    X = centres[y] + rng.standard_normal((n, d))
    return X.astype(np.float32), y


def test_model_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    model = Sequential([
        Conv2d(1, 2, 3, stride=1, padding=1, rng=rng, dtype=F64), Activation("tanh"),
        MaxPool2d(2), Flatten(), Dense(2 * 3 * 3, 3, rng=rng, dtype=F64)])
    x = rng.standard_normal((2, 1, 6, 6))
    y = np.array([0, 2])
    _, grad = softmax_cross_entropy(model.forward(x, train=True), y)
    dx = model.backward(grad, input_grad=True)
    grads = [g.copy() for g in model.grads()]
    h = 1e-6
    for target, analytic in [(x, dx), *zip(model.params(), grads, strict=True)]:
        flat = target.reshape(-1)
        numeric = np.zeros(flat.size)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            up = model.evaluate(x, y)[0]
            flat[i] = old - h
            down = model.evaluate(x, y)[0]
            flat[i] = old
            numeric[i] = (up - down) / (2 * h)
        err = np.linalg.norm(numeric - analytic.reshape(-1)) / np.linalg.norm(numeric)
        assert err < 1e-5


def test_fit_separates_blobs():
    rng = np.random.default_rng(1)
    X, y = blobs(600, rng)
    Xv, yv = blobs(300, np.random.default_rng(1))
    model = mlp(10, hidden=(32,), classes=3, rng=2)
    seen = []
    history = model.fit(X, y, epochs=5, batch_size=32, optimizer=Adam(lr=0.01), rng=3,
                        progress=False, X_val=Xv, y_val=yv,
                        callback=lambda epoch, logs: seen.append(epoch))
    assert seen == [0, 1, 2, 3, 4]
    assert set(history) == {"loss", "accuracy", "samples_per_s", "val_loss", "val_accuracy"}
    assert history["loss"][-1] < history["loss"][0]
    assert model.evaluate(X, y)[1] > 0.95
    assert history["val_accuracy"][-1] > 0.95


def test_fit_cnn_and_sgd_mse():
    rng = np.random.default_rng(4)
    # Class 0: bright left half; class 1: bright right half.
    y = rng.integers(0, 2, 200)
    X = rng.standard_normal((200, 1, 8, 8)).astype(np.float32) * 0.3
    X[y == 0, :, :, :4] += 1.0
    X[y == 1, :, :, 4:] += 1.0
    model = small_cnn((1, 8, 8), classes=2, rng=5)
    model.fit(X, y, epochs=3, batch_size=20, optimizer=Adam(lr=3e-3), rng=6, progress=False)
    assert model.evaluate(X, y)[1] > 0.95
    reg = Sequential([Dense(8 * 8, 2, rng=rng)], loss="mse")
    reg.fit(X.reshape(200, -1), y, epochs=20, batch_size=20,
            optimizer=SGD(lr=0.05, momentum=0.9), rng=7, progress=False)
    assert reg.evaluate(X.reshape(200, -1), y)[1] > 0.95


def test_callback_stops_training():
    X, y = blobs(100, np.random.default_rng(0))
    history = mlp(10, hidden=(8,), classes=3).fit(
        X, y, epochs=10, progress=False, callback=lambda epoch, logs: epoch == 1)
    assert len(history["loss"]) == 2


def train_once(seed):
    X, y = blobs(200, np.random.default_rng(0))
    model = mlp(10, hidden=(16, 16), classes=3, rng=seed)
    model.fit(X, y, epochs=2, batch_size=16, optimizer=SGD(lr=0.05, momentum=0.9), rng=seed,
              progress=False)
    return model.params()


def test_same_seed_same_weights():
    a, b, c = train_once(11), train_once(11), train_once(12)
    for p, q in zip(a, b, strict=True):
        np.testing.assert_array_equal(p, q)
    assert any(not np.array_equal(p, q) for p, q in zip(a, c, strict=True))


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(8)
    step = step_activation([-0.3, 0.3], [-1.0, 0.0, 1.0])
    model = Sequential([
        Conv2d(1, 3, 3, stride=2, padding=1, rng=rng, trainable=False), Activation(step),
        MaxPool2d(2), Flatten(), Dense(12, 5, rng=rng), Activation("lrelu:a=0.2"),
        Dense(5, 4, rng=rng, init="glorot")], loss="mse")
    X = rng.standard_normal((30, 1, 8, 8)).astype(np.float32)
    model.fit(X, rng.integers(0, 4, 30), epochs=1, batch_size=10, progress=False)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = Sequential.load(path)
    assert loaded.loss == "mse"
    assert [layer.config() for layer in loaded.layers] == [layer.config()
                                                             for layer in model.layers]
    for a, b in zip(model.layers, loaded.layers, strict=True):
        for name, array in a.arrays().items():
            assert array.dtype == b.arrays()[name].dtype
            np.testing.assert_array_equal(array, b.arrays()[name])
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    assert not loaded.layers[0].trainable


def test_frozen_layers_below_a_step_activation_stay_fixed():
    rng = np.random.default_rng(9)
    X, y = blobs(300, rng)
    hidden = Dense(10, 64, rng=rng, trainable=False)
    W = hidden.W.copy()
    model = Sequential([hidden, Activation(step_activation([0.0], [-1.0, 1.0])),
                        Dense(64, 3, rng=rng)])
    model.fit(X, y, epochs=5, batch_size=32, optimizer=Adam(lr=0.01), progress=False)
    np.testing.assert_array_equal(hidden.W, W)
    assert model.evaluate(X, y)[1] > 0.9


def test_model_errors(tmp_path):
    model = mlp(4, hidden=(3,), classes=2)
    X = np.zeros((5, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="5 samples"):
        model.fit(X, np.zeros(4, dtype=int), progress=False)
    with pytest.raises(ValueError, match="expects input of shape"):
        model.fit(np.zeros((5, 3)), np.zeros(5, dtype=int), progress=False)
    with pytest.raises(ValueError, match="labels must lie"):
        model.evaluate(X, np.full(5, 2))
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(X, np.zeros(5, dtype=int), batch_size=0, progress=False)
    with pytest.raises(ValueError, match="X_val"):
        model.fit(X, np.zeros(5, dtype=int), X_val=X, progress=False)
    with pytest.raises(ValueError, match="rng"):
        model.fit(X, np.zeros(5, dtype=int), rng="seed", progress=False)
    with pytest.raises(ValueError, match="unknown loss"):
        Sequential([Dense(2, 2, init="zeros")], loss="hinge")
    with pytest.raises(ValueError, match="one dtype"):
        Sequential([Dense(2, 2, init="zeros"), Dense(2, 2, init="zeros", dtype=F64)])
    bad = tmp_path / "bad.npz"
    np.savez(bad, weights=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved Sequential"):
        Sequential.load(bad)
    with pytest.raises(ValueError, match="user callable"):
        Sequential([Activation(activation(np.tanh))]).save(tmp_path / "callable.npz")
