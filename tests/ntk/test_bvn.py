"""Bivariate normal orthant probabilities: Genz's BVNU against a 30-digit mpmath quadrature,
exact degenerate limits, symmetry, reflection, monotonicity, infinities, the Numba call path
and input validation."""

import functools
import math

import mpmath
import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special

from ntk.bvn import bvn_upper, bvn_upper_array

# Absolute error allowed against the reference: Genz's rules are accurate to below 2e-16, and
# the result is a few rounded terms of size <= 1 (ulp(1) / 2 = 1.1e-16 each); the module
# docstring reports a largest error of 3.3e-16 (3 ulp of 0.84) over 39 120 points.
TOL = 5e-16
INF = math.inf
FINITE = st.floats(-8.0, 8.0)
LIMIT = st.one_of(FINITE, FINITE, FINITE, st.sampled_from([-INF, INF]))
SGN = st.sampled_from([1, -1])
# delta log-uniform over [1e-300, 1], uniform over [0, 1] (where the branches switch), and the
# two ends exactly.
DELTA = st.one_of(
    st.floats(-300.0, 0.0).map(lambda e: 10.0**e),
    st.floats(0.0, 1.0),
    st.sampled_from([0.0, 1.0]),
)


@st.composite
def limits(draw):
    """(h, k), with k = h and k = -h (where the transition layer and the degenerate interval
    close up) drawn as often as a free k."""
    h = draw(LIMIT)
    k = draw(st.one_of(LIMIT, st.sampled_from([h, -h])))
    return h, k


