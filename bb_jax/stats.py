"""Small statistics helpers over seeds, from scipy.stats: a mean with its Student-t 95%
confidence interval, and the paired comparison of two configurations trained on the same seeds."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats


def mean_ci95(values) -> tuple[float, float]:
    """(mean, half-width of the 95% CI of the mean); half-width NaN for fewer than 2 values."""
    x = np.asarray(values, np.float64).ravel()
    if x.size == 0:
        return math.nan, math.nan
    if x.size < 2:
        return float(x.mean()), math.nan
    half = stats.t.ppf(0.975, x.size - 1) * stats.sem(x)
    return float(x.mean()), float(half)


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Mean of (a - b) over shared seeds, its 95% CI half-width and the paired t-test p-value
    (two-sided). `significant`: the whole CI lies above zero."""

    mean: float
    ci95: float
    p_value: float
    n: int

    @property
    def significant(self) -> bool:
        return self.n >= 2 and math.isfinite(self.ci95) and self.mean - self.ci95 > 0

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci95": self.ci95, "p_value": self.p_value, "n": self.n,
                "significant": self.significant}


def paired_difference(a, b) -> PairedDifference:
    """Compare a and b (same length, one value per shared seed); pairs with a NaN are left out
    of the figures, so callers count failed seeds themselves."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    mean, half = mean_ci95(diff)
    if diff.size >= 2 and np.ptp(diff) > 0:
        p_value = float(stats.ttest_rel(a[keep], b[keep]).pvalue)
    else:
        p_value = math.nan
    return PairedDifference(mean, half, p_value, int(diff.size))
