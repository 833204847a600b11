"""Pruners: the rules on hand-built studies, synthetic sweeps (planted quality plus seed
noise) run through real Optuna studies in the tuner's batch order, and the tuner's per-seed
reports they read."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from scipy.stats import t as student_t

from bb_jax.testing.synthetic_sweeps import synthetic_sweep
from bb_jax.tuning.pruners import (
    EvidenceMedianPruner,
    HyperbandPruner,
    IncumbentPruner,
    SyncHalvingPruner,
    bracket_cycle,
    bracket_sizes,
    planned_checks,
    rung_steps,
    value_at,
)
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.study import make_pruner

# noise of one reported value: one seed's last-100 mean (the old value, measured SD 16-25 on
# `default`) and the mean over 2 seeds of the interval mean (measured SD 8-11 per seed)
OLD_NOISE, K_SEED_NOISE = 24.0, 8.0
QUALITY_SD = 20.0


def batch_study(pruner, values_by_step: list[dict[int, float]], direction="maximize",
                seeds_by_step: list[dict[int, list[float]]] | None = None):
    """A study whose trials (one per dict) reported these values (and, given, these per-seed
    values as the tuner writes them); all still RUNNING."""
    study = optuna.create_study(direction=direction, pruner=pruner)
    trials = [study.ask() for _ in values_by_step]
    for n, (trial, values) in enumerate(zip(trials, values_by_step, strict=True)):
        for step, value in sorted(values.items()):
            if seeds_by_step is not None:
                trial.set_user_attr("seed_reports", {str(s): seeds_by_step[n][s]
                                                     for s in seeds_by_step[n] if s <= step})
            trial.report(value, step)
    return study, trials


def seeded(curves: list[dict[int, list[float]]]):
    """(values_by_step, seeds_by_step) of trials given by their per-seed curves."""
    return [{s: float(np.mean(v)) for s, v in c.items()} for c in curves], curves


def test_value_at_interpolates_between_reports():
    curve = {2048: 10.0, 4096: 30.0}
    assert value_at(curve, 3072) == pytest.approx(20.0)
    assert value_at(curve, 4096) == 30.0
    assert value_at(curve, 1000) == 10.0  # nothing before: the first report stands
    assert value_at(curve, 5000) is None  # not reached
    assert list(value_at({0: [0.0, 2.0], 10: [10.0, 4.0]}, 5)) == [5.0, 3.0]


def test_planned_checks():
    assert planned_checks(100_000, 10_000, 0.25) == 7  # 30k .. 90k; the final report is none
    assert planned_checks(100_000, 10_000, 0.0) == 9
    assert planned_checks(1000, 5000, 0.0) == 1


# ---------------------------------------------------------------- evidence median


def median_pruner(checks=1, alpha=0.05, min_peers=5, warmup_fraction=0.25, num_steps=4000):
    return EvidenceMedianPruner(num_steps=num_steps, window=1500, checks=checks,
                                warmup_fraction=warmup_fraction, alpha=alpha,
                                min_peers=min_peers)


def test_median_judges_by_the_seed_noise():
    """Eight peers at 100..107 (median 103.5), each seed +/-1 around it: pooled seed SD
    sqrt(2) (9 trials x 1 df), standard error of a 2-seed mean 1, the median's error adds
    pi/16 of it: margin t_9(0.95) * sqrt(1 + pi / 16) = 2.00 below the median."""
    margin = student_t.ppf(0.95, 9) * math.sqrt(1 + math.pi / 16)
    assert margin == pytest.approx(2.0, abs=0.01)
    peers = [{1000: [v - 1, v + 1], 2000: [v - 1, v + 1]} for v in range(100, 108)]
    for below, pruned in ((2.2, True), (1.8, False)):
        v = 103.5 - below
        values, seeds = seeded([*peers, {1000: [v - 1, v + 1], 2000: [v - 1, v + 1]}])
        _, trials = batch_study(median_pruner(), values, seeds_by_step=seeds)
        assert trials[-1].should_prune() is pruned, below
        assert not any(t.should_prune() for t in trials[4:8])  # above the median


def test_median_is_not_fooled_by_steady_curves_with_lasting_seed_offsets():
    """Every trial's curve is flat (the change between its reports is 0, the old noise
    estimate), but its two seeds lie 20 apart (a lasting seed offset): a trial 5 below the
    median is within the seed noise."""
    peers = [{1000: [v - 10, v + 10], 2000: [v - 10, v + 10]} for v in range(100, 108)]
    values, seeds = seeded([*peers, {1000: [88.5, 108.5], 2000: [88.5, 108.5]}])
    _, trials = batch_study(median_pruner(), values, seeds_by_step=seeds)
    assert not trials[-1].should_prune()


def test_median_splits_alpha_over_its_checks():
    """The same trial (2.2 below, as above) survives when the 5% are split over 10 checks."""
    peers = [{2000: [v - 1, v + 1]} for v in range(100, 108)]
    values, seeds = seeded([*peers, {2000: [100.3, 102.3]}])
    _, trials = batch_study(median_pruner(checks=1), values, seeds_by_step=seeds)
    assert trials[-1].should_prune()
    _, trials = batch_study(median_pruner(checks=10), values, seeds_by_step=seeds)
    assert not trials[-1].should_prune()


def test_median_with_one_seed_uses_the_spread_across_trials():
    """No seed spread: the noise is the normal-consistent MAD of the values (here 2.97 for
    100..107 and the trial), so a trial 1.5 below the median survives and one 10 below not."""
    peers = [{2000: float(v)} for v in range(100, 108)]
    for v, pruned in ((102.0, False), (93.5, True)):
        _, trials = batch_study(median_pruner(), [*peers, {2000: v}])
        assert trials[-1].should_prune() is pruned


def test_median_waits_for_warmup_and_peers():
    values = [{1000: 0.0, 2000: 0.0}] + [{1000: 90.0 + i, 2000: 100.0 + i} for i in range(5)]
    _, trials = batch_study(median_pruner(num_steps=10_000), values)
    assert not trials[0].should_prune()  # step 2000 < 25% of 10000
    pruner = median_pruner(min_peers=6)
    _, trials = batch_study(pruner, values)
    assert not trials[0].should_prune()  # 5 peers < 6
    pruner.min_peers = 5
    assert trials[0].should_prune()


def test_median_respects_the_direction():
    values = [{2000: float(v)} for v in [*range(100, 108), 120.0]]
    _, trials = batch_study(median_pruner(), values, direction="minimize")
    assert trials[-1].should_prune() and not trials[0].should_prune()


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"alpha": 1.0}, {"checks": 0},
                                    {"warmup_fraction": 1.0}, {"min_peers": 0}])
def test_median_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        median_pruner(**kwargs)


def test_median_on_pure_seed_noise_prunes_few_trials():
    """Identical true curves, each seed with a lasting offset (SD 8) plus fresh noise: the
    per-trial false-prune rate stays near alpha (0.05); the old rule (consecutive-report
    noise, a 1.5-SD margin at each check) pruned ~38%. 2 x 100 trials, 7 checks each."""
    settings = TuneSettings(pruner="median", num_steps=100_000, eval_interval=10_000)
    outcome = synthetic_sweep(lambda steps: make_pruner(settings), 0.0, 4.0, repetitions=2,
                              n_seeds=2, offset_sd=8.0, seed=3)
    assert outcome.pruned <= 0.1, outcome


def test_median_prunes_a_truly_bad_trial():
    settings = TuneSettings(pruner="median", num_steps=100_000, eval_interval=10_000)
    pruner = make_pruner(settings)
    # ten trials spread 28..32.5 at 30k steps, each seed 4 from their mean; one 60 below
    curves = [{s: [v * s / 30_000 - 4, v * s / 30_000 + 4] for s in (20_000, 30_000)}
              for v in np.arange(28.0, 33.0, 0.5)]
    curves.append({s: [-34.0, -26.0] for s in (20_000, 30_000)})
    values, seeds = seeded(curves)
    _, trials = batch_study(pruner, values, seeds_by_step=seeds)
    assert trials[-1].should_prune()
    assert sum(t.should_prune() for t in trials[:-1]) == 0


# ---------------------------------------------------------------- halving


def test_rung_steps():
    assert rung_steps(90_000, 3, 1 / 9) == [10_000, 30_000]
    assert rung_steps(8192, 2, 0.25) == [2048, 4096]
    assert rung_steps(1000, 3, 0.5) == [500]


@pytest.mark.parametrize("values,survivors", [
    ([5, 1, 9, 3, 7, 2, 8, 4, 6], {9, 8, 7}),
    # ceil(5 / 3) = 2 survive: the second best too (5 // 3 would keep only the best)
    ([5, 1, 9, 3, 7], {9, 7}),
])
def test_sha_keeps_the_top_ceil_n_over_eta_at_each_rung(values, survivors):
    pruner = SyncHalvingPruner(num_steps=9000, eta=3, min_fraction=1 / 3)  # rungs 3000, 9000
    _, trials = batch_study(pruner, [{1500: 0.0, 3000: float(v)} for v in values])
    kept = {v for t, v in zip(trials, values, strict=True) if not t.should_prune()}
    assert kept == survivors


def test_sha_judges_only_at_rungs_and_against_earlier_trials():
    pruner = SyncHalvingPruner(num_steps=9000, eta=3, min_fraction=1 / 3)
    study, trials = batch_study(pruner, [{3000: float(v)} for v in (10, 20, 30)])
    late = study.ask()
    late.report(15.0, 1000)
    assert not late.should_prune()  # before the rung
    late.report(15.0, 3000)  # at the rung: 15 vs 10, 20, 30 -> top 2 of 4
    assert late.should_prune()
    late.report(40.0, 6000)  # past no new rung
    assert not late.should_prune()


def test_sha_compares_trials_with_other_report_grids_at_the_rung_step():
    """Rung at 3000. Trial 0 reports every 2000 steps, its peers every 2500 (other batch
    sizes). All curves rise with training; the peers rise faster (slopes 1.03-1.1 vs 1.0),
    so at 3000 steps trial 0 is the worst (30 vs 30.9-33), though its first report past the
    rung (40 at 4000) beats theirs (36.05-38.5 at 3500). Judged at the rung step, trial 0 and
    the slowest peer are pruned; judged at first reports past the rung, trial 0 would be the
    best and the peer with slope 1.07 pruned instead."""
    pruner = SyncHalvingPruner(num_steps=9000, eta=3, min_fraction=1 / 3, min_peers=3)
    grid0, grid1 = (2000, 4000), (2500, 3500)
    curves = [{s: s / 100 for s in grid0}] + [{s: k * s / 100 for s in grid1}
                                             for k in (1.03, 1.07, 1.1)]
    _, trials = batch_study(pruner, curves)
    assert [t.should_prune() for t in trials] == [True, True, False, False]


@pytest.mark.parametrize("kwargs", [{"eta": 1}, {"min_fraction": 0.0}, {"min_fraction": 1.5},
                                    {"num_steps": 0}])
def test_halving_rules_reject_bad_arguments(kwargs):
    args = {"num_steps": 9000, "eta": 3, "min_fraction": 1 / 3, **kwargs}
    with pytest.raises(ValueError):
        SyncHalvingPruner(**args)
    with pytest.raises(ValueError):
        HyperbandPruner(**args)


# ---------------------------------------------------------------- hyperband


def test_hyperband_brackets_follow_the_published_sizes():
    """s_max = 2 (rungs at 1/9 and 1/3): n_s = ceil(3 / (s + 1) * 3**s) = 3, 5, 9 for
    s = 0, 1, 2; trial numbers cycle through the brackets with exactly these frequencies, and
    bracket s's first rung lies at 1/9 * 3**(2 - s) (bracket 0: none)."""
    pruner = HyperbandPruner(num_steps=9000, eta=3, min_fraction=1 / 9)
    assert pruner.sizes == bracket_sizes(2, 3) == [3, 5, 9]
    assert [b.rungs for b in pruner.brackets] == [[], [3000], [1000, 3000]]
    study = optuna.create_study()
    counts = np.bincount([pruner.bracket_of(study.ask()) for _ in range(4 * 17)], minlength=3)
    assert list(counts) == [12, 20, 36]
    # the proportions of Li et al.: n_s proportional to eta**s / (s + 1), up to the ceil
    share = np.array([3**s / (s + 1) for s in range(3)])
    assert np.allclose(counts / counts.sum(), share / share.sum(), atol=0.03)
    cycle = bracket_cycle([1, 2, 4])
    assert sorted(cycle) == [0, 1, 1, 2, 2, 2, 2]
    assert set(cycle[:4]) == {0, 1, 2}  # the first trials spread over the brackets


