"""Property tests of the JAX game (hypothesis), on the fixed replay shapes of bbref_helpers so
that every example reuses an already-compiled function."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bbref_helpers import (
    CONFIGS,
    EDGE_ROWS,
    ENV_SCENARIOS,
    STEPS,
    as_numpy,
    jax_env,
    make_inputs,
    replay_fn,
    scenario_batch,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bb_jax import get_scenario, make_env
from bb_jax.game.scenarios import SCENARIO_FIELDS

SETTINGS = settings(
    max_examples=6, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

case = st.fixed_dictionaries({
    "config": st.integers(0, len(CONFIGS) - 1),
    "seed": st.integers(0, 2**31 - 1),
    "edge_fraction": st.sampled_from([0.0, 0.3, 0.9]),
    "action": st.one_of(
        st.none(), st.tuples(st.integers(0, 9), st.integers(0, 1))
    ),
})


def rollout(c):
    kinds, max_steps = CONFIGS[c["config"]]
    n = len(kinds) + 1
    env = jax_env(kinds, max_steps)
    reset_blocks, blocks, actions = make_inputs(
        env, len(ENV_SCENARIOS), STEPS, c["seed"], edge_rows=EDGE_ROWS,
        edge_fraction=c["edge_fraction"], action=c["action"],
    )
    traj = as_numpy(replay_fn(kinds, max_steps)(
        scenario_batch(ENV_SCENARIOS, n), reset_blocks, blocks, actions
    ))
    traj["actions"] = actions
    return n, max_steps, traj


def start_houses(traj):
    """[T, B, 10]: the houses at the start of each step (reset obs, then previous obs)."""
    return np.concatenate([traj["obs0"][None, :, :10], traj["obs"][:-1, :, :10]], axis=0)


@SETTINGS
@given(case)
def test_house_states_valid_and_ruin_permanent(c):
    _, _, traj = rollout(c)
    before = start_houses(traj)
    after = traj["final_obs"][..., :10]
    for houses in (before, after, traj["houses"]):
        assert np.isin(houses, (0, 1, 2)).all()
    # RUINED stays RUINED within an episode (never SAFE, never BURNING)
    assert np.all(after[before == 2] == 2)
    # a fresh town has no RUINED house: the reset and every auto-reset observation
    done = traj["terminated"] | traj["truncated"]
    assert np.all(traj["obs0"][:, :10] != 2)
    assert np.all(traj["obs"][done][:, :10] != 2)
    # a SAFE house never becomes RUINED in one night (only a BURNING one burns out)
    assert np.all(after[before == 0] != 2)


@SETTINGS
@given(case)
def test_reward_follows_the_formula(c):
    """Agent 0's reward recomputed from the houses before and after each night and its own
    mode (docs/GAME_RULES.md, "Rewards"): -c for WORK or +0.5 for REST, +1 per own house
    saved (not SAFE before, SAFE after), -2 per own house RUINED, + A S / 10 - L R / 10."""
    n, _, traj = rollout(c)
    before, after = start_houses(traj), traj["final_obs"][..., :10]
    own = np.arange(10) % n == 0
    worked = traj["actions"][..., 1] == 1
    saved = ((before != 0) & (after == 0) & own).sum(-1)
    ruined_own = ((after == 2) & own).sum(-1)
    safe, ruined = (after == 0).sum(-1), (after == 2).sum(-1)
    for b, name in enumerate(ENV_SCENARIOS):
        scn = get_scenario(name, n)
        expected = (np.where(worked[:, b], -float(scn.c), 0.5) + saved[:, b]
                    - 2 * ruined_own[:, b] + float(scn.A) * safe[:, b] / 10
                    - float(scn.L) * ruined[:, b] / 10)
        np.testing.assert_allclose(traj["reward"][:, b], expected, atol=1e-3, err_msg=name)


@SETTINGS
@given(case)
def test_termination_truncation_and_reset(c):
    n, max_steps, traj = rollout(c)
    term, trunc = traj["terminated"], traj["truncated"]
    length = traj["episode_length"]
    done = term | trunc
    for b, name in enumerate(ENV_SCENARIOS):
        min_nights = int(get_scenario(name, n).min_nights)
        # terminated: night index >= min_nights and nothing BURNING after the night
        assert np.all(length[term[:, b], b] >= min_nights + 1)
        assert np.all(traj["final_obs"][term[:, b], b, :10] != 1)
        # not terminated although allowed by the night count: something is BURNING
        allowed = (length[:, b] >= min_nights + 1) & ~term[:, b]
        assert np.all((traj["final_obs"][allowed, b, :10] == 1).any(axis=-1))
    # truncated exactly when the episode reaches max_steps
    np.testing.assert_array_equal(trunc, length == max_steps)
    # episode_length counts 1, 2, 3, ... and restarts after each end
    expected = np.ones_like(length)
    for t in range(1, length.shape[0]):
        expected[t] = np.where(done[t - 1], 1, expected[t - 1] + 1)
    np.testing.assert_array_equal(length, expected)
    # after an end the observation is a fresh episode: agents' blocks are zero
    fresh = traj["obs"][done]
    assert np.all(fresh[:, 10:10 + 4 * n] == 0)
    # otherwise the returned observation is the step's result
    np.testing.assert_array_equal(traj["obs"][~done], traj["final_obs"][~done])


@SETTINGS
@given(case)
def test_observation_layout(c):
    n, _, traj = rollout(c)
    obs = traj["final_obs"]
    signals = obs[..., 10:10 + n]
    locations = obs[..., 10 + n:10 + 2 * n]
    last = obs[..., 10 + 2 * n:10 + 4 * n].reshape(*obs.shape[:-1], n, 2)
    # every agent publishes its mode as its signal and its house as its location; agent 0's
    # are the actions it was given
    np.testing.assert_array_equal(signals, last[..., 1])
    np.testing.assert_array_equal(locations, last[..., 0])
    assert np.isin(last[..., 1], (0, 1)).all() and np.isin(last[..., 0], np.arange(10)).all()
    np.testing.assert_array_equal(last[..., 0, :], traj["actions"])
    # scenario info block
    for b, name in enumerate(ENV_SCENARIOS):
        scn = get_scenario(name, n)
        info = np.asarray([float(getattr(scn, f)) for f in SCENARIO_FIELDS] + [n], np.float32)
        np.testing.assert_array_equal(obs[:, b, 10 + 4 * n:], np.broadcast_to(info, (STEPS, 12)))


@pytest.mark.parametrize("num_opponents", [1, 2, 3, 9])
def test_dtypes_and_shapes(num_opponents):
    """Shapes and dtypes by abstract evaluation (traces the real functions, compiles nothing)."""
    env = make_env("hard", num_opponents=num_opponents)
    n = num_opponents + 1
    obs, state = jax.eval_shape(env.reset, jax.random.key(0))
    out = jax.eval_shape(env.step, jax.random.key(1), state, jnp.array([3, 1], jnp.int32))
    obs2, state2, reward, term, trunc, info = out
    for o in (obs, obs2, info["final_observation"]):
        assert o.shape == (22 + 4 * n,) and o.dtype == jnp.float32
    assert reward.shape == () and reward.dtype == jnp.float32
    assert term.shape == () and term.dtype == jnp.bool_
    assert trunc.shape == () and trunc.dtype == jnp.bool_
    for s in (state, state2):
        g = s.game
        assert g.houses.shape == (10,) and g.houses.dtype == jnp.int32
        assert g.night.shape == () and g.night.dtype == jnp.int32
        assert g.signals.shape == (n,) and g.signals.dtype == jnp.int32
        assert g.locations.shape == (n,) and g.locations.dtype == jnp.int32
        assert g.last_actions.shape == (n, 2) and g.last_actions.dtype == jnp.int32
        assert s.opponent_params.shape == (num_opponents, 10)
        assert s.opponent_params.dtype == jnp.float32
        assert s.step_count.shape == () and s.step_count.dtype == jnp.int32
        assert s.episode_return.shape == () and s.episode_return.dtype == jnp.float32
    assert info["episode_length"].dtype == jnp.int32
    assert info["episode_return"].dtype == jnp.float32
