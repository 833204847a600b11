"""The one-sided test the evidence rules share: a trial is pruned only when it lies below its
reference by more than a critical value times its standard error, with the per-trial false
prune rate `alpha` split over the run's planned checks (Bonferroni), so a trial no worse than
its reference is pruned at most `alpha` of the time over its whole run."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm, t


def validate_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def critical(alpha: float, checks: int, df: float = math.inf) -> float:
    """One-sided critical value at alpha / checks: Student-t with `df` degrees of freedom,
    the normal one for df = inf."""
    level = 1.0 - alpha / checks
    return float(norm.ppf(level) if math.isinf(df) else t.ppf(level, df))


def pooled_seed_variance(samples: list[np.ndarray]) -> tuple[float, int]:
    """Pooled within-trial variance of per-seed values (each array: one trial's values or
    paired differences over the tuning seeds) and its degrees of freedom; (nan, 0) when no
    array has two seeds. Pooling over the trials at one stage gives the estimate many degrees
    of freedom where one trial's 2-4 seeds give 1-3."""
    usable = [np.asarray(s, float) for s in samples if len(s) >= 2]
    if not usable:
        return math.nan, 0
    sizes = np.array([len(s) for s in usable])
    flat = np.concatenate(usable)
    means = np.add.reduceat(flat, np.cumsum(sizes) - sizes) / sizes
    df = int(sizes.sum() - len(usable))
    return float(np.sum((flat - np.repeat(means, sizes)) ** 2) / df), df


def standard_error(own: np.ndarray, pooled: float) -> float:
    """Standard error of a trial's mean over its seeds: the larger of its own and the pooled
    seed variance (a trial noisier than the rest is judged by its own noise), over n seeds."""
    own_var = float(np.var(own, ddof=1)) if len(own) >= 2 else 0.0
    return math.sqrt(max(own_var, pooled) / len(own))
