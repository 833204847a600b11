"""bb_jax.stats: intervals at a chosen level and Holm's step-down adjustment."""

import math

import numpy as np
from scipy import stats

from bb_jax.stats import holm, mean_ci95, paired_difference


def test_holm_matches_the_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])


def test_holm_keeps_nan_and_caps_at_one():
    out = holm([0.6, math.nan, 0.01])
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [1.0, 0.03])


def test_holm_controls_family_wise_error_under_the_null():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(4000, 5))
    rejected_any = (np.apply_along_axis(holm, 1, p) <= 0.05).any(axis=1).mean()
    assert rejected_any <= 0.06
    assert (p <= 0.05).any(axis=1).mean() > 0.2


def test_a_wider_level_widens_the_interval():
    x = [1.0, 2.0, 4.0, 3.0]
    _, half95 = mean_ci95(x)
    _, half99 = mean_ci95(x, level=0.99)
    assert half99 == stats.t.ppf(0.995, 3) * stats.sem(x)
    assert half99 > half95
    d = paired_difference([3.0, 4.0, 5.0, 7.0], [1.0, 1.5, 2.0, 2.5], level=1 - 0.05 / 3)
    assert d.ci95 > paired_difference([3.0, 4.0, 5.0, 7.0], [1.0, 1.5, 2.0, 2.5]).ci95
