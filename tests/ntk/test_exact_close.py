"""Exact kernels of highly correlated samples, up to exact duplicates, against an independent
reference in 20-digit mpmath arithmetic.

The reference runs the layer recursion of ``ntk.exact`` on the 2 x 2 kernel of a pair in
mpmath, where 1 - rho keeps 8 digits at rho = 1 - 1e-12, with entries from closed forms
(arc-cosine for relu, lrelu and abs, arcsin for sign and erf), from a 2-D Gauss-Hermite product
rule evaluated in mpmath (tanh, gelu), and from bivariate normal orthant probabilities by
adaptive 1-D mpmath quadrature (a 5-level step). The code under test uses none of these.
"""

import functools
import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial.hermite_e import hermegauss

from ntk.activations import step_activation
from ntk.exact import exact_kernels

DPS = 20
TANH_SCALE = 0.4
# Relative to the kernel scale (the largest diagonal entry).
TOL = 1e-10

STEP_T = (-1.5, -0.5, 0.5, 1.5)
STEP_V = (-2.0, -1.0, 0.0, 1.0, 2.0)
STEP = step_activation(STEP_T, STEP_V)

# 60 probabilists' Gauss-Hermite nodes integrate tanh(s x) to ~exp(-2 d sqrt(120)), d = pi / (2 s)
# the distance of its poles from the real axis: 1e-30 at s = 0.5, but only 1e-6 at s = 1.2, so
# the tanh cases scale the data by TANH_SCALE. The nodes themselves are accurate to ~1e-15.
_GH_X, _GH_W = hermegauss(60)
_GH_W = _GH_W / math.sqrt(2 * math.pi)


# -- the reference -------------------------------------------------------------------------------

def _q(x):
    """Upper Gaussian tail P(xi > x) in mpmath."""
    return mp.erfc(x / mp.sqrt(2)) / 2


def _relu_moments(s1, s2, rho):
    """E[relu(u) relu(v)], E[relu(u) v] (= rho s1 s2 / 2), E[1(u>0) 1(v>0)]."""
    th = mp.acos(rho)
    rr = s1 * s2 * (mp.sin(th) + (mp.pi - th) * mp.cos(th)) / (2 * mp.pi)
    return rr, rho * s1 * s2 / 2, (mp.pi - th) / (2 * mp.pi)


def _closed_form(name, s1, s2, rho):
    """(E[sigma(u) sigma(v)], E[sigma(u)], E[sigma(v)], E[sigma'(u) sigma'(v)])."""
    if name in ("relu", "lrelu", "abs"):
        rr, rx, dd = _relu_moments(s1, s2, rho)
        mean = 1 / mp.sqrt(2 * mp.pi)
        if name == "relu":
            return rr, s1 * mean, s2 * mean, dd
        if name == "abs":  # |x| = 2 relu(x) - x, |x|' = 2 1(x > 0) - 1
            return (4 * rr - 4 * rx + rho * s1 * s2, 2 * s1 * mean, 2 * s2 * mean, 4 * dd - 1)
        a = mp.mpf("0.1")  # lrelu = (1 - a) relu(x) + a x
        return ((1 - a) ** 2 * rr + 2 * a * (1 - a) * rx + a * a * rho * s1 * s2,
                (1 - a) * s1 * mean, (1 - a) * s2 * mean,
                (1 - a) ** 2 * dd + a * (1 - a) + a * a)
    if name == "sign":
        return 2 / mp.pi * mp.asin(rho), 0, 0, mp.nan
    if name == "erf":
        q1, q2 = 1 + 2 * s1 * s1, 1 + 2 * s2 * s2
        c = 2 * s1 * s2 * rho
        return (2 / mp.pi * mp.asin(c / mp.sqrt(q1 * q2)), 0, 0,
                4 / mp.pi / mp.sqrt(q1 * q2 - c * c))
    raise KeyError(name)


_SMOOTH = {
    "tanh": (mp.tanh, lambda x: 1 - mp.tanh(x) ** 2),
    "gelu": (lambda x: x * mp.ncdf(x), lambda x: mp.ncdf(x) + x * mp.npdf(x)),
}


