"""Spectral metrics: Lanczos paths agree with dense linear algebra."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmt import (
    compare_spectra,
    eigenvalue_histogram,
    operator_norm,
    rel_spectral_error,
    subspace_alignment,
)
from rmt.spectral import top_eigenpairs


def random_symmetric(n, seed):
    A = np.random.default_rng(seed).standard_normal((n, n))
    return (A + A.T) / 2


@pytest.mark.parametrize("n", [50, 600])  # dense and Lanczos paths
def test_operator_norm_matches_numpy(n):
    A = random_symmetric(n, 0)
    assert operator_norm(A) == pytest.approx(np.linalg.norm(A, 2), rel=1e-9)


@pytest.mark.parametrize("n", [60, 700])
def test_top_eigenpairs_match_eigh(n):
    # Kernel-like: a semicircle bulk plus separated spikes (as for GMM kernels).
    U = np.linalg.qr(np.random.default_rng(2).standard_normal((n, 4)))[0]
    A = random_symmetric(n, 1) / np.sqrt(n) + U @ np.diag([9.0, 7.0, 5.0, 4.0]) @ U.T
    vals, vecs = top_eigenpairs(A, 4)
    ref_vals, ref_vecs = np.linalg.eigh(A)
    np.testing.assert_allclose(vals, ref_vals[::-1][:4], rtol=1e-9)
    np.testing.assert_allclose(np.abs(np.sum(vecs * ref_vecs[:, ::-1][:, :4], axis=0)), 1,
                               atol=1e-8)


def test_shift_by_identity():
    # Ktilde = K + delta I: every eigenvalue moves by delta, eigenvectors are unchanged.
    K = random_symmetric(80, 2) + 20 * np.eye(80)
    delta = 0.3
    cmp = compare_spectra(K + delta * np.eye(80), K, k=3)
    assert cmp.rel_spectral_error == pytest.approx(delta / np.linalg.norm(K, 2), rel=1e-12)
    np.testing.assert_allclose(cmp.top_eigs_theory - cmp.top_eigs_reference, delta, rtol=1e-9)
    np.testing.assert_allclose(cmp.alignment, 1, atol=1e-10)
    assert set(cmp.as_dict()) == {"rel_spectral_error", "top_eigs_theory",
                                  "top_eigs_reference", "eig_rel_err", "alignment"}


def test_histogram_and_errors():
    vals, density, edges = eigenvalue_histogram(np.diag([1.0, 2.0, 3.0]), bins=3)
    assert vals.tolist() == [1.0, 2.0, 3.0] and len(edges) == 4
    assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="square"):
        operator_norm(np.ones((2, 3)))
    with pytest.raises(ValueError, match="shapes differ"):
        rel_spectral_error(np.eye(2), np.eye(3))
    with pytest.raises(ValueError, match="k must"):
        top_eigenpairs(np.eye(3), 4)


def _orthonormal(rng, n, k):
    return np.linalg.qr(rng.standard_normal((n, k)))[0]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(5, 40), st.integers(1, 4))
def test_subspace_alignment_invariants(seed, n, k):
    rng = np.random.default_rng(seed)
    U = _orthonormal(rng, n, k)
    R = _orthonormal(rng, k, k)
    # Any basis of the same subspace aligns fully; its orthogonal complement not at all.
    assert subspace_alignment(U, U @ R) == pytest.approx(1.0, abs=1e-12)
    if 2 * k <= n:
        Q = np.linalg.qr(np.column_stack([U, rng.standard_normal((n, k))]))[0]
        assert subspace_alignment(U, Q[:, k:]) == pytest.approx(0.0, abs=1e-12)
    V = _orthonormal(rng, n, k)
    assert 0.0 <= subspace_alignment(U, V) <= 1.0 + 1e-12
    with pytest.raises(ValueError, match="same shape"):
        subspace_alignment(U, V[:, :0] if k > 1 else V[:-1])


def test_operators_match_the_dense_path_at_n_2000():
    """The equivalent as an operator against the exact kernel (dense), compared by Lanczos
    only, equals the dense comparison: the error to 1e-8 relative (the difference's norm
    from eigvalsh of the formed difference), the top eigenvalues to 1e-10."""
    from ntk import ck_equivalent, exact_kernels
    from rmt import gaussian_mixture, sample_gmm

    g = sample_gmm(gaussian_mixture(1000), 2000, seed=1)
    exact = exact_kernels(g.X, ["relu", "tanh"], g.stats.tau0, ntk=False).ck
    dense = ck_equivalent(g.X, g.stats, ["relu", "tanh"])
    op = ck_equivalent(g.X, g.stats, ["relu", "tanh"], operator=True)
    want = (np.max(np.abs(np.linalg.eigvalsh(exact - dense)))
            / np.max(np.abs(np.linalg.eigvalsh(exact))))
    assert rel_spectral_error(op, exact) == pytest.approx(want, rel=1e-8)
    got = compare_spectra(op, exact, k=3)
    top_dense = np.linalg.eigvalsh(dense)[::-1][:3]
    np.testing.assert_allclose(got.top_eigs_theory, top_dense, rtol=1e-10)
    np.testing.assert_allclose(got.top_eigs_reference, np.linalg.eigvalsh(exact)[::-1][:3],
                               rtol=1e-10)
    assert got.rel_spectral_error == pytest.approx(want, rel=1e-8)
    # The top eigenvector is well separated: its alignment is the dense one's.
    assert got.alignment[0] == pytest.approx(compare_spectra(dense, exact, k=1).alignment[0],
                                             abs=1e-8)


def test_small_operators_and_bad_sizes():
    from scipy.sparse.linalg import aslinearoperator

    K = random_symmetric(30, 2)
    op = aslinearoperator(K)
    assert operator_norm(op) == pytest.approx(operator_norm(K), rel=1e-12)
    np.testing.assert_allclose(top_eigenpairs(op, 3)[0], top_eigenpairs(K, 3)[0], rtol=1e-12)
    with pytest.raises(ValueError, match="square"):
        rel_spectral_error(aslinearoperator(np.ones((3, 4))), K[:3, :3])


def test_known_reference_norm_gives_the_same_error():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((50, 50))
    A = A @ A.T
    B = A + 0.1 * np.diag(rng.standard_normal(50))
    top = np.linalg.eigvalsh(A)[-1]
    assert rel_spectral_error(B, A, ref_norm=top) == pytest.approx(rel_spectral_error(B, A),
                                                                  rel=1e-12)
