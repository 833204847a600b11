"""Population-based training's parts: the exploit decision copies only beyond the noise
margin on held-out episodes (equal members at the nominal rate) and keeps the truly best
lineage under noise (synthetic populations); explore moves every searched field both ways in
its own scale, inside its range and off its bounds, from the parent's values, and redraws
from the declared distributions; bad rules are refused; on the device a copied member goes on
exactly as its parent, and new hyperparameters compile nothing; schedules replay changes
between chunks; lineages name the seeds their weights trained on; the validation scores fresh
episodes and applies Holm over its comparisons with the defaults."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from reliability_helpers import counting_compiles, kill_9_after_a_checkpoint
from scipy import stats

from bb_jax.agent.config import (
    DEFAULT_HYPERPARAMS,
    PPOConfig,
    PPOHyperparams,
    stack_hyperparams,
)
from bb_jax.runtime.population import Population
from bb_jax.runtime.runs import train_seeds
from bb_jax.runtime.schedule import Schedule, from_env_steps
from bb_jax.tuning import pbt
from bb_jax.tuning.pbt import PBTRule
from bb_jax.tuning.pbt_train import record_run, run_pbt
from bb_jax.tuning.settings import PBTSettings, TuneSettings, ValidationSettings


def _episodes(means, standard_error: float, episodes: int = 16) -> np.ndarray:
    """returns float[P, episodes]: each half of a member's episodes has the mean `means[i]`
    and the standard error `standard_error` (alternating +/- s around the mean)."""
    half = episodes // 2
    s = standard_error * np.sqrt(half - 1)  # sd of +/-s over `half` episodes: s*sqrt(h/(h-1))
    pattern = np.tile([s, -s], half // 2)
    return np.asarray(means, float)[:, None] + np.concatenate([pattern, pattern])


def test_exploit_copies_only_beyond_the_noise_margin():
    """Eight members, quantile 1/4: the two lowest may copy one of the two highest; member 0
    is far below them (copies), member 1 within the noise of both (keeps its own)."""
    means = np.array([0.0, 33.0, 34.0, 35.0, 36.0, 37.0, 40.0, 41.0])
    returns = _episodes(means, 4.0)  # the difference's standard error: 4 * sqrt(2) = 5.7
    np.testing.assert_allclose(pbt.episode_scores(returns[:, 8:])[1], 4.0)
    for seed in range(20):
        parents = pbt.exploit(returns, PBTRule(quantile=0.25, margin=2.0),
                              np.random.default_rng(seed))
        assert parents[0] in (6, 7) and parents[1] in (1,)
        assert list(parents[2:]) == [2, 3, 4, 5, 6, 7]
    # without a margin member 1 copies too
    parents = pbt.exploit(returns, PBTRule(margin=0.0), np.random.default_rng(0))
    assert parents[1] in (6, 7)


def test_equal_members_copy_at_the_tests_nominal_rate():
    """16 members of equal true mean and noise: a bottom member copies at about the one-sided
    rate of a test at 2 standard errors (2.3%; 2.7% with standard errors estimated from 16
    episodes per half; 2.6% here). Testing on the episodes that ranked the members (quartiles
    picked first, then the same means compared) copies 28% of them."""
    rng = np.random.default_rng(0)
    copied = [np.count_nonzero(pbt.exploit(rng.normal(0.0, 1.0, (16, 32)), PBTRule(), rng)
                               != np.arange(16)) for _ in range(2000)]
    rate = sum(copied) / (4 * 2000)
    assert 0.01 < rate < 0.05, rate


def _best_lineage_survival(margin: float, noise_sd: float, quality_sd: float = 20.0,
                           size: int = 16, steps: int = 10, repetitions: int = 1000,
                           episodes: int = 16) -> float:
    """Synthetic PBT: member i's policy has a planted quality q_i ~ N(0, quality_sd); each
    exploit step measures it on `episodes` episodes whose mean has the standard error
    noise_sd, and a copy takes its parent's quality. Returns the share of runs in which some
    member still descends from the truly best one after `steps` steps."""
    rng = np.random.default_rng(0)
    rule, survived = PBTRule(margin=margin), 0
    episode_sd = noise_sd * np.sqrt(episodes)
    for _ in range(repetitions):
        quality = rng.normal(0.0, quality_sd, size)
        best, lineage = int(np.argmax(quality)), np.arange(size)
        for _ in range(steps):
            returns = quality[:, None] + rng.normal(0.0, episode_sd, (size, episodes))
            parents = pbt.exploit(returns, rule, rng)
            quality, lineage = quality[parents], lineage[parents]
        survived += int(best in lineage)
    return survived / repetitions


def test_the_truly_best_lineage_survives_measurement_noise():
    """At an evaluation noise 1.5x the spread of qualities, the default margin keeps the
    best member's lineage in >= 90% of runs; no margin loses it clearly more often."""
    rule = PBTRule()
    with_margin = _best_lineage_survival(rule.margin, noise_sd=30.0)
    plain = _best_lineage_survival(0.0, noise_sd=30.0)
    assert with_margin >= 0.9, with_margin
    assert plain < with_margin - 0.05, (plain, with_margin)


