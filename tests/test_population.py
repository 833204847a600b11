"""Populations: vmapped members equal single runs, hyperparameters are per member, keep().

The slow tests' populations have SIZE members of LEARN_CONFIG and run one-update chunks, so
one compiled population program and the single-run programs of test_ppo.py serve them all;
their quick siblings (the CI tier) run two members of TINY (hidden 16, batch 256) for one
update.

How close is "the same"? Batched (vmapped) and single kernels sum in different orders, so one
update from the same state gives parameters that differ by float rounding (typically 3e-8 to
7e-8 after an update; Adam moments 1e-8 to 3e-8; losses 1.3e-6) while the rollout,
environments, keys and returns are bit-identical (on CPU). Within an update the learning is
piecewise smooth: a rounding difference that moves one sample's pre-activation across a ReLU
kink (or a ratio across the clip boundary) changes that sample's gradient outright, and Adam
carries it on through the later minibatches (seen in 1 of 12 member-updates: parameters
2.6e-6 apart, first moments 0.3% of their scale). The tolerances therefore allow a few such
flips and nothing more: parameters within 1% of one Adam step (the learning rate), Adam
moments within 1% of each leaf's largest magnitude; a member trained on another member's
data or hyperparameters is off by whole steps and whole moments. Over many updates even this
is not usable: the sampled actions are a discontinuous function of the parameters, so after a
flip the runs drift apart like any two seeds. So a member is compared with a single run update
by update, each single update starting from the member's own state, and end to end for the
first update (initial states are bit-identical).
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ppo_helpers import CHUNK, LEARN_CONFIG, keys, single

from bb_jax.agent.config import make_hyperparams, stack_hyperparams
from bb_jax.game.scenarios import get_scenario, stack_scenarios
from bb_jax.runtime.population import Population
from bb_jax.runtime.programs import compiled

SIZE = 4
NUM_UPDATES = 3
PARAM_ATOL = 1e-5  # 1% of one Adam step at the default learning rate 1e-3
MOMENT_RTOL = 1e-2  # of each optimizer-state leaf's largest magnitude
# Losses are means of O(1) terms that cancel (policy loss ~ -0.005): measured absolute
# differences up to 1.3e-6 (policy loss), 3e-7 (entropy, value loss, explained variance).
METRIC_ATOL = 1e-5

SEEDS = (3, 1, 4, 1_000)
HP_ROWS = (  # one seed for all: 0 and 1 identical, 2 and 3 differ from 0 in one field
    {"num_epochs": 3},
    {"num_epochs": 3},
    {"num_epochs": 1},
    {"num_epochs": 3, "learning_rate": 3e-4},
)
EXACT_FIELDS = ("env_state", "obs", "key", "update", "recent_returns", "num_episodes")


def _member(tree, i):
    return jax.tree.map(lambda x: np.asarray(x)[i], tree)


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _assert_trees_equal(a, b, what):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=what)


def _assert_state_matches(member_state, single_state):
    """Parameters and optimizer state within rounding (and a few kink flips), everything else
    bit-identical."""
    assert _max_diff(member_state.params, single_state.params) <= PARAM_ATOL
    for x, y in zip(jax.tree.leaves(member_state.opt_state),
                    jax.tree.leaves(single_state.opt_state), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        assert np.max(np.abs(x - y)) <= MOMENT_RTOL * np.max(np.abs(y)), "optimizer state"
    for name in EXACT_FIELDS:
        _assert_trees_equal(getattr(member_state, name), getattr(single_state, name), name)


def _assert_metrics_match(pop_metrics, i, t, single_metrics):
    """pop_metrics: numpy [P, 1] of update t; single_metrics of one update."""
    for name in ("mean_return", "episodes", "env_steps", "finite"):
        np.testing.assert_array_equal(pop_metrics[name][i, -1],
                                      np.asarray(single_metrics[name])[-1], err_msg=name)
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                 "explained_variance"):
        np.testing.assert_allclose(pop_metrics[name][i, -1], np.asarray(single_metrics[name])[-1],
                                   rtol=0, atol=METRIC_ATOL, err_msg=f"{name} update {t}")


def _run_population(hp_rows, seeds, scenarios=None):
    """(population after NUM_UPDATES, its states before each update and after the last,
    metrics per update)."""
    pop = Population(LEARN_CONFIG, stack_hyperparams(list(hp_rows)), keys(seeds), scenarios)
    states, metrics = [_copy(pop.state)], []
    for _ in range(NUM_UPDATES):
        metrics.append(pop.run(CHUNK))
        states.append(_copy(pop.state))  # `run` consumes (donates) the state it starts from
    return pop, states, metrics


@pytest.fixture(scope="module")
def seed_population():
    """SIZE seeds, default hyperparameters."""
    return _run_population([{}] * SIZE, SEEDS)


@pytest.fixture(scope="module")
def hp_population():
    """One seed, SIZE hyperparameter rows."""
    return _run_population(HP_ROWS, [7] * SIZE)


def _check_against_single_runs(states, metrics, seeds, hp_rows):
    _, init, run_chunk, _ = single(LEARN_CONFIG)
    for i, (seed, row) in enumerate(zip(seeds, hp_rows)):
        hp = make_hyperparams(**row)
        # end to end: a single run from the same key
        start = init(jax.random.PRNGKey(seed), hp)
        _assert_trees_equal(_member(states[0], i), start, "initial state")
        after, first_metrics = run_chunk(start, hp)
        _assert_state_matches(_member(states[1], i), after)
        _assert_metrics_match(metrics[0], i, 0, first_metrics)
        # update by update from the member's own state
        for t in range(1, NUM_UPDATES):
            after, step_metrics = run_chunk(_member(states[t], i), hp)
            _assert_state_matches(_member(states[t + 1], i), after)
            _assert_metrics_match(metrics[t], i, t, step_metrics)


@pytest.mark.slow
def test_population_equals_single_runs(seed_population):
    pop, states, metrics = seed_population
    assert pop.updates_done == NUM_UPDATES
    assert metrics[0]["mean_return"].shape == (SIZE, CHUNK)
    _check_against_single_runs(states, metrics, SEEDS, [{}] * SIZE)


@pytest.mark.slow
def test_different_seeds_differ(seed_population):
    pop, _, _ = seed_population
    for i in range(SIZE):
        for j in range(i + 1, SIZE):
            assert _max_diff(_member(pop.state.params, i), _member(pop.state.params, j)) > 1e-3


@pytest.mark.slow
def test_same_seed_same_hyperparameters_identical(hp_population):
    pop, _, metrics = hp_population
    _assert_trees_equal(_member(pop.state, 0), _member(pop.state, 1), "state")
    for m in metrics:
        for name, values in m.items():
            np.testing.assert_array_equal(values[0], values[1], err_msg=name)


@pytest.mark.slow
def test_per_member_hyperparameters_change_results_and_match_single_runs(hp_population):
    pop, states, metrics = hp_population
    p = pop.state.params
    # num_epochs 3 vs 1, and learning rate 1e-3 vs 3e-4, change the trained parameters
    assert _max_diff(_member(p, 0), _member(p, 2)) > 1e-3
    assert _max_diff(_member(p, 0), _member(p, 3)) > 1e-3
    # same first rollout (same seed), different learning on it
    assert metrics[0]["policy_loss"][0, 0] != metrics[0]["policy_loss"][2, 0]
    _check_against_single_runs(states, metrics, [7] * SIZE, HP_ROWS)


@pytest.mark.slow
def test_keep_repacks_members_preserving_their_state(seed_population):
    """Continuing after keep([3, 1]) equals continuing the same members without keep (bit for
    bit: a member's computation does not depend on its position)."""
    pop, _, _ = seed_population
    # keep without padding: exactly the chosen rows, in order (not run: a new size compiles
    # a new program)
    small = copy.copy(pop)
    small.keep([3, 1])
    assert small.size == 2 and list(small.members) == [3, 1]
    for name, tree in (("state", pop.state), ("hyperparams", pop.hyperparams),
                       ("scenarios", pop.scenarios)):
        _assert_trees_equal(getattr(small, name), jax.tree.map(lambda x: np.asarray(x)[[3, 1]],
                                                               tree), name)
    # keep with padding to the same size: reuses the compiled program
    kept = copy.copy(pop)
    kept.keep([3, 1], size=SIZE)
    assert list(kept.members) == [3, 1, -1, -1]
    kept_metrics = kept.run(CHUNK)
    full = copy.copy(pop)  # `pop` itself is shared with other tests: run a copy of its state
    full.state = _copy(pop.state)
    full_metrics = full.run(CHUNK)
    assert kept.updates_done == full.updates_done == NUM_UPDATES + CHUNK
    for pos, member in enumerate([3, 1, 1, 1]):
        _assert_trees_equal(_member(kept.state, pos), _member(full.state, member), "state")
        for name in kept_metrics:
            np.testing.assert_array_equal(kept_metrics[name][pos], full_metrics[name][member])


@pytest.mark.slow
def test_keep_rejects_empty(seed_population):
    pop = copy.copy(seed_population[0])
    with pytest.raises(ValueError):
        pop.keep([])


@pytest.mark.slow
def test_population_with_per_member_scenarios():
    """Scenarios are traced rows: one compiled program serves members on different
    scenarios, and each member plays its own (its observations carry its scenario)."""
    names = ["easy", "hard", "rest_trap", "easy"]
    scenarios = stack_scenarios([get_scenario(n, LEARN_CONFIG.num_opponents + 1)
                                 for n in names])
    pop = Population(LEARN_CONFIG, stack_hyperparams([{}] * SIZE), keys([5] * SIZE), scenarios)
    assert compiled(LEARN_CONFIG) is pop.fns
    # the view's features end with the scenario block (p_ext's scale is 1), then the time input
    features = pop.fns.ppo.input_size - int(LEARN_CONFIG.time_input)
    p_ext = np.asarray(pop.state.obs)[:, :, features - 11]  # scenario_info[1]
    np.testing.assert_allclose(p_ext[:, 0], [0.8, 0.3, 0.95, 0.8], rtol=1e-6)
    pop.run(CHUNK)
    metrics = pop.run(CHUNK)
    # members 0 and 3 (same seed, same scenario) stay identical; on `hard` (member 1) far
    # fewer houses survive
    _assert_trees_equal(_member(pop.state, 0), _member(pop.state, 3), "state")
    assert metrics["mean_return"][1, -1] < metrics["mean_return"][0, -1] - 200


@pytest.mark.slow
def test_one_evaluation_program_serves_every_batch_size():
    """Evaluation uses the network alone: configs that differ only in batch size share one
    compiled evaluation, and it returns what the population's own PPO evaluates."""
    from bb_jax.agent.ppo import PPO

    config = LEARN_CONFIG.replace(total_steps=None)
    other = config.replace(batch_size=2 * config.batch_size)
    assert compiled(config).evaluate is compiled(other).evaluate
    assert compiled(config).evaluate is not compiled(
        config.replace(hidden_size=2 * config.hidden_size)).evaluate
    population = Population(other, stack_hyperparams([{}] * 2), keys([3, 4]))
    key = jax.random.PRNGKey(11)
    shared = population.evaluate(key, 8)
    own = jax.vmap(PPO(other).evaluate, in_axes=(0, 0, None, None, 0))(
        population.state.params, jax.random.split(key, 2), 8, False, population.scenarios)
    np.testing.assert_array_equal(shared, np.asarray(own))


TINY = LEARN_CONFIG.replace(hidden_size=16, batch_size=256)
TINY_SEEDS = (3, 5)


@pytest.fixture(scope="module")
def tiny_population():
    """(population after one update, its state before and after it, the update's metrics):
    two seeds of TINY, default hyperparameters."""
    pop = Population(TINY, stack_hyperparams([{}] * 2), keys(TINY_SEEDS))
    before = _copy(pop.state)
    metrics = pop.run(CHUNK)
    return pop, before, _copy(pop.state), metrics


def test_a_member_of_a_population_equals_its_single_run(tiny_population):
    """CI sibling of test_population_equals_single_runs: one update of two members."""
    _, before, after, metrics = tiny_population
    _, init, run_chunk, _ = single(TINY)
    hp = make_hyperparams()
    for i, seed in enumerate(TINY_SEEDS):
        start = init(jax.random.PRNGKey(seed), hp)
        _assert_trees_equal(_member(before, i), start, "initial state")
        alone, alone_metrics = run_chunk(start, hp)
        _assert_state_matches(_member(after, i), alone)
        _assert_metrics_match(metrics, i, 0, alone_metrics)
    assert _max_diff(_member(after.params, 0), _member(after.params, 1)) > 1e-3


def test_keep_repacks_a_member_that_then_trains_as_before(tiny_population):
    """CI sibling of test_keep_repacks_members_preserving_their_state: keep([1]) padded to
    the same size (the same compiled program) continues member 1 bit for bit."""
    pop, _, after, _ = tiny_population
    kept = copy.copy(pop)
    kept.state = _copy(after)
    kept.keep([1], size=2)
    assert list(kept.members) == [1, -1] and kept.size == 2
    full = copy.copy(pop)
    full.state = _copy(after)
    kept_metrics, full_metrics = kept.run(CHUNK), full.run(CHUNK)
    for pos in range(2):
        _assert_trees_equal(_member(kept.state, pos), _member(full.state, 1), "state")
        for name in kept_metrics:
            np.testing.assert_array_equal(kept_metrics[name][pos], full_metrics[name][1])
