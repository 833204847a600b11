"""Validation against a control: retrain a study's top-k configurations and the default
configuration (the control) on fresh seeds, paired, and recommend only what beats the control.

Every candidate trains on the same validation seeds, which never meet the study's tuning
seeds, and is judged on the same fresh evaluation episodes (`evaluation_key` of each seed), so
the difference to the control is a paired comparison. A seed whose run diverged is counted in
`n_failed` and leaves its candidate out of the recommendation; it is never silently dropped.
The k candidates' paired t-tests against the control are one family: the recommendation is
the candidate with the best validated mean among those whose Holm-adjusted p-value is at most
0.05 and whose mean difference is positive, or None. The cheapest candidate (training FLOPs
per run) not worse than the best by more than an equivalence margin is named beside it.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import optuna
from optuna.trial import TrialState

from bb_jax import compile_cache
from bb_jax.agent.config import DEFAULT_HYPERPARAMS, HYPERPARAM_NAMES, PPOConfig, resolve
from bb_jax.progress import Progress
from bb_jax.runtime import runs
from bb_jax.runtime.cohorts import CohortTrainer
from bb_jax.runtime.members import MemberSpec
from bb_jax.runtime.sizing import CompileAwareSizing
from bb_jax.stats import PairedDifference, holm, mean_ci95, paired_difference
from bb_jax.tuning.outputs import finite_json, python_command
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.space import (
    CONTROL,
    LARGEST_BATCH,
    TRAIN_FLAGS,
    control_params,
    is_control,
    member_spec,
    validation_seeds,
)
from bb_jax.tuning.warm_start import copied

ALPHA = 0.05  # family-wise error rate of "beats the control" over the k candidates
DEFAULT_MARGIN_SDS = 0.5  # default equivalence margin: control's across-seed SDs
# env steps between two reports of a validation run outside a sweep: the tuner's default, so
# a Ctrl-C takes effect within one such stretch (a run of one chunk would hold it to the end);
# a run's figures do not depend on how it is chunked
REPORT_INTERVAL = TuneSettings.eval_interval


@dataclasses.dataclass
class Candidate:
    """One configuration to validate: `trial` is the study's trial number or CONTROL."""

    trial: int | str
    params: dict
    tuning_value: float | None


def top_candidates(study: optuna.Study, top_k: int) -> list[Candidate]:
    """The top-k COMPLETE trials by tuning value other than the control's own configuration,
    then the control. A multi-objective study (return, cost) offers its Pareto front instead:
    up to k members spread evenly along it from the best return to the cheapest."""
    if len(study.directions) > 1:
        pool = sorted(study.best_trials, key=lambda t: t.values[0], reverse=True)
        if len(pool) > top_k:
            picks = sorted({round(i) for i in np.linspace(0, len(pool) - 1, top_k)})
            pool = [pool[i] for i in picks]
    else:
        pool = sorted((t for t in study.get_trials(deepcopy=False)
                       if t.state == TrialState.COMPLETE and not copied(t)
                       and not is_control(t.params)),
                      key=lambda t: t.value,
                      reverse=True)[:top_k]
    if not pool:
        raise ValueError(f"study {study.study_name!r} has no complete trial to validate "
                         "other than the default configuration")
    rows = [Candidate(t.number, dict(t.params), t.values[0]) for t in pool]
    return rows + [Candidate(CONTROL, control_params(), None)]