def test_every_searched_hyperparameter_is_explored():
    """Explore covers every traced field with a search range (none skipped)."""
    searched = {f.name for f in dataclasses.fields(PPOHyperparams)
                if f.metadata.get("search") is not None}
    assert set(pbt.SEARCHED) == searched and set(PBTRule().explored) == searched
    assert searched >= pbt.DISCOUNTS


def _drawn_rows(count: int, rng) -> list[dict]:
    return [{**DEFAULT_HYPERPARAMS, **{name: pbt.draw(search, rng)
                                       for name, search in pbt.SEARCHED.items()}}
            for _ in range(count)]


@pytest.mark.parametrize("name", sorted(pbt.SEARCHED))
def test_explore_moves_a_field_both_ways_inside_its_range_and_off_its_bounds(name):
    """From the default row and from rows drawn over the search space, a move (no redraw)
    stays in the range, goes up and down alike, and rarely lands on a bound: < 5% for a
    continuous field (clipping x0.8 / x1.25 sent 75% of gamma's and lambda's there, 38% of
    the clip's and value coefficient's), at most a uniform draw's share for whole numbers."""
    search = pbt.SEARCHED[name]
    rng = np.random.default_rng(5)
    moves = PBTRule(resample_probability=0.0)
    starts = [dict(DEFAULT_HYPERPARAMS)] * 1000 + _drawn_rows(3000, rng)
    new = np.array([pbt.explore(row, moves, rng)[name] for row in starts])
    old = np.array([row[name] for row in starts])
    assert np.all((search.low <= new) & (new <= search.high)), name
    on_bound = np.mean((new == search.low) | (new == search.high))
    share = 2 / (search.high - search.low + 1) if search.integer else 0.05
    assert on_bound <= share, (name, on_bound)
    drawn_up = np.mean(new[1000:] > old[1000:])
    drawn_down = np.mean(new[1000:] < old[1000:])
    assert 0.35 < drawn_up < 0.65 and 0.35 < drawn_down < 0.65, (name, drawn_up, drawn_down)
    if search.integer:
        assert all(isinstance(v, int) for v in new[:10].tolist())


def test_a_factor_is_the_same_change_anywhere_inside_the_range():
    """Away from the bounds, x1.25 multiplies a log-scale field, multiplies 1 - x of a
    discount (its inverse horizon), moves a linear field by log(1.25) of its range and a
    whole-number field by one."""
    for name, search in pbt.SEARCHED.items():
        if search.integer:
            middle = (int(search.low) + int(search.high)) // 2
            assert pbt.perturb(name, search, middle, 1.25) == middle + 1
            assert pbt.perturb(name, search, middle, 0.8) == middle - 1
        elif name in pbt.DISCOUNTS:
            middle = 1 - np.sqrt((1 - search.low) * (1 - search.high))
            assert 1 - pbt.perturb(name, search, middle, 1.25) == pytest.approx(
                1.25 * (1 - middle))
        elif search.log:
            middle = np.sqrt(search.low * search.high)
            assert pbt.perturb(name, search, middle, 0.8) == pytest.approx(0.8 * middle)
        else:
            middle, width = (search.low + search.high) / 2, search.high - search.low
            assert pbt.perturb(name, search, middle, 1.25) == pytest.approx(
                middle + np.log(1.25) * width)


@pytest.mark.parametrize("name", sorted(pbt.SEARCHED))
def test_a_redraw_follows_the_declared_distribution(name):
    """2,000 redraws of each field against its declared range: log(draws) uniform on
    [log low, log high] for a log-scale field (Kolmogorov-Smirnov), the draws uniform for a
    linear one, each whole number alike (chi-square). A log-scale field's median is near the
    range's geometric mean, which a uniform draw (median near the middle) misses."""
    search = pbt.SEARCHED[name]
    rng = np.random.default_rng(11)
    draws = np.array([pbt.explore(DEFAULT_HYPERPARAMS, PBTRule(resample_probability=1.0),
                                  rng)[name] for _ in range(2000)])
    if search.integer:
        values = np.arange(int(search.low), int(search.high) + 1)
        counts = np.array([np.count_nonzero(draws == v) for v in values])
        assert counts.sum() == draws.size and stats.chisquare(counts).pvalue > 1e-3
        return
    low, high = (np.log(search.low), np.log(search.high)) if search.log else (
        search.low, search.high)
    scaled = np.log(draws) if search.log else draws
    assert stats.kstest(scaled, stats.uniform(low, high - low).cdf).pvalue > 1e-3, name
    assert abs(np.median(scaled) - (low + high) / 2) < 0.05 * (high - low), name


