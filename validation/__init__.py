"""Experiments, figures, reports and the `ntklc` command line."""

import os

# The `ntklc` command imports this package before anything loads NumPy. Idle OpenBLAS workers
# then yield at once instead of spinning for ~0.1 s on a core that nets' own threads (batch-split
# convolutions, see nets.layers) need; a user's own setting wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


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
from validation.realdata import (
    RealDataResult,
    cnn_features_experiment,
    ntklc_real_experiment,
)
from validation.sweeps import SweepRun, SweepSpec, load_spec, parse_spec, run_sweep
from validation.tasks import EXPERIMENTS, Experiment, Param
from validation.train import TrainResult, train_model

__all__ = [
    "EXPERIMENTS",
    "CompressionSpectra",
    "ConvergenceResult",
    "Experiment",
    "KurtosisResult",
    "Param",
    "RealDataResult",
    "SpectrumResult",
    "SweepRun",
    "SweepSpec",
    "TrainResult",
    "cnn_features_experiment",
    "compression_report",
    "compression_spectra",
    "convergence_experiment",
    "kurtosis_experiment",
    "load_spec",
    "network_activations",
    "ntklc_real_experiment",
    "parse_spec",
    "run_sweep",
    "spectrum_experiment",
    "train_model",
]
