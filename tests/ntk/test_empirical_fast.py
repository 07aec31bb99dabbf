"""The reordered empirical draw against the implementation it replaced, bit for bit.

``network_kernels`` now draws W_{l+1} right after the product W_l Sigma_{l-1} (the same draw
order, so the same random numbers) and accumulates the NTK on the upper triangles in one pass.
``reference_network_kernels`` below is the previous implementation, kept verbatim but for
names: for a given seed both must give identical arrays, in float64 and float32.
"""

import math

import numpy as np
import pytest

from ntk.empirical import _gram, _mirror, _validate, network_kernels
from ntk.weights import parse_weight_law, sample_weights


def reference_network_kernels(X, acts, weights, rng, *, width, tau0=None, ntk=True,
                              dtype=np.float64):
    X, acts, widths, m, dtype = _validate(X, acts, width, tau0, ntk, dtype)
    law = parse_weight_law(weights)
    Sigma = X.astype(dtype, copy=False)
    W, scaled_grads, sigma_grams = [], [], []
    for act, d, m_l in zip(acts, widths, m, strict=True):
        W.append(sample_weights(law, (d, Sigma.shape[0]), rng, dtype))
        if ntk:
            sigma_grams.append(_gram(Sigma))
        Z = W[-1] @ Sigma
        inv_sqrt_d = dtype.type(1.0 / math.sqrt(d))
        Sigma = np.asarray(act.fn(Z), dtype=dtype)
        if ntk:
            D = np.asarray(act.grad(Z), dtype=dtype)
            D *= inv_sqrt_d
            scaled_grads.append(D)
        del Z
        Sigma -= dtype.type(m_l)
        Sigma *= inv_sqrt_d
    ck = _gram(Sigma)
    if not ntk:
        return _mirror(ck), None
    v = rng.standard_normal(widths[-1], dtype=dtype)
    G = scaled_grads.pop()
    G *= v[:, None]
    ntk_matrix = ck.copy()
    for layer in range(len(acts) - 1, -1, -1):
        gram_g = _gram(G)
        gram_g *= sigma_grams[layer]
        ntk_matrix += gram_g
        if layer > 0:
            G = W[layer].T @ G
            G *= scaled_grads.pop()
    return _mirror(ck), _mirror(ntk_matrix)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("acts", "weights", "width"), [
    ("relu", "gaussian", 50),
    ("relu,tanh", "rademacher", (40, 30)),
    ("relu,relu,relu", "gaussian", 64),
    ("gelu,abs,relu", "ternary:0.5", (30, 70, 20)),
])
@pytest.mark.parametrize("with_ntk", [True, False])
def test_draw_is_bit_identical_to_the_previous_implementation(acts, weights, width, dtype,
                                                              with_ntk):
    X = np.random.default_rng(3).standard_normal((12, 37))
    got = network_kernels(X, acts, weights, np.random.default_rng(11), width=width,
                          ntk=with_ntk, dtype=dtype)
    ref = reference_network_kernels(X, acts, weights, np.random.default_rng(11), width=width,
                                    ntk=with_ntk, dtype=dtype)
    assert got[0].dtype == dtype
    np.testing.assert_array_equal(got[0], ref[0])
    if with_ntk:
        np.testing.assert_array_equal(got[1], ref[1])
        np.testing.assert_array_equal(got[1], got[1].T)
    else:
        assert got[1] is None


def test_following_draws_continue_the_same_stream():
    """Two draws in a row on one generator: the second also matches, so each draw takes
    exactly the random numbers it took before."""
    X = np.random.default_rng(4).standard_normal((5, 9))
    rng_a, rng_b = np.random.default_rng(2), np.random.default_rng(2)
    for _ in range(2):
        got = network_kernels(X, "relu,relu", "gaussian", rng_a, width=16)
        ref = reference_network_kernels(X, "relu,relu", "gaussian", rng_b, width=16)
        np.testing.assert_array_equal(got[1], ref[1])