def validate(
    candidates: list[Candidate],
    make_spec: Callable[[int, dict, str, int], MemberSpec],
    trainer: CohortTrainer,
    scenarios: list[str],
    seeds: list[int],
    progress: Progress | None = None,
    margin: float | None = None,
) -> dict:
    """Train candidates x seeds x scenarios (one population per shape) and compare each with
    the control. Returns {"seeds", "rows", "recommended", "correction", "cheapest",
    "equivalence_margin", "margin_rule"}: rows ranked by validated mean, each with per_seed
    values (mean over scenarios of fresh-episode returns; NaN where a run failed), mean,
    ci95, n_failed, costs per run, `tuning_minus_validated` and, for a candidate,
    `vs_control` (`compare_with_control`). `margin`: the equivalence margin of the cheapest
    choice in return units (default: `default_margin` of the control)."""
    results = _train(candidates, make_spec, trainer, scenarios, seeds, progress)
    per_seed, failed, costs = _per_seed(results, len(candidates), len(seeds), len(scenarios))
    out = []
    for i, c in enumerate(candidates):
        mean, ci = mean_ci95(per_seed[i][np.isfinite(per_seed[i])])
        row = {"trial": c.trial, "params": c.params, "tuning_value": c.tuning_value,
               "mean": mean, "ci95": ci, "per_seed": per_seed[i].tolist(),
               "n_failed": int(failed[i]), **costs[i]}
        if c.tuning_value is not None and math.isfinite(mean):
            row["tuning_minus_validated"] = c.tuning_value - mean
        out.append(row)
    control = next(r for r in out if r["trial"] == CONTROL)
    compare_with_control([r for r in out if r is not control], control["per_seed"])
    out.sort(key=lambda r: -r["mean"] if math.isfinite(r["mean"]) else math.inf)
    eligible = [r for r in out if r["trial"] != CONTROL and r["vs_control"]["beats_control"]]
    rule = "--equivalence-margin" if margin is not None else (
        f"{DEFAULT_MARGIN_SDS:g} x the control's across-seed SD")
    margin = default_margin(control["per_seed"]) if margin is None else float(margin)
    return {"seeds": list(seeds), "rows": out,
            "recommended": eligible[0]["trial"] if eligible else None,
            "correction": {"method": "holm", "family": len(out) - 1, "alpha": ALPHA},
            "cheapest": cheapest_not_worse(out, margin),
            "equivalence_margin": margin, "margin_rule": rule}


def _train(candidates, make_spec, trainer, scenarios, seeds, progress) -> dict:
    """Every run of candidates x seeds x scenarios: {member id: MemberResult}, member id
    (candidate * n_seeds + seed) * n_scenarios + scenario."""
    n_s = len(scenarios)
    specs = [make_spec((i * len(seeds) + j) * n_s + k, c.params, scenario, seed)
             for i, c in enumerate(candidates) for j, seed in enumerate(seeds)
             for k, scenario in enumerate(scenarios)]
    if progress is None:
        return trainer.run(specs)
    finished: set[int] = set()

    def count(done: dict) -> None:  # runs done, as each population ends
        finished.update(done)
        progress.update(len(finished), "runs trained")

    return trainer.run(specs, on_finished=count)


def _per_seed(results: dict, n_c: int, n_seeds: int, n_s: int):
    """(per_seed (n_c, n_seeds): mean over scenarios, NaN where any scenario's run failed;
    failed seeds per candidate (n_c,); costs per run of each candidate)."""
    per_seed = np.full((n_c, n_seeds), np.nan)
    failed = np.zeros(n_c, int)
    costs = []
    for i in range(n_c):
        runs = [results[i * n_seeds * n_s + m] for m in range(n_seeds * n_s)]
        costs.append({"num_steps": int(np.mean([r.env_steps for r in runs])),
                      "tflops_per_run": float(np.mean([r.flops for r in runs])) / 1e12,
                      "train_seconds_per_run": float(np.mean([r.seconds for r in runs]))})
        for j in range(n_seeds):
            rows = [results[(i * n_seeds + j) * n_s + k] for k in range(n_s)]
            if any(r.state != "complete" for r in rows):
                failed[i] += 1
            else:
                per_seed[i, j] = float(np.mean([r.value for r in rows]))
    return per_seed, failed, costs


def compare_with_control(rows: list[dict], control: list[float]) -> None:
    """The k candidates' paired tests against the control, one family: each row gains
    `vs_control` with the raw paired difference (mean, 95% `ci95`, `p_value`, `significant`:
    the raw CI above zero), Holm's adjusted p-value over the k tests (`p_holm`), the
    Bonferroni simultaneous interval (`ci_simultaneous` at `simultaneous_level`
    1 - 0.05/k) and `beats_control`: p_holm <= 0.05, a positive mean and no failed seed."""
    diffs = [paired_difference(r["per_seed"], control) for r in rows]
    adjusted = holm([_test_p_value(d) for d in diffs])
    level = 1 - ALPHA / max(1, len(rows))
    for row, diff, p in zip(rows, diffs, adjusted, strict=True):
        wide = paired_difference(row["per_seed"], control, level)
        row["vs_control"] = {
            **diff.as_dict(), "correction": "holm", "p_holm": float(p),
            "simultaneous_level": level, "ci_simultaneous": wide.ci95,
            "beats_control": bool(p <= ALPHA and diff.mean > 0 and row["n_failed"] == 0)}


