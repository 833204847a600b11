"""Pruners: the rules on hand-built studies, and synthetic sweeps (planted quality plus noise)
run through real Optuna studies in the tuner's batch order."""

from __future__ import annotations

import optuna
import pytest
from scipy.stats import norm

from bb_jax.testing.synthetic_sweeps import synthetic_sweep
from bb_jax.tuning.pruners import (
    BracketHalvingPruner,
    EvidenceMedianPruner,
    SyncHalvingPruner,
    noise_sd,
    rung_steps,
)
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.study import make_pruner

# noise of one reported value: one seed's last-100 mean (the old value, measured SD 16-25 on
# `default`) and the mean over 2 seeds of the interval mean (measured SD 8-11 per seed)
OLD_NOISE, K_SEED_NOISE = 24.0, 8.0
QUALITY_SD = 20.0


def batch_study(pruner, values_by_step: list[dict[int, float]], direction="maximize"):
    """A study whose trials (one per dict) reported these values; all still RUNNING."""
    study = optuna.create_study(direction=direction, pruner=pruner)
    trials = [study.ask() for _ in values_by_step]
    for trial, values in zip(trials, values_by_step, strict=True):
        for step, value in sorted(values.items()):
            trial.report(value, step)
    return study, trials


def test_noise_sd_is_robust_to_a_shared_trend_and_an_outlier():
    changes = [10.0 + d for d in (-2.0, -1.0, 0.0, 1.0, 2.0)] + [500.0]
    # MAD of (-2..2, 490) around the median 10.5 is 1.5: sd = 1.5 / Phi^-1(3/4) / sqrt(2)
    assert noise_sd(changes) == pytest.approx(1.5 / norm.ppf(0.75) / 2**0.5)  # MAD 1.5
    assert noise_sd([1.0]) != noise_sd([1.0])  # NaN: no estimate from one change


def test_median_prunes_only_clear_losers():
    # eight peers: latest values 100..107 (median 103.5), each changed by 0 or +/-2 since its
    # previous report (noise sd = 1.4826 * 2 / sqrt(2) ~ 2.1; margin 1.5 -> 3.1 below)
    peers = [{1000: v - d, 2000: v} for v, d in zip(range(100, 108), [0, 2, -2, 0, 2, -2, 0, 2],
                                                     strict=True)]
    pruner = EvidenceMedianPruner(num_steps=4000, window=1500, warmup_fraction=0.25,
                                  margin=1.5, min_peers=5)
    study, trials = batch_study(pruner, [*peers, {1000: 99.0, 2000: 99.0},
                                         {1000: 102.0, 2000: 102.0}])
    clear_loser, close_call = trials[-2], trials[-1]
    assert clear_loser.should_prune()  # 4.5 below the median
    assert not close_call.should_prune()  # 1.5 below: inside the noise
    assert not any(t.should_prune() for t in trials[4:8])  # above the median


def test_median_waits_for_warmup_and_peers():
    pruner = EvidenceMedianPruner(num_steps=10_000, window=1500, warmup_fraction=0.25,
                                  margin=0.0, min_peers=3)
    _, trials = batch_study(pruner, [{1000: 10.0 * i, 2000: 10.0 * i + i} for i in range(6)])
    assert not trials[0].should_prune()  # step 2000 < 25% of 10000
    pruner = EvidenceMedianPruner(num_steps=4000, window=1500, warmup_fraction=0.25,
                                  margin=0.0, min_peers=6)
    _, trials = batch_study(pruner, [{1000: 10.0 * i, 2000: 10.0 * i + i} for i in range(6)])
    assert not trials[0].should_prune()  # 5 peers < 6
    pruner.min_peers = 5
    assert trials[0].should_prune()


def test_median_respects_the_direction():
    pruner = EvidenceMedianPruner(num_steps=4000, window=1500, warmup_fraction=0.0,
                                  margin=0.0, min_peers=3)
    _, trials = batch_study(pruner, [{1000: float(i), 2000: float(i) + (i % 2)}
                                     for i in range(6)], direction="minimize")
    assert trials[5].should_prune() and not trials[0].should_prune()


