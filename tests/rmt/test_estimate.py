"""GMM statistics estimated from labelled data: convergence to the truth of a known mixture,
preprocessing, class-balanced sampling and the matched-GMM (twin) sampler."""

import math

import numpy as np
import pytest

from ntk import ck_coefficients, ck_equivalent, ntk_coefficients, ntk_equivalent
from rmt import (
    GaussianMixture,
    balanced_indices,
    estimate_tau0,
    fit_mixture,
    fit_preprocessing,
    gaussian_mixture,
    rel_spectral_error,
    sample_gmm,
    sample_matched_gmm,
    sample_statistics,
)
from rmt.gmm import _square_root

P, K = 64, 3
MODEL = gaussian_mixture(P, n_classes=K, t=(-2.0, 0.5, 1.5), structure="ar1:0.5")
SEEDS = range(8)
SIZES = (500, 8000)  # training samples per class, N and 16 N


@pytest.fixture(scope="module")
def test_sample():
    """The n = 300 sample whose statistics are estimated (its true ones are known)."""
    return sample_gmm(MODEL, 300, seed=1000)


@pytest.fixture(scope="module")
def errors(test_sample):
    """N -> (t errors (R, K), T errors (R, K, K), psi errors (R, n), naive T errors (R, K, K))."""
    out = {}
    for n_class in SIZES:
        rows = []
        for seed in SEEDS:
            train = sample_gmm(MODEL, n_class * K, seed=seed)
            fitted = fit_mixture(train.X, train.labels)
            est = sample_statistics(test_sample.X, test_sample.labels, fitted)
            truth = test_sample.stats
            rows.append((est.t - truth.t, est.T - truth.T, est.psi - truth.psi,
                         fitted.model.statistics()[2] - truth.T))
        out[n_class] = tuple(np.array(x) for x in zip(*rows, strict=True))
    return out


# Standard deviations of the estimators for Gaussian data (Sigma_a = C_a/p, the covariance of x;
# Wishart moments Cov(S_ij, S_kl) = (Sigma_ik Sigma_jl + Sigma_il Sigma_jk)/(N - 1)).

def _sd_t(n_class):
    """t_a = sqrt(p) (tr S_a - sum_b c_b tr S_b), Var(tr S_a) = 2 tr(Sigma_a^2)/(N_a - 1)."""
    c = MODEL.proportions
    v = np.array([2 * np.trace(S @ S) / (n_class - 1) for S in MODEL.covariances / P])
    return np.array([math.sqrt(P * ((1 - c[a]) ** 2 * v[a]
                                    + sum(c[b] ** 2 * v[b] for b in range(K) if b != a)))
                     for a in range(K)])


def _sd_T(n_class):
    """Leading orders: Var(T_aa) = 8 tr(C_a^4)/(p^2 N) + 4 T_aa^2/N^2 (unbiased estimator of
    tr(Sigma^2)); Var(T_ab) = 4 tr((C_a C_b)^2)/(p^2 N) + 2 (T_ab^2 + tr((C_a C_b)^2)/p^2)/N^2."""
    C = MODEL.covariances
    out = np.empty((K, K))
    for a in range(K):
        for b in range(K):
            M = C[a] @ C[b]
            m4, tab = np.trace(M @ M) / P**2, np.trace(M) / P
            out[a, b] = math.sqrt(8 * m4 / n_class + 4 * tab**2 / n_class**2 if a == b
                                  else 4 * m4 / n_class + 2 * (tab**2 + m4) / n_class**2)
    return out


def _sd_psi(n_class, labels):
    """psi_i error = -2 z_i'(m_a^ - m_a) + ||m_a^ - m_a||^2 - (tr S_a - tr Sigma_a): variance
    4 tr(Sigma^2)/N + 2 tr(Sigma^2)/N, plus the squared mean (tr Sigma/N)^2 of the middle term."""
    sig = MODEL.covariances / P
    sd = np.array([math.sqrt(6 * np.trace(S @ S) / n_class + (np.trace(S) / n_class) ** 2)
                   for S in sig])
    return sd[labels]


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def test_estimates_converge_to_the_truth(errors, test_sample):
    # Each error divided by its predicted standard deviation is ~N(0, 1); the root mean square
    # over 8 seeds x 3 classes (t), x 6 distinct entries (T) or x 300 samples (psi) is ~1 and
    # stays below 2 (for 24 independent terms P(chi2_24 / 24 > 4) < 1e-8).
    for n_class in SIZES:
        et, eT, epsi, _ = errors[n_class]
        assert _rms(et / _sd_t(n_class)) < 2
        assert _rms(eT / _sd_T(n_class)) < 2
        assert _rms(epsi / _sd_psi(n_class, test_sample.labels)) < 2