def _gauss_hermite(name, s1, s2, rho):
    """The same four moments by the 2-D product rule u = s1 x, v = s2 (rho x + r y)."""
    f, df = _SMOOTH[name]
    nodes = [(mp.mpf(x), mp.mpf(w)) for x, w in zip(_GH_X, _GH_W, strict=True)]
    if rho == 1 and s1 == s2:  # the diagonal: a 1-D rule
        fs = [(w, f(s1 * x), df(s1 * x)) for x, w in nodes]
        mean = mp.fsum(w * v for w, v, _ in fs)
        return (mp.fsum(w * v * v for w, v, _ in fs), mean, mean,
                mp.fsum(w * d * d for w, _, d in fs))
    r = mp.sqrt(1 - rho * rho)
    out = [mp.mpf(0)] * 4
    for x, wx in nodes:
        u = s1 * x
        fu, dfu = f(u), df(u)
        out[1] += wx * fu
        inner = [mp.mpf(0)] * 2
        for y, wy in nodes:
            v = s2 * (rho * x + r * y)
            inner[0] += wy * f(v)
            inner[1] += wy * df(v)
        out[0] += wx * fu * inner[0]
        out[3] += wx * dfu * inner[1]
    out[2] = mp.fsum(wy * f(s2 * y) for y, wy in nodes)
    return tuple(out)


def _orthant(a, b, s1, s2, rho):
    """P(u >= a, v >= b) = int_(a/s1)^inf phi(x) P(eta >= (b/s2 - rho x)/r) dx, split where the
    inner tail switches over (width r around b / (s2 rho))."""
    if rho == 1:
        return _q(max(a / s1, b / s2))
    r = mp.sqrt(1 - rho * rho)
    lo = a / s1
    c = b / (s2 * rho)
    points = sorted({lo, *(p for k in (-30, -3, 0, 3, 30) if (p := c + k * r / rho) > lo)})
    return mp.quad(lambda x: mp.npdf(x) * _q((b / s2 - rho * x) / r), [*points, mp.inf])


def _step_moments(s1, s2, rho):
    """step(x) = v_0 + sum_a (v_a - v_(a-1)) 1(x >= t_a): moments from orthant probabilities."""
    t = [mp.mpf(x) for x in STEP_T]
    v = [mp.mpf(x) for x in STEP_V]
    jumps = [v[k + 1] - v[k] for k in range(len(t))]
    m1 = v[0] + sum(d * _q(ta / s1) for d, ta in zip(jumps, t, strict=True))
    m2 = v[0] + sum(d * _q(ta / s2) for d, ta in zip(jumps, t, strict=True))
    cross = sum(da * db * _orthant(ta, tb, s1, s2, rho)
                for da, ta in zip(jumps, t, strict=True) for db, tb in zip(jumps, t, strict=True))
    both = v[0] * (m1 - v[0]) + v[0] * (m2 - v[0]) + v[0] * v[0] + cross
    return both, m1, m2, mp.nan


def _moments(name, s1, s2, rho):
    if rho < 0:
        raise ValueError("the reference cases have rho >= 0")
    if name in _SMOOTH:
        return _gauss_hermite(name, s1, s2, rho)
    if name == "step":
        return _step_moments(s1, s2, rho)
    return _closed_form(name, s1, s2, rho)


@functools.cache
def reference(name, case, layers):
    """(CK_l, NTK_l) for l = 1..layers of the two columns of ``pair_data(case)``, as 2 x 2 mpmath
    matrices, with the centring chain m_l = E[sigma(tau_(l-1) xi)] in mpmath too."""
    with mp.workdps(DPS):
        X = pair_data(case, TANH_SCALE if name == "tanh" else 1.0)
        K = mp.matrix(2, 2)
        for i in range(2):
            for j in range(2):
                K[i, j] = sum(mp.mpf(X[k, i]) * mp.mpf(X[k, j]) for k in range(X.shape[0]))
        N = K.copy()
        tau = mp.sqrt((K[0, 0] + K[1, 1]) / 2)
        out = []
        for _ in range(layers):
            both, mean, _, _ = _moments(name, tau, tau, mp.mpf(1))
            m = mean
            s = [mp.sqrt(K[0, 0]), mp.sqrt(K[1, 1])]
            new_k, new_n = mp.matrix(2, 2), mp.matrix(2, 2)
            for i, j in ((0, 0), (1, 1), (0, 1)):
                rho = mp.mpf(1) if i == j else K[i, j] / (s[i] * s[j])
                # sqrt(K_ii) sqrt(K_jj) rounds at 1e-20: the test data have 1 - rho = 0 exactly
                # (duplicate or parallel by a power of 2) or >= 1e-12.
                if abs(1 - rho) < 1e-17:
                    rho = mp.mpf(1)
                e2, e_u, e_v, sdot = _moments(name, s[i], s[j], rho)
                new_k[i, j] = new_k[j, i] = e2 - m * (e_u + e_v) + m * m
                new_n[i, j] = new_n[j, i] = new_k[i, j] + sdot * N[i, j]
            tau = mp.sqrt(both - m * m)
            K, N = new_k, new_n
            out.append((K, N))
        return out


