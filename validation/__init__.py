"""Everything above the library: experiments, sweeps, reports, the ``ntklc`` command line and
the property-testing kit.

Subpackages, each importing only the ones listed after it (an import-linter contract):

* :mod:`validation.cli`: the ``ntklc`` command line, one module per command group;
* :mod:`validation.report`: figure style, studies made of sweeps, ``plot``, ``reproduce``;
* :mod:`validation.sweeps`: grids of tasks on processes or dask, cached task by task;
* :mod:`validation.experiments`: the experiments and the registry of sweep tasks;
* :mod:`validation.data` and :mod:`validation.kit`: data sources and stored kernels; the
  Hypothesis strategies, oracles and checks for testing your own solver.

The names below are the most used ones, importable from ``validation`` directly.
"""

import os

# The `ntklc` command imports this package before anything loads NumPy. Idle OpenBLAS workers
# then yield at once instead of spinning for ~0.1 s on a core that nets' own threads (batch-split
# convolutions, see nets.layers) need; a user's own setting wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from validation._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "ActivationsResult": "validation.report.activations",
    "activation_accuracy": "validation.experiments.activations",
    "activations_experiment": "validation.report.activations",
    "CompressionSpectra": "validation.experiments.compression",
    "compression_report": "validation.experiments.compression",
    "compression_spectra": "validation.experiments.compression",
    "DataSample": "validation.data.datasource",
    "DataSource": "validation.data.datasource",
    "TrainingSet": "validation.data.datasource",
    "parse_classes": "validation.data.datasource",
    "read_npz": "validation.data.datasource",
    "ConvergenceResult": "validation.experiments.spectra",
    "KurtosisResult": "validation.experiments.spectra",
    "SpectrumResult": "validation.experiments.spectra",
    "convergence_experiment": "validation.experiments.spectra",
    "data_convergence_errors": "validation.experiments.spectra",
    "kurtosis_experiment": "validation.experiments.spectra",
    "network_activations": "validation.experiments.spectra",
    "spectrum_experiment": "validation.experiments.spectra",
    "spectrum_path": "validation.experiments.spectra",
    "storage_options": "validation.experiments.spectra",
    "KernelStore": "validation.data.kernel_store",
    "StoredKernel": "validation.data.kernel_store",
    "TiledKernels": "validation.data.kernel_store",
    "tiled_cnn_kernels": "validation.data.kernel_store",
    "tiled_exact_kernels": "validation.data.kernel_store",
    "tiled_kernels": "validation.data.kernel_store",
    "RealDataResult": "validation.experiments.realdata",
    "cnn_features_experiment": "validation.experiments.realdata",
    "ntklc_real_experiment": "validation.experiments.realdata",
    "SweepRun": "validation.sweeps",
    "SweepSpec": "validation.sweeps",
    "load_spec": "validation.sweeps",
    "parse_spec": "validation.sweeps",
    "run_sweep": "validation.sweeps",
    "EXPERIMENTS": "validation.experiments.tasks",
    "Experiment": "validation.experiments.tasks",
    "Param": "validation.experiments.tasks",
    "TrainResult": "validation.experiments.train",
    "train_model": "validation.experiments.train",
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


__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
