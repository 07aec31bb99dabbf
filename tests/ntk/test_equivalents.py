"""CK/NTK equivalents against the ReLU arc-cosine kernels (an independent closed form)."""

import math

import numpy as np
import pytest

from ntk import tau_chain
from ntk.equivalents import (
    ck_coefficients,
    ck_equivalent,
    equivalent_kernel,
    ntk_coefficients,
    ntk_equivalent,
)
from rmt import compare_spectra, gaussian_mixture, rel_spectral_error, sample_gmm


def relu_arccos_kernels(X, L, tau0):
    """Exact infinite-width centred ReLU CK and NTK by the arc-cosine formulas."""
    K = X.T @ X
    N = K.copy()
    for c in tau_chain(["relu"] * L, tau0):
        s = np.sqrt(np.diag(K))
        th = np.arccos(np.clip(K / np.outer(s, s), -1, 1))
        E = np.outer(s, s) * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)
        mean = s / math.sqrt(2 * math.pi)
        K = E - c.m0 * (mean[:, None] + mean[None, :]) + c.m0**2
        N = K + (np.pi - th) / (2 * np.pi) * N
    return K, N


def test_relu_one_layer_coefficients():
    tau0 = 0.7
    (ck,) = ck_coefficients(["relu"], tau0)
    d2 = 1 / (tau0 * math.sqrt(2 * math.pi))
    assert ck.a1 == pytest.approx(0.25, abs=1e-15)
    assert ck.a2 == pytest.approx(d2**2 / 4, rel=1e-13)
    assert ck.a3 == pytest.approx(d2**2 / 2, rel=1e-13)
    (nt,) = ntk_coefficients(["relu"], tau0)
    assert nt.b1 == pytest.approx(0.25 + 0.25, rel=1e-14)
    # kappa_1^2 = tau_1^2 + E[relu'^2] tau0^2 = tau0^2 (1/2 - 1/(2 pi)) + tau0^2 / 2
    assert nt.kappa2 == pytest.approx(tau0**2 * (1 - 1 / (2 * math.pi)), rel=1e-13)


def test_odd_activations_keep_only_linear_part():
    for layer in ck_coefficients(["tanh", "erf", "sin"], 1.0):
        assert abs(layer.a2) < 1e-25 and abs(layer.a3) < 1e-25


@pytest.fixture(scope="module")
def gmm800():
    return sample_gmm(gaussian_mixture(400), 800, seed=0)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_relu_equivalents_match_arccos(gmm800, L):
    g = gmm800
    K, N = relu_arccos_kernels(g.X, L, g.stats.tau0)
    # Spec section 6: about 1.6 % (CK L=1) at n = 800, growing with depth; errors here are
    # O(n^-1/2) fluctuations, so the bounds leave a factor of about 1.5.
    ck_bound, ntk_bound = {1: (0.025, 0.04), 2: (0.05, 0.09), 3: (0.07, 0.14)}[L]
    assert rel_spectral_error(ck_equivalent(g.X, g.stats, ["relu"] * L), K) < ck_bound
    assert rel_spectral_error(ntk_equivalent(g.X, g.stats, ["relu"] * L), N) < ntk_bound
    cmp = compare_spectra(ck_equivalent(g.X, g.stats, ["relu"] * L), K, k=2)
    assert cmp.eig_rel_err[0] < 0.01
    assert cmp.alignment[0] > 0.99


def test_identity_correction_matters():
    # The identity coefficient tau_L^2 - tau0^2 a1 - tau0^4 a3 of the reference code stalls;
    # the corrected one keeps decaying (spec section 4).
    g = sample_gmm(gaussian_mixture(800), 1600, seed=1)
    K, _ = relu_arccos_kernels(g.X, 2, g.stats.tau0)
    last = ck_coefficients(["relu"] * 2, g.stats.tau0)[-1]
    s = g.stats
    right = equivalent_kernel(g.X, s.V, s.t, s.T, s.tau0, last.a1, last.a2, last.a3, last.tau2)
    wrong = equivalent_kernel(g.X, s.V, s.t, s.T, s.tau0, last.a1, last.a2, last.a3,
                              last.tau2 - s.tau0**4 * last.a3)
    assert rel_spectral_error(right, K) < 0.5 * rel_spectral_error(wrong, K)


def test_ntk_of_step_network_is_undefined():
    with pytest.raises(ValueError, match="NTK undefined"):
        ntk_coefficients(["relu", "binary:s1=-1,s2=1,b=1"], 1.0)
    g = sample_gmm(gaussian_mixture(10), 8)
    assert ck_equivalent(g.X, g.stats, ["sign"]).shape == (8, 8)


def test_bad_inputs():
    with pytest.raises(ValueError, match="tau0"):
        ck_coefficients(["relu"], 0.0)
    with pytest.raises(ValueError, match="at least one layer"):
        ck_coefficients([], 1.0)
    with pytest.raises(ValueError, match="V must be"):
        equivalent_kernel(np.ones((3, 4)), np.ones((5, 3)), np.zeros(2), np.eye(2), 1.0,
                          1, 0, 0, 1)


@pytest.fixture(scope="module")
def gmm300():
    g = sample_gmm(gaussian_mixture(120), 300, seed=3)
    return g.X, g.stats


@pytest.mark.parametrize("acts", [["relu"], ["tanh", "erf"], ["gelu", "relu", "swish"],
                                  ["abs", "tanh", "relu"]])
@pytest.mark.parametrize("which", ["ck", "ntk"])
def test_operator_equals_the_dense_equivalent(gmm300, acts, which):
    X, stats = gmm300
    build = ck_equivalent if which == "ck" else ntk_equivalent
    dense = build(X, stats, acts)
    op = build(X, stats, acts, operator=True)
    assert op.shape == dense.shape and op.dtype == np.float64
    scale = np.abs(dense).max()
    n = dense.shape[0]
    # Products with a block, a vector and the identity, and the adjoint (symmetric).
    M = np.random.default_rng(0).standard_normal((n, 4))
    # Each column of a product is a sum of n terms of at most scale |m_i|.
    bound = 1e-13 * scale * np.abs(M).sum(axis=0)
    assert np.all(np.abs(op @ M - dense @ M) <= bound)
    assert np.all(np.abs(op.matvec(M[:, 0]) - dense @ M[:, 0]) <= bound[0])
    np.testing.assert_allclose(op @ np.eye(n), dense, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(op.H @ M, op @ M, rtol=0, atol=0)


def test_operator_spectrum_without_the_matrix():
    """eigsh on the operator of an n = 4000 equivalent finds the dense top eigenvalues, and a
    product allocates O(n p), not an n x n array."""
    import tracemalloc

    from scipy.sparse.linalg import eigsh

    g = sample_gmm(gaussian_mixture(200), 4000, seed=5)
    op = ck_equivalent(g.X, g.stats, ["relu", "relu"], operator=True)
    v = np.ones(4000)
    tracemalloc.start()
    op.matvec(v)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.01 * 4000**2 * 8
    top = np.sort(eigsh(op, k=5, which="LA", tol=1e-12)[0])[::-1]
    want = np.linalg.eigvalsh(ck_equivalent(g.X, g.stats, ["relu", "relu"]))[::-1][:5]
    np.testing.assert_allclose(top, want, rtol=1e-10)
