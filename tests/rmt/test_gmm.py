"""GMM sampler and statistics."""

import dataclasses
import math

import numpy as np
import pytest

from rmt import GaussianMixture, ar1_matrix, estimate_tau0, gaussian_mixture, sample_gmm


def test_default_model_matches_spec():
    p = 300
    m = gaussian_mixture(p)
    assert np.linalg.norm(m.means[0] - m.means[1]) == pytest.approx(3.0)
    assert np.allclose(m.proportions @ m.means, 0)
    tau0, t, T = m.statistics()
    assert tau0 == pytest.approx(1.0)
    np.testing.assert_allclose(t, [-2.0, 2.0], atol=1e-12)
    s = 1 + np.array([-2.0, 2.0]) / math.sqrt(p)
    np.testing.assert_allclose(T, np.outer(s, s), rtol=1e-12)


def test_sample_shapes_statistics_and_seeds():
    m = gaussian_mixture(200, n_classes=3, t=(-1.0, 0.5, 0.5), proportions=(0.5, 0.25, 0.25))
    g = sample_gmm(m, 401, seed=3)
    assert g.X.shape == (200, 401)
    assert np.bincount(g.labels).tolist() == [201, 100, 100]
    assert g.stats.V.shape == (401, 4)
    np.testing.assert_array_equal(g.stats.J.sum(axis=0), [201, 100, 100])
    np.testing.assert_array_equal(sample_gmm(m, 401, seed=3).X, g.X)
    assert not np.array_equal(sample_gmm(m, 401, seed=4).X, g.X)
    assert g.stats.tau0 == pytest.approx(estimate_tau0(g.X))
    # psi_i = ||z_i||^2 - tr(C_a)/p has mean 0 and sd sqrt(2 tr(C_a^2))/p ~ 0.1 here:
    # the sample mean over 401 entries lies within 4 standard errors of 0.
    sd = math.sqrt(2 * 200 * 1.1**2) / 200
    assert abs(g.stats.psi.mean()) < 4 * sd / math.sqrt(401)


def test_class_covariance_is_recovered():
    # Sample covariance of p * x within a class estimates C_a; entrywise error ~ 1/sqrt(n_a).
    p, n = 20, 40000
    m = gaussian_mixture(p, structure="ar1:0.6", t=(-2.0, 2.0))
    g = sample_gmm(m, n, seed=0)
    for a in range(2):
        Z = g.X[:, g.labels == a] * math.sqrt(p)
        C = np.cov(Z)
        np.testing.assert_allclose(C, m.covariances[a], atol=6 * 1.6 / math.sqrt(Z.shape[1]))
        np.testing.assert_allclose(Z.mean(axis=1), m.means[a], atol=6 * 1.6 / math.sqrt(n / 2))


def test_float32_and_unsorted():
    g = sample_gmm(gaussian_mixture(50), 30, dtype=np.float32, sort=False, seed=1)
    assert g.X.dtype == np.float32
    assert np.bincount(g.labels).tolist() == [15, 15]


def test_ar1_matrix():
    A = ar1_matrix(4, 0.5)
    assert A[0, 3] == 0.125 and np.trace(A) == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"p": 1, "n_classes": 2}, "p >= n_classes"),
    ({"p": 10, "t": (1.0,)}, "t must have"),
    ({"p": 10, "structure": "toeplitz"}, "unknown covariance"),
    ({"p": 10, "structure": "ar1:1.5"}, r"\(-1, 1\)"),
    ({"p": 4, "t": (-3.0, 3.0)}, "positive"),
])
def test_bad_models(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gaussian_mixture(**kwargs)


def test_bad_samples():
    m = gaussian_mixture(10)
    for n in (0, -5, 2.5):
        with pytest.raises(ValueError, match="positive integer"):
            sample_gmm(m, n)
    with pytest.raises(ValueError, match="dtype"):
        sample_gmm(m, 5, dtype=np.int64)
    with pytest.raises(ValueError, match="proportions"):
        GaussianMixture(np.zeros((2, 3)), np.stack([np.eye(3)] * 2), np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="shape"):
        GaussianMixture(np.zeros((2, 3)), np.stack([np.eye(2)] * 2), np.array([0.5, 0.5]))


@pytest.mark.parametrize("scales", [None, (1.0, 1.0), (0.5, 2.3)])
def test_diagonal_covariances_draw_as_the_cholesky_product(scales):
    # The shortcut for positive diagonal covariances (the built-in model's scaled identities,
    # scales=None) must give the draws of F Z with F the Cholesky factor, bit for bit: the
    # seed's draws do not change.
    p, n = 37, 50
    model = gaussian_mixture(p)
    if scales is not None:
        covariances = np.stack([s * np.diag(np.linspace(0.5, 2.0, p)) for s in scales])
        model = dataclasses.replace(model, covariances=covariances)
    got = sample_gmm(model, n, seed=3)
    rng = np.random.default_rng(3)
    labels = got.labels
    W = np.empty((p, n))
    for a in range(2):
        idx = np.flatnonzero(labels == a)
        W[:, idx] = np.linalg.cholesky(model.covariances[a]) @ rng.standard_normal((p, idx.size))
    want = (model.means[labels].T + W) / np.sqrt(p)
    np.testing.assert_array_equal(got.X, want)