def _test_p_value(diff: PairedDifference) -> float:
    """The paired t-test's p-value; a nonzero difference with no spread over >= 2 seeds (t
    undefined, a CI of width zero) counts as 0, as its interval excludes zero."""
    if math.isfinite(diff.p_value) or diff.n < 2 or diff.ci95 != 0 or diff.mean == 0:
        return diff.p_value
    return 0.0


def default_margin(control: list[float]) -> float:
    """The default equivalence margin, return units: DEFAULT_MARGIN_SDS times the control's
    across-seed SD (ddof 1) on the validation seeds; NaN with fewer than 2 finite seeds."""
    x = np.asarray(control, np.float64)
    x = x[np.isfinite(x)]
    return float(DEFAULT_MARGIN_SDS * np.std(x, ddof=1)) if x.size >= 2 else math.nan


def cheapest_not_worse(rows: list[dict], margin: float) -> int | str | None:
    """The candidate with the fewest training FLOPs per run (ties: the higher mean) among
    those not worse than the best validated one (highest mean, control included) by more
    than `margin` (return units): the paired 95% CI of (row - best) lies wholly above
    -margin, a one-sided test at 2.5% (TOST's lower half). The best qualifies itself. Rows
    gain `vs_best` (the paired difference, the `best` trial, `margin`, `not_worse`). None
    when no candidate ran on every seed."""
    whole = [r for r in rows if r["n_failed"] == 0 and math.isfinite(r["mean"])]
    if not whole:
        return None
    best = max(whole, key=lambda r: r["mean"])
    for row in whole:
        diff = paired_difference(row["per_seed"], best["per_seed"])
        close = math.isfinite(diff.ci95) and diff.mean - diff.ci95 > -margin
        row["vs_best"] = {**diff.as_dict(), "best": best["trial"], "margin": margin,
                          "not_worse": row is best or bool(close)}
    fine = [r for r in whole if r["vs_best"]["not_worse"]]
    return min(fine, key=lambda r: (r["tflops_per_run"], -r["mean"]))["trial"]


def validate_study(study: optuna.Study, top_k: int, n_seeds: int,
                   num_steps: int | None = None, eval_episodes: int = 200,
                   first_seed: int | None = None, max_population: int = 1024,
                   log: Callable[[str], None] = print,
                   tuner_trainer: CohortTrainer | None = None,
                   margin: float | None = None, store: bool = True,
                   eval_interval: int = REPORT_INTERVAL) -> dict:
    """Retrain the study's top-k complete trials and the control (default configuration) on
    fresh seeds, paired (`bb_jax.tuning.validation`); store the outcome in the study's user
    attribute `validation` and return it (with the steps and episodes it used and what its
    figures measure). Under a FLOP budget every run costs the same: no cheapest is named.
    `store=False`: the caller stores it (`store_validation`), e.g. after printing it.
    `eval_interval`: env steps between reports (and interrupt checks) of each run.

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
        resolve(PPOConfig(scenario=scenarios[0], num_opponents=attrs.get("num_opponents", 2),
                          env=attrs.get("env", PPOConfig.env), total_steps=steps,
                          batch_size=LARGEST_BATCH, **attrs.get("learner", {})),
                jax.default_backend()),
        num_steps=steps, flop_budget=budget, eval_episodes=eval_episodes,
        max_population=max_population,
        progress=log,
        eval_interval=(tuner_trainer.eval_interval if tuner_trainer else
                       min(eval_interval, steps or eval_interval)),
        sizing=tuner_trainer.sizing if tuner_trainer else CompileAwareSizing(),
    )
    length = f"{steps:,} steps" if budget is None else f"{budget / 1e12:.3g} TFLOP each"
    log(f"validating {len(candidates) - 1} trial(s) and the default configuration "
        f"(control) on {len(seeds)} fresh seeds x {length}")
    bar = Progress(len(candidates) * len(seeds) * len(scenarios), "validation runs", "run",
                   None if log is print else log)
    compiles = compile_cache.shared()
    before = len(compiles.compiles)
    outcome = validate(candidates, member_spec, trainer, scenarios, seeds, bar, margin)
    bar.close()
    outcome["programs"] = _programs(trainer, compiles.compiles[before:], log)
    outcome.update(num_steps=steps, flop_budget=budget, eval_episodes=eval_episodes,
                   measures=measures(attrs, length, eval_episodes))
    if budget is not None:
        outcome["cheapest"] = None
    if store:
        store_validation(study, outcome)
    return outcome


def store_validation(study: optuna.Study, outcome: dict) -> None:
    """Keep `outcome` in the study's user attribute `validation` (replacing an earlier one)."""
    study.set_user_attr("validation", finite_json(outcome))