def test_a_copy_explores_its_parents_hyperparameters_not_its_own():
    """Member 0 (far below) copies member 6 or 7, whose values sit near the top of every
    range while its own sit near the bottom: each explored value lies next to the parent's.
    A field left out of `explored` is the parent's exactly."""
    def near(end: float) -> dict:
        row = dict(DEFAULT_HYPERPARAMS)
        for name, search in pbt.SEARCHED.items():
            value = search.low + end * (search.high - search.low)
            row[name] = int(round(value)) if search.integer else value
        return row

    rows = [near(0.05)] * 6 + [near(0.95)] * 2
    returns = _episodes([0.0, 33.0, 34.0, 35.0, 36.0, 37.0, 40.0, 41.0], 4.0)
    explored = tuple(name for name in pbt.SEARCHED if name != "gamma")
    rule = PBTRule(resample_probability=0.0, explored=explored)
    for seed in range(20):
        parents, new = pbt.step(rows, returns, rule, np.random.default_rng(seed))
        parent = rows[parents[0]]
        assert parents[0] in (6, 7) and new[1:] == rows[1:]
        for name in explored:
            assert abs(new[0][name] - parent[name]) < abs(new[0][name] - rows[0][name]), name
            assert new[0][name] != parent[name], name
        assert new[0]["gamma"] == parent["gamma"]


@pytest.mark.parametrize("changes, message", [
    ({"quantile": 0.0}, "quantile must be in"),
    ({"quantile": 0.6}, "quantile must be in"),
    ({"margin": -1.0}, "margin must be >= 0"),
    ({"resample_probability": 1.5}, "resample probability"),
    ({"factors": (1.0, 1.25)}, "factors must be positive and not 1"),
    ({"explored": ("hidden_size",)}, "cannot explore"),
])
def test_bad_rules_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        PBTRule(**changes)