def test_rung_steps():
    assert rung_steps(90_000, 3, 1 / 9) == [10_000, 30_000]
    assert rung_steps(8192, 2, 0.25) == [2048, 4096]
    assert rung_steps(1000, 3, 0.5) == [500]


def test_sha_keeps_the_top_third_of_a_batch_at_each_rung():
    pruner = SyncHalvingPruner(num_steps=9000, eta=3, min_fraction=1 / 3)  # rungs 3000, 9000
    _, trials = batch_study(pruner, [{1500: 0.0, 3000: float(v)} for v in
                                     [5, 1, 9, 3, 7, 2, 8, 4, 6]])
    verdicts = [t.should_prune() for t in trials]
    survivors = {v for t, v, pruned in zip(trials, [5, 1, 9, 3, 7, 2, 8, 4, 6], verdicts,
                                           strict=True) if not pruned}
    assert survivors == {9, 8, 7}


def test_sha_judges_only_at_rungs_and_against_earlier_trials():
    pruner = SyncHalvingPruner(num_steps=9000, eta=3, min_fraction=1 / 3)
    study, trials = batch_study(pruner, [{3000: float(v)} for v in (10, 20, 30)])
    late = study.ask()
    late.report(15.0, 1000)
    assert not late.should_prune()  # before the rung
    late.report(15.0, 3200)  # first report past the rung: 15 vs 10, 20, 30 -> top 2 of 4
    assert late.should_prune()
    late.report(40.0, 6000)  # past no new rung
    assert not late.should_prune()


def test_hyperband_judges_each_trial_within_its_bracket():
    pruner = BracketHalvingPruner(num_steps=9000, eta=3, min_fraction=1 / 9)
    assert pruner.n_brackets == 2
    assert [b.rungs for b in pruner.brackets] == [[1000, 3000], [3000]]
    # trials 0, 2, 4 in bracket 0, 1, 3, 5 in bracket 1; all report 1 at 1000 and at 3000
    values = [1.0, 100.0, 2.0, 100.0, 3.0, 100.0]
    _, trials = batch_study(pruner, [{1000: v, 3000: v} for v in values])
    # bracket 1's trials are all 100: tied, none pruned; bracket 0 keeps its best of three
    assert [t.should_prune() for t in trials] == [True, False, True, False, False, False]


@pytest.mark.parametrize("pruner", ["median", "sha"])
def test_truly_best_survive_at_k_seed_noise_and_compute_is_saved(pruner):
    settings = TuneSettings(pruner=pruner, num_steps=100_000, eval_interval=10_000)
    outcome = synthetic_sweep(lambda steps: make_pruner(settings), QUALITY_SD, K_SEED_NOISE,
                              repetitions=10)
    assert outcome.top_survival >= 0.9, outcome
    assert outcome.compute_saved >= 0.2, outcome


def test_synthetic_sweep_sees_a_pruner_that_prunes_the_best():
    """The harness itself: Optuna's MedianPruner on single-seed noise loses most top trials,
    and a pruner that never prunes keeps them all and saves nothing."""
    harsh = synthetic_sweep(lambda steps: optuna.pruners.MedianPruner(5, 0), QUALITY_SD,
                            OLD_NOISE, repetitions=4)
    assert harsh.top_survival < 0.75 and harsh.pruned > 0.5
    none = synthetic_sweep(lambda steps: optuna.pruners.NopPruner(), QUALITY_SD, OLD_NOISE,
                           repetitions=2)
    assert none.top_survival == 1.0 and none.compute_saved == 0.0


