"""Data models and spectra: GMM sampler and its statistics, spectral comparison metrics."""

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
    SpectralComparison,
    compare_spectra,
    eigenvalue_histogram,
    operator_norm,
    rel_spectral_error,
    top_eigenpairs,
)

__all__ = [
    "GMMSample",
    "GMMStatistics",
    "GaussianMixture",
    "SpectralComparison",
    "ar1_matrix",
    "compare_spectra",
    "eigenvalue_histogram",
    "estimate_tau0",
    "gaussian_mixture",
    "operator_norm",
    "rel_spectral_error",
    "sample_gmm",
    "top_eigenpairs",
]
