"""Experiments, figures, reports and the `ntklc` command line."""

import os

# The `ntklc` command imports this package before anything loads NumPy. Idle OpenBLAS workers
# then yield at once instead of spinning for ~0.1 s on a core that nets' own threads (batch-split
# convolutions, see nets.layers) need; a user's own setting wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

# The submodules load on first use of a name (PEP 562): `ntklc --help` and light commands
# do not import NumPy, SciPy, SymPy, Numba, matplotlib or dask.
import importlib

_EXPORTS = {
    "ActivationsResult": "validation.activations",
    "activation_accuracy": "validation.activations",
    "activations_experiment": "validation.activations",
    "CompressionSpectra": "validation.compression",
    "compression_report": "validation.compression",
    "compression_spectra": "validation.compression",
    "DataSample": "validation.datasource",
    "DataSource": "validation.datasource",
    "TrainingSet": "validation.datasource",
    "parse_classes": "validation.datasource",
    "read_npz": "validation.datasource",
    "ConvergenceResult": "validation.experiments",
    "KurtosisResult": "validation.experiments",
    "SpectrumResult": "validation.experiments",
    "convergence_experiment": "validation.experiments",
    "data_convergence_errors": "validation.experiments",
    "kurtosis_experiment": "validation.experiments",
    "network_activations": "validation.experiments",
    "spectrum_experiment": "validation.experiments",
    "spectrum_path": "validation.experiments",
    "storage_options": "validation.experiments",
    "KernelStore": "validation.kernel_store",
    "StoredKernel": "validation.kernel_store",
    "TiledKernels": "validation.kernel_store",
    "tiled_cnn_kernels": "validation.kernel_store",
    "tiled_exact_kernels": "validation.kernel_store",
    "tiled_kernels": "validation.kernel_store",
    "RealDataResult": "validation.realdata",
    "cnn_features_experiment": "validation.realdata",
    "ntklc_real_experiment": "validation.realdata",
    "SweepRun": "validation.sweeps",
    "SweepSpec": "validation.sweeps",
    "load_spec": "validation.sweeps",
    "parse_spec": "validation.sweeps",
    "run_sweep": "validation.sweeps",
    "EXPERIMENTS": "validation.tasks",
    "Experiment": "validation.tasks",
    "Param": "validation.tasks",
    "TrainResult": "validation.train",
    "train_model": "validation.train",
}

__all__ = [
    "EXPERIMENTS",
    "ActivationsResult",
    "CompressionSpectra",
    "ConvergenceResult",
    "DataSample",
    "DataSource",
    "Experiment",
    "KernelStore",
    "KurtosisResult",
    "Param",
    "RealDataResult",
    "SpectrumResult",
    "StoredKernel",
    "SweepRun",
    "SweepSpec",
    "TiledKernels",
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
    "spectrum_path",
    "storage_options",
    "tiled_cnn_kernels",
    "tiled_exact_kernels",
    "tiled_kernels",
    "train_model",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
