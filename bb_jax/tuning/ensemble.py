"""The validated ensemble: a study's top-K validated configurations, combined per seed into one
policy (`bb_jax.runtime.ensemble`), against the best single configuration, paired.

Validation trains every candidate on the same fresh seeds and judges each run on its seed's
evaluation episodes (`evaluation_key`). Here, for each validation seed, the K members trained
on that seed form one ensemble, which plays those same episodes of every scenario; the best
single configuration (the highest validated mean) plays them through the same scan, and the
two pair by seed (`paired_difference`). The best single is picked on these very seeds, so its
figure carries the pick's optimism: the comparison leans towards it, never towards the
ensemble. The ensemble costs K runs of training (the sum of its members' FLOPs) and K forward
passes per action.
"""

from __future__ import annotations

import jax
import numpy as np

from bb_jax.runtime.driver import evaluation_keys
from bb_jax.runtime.ensemble import ensemble_returns
from bb_jax.runtime.kept_params import find
from bb_jax.stats import mean_ci95, paired_difference
from bb_jax.tuning.space import CONTROL, member_spec


def ensemble_members(outcome: dict, k: int) -> list[dict]:
    """The top-k validated configurations (validation rows, best first) that completed on
    every seed; fewer where fewer did."""
    whole = [r for r in outcome["rows"] if r["trial"] != CONTROL and r["n_failed"] == 0
             and np.isfinite(r["mean"])]
    return sorted(whole, key=lambda r: -r["mean"])[:k]


def _per_seed(rows: list[dict], kept: dict, seeds: list[int], scenarios: list[str],
              episodes: int, rule: str) -> np.ndarray:
    """float[S]: the combined policy of `rows` per seed, mean over scenarios of its mean
    return on the seed's evaluation episodes."""
    keys = evaluation_keys(seeds)
    values = []
    for scenario in scenarios:
        members = [[find(kept, member_spec(0, r["params"], scenario, seed)) for seed in seeds]
                   for r in rows]
        if any(m is None for runs in members for m in runs):
            raise ValueError("a validated member's parameters were not kept")
        params = [jax.tree.map(lambda *x: np.stack(x), *[m.params for m in runs])
                  for runs in members]
        configs = [runs[0].config for runs in members]
        values.append(ensemble_returns(configs, params, keys, episodes, scenario,
                                       rule).mean(axis=1))
    return np.mean(values, axis=0)


def validate_ensemble(outcome: dict, kept: dict, k: int, scenarios: list[str],
                      rule: str = "probs") -> dict:
    """The ensemble of the top-k validated configurations against the best of them, paired
    on the validation seeds: {"k", "rule", "members" (trials), "best", "per_seed", "mean",
    "ci95", "best_per_seed", "vs_best" (paired difference, `significant`: the ensemble
    wins), "cost"}, or {"k", "rule", "skipped": why} when fewer than k completed every
    seed. `kept`: `keep_final_params()`'s dict from the validation."""
    rows = ensemble_members(outcome, k)
    if len(rows) < k:
        return {"k": k, "rule": rule, "skipped": f"only {len(rows)} validated configuration(s) "
                f"completed every seed; an ensemble of {k} needs {k}"}
    seeds, episodes = list(outcome["seeds"]), int(outcome["eval_episodes"])
    ensemble = _per_seed(rows, kept, seeds, scenarios, episodes, rule)
    best = _per_seed(rows[:1], kept, seeds, scenarios, episodes, rule)
    mean, ci = mean_ci95(ensemble)
    tflops = [float(r["tflops_per_run"]) for r in rows]
    return {"k": k, "rule": rule, "members": [r["trial"] for r in rows],
            "best": rows[0]["trial"], "per_seed": ensemble.tolist(), "mean": mean, "ci95": ci,
            "best_per_seed": best.tolist(),
            "vs_best": paired_difference(ensemble, best).as_dict(),
            "cost": {"train_tflops_per_seed": sum(tflops), "best_tflops_per_seed": tflops[0],
                     "forward_passes_per_action": k}}
