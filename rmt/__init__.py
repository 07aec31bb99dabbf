"""Data models and spectra: GMM sampler and its statistics, the same statistics estimated from
labelled data (and its matched-GMM twin), spectral comparison metrics."""

from rmt.estimate import (
    FittedMixture,
    Preprocessing,
    balanced_indices,
    fit_mixture,
    fit_preprocessing,
    sample_matched_gmm,
    sample_statistics,
)
from rmt.gmm import (
    GaussianMixture,
    GMMSample,
    GMMStatistics,
    ar1_matrix,
    estimate_tau0,
    gaussian_mixture,
    sample_gmm,
)
from rmt.spectral import (
    FullComparison,
    SpectralComparison,
    compare_full_spectra,
    compare_spectra,
    comparison_from_pairs,
    eigenvalue_histogram,
    operator_norm,
    rel_spectral_error,
    subspace_alignment,
    top_eigenpairs,
)

__all__ = [
    "FittedMixture",
    "FullComparison",
    "GMMSample",
    "GMMStatistics",
    "GaussianMixture",
    "Preprocessing",
    "SpectralComparison",
    "ar1_matrix",
    "balanced_indices",
    "compare_full_spectra",
    "compare_spectra",
    "comparison_from_pairs",
    "eigenvalue_histogram",
    "estimate_tau0",
    "fit_mixture",
    "fit_preprocessing",
    "gaussian_mixture",
    "operator_norm",
    "rel_spectral_error",
    "sample_gmm",
    "sample_matched_gmm",
    "sample_statistics",
    "subspace_alignment",
    "top_eigenpairs",
]
