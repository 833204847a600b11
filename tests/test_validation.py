"""Validation against the control, fresh seeds, and the tuning fixes that protect evidence:
telling trials per cohort, failed members staying failed, resumed samplers not replaying,
evaluation independent of the batch, and bad input for the new flags."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from reliability_helpers import warm_compile_cache

from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig
from bb_jax.cli import tune_main, validate_main
from bb_jax.runtime import cohorts
from bb_jax.runtime.cohorts import CohortTrainer
from bb_jax.runtime.members import MemberResult, MemberSpec
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.space import (
    CONTROL,
    SEARCH_SPACE,
    control_params,
    tuning_seeds,
    validation_seeds,
)
from bb_jax.tuning.study import make_sampler
from bb_jax.tuning.tuner import Tuner
from bb_jax.tuning.validation import Candidate, top_candidates, validate, validate_study

SMALL = PPOConfig(total_steps=4096, batch_size=4096)
FIXED = {"hidden_size": 64, "batch_size": 4096, "num_epochs": 3, "clip_epsilon": 0.2,
         "entropy_coef": 0.01, "value_coef": 0.5, "gamma": 0.99, "gae_lambda": 0.95,
         "learning_rate": 3e-4}


class ScriptedTrainer:
    """Stands in for CohortTrainer: member values from a table (candidate, seed) -> value,
    None for a diverged run."""

    def __init__(self, table):
        self.table = table

    def run(self, specs):
        out = {}
        for spec in specs:
            value = self.table[(spec.hyperparams["learning_rate"], spec.seed)]
            out[spec.member_id] = (MemberResult(spec.member_id, "failed", reason="NaN")
                                   if value is None else
                                   MemberResult(spec.member_id, "complete", value))
        return out


def spec(member_id, params, scenario, seed):
    return MemberSpec(member_id, params["hidden_size"], params["batch_size"],
                      {"learning_rate": params["learning_rate"]}, scenario, seed)


def candidates(*lrs):
    rows = [Candidate(i, {**FIXED, "learning_rate": lr}, 1000.0 + i) for i, lr in enumerate(lrs)]
    return rows + [Candidate(CONTROL, {**FIXED, "learning_rate": 1.0}, None)]


SEEDS = [500, 501, 502, 503]
CONTROL_VALUES = [950.0, 960.0, 940.0, 970.0]


def table(per_lr: dict):
    out = {(1.0, s): v for s, v in zip(SEEDS, CONTROL_VALUES, strict=True)}
    for lr, values in per_lr.items():
        out.update({(lr, s): v for s, v in zip(SEEDS, values, strict=True)})
    return out


def test_a_consistent_gain_is_recommended_and_noise_is_not():
    # lr 0.1: +8..+12 on every seed (paired CI excludes 0) although its mean is lower than lr 0.2,
    # whose +/-30 swings around the control are not a gain
    values = {0.1: [v + d for v, d in zip(CONTROL_VALUES, [8, 12, 9, 11], strict=True)],
              0.2: [v + d for v, d in zip(CONTROL_VALUES, [60, -30, 65, -25], strict=True)]}
    out = validate(candidates(0.1, 0.2), spec, ScriptedTrainer(table(values)), ["default"],
                   SEEDS)
    rows = {r["trial"]: r for r in out["rows"]}
    assert rows[0]["vs_control"]["mean"] == pytest.approx(10.0)
    assert rows[0]["vs_control"]["significant"]
    assert rows[1]["mean"] > rows[0]["mean"] and not rows[1]["vs_control"]["significant"]
    assert out["recommended"] == 0
    assert rows[0]["tuning_minus_validated"] == pytest.approx(1000.0 - rows[0]["mean"])
    assert [r["mean"] for r in out["rows"]] == sorted((r["mean"] for r in out["rows"]),
                                                      reverse=True)


@pytest.mark.parametrize("order", [(0.1, 0.3), (0.3, 0.1)])
def test_of_two_significant_gains_the_larger_is_recommended(order):
    """Both beat the control on every seed; the recommendation is the higher validated mean,
    whichever the study ranked first."""
    gains = {0.1: 10.0, 0.3: 20.0}
    values = {lr: [v + gains[lr] + d for v, d in zip(CONTROL_VALUES, [1, -1, 2, -2], strict=True)]
              for lr in order}
    out = validate(candidates(*order), spec, ScriptedTrainer(table(values)), ["default"], SEEDS)
    rows = {r["trial"]: r for r in out["rows"]}
    assert all(rows[i]["vs_control"]["significant"] for i in range(2))
    assert out["recommended"] == order.index(0.3)


def test_a_failed_seed_is_counted_and_bars_the_recommendation():
    values = {0.1: [v + 50 for v in CONTROL_VALUES[:3]] + [None]}
    out = validate(candidates(0.1), spec, ScriptedTrainer(table(values)), ["default"], SEEDS)
    row = next(r for r in out["rows"] if r["trial"] == 0)
    assert row["n_failed"] == 1 and math.isnan(row["per_seed"][3])
    assert row["vs_control"]["n"] == 3
    assert out["recommended"] is None


def test_nothing_beats_the_control():
    values = {0.1: [v - 5 for v in CONTROL_VALUES]}
    out = validate(candidates(0.1), spec, ScriptedTrainer(table(values)), ["default"], SEEDS)
    assert out["recommended"] is None


def test_validation_seeds_are_fresh():
    for seed in (0, 7, 42, 12345):
        assert not set(tuning_seeds(seed, 500)) & set(validation_seeds(seed, 500))
    assert validation_seeds(42, 3) == [42500, 42501, 42502]
    assert validation_seeds(42, 2, first=9) == [9, 10]
    assert control_params() == {
        "hidden_size": PPOConfig.hidden_size, "batch_size": PPOConfig.batch_size,
        **{k: v for k, v in DEFAULT_HYPERPARAMS.items() if k in SEARCH_SPACE}}


def test_validation_refuses_tuning_seeds():
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("seed", 1)
    study.set_user_attr("tuning_seeds", [1000, 1001])
    study.add_trial(optuna.trial.create_trial(params=FIXED, distributions={
        k: SEARCH_SPACE[k] for k in FIXED}, value=1.0))
    with pytest.raises(ValueError, match="used for tuning"):
        validate_study(study, 1, 2, 4096, first_seed=1001)


def test_resumed_study_does_not_replay_the_random_start():
    settings = TuneSettings(seed=5)
    study = optuna.create_study(direction="maximize")

    def ask(n_existing):
        study.sampler = make_sampler(settings, n_existing)
        trial = study.ask(SEARCH_SPACE)
        study.tell(trial, 0.0)
        return trial.params

    first = ask(0)
    assert ask(0) == first  # the same sampler state replays ...
    assert ask(2) != first  # ... a resumed run's does not


def test_tpe_is_multivariate_with_constant_liar():
    sampler = make_sampler(TuneSettings(), 0)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._multivariate and sampler._constant_liar


def run_one(specs, **kwargs):
    trainer = CohortTrainer(SMALL, num_steps=4096, eval_interval=4096, **kwargs)
    return trainer.run(specs)


def member(i, seed, **hp):
    return MemberSpec(i, 64, 4096, {**DEFAULT_HYPERPARAMS, **hp}, "default", seed)


def test_eval_return_does_not_depend_on_the_batch():
    alone = run_one([member(0, 11)], eval_episodes=16)
    together = run_one([member(5, 13, learning_rate=3e-4), member(0, 11)], eval_episodes=16)
    assert alone[0].value == pytest.approx(together[0].value, rel=1e-5)


def test_a_failed_member_stays_failed_when_its_trial_is_stopped():
    trainer = CohortTrainer(SMALL, num_steps=8192, eval_interval=4096)
    stop_all = lambda reports: {0, 1}  # noqa: E731  the pruner stops the whole trial
    results = trainer.run([member(0, 1, learning_rate=1e10), member(1, 1)], stop_all)
    assert results[0].state == "failed" and "NaN/inf" in results[0].reason
    assert results[1].state == "stopped"


def test_finished_trials_are_told_before_a_later_cohort_crashes(monkeypatch):
    shapes = [{**FIXED, "hidden_size": 64}, {**FIXED, "hidden_size": 128}]
    settings = TuneSettings(num_steps=4096, n_trials=2, population_size=2, eval_interval=4096,
                            pruner="none", seeds_per_trial=1, enqueue=tuple(shapes))
    original = cohorts.CohortTrainer._run_cohort
    calls = []

    def crash_second(self, key, config, members, size, on_reports):
        calls.append(config.hidden_size)
        if len(calls) == 2:
            raise RuntimeError("device lost")
        return original(self, key, config, members, size, on_reports)

    monkeypatch.setattr(cohorts.CohortTrainer, "_run_cohort", crash_second)
    tuner = Tuner(settings, log=lambda line: None)
    with pytest.raises(RuntimeError, match="device lost"):
        tuner.run()
    states = {t.params["hidden_size"]: t.state for t in tuner.study.trials}
    assert states == {64: TrialState.COMPLETE, 128: TrialState.FAIL}
    assert np.isfinite(tuner.study.trials[0].value)


TUNE = ["--n-trials", "1", "--num-steps", "4096", "--eval-interval", "4096"]


@pytest.mark.parametrize("args, expected", [
    (["--seeds-per-trial", "0"], "--seeds-per-trial must be in 1..500"),
    (["--seeds-per-trial", "501"], "--seeds-per-trial must be in 1..500"),
    (["--seeds-per-trial", "two"], "positive integer or 'auto'"),
    (["--pruner", "asha"], "--pruner 'asha': valid pruners are hyperband, incumbent, median, "
                           "none, sha, or MODULE:CLASS"),
    (["--sampler", "cma"], "--sampler 'cma': valid samplers are cmaes, gp, random, tpe, or "
                           "MODULE:CLASS"),
    (["--eta", "1"], "--eta must be >= 2"),
    (["--min-fraction", "1.5"], "--min-fraction must be in (0, 1)"),
    (["--warmup-fraction", "-0.1"], "--warmup-fraction must be in [0, 1)"),
    (["--prune-alpha", "0"], "--prune-alpha must be in (0, 1)"),
    (["--timeout", "0"], "--timeout must be > 0"),
    (["--validate-top-k", "0"], "--validate-top-k must be >= 1"),
    (["--validate-seeds", "1"], "--validate-seeds must be >= 2"),
    (["--validate-seeds", "-3"], "--validate-seeds must be >= 2"),
    (["--validate-steps", "0"], "--validate-steps must be in 4096.."),
    (["--equivalence-margin", "-1"], "--equivalence-margin must be >= 0"),
    (["--equivalence-margin", "nan"], "--equivalence-margin must be >= 0"),
])
def test_bad_tuning_flags_are_one_line_exit_2_nothing_written(args, expected, tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = tune_main([*TUNE, "--output-dir", str(tmp_path / "out"), *args])
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err
    assert list(tmp_path.iterdir()) == []


def test_timeout_asks_no_new_batch(tmp_path, capsys):
    warm_compile_cache()  # the fixed shape's one-update program of 2 members
    code = tune_main(["--n-trials", "3", "--num-steps", "4096", "--eval-interval", "4096",
                      "--fix", "hidden_size=64,batch_size=4096",
                      "--population-size", "1", "--seeds-per-trial", "2", "--timeout",
                      "0.001", "--no-validate", "--output-dir", str(tmp_path),
                      "--study-name", "t", "--storage", f"sqlite:///{tmp_path / 't.db'}"])
    assert code == 0
    assert "--timeout 0.001 s reached" in capsys.readouterr().out
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 't.db'}")
    assert len(study.trials) == 1 and study.trials[0].state == TrialState.COMPLETE


@pytest.fixture
def study_without_complete_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'v.db'}"
    study = optuna.create_study(study_name="v", storage=url, direction="maximize")
    study.tell(study.ask(), state=TrialState.PRUNED)
    return url


@pytest.mark.parametrize("args, expected", [
    (["--top-k", "0"], "--top-k must be >= 1"),
    (["--n-seeds", "1"], "--n-seeds: a confidence interval needs at least 2 seeds"),
    (["--seeds", "7"], "--seeds: a confidence interval needs at least 2 seeds"),
    (["--seeds", "7", "9"], "--seeds must be consecutive"),
    (["--num-steps", "0"], "--num-steps must be in 1.."),
    (["--equivalence-margin", "-0.5"], "--equivalence-margin must be >= 0"),
    ([], "has no complete trial"),
    (["--study-name", "other"], "no study 'other' in this storage; studies: v"),
])
def test_validate_best_bad_input(study_without_complete_trial, args, expected, capsys):
    argv = ["--study-name", "v", "--storage", study_without_complete_trial, *args]
    assert validate_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_validate_best_reads_the_storage_from_the_environment(study_without_complete_trial,
                                                             monkeypatch, capsys):
    from bb_jax.cli.validate import _validate_parser

    monkeypatch.setenv("BB_JAX_STORAGE", study_without_complete_trial)
    assert _validate_parser().parse_args(["--study-name", "v"]).storage == \
        study_without_complete_trial
    # the study is found through the variable: its one pruned trial is the reported problem
    assert validate_main(["--study-name", "v"]) == 2
    assert "has no complete trial" in capsys.readouterr().err
    monkeypatch.delenv("BB_JAX_STORAGE")
    assert validate_main(["--study-name", "v"]) == 2
    assert "--storage URL or $BB_JAX_STORAGE" in capsys.readouterr().err


def test_validate_best_bad_storage_url(capsys):
    assert validate_main(["--study-name", "v", "--storage", "redis://host/0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "malformed storage URL" in err[0]


def test_every_trial_is_told_the_mean_of_its_own_members(monkeypatch):
    """A batch of 3 trials x 2 seeds x 2 scenarios: each member is (its trial's parameters,
    one seed, one scenario) and each trial's value and per-seed values come from its own 4
    members (values made from learning rate, seed and scenario by a scripted trainer)."""
    rates = (1e-4, 2e-4, 4e-4)
    seen = []

    def value(spec):
        return spec.hyperparams["learning_rate"] * 1e6 + spec.seed + (
            0.5 if spec.scenario == "hard" else 0.0)

    def scripted_run(self, specs, on_reports=None, on_finished=None):
        seen.extend(specs)
        results = {s.member_id: MemberResult(s.member_id, "complete", value(s), env_steps=4096,
                                             flops=1e9, seconds=0.1) for s in specs}
        on_finished(results)
        return results

    monkeypatch.setattr(cohorts.CohortTrainer, "run", scripted_run)
    settings = TuneSettings(scenarios=("easy", "hard"), scenario_arg="easy,hard",
                            num_steps=4096, n_trials=3, population_size=3, eval_interval=4096,
                            pruner="none", seeds_per_trial=2, seed=9,
                            enqueue=tuple({**FIXED, "learning_rate": lr} for lr in rates))
    tuner = Tuner(settings, log=lambda line: None)
    tuner.run()
    assert len(seen) == 12 and len({s.member_id for s in seen}) == 12
    assert {(s.hyperparams["learning_rate"], s.seed, s.scenario) for s in seen} == {
        (lr, seed, sc) for lr in rates for seed in (9000, 9001) for sc in ("easy", "hard")}
    for trial, lr in zip(tuner.study.trials, rates, strict=True):
        assert trial.params["learning_rate"] == lr
        per_seed = [lr * 1e6 + seed + 0.25 for seed in (9000, 9001)]
        assert trial.user_attrs["per_seed_values"] == pytest.approx(per_seed)
        assert trial.value == pytest.approx(np.mean(per_seed))
        assert trial.user_attrs["seeds"] == [9000, 9001]


def test_validation_over_scenarios_and_seeds_pairs_each_seed_across_scenarios():
    """Two scenarios x four seeds: a candidate's value on a seed is the mean of its two
    scenario runs on that seed, and the paired difference is taken seed by seed. Here the
    candidate gains +20 on hard only: +10 per seed."""
    scenario_shift = {"easy": 0.0, "hard": -300.0}

    class ByScenario:
        def run(self, specs):
            out = {}
            for s in specs:
                gain = 20.0 if (s.hyperparams["learning_rate"] == 0.1
                                and s.scenario == "hard") else 0.0
                value = CONTROL_VALUES[SEEDS.index(s.seed)] + scenario_shift[s.scenario] + gain
                out[s.member_id] = MemberResult(s.member_id, "complete", value)
            return out

    out = validate(candidates(0.1), spec, ByScenario(), ["easy", "hard"], SEEDS)
    rows = {r["trial"]: r for r in out["rows"]}
    assert rows[CONTROL]["per_seed"] == pytest.approx([v - 150.0 for v in CONTROL_VALUES])
    assert rows[0]["per_seed"] == pytest.approx([v - 140.0 for v in CONTROL_VALUES])
    assert rows[0]["vs_control"]["mean"] == pytest.approx(10.0)
    assert rows[0]["vs_control"]["ci95"] == pytest.approx(0.0, abs=1e-9)
    assert out["recommended"] == 0


def test_validation_trains_the_learner_the_study_recorded(monkeypatch):
    """A study tuned with other learner choices (here: the opposite time input and critic) is
    validated with those choices, not with this version's defaults."""
    recorded = {**PPOConfig().learner_choices, "time_input": not PPOConfig.time_input,
                "critic": "shared" if PPOConfig.critic == "separate" else "separate"}
    configs = []

    def scripted_run(self, specs, on_reports=None, on_finished=None):
        configs.append(self.base_config)
        return {s.member_id: MemberResult(s.member_id, "complete", 900.0 + s.seed % 7)
                for s in specs}

    monkeypatch.setattr(cohorts.CohortTrainer, "run", scripted_run)
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("learner", recorded)
    study.set_user_attr("seed", 3)
    study.set_user_attr("tuning_seeds", [3000, 3001])
    study.tell(study.ask(SEARCH_SPACE), 950.0)
    validate_study(study, top_k=1, n_seeds=2, num_steps=4096, log=lambda line: None)
    assert configs and all(c.learner_choices == recorded for c in configs)
    assert study.user_attrs["validation"]["seeds"] == [3500, 3501]


