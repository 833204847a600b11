"""Validation against a control: retrain a study's top-k configurations and the default
configuration (the control) on fresh seeds, paired, and recommend only what beats the control.

Every candidate trains on the same validation seeds, which never meet the study's tuning
seeds, and is judged on the same fresh evaluation episodes (`evaluation_key` of each seed), so
the difference to the control is a paired comparison. A seed whose run diverged is counted in
`n_failed` and leaves its candidate out of the recommendation; it is never silently dropped.
The recommendation is the candidate with the best validated mean among those whose paired
difference to the control has a 95% CI wholly above zero, or None.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import optuna
from optuna.trial import TrialState

from bb_jax.stats import mean_ci95, paired_difference
from bb_jax.train.ppo import DEFAULT_HYPERPARAMS, PPOConfig
from bb_jax.tuning.cohorts import CohortTrainer, MemberSpec

CONTROL = "control"
# a study of --seed S tunes on seeds S*1000 + 0..K-1 (`bb_jax.tuning.tuner.tuning_seeds`,
# K <= 500) and validates on S*1000 + 500 + i
FRESH_SEED_OFFSET = 500


def control_params(search_space: dict) -> dict:
    """The default configuration (PPOConfig's shapes, DEFAULT_HYPERPARAMS) in the search
    space's parameter names."""
    defaults = {"hidden_size": PPOConfig.hidden_size, "batch_size": PPOConfig.batch_size,
                **DEFAULT_HYPERPARAMS}
    return {name: defaults[name] for name in search_space}


def validation_seeds(seed: int, n: int, first: int | None = None) -> list[int]:
    """n fresh seeds: from `first` when given, else seed * 1000 + 500 + 0..n-1, where no
    tuning seed of a study with this --seed lies."""
    start = seed * 1000 + FRESH_SEED_OFFSET if first is None else first
    return [start + i for i in range(n)]


@dataclasses.dataclass
class Candidate:
    """One configuration to validate: `trial` is the study's trial number or CONTROL."""

    trial: int | str
    params: dict
    tuning_value: float | None


def top_candidates(study: optuna.Study, top_k: int, search_space: dict) -> list[Candidate]:
    """The top-k COMPLETE trials by tuning value, then the control."""
    complete = sorted((t for t in study.get_trials(deepcopy=False)
                       if t.state == TrialState.COMPLETE), key=lambda t: t.value, reverse=True)
    if not complete:
        raise ValueError(f"study {study.study_name!r} has no complete trial to validate")
    rows = [Candidate(t.number, dict(t.params), t.value) for t in complete[:top_k]]
    return rows + [Candidate(CONTROL, control_params(search_space), None)]


def validate(
    candidates: list[Candidate],
    make_spec: Callable[[int, dict, str, int], MemberSpec],
    trainer: CohortTrainer,
    scenarios: list[str],
    seeds: list[int],
) -> dict:
    """Train candidates x seeds x scenarios (one population per shape) and compare each with
    the control. Returns {"seeds", "rows", "recommended"}: rows ranked by validated mean, each
    with per_seed values (mean over scenarios of fresh-episode returns; NaN where a run
    failed), mean, ci95, n_failed and `vs_control` (paired difference and its 95% CI)."""
    n_s = len(scenarios)
    specs = [make_spec((i * len(seeds) + j) * n_s + k, c.params, scenario, seed)
             for i, c in enumerate(candidates) for j, seed in enumerate(seeds)
             for k, scenario in enumerate(scenarios)]
    results = trainer.run(specs)
    per_seed = np.full((len(candidates), len(seeds)), np.nan)
    failed = np.zeros(len(candidates), int)
    for i in range(len(candidates)):
        for j in range(len(seeds)):
            rows = [results[(i * len(seeds) + j) * n_s + k] for k in range(n_s)]
            if any(r.state != "complete" for r in rows):
                failed[i] += 1
            else:
                per_seed[i, j] = float(np.mean([r.value for r in rows]))
    control = per_seed[[c.trial == CONTROL for c in candidates].index(True)]
    out = []
    for i, c in enumerate(candidates):
        mean, ci = mean_ci95(per_seed[i][np.isfinite(per_seed[i])])
        row = {"trial": c.trial, "params": c.params, "tuning_value": c.tuning_value,
               "mean": mean, "ci95": ci, "per_seed": per_seed[i].tolist(),
               "n_failed": int(failed[i])}
        if c.trial != CONTROL:
            row["vs_control"] = paired_difference(per_seed[i], control).as_dict()
            if c.tuning_value is not None and math.isfinite(mean):
                row["selection_bias"] = c.tuning_value - mean
        out.append(row)
    out.sort(key=lambda r: -r["mean"] if math.isfinite(r["mean"]) else math.inf)
    eligible = [r for r in out if r["trial"] != CONTROL and r["n_failed"] == 0
                and r["vs_control"]["significant"]]
    return {"seeds": list(seeds), "rows": out,
            "recommended": eligible[0]["trial"] if eligible else None}
