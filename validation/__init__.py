"""Experiments, figures, reports and the `ntklc` command line."""

import os

# The `ntklc` command imports this package before anything loads NumPy. Idle OpenBLAS workers
# then yield at once instead of spinning for ~0.1 s on a core that nets' own threads (batch-split
# convolutions, see nets.layers) need; a user's own setting wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


from validation.activations import (
    ActivationsResult,
    activation_accuracy,
    activations_experiment,
)
from validation.compression import (
    CompressionSpectra,
    compression_report,
    compression_spectra,
)
from validation.datasource import (
    DataSample,
    DataSource,
    TrainingSet,
    parse_classes,
    read_npz,
)
from validation.experiments import (
    ConvergenceResult,
    KurtosisResult,
    SpectrumResult,
    convergence_experiment,
    data_convergence_errors,
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
    "ActivationsResult",
    "CompressionSpectra",
    "ConvergenceResult",
    "DataSample",
    "DataSource",
    "Experiment",
    "KurtosisResult",
    "Param",
    "RealDataResult",
    "SpectrumResult",
    "SweepRun",
    "SweepSpec",
    "TrainResult",
    "TrainingSet",
    "activation_accuracy",
    "activations_experiment",
    "cnn_features_experiment",
    "compression_report",
    "compression_spectra",
    "convergence_experiment",
    "data_convergence_errors",
    "kurtosis_experiment",
    "load_spec",
    "network_activations",
    "ntklc_real_experiment",
    "parse_classes",
    "parse_spec",
    "read_npz",
    "run_sweep",
    "spectrum_experiment",
    "train_model",
]