def test_the_top_k_complete_trials_are_validated_best_first():
    """Five complete trials of distinct values (and a pruned one): the top 2 and top 3 are
    the highest values, best first, then the control."""
    study = optuna.create_study(direction="maximize")
    for value in (3.0, 9.0, 1.0, 7.0, 5.0):
        study.add_trial(optuna.trial.create_trial(params=FIXED, distributions={
            k: SEARCH_SPACE[k] for k in FIXED}, value=value))
    study.add_trial(optuna.trial.create_trial(
        params=FIXED, distributions={k: SEARCH_SPACE[k] for k in FIXED},
        intermediate_values={1: 99.0}, state=TrialState.PRUNED))
    assert [c.trial for c in top_candidates(study, 2)] == [1, 3, CONTROL]
    top3 = top_candidates(study, 3)
    assert [c.trial for c in top3] == [1, 3, 4, CONTROL]
    assert [c.tuning_value for c in top3] == [9.0, 7.0, 5.0, None]


def test_a_seed_fails_when_any_of_its_scenarios_failed():
    """Two scenarios: the candidate's run on "hard" diverged for one seed, its "easy" run
    did not. That seed is a failed seed (NaN, counted), and the candidate is not
    recommended although it gains +20 on every other seed."""

    class OneHardRunFails:
        def run(self, specs):
            out = {}
            for s in specs:
                tuned = s.hyperparams["learning_rate"] == 0.1
                value = CONTROL_VALUES[SEEDS.index(s.seed)] + (20.0 + s.seed % 3 if tuned
                                                               else 0.0)
                failed = tuned and s.scenario == "hard" and s.seed == SEEDS[2]
                out[s.member_id] = (MemberResult(s.member_id, "failed", reason="NaN")
                                    if failed else MemberResult(s.member_id, "complete", value))
            return out

    out = validate(candidates(0.1), spec, OneHardRunFails(), ["easy", "hard"], SEEDS)
    row = next(r for r in out["rows"] if r["trial"] == 0)
    assert row["n_failed"] == 1 and math.isnan(row["per_seed"][2])
    assert all(math.isfinite(v) for i, v in enumerate(row["per_seed"]) if i != 2)
    assert row["vs_control"]["n"] == 3 and row["vs_control"]["mean"] > 0
    assert not row["vs_control"]["beats_control"] and out["recommended"] is None


