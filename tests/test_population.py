"""Populations: vmapped members equal single runs, hyperparameters are per member, keep().

Every population here has 4 members of LEARN_CONFIG and runs CHUNK-update chunks, so one
compiled population program and the single-run program of test_ppo.py serve all tests.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bb_jax.population import Population, compiled
from bb_jax.ppo import make_hyperparams, stack_hyperparams
from bb_jax.scenarios import get_scenario, stack_scenarios
from ppo_helpers import CHUNK, LEARN_CONFIG, keys, train_single

SIZE = 4
# vmapped and single runs differ only by float reassociation in batched kernels: after one
# chunk (8 updates, 4 epochs x 4 minibatches each) parameters agree to ~2e-7 (measured max
# |diff| 1.2e-7), metrics to a few 1e-7 relative. The tolerance leaves a 10x margin.
PARAM_ATOL = 2e-6
METRIC_RTOL = 2e-5

SEEDS = (3, 1, 4, 1_000)
HP_ROWS = (  # one seed for all: 0 and 1 identical, 2 and 3 differ from 0 in one field
    {"num_epochs": 3},
    {"num_epochs": 3},
    {"num_epochs": 1},
    {"num_epochs": 3, "learning_rate": 3e-4},
)


def _member(tree, i):
    return jax.tree.map(lambda x: np.asarray(x)[i], tree)


def _assert_params_close(a, b, atol=PARAM_ATOL):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


def _max_param_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _assert_metrics_close(pop_metrics, i, single_metrics):
    for name in ("mean_return", "episodes", "policy_loss", "value_loss", "entropy",
                 "approx_kl", "env_steps"):
        np.testing.assert_allclose(pop_metrics[name][i], np.asarray(single_metrics[name]),
                                   rtol=METRIC_RTOL, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def seed_population():
    """4 seeds, default hyperparameters, one chunk."""
    pop = Population(LEARN_CONFIG, stack_hyperparams([{}] * SIZE), keys(SEEDS))
    return pop, pop.run(CHUNK)


@pytest.fixture(scope="module")
def hp_population():
    """One seed, four hyperparameter rows, one chunk."""
    pop = Population(LEARN_CONFIG, stack_hyperparams(list(HP_ROWS)), keys([7] * SIZE))
    return pop, pop.run(CHUNK)


def test_population_equals_single_runs(seed_population):
    pop, metrics = seed_population
    assert metrics["mean_return"].shape == (SIZE, CHUNK)
    assert pop.updates_done == CHUNK
    for i, seed in enumerate(SEEDS):
        state, single_metrics = train_single(jax.random.PRNGKey(seed), make_hyperparams(), 1)
        _assert_params_close(_member(pop.state.params, i), state.params)
        _assert_metrics_close(metrics, i, single_metrics)
        assert int(pop.state.num_episodes[i]) == int(state.num_episodes)
        np.testing.assert_array_equal(np.asarray(pop.state.env_state.step_count[i]),
                                      np.asarray(state.env_state.step_count))


def test_different_seeds_differ(seed_population):
    pop, _ = seed_population
    p = pop.state.params
    # SEEDS[1] == 1 and SEEDS[3] == 1000 differ; no two members share parameters
    for i in range(SIZE):
        for j in range(i + 1, SIZE):
            assert _max_param_diff(_member(p, i), _member(p, j)) > 1e-3


def test_same_seed_same_hyperparameters_identical(hp_population):
    pop, metrics = hp_population
    p = pop.state.params
    for x in jax.tree.leaves(p):
        np.testing.assert_array_equal(np.asarray(x)[0], np.asarray(x)[1])
    for name, values in metrics.items():
        np.testing.assert_array_equal(values[0], values[1], err_msg=name)


def test_single_runs_are_deterministic():
    a, _ = train_single(jax.random.PRNGKey(11), make_hyperparams(), 1)
    b, _ = train_single(jax.random.PRNGKey(11), make_hyperparams(), 1)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_per_member_hyperparameters_change_results_and_match_single_runs(hp_population):
    pop, metrics = hp_population
    p = pop.state.params
    # num_epochs 3 vs 1 and learning rate 1e-3 vs 3e-4 change the trained parameters
    assert _max_param_diff(_member(p, 0), _member(p, 2)) > 1e-3
    assert _max_param_diff(_member(p, 0), _member(p, 3)) > 1e-3
    # same data in the first update (same seed), different learning: different losses
    assert metrics["policy_loss"][0, 0] != metrics["policy_loss"][2, 0]
    for i, row in enumerate(HP_ROWS):
        state, single_metrics = train_single(jax.random.PRNGKey(7), make_hyperparams(**row), 1)
        _assert_params_close(_member(p, i), state.params)
        _assert_metrics_close(metrics, i, single_metrics)


def test_keep_repacks_members_preserving_their_state(seed_population):
    """Continuing after keep([3, 1]) equals continuing the same members without keep."""
    pop, _ = seed_population
    before = pop.state
    # keep without padding: the chosen rows, in order, and nothing else (no run: a new size
    # would compile a new program)
    small = Population.__new__(Population)
    small.__dict__.update(pop.__dict__)
    small.keep([3, 1])
    assert small.size == 2 and list(small.members) == [3, 1]
    for x, y in zip(jax.tree.leaves(small.state), jax.tree.leaves(before)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y)[[3, 1]])
    np.testing.assert_array_equal(np.asarray(small.hyperparams.num_epochs),
                                  np.asarray(pop.hyperparams.num_epochs)[[3, 1]])

    # keep with padding to the same size: reuses the compiled program
    kept = Population.__new__(Population)
    kept.__dict__.update(pop.__dict__)
    kept.keep([3, 1], pad_to=SIZE)
    assert list(kept.members) == [3, 1, -1, -1]
    kept_metrics = kept.run(CHUNK)
    # the untouched population continues too (a new object: `pop` is shared by other tests)
    full = Population.__new__(Population)
    full.__dict__.update(pop.__dict__)
    full_metrics = full.run(CHUNK)
    for pos, member in enumerate([3, 1, 1, 1]):
        _assert_params_close(_member(kept.state.params, pos), _member(full.state.params, member))
        np.testing.assert_allclose(kept_metrics["mean_return"][pos],
                                   full_metrics["mean_return"][member], rtol=METRIC_RTOL)
    assert kept.updates_done == full.updates_done == 2 * CHUNK


def test_keep_rejects_empty():
    pop = Population.__new__(Population)
    pop.members = np.arange(3)
    with pytest.raises(ValueError):
        pop.keep([])


def test_population_with_per_member_scenarios():
    """Scenarios are traced rows: one compiled program serves members on different
    scenarios, and each member trains on its own (its observations carry its scenario)."""
    names = ["easy", "hard", "rest_trap", "easy"]
    scenarios = stack_scenarios([get_scenario(n, LEARN_CONFIG.num_opponents + 1)
                                 for n in names])
    pop = Population(LEARN_CONFIG, stack_hyperparams([{}] * SIZE), keys([5] * SIZE), scenarios)
    assert compiled(LEARN_CONFIG) is pop.fns
    # observation column 22 + 4N - 12 + 1 is p_ext
    p_ext = np.asarray(pop.state.obs)[:, :, -11]
    np.testing.assert_allclose(p_ext[:, 0], [0.8, 0.3, 0.95, 0.8], rtol=1e-6)
    metrics = pop.run(CHUNK)
    # members 0 and 3 (same seed, same scenario) are identical; 1 (hard) returns much less
    np.testing.assert_array_equal(metrics["mean_return"][0], metrics["mean_return"][3])
    assert metrics["mean_return"][1, -1] < metrics["mean_return"][0, -1] - 200
