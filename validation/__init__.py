"""Experiments, figures, reports and the `ntklc` command line."""

from validation.experiments import (
    ConvergenceResult,
    SpectrumResult,
    convergence_experiment,
    network_activations,
    spectrum_experiment,
)

__all__ = [
    "ConvergenceResult",
    "SpectrumResult",
    "convergence_experiment",
    "network_activations",
    "spectrum_experiment",
]