def test_hyperband_through_the_tuner_keeps_the_best_of_each_bracket(monkeypatch):
    """Six trials in one batch under --pruner hyperband (eta 3, first rung 1/9 of the steps),
    trained by a scripted trainer whose members report a value planted per trial at every
    eval interval. Trials 0, 2, 4 form bracket 0 (rung at 1/9), 1, 3, 5 bracket 1 (rung at
    1/3); each bracket keeps its best third. The two best trials overall (2 and 4) share a
    bracket, so keeping them both, as one halving over the batch would, fails."""
    from bb_jax.runtime import cohorts
    from bb_jax.runtime.members import MemberResult, Report
    from bb_jax.tuning.space import control_params
    from bb_jax.tuning.tuner import Tuner

    planted = [10.0, 20.0, 60.0, 30.0, 50.0, 40.0]
    rates = [1e-4 * (i + 1) for i in range(len(planted))]
    num_steps, interval = 9 * 1024, 1024

    def scripted_run(self, specs, on_reports=None, on_finished=None):
        value = {s.member_id: planted[rates.index(s.hyperparams["learning_rate"])]
                 for s in specs}
        active, results = set(value), {}
        for steps in range(interval, num_steps + 1, interval):
            final = steps == num_steps
            stop = on_reports([Report(m, steps, value[m], final) for m in sorted(active)])
            for m in stop:
                results[m] = MemberResult(m, "stopped", value[m], env_steps=steps)
            active -= stop
        results.update({m: MemberResult(m, "complete", value[m], env_steps=num_steps)
                        for m in active})
        on_finished(results)
        return results

    monkeypatch.setattr(cohorts.CohortTrainer, "run", scripted_run)
    settings = TuneSettings(num_steps=num_steps, eval_interval=interval, n_trials=6,
                            population_size=6, pruner="hyperband", sha_eta=3,
                            sha_min_fraction=1 / 9, seeds_per_trial=2,
                            enqueue=tuple({**control_params(), "learning_rate": lr}
                                          for lr in rates))
    tuner = Tuner(settings, log=lambda line: None)
    tuner.run()
    trials = tuner.study.trials
    assert [t.state == optuna.trial.TrialState.COMPLETE for t in trials] == [
        False, False, True, False, False, True]
    first_rung = {0: num_steps // 9, 1: num_steps // 3}
    for t in trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            assert max(t.intermediate_values) == first_rung[t.number % 2]


def test_tuner_callbacks_see_every_trial_as_it_is_told(monkeypatch, tmp_path):
    """Optuna's callback protocol: callback(study, frozen_trial) once per trial, after its
    tell, with its final state and value (here: 3 trials, two of them pruned); the
    settings' mlflow_uri (--mlflow-uri) adds MLflow's: one MLflow run per trial (a pruned
    one with its last reported value, as Optuna tells it)."""
    from mlflow import MlflowClient

    from bb_jax.runtime import cohorts
    from bb_jax.runtime.members import MemberResult, Report
    from bb_jax.tuning.space import control_params
    from bb_jax.tuning.tuner import Tuner

    planted = {1e-4: 10.0, 2e-4: 30.0, 3e-4: 20.0}

    def scripted_run(self, specs, on_reports=None, on_finished=None):
        value = {s.member_id: planted[s.hyperparams["learning_rate"]] for s in specs}
        stop = on_reports([Report(m, 2048, v) for m, v in value.items()])
        results = {m: MemberResult(m, "stopped" if m in stop else "complete", v,
                                   env_steps=4096) for m, v in value.items()}
        on_finished(results)
        return results

    monkeypatch.setattr(cohorts.CohortTrainer, "run", scripted_run)
    seen = []
    settings = TuneSettings(num_steps=4096, eval_interval=2048, n_trials=3, population_size=3,
                            pruner="sha", sha_eta=3, sha_min_fraction=0.5, seeds_per_trial=1,
                            enqueue=tuple({**control_params(), "learning_rate": lr}
                                          for lr in planted),
                            mlflow_uri=f"sqlite:///{tmp_path}/mlflow.db")
    tuner = Tuner(settings, log=lambda line: None,
                  callbacks=[lambda study, trial: seen.append(
                      (study.study_name, trial.number, trial.state, trial.value))])
    tuner.run()
    name = tuner.study.study_name
    assert [(n, number) for n, number, _, _ in seen] == [(name, 0), (name, 1), (name, 2)]
    assert [state for _, _, state, _ in seen] == [optuna.trial.TrialState.PRUNED,
                                                  optuna.trial.TrialState.COMPLETE,
                                                  optuna.trial.TrialState.PRUNED]
    assert seen[1][3] == 30.0
    client = MlflowClient(settings.mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert sorted((r.info.run_name, r.data.tags["state"], r.data.metrics.get("train_return"),
                   float(r.data.params["learning_rate"])) for r in runs) == [
        ("0", "PRUNED", 10.0, 1e-4), ("1", "COMPLETE", 30.0, 2e-4), ("2", "PRUNED", 20.0, 3e-4)]