@pytest.mark.parametrize("budget", [None, 1e9])
def test_validation_says_what_its_figures_measure(budget, monkeypatch):
    """The JSON names what the tuning value and the validated mean measure (they differ in
    episodes and seeds, so their difference is `tuning_minus_validated`, not a selection
    bias), and under a FLOP budget, where every run costs the same, names no cheapest."""

    def scripted_run(self, specs, on_reports=None, on_finished=None):
        return {s.member_id: MemberResult(s.member_id, "complete", 900.0 + s.seed % 7,
                                          flops=1e9) for s in specs}

    monkeypatch.setattr(cohorts.CohortTrainer, "run", scripted_run)
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("seed", 3)
    study.set_user_attr("num_steps", 8192)
    study.set_user_attr("flop_budget", budget)
    study.tell(study.ask(SEARCH_SPACE), 950.0)
    outcome = validate_study(study, top_k=1, n_seeds=2, eval_episodes=7,
                             log=lambda line: None)
    measures = study.user_attrs["validation"]["measures"]
    assert "training episodes of the last report interval" in measures["tuning_value"]
    assert "7 fresh episodes per seed, on the validation seeds" in measures["mean"]
    row = next(r for r in outcome["rows"] if r["trial"] == 0)
    assert row["tuning_minus_validated"] == pytest.approx(950.0 - row["mean"])
    assert "selection_bias" not in row
    if budget is None:
        assert "after 8,192 steps" in measures["tuning_value"] and outcome["cheapest"] == 0
    else:
        assert "after 0.001 TFLOP" in measures["tuning_value"] and outcome["cheapest"] is None


