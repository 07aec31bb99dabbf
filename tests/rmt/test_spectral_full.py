"""compare_full_spectra (one tridiagonalization per matrix) against the dense and Lanczos
computations it replaces: eigvalsh / eigh for all eigenvalues, compare_spectra for the rest."""

import numpy as np
import pytest

from rmt import compare_spectra
from rmt.spectral import compare_full_spectra


def kernel_pair(n, seed):
    """A kernel-like pair: semicircle bulk, four spikes, and a small symmetric perturbation."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, 4)))[0]
    A = rng.standard_normal((n, n))
    K = (A + A.T) / (2 * np.sqrt(n)) + U @ np.diag([9.0, 7.0, 5.0, 4.0]) @ U.T + 3 * np.eye(n)
    E = rng.standard_normal((n, n))
    return K + 0.01 * (E + E.T), K


@pytest.mark.parametrize("n", [60, 500])  # dense and Lanczos operator norms
@pytest.mark.parametrize("overwrite", [False, True])
def test_full_comparison_matches_old_path(n, overwrite):
    K_t, K_r = kernel_pair(n, n)
    old = compare_spectra(K_t, K_r, k=4)
    eigs_t = np.linalg.eigvalsh(K_t)
    eigs_r, vecs_r = np.linalg.eigh(K_r)
    A, B = K_t.copy(), K_r.copy()
    full = compare_full_spectra(A, B, k=4, vectors=2, overwrite=overwrite)
    if not overwrite:
        assert np.array_equal(A, K_t) and np.array_equal(B, K_r)
    new = full.comparison
    assert new.rel_spectral_error == pytest.approx(old.rel_spectral_error, rel=1e-10)
    np.testing.assert_allclose(new.top_eigs_theory, old.top_eigs_theory, rtol=1e-12)
    np.testing.assert_allclose(new.top_eigs_reference, old.top_eigs_reference, rtol=1e-12)
    np.testing.assert_allclose(new.eig_rel_err, old.eig_rel_err, rtol=0, atol=1e-12)
    np.testing.assert_allclose(new.alignment, old.alignment, rtol=0, atol=1e-10)
    np.testing.assert_allclose(full.eigs_theory, eigs_t, rtol=0, atol=1e-12)
    np.testing.assert_allclose(full.eigs_reference, eigs_r, rtol=0, atol=1e-12)
    # Same vectors up to sign, and the sign rule of top_eigenpairs.
    top = vecs_r[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(np.sum(full.vectors_reference * top, axis=0)), 1,
                               atol=1e-12)
    v = full.vectors_reference
    assert np.all(v[np.argmax(np.abs(v), axis=0), [0, 1]] > 0)


def test_more_vectors_than_pairs_and_bad_arguments():
    K_t, K_r = kernel_pair(40, 1)
    full = compare_full_spectra(K_t, K_r, k=1, vectors=3)
    assert full.comparison.top_eigs_theory.shape == (1,)
    assert full.vectors_reference.shape == (40, 3)
    np.testing.assert_allclose(full.vectors_reference.T @ full.vectors_reference, np.eye(3),
                               atol=1e-12)
    with pytest.raises(ValueError, match="k must"):
        compare_full_spectra(K_t, K_r, k=41)
    with pytest.raises(ValueError, match="shapes differ"):
        compare_full_spectra(K_t, K_r[:3, :3])