def test_hyperband_never_prunes_bracket_zero():
    """17 trials (one round): bracket 0's trials report the worst values at every step and
    are never pruned; bracket 2's worst are."""
    pruner = HyperbandPruner(num_steps=9000, eta=3, min_fraction=1 / 9)
    values = [-1000.0 if pruner.cycle[n] == 0 else float(n) for n in range(17)]
    study = optuna.create_study(direction="maximize", pruner=pruner)
    trials = [study.ask() for _ in values]
    pruned = set()
    for step in (1000, 2000, 3000, 6000):
        for trial, value in zip(trials, values, strict=True):
            trial.report(value, step)
        pruned |= {t.number for t in trials if t.should_prune()}
    assert not {n for n in pruned if pruner.cycle[n] == 0}
    assert {n for n in pruned if pruner.cycle[n] == 2}


def test_hyperband_through_the_tuner_keeps_the_best_of_each_bracket(monkeypatch):
    """Nine trials in one batch under --pruner hyperband (eta 3, first rung 1/9 of the
    steps), trained by a scripted trainer whose members report a value planted per trial at
    every eval interval. The brackets are 2, 1, 2, 0, 2, 1, 2, 0, 2: bracket 2 (trials 0, 2,
    4, 6, 8) keeps its best ceil(5/3) = 2 at its first rung; bracket 1 (two trials) has too
    few to halve; bracket 0 (trials 3 and 7, the worst of all) is never pruned."""
    from bb_jax.runtime import cohorts
    from bb_jax.runtime.members import MemberResult, Report
    from bb_jax.tuning.space import control_params
    from bb_jax.tuning.tuner import Tuner

    planted = [10.0, 40.0, 50.0, 1.0, 30.0, 45.0, 60.0, 2.0, 20.0]
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
    settings = TuneSettings(num_steps=num_steps, eval_interval=interval, n_trials=9,
                            population_size=9, pruner="hyperband", sha_eta=3,
                            sha_min_fraction=1 / 9, seeds_per_trial=2,
                            enqueue=tuple({**control_params(), "learning_rate": lr}
                                          for lr in rates))
    tuner = Tuner(settings, log=lambda line: None)
    tuner.run()
    trials = tuner.study.trials
    assert [t.number for t in trials if t.state == TrialState.PRUNED] == [0, 4, 8]
    assert all(max(t.intermediate_values) == 1024 for t in trials
               if t.state == TrialState.PRUNED)


