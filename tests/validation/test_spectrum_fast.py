"""spectrum_experiment's spectra (one tridiagonalization per kernel, in place) against the
computations it replaced, kept here as the reference: compare_spectra on the two kernels, a
full eigh of the reference and eigvalsh of the equivalent."""

import numpy as np
import pytest

from ntk.empirical import empirical_kernels
from ntk.equivalents import ck_equivalent, ntk_equivalent
from ntk.exact import exact_kernels
from rmt import compare_spectra, gaussian_mixture, sample_gmm
from validation.experiments.spectra import network_activations, spectrum_experiment


def old_spectra(n, acts, kernel, reference, seed=0, width=200, draws=3, k=5):
    g = sample_gmm(gaussian_mixture(n // 2), n, seed=seed)
    equivalent = (ck_equivalent if kernel == "ck" else ntk_equivalent)(g.X, g.stats, acts)
    if reference == "exact":
        ex = exact_kernels(g.X, acts, g.stats.tau0, ntk=kernel == "ntk")
        ref = ex.ck if kernel == "ck" else ex.ntk
    else:
        emp = empirical_kernels(g.X, acts, width=width, draws=draws, weights="gaussian",
                                seed=seed + 1, tau0=g.stats.tau0, ntk=kernel == "ntk")
        ref = emp.ck if kernel == "ck" else emp.ntk
    comparison = compare_spectra(equivalent, ref, k=k)
    eigs_ref, vecs_ref = np.linalg.eigh(ref)
    return comparison, np.linalg.eigvalsh(equivalent), eigs_ref, vecs_ref[:, ::-1][:, :2]


@pytest.mark.parametrize(("n", "kernel", "reference"), [
    (600, "ck", "exact"), (500, "ntk", "exact"), (500, "ck", "mc"), (400, "ntk", "mc")])
def test_spectrum_matches_old_path(n, kernel, reference):
    acts = network_activations("relu", 2)
    r = spectrum_experiment(acts, n, kernel=kernel, reference=reference, width=200, draws=3)
    old, eigs_t, eigs_r, vecs_r = old_spectra(n, acts, kernel, reference)
    new = r.comparison
    assert new.rel_spectral_error == pytest.approx(old.rel_spectral_error, rel=1e-10)
    np.testing.assert_allclose(new.top_eigs_theory, old.top_eigs_theory, rtol=1e-12)
    np.testing.assert_allclose(new.top_eigs_reference, old.top_eigs_reference, rtol=1e-12)
    np.testing.assert_allclose(new.eig_rel_err, old.eig_rel_err, rtol=0, atol=1e-12)
    np.testing.assert_allclose(new.alignment, old.alignment, rtol=0, atol=1e-10)
    np.testing.assert_allclose(r.eigs_theory, eigs_t, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.eigs_reference, eigs_r, rtol=0, atol=1e-12)
    # Eigenvectors are defined up to sign; the new ones have their largest entry positive.
    np.testing.assert_allclose(np.abs(np.sum(r.vectors_reference * vecs_r, axis=0)), 1,
                               atol=1e-10)


def test_lanczos_path_reports_the_dense_numbers():
    """path="lanczos" (the equivalent as an operator, only the top of the spectra) gives the
    dense path's error and top eigenpairs, and says which path ran."""
    from validation.experiments.spectra import spectrum_experiment

    dense = spectrum_experiment(["relu", "tanh"], 700, path="dense")
    lanczos = spectrum_experiment(["relu", "tanh"], 700, path="lanczos")
    assert lanczos.eigs_theory is None and lanczos.as_dict()["path"] == "lanczos"
    assert dense.as_dict()["path"] == "dense"
    a, b = dense.comparison, lanczos.comparison
    assert b.rel_spectral_error == pytest.approx(a.rel_spectral_error, rel=1e-8)
    np.testing.assert_allclose(b.top_eigs_theory, a.top_eigs_theory, rtol=1e-10)
    np.testing.assert_allclose(b.top_eigs_reference, a.top_eigs_reference, rtol=1e-10)
    assert b.alignment[0] == pytest.approx(a.alignment[0], abs=1e-8)
    np.testing.assert_allclose(np.abs(lanczos.vectors_reference[:, 0]),
                               np.abs(dense.vectors_reference[:, 0]), atol=1e-8)
    with pytest.raises(ValueError, match="path must be one of"):
        spectrum_experiment(["relu"], 100, path="fast")
