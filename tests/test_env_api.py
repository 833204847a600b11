"""API of the single-learner view: sizes, vmap / scan, auto-reset info, input validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bb_jax import OPPONENT_KINDS, get_scenario, list_scenarios, make_env
from bb_jax.game.scenarios import SCENARIO_FIELDS
from bb_jax.testing.reference_game import KINDS, SCENARIO_TABLE, default_opponent_kinds

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


def test_results_depend_on_the_key_alone():
    """An environment gives the same result for the same key whether it runs alone or in a
    vmapped batch, and different step keys from one state give different nights."""
    env = make_env("easy", num_opponents=3)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    reset_keys = jax.random.split(jax.random.key(11), 4)
    step_keys = jax.random.split(jax.random.key(12), 4)
    actions = jnp.array([[0, 1], [3, 0], [7, 1], [9, 0]], jnp.int32)
    obs, states = jax.jit(jax.vmap(env.reset))(reset_keys)
    batch = jax.device_get(jax.jit(jax.vmap(env.step))(step_keys, states, actions))
    for i in range(4):
        obs_i, state_i = reset(reset_keys[i])
        np.testing.assert_array_equal(obs_i, obs[i])
        alone = jax.device_get(step(step_keys[i], state_i, actions[i]))
        jax.tree.map(lambda a, b, i=i: np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(b[i], np.float64), rtol=1e-6), alone, batch)
    # one state, one action, four step keys: the random opponents and fires differ
    same = jax.tree.map(lambda x: jnp.broadcast_to(x[0], x.shape), states)
    nights = jax.device_get(jax.jit(jax.vmap(env.step))(
        step_keys, same, jnp.broadcast_to(actions[0], actions.shape)))
    assert len({np.asarray(o).tobytes() for o in nights[0]}) > 1


@pytest.fixture(scope="module")
def per_call_rollouts():
    """The same keys and actions played by: a default env given `hard` at every reset and
    step, a hard env, and a default env (scenario traced: one program per env)."""
    steps = 20

    def play(env, scenario):
        @jax.jit
        def run(key, scenario):
            reset_key, key = jax.random.split(key)
            obs0, state = jax.vmap(env.reset, in_axes=(0, None))(
                jax.random.split(reset_key, BATCH), scenario)

            def body(state, step_key):
                keys = jax.random.split(step_key, BATCH)
                actions = jnp.stack([jnp.arange(BATCH) % 10, jnp.ones(BATCH, int)], -1)
                obs, state, reward, term, trunc, info = jax.vmap(
                    env.step, in_axes=(0, 0, 0, None))(keys, state, actions, scenario)
                return state, (obs, reward, term, info["final_observation"])

            _, outs = jax.lax.scan(body, state, jax.random.split(key, steps))
            return obs0, outs

        return jax.device_get(run(jax.random.key(5), scenario))

    default_env, hard_env = make_env("default", 2), make_env("hard", 2)
    return (play(default_env, get_scenario("hard", 3)), play(hard_env, None),
            play(default_env, None))


def test_scenario_can_be_passed_per_call(per_call_rollouts):
    """A scenario given to reset / step replaces the env's: a default env played with `hard`
    is the hard env, observation, rewards and ends alike, and differs from default play."""
    given, hard, default = per_call_rollouts
    jax.tree.map(np.testing.assert_array_equal, given, hard)
    obs0, (obs, reward, term, final_obs) = given
    # the scenario block of every observation holds hard's parameters (and N = 3)
    hard_block = [float(getattr(get_scenario("hard", 3), f)) for f in SCENARIO_FIELDS] + [3]
    for o in (obs0, obs, final_obs):
        np.testing.assert_allclose(o[..., -12:], np.broadcast_to(hard_block, o[..., -12:].shape))
    assert not np.array_equal(reward, default[1][1])


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