# ---------------------------------------------------------------- incumbent


def frozen(number_values: dict[int, list[float]], incumbent=False, state=TrialState.RUNNING):
    """A trial with these per-seed reports {step: [per seed]} (value: their mean)."""
    return create_trial(
        state=state, value=None if state != TrialState.COMPLETE else float(
            np.mean(number_values[max(number_values)])),
        params={"x": 0.5}, distributions={"x": FloatDistribution(0.0, 1.0)},
        intermediate_values={s: float(np.mean(v)) for s, v in number_values.items()},
        user_attrs={"seed_reports": {str(s): v for s, v in number_values.items()},
                    **({"incumbent": True} if incumbent else {})})


def incumbent_study(trials, fallback=None, checks=7, direction="maximize"):
    pruner = IncumbentPruner(fallback or optuna.pruners.NopPruner(), num_steps=10_000,
                             window=1500, checks=checks, warmup_fraction=0.25)
    study = optuna.create_study(direction=direction, pruner=pruner)
    for trial in trials:
        study.add_trial(trial)
    return study, pruner


REFERENCE = {2000: [100.0, 110.0, 90.0, 105.0], 4000: [200.0, 210.0, 190.0, 205.0]}


def test_incumbent_prunes_a_trial_far_below_it_on_every_seed():
    """The incumbent's curve is interpolated at 3000 (150, 160, 140, 155); the trial reports
    at 3000 and lies 40 below it on every seed (+/- 3)."""
    far = {3000: [110.0, 123.0, 97.0, 115.0]}
    equal = {3000: [152.0, 158.0, 141.0, 153.0]}
    study, pruner = incumbent_study([frozen(REFERENCE, incumbent=True), frozen(far),
                                     frozen(equal)])
    inc, far_trial, equal_trial = study.get_trials()
    assert pruner.prune(study, far_trial)
    assert not pruner.prune(study, equal_trial)
    assert not pruner.prune(study, inc)
    # the same trial in a minimizing study is better than the incumbent, not worse
    study, pruner = incumbent_study([frozen(REFERENCE, incumbent=True), frozen(far)],
                                    direction="minimize")
    assert not pruner.prune(study, study.get_trials()[1])


