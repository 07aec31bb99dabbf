"""Models, data and directions of the recorded Hessian-vector products (hvp_reference.npz).

Shared by ``record_hvp_reference.py`` and ``tests/nets/test_hvp_reuse.py``. Each case is a
model, a batch and LossCurvature options; ``perturb`` changes a model's weights in place (the
"after a weight change" reference). Large parameter vectors are recorded at ``POINTS``
coordinates of every W and b (``indices``), small ones in full.
"""

import numpy as np

from nets import Activation, AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, Sequential, mlp
from nets import small_cnn as nets_small_cnn

POINTS = 256  # recorded coordinates per parameter array (all of them when smaller)
DIRECTIONS = 4  # recorded directions v per case and weight state


def tiny_cnn(rng):
    """Conv(2->3, pad 1) tanh maxpool, conv(3->4) gelu avgpool, flatten, dense(4->3), mse."""
    return Sequential([
        Conv2d(2, 3, 3, padding=1, rng=rng, dtype=np.float64), Activation("tanh"),
        MaxPool2d(2), Conv2d(3, 4, 3, rng=rng, dtype=np.float64), Activation("gelu"),
        AvgPool2d(2), Flatten(), Dense(4, 3, rng=rng, dtype=np.float64)], loss="mse")


def build(name):
    """(model, X, y, LossCurvature keyword arguments) of case ``name``, deterministic."""
    rng = np.random.default_rng(sum(map(ord, name)))
    if name == "mlp":  # nets.mlp 784-256-256-10, relu, cross-entropy, float32
        return (mlp(784, (256, 256), rng=0), rng.standard_normal((64, 784)),
                rng.integers(0, 10, 64), {})
    if name == "mlp_swish_mse":  # float64 model, mse on float targets, several batches
        model = Sequential(mlp(12, (10, 8), classes=4, act="swish", rng=1,
                               dtype=np.float64).layers, loss="mse")
        return model, rng.standard_normal((30, 12)), rng.standard_normal((30, 4)), \
            {"batch_size": 7}
    if name == "cnn":  # nets.small_cnn on 12 x 12 images, a partial last batch
        return (nets_small_cnn((1, 12, 12), rng=2), rng.standard_normal((24, 1, 12, 12)),
                rng.integers(0, 10, 24), {"batch_size": 10})
    if name == "cnn_middle":  # second conv and first dense only: frozen layers in between
        return (nets_small_cnn((1, 12, 12), rng=3), rng.standard_normal((16, 1, 12, 12)),
                rng.integers(0, 10, 16), {"layers": [3, 7]})
    if name == "tiny_cnn":  # tanh, gelu (non-zero sigma''), average pooling, one-hot mse
        return (tiny_cnn(rng), rng.standard_normal((10, 2, 9, 9)), rng.integers(0, 3, 10),
                {"batch_size": 4})
    raise KeyError(name)


CASES = ("mlp", "mlp_swish_mse", "cnn", "cnn_middle", "tiny_cnn")


def perturb(model, seed=0):
    """Move every weight array by 5 % of its scale, in place."""
    rng = np.random.default_rng(seed)
    for a in model.params():
        a += (0.05 * (np.std(a) + 0.1) * rng.standard_normal(a.shape)).astype(a.dtype)


def directions(n, case, state):
    """The recorded directions v (DIRECTIONS, n) of a case at weight state 0 or 1."""
    rng = np.random.default_rng([sum(map(ord, case)), state])
    return rng.standard_normal((DIRECTIONS, n))


def indices(shapes):
    """Recorded coordinates: up to POINTS per parameter array, sorted, into the flat vector."""
    rng = np.random.default_rng(11)
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(start + np.sort(rng.choice(size, min(size, POINTS), replace=False)))
        start += size
    return np.concatenate(out)
