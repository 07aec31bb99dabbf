"""Lanczos, Hutchinson and SLQ on operators with known spectra."""

import numpy as np
import pytest
from hypothesis import given

from solvers.hessian import extreme_eigenpairs, hutchinson_trace, slq_density, top_ritz_pairs
from validation.kit.checks import check_trace_estimator
from validation.kit.oracles import dense_spectrum
from validation.kit.strategies import symmetric_operator, symmetric_operators


def known_operator(n=200, seed=0):
    """A Hessian-like spectrum: outliers 50, 30, 20, 10, 5 above a bulk in [-1, 1]."""
    rng = np.random.default_rng(seed)
    spectrum = np.concatenate([[50.0, 30.0, 20.0, 10.0, 5.0], rng.uniform(-1, 1, n - 5)])
    op = symmetric_operator(spectrum, seed=seed, kind="outliers")
    return op, op.eigenvalues


def test_lanczos_matches_dense_eigh():
    H, spectrum = known_operator()
    vals, vecs = extreme_eigenpairs(H.matvec, H.n, k=5)
    np.testing.assert_allclose(vals, spectrum[::-1][:5], rtol=1e-10)
    np.testing.assert_allclose(H.matvec(vecs), vecs * vals, atol=1e-8)
    low, _ = extreme_eigenpairs(H.matvec, H.n, k=3, which="SA")
    np.testing.assert_allclose(low, spectrum[:3], rtol=1e-8, atol=1e-10)


def test_hutchinson_within_its_standard_error():
    H, spectrum = known_operator()
    estimate, se = hutchinson_trace(H.matvec, H.n, samples=400, seed=1)
    # A fixed seed; 4 standard errors leave a 6e-5 chance of a false failure.
    assert abs(estimate - spectrum.sum()) < 4 * se
    assert se > 0


def test_slq_counts_eigenvalues():
    H, spectrum = known_operator()
    density = slq_density(H.matvec, H.n, steps=40, probes=30, seed=2)
    assert density.weights.sum() == pytest.approx(H.n, rel=1e-12)
    # The outliers are found as nodes; counts below thresholds within a few eigenvalues
    # (each probe's quadrature is exact for polynomials of degree < 2 steps).
    for x in (-0.5, 0.0, 0.5, 7.0):
        assert abs(density.cumulative(x) - np.sum(spectrum <= x)) < 12
    assert np.min(np.abs(density.nodes - 50.0)) < 1e-6
    grid = np.linspace(-2, 55, 500)
    assert np.trapezoid(density.smoothed(grid, 0.3), grid) == pytest.approx(200, rel=0.02)


def test_bad_input():
    with pytest.raises(ValueError, match="which"):
        extreme_eigenpairs(lambda v: v, 10, which="LM")
    with pytest.raises(ValueError, match="k < n"):
        extreme_eigenpairs(lambda v: v, 3, k=3)
    with pytest.raises(ValueError, match="2 samples"):
        hutchinson_trace(lambda v: v, 3, samples=1)
    with pytest.raises(ValueError, match="positive"):
        slq_density(lambda v: v, 3, steps=0)


def test_ritz_pairs_converge_to_the_top_eigenpairs():
    H, spectrum = known_operator()
    vals, vecs = top_ritz_pairs(H.matvec, H.n, k=3, steps=40)
    # Well-separated top eigenvalues (50, 30, 20 against a bulk in [-1, 1]).
    np.testing.assert_allclose(vals, spectrum[::-1][:3], rtol=1e-10)
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(H.matvec(vecs), vecs * vals, atol=1e-6)
    with pytest.raises(ValueError, match="k <= steps"):
        top_ritz_pairs(H.matvec, H.n, k=5, steps=4)


@given(op=symmetric_operators(min_n=3, max_n=30))
def test_lanczos_extremes_on_drawn_spectra(op):
    # Clustered and degenerate spectra included: the extreme eigenvalues are still found.
    want = dense_spectrum(op.matvec, op.n)
    scale = max(1.0, float(np.abs(want).max()))
    top, _ = extreme_eigenpairs(op.matvec, op.n, k=1)
    low, _ = extreme_eigenpairs(op.matvec, op.n, k=1, which="SA")
    assert abs(top[0] - want[-1]) <= 1e-8 * scale
    assert abs(low[0] - want[0]) <= 1e-8 * scale


def test_hutchinson_passes_the_kit_check():
    check_trace_estimator(lambda matvec, n, rng: hutchinson_trace(
        matvec, n, samples=4, seed=int(rng.integers(2**32)))[0])
