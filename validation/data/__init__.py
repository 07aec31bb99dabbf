"""Data in and out: labelled data sources and their GMM twins, files written atomically, and
exact kernels stored as tiles on disk."""

from validation._lazy import lazy_exports as _lazy_exports

# Every name of the modules' ``__all__`` that one module alone defines and that is not also the
# name of a module here (tests/docs/test_api_reference.py checks this table against them).
_EXPORTS = {
    "atomic_write": "validation.data.atomic",
    "DATA_SETS": "validation.data.datasource",
    "DataSample": "validation.data.datasource",
    "DataSource": "validation.data.datasource",
    "parse_classes": "validation.data.datasource",
    "read_npz": "validation.data.datasource",
    "TrainingSet": "validation.data.datasource",
    "KernelStore": "validation.data.kernel_store",
    "StoredKernel": "validation.data.kernel_store",
    "TILE_DTYPES": "validation.data.kernel_store",
    "tiled_cnn_kernels": "validation.data.kernel_store",
    "tiled_exact_kernels": "validation.data.kernel_store",
    "tiled_kernels": "validation.data.kernel_store",
    "TiledKernels": "validation.data.kernel_store",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