def test_estimation_error_decays_like_one_over_sqrt_n(errors):
    # With 16 times more training samples the errors shrink by sqrt(16) = 4: the ratio of root
    # mean squares is ~0.25, above 0.5 only if an F(24, 24) variate exceeds 4 (p ~ 5e-4).
    small, large = errors[SIZES[0]], errors[SIZES[1]]
    for name, i in (("t", 0), ("T", 1), ("psi", 2)):
        ratio = _rms(large[i]) / _rms(small[i])
        assert ratio < 0.5, f"{name}: error ratio {ratio:.3f} between N and 16 N"


def test_unbiased_T_removes_the_plug_in_bias(errors):
    # The plug-in tr(C_a^2)/p from sample covariances is biased by ~tr(C_a)^2/(p N) ~ p/N
    # (0.13 at N = 500): its mean over 8 seeds sits on that bias, many standard errors from the
    # truth, while the unbiased estimator's mean is within 4 standard errors (sd/sqrt(8)).
    n_class = SIZES[0]
    se = np.diag(_sd_T(n_class)) / math.sqrt(len(SEEDS))
    _, eT, _, naive = errors[n_class]
    assert np.all(np.abs(np.diagonal(eT.mean(axis=0))) < 4 * se)
    # Wishart: E[p tr(S^2)] - T_aa = (T_aa + p (tr(C_a)/p)^2)/(N - 1).
    _, _, T = MODEL.statistics()
    traces = np.trace(MODEL.covariances, axis1=1, axis2=2) / P
    bias = (np.diag(T) + P * traces**2) / (n_class - 1)
    assert np.all(bias > 6 * se)  # the test can tell the two apart
    np.testing.assert_allclose(np.diagonal(naive.mean(axis=0)), bias, atol=4 * se.max())


def _middle(s, c2, c3):
    """The (K+1) x (K+1) matrix C of Ktilde = c1 X^T X + V C V^T + c I."""
    k = s.t.size
    C = np.empty((k + 1, k + 1))
    C[:k, :k] = c2 * np.outer(s.t, s.t) + c3 * s.T
    C[:k, k] = C[k, :k] = c2 * s.t
    C[k, k] = c2
    return C


@pytest.mark.parametrize("kernel", ["ck", "ntk"])
def test_equivalent_from_estimates_matches_the_true_one(kernel, test_sample):
    # Same X and tau0, hence the same coefficients: the two equivalents differ only through
    # V C V^T, so ||K^ - K|| <= ||V^||^2 ||C^ - C|| + ||C|| (||V^|| + ||V||) ||psi^ - psi||
    # (triangle inequality): the equivalent is as good as the estimates. And its error shrinks
    # with N like theirs.
    acts = ["relu", "relu"]
    X, truth = test_sample.X, test_sample.stats
    if kernel == "ck":
        last = ck_coefficients(acts, truth.tau0)[-1]
        c2, c3, equivalent = last.a2, last.a3, ck_equivalent
    else:
        last = ntk_coefficients(acts, truth.tau0)[-1]
        c2, c3, equivalent = last.b2, last.b3, ntk_equivalent
    K_true = equivalent(X, truth, acts)
    norm = np.linalg.norm
    rel = {}
    for n_class in SIZES:
        train = sample_gmm(MODEL, n_class * K, seed=7)
        est = sample_statistics(X, test_sample.labels, fit_mixture(train.X, train.labels))
        assert est.tau0 == truth.tau0
        rel[n_class] = rel_spectral_error(equivalent(X, est, acts), K_true)
        C_est, C_true = _middle(est, c2, c3), _middle(truth, c2, c3)
        bound = (norm(est.V, 2) ** 2 * norm(C_est - C_true, 2)
                 + norm(C_true, 2) * (norm(est.V, 2) + norm(truth.V, 2))
                 * norm(est.psi - truth.psi))
        assert rel[n_class] * norm(K_true, 2) <= bound
    # 16 times more samples: ~4 times smaller (0.5 leaves room for one seed's fluctuation).
    assert rel[SIZES[1]] < 0.5 * rel[SIZES[0]]


def test_preprocessing_sets_training_tau0_to_one():
    rng = np.random.default_rng(0)
    X = 3.0 + 2.0 * rng.standard_normal((20, 500)) * np.linspace(0.5, 2, 20)[:, None]
    prep = fit_preprocessing(X)
    Y = prep.apply(X)
    assert estimate_tau0(Y) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(Y.mean(axis=1), 0.0, atol=1e-12)
    # New samples of the same law: mean square norm 1 within its sampling noise (~0.1/sqrt(n)).
    Z = prep.apply(3.0 + 2.0 * rng.standard_normal((20, 2000))
                   * np.linspace(0.5, 2, 20)[:, None])
    assert estimate_tau0(Z) ** 2 == pytest.approx(1.0, abs=5 * 0.33 / math.sqrt(2000))
    with pytest.raises(ValueError, match="shape"):
        prep.apply(X[:5])
    with pytest.raises(ValueError, match="equal"):
        fit_preprocessing(np.ones((3, 10)))


