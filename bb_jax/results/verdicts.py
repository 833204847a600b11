"""The RESULTS report's statistics: each figure's mean with its 95% interval (over episodes for
the baselines, over seeds for PPO) and the better / worse / tie calls between figures."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from bb_jax.stats import mean_ci95

Z95 = float(stats.norm.ppf(0.975))  # the two-sided 95% normal quantile, 1.95996...


def episode_ci(x) -> tuple[float, float]:
    """Mean and 95% half-width over episodes (normal approximation)."""
    x = np.asarray(x, np.float64)
    return float(x.mean()), float(Z95 * x.std(ddof=1) / math.sqrt(x.size))


def seed_ci(per_seed) -> dict:
    mean, ci = mean_ci95(per_seed)
    return {"mean": mean, "ci95": ci, "per_seed": [float(v) for v in per_seed]}


def compare(a: dict, b: dict) -> str:
    """'better' / 'worse' if a's mean differs from b's by more than the combined 95% CI
    (sqrt of the sum of squared half-widths), else 'tie'."""
    diff = a["mean"] - b["mean"]
    ci_a = a["ci95"] if math.isfinite(a["ci95"]) else 0.0
    half = math.hypot(ci_a, b["ci95"])
    if diff > half:
        return "better"
    if diff < -half:
        return "worse"
    return "tie"


def verdicts(results: dict) -> dict:
    """Per scenario: PPO (sampled and greedy) against random and the best heuristic."""
    out = {}
    for name, ppo in results["ppo"].items():
        base = results["baselines"][name]
        random_fig = base["policies"]["random"]
        heur_fig = base["policies"][base["best_heuristic"]]
        out[name] = {
            f"{mode}_vs_{other}": compare(ppo[f"ppo_{mode}"], fig)
            for mode in ("sampled", "greedy")
            for other, fig in (("random", random_fig), ("heuristic", heur_fig))
        }
    return out
