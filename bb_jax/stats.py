"""Small statistics helpers (no SciPy): mean with a Student-t 95% confidence interval."""

from __future__ import annotations

import math

import numpy as np

# two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def t975(df: int) -> float:
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_ci95(values) -> tuple[float, float]:
    """(mean, half-width of the 95% CI of the mean); half-width NaN for fewer than 2 values."""
    x = np.asarray(values, np.float64).ravel()
    if x.size == 0:
        return math.nan, math.nan
    if x.size < 2:
        return float(x.mean()), math.nan
    return float(x.mean()), float(t975(x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
