"""A tiny trained float64 MLP on Gaussian blobs, shared by the post-training tests."""

import numpy as np
import pytest

from nets import mlp


def blobs(n=600, p=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, p)) * 1.5
    y = rng.integers(0, classes, n)
    return centres[y] + rng.standard_normal((n, p)), y


@pytest.fixture(scope="module")
def tiny():
    """(model, X, y): a 12-24-16-3 tanh MLP trained for 30 epochs, float64."""
    X, y = blobs()
    model = mlp(X.shape[1], (24, 16), 3, act="tanh", rng=0, dtype=np.float64)
    model.fit(X, y, epochs=30, batch_size=64, rng=0, progress=False)
    return model, X, y


@pytest.fixture(scope="module")
def untrained():
    """(model, X, y): the same MLP at its random initialisation (a large gradient)."""
    X, y = blobs()
    return mlp(X.shape[1], (24, 16), 3, act="tanh", rng=0, dtype=np.float64), X, y