def q(x):
    """Q(x) = P(X >= x) in double precision, as the module computes it."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def q_array(x):
    """Q elementwise, for the bulk checks (which allow a few ulp)."""
    return 0.5 * special.erfc(x / np.sqrt(2.0))


def reference(h, k, sgn, delta):
    """P(X >= h, Y >= k) at rho = sgn (1 - delta), to 30 digits, as an mpmath.mpf.

    With r = sqrt(delta (2 - delta)) = sqrt(1 - rho^2), a = 1 - delta = |rho|,

        P = int_h^inf phi(x) Phi((rho x - k) / r) dx.

    For a < r (delta > 0.29) the step Phi(...) has width r / a >= 1 in x and the integral is
    taken as it stands, cut at the step's centre c = k / rho and at 0. Otherwise the step is
    narrow (width down to 1e-150): it is replaced by its limit 1{sgn (x - c) > 0}, whose
    integral is a normal probability, and the difference Phi(t) - 1{t > 0}, with
    t = sgn a (x - c) / r, is integrated in t: there it is a Gaussian tail of width 1, times
    phi(x) of width a / r >= 1. Cutting x at 13 and t at +-12 drops less than 2e-33.
    """
    with mpmath.workdps(30):
        h, k, delta = mpmath.mpf(h), mpmath.mpf(k), mpmath.mpf(delta)
        if h == INF or k == INF:
            return mpmath.mpf(0)
        if h == -INF:
            return mpmath.ncdf(-k)
        if k == -INF:
            return mpmath.ncdf(-h)
        a = 1 - delta
        r = mpmath.sqrt(delta * (2 - delta))
        rho = sgn * a
        # Gauss-Legendre: the integrands are analytic on finite panels, where it converges
        # twice as fast as the default tanh-sinh.
        quad = functools.partial(mpmath.quad, method="gauss-legendre")
        if a < r:
            if h >= 13:
                return mpmath.mpf(0)
            cuts = sorted({h} | {x for x in (0, k / rho if rho else h) if h < x < 13})
            return quad(lambda x: mpmath.npdf(x) * mpmath.ncdf((rho * x - k) / r), [*cuts, 13])
        c = k / rho
        if sgn > 0:
            step = mpmath.ncdf(-max(h, c))
        else:
            # P(h <= X <= c) as an integral: a difference of cdfs would lose its digits for
            # short intervals even at 30 digits.
            step = quad(mpmath.npdf, [h, c]) if h < c else mpmath.mpf(0)
        if r == 0:
            return step
        s = r / a

        def phi_x(t):
            return mpmath.npdf(c + sgn * s * t) * s

        # x >= h is t >= u for sgn = +1 and t <= -u for sgn = -1.
        u = (h - c) / s
        lo, hi = (max(u, -12), 12) if sgn > 0 else (-12, min(-u, 12))
        total = step
        if max(lo, 0) < hi:
            total -= quad(lambda t: phi_x(t) * mpmath.ncdf(-t), [max(lo, 0), hi])
        if lo < min(hi, 0):
            total += quad(lambda t: phi_x(t) * mpmath.ncdf(t), [lo, min(hi, 0)])
        return total


@given(limits(), SGN, DELTA)
def test_matches_mpmath(hk, sgn, delta):
    h, k = hk
    p = bvn_upper(h, k, sgn, delta)
    assert abs(p - float(reference(h, k, sgn, delta))) <= TOL, p


# Both sides of the branch points |rho| = 0.3, 0.75, 0.925 and the ends of delta.
@pytest.mark.parametrize("delta", [1.0, 0.7000001, 0.7, 0.25000001, 0.25, 0.07500001, 0.075,
                                   1e-8, 1e-300, 5e-324])
@pytest.mark.parametrize("sgn", [1, -1])
@pytest.mark.parametrize("hk", [(-3.0, -3.0), (1.5, -1.5), (0.3, -2.2), (6.0, 6.5)])
def test_matches_mpmath_at_branch_points(hk, sgn, delta):
    h, k = hk
    p = bvn_upper(h, k, sgn, delta)
    assert abs(p - float(reference(h, k, sgn, delta))) <= TOL, p


def assert_degenerate(h, k):
    # rho = +1: X = Y. Bit for bit the normal tail, as documented.
    assert bvn_upper(h, k, 1, 0.0) == q(max(h, k))
    # rho = -1: P(h <= X <= -k), relatively accurate even where it is a small difference of
    # probabilities near 1 (Q(h) - Q(-k) would lose 9 digits at h = -6, k = 5). A short
    # interval loses digits however it is written as a difference of cdfs: about
    # eps Q / (phi(h) width) <= eps / width of them with the better of tails and erf.
    expected = float(reference(h, k, -1, 0.0))
    p = bvn_upper(h, k, -1, 0.0)
    width = -k - h
    assert abs(p - expected) <= (1e-14 + 1e-15 / max(width, 1e-300)) * expected, (p, expected)


@given(FINITE, FINITE)
def test_degenerate_correlation(h, k):
    assert_degenerate(h, k)


# Intervals [h, -k] deep in one tail, across 0, and short near 0 and near Q = 1/4.
@pytest.mark.parametrize("hk", [(-6.0, 5.0), (5.0, -6.0), (-8.0, 7.9), (7.9, -8.0), (-0.1, -0.2),
                                (-3.0, 2.0), (2.0, -3.0), (0.0, -0.001953125), (0.1, -0.2),
                                (0.6, -0.7), (-0.7, 0.6)])
def test_degenerate_correlation_in_the_tails(hk):
    assert_degenerate(*hk)


@given(limits(), SGN, DELTA)
def test_symmetric_in_h_and_k(hk, sgn, delta):
    h, k = hk
    assert bvn_upper(h, k, sgn, delta) == bvn_upper(k, h, sgn, delta)


@given(limits(), DELTA)
def test_reflection(hk, delta):
    # P(X >= h, Y >= k; -rho) = P(X >= h) - P(X >= h, -Y > -k; -rho) = Q(h) - P(h, -k; rho).
    h, k = hk
    lhs = bvn_upper(h, k, -1, delta)
    assert abs(lhs - (q(h) - bvn_upper(h, -k, 1, delta))) <= 2 * TOL


@given(limits(), FINITE, SGN, DELTA)
def test_monotone_in_each_limit(hk, other, sgn, delta):
    h, k = hk
    lo, hi = min(h, other), max(h, other)
    assert bvn_upper(lo, k, sgn, delta) >= bvn_upper(hi, k, sgn, delta) - 2 * TOL
    assert bvn_upper(k, lo, sgn, delta) >= bvn_upper(k, hi, sgn, delta) - 2 * TOL


@given(LIMIT, SGN, DELTA)
def test_limits_at_infinity(h, sgn, delta):
    assert bvn_upper(h, INF, sgn, delta) == 0.0
    assert bvn_upper(INF, h, sgn, delta) == 0.0
    assert bvn_upper(h, -INF, sgn, delta) == q(h)
    assert bvn_upper(-INF, h, sgn, delta) == q(h)
    # Beyond |h| = 40 every probability has rounded to its limit; just inside, it is there too.
    assert bvn_upper(h, 40.5, sgn, delta) == 0.0
    assert bvn_upper(-1e300, h, sgn, delta) == q(h)
    assert abs(bvn_upper(-39.5, h, sgn, delta) - q(h)) <= TOL
    assert bvn_upper(39.5, h, sgn, delta) <= 1e-300


def test_properties_in_bulk():
    # Symmetry to the bit, reflection and monotonicity on many cheap points (no reference).
    rng = np.random.default_rng(1)
    n = 20_000
    h, k, step = rng.uniform(-8, 8, (3, n))
    k[: n // 4] = -h[: n // 4]
    sgn = rng.choice([-1.0, 1.0], n)
    delta = np.where(rng.random(n) < 0.5, 10.0 ** rng.uniform(-300, 0, n), rng.random(n))
    delta[:100] = 0.0
    p = bvn_upper_array(h, k, sgn, delta)
    np.testing.assert_array_equal(p, bvn_upper_array(k, h, sgn, delta))
    np.testing.assert_allclose(bvn_upper_array(h, k, -1, delta),
                               q_array(h) - bvn_upper_array(h, -k, 1, delta), rtol=0, atol=2 * TOL)
    further = np.abs(step) / 4
    assert np.all(bvn_upper_array(h + further, k, sgn, delta) <= p + 2 * TOL)
    assert np.all(bvn_upper_array(h, k + further, sgn, delta) <= p + 2 * TOL)
    assert np.all((p >= 0) & (p <= np.minimum(q_array(h), q_array(k)) + TOL))


def test_nan_in_scalar_gives_nan():
    assert math.isnan(bvn_upper(math.nan, 0.0, 1, 0.5))
    assert math.isnan(bvn_upper(0.0, 0.0, -1, math.nan))


@numba.njit
def _sum_over_pairs(h, k, sgn, delta):
    acc = 0.0
    for i in range(h.shape[0]):
        acc += bvn_upper(h[i], k[i], sgn[i], delta[i])
    return acc


def test_callable_from_numba():
    rng = np.random.default_rng(0)
    h, k = rng.uniform(-4, 4, (2, 50))
    sgn = rng.choice([-1.0, 1.0], 50)
    delta = 10.0 ** rng.uniform(-20, 0, 50)
    expected = math.fsum(bvn_upper(*args) for args in zip(h, k, sgn, delta, strict=True))
    assert abs(_sum_over_pairs(h, k, sgn, delta) - expected) <= 50 * TOL


def test_array_wrapper_broadcasts():
    h = np.linspace(-3, 3, 7)[:, None]
    k = np.array([-1.0, 0.5, INF])
    delta = np.array([0.0, 1e-12, 0.5])
    out = bvn_upper_array(h, k, -1, delta)
    assert out.shape == (7, 3)
    assert out.dtype == np.float64
    expected = [[bvn_upper(a, b, -1, d) for b, d in zip(k, delta, strict=True)] for a in h[:, 0]]
    np.testing.assert_array_equal(out, expected)
    assert bvn_upper_array(0.0, 0.0, 1, 1.0).shape == ()
    assert bvn_upper_array(0.0, 0.0, 1, 1.0) == 0.25


@pytest.mark.parametrize(("args", "message"), [
    ((0.0, 0.0, 0, 0.5), "sgn must be -1 or \\+1"),
    ((0.0, 0.0, [1, 0.5], 0.5), "sgn must be -1 or \\+1"),
    ((0.0, 0.0, math.nan, 0.5), "sgn must be -1 or \\+1"),
    ((0.0, 0.0, 1, -1e-300), "delta must be in \\[0, 1\\]"),
    ((0.0, 0.0, 1, 1.5), "delta must be in \\[0, 1\\]"),
    ((0.0, 0.0, 1, math.nan), "delta must be in \\[0, 1\\]"),
    ((math.nan, 0.0, 1, 0.5), "h contains NaN"),
    ((0.0, [0.0, math.nan], 1, 0.5), "k contains NaN"),
    ((np.zeros(2), np.zeros(3), 1, 0.5), "do not broadcast"),
])
def test_array_wrapper_rejects_invalid_input(args, message):
    with pytest.raises(ValueError, match=message):
        bvn_upper_array(*args)
