"""Summaries over seeds: mean and standard error, and log-log slope fits with a confidence
interval. Figures and reports draw their error bands and fitted slopes from here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ntklc.errors import InputError

__all__ = ["SlopeFit", "fit_loglog_slope", "mean_and_se"]


def mean_and_se(values) -> tuple[float, float]:
    """Mean and standard error of the mean (``nan`` SE for fewer than two finite values)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    se = float(np.std(v, ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
    return float(np.mean(v)), se


@dataclass(frozen=True)
class SlopeFit:
    """Least-squares fit log y = intercept + slope log x over every (x, seed) point.

    Attributes:
        slope, intercept: the fit.
        ci: half-width of the two-sided ``level`` confidence interval of the slope
            (Student t with points - 2 degrees of freedom; ``nan`` with fewer than 3 points).
        level: the confidence level.
        points: number of points fitted.
    """

    slope: float
    intercept: float
    ci: float
    level: float
    points: int

    def label(self) -> str:
        """``slope -0.51 ± 0.03`` (the CI half-width; omitted when undefined)."""
        if np.isfinite(self.ci):
            return f"slope {self.slope:.2f} ± {self.ci:.2f}"
        return f"slope {self.slope:.2f}"


def fit_loglog_slope(x, y, level: float = 0.95) -> SlopeFit:
    """Fit a power law y ~ x^slope to positive points (one point per x and seed).

    Args:
        x, y: (m,) positive values; non-positive or non-finite pairs are dropped.
        level: confidence level of ``ci``.

    Raises:
        InputError: fewer than two points with distinct x remain.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    if np.unique(lx).size < 2:
        raise InputError("a slope needs points at two or more distinct x")
    fit = stats.linregress(lx, ly)
    m = lx.size
    ci = (float(stats.t.ppf(0.5 + level / 2, m - 2) * fit.stderr) if m > 2 else float("nan"))
    return SlopeFit(float(fit.slope), float(fit.intercept), ci, level, m)