CASES = ("0.9", "0.99", "0.999999", "1-1e-12", "parallel", "duplicate")


def pair_data(case, scale=1.0):
    """Two columns in R^3 with the correlation of ``case`` (norms 1.2 and 0.9 times ``scale``;
    rho = 1: parallel, norms 1.2 and 0.6, exactly since 0.5 x is exact in binary; duplicate:
    equal columns). Float columns; the reference reads their exact values."""
    x = np.array([0.8, -0.5, 0.3])
    x *= 1.2 * scale / np.linalg.norm(x)
    e = np.array([0.1, 0.4, 0.4])
    e -= (e @ x) / (x @ x) * x
    e /= np.linalg.norm(e)
    if case == "duplicate":
        return np.column_stack([x, x])
    if case == "parallel":
        return np.column_stack([x, 0.5 * x])
    delta = 1e-12 if case == "1-1e-12" else 1 - float(case)
    rho = 1 - delta
    # sqrt(1 - rho^2) from delta: 1 - rho^2 would keep 4 digits at delta = 1e-12.
    y = 0.9 * (rho * x / 1.2 + scale * math.sqrt(delta * (2 - delta)) * e)
    return np.column_stack([x, y])


ACTS = {"relu": "relu", "lrelu": "lrelu:a=0.1", "abs": "abs", "tanh": "tanh", "erf": "erf",
        "gelu": "gelu", "sign": "sign", "step": STEP}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", list(ACTS))
def test_close_pairs_match_the_mpmath_reference(name, case):
    X = pair_data(case, TANH_SCALE if name == "tanh" else 1.0)
    has_ntk = name not in ("sign", "step")
    refs = reference(name, case, 3)
    for layers in (1, 2, 3):
        got = exact_kernels(X, [ACTS[name]] * layers, ntk=has_ntk)
        ck_ref, ntk_ref = (np.array(m.tolist(), dtype=float) for m in refs[layers - 1])
        scale = np.abs(np.diag(ck_ref)).max()
        np.testing.assert_allclose(got.ck, ck_ref, rtol=0, atol=TOL * scale,
                                   err_msg=f"CK, L={layers}")
        if has_ntk:
            np.testing.assert_allclose(got.ntk, ntk_ref, rtol=0,
                                       atol=TOL * np.abs(np.diag(ntk_ref)).max(),
                                       err_msg=f"NTK, L={layers}")
        for K in (got.ck, got.ntk) if has_ntk else (got.ck,):
            np.testing.assert_array_equal(K, K.T)
            assert np.linalg.eigvalsh(K).min() >= -1e-13 * np.abs(np.diag(K)).max()
        # The pair sits above the series' reach unless rho = 0.9 at the first layer.
        assert got.close_pairs[0] == (case != "0.9")


def test_the_reference_agrees_with_itself():
    """The three reference methods meet where they overlap: the Gauss-Hermite rule on erf (closed
    form) and the orthant probabilities on sign (a 2-level step, closed form)."""
    with mp.workdps(DPS):
        s1, s2, rho = mp.mpf("1.1"), mp.mpf("0.8"), mp.mpf("0.7")
        _SMOOTH["erf"] = (mp.erf, lambda x: 2 / mp.sqrt(mp.pi) * mp.exp(-x * x))
        try:
            gh = _gauss_hermite("erf", s1, s2, rho)
        finally:
            del _SMOOTH["erf"]
        closed = _closed_form("erf", s1, s2, rho)
        for a, b in zip(gh, closed, strict=True):
            assert abs(a - b) < 1e-13
        sign = 4 * _orthant(0, 0, s1, s2, rho) - 1  # E[sign(u) sign(v)] = 4 P(u, v > 0) - 1
        assert abs(sign - _closed_form("sign", s1, s2, rho)[0]) < 1e-18


# -- near-duplicate data sets ---------------------------------------------------------------------

