"""The fast paths of ``ntk.exact`` against independent references.

* whole kernels, CK and NTK, L = 1..3: ReLU on a few hundred samples against the arc-cosine
  closed form, and other catalogue activations (the interpolated, shared-rule and per-sample
  moment paths) against a layer recursion whose every entry is a 2-D quadrature
  (``ntk.bivariate.pair_moments``), which uses no Hermite series;
* the per-sample moments (polynomial-in-scale interpolation, shared rule, per-sample rules)
  against direct quadrature with the Hermite recurrence written out here;
* the lower-triangle survey against the same counts on the full matrix, and the mirror copy.
"""

import math

import numpy as np
import pytest
from test_exact import relu_closed_form

import ntk.exact as exact
from ntk.activations import activation
from ntk.bivariate import pair_moments
from ntk.constants import tau_chain
from ntk.exact import exact_kernels
from ntk.quadrature import gaussian_rule


def spread_data(p, n, seed):
    """(p, n) data with norms in [0.6, 1.4] and correlations up to ~0.9 (long Hermite tails)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((p, 1))
    c = rng.uniform(0.0, 0.9, n)
    X = c * base / np.linalg.norm(base) + rng.standard_normal((p, n)) / math.sqrt(p)
    return X / np.linalg.norm(X, axis=0) * rng.uniform(0.6, 1.4, n)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_relu_many_samples_match_arc_cosine(layers):
    """Odd n over many row blocks and mirror tiles; correlations up to 0.9 give tails."""
    X = spread_data(40, 301, seed=layers)
    got = exact_kernels(X, ["relu"] * layers)
    ck, ntk = relu_closed_form(X, layers, got.tau0)
    assert got.terms[0] > 50
    for value, ref in ((got.ck, ck), (got.ntk, ntk)):
        np.testing.assert_array_equal(value, value.T)
        np.testing.assert_allclose(value, ref, rtol=0, atol=2e-13 * np.abs(np.diag(ref)).max())
    only_ck = exact_kernels(X, ["relu"] * layers, ntk=False)
    np.testing.assert_array_equal(only_ck.ck, got.ck)


def quadrature_recursion(X, act, layers, with_ntk):
    """[(CK_l, NTK_l) for l = 1..layers] with every off-diagonal entry by 2-D quadrature and the
    diagonal by 1-D quadrature (320 panels of 20 Legendre nodes on [-16, 16], cut at the
    kinks)."""
    act = activation(act)
    K = X.T @ X
    N = K.copy()
    n = K.shape[0]
    out = []
    for const in tau_chain([act] * layers, math.sqrt(np.trace(K) / n)):
        m = const.m0
        s = np.sqrt(np.diag(K))
        ck, sdot = np.empty_like(K), np.empty_like(K)
        for i in range(n):
            nodes, w = gaussian_rule(np.asarray(act.breakpoints) / s[i], half_width=16.0,
                                     panel=0.1, order=20)
            ck[i, i] = w @ (act.fn(s[i] * nodes) - m) ** 2
            sdot[i, i] = w @ act.grad(s[i] * nodes) ** 2 if with_ntk else 0.0
            for j in range(i):
                rho = K[i, j] / (s[i] * s[j])
                pm = pair_moments(act, m, s[i], s[j], 1.0 if rho >= 0 else -1.0,
                                  1.0 - abs(rho), grad=with_ntk)
                ck[i, j] = ck[j, i] = pm.ck
                sdot[i, j] = sdot[j, i] = pm.sdot
        N = ck + sdot * N
        K = ck
        out.append((K, N))
    return out


# The smooth ones take ~10 s (2-D quadrature with an inner rule); the default run checks their
# shared-rule path in test_sample_moments_match_direct_quadrature and tests/ntk/test_exact.py.
@pytest.mark.parametrize("name", ["lrelu:a=0.1", "abs", "quad", "sign",
                                  "binary:s1=-0.5,s2=0.8,b=1",
                                  pytest.param("tanh", marks=pytest.mark.slow),
                                  pytest.param("gelu", marks=pytest.mark.slow)])
def test_catalogue_matches_pair_quadrature(name):
    X = spread_data(6, 8, seed=7) * (0.5 if name == "tanh" else 1.0)
    with_ntk = not activation(name).has_jumps
    refs = quadrature_recursion(X, name, 3, with_ntk)
    for layers, (ck, ntk) in enumerate(refs, start=1):
        got = exact_kernels(X, [name] * layers, ntk=with_ntk)
        np.testing.assert_allclose(got.ck, ck, rtol=0, atol=1e-11 * np.abs(np.diag(ck)).max(),
                                   err_msg=f"CK, L={layers}")
        if with_ntk:
            np.testing.assert_allclose(got.ntk, ntk, rtol=0,
                                       atol=1e-11 * np.abs(np.diag(ntk)).max(),
                                       err_msg=f"NTK, L={layers}")


def direct_moments(act, s, m, row_terms, panel):
    """Per sample: its own rule, the values, and h_k by the recurrence, all written out."""
    top = int(row_terms.max())
    coef = np.zeros((s.size, top + 1))
    ck, sdot = np.empty(s.size), np.empty(s.size)
    for i, scale in enumerate(s):
        x, w = gaussian_rule(np.asarray(act.breakpoints) / scale, half_width=16.0, panel=panel,
                             order=20)
        f = act.fn(scale * x) - m
        h_prev, h = np.zeros_like(x), np.ones_like(x)
        for k in range(row_terms[i] + 1):
            coef[i, k] = w @ (f * h)
            h_prev, h = h, (x * h - math.sqrt(k) * h_prev) / math.sqrt(k + 1)
        ck[i] = w @ (f * f)
        sdot[i] = w @ act.grad(scale * x) ** 2
    return coef, ck, sdot


@pytest.mark.parametrize("name", ["relu", "lrelu:a=0.1", "abs", "sign", "quad", "tanh", "gelu",
                                  "binary:s1=-0.5,s2=0.8,b=1"])
def test_sample_moments_match_direct_quadrature(name):
    act = activation(name)
    rng = np.random.default_rng(1)
    s = np.concatenate([[1e-3, 0.05, 1.0, 1.0, 2.5], rng.uniform(0.3, 1.7, 20)])
    row_terms = rng.integers(0, 60, s.size)
    panel = exact._PANEL if act.pieces is not None else exact._PANEL / max(1.0, s.max())
    coef, ck, sdot = exact._sample_moments(act, s, 0.3, row_terms, grad=not act.has_jumps)
    ref_coef, ref_ck, ref_sdot = direct_moments(act, s, 0.3, row_terms, panel)
    scale = np.sqrt(ref_ck)[:, None]
    np.testing.assert_allclose(coef, ref_coef, rtol=0, atol=1e-14 * scale.max())
    # Zeros beyond each sample's T_i, as documented.
    assert np.all(coef[np.arange(coef.shape[1])[None, :] > row_terms[:, None]] == 0.0)
    # The interpolation in the scale is exact but for rounding relative to the largest
    # sample's moments (the samples' own ones for the other paths).
    np.testing.assert_allclose(ck, ref_ck, rtol=0, atol=1e-13 * ref_ck.max())
    if not act.has_jumps:
        np.testing.assert_allclose(sdot, ref_sdot, rtol=0, atol=1e-13 * ref_sdot.max())


def test_degree_in_scale():
    assert exact._degree_in_scale(activation("relu")) == 1
    assert exact._degree_in_scale(activation("sign")) == 0
    assert exact._degree_in_scale(activation("quad")) == 2
    assert exact._degree_in_scale(activation("tanh")) is None
    assert exact._degree_in_scale(activation("binary:s1=-0.5,s2=0.8,b=1")) is None


def test_survey_of_the_lower_triangle_matches_the_full_matrix():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((20, 157))
    X[:, 10] = X[:, 3]
    X[:, 50] = -2 * X[:, 3]
    X[:, 99] = X[:, 98] + 1e-3 * rng.standard_normal(20)
    K = X.T @ X
    s = np.sqrt(np.diag(K))
    cap = 0.99
    r = np.abs(K) / np.outer(s, s)
    np.fill_diagonal(r, -1.0)
    close = r > cap
    best, n_close = exact._survey(K, s, cap)
    np.testing.assert_array_equal(best, np.where(close, 0.0, np.maximum(r, 0.0)).max(axis=1))
    np.testing.assert_array_equal(n_close, np.tril(close, -1).sum(axis=1))
    assert n_close.sum() == 4


@pytest.mark.parametrize("n", [1, 63, 64, 65, 200])
def test_mirror_of_the_lower_triangle(n):
    A = np.random.default_rng(n).standard_normal((n, n))
    expected = np.tril(A) + np.tril(A, -1).T
    exact.mirror_lower(A)
    np.testing.assert_array_equal(A, expected)