def test_fit_rejects_bad_input():
    X = np.random.default_rng(0).standard_normal((5, 20))
    y = np.repeat([0, 1], 10)
    with pytest.raises(ValueError, match="shape"):
        fit_mixture(X, y[:-1])
    with pytest.raises(ValueError, match="integers"):
        fit_mixture(X, y.astype(float))
    with pytest.raises(ValueError, match="at least 4"):
        fit_mixture(X, np.r_[np.zeros(17, int), [1, 1, 1]])
    with pytest.raises(ValueError, match="finite"):
        fit_mixture(np.where(X > 2, np.nan, X), y)
    fitted = fit_mixture(X, y + 3)
    assert fitted.classes.tolist() == [3, 4] and fitted.counts.tolist() == [10, 10]
    with pytest.raises(ValueError, match="not one of the fitted classes"):
        sample_statistics(X, y, fitted)


def test_balanced_indices():
    labels = np.repeat([5, 2, 9], [50, 30, 8])
    idx = balanced_indices(labels, 25, [2, 5, 9], rng=1)
    assert idx.size == len(set(idx.tolist())) == 25
    np.testing.assert_array_equal(labels[idx], np.repeat([2, 5, 9], [9, 8, 8]))
    np.testing.assert_array_equal(idx, balanced_indices(labels, 25, [2, 5, 9], rng=1))
    with pytest.raises(ValueError, match="class 7 is not in the data"):
        balanced_indices(labels, 10, [2, 7])
    with pytest.raises(ValueError, match="class 9 has 8 samples, fewer than the 10"):
        balanced_indices(labels, 30, [2, 5, 9])
    with pytest.raises(ValueError, match="needs n >= 3"):
        balanced_indices(labels, 2, [2, 5, 9])
    with pytest.raises(ValueError, match="distinct"):
        balanced_indices(labels, 10, [2, 2])


def test_square_root_keeps_cholesky_for_positive_definite_models():
    # Existing draws must not change: the sampler still uses the Cholesky factor.
    C = MODEL.covariances[1]
    np.testing.assert_array_equal(_square_root(C), np.linalg.cholesky(C))


def _singular_mixture(p=10):
    """Two classes whose covariances have constant coordinates (zero rows) and rank p - 3."""
    rng = np.random.default_rng(3)
    covs = []
    for a in range(2):
        B = rng.standard_normal((p, p - 3)) * np.sqrt(1.0 + a)
        B[:2] = 0.0  # two constant "border pixels"
        covs.append(B @ B.T / (p - 3))
    means = np.array([np.r_[0.0, 0.0, np.ones(p - 2)], np.r_[0.0, 0.0, -np.ones(p - 2)]])
    return GaussianMixture(means=means, covariances=np.array(covs),
                           proportions=np.array([0.5, 0.5]))


def test_sampler_draws_from_singular_covariances():
    model = _singular_mixture()
    p = model.dim
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(model.covariances[0])
    n = 40000
    g = sample_gmm(model, n, seed=0)
    for a in range(2):
        Z = g.X[:, g.labels == a] * math.sqrt(p)
        C = model.covariances[a]
        assert np.max(np.abs(Z[:2] - model.means[a][:2, None])) < 1e-6
        # Entrywise sd of a sample covariance: sqrt((C_ii C_jj + C_ij^2)/N); 55 entries, 6 sd.
        d = np.diag(C)
        sd = np.sqrt((np.outer(d, d) + C**2) / Z.shape[1])
        assert np.all(np.abs(np.cov(Z) - C) <= 6 * sd + 1e-12)


def test_matched_gmm_twin_has_the_fitted_law_and_the_sample_counts():
    model = _singular_mixture()
    train = sample_gmm(model, 4000, seed=1)
    labels = np.where(train.labels == 0, 4, 8)  # original class labels need not be 0..K-1
    fitted = fit_mixture(train.X, labels)
    sample_labels = np.repeat([4, 8], [70, 50])
    twin = sample_matched_gmm(fitted, sample_labels, seed=2)
    assert twin.X.shape == (model.dim, 120)
    assert np.bincount(twin.labels).tolist() == [70, 50]
    np.testing.assert_array_equal(twin.model.covariances, fitted.model.covariances)
    np.testing.assert_allclose(twin.model.proportions, [70 / 120, 50 / 120])
    np.testing.assert_array_equal(sample_matched_gmm(fitted, sample_labels, seed=2).X, twin.X)
    with pytest.raises(ValueError, match="absent"):
        sample_matched_gmm(fitted, np.full(10, 4))