def _relu_reference_matrix(X, layers):
    """CK_L and NTK_L of relu for any columns, arc-cosine closed forms in mpmath."""
    with mp.workdps(DPS):
        n = X.shape[1]
        K = mp.matrix(n, n)
        for i in range(n):
            for j in range(n):
                K[i, j] = mp.fsum(mp.mpf(a) * mp.mpf(b) for a, b in zip(X[:, i], X[:, j],
                                                                      strict=True))
        N = K.copy()
        tau = mp.sqrt(mp.fsum(K[i, i] for i in range(n)) / n)
        for _ in range(layers):
            m = tau / mp.sqrt(2 * mp.pi)
            s = [mp.sqrt(K[i, i]) for i in range(n)]
            new_k, new_n = mp.matrix(n, n), mp.matrix(n, n)
            for i in range(n):
                for j in range(n):
                    rho = mp.mpf(1) if i == j else max(-1, min(1, K[i, j] / (s[i] * s[j])))
                    rr, _, dd = _relu_moments(s[i], s[j], rho)
                    new_k[i, j] = rr - m * (s[i] + s[j]) / mp.sqrt(2 * mp.pi) + m * m
                    new_n[i, j] = new_k[i, j] + dd * N[i, j]
            tau = tau * mp.sqrt(mp.mpf(1) / 2 - 1 / (2 * mp.pi))
            K, N = new_k, new_n
        return (np.array(K.tolist(), dtype=float), np.array(N.tolist(), dtype=float))


@pytest.mark.parametrize("layers", [1, 3])
def test_long_series_tails(layers):
    """Correlations spread over [0.25, 0.9]: most pairs need far more Hermite terms than the
    shared ones (T_ij up to ~280), which they get from their own tails."""
    rng = np.random.default_rng(5)
    c = np.linspace(0.5, 0.97, 12)
    z = np.linalg.qr(rng.standard_normal((60, 13)))[0]
    X = c * z[:, :1] + np.sqrt(1 - c * c) * z[:, 1:]
    got = exact_kernels(X, ["relu"] * layers)
    assert got.terms[0] > 200 and got.close_pairs[0] == 0
    ck, ntk = _relu_reference_matrix(X, layers)
    np.testing.assert_allclose(got.ck, ck, rtol=0, atol=TOL * np.diag(ck).max())
    np.testing.assert_allclose(got.ntk, ntk, rtol=0, atol=TOL * np.diag(ntk).max())


@st.composite
def near_duplicate_data(draw):
    """3-6 columns in R^4 built from 2-3 base columns: exact copies, rescaled or negated copies,
    and copies perturbed by 10^-k, k in 3..13, so that every kind of close pair occurs."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = rng.standard_normal((4, draw(st.integers(2, 3))))
    cols = [base[:, k] for k in range(base.shape[1])]
    for _ in range(draw(st.integers(1, 3))):
        src = base[:, draw(st.integers(0, base.shape[1] - 1))]
        kind = draw(st.sampled_from(["copy", "scaled", "negated", "perturbed"]))
        if kind == "copy":
            cols.append(src.copy())
        elif kind == "scaled":
            cols.append(draw(st.sampled_from([0.5, 2.0, 3.0])) * src)
        elif kind == "negated":
            cols.append(-src)
        else:
            cols.append(src + 10.0 ** -draw(st.integers(3, 13)) * rng.standard_normal(4))
    return np.column_stack(cols)


@settings(max_examples=15, deadline=None)
@given(near_duplicate_data(), st.integers(1, 3))
def test_near_duplicate_data_sets(X, layers):
    got = exact_kernels(X, ["relu"] * layers)
    ck, ntk = _relu_reference_matrix(X, layers)
    for value, ref in ((got.ck, ck), (got.ntk, ntk)):
        scale = np.abs(np.diag(ref)).max()
        np.testing.assert_allclose(value, ref, rtol=0, atol=TOL * scale)
        np.testing.assert_array_equal(value, value.T)
        assert np.linalg.eigvalsh(value).min() >= -1e-13 * scale


def test_mnist_like_duplicates_in_a_larger_set():
    """Exact duplicates, near-duplicates and scaled copies among 200 ordinary samples: the close
    pairs are found, the kernels are symmetric PSD, and duplicates equal their diagonal."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 200))
    X[:, 1] = X[:, 0]
    X[:, 3] = X[:, 2] + 1e-9 * rng.standard_normal(50)
    X[:, 5] = -X[:, 4]
    got = exact_kernels(X, ["tanh", "relu"])
    assert got.close_pairs[0] >= 3
    for K in (got.ck, got.ntk):
        scale = np.abs(np.diag(K)).max()
        np.testing.assert_array_equal(K, K.T)
        assert np.linalg.eigvalsh(K).min() >= -1e-12 * scale
        assert abs(K[0, 1] - K[0, 0]) <= 1e-13 * scale
        np.testing.assert_allclose(K[1], K[0], rtol=0, atol=1e-13 * scale)