def test_tune_validate_recommend_prints_the_corrected_decision(tmp_path, monkeypatch, capsys):
    """The sweep -> validation -> recommendation flow of tune_main with a scripted trainer:
    lr 1e-3 gains +30 (plus noise of 0-12 per seed and configuration) over the control, lr
    1e-4 nothing. The
    recommendation carries the Holm correction over the 2 candidates, --equivalence-margin
    reaches the cheapest choice, and both are printed and written."""
    rates = {1e-4: 0.0, 1e-3: 30.0}

    def scripted_run(self, specs, on_reports=None, on_finished=None):
        results = {s.member_id: MemberResult(
            s.member_id, "complete",
            900.0 + rates.get(s.hyperparams["learning_rate"], 0.0)
            + (s.seed * 7919 + round(s.hyperparams["learning_rate"] * 1e5)) % 13,
            env_steps=4096, flops=1e11 * s.hyperparams["num_epochs"], seconds=0.1)
            for s in specs}
        if on_finished is not None:
            on_finished(results)
        return results

    monkeypatch.setattr(cohorts.CohortTrainer, "run", scripted_run)
    enqueue = tmp_path / "enqueue.json"
    enqueue.write_text(json.dumps([{"learning_rate": lr} for lr in rates]))
    code = tune_main(["--n-trials", "2", "--num-steps", "4096", "--eval-interval", "4096",
                      "--fix", "hidden_size=64,batch_size=512",
                      "--enqueue", str(enqueue), "--no-incumbent", "--population-size", "2",
                      "--pruner", "none", "--seeds-per-trial", "1", "--validate-top-k", "2",
                      "--validate-seeds", "4", "--equivalence-margin", "2.5",
                      "--study-name", "flow", "--output-dir", str(tmp_path)])
    assert code == 0
    results = json.loads((tmp_path / "flow_results.json").read_text())
    validation, rec = results["validation"], results["recommendation"]
    winner = next(r for r in validation["rows"] if r["params"]["learning_rate"] == 1e-3)
    assert rec["trial"] == winner["trial"] == validation["recommended"]
    assert rec["correction"] == {"method": "holm", "family": 2, "alpha": 0.05}
    vs = rec["vs_control"]
    assert 20.0 < vs["mean"] < 40.0 and vs["ci95"] > 1.0 and vs["p_holm"] <= 0.05
    assert validation["equivalence_margin"] == 2.5
    assert validation["margin_rule"] == "--equivalence-margin"
    assert rec["cheapest"]["equivalence_margin"] == 2.5
    out = capsys.readouterr().out
    assert f"recommendation: trial {winner['trial']} beat the default configuration" in out
    assert (f"{vs['mean']:+.2f} +/- {vs['ci95']:.2f} over the default configuration (paired "
            f"95% CI; +/- {vs['ci_simultaneous']:.2f} at 97.5% simultaneous, Bonferroni; "
            f"Holm-adjusted p {vs['p_holm']:.3g})") in out
    assert "cheapest within 2.50 of the best validated" in out


def test_the_incumbent_is_not_validated_beside_the_control():
    """A study started from the defaults: its incumbent trial (the control's configuration)
    tops the study, yet validation trains the next best trials and the control once."""
    study = optuna.create_study(direction="maximize")
    distributions = {k: SEARCH_SPACE[k] for k in control_params()}
    study.add_trial(optuna.trial.create_trial(params=control_params(),
                                              distributions=distributions, value=99.0))
    for value in (3.0, 7.0):
        study.add_trial(optuna.trial.create_trial(params=FIXED, distributions={
            k: SEARCH_SPACE[k] for k in FIXED}, value=value))
    assert [c.trial for c in top_candidates(study, 2)] == [2, 1, CONTROL]