def measures(attrs: dict, length: str, eval_episodes: int) -> dict:
    """What a validation row's figures measure, for the JSON: the tuning value and the
    validated mean differ in seeds, episodes and (often) length, so their difference
    `tuning_minus_validated` is not a selection bias unless both measure the same."""
    tuned = ("the mean return of fresh evaluation episodes"
             if attrs.get("objective") == "eval_return" else
             "the mean return of the training episodes of the last report interval")
    study_length = (f"{attrs['flop_budget'] / 1e12:.3g} TFLOP" if attrs.get("flop_budget")
                    else f"{int(attrs.get('num_steps') or 50_000):,} steps")
    return {"tuning_value": f"{tuned}, on the tuning seeds, after {study_length}",
            "mean": f"the mean return of {eval_episodes} fresh episodes per seed, on the "
                    f"validation seeds, after {length}",
            "tuning_minus_validated": "tuning_value - mean: the two measure different "
                                      "episodes and seeds (and lengths where they differ)"}


def _programs(trainer: CohortTrainer, compiles: list, log: Callable[[str], None]) -> dict:
    """The training programs validation ran ((shape, population size) pairs) and how many of
    them it had to compile or read from the persistent cache; the rest were the tuning's,
    still in this process."""
    new = [c for c in compiles if "run_updates" in c.name]
    figures = {"programs": len(trainer.programs), "compiled": len(new),
               "from_cache": sum(c.cache_hit for c in new)}
    log(f"validation trained in {figures['programs']} program(s): {figures['compiled']} new "
        f"to this process ({figures['from_cache']} of them from the compile cache)")
    return figures


def validate_schedule(study: optuna.Study, run, config: PPOConfig, settings: TuneSettings,
                      chunk: int, schedule_path: Path, versus: dict | None,
                      log: Callable[[str], None] = print) -> dict:
    """A PBT run's best schedule (`run`, a PBTRun) from scratch against the control on
    fresh seeds, paired, at the study's env steps (`config`, updates per chunk `chunk`), and
    with `versus` (`study.study_versus`) also a TPE study's best static configuration. Each
    run is scored as `validate` scores a trial (the mean return of --eval-episodes fresh
    episodes from its seed's evaluation key) and the candidates are one family against the
    control (`compare_with_control`, Holm). The outcome is stored (user attr
    "pbt_validation") and returned; the winner's train_simple.py command is logged."""
    seeds = validation_seeds(settings.seed, settings.validation.validate_seeds)
    candidates, control = _schedule_candidates(run.lineages[run.best], config, seeds, chunk,
                                               settings.eval_episodes, versus)
    rows = [{"name": name, "per_seed": values, "n_failed": 0}
            for name, values in candidates.items()]
    compare_with_control(rows, control)
    verdicts = {row["name"]: row["vs_control"] for row in rows}
    outcome = {"seeds": seeds, "schedule": candidates["schedule"].tolist(),
               "control": control.tolist(), "difference": verdicts["schedule"],
               "measure": f"mean return of {settings.eval_episodes} fresh episodes per seed",
               "correction": f"Holm over {len(rows)} comparison{'s' * (len(rows) > 1)} with "
                             f"the defaults, alpha {ALPHA}"}
    if versus is not None:
        against = paired_difference(candidates["schedule"], candidates["static"])
        outcome["versus"] = {**versus, "values": candidates["static"].tolist(),
                             "vs_control": verdicts["static"],
                             "schedule_vs_static": against.as_dict()}
    beat = [name for name in candidates if verdicts[name]["beats_control"]]
    outcome["winner"] = max(beat, key=lambda n: float(np.mean(candidates[n]))) if beat \
        else "defaults"
    study.set_user_attr("pbt_validation", finite_json(outcome))
    _log_schedule_outcome(outcome, config, settings.population_size, log)
    for which in ("schedule", *(("static",) if versus is not None else ())):
        command = _train_command(which, config, chunk, schedule_path, seeds, versus)
        what = "the schedule" if which == "schedule" else "the TPE study's configuration"
        log(f"train {what}: {shlex.join(command)}")
    return outcome


