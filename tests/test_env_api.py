"""API of the single-learner view: sizes, vmap / scan, auto-reset info, input validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bb_jax import OPPONENT_KINDS, get_scenario, list_scenarios, make_env
from bb_jax.game.reference import KINDS, SCENARIO_TABLE, default_opponent_kinds

BATCH, STEPS = 8, 40


def test_scenarios_match_the_rules_table():
    assert list_scenarios() == list(SCENARIO_TABLE)
    assert set(OPPONENT_KINDS) == set(KINDS)


@pytest.mark.parametrize("num_opponents", range(1, 10))
def test_sizes_and_default_opponents(num_opponents):
    env = make_env("default", num_opponents=num_opponents)
    n = num_opponents + 1
    assert env.num_agents == n and env.num_opponents == num_opponents
    assert env.observation_size == 22 + 4 * n
    assert tuple(env.action_dims) == (10, 2)
    assert list(env.opponent_kinds) == default_opponent_kinds(num_opponents)
    assert env.max_steps == 50


def test_default_opponent_lists_from_the_rules():
    assert default_opponent_kinds(2) == ["random", "random"]
    assert default_opponent_kinds(3) == ["random", "random", "firefighter"]
    assert default_opponent_kinds(5) == [
        "random", "random", "firefighter", "coordinator", "random"
    ]


@pytest.fixture(scope="module")
def vmapped_rollout():
    """vmap over keys for reset, vmap over states for step, inside one lax.scan."""
    env = make_env("easy", num_opponents=3)

    @jax.jit
    def run(key):
        reset_key, key = jax.random.split(key)
        obs0, state = jax.vmap(env.reset)(jax.random.split(reset_key, BATCH))

        def body(state, step_key):
            keys = jax.random.split(step_key, BATCH + 1)
            actions = jax.random.randint(keys[0], (BATCH, 2), 0, jnp.array([10, 2]))
            obs, state, reward, term, trunc, info = jax.vmap(env.step)(keys[1:], state, actions)
            return state, (obs, reward, term, trunc, info)

        state, outs = jax.lax.scan(body, state, jax.random.split(key, STEPS))
        return obs0, state, outs

    return env, run


def test_vmap_and_scan(vmapped_rollout):
    env, run = vmapped_rollout
    obs0, state, (obs, reward, term, trunc, info) = jax.device_get(run(jax.random.key(3)))
    assert obs0.shape == (BATCH, env.observation_size)
    assert obs.shape == (STEPS, BATCH, env.observation_size)
    assert reward.shape == term.shape == trunc.shape == (STEPS, BATCH)
    assert state.game.houses.shape == (BATCH, 10)
    assert {"final_observation", "episode_return", "episode_length"} <= set(info)
    assert info["final_observation"].shape == obs.shape
    # different keys give different environments
    assert len({tuple(o) for o in np.asarray(obs[-1])}) > 1
    # episodes end and restart within STEPS (easy: min_nights 10)
    assert term.any()
    # the reported return of a finished episode is the sum of its rewards
    for b in range(BATCH):
        start = 0
        for t in np.nonzero(term[:, b] | trunc[:, b])[0]:
            assert info["episode_length"][t, b] == t - start + 1
            np.testing.assert_allclose(
                info["episode_return"][t, b], reward[start:t + 1, b].sum(), rtol=1e-5
            )
            start = t + 1


def test_same_key_same_result(vmapped_rollout):
    _, run = vmapped_rollout
    a = jax.device_get(run(jax.random.key(11)))
    b = jax.device_get(run(jax.random.key(11)))
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_scenario_can_be_passed_per_call():
    """A scenario given to reset / step overrides the env's (and is traced, not static)."""
    env = make_env("default", num_opponents=2)
    hard = get_scenario("hard", 3)
    obs, _ = jax.eval_shape(env.reset, jax.random.key(0), hard)
    assert obs.shape == (env.observation_size,)


def test_unknown_scenario_lists_valid_names():
    with pytest.raises(ValueError) as err:
        make_env("no_such_scenario")
    for name in list_scenarios():
        assert name in str(err.value)
    with pytest.raises(ValueError):
        get_scenario("no_such_scenario")


@pytest.mark.parametrize("num_opponents", [0, 10, -1])
def test_bad_num_opponents(num_opponents):
    with pytest.raises(ValueError):
        make_env("default", num_opponents=num_opponents)


def test_unknown_opponent_kind_names_valid_kinds():
    with pytest.raises(ValueError) as err:
        make_env("default", num_opponents=2, opponents=["random", "saboteur"])
    message = str(err.value)
    assert "saboteur" in message
    for kind in KINDS:
        assert kind in message


@pytest.mark.parametrize("kinds", [[], ["random"], ["random", "hero", "liar"]])
def test_opponent_list_must_match_num_opponents(kinds):
    with pytest.raises(ValueError):
        make_env("default", num_opponents=2, opponents=kinds)
