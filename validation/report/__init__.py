"""Figures for papers (one style), the ``ntklc plot`` command and the reproduction report."""

from validation.report.plot import choose_columns, draw_table, plot_results
from validation.report.style import (
    ONE_COLUMN,
    PALETTE,
    TWO_COLUMN,
    log_axis,
    new_figure,
    paper_style,
    save_figure,
)
from validation.report.summary import SlopeFit, fit_loglog_slope, mean_and_se

__all__ = [
    "ONE_COLUMN",
    "PALETTE",
    "TWO_COLUMN",
    "SlopeFit",
    "choose_columns",
    "draw_table",
    "fit_loglog_slope",
    "log_axis",
    "mean_and_se",
    "new_figure",
    "paper_style",
    "plot_results",
    "save_figure",
]