def test_incumbent_rule_controls_the_false_prune_rate():
    """Trials equal to the incumbent in truth (per-seed noise SD 10 on both, 4 seeds): at one
    check with alpha 0.05, about 5% are pruned. 60 studies (a fresh incumbent each) of 15
    trials; the trials of one study share their incumbent's noise, hence the loose bound."""
    rng = np.random.default_rng(0)
    verdicts = []
    for _ in range(60):
        trials = [frozen({3000: list(150.0 + rng.normal(0.0, 10.0, 4))}, incumbent=n == 0)
                  for n in range(16)]
        study, pruner = incumbent_study(trials, checks=1)
        verdicts += [pruner.prune(study, t) for t in study.get_trials()[1:]]
    assert 0.01 <= np.mean(verdicts) <= 0.1


def test_incumbent_delegates_when_it_cannot_judge():
    """No incumbent, an incumbent that has not reached the trial's step, or one seed: the
    fallback decides (here: a pruner that always prunes)."""

    class Always(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    far = {3000: [110.0, 123.0, 97.0, 115.0]}
    cases = [[frozen(REFERENCE), frozen(far)],  # no incumbent
             [frozen({2000: REFERENCE[2000]}, incumbent=True), frozen(far)],  # not at 3000
             [frozen({2000: [100.0], 4000: [200.0]}, incumbent=True), frozen({3000: [150.0]})]]
    for trials in cases:
        study, pruner = incumbent_study(trials, fallback=Always())
        assert pruner.prune(study, study.get_trials()[1])
    equal = {3000: [152.0, 158.0, 141.0, 153.0]}
    study, pruner = incumbent_study([frozen(REFERENCE, incumbent=True), frozen(equal)],
                                    fallback=Always())
    assert not pruner.prune(study, study.get_trials()[1])  # judged: the fallback is not asked
    assert not pruner.prune(study, study.get_trials()[0])  # the incumbent, never


def test_default_pruner_without_an_incumbent_prunes_as_the_median_rule():
    """make_pruner's default wraps the evidence median in the incumbent rule; a study with no
    incumbent gets exactly the median's decisions (same sweep, same seed)."""
    settings = TuneSettings(pruner="median", num_steps=100_000, eval_interval=10_000)
    wrapped = make_pruner(settings)
    assert isinstance(wrapped, IncumbentPruner)
    assert isinstance(wrapped.fallback, EvidenceMedianPruner)
    runs = [synthetic_sweep(make, QUALITY_SD, K_SEED_NOISE, repetitions=1, n_seeds=2,
                            n_trials=48)
            for make in (lambda steps: make_pruner(settings),
                         lambda steps: make_pruner(settings).fallback)]
    assert runs[0] == runs[1] and runs[0].pruned > 0


def test_make_pruner_names():
    base = {"num_steps": 100_000, "eval_interval": 10_000}
    incumbent_only = make_pruner(TuneSettings(pruner="incumbent", **base))
    assert isinstance(incumbent_only, IncumbentPruner)
    assert isinstance(incumbent_only.fallback, optuna.pruners.NopPruner)
    assert incumbent_only.checks == 7 and incumbent_only.alpha == 0.05
    assert isinstance(make_pruner(TuneSettings(pruner="sha", **base)), SyncHalvingPruner)
    assert isinstance(make_pruner(TuneSettings(pruner="hyperband", **base)), HyperbandPruner)
    assert isinstance(make_pruner(TuneSettings(pruner="none", **base)),
                      optuna.pruners.NopPruner)


# ---------------------------------------------------------------- sweeps and the tuner


@pytest.mark.parametrize("pruner,repetitions,kept,saved", [("median", 2, 0.9, 0.03),
                                                            ("sha", 10, 0.85, 0.2)])
def test_truly_best_survive_at_k_seed_noise_and_compute_is_saved(pruner, repetitions, kept,
                                                                 saved):
    """Bounds well inside what seeds 0-4 give (median: 100% kept, 6-11% saved at 2
    repetitions; sha: 92-100% kept, 32-33% saved at 10)."""
    settings = TuneSettings(pruner=pruner, num_steps=100_000, eval_interval=10_000)
    outcome = synthetic_sweep(lambda steps: make_pruner(settings), QUALITY_SD, K_SEED_NOISE,
                              repetitions=repetitions, n_seeds=2)
    assert outcome.top_survival >= kept, outcome
    assert outcome.compute_saved >= saved, outcome


def test_synthetic_sweep_sees_a_pruner_that_prunes_the_best():
    """The harness itself: Optuna's MedianPruner on single-seed noise loses most top trials,
    and a pruner that never prunes keeps them all and saves nothing."""
    harsh = synthetic_sweep(lambda steps: optuna.pruners.MedianPruner(5, 0), QUALITY_SD,
                            OLD_NOISE, repetitions=4)
    assert harsh.top_survival < 0.75 and harsh.pruned > 0.4  # seeds 0-2: 30-55%, 52-61%
    none = synthetic_sweep(lambda steps: optuna.pruners.NopPruner(), QUALITY_SD, OLD_NOISE,
                           repetitions=2)
    assert none.top_survival == 1.0 and none.compute_saved == 0.0


def test_seed_values_average_scenarios_per_seed():
    from bb_jax.runtime.members import Report
    from bb_jax.tuning.tuner import seed_values

    # trial 1 of a study with 3 seeds x 2 scenarios: members 6..11
    rows = [Report(m, 100, float(v)) for m, v in zip(range(6, 12), [1, 3, 10, 20, 5, 5],
                                                      strict=True)]
    assert seed_values(rows, 3, 2) == [2.0, 15.0, 5.0]


def test_tuner_writes_the_per_seed_reports_before_each_report(monkeypatch):
    """Two trials x 2 seeds: each member reports its seed's planted value; the trial's
    "seed_reports" hold one list per step, in the tuning-seed order, and their means are the
    trial's intermediate values."""
    from bb_jax.runtime import cohorts
    from bb_jax.runtime.members import MemberResult, Report
    from bb_jax.tuning.space import control_params
    from bb_jax.tuning.tuner import Tuner

    seen = []

    def scripted_run(self, specs, on_reports=None, on_finished=None):
        seeds = sorted({s.seed for s in specs})
        value = {s.member_id: 10.0 * (seeds.index(s.seed) + 1) + s.hyperparams["learning_rate"]
                 * 1e4 for s in specs}
        for steps in (4096, 8192):
            on_reports([Report(m, steps, v * steps / 4096, steps == 8192)
                        for m, v in value.items()])
            seen.append(seeds)
        results = {m: MemberResult(m, "complete", v, env_steps=8192) for m, v in value.items()}
        on_finished(results)
        return results

    monkeypatch.setattr(cohorts.CohortTrainer, "run", scripted_run)
    settings = TuneSettings(num_steps=8192, eval_interval=4096, n_trials=2, population_size=2,
                            pruner="none", seeds_per_trial=2,
                            enqueue=tuple({**control_params(), "learning_rate": lr}
                                          for lr in (1e-4, 2e-4)))
    tuner = Tuner(settings, log=lambda line: None)
    tuner.run()
    assert seen[0] == sorted(tuner.tuning_seeds)
    order = [seen[0].index(s) for s in tuner.tuning_seeds]  # study order of the seeds
    for trial, extra in zip(tuner.study.trials, (1.0, 2.0), strict=True):
        reports = trial.user_attrs["seed_reports"]
        assert list(reports) == ["4096", "8192"]
        for step, per_seed in reports.items():
            scale = int(step) / 4096
            assert per_seed == pytest.approx([(10.0 * (j + 1) + extra) * scale for j in order])
            assert trial.intermediate_values[int(step)] == pytest.approx(np.mean(per_seed))


def test_tuner_prunes_against_an_enqueued_incumbent(monkeypatch):
    """Through the tuner (scripted trainer, 4 seeds, --pruner incumbent): the incumbent
    enqueued as the agreed interface does it (user_attrs {"incumbent": True}) reports 100 per
    seed (+/- a few); a trial at 20 is pruned at its first check past the warmup, one equal
    to the incumbent and the incumbent itself train to the end."""
    from bb_jax.runtime import cohorts
    from bb_jax.runtime.members import MemberResult, Report
    from bb_jax.tuning.space import control_params
    from bb_jax.tuning.tuner import Tuner

    planted = {1e-4: 100.0, 2e-4: 20.0, 3e-4: 100.0}
    wobble = {1e-4: [0.0, 3.0, -2.0, 1.0], 2e-4: [1.0, -1.0, 2.0, 0.0],
              3e-4: [-2.0, 1.0, 0.0, 2.0]}
    num_steps, interval = 8 * 1024, 1024

    def scripted_run(self, specs, on_reports=None, on_finished=None):
        seeds = sorted({s.seed for s in specs})
        value = {s.member_id: planted[s.hyperparams["learning_rate"]] + wobble[
            s.hyperparams["learning_rate"]][seeds.index(s.seed)] for s in specs}
        active, results = set(value), {}
        for steps in range(interval, num_steps + 1, interval):
            stop = on_reports([Report(m, steps, value[m], steps == num_steps)
                               for m in sorted(active)])
            results.update({m: MemberResult(m, "stopped", value[m], env_steps=steps)
                            for m in stop})
            active -= stop
        results.update({m: MemberResult(m, "complete", value[m], env_steps=num_steps)
                        for m in active})
        on_finished(results)
        return results

    monkeypatch.setattr(cohorts.CohortTrainer, "run", scripted_run)
    settings = TuneSettings(num_steps=num_steps, eval_interval=interval, n_trials=3,
                            population_size=3, pruner="incumbent", seeds_per_trial=4,
                            enqueue=tuple({**control_params(), "learning_rate": lr}
                                          for lr in (2e-4, 3e-4)))
    tuner = Tuner(settings, log=lambda line: None)
    tuner.study.enqueue_trial({**control_params(), "learning_rate": 1e-4},
                              user_attrs={"incumbent": True})
    tuner.run()
    incumbent, bad, equal = tuner.study.trials
    assert incumbent.user_attrs["incumbent"] and incumbent.state == TrialState.COMPLETE
    assert bad.state == TrialState.PRUNED and max(bad.intermediate_values) == 2048
    assert equal.state == TrialState.COMPLETE


def test_incumbent_rejects_bad_arguments():
    for kwargs in ({"alpha": 0.0}, {"checks": 0}, {"warmup_fraction": -0.1}):
        with pytest.raises(ValueError):
            IncumbentPruner(optuna.pruners.NopPruner(), **{
                "num_steps": 10_000, "window": 1500, "checks": 7, **kwargs})