def _schedule_candidates(lineage, config: PPOConfig, seeds: list[int], chunk: int,
                         episodes: int, versus: dict | None) -> tuple[dict, np.ndarray]:
    """({"schedule": values[, "static": values]}, the control's values): each trained from
    scratch on `seeds`, a value per seed its mean return over `episodes` fresh episodes."""
    def values(hyperparams, run_config=config, updates=chunk, schedule=None) -> np.ndarray:
        result = runs.train_seeds(run_config, hyperparams, seeds, updates, episodes,
                                  schedule=schedule)
        return result.eval_sampled.mean(axis=1)

    candidates = {"schedule": values(lineage.history[0][1], schedule=lineage.schedule)}
    control = values(dict(DEFAULT_HYPERPARAMS))
    if versus is not None:
        shape = {k: int(versus["params"][k]) for k in ("hidden_size", "batch_size")}
        candidates["static"] = values(
            {k: v for k, v in versus["params"].items() if k in HYPERPARAM_NAMES},
            config.replace(**shape, num_envs=None),
            max(1, chunk * config.batch_size // shape["batch_size"]))
    return candidates, control


def _verdict_line(diff: dict) -> str:
    verdict = "beats the defaults" if diff["beats_control"] else "not shown better"
    return (f"{diff['mean']:+.2f} +/- {diff['ci95']:.2f} (paired 95% CI, Holm p "
            f"{diff['p_holm']:.3g}: {verdict})")


def _log_schedule_outcome(outcome: dict, config: PPOConfig, members: int,
                          log: Callable[[str], None]) -> None:
    log(f"validation on {len(outcome['seeds'])} fresh seeds ({outcome['measure']}; "
        f"{outcome['correction']}): schedule {np.mean(outcome['schedule']):.2f}, defaults "
        f"{np.mean(outcome['control']):.2f}, difference {_verdict_line(outcome['difference'])}")
    versus = outcome.get("versus")
    if versus is not None:
        against = versus["schedule_vs_static"]
        log(f"  TPE study {versus['study']!r} trial {versus['trial']} (its "
            f"{versus['study_env_steps']:,} env steps against this run's "
            f"{members * config.total_steps:,}): {np.mean(versus['values']):.2f}, vs defaults "
            f"{_verdict_line(versus['vs_control'])}; schedule - static {against['mean']:+.2f} "
            f"+/- {against['ci95']:.2f} (paired 95% CI)")
    log({"schedule": "the schedule wins: it beats the defaults",
         "static": "the TPE study's configuration wins: it beats the defaults",
         "defaults": "keep the defaults: nothing beat them"}[outcome["winner"]])


def _train_command(which: str, config: PPOConfig, chunk: int, schedule_path: Path, seeds,
                   versus: dict | None) -> list[str]:
    """The train_simple.py command line of the "schedule" or the "static" configuration on
    the validation seeds."""
    command = [*python_command(), "scripts/train_simple.py", "--scenario", config.scenario,
               "--num-opponents", str(config.num_opponents), "--num-steps",
               str(config.total_steps), *(["--env", config.env] if config.env != "bucket_brigade"
                                          else [])]
    if which == "static":
        command += [item for name, value in versus["params"].items()
                    for item in (TRAIN_FLAGS[name], str(value))]
    else:
        command += ["--hidden-size", str(config.hidden_size), "--batch-size",
                    str(config.batch_size), "--chunk-updates", str(chunk), "--schedule",
                    str(schedule_path)]
    return [*command, "--seeds", *map(str, seeds)]
