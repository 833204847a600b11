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

from bb_jax.agent.config import PPOConfig
from bb_jax.progress import Progress
from bb_jax.runtime.cohorts import CohortTrainer
from bb_jax.runtime.members import MemberSpec
from bb_jax.runtime.sizing import CompileAwareSizing
from bb_jax.stats import mean_ci95, paired_difference
from bb_jax.tuning.outputs import finite_json
from bb_jax.tuning.space import (
    CONTROL,
    LARGEST_BATCH,
    control_params,
    member_spec,
    validation_seeds,
)
from bb_jax.tuning.warm_start import copied


@dataclasses.dataclass
class Candidate:
    """One configuration to validate: `trial` is the study's trial number or CONTROL."""

    trial: int | str
    params: dict
    tuning_value: float | None


def top_candidates(study: optuna.Study, top_k: int) -> list[Candidate]:
    """The top-k COMPLETE trials by tuning value, then the control. A multi-objective study
    (return, cost) offers its Pareto front instead: up to k members spread evenly along it
    from the best return to the cheapest."""
    if len(study.directions) > 1:
        pool = sorted(study.best_trials, key=lambda t: t.values[0], reverse=True)
        if len(pool) > top_k:
            picks = sorted({round(i) for i in np.linspace(0, len(pool) - 1, top_k)})
            pool = [pool[i] for i in picks]
    else:
        pool = sorted((t for t in study.get_trials(deepcopy=False)
                       if t.state == TrialState.COMPLETE and not copied(t)),
                      key=lambda t: t.value,
                      reverse=True)[:top_k]
    if not pool:
        raise ValueError(f"study {study.study_name!r} has no complete trial to validate")
    rows = [Candidate(t.number, dict(t.params), t.values[0]) for t in pool]
    return rows + [Candidate(CONTROL, control_params(), None)]


def validate(
    candidates: list[Candidate],
    make_spec: Callable[[int, dict, str, int], MemberSpec],
    trainer: CohortTrainer,
    scenarios: list[str],
    seeds: list[int],
    progress: Progress | None = None,
) -> dict:
    """Train candidates x seeds x scenarios (one population per shape) and compare each with
    the control. Returns {"seeds", "rows", "recommended"}: rows ranked by validated mean, each
    with per_seed values (mean over scenarios of fresh-episode returns; NaN where a run
    failed), mean, ci95, n_failed and `vs_control` (paired difference and its 95% CI)."""
    n_s = len(scenarios)
    specs = [make_spec((i * len(seeds) + j) * n_s + k, c.params, scenario, seed)
             for i, c in enumerate(candidates) for j, seed in enumerate(seeds)
             for k, scenario in enumerate(scenarios)]
    if progress is None:
        results = trainer.run(specs)
    else:  # runs done, as each population ends
        finished: set[int] = set()

        def count(done: dict) -> None:
            finished.update(done)
            progress.update(len(finished), "runs trained")

        results = trainer.run(specs, on_finished=count)
    per_seed = np.full((len(candidates), len(seeds)), np.nan)
    failed = np.zeros(len(candidates), int)
    costs = []
    for i in range(len(candidates)):
        runs = [results[(i * len(seeds)) * n_s + m] for m in range(len(seeds) * n_s)]
        costs.append({"num_steps": int(np.mean([r.env_steps for r in runs])),
                      "tflops_per_run": float(np.mean([r.flops for r in runs])) / 1e12,
                      "train_seconds_per_run": float(np.mean([r.seconds for r in runs]))})
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
               "n_failed": int(failed[i]), **costs[i]}
        if c.trial != CONTROL:
            row["vs_control"] = paired_difference(per_seed[i], control).as_dict()
            if c.tuning_value is not None and math.isfinite(mean):
                row["selection_bias"] = c.tuning_value - mean
        out.append(row)
    out.sort(key=lambda r: -r["mean"] if math.isfinite(r["mean"]) else math.inf)
    eligible = [r for r in out if r["trial"] != CONTROL and r["n_failed"] == 0
                and r["vs_control"]["significant"]]
    return {"seeds": list(seeds), "rows": out,
            "recommended": eligible[0]["trial"] if eligible else None,
            "cheapest": cheapest_not_worse(out)}


def cheapest_not_worse(rows: list[dict]) -> int | str | None:
    """The candidate with the fewest training seconds per run whose paired difference to
    the best validated candidate (highest mean, control included) is not significantly
    below zero; rows gain `vs_best`. None when no candidate ran on every seed."""
    whole = [r for r in rows if r["n_failed"] == 0 and math.isfinite(r["mean"])]
    if not whole:
        return None
    best = max(whole, key=lambda r: r["mean"])
    for row in whole:
        row["vs_best"] = paired_difference(row["per_seed"], best["per_seed"]).as_dict()
    close = [r for r in whole if not paired_difference(best["per_seed"], r["per_seed"])
             .significant]
    return min(close, key=lambda r: r["train_seconds_per_run"])["trial"]


def validate_study(study: optuna.Study, top_k: int, n_seeds: int,
                   num_steps: int | None = None, eval_episodes: int = 200,
                   first_seed: int | None = None, max_population: int = 1024,
                   log: Callable[[str], None] = print,
                   tuner_trainer: CohortTrainer | None = None) -> dict:
    """Retrain the study's top-k complete trials and the control (default configuration) on
    fresh seeds, paired (`bb_jax.tuning.validation`); store the outcome in the study's user
    attribute `validation` and return it (with the steps and episodes it used).

    `tuner_trainer`: the sweep's trainer in this process; validation then trains in the same
    chunks and may reuse its compiled population sizes (rounds) instead of compiling anew."""
    attrs = study.user_attrs
    scenarios = list(attrs.get("scenarios", ["default"]))
    budget = None if num_steps else attrs.get("flop_budget")
    steps = None if budget else int(num_steps or attrs.get("num_steps") or 50_000)
    seeds = validation_seeds(int(attrs.get("seed", 0)), n_seeds, first_seed)
    used = set(attrs.get("tuning_seeds", []))
    if used & set(seeds):
        raise ValueError(f"validation seeds {sorted(used & set(seeds))} were used for tuning "
                         "this study; choose a --seed that gives fresh ones")
    candidates = top_candidates(study, top_k)
    trainer = CohortTrainer(
        PPOConfig(scenario=scenarios[0], num_opponents=attrs.get("num_opponents", 2),
                  total_steps=steps, batch_size=LARGEST_BATCH, **attrs.get("learner", {})),
        num_steps=steps, flop_budget=budget, eval_episodes=eval_episodes,
        max_population=max_population,
        progress=log,
        eval_interval=tuner_trainer.eval_interval if tuner_trainer else (steps or 10_000),
        sizing=tuner_trainer.sizing if tuner_trainer else CompileAwareSizing(),
    )
    length = f"{steps:,} steps" if budget is None else f"{budget / 1e12:.3g} TFLOP each"
    log(f"validating {len(candidates) - 1} trial(s) and the default configuration "
        f"(control) on {len(seeds)} fresh seeds x {length}")
    bar = Progress(len(candidates) * len(seeds) * len(scenarios), "validation runs", "run",
                   None if log is print else log)
    outcome = validate(candidates, member_spec, trainer, scenarios, seeds, bar)
    bar.close()
    outcome.update(num_steps=steps, flop_budget=budget, eval_episodes=eval_episodes)
    study.set_user_attr("validation", finite_json(outcome))
    return outcome
