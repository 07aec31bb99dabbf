"""Reports: the paper figure style, the studies that run sweeps (activations, universality,
CNN) with their tables and figures, the demo, ``ntklc plot`` and ``ntklc reproduce``."""

from validation._lazy import lazy_exports as _lazy_exports

# Every name of the modules' ``__all__`` that one module alone defines and that is not also the
# name of a module here (tests/docs/test_api_reference.py checks this table against them).
_EXPORTS = {
    "activations_experiment": "validation.report.activations",
    "ActivationsResult": "validation.report.activations",
    "channel_trends": "validation.report.cnn",
    "cnn_experiment": "validation.report.cnn",
    "cnn_figures": "validation.report.cnn",
    "cnn_sources": "validation.report.cnn",
    "cnn_specs": "validation.report.cnn",
    "cnn_tables": "validation.report.cnn",
    "cnn_verdicts": "validation.report.cnn",
    "CNNResult": "validation.report.cnn",
    "PARTS": "validation.report.cnn",
    "run_demo": "validation.report.demo",
    "plot_accuracy_memory": "validation.report.figures",
    "plot_activations": "validation.report.figures",
    "plot_compress_compare": "validation.report.figures",
    "plot_compression_spectra": "validation.report.figures",
    "plot_convergence": "validation.report.figures",
    "plot_neighbourhood": "validation.report.figures",
    "plot_spectrum": "validation.report.figures",
    "choose_columns": "validation.report.plot",
    "draw_table": "validation.report.plot",
    "log_scales": "validation.report.plot",
    "plot_results": "validation.report.plot",
    "Section": "validation.report.reproduce",
    "SECTIONS": "validation.report.reproduce",
    "color": "validation.report.style",
    "linear_ticks": "validation.report.style",
    "log_axis": "validation.report.style",
    "new_figure": "validation.report.style",
    "ONE_COLUMN": "validation.report.style",
    "PALETTE": "validation.report.style",
    "paper_style": "validation.report.style",
    "save_figure": "validation.report.style",
    "TWO_COLUMN": "validation.report.style",
    "fit_loglog_slope": "validation.report.summary",
    "mean_and_se": "validation.report.summary",
    "SlopeFit": "validation.report.summary",
    "error_figure": "validation.report.universality",
    "trend_summary": "validation.report.universality",
    "universality_experiment": "validation.report.universality",
    "universality_figures": "validation.report.universality",
    "universality_specs": "validation.report.universality",
    "universality_table": "validation.report.universality",
    "UniversalityResult": "validation.report.universality",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
