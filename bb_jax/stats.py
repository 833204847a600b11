"""Small statistics helpers over seeds, from scipy.stats: a mean with its Student-t 95%
confidence interval, the paired comparison of two configurations trained on the same seeds, and
Holm's step-down adjustment when several candidates are compared with one control."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats


def mean_ci95(values, level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the `level` CI of the mean, 95% by default); half-width NaN for
    fewer than 2 values."""
    x = np.asarray(values, np.float64).ravel()
    if x.size == 0:
        return math.nan, math.nan
    if x.size < 2:
        return float(x.mean()), math.nan
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * stats.sem(x)
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


def paired_difference(a, b, level: float = 0.95) -> PairedDifference:
    """Compare a and b (same length, one value per shared seed); pairs with a NaN are left out
    of the figures, so callers count failed seeds themselves. `ci95` is the half-width at
    `level` (95% by default; 1 - 0.05/k for a Bonferroni interval over k comparisons)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    mean, half = mean_ci95(diff, level)
    if diff.size >= 2 and np.ptp(diff) > 0:
        p_value = float(stats.ttest_rel(a[keep], b[keep]).pvalue)
    else:
        p_value = math.nan
    return PairedDifference(mean, half, p_value, int(diff.size))


def holm(p_values) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values for k tests of one family: reject test i at
    family-wise level alpha where its adjusted p-value is <= alpha. A NaN p-value (too few
    seeds, or no spread) counts as 1 and stays NaN in the output. Shape: (k,) -> (k,)."""
    p = np.asarray(p_values, np.float64).ravel()
    filled = np.where(np.isfinite(p), p, 1.0)
    k = filled.size
    order = np.argsort(filled, kind="stable")
    steps = np.maximum.accumulate((k - np.arange(k)) * filled[order])
    adjusted = np.empty(k)
    adjusted[order] = np.minimum(steps, 1.0)
    return np.where(np.isfinite(p), adjusted, np.nan)
