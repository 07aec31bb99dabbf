"""Seed summaries: the slope confidence interval has its stated coverage, and the standard
error matches its definition on a hand-checked case."""

from __future__ import annotations

import numpy as np
import pytest

from validation.report.summary import fit_loglog_slope, mean_and_se


def test_mean_and_se_by_hand():
    mean, se = mean_and_se([1.0, 2.0, 3.0, 4.0, float("nan")])
    assert mean == 2.5
    assert se == pytest.approx(np.sqrt(((1.5**2 + 0.5**2) * 2) / 3) / 2)
    assert np.isnan(mean_and_se([1.0])[1])


def test_slope_interval_covers_the_truth_95_percent_of_the_time():
    # y = 3 n^-1/2 with log-normal noise, 4 sizes x 5 seeds, 400 data sets. The binomial
    # standard deviation of the coverage is sqrt(0.95 * 0.05 / 400) = 1.1 %: allow 3.5 %.
    rng = np.random.default_rng(0)
    n = np.repeat([200.0, 400.0, 800.0, 1600.0], 5)
    covered = 0
    for _ in range(400):
        y = 3 * n**-0.5 * np.exp(0.1 * rng.standard_normal(n.size))
        fit = fit_loglog_slope(n, y)
        covered += abs(fit.slope + 0.5) <= fit.ci
    assert abs(covered / 400 - 0.95) <= 0.035


def test_exact_power_law_and_bad_input():
    n = np.array([10.0, 100.0, 1000.0])
    fit = fit_loglog_slope(n, 2 * n**-1.5)
    assert fit.slope == pytest.approx(-1.5, abs=1e-12) and fit.ci == pytest.approx(0, abs=1e-9)
    assert "slope -1.50 ±" in fit.label()
    with pytest.raises(ValueError, match="two or more distinct x"):
        fit_loglog_slope([5.0, 5.0], [1.0, 2.0])
