"""Experiments, figures, reports and the `ntklc` command line."""

from validation.compression import (
    CompressionSpectra,
    compression_report,
    compression_spectra,
)
from validation.experiments import (
    ConvergenceResult,
    KurtosisResult,
    SpectrumResult,
    convergence_experiment,
    kurtosis_experiment,
    network_activations,
    spectrum_experiment,
)

__all__ = [
    "CompressionSpectra",
    "ConvergenceResult",
    "KurtosisResult",
    "SpectrumResult",
    "compression_report",
    "compression_spectra",
    "convergence_experiment",
    "kurtosis_experiment",
    "network_activations",
    "spectrum_experiment",
]
