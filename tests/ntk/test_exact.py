"""Exact infinite-width kernels: the Hermite/Mehler path against independent closed forms and
brute-force Gaussian integrals, its truncation rule, and structural properties."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate, special

from ntk.activations import CATALOGUE, activation
from ntk.constants import activation_constants
from ntk.exact import exact_kernels, hermite_coefficients


def moderate_data(p, n, seed):
    """(p, n) data with column norms in [0.7, 1.3] and off-diagonal |rho| < 0.85."""
    rng = np.random.default_rng(seed)
    while True:
        X = rng.standard_normal((p, n))
        X /= np.linalg.norm(X, axis=0)
        rho = X.T @ X
        X *= rng.uniform(0.7, 1.3, n)
        np.fill_diagonal(rho, 0.0)
        if np.abs(rho).max() < 0.85:
            return X


# -- ReLU: arc-cosine closed form ----------------------------------------------------------------

def relu_closed_form(X, layers, tau0):
    """CK_L, NTK_L from E[relu(u) relu(v)] = s t (sin th + (pi - th) cos th) / (2 pi),
    E[1(u > 0) 1(v > 0)] = (pi - th) / (2 pi), E[relu(u)] = s / sqrt(2 pi), and the scalar
    chain m_l = tau_{l-1} / sqrt(2 pi), tau_l^2 = tau_{l-1}^2 (1/2 - 1/(2 pi))."""
    K = X.T @ X
    N = K.copy()
    tau = tau0
    for _ in range(layers):
        s = np.sqrt(np.diag(K))
        rho = np.clip(K / np.outer(s, s), -1.0, 1.0)
        np.fill_diagonal(rho, 1.0)  # arccos is ill-conditioned at 1: pin the diagonal exactly
        th = np.arccos(rho)
        m = tau / math.sqrt(2 * math.pi)
        mean = s / math.sqrt(2 * math.pi)
        second = np.outer(s, s) * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)
        ck = second - m * (mean[:, None] + mean[None, :]) + m * m
        N = ck + (np.pi - th) / (2 * np.pi) * N
        K = ck
        tau *= math.sqrt(0.5 - 0.5 / math.pi)
    return K, N


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_relu_matches_arc_cosine(layers):
    X = moderate_data(8, 12, seed=1)
    got = exact_kernels(X, ["relu"] * layers)
    ck, ntk = relu_closed_form(X, layers, got.tau0)
    assert got.tau0 == pytest.approx(math.sqrt(np.mean(np.sum(X * X, axis=0))), rel=1e-15)
    assert len(got.terms) == layers
    np.testing.assert_allclose(got.ck, ck, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.ntk, ntk, rtol=0, atol=1e-12)


def test_relu_explicit_tau0_and_single_sample():
    X = np.array([[0.3], [-1.1], [0.4]])
    got = exact_kernels(X, "relu,relu", tau0=0.7)
    ck, ntk = relu_closed_form(X, 2, 0.7)
    assert got.terms == (1, 1) and got.tau0 == 0.7
    np.testing.assert_allclose(got.ck, ck, rtol=0, atol=1e-13)
    np.testing.assert_allclose(got.ntk, ntk, rtol=0, atol=1e-13)


# -- smooth activations: 2-D Gauss-Hermite brute force ------------------------------------------

# 300 nodes: with 150, E[tanh'(s xi)^2] at s = 1.28 (poles at distance pi / 2.56 from the real
# axis) is off by 7e-10; with 300 by 1e-14.
GH_X, GH_W = hermegauss(300)
GH_W = GH_W / math.sqrt(2 * math.pi)

SMOOTH = {
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "swish": (lambda x: x * special.expit(x),
              lambda x: special.expit(x) * (1 + x * (1 - special.expit(x)))),
}


def brute_force_smooth(X, fn, dfn, layers):
    """Every entry as a 300 x 300 Gauss-Hermite sum after Cholesky of its 2 x 2 covariance; the
    centring chain by 1-D Gauss-Hermite."""
    K = X.T @ X
    N = K.copy()
    tau = math.sqrt(np.trace(K) / K.shape[0])
    z1, z2 = np.meshgrid(GH_X, GH_X, indexing="ij")
    w2 = np.outer(GH_W, GH_W)
    n = K.shape[0]
    for _ in range(layers):
        m = GH_W @ fn(tau * GH_X)
        ck = np.empty_like(K)
        sd = np.empty_like(K)
        for i in range(n):
            for j in range(n):
                if i == j:
                    u = math.sqrt(K[i, i]) * GH_X
                    ck[i, i] = GH_W @ (fn(u) - m) ** 2
                    sd[i, i] = GH_W @ dfn(u) ** 2
                    continue
                L = np.linalg.cholesky(K[np.ix_([i, j], [i, j])])
                u = L[0, 0] * z1
                v = L[1, 0] * z1 + L[1, 1] * z2
                ck[i, j] = np.sum(w2 * (fn(u) - m) * (fn(v) - m))
                sd[i, j] = np.sum(w2 * dfn(u) * dfn(v))
        tau = math.sqrt(GH_W @ (fn(tau * GH_X) - m) ** 2)
        N = ck + sd * N
        K = ck
    return K, N


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_smooth_matches_gauss_hermite(name, layers):
    X = moderate_data(4, 6, seed=2)
    got = exact_kernels(X, [name] * layers)
    ck, ntk = brute_force_smooth(X, *SMOOTH[name], layers)
    np.testing.assert_allclose(got.ck, ck, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.ntk, ntk, rtol=0, atol=1e-10)


# -- binary step: conditional 1-D integrals -----------------------------------------------------

S1, S2, B = -0.5, 0.8, 1.0
BINARY = f"binary:s1={S1},s2={S2},b={B}"


def step_prob(scale):
    """P(u < s1 or u > s2) for u ~ N(0, scale^2)."""
    return special.ndtr(S1 / scale) + special.ndtr(-S2 / scale)


def brute_force_binary(X, layers):
    """E[h(u) h(v)] = b int_{h(u) = b} E[h(v) | u] dN(u): v | u is Gaussian, so the inner
    expectation is a Phi expression; the outer integral by scipy quad, split at s1 and s2."""
    K = X.T @ X
    tau = math.sqrt(np.trace(K) / K.shape[0])
    n = K.shape[0]
    for _ in range(layers):
        m = B * step_prob(tau)
        s = np.sqrt(np.diag(K))
        mean = B * step_prob(s)
        ck = np.empty_like(K)
        for i in range(n):
            ck[i, i] = B * B * step_prob(s[i]) - 2 * m * mean[i] + m * m
            for j in range(n):
                if i == j:
                    continue
                beta = K[i, j] / K[i, i]
                sig = math.sqrt(K[j, j] - K[i, j] ** 2 / K[i, i])

                def integrand(u, beta=beta, sig=sig, si=s[i]):
                    cond = special.ndtr((S1 - beta * u) / sig) + special.ndtr((beta * u - S2) / sig)
                    density = math.exp(-0.5 * (u / si) ** 2) / (si * math.sqrt(2 * math.pi))
                    return B * B * cond * density

                lo = integrate.quad(integrand, -14 * s[i], S1, epsabs=1e-15, epsrel=1e-13,
                                    limit=200)[0]
                hi = integrate.quad(integrand, S2, 14 * s[i], epsabs=1e-15, epsrel=1e-13,
                                    limit=200)[0]
                ck[i, j] = lo + hi - m * (mean[i] + mean[j]) + m * m
        P = step_prob(tau)
        tau = B * math.sqrt(P * (1 - P))
        K = ck
    return K


@pytest.mark.parametrize("layers", [1, 2])
def test_binary_ck_matches_conditional_integral(layers):
    X = moderate_data(4, 6, seed=3)
    got = exact_kernels(X, [BINARY] * layers, ntk=False)
    assert got.ntk is None
    np.testing.assert_allclose(got.ck, brute_force_binary(X, layers), rtol=0, atol=1e-10)


def test_ntk_of_jump_activation_is_refused():
    X = moderate_data(4, 6, seed=3)
    with pytest.raises(ValueError, match=r"NTK undefined: E\[sigma'\^2\] is infinite for binary"):
        exact_kernels(X, ["relu", BINARY])


# -- truncation ---------------------------------------------------------------------------------

def test_loose_tolerance_truncates_within_its_bound():
    X = moderate_data(8, 12, seed=1)
    tol = 1e-4
    got = exact_kernels(X, ["relu"], tol=tol)
    ck, ntk = relu_closed_form(X, 1, got.tau0)
    s = np.sqrt(np.diag(X.T @ X))
    rho = X.T @ X / np.outer(s, s)
    np.fill_diagonal(rho, 0.0)
    assert got.terms == (math.ceil(math.log(tol) / math.log(np.abs(rho).max())),)
    # Tail bounds: rho^(T+1) sqrt(CK_ii CK_jj) and rho^T sqrt(Sdot_ii Sdot_jj) <= tol * scale.
    assert np.abs(got.ck - ck).max() <= tol * np.diag(ck).max()
    assert np.abs(got.ntk - ntk).max() <= tol * np.diag(ntk).max()
    # ...and the truncation is really active at this tolerance.
    assert np.abs(got.ntk - ntk).max() > 1e-10


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 7), extra=st.integers(2, 5),
       names=st.lists(st.sampled_from(CATALOGUE), min_size=1, max_size=3))
def test_kernels_are_symmetric_psd(seed, n, extra, names):
    X = moderate_data(n + extra, n, seed)
    with_ntk = not any(activation(a).has_jumps for a in names)
    got = exact_kernels(X, names, ntk=with_ntk)
    for K in (got.ck, got.ntk) if with_ntk else (got.ck,):
        np.testing.assert_array_equal(K, K.T)
        eig = np.linalg.eigvalsh(K)
        assert eig[0] >= -1e-10 * np.abs(eig).max()


# -- Hermite coefficients -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["erf", "gelu"])
def test_hermite_coefficients_against_closed_form_constants(name):
    scales = np.array([0.5, 1.0, 1.7])
    c = hermite_coefficients(name, scales, 200)
    for row, tau in zip(c, scales, strict=True):
        k = activation_constants(name, tau, "symbolic")
        assert row[0] == pytest.approx(k.m0, abs=1e-13)
        assert row[1] == pytest.approx(tau * k.d1, abs=1e-13)
        assert row[2] == pytest.approx(tau**2 * k.d2 / math.sqrt(2), abs=1e-13)
        # Parseval: E[sigma(tau xi)^2] = sum_k c_k^2 (the coefficients decay geometrically).
        assert np.sum(row**2) == pytest.approx(k.tau2_next + k.m0**2, rel=1e-12)


# -- input checks -------------------------------------------------------------------------------

@pytest.mark.parametrize(("X", "acts", "kwargs", "message"), [
    (np.ones(3), ["relu"], {}, "2-D"),
    (np.ones((0, 3)), ["relu"], {}, "2-D"),
    (np.ones((3, 0)), ["relu"], {}, "2-D"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), ["relu"], {}, "finite"),
    (np.eye(3), [], {}, "at least one activation"),
    (np.eye(3), ["relu"], {"tau0": 0.0}, "tau0"),
    (np.eye(3), ["relu"], {"tau0": math.nan}, "tau0"),
    (np.eye(3), ["relu"], {"tol": 0.0}, "tol"),
    (np.eye(3), ["relu"], {"tol": 1.0}, "tol"),
    (np.array([[1.0, 0.0], [0.0, 0.0]]), ["relu"], {}, "sample 1 has zero norm"),
])
def test_bad_input_is_refused(X, acts, kwargs, message):
    with pytest.raises(ValueError, match=message):
        exact_kernels(X, acts, **kwargs)


@pytest.mark.parametrize(("scales", "n_terms", "message"), [
    (np.array([1.0, 0.0]), 3, "scales"), (np.array([1.0, np.inf]), 3, "scales"),
    (np.ones((2, 2)), 3, "scales"), (np.ones(2), -1, "n_terms")])
def test_bad_hermite_arguments_are_refused(scales, n_terms, message):
    with pytest.raises(ValueError, match=message):
        hermite_coefficients("tanh", scales, n_terms)


def test_blocked_gram_gives_the_same_kernels(monkeypatch):
    """Large n builds X^T X in blocks of rows (one syrk of n = 25600 crashed OpenBLAS); the
    kernels equal the one-call Gram's to rounding (a block's product may sum in another
    order)."""
    import ntk.exact

    X = np.random.default_rng(4).standard_normal((40, 300))
    whole = exact_kernels(X, ["relu", "tanh"])
    monkeypatch.setattr(ntk.exact, "_GRAM_BLOCK", 64)
    blocked = exact_kernels(X, ["relu", "tanh"])
    for a, b in ((whole.ck, blocked.ck), (whole.ntk, blocked.ntk)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-14 * np.abs(a).max())


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gram_bands_on_threads_equal_the_product(threads, monkeypatch):
    """X^T X in one band per BLAS thread (single-threaded BLAS on Python threads) and a tile's
    X_I^T X_J equal NumPy's product to rounding, whatever the thread count and blocking."""
    import ntk.exact

    X = np.random.default_rng(5).standard_normal((30, 257))
    monkeypatch.setattr(ntk.exact, "_blas_threads", lambda: threads)
    monkeypatch.setattr(ntk.exact, "_GRAM_BLOCK", 50)
    K = ntk.exact._lower_gram(X)
    G = X.T @ X
    np.testing.assert_allclose(np.tril(K), np.tril(G), rtol=0, atol=1e-13 * np.abs(G).max())
    cross = ntk.exact.cross_products(X[:, :100], X[:, 90:])
    np.testing.assert_allclose(cross, G[:100, 90:], rtol=0, atol=1e-13 * np.abs(G).max())