def test_a_population_below_four_or_fewer_than_four_episodes_are_refused():
    with pytest.raises(ValueError, match="population of at least 4"):
        pbt.exploit(np.zeros((3, 8)), PBTRule(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 4 episodes"):
        pbt.exploit(np.zeros((4, 3)), PBTRule(), np.random.default_rng(0))


# the checkpoint tests' run (tests/test_checkpoints.py): its compiled programs serve here too
CONFIG = PPOConfig(scenario="easy", hidden_size=16, batch_size=256, total_steps=8 * 256)


def _population() -> Population:
    keys = jax.numpy.stack([jax.random.PRNGKey(s) for s in (3, 4)])
    return Population(CONFIG, stack_hyperparams([DEFAULT_HYPERPARAMS] * 2), keys)


def _leaves(tree, member: int) -> list[np.ndarray]:
    return [np.asarray(x[member]) for x in jax.tree.leaves(tree)]


def test_a_copied_member_goes_on_exactly_as_its_parent():
    """Member 1 copies member 0 with its environment, both take new hyperparameters: after
    the next chunk their parameters are equal bit for bit. Neither the copy nor the new
    hyperparameters compile another training program."""
    population = _population()
    population.run(2)
    with counting_compiles() as compiled:
        population.copy_members([0, 0], environment=True)
        explored = {**DEFAULT_HYPERPARAMS, "learning_rate": 2e-4, "entropy_coef": 0.02}
        population.set_hyperparams(stack_hyperparams([explored] * 2))
        population.run(2)
    assert not [name for name in compiled if "run_updates" in name], compiled
    for a, b in zip(_leaves(population.state, 0), _leaves(population.state, 1), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_copy_without_the_environment_keeps_its_own_episodes():
    """The default copy takes parameters and optimizer state only: the copied member keeps
    its PRNG key and environments, so it goes on differently from its parent."""
    population = _population()
    population.run(2)
    own_key = np.asarray(population.state.key[1])
    parent_opt = _leaves(population.state.opt_state, 0)
    population.copy_members([0, 0])
    for a, b in zip(_leaves(population.state.params, 0), _leaves(population.state.params, 1),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(parent_opt, _leaves(population.state.opt_state, 1), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(population.state.key[1]), own_key)
    population.run(2)
    assert not np.array_equal(_leaves(population.state.params, 0)[0],
                              _leaves(population.state.params, 1)[0])


def test_copy_members_refuses_positions_outside_the_population():
    population = _population()
    with pytest.raises(ValueError, match="2 member positions"):
        population.copy_members([0, 2])


def test_a_schedule_sets_its_values_between_chunks_without_compiling():
    """train_seeds with a schedule (learning rate and entropy bonus changed at update 4)
    equals the same population trained 4 updates, given the new values, trained 4 more;
    the change compiles no training program."""
    later = {"learning_rate": 2e-4, "entropy_coef": 0.02}
    population = _population()
    population.run(2)
    population.run(2)
    population.set_hyperparams(stack_hyperparams([{**DEFAULT_HYPERPARAMS, **later}] * 2))
    population.run(2)
    population.run(2)
    with counting_compiles() as compiled:
        run = train_seeds(CONFIG, {}, [3, 4], chunk_updates=2, eval_episodes=4, progress=None,
                          schedule=Schedule(((4, later),)))
    assert not [name for name in compiled if "run_updates" in name], compiled
    for member in (0, 1):
        for a, b in zip(_leaves(population.state.params, member),
                        _leaves(run.population.state.params, member), strict=True):
            np.testing.assert_array_equal(a, b)
    assert run.schedule == [{"env_steps": 4 * CONFIG.batch_size, **later}]


def test_schedule_files_and_their_errors(tmp_path):
    schedule = from_env_steps([{"env_steps": 0, "gamma": 0.99},
                               {"env_steps": 2048, "learning_rate": 1e-4}], 512)
    assert schedule.changes == ((0, {"gamma": 0.99}), (4, {"learning_rate": 1e-4}))
    assert from_env_steps(schedule.as_env_steps(512), 512) == schedule
    assert schedule.at(3, {"gamma": 0.9, "learning_rate": 1e-3}) == {
        "gamma": 0.99, "learning_rate": 1e-3}
    assert schedule.at(4, {"learning_rate": 1e-3})["learning_rate"] == 1e-4
    with pytest.raises(ValueError, match="between two updates"):
        from_env_steps([{"env_steps": 100, "gamma": 0.99}], 512)
    with pytest.raises(ValueError, match="unknown hyperparameter 'lr'"):
        from_env_steps([{"env_steps": 0, "lr": 0.1}], 512)
    with pytest.raises(ValueError, match="not at a chunk boundary"):
        schedule.check_boundaries(8)


@pytest.mark.parametrize("rows, message", [
    ([{"env_steps": 768, "learning_rate": 1e-4}], "not at a chunk boundary"),
    ([{"env_steps": 512, "ent": 0.1}], "unknown hyperparameter 'ent'"),
    ("not json", "cannot read the schedule"),
])
def test_train_refuses_a_bad_schedule_in_one_line(tmp_path, capsys, rows, message):
    from bb_jax.cli import train_main

    path = tmp_path / "schedule.json"
    path.write_text(rows if isinstance(rows, str) else json.dumps(rows))
    code = train_main(["--scenario", "easy", "--num-steps", "2048", "--batch-size", "256",
                       "--hidden-size", "16", "--chunk-updates", "2", "--schedule", str(path),
                       "--save-path", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()


class _PlantedPopulation:
    """A stand-in for Population with a planted quality per member: its evaluations return
    that quality (+ small episode noise), a copy takes the parent's quality. Records the
    hyperparameters set."""

    def __init__(self, quality):
        self.quality = np.asarray(quality, float)
        self.size = len(quality)
        self.rng = np.random.default_rng(0)
        self.set_rows = []
        self.state = self.hyperparams = None

    def run(self, updates, until=None):
        return {"mean_return": np.tile(self.quality[:, None], (1, updates)),
                "env_steps": np.ones((self.size, updates))}

    def evaluate(self, keys, episodes, greedy=False):
        assert keys.shape == (self.size, 2)
        return self.quality[:, None] + self.rng.normal(0.0, 1.0, (self.size, episodes))

    def copy_members(self, parents, environment=False):
        self.quality = self.quality[np.asarray(parents)]

    def set_hyperparams(self, hyperparams):
        self.set_rows.append(np.asarray(hyperparams.learning_rate))


def test_pbt_lineage_follows_the_weights():
    """Four members of planted quality 0 < 100 < 200 < 300, quantile 1/4: after interval 1
    member 0 copies member 3 (its history: member 3's, then its explored values); after
    interval 2 member 1 (now the lowest) copies one of member 3's weights. Every schedule
    starts at update 0."""
    rows = [{**DEFAULT_HYPERPARAMS, "learning_rate": lr} for lr in (1e-4, 2e-4, 3e-4, 4e-4)]
    population = _PlantedPopulation([0.0, 100.0, 200.0, 300.0])
    run = run_pbt(population, [10, 11, 12, 13], rows, intervals=3, interval_updates=5,
                  rule=PBTRule(), rng=np.random.default_rng(1), eval_episodes=16)
    first, second, third, fourth = run.lineages
    assert run.exploit_updates == [5, 10]
    assert first.copies == [(5, 3)] and third.copies == fourth.copies == []
    assert first.root == second.root == fourth.root == 3 and third.root == 2
    assert first.history[0] == (0, rows[3]) and first.history[1][0] == 5
    # member 1 copies the better-measured of members 0 and 3, both of member 3's weights
    ((update, parent),) = second.copies
    assert update == 10 and parent in (0, 3)
    assert second.history[:-1] == run.lineages[parent].history[:len(second.history) - 1]
    assert second.history[0] == (0, rows[3]) and second.history[-1][0] == 10
    explored = first.history[1][1]["learning_rate"]
    assert explored != 4e-4 and np.isclose(population.set_rows[0][0], explored)
    assert fourth.schedule.changes == ((0, rows[3]),)
    assert run.curves["mean_return"].shape == (4, 15)
    assert run.best in (0, 1, 3) and len(first.evaluations) == 2
    # the weights' seeds: member 3's run to update 5, then the copier's own
    assert first.seed == 10 and first.weights_from == [(0, 3), (5, 0)]
    assert second.weights_from == [*run.lineages[parent].weights_from[:1 + (parent == 0)],
                                   (10, 1)]
    assert third.weights_from == [(0, 2)] and fourth.weights_from == [(0, 3)]


def test_a_copy_with_the_environment_goes_on_in_its_parents_run():
    """With `environment` a copy takes its parent's PRNG key too: its weights' seed stays
    the parent's."""
    rows = [dict(DEFAULT_HYPERPARAMS)] * 4
    run = run_pbt(_PlantedPopulation([0.0, 100.0, 200.0, 300.0]), [10, 11, 12, 13], rows,
                  intervals=2, interval_updates=5, rule=PBTRule(),
                  rng=np.random.default_rng(1), eval_episodes=16, environment=True)
    assert run.lineages[0].copies == [(5, 3)] and run.lineages[0].weights_from == [(0, 3)]


def test_a_members_trial_names_the_seeds_its_weights_trained_on():
    """record_run: a member that copied keeps its own `seed` and gains `weights_from`, the
    trial and seed of each run its final weights trained in, from which env step."""

    import optuna

    rows = [dict(DEFAULT_HYPERPARAMS)] * 4
    run = run_pbt(_PlantedPopulation([0.0, 100.0, 200.0, 300.0]), [10, 11, 12, 13], rows,
                  intervals=2, interval_updates=5, rule=PBTRule(),
                  rng=np.random.default_rng(1), eval_episodes=16)
    study = optuna.create_study(direction="maximize")
    trials = [study.ask() for _ in range(4)]
    settings = TuneSettings(space_rules={}, eval_episodes=16,
                            pbt=PBTSettings(interval=5 * CONFIG.batch_size))
    record_run(study, trials, run, CONFIG, settings, seconds=1.0)
    first = study.trials[0].user_attrs
    assert first["seed"] == 10
    assert first["weights_from"] == [
        {"env_steps": 0, "trial": trials[3].number, "seed": 13},
        {"env_steps": 5 * CONFIG.batch_size, "trial": trials[0].number, "seed": 10}]
    assert study.trials[2].user_attrs["weights_from"] == [
        {"env_steps": 0, "trial": trials[2].number, "seed": 12}]


def test_an_interrupted_pbt_run_goes_on_from_its_last_exploit_step(tmp_path):
    """Stopped after its first exploit step's checkpoint (Ctrl-C in the second step's
    progress call, before that step's checkpoint), a run started again from the checkpoint
    ends bit-identical to the uninterrupted run: parameters, lineages, curves, final
    episodes."""
    from bb_jax.runtime.checkpoints import Checkpoints

    keys = jax.numpy.stack([jax.random.PRNGKey(s) for s in range(4)])
    rows = [{**DEFAULT_HYPERPARAMS, "learning_rate": lr} for lr in (1e-5, 1e-4, 5e-4, 1e-3)]

    def train(checkpoints=None, on_interval=None):
        population = Population(CONFIG, stack_hyperparams(rows), keys)
        run = run_pbt(population, [0, 1, 2, 3], rows, intervals=3, interval_updates=2,
                      rule=PBTRule(quantile=0.5, margin=0.0, resample_probability=0.5),
                      rng=np.random.default_rng(1), eval_episodes=8,
                      on_interval=on_interval, checkpoints=checkpoints)
        return population, run

    def stop_at_the_second_step(updates, means):
        if updates == 4:
            raise KeyboardInterrupt

    whole, expected = train()
    with pytest.raises(KeyboardInterrupt):
        train(Checkpoints(tmp_path / "ckpt"), stop_at_the_second_step)
    checkpoints = Checkpoints(tmp_path / "ckpt")
    assert checkpoints.latest() == 2
    resumed, run = train(checkpoints)
    assert [lineage.as_json() for lineage in run.lineages] == [
        lineage.as_json() for lineage in expected.lineages]
    assert sum(len(lineage.copies) for lineage in run.lineages) >= 1, "a copy to restore"
    assert run.exploit_updates == expected.exploit_updates == [2, 4]
    assert expected.exploit_seconds > 0.0, "the exploit steps are timed"
    for name, curve in expected.curves.items():
        np.testing.assert_array_equal(run.curves[name], curve)
    np.testing.assert_array_equal(run.final_returns, expected.final_returns)
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(whole.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_a_real_pbt_run_and_the_replay_of_its_best_schedule():
    """Four real members, three intervals of two updates, one compiled training program:
    every final member's schedule starts at update 0 and changes only at exploit steps, and
    the best one's replays from scratch through train_seeds."""
    keys = jax.numpy.stack([jax.random.PRNGKey(s) for s in range(4)])
    rows = [{**DEFAULT_HYPERPARAMS, "learning_rate": lr} for lr in (1e-5, 1e-4, 5e-4, 1e-3)]
    with counting_compiles() as compiled:
        population = Population(CONFIG, stack_hyperparams(rows), keys)
        run = run_pbt(population, [0, 1, 2, 3], rows, intervals=3, interval_updates=2,
                      rule=PBTRule(quantile=0.5, margin=0.0), rng=np.random.default_rng(1),
                      eval_episodes=8)
    assert sum("run_updates" in name for name in compiled) == 1, compiled
    assert run.exploit_updates == [2, 4] and run.final_returns.shape == (4, 8)
    assert sum(len(lineage.copies) for lineage in run.lineages) >= 1
    for lineage in run.lineages:
        updates = [u for u, _ in lineage.history]
        assert updates[0] == 0 and set(updates[1:]) <= {2, 4}
    best = run.lineages[run.best]
    replay = train_seeds(CONFIG, best.history[0][1], [100], chunk_updates=2, eval_episodes=4,
                         progress=None, schedule=best.schedule)
    assert np.isfinite(replay.summary()["final_return"]["mean"])
    assert replay.schedule == best.schedule.as_env_steps(CONFIG.batch_size)


def _pbt_cli(tmp_path, *extra) -> list[str]:
    return ["--strategy", "pbt", "--scenario", "easy", "--population-size", "4",
            "--fix", "hidden_size=64,batch_size=512", "--num-steps", "3072",
            "--pbt-interval", "1024", "--eval-episodes", "8", "--seed", "3",
            "--storage", f"sqlite:///{tmp_path}/pbt.db", "--study-name", "pbt",
            "--output-dir", str(tmp_path / "out"), *extra]


@pytest.mark.parametrize("extra, message", [
    (["--population-size", "3"], "--population-size in 4.."),
    (["--pbt-quantile", "0.6"], "quantile must be in (0, 0.5]"),
    (["--pbt-interval", "100"], "multiple of the batch size"),
    (["--num-steps", "1536"], "at least two intervals"),
    (["--n-jobs", "2"], "drop --n-jobs"),
    (["--eval-episodes", "3"], "give at least 4, got 3"),
    (["--scenario", "easy,hard"], "one scenario"),
    (["--pbt-versus", "nosuch"], "--pbt-versus nosuch: no study"),
    (["--pbt-versus", "tpe", "--no-validate"], "drop --no-validate"),
])
def test_pbt_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, extra, message):
    from bb_jax.cli import tune_main

    assert tune_main(_pbt_cli(tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_pbt_from_the_command_line_records_the_lineage_and_validates(tmp_path, capsys):
    """--strategy pbt end to end: every member a trial with its schedule, root and copies
    (trial numbers), intermediate values at the exploit steps; the best schedule written as
    a file train_simple.py reads, replayed against the defaults on fresh seeds; the outputs
    and the lineage plot; a second run into the same study is refused."""
    import optuna

    from bb_jax.cli import tune_main
    from bb_jax.runtime.schedule import read_schedule

    tpe = ["--scenario", "easy", "--fix", "hidden_size=64,batch_size=512", "--num-steps",
           "4096", "--eval-interval", "1024", "--n-trials", "2", "--seed", "3", "--no-validate",
           "--storage", f"sqlite:///{tmp_path}/pbt.db", "--study-name", "tpe",
           "--output-dir", str(tmp_path / "tpe")]
    assert tune_main(tpe) == 0
    capsys.readouterr()
    argv = _pbt_cli(tmp_path, "--validate-seeds", "2", "--pbt-versus", "tpe")
    assert tune_main(argv) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="pbt", storage=f"sqlite:///{tmp_path}/pbt.db")
    trials = study.trials
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    numbers = {t.number for t in trials}
    for t in trials:
        assert sorted(t.intermediate_values) == [1024, 2048]
        assert t.user_attrs["schedule"][0]["env_steps"] == 0
        assert t.user_attrs["root"] in numbers
        assert all(c["parent"] in numbers for c in t.user_attrs["copies"])
    assert sorted(t.user_attrs["seed"] for t in trials) == [3000, 3001, 3002, 3003]
    for t in trials:  # the weights' runs: a root's seed from 0, then each copier's own
        own = {"trial": t.number, "seed": t.user_attrs["seed"]}
        weights_from, copies = t.user_attrs["weights_from"], t.user_attrs["copies"]
        assert weights_from[0]["env_steps"] == 0
        assert weights_from[-1] == ({"env_steps": copies[-1]["env_steps"], **own} if copies
                                    else {"env_steps": 0, **own})
    validation = study.user_attrs["pbt_validation"]
    assert validation["seeds"] == [3500, 3501] and validation["difference"]["n"] == 2
    assert "paired 95% CI" in out and "--schedule" in out and "Holm over 2" in out
    assert validation["correction"].startswith("Holm over 2 comparisons")
    # the TPE study's best static configuration on the same fresh seeds, paired
    tpe_best = optuna.load_study(study_name="tpe", storage=f"sqlite:///{tmp_path}/pbt.db")
    versus = validation["versus"]
    assert versus["trial"] == tpe_best.best_trial.number and len(versus["values"]) == 2
    assert versus["schedule_vs_static"]["n"] == 2 and versus["study_env_steps"] > 0
    assert validation["winner"] in ("schedule", "static", "defaults")
    assert "train the TPE study's configuration" in out
    best = max(trials, key=lambda t: t.value)
    schedule = read_schedule(tmp_path / "out" / "pbt_schedule.json", 512)
    assert schedule.as_env_steps(512) == best.user_attrs["schedule"]
    results = json.loads((tmp_path / "out" / "pbt_results.json").read_text())
    assert results["strategy"] == "pbt" and results["pbt_validation"] == validation
    assert results["pbt"]["exploit_env_steps"] == [1024, 2048]
    assert [t["user_attrs"]["schedule"] for t in results["trials"]] == [
        t.user_attrs["schedule"] for t in trials]
    assert (tmp_path / "out" / "pbt_lineage.png").read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "out" / "pbt_checkpoints").exists(), "a finished run drops them"
    assert tune_main(argv) == 2
    assert "no unfinished PBT run" in capsys.readouterr().err


@pytest.mark.slow
def test_a_pbt_run_killed_after_an_exploit_step_continues_with_the_same_command(tmp_path):
    """tune_hyperparameters.py --strategy pbt killed with SIGKILL after its first exploit
    step's checkpoint, then the same command: the same member trials complete with the
    values, intermediate values and lineages of an uninterrupted run; other settings for the
    unfinished study are refused."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import optuna

    root = Path(__file__).resolve().parents[1]
    script = [sys.executable, str(root / "scripts" / "tune_hyperparameters.py")]
    env = {**os.environ, "PYTHONPATH": str(root)}

    def argv(folder):
        return [*script, *_pbt_cli(folder, "--num-steps", "30720", "--no-validate")]

    def members(folder):
        study = optuna.load_study(study_name="pbt", storage=f"sqlite:///{folder}/pbt.db")
        return [(t.number, t.state.name, t.value, t.intermediate_values, t.user_attrs)
                for t in study.trials]

    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    for folder in (whole, stopped):
        folder.mkdir()
    done = subprocess.run(argv(whole), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    proc = subprocess.Popen(argv(stopped), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    steps = stopped / "out" / "pbt_checkpoints"
    kill_9_after_a_checkpoint(proc, steps)
    assert {state for _, state, *_ in members(stopped)} == {"RUNNING"}
    other = subprocess.run([*argv(stopped), "--pbt-margin", "1.0"], env=env,
                           capture_output=True, text=True, timeout=600)
    assert other.returncode == 2 and "other settings (margin)" in other.stderr
    again = subprocess.run(argv(stopped), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "continued from" in again.stdout
    assert members(stopped) == members(whole)
    assert {state for _, state, *_ in members(stopped)} == {"COMPLETE"}
    assert not steps.exists()


@pytest.mark.slow
def test_pbt_quality_benchmark_smoke(tmp_path):
    """benchmarks/pbt_quality.py --quick: PBT, TPE and random search at equal env steps, each
    pick and the defaults trained again on the same fresh seeds, paired."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "pbt_quality.json"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "benchmarks/pbt_quality.py", "--quick", "--out",
                           str(out)], cwd=root, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (entry,) = json.loads(out.read_text())["scenarios"]
    assert entry["pbt"]["env_steps"] == 4 * 4096 >= entry["tpe"]["env_steps"]
    assert entry["pbt"]["pick"]["schedule"][0]["env_steps"] == 0
    validation = entry["validation"]
    assert set(validation["per_seed"]) == {"control", "pbt", "tpe", "random"}
    assert all(len(v) == 2 for v in validation["per_seed"].values())
    assert not set(validation["seeds"]) & {44000, 44001, 44002, 44003}, "fresh seeds"
    assert {"pbt", "tpe", "random", "pbt_vs_tpe"} <= set(validation["differences"])


def _fake_train_seeds(per_seed: dict):
    """A stand-in for train_seeds: the run of hyperparameters with learning rate `lr` scores
    per_seed[lr] on its fresh episodes and 1000 more on its last training episodes."""
    import types

    def train(config, hyperparams, seeds, chunk, episodes, schedule=None):
        fresh = np.asarray(per_seed[hyperparams["learning_rate"]], float)
        return types.SimpleNamespace(eval_sampled=np.repeat(fresh[:, None], episodes, axis=1),
                                     final_returns=fresh[:, None] + 1000.0)
    return train


def _with_p_value(control: np.ndarray, p_value: float, sign: float = 1.0) -> np.ndarray:
    """Values paired with `control` whose paired t-test (two-sided) has this p-value."""
    n = control.size
    z = np.tile([1.0, -1.0], n // 2) + np.linspace(-0.1, 0.1, n)
    z = (z - z.mean()) / z.std(ddof=1)
    mean = stats.t.isf(p_value / 2, n - 1) / np.sqrt(n)
    return control + sign * mean + z


@pytest.mark.parametrize("with_versus, winner", [(False, "schedule"), (True, "defaults")])
def test_pbt_validation_scores_fresh_episodes_and_corrects_for_two_comparisons(
        monkeypatch, capsys, with_versus, winner):
    """The schedule (raw p 0.04) and the TPE study's configuration (raw p 0.03) both beat the
    defaults uncorrected; Holm over the two comparisons (adjusted 0.06 each) calls neither a
    winner, while the schedule alone (one comparison) wins. Every value is the mean of the
    runs' fresh episodes, not of their last training episodes."""
    import types

    import optuna

    from bb_jax.runtime import runs
    from bb_jax.tuning import validation
    from bb_jax.tuning.pbt_train import Lineage

    control = np.linspace(100.0, 170.0, 8)
    per_seed = {DEFAULT_HYPERPARAMS["learning_rate"]: control,
                1e-4: _with_p_value(control, 0.04), 2e-4: _with_p_value(control, 0.03)}
    monkeypatch.setattr(runs, "train_seeds", _fake_train_seeds(per_seed))
    start = {**DEFAULT_HYPERPARAMS, "learning_rate": 1e-4}
    run = types.SimpleNamespace(best=0, lineages=[Lineage(3000, [(0, start)], 0, [(0, 0)])])
    settings = TuneSettings(space_rules={}, seed=3, eval_episodes=4, population_size=4,
                            validation=ValidationSettings(validate_seeds=8))
    versus = {"study": "tpe", "trial": 5, "tuning_value": 1.0, "study_env_steps": 100,
              "params": {"hidden_size": 16, "batch_size": 256, "learning_rate": 2e-4}}
    study = optuna.create_study(direction="maximize")
    validation.validate_schedule(study, run, CONFIG, settings, 2, Path("schedule.json"),
                                 versus if with_versus else None)
    outcome = study.user_attrs["pbt_validation"]
    assert outcome["schedule"] == pytest.approx(per_seed[1e-4].tolist())
    assert outcome["control"] == pytest.approx(control.tolist())
    assert outcome["difference"]["p_value"] == pytest.approx(0.04)
    assert outcome["difference"]["significant"], "uncorrected, the schedule beats them"
    assert outcome["winner"] == winner
    count = 2 if with_versus else 1
    assert outcome["correction"].startswith(f"Holm over {count} comparison")
    assert outcome["difference"]["p_holm"] == pytest.approx(0.06 if with_versus else 0.04)
    assert "fresh episodes" in outcome["measure"]
    out = capsys.readouterr().out
    assert f"Holm over {count} comparison" in out and "Holm p" in out
    if with_versus:
        assert outcome["versus"]["vs_control"]["p_holm"] == pytest.approx(0.06)


def test_validate_best_refuses_a_pbt_study_in_one_line(tmp_path, capsys):
    """validate_best.py retrains static trials; a PBT study's members are schedules, so it
    names --strategy pbt's own validation instead (exit 2, nothing written)."""
    import optuna

    from bb_jax.cli import validate_main

    storage = f"sqlite:///{tmp_path}/pbt.db"
    study = optuna.create_study(study_name="pbt", storage=storage, direction="maximize")
    study.set_user_attr("pbt_plan", {"settings": {}, "trials": []})
    code = validate_main(["--study-name", "pbt", "--storage", storage, "--results-json",
                          str(tmp_path / "out.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--strategy pbt" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pbt.db"]


def test_a_fixed_hyperparameter_is_not_explored(tmp_path):
    """--fix gamma=0.99 holds gamma in every member: explore leaves it as the parent had it."""
    from bb_jax.cli.tune_args import tune_parser
    from bb_jax.cli.tune_pbt import check_pbt

    argv = _pbt_cli(tmp_path)
    argv[argv.index("--fix") + 1] += ",gamma=0.99"
    rule = check_pbt(tune_parser().parse_args(argv))["rule"]
    assert "gamma" not in rule.explored and set(rule.explored) == set(pbt.SEARCHED) - {"gamma"}
