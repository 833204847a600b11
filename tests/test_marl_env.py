"""The multi-agent env (JaxMARL's `MultiAgentEnv` API) is the single-learner view's game: with
seat 0 learning and the same heuristics in the other seats, the same keys play the same
episodes; spaces, dict keys, `"__all__"`, auto-reset, the flat action view, jit and vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxmarl.environments.multi_agent_env import MultiAgentEnv

from bb_jax.game.env import make_env
from bb_jax.game.marl_env import make_marl_env, parse_learners

STEPS = 250


def _single_rollout(env, key):
    """(obs, reward, done, episode_return) per step of the single-learner view, agent 0 acting
    from its action space."""
    def body(carry, k):
        obs, state = carry
        k_act, k_step = jax.random.split(k)
        action = jnp.stack(env.action_space(None).sample(k_act))
        obs, state, reward, term, trunc, info = env.step(k_step, state, action)
        return (obs, state), (obs, reward, term | trunc, info["episode_return"])

    k_reset, k_steps = jax.random.split(key)
    carry = env.reset(k_reset)
    return jax.lax.scan(body, carry, jax.random.split(k_steps, STEPS))[1]


def _marl_rollout(env, key):
    """The same for the multi-agent env's only learner, "agent_0", on the same keys."""
    gym_space = make_env().action_space(None)

    def body(carry, k):
        obs, state = carry
        k_act, k_step = jax.random.split(k)
        action = jnp.stack(gym_space.sample(k_act))
        obs, state, rewards, dones, info = env.step(k_step, state, {"agent_0": action})
        return (obs, state), (obs["agent_0"], rewards["agent_0"], dones["__all__"],
                              info["episode_return"][0])

    k_reset, k_steps = jax.random.split(key)
    carry = env.reset(k_reset)
    return jax.lax.scan(body, carry, jax.random.split(k_steps, STEPS))[1]


@pytest.mark.parametrize("scenario,kinds,max_steps", [
    ("default", None, 50),
    ("easy", ("firefighter", "random", "coordinator"), 20),
])
def test_same_episodes_as_the_single_learner_view(scenario, kinds, max_steps):
    m = 2 if kinds is None else len(kinds)
    single = make_env(scenario, num_opponents=m, opponents=kinds, max_steps=max_steps)
    multi = make_marl_env(scenario, num_agents=m + 1, learners=(0,), heuristics=kinds,
                          max_steps=max_steps)
    key = jax.random.key(3)
    want = jax.jit(lambda k: _single_rollout(single, k))(key)
    got = jax.jit(lambda k: _marl_rollout(multi, k))(key)
    assert bool(want[2].any())  # several episodes ended, so resets are compared too
    for w, g in zip(want, got):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_api_shape_keys_and_spaces():
    env = make_marl_env("default", num_agents=4, learners=(0, 2))
    assert isinstance(env, MultiAgentEnv)
    assert env.agents == ["agent_0", "agent_2"] and env.num_agents == 2
    assert env.heuristic_seats == (1, 3) and env.heuristics == ("random", "random")
    obs, state = env.reset(jax.random.key(0))
    assert set(obs) == set(env.agents)
    keys = jax.random.split(jax.random.key(1), env.num_agents)
    actions = {a: env.action_space(a).sample(k) for a, k in zip(env.agents, keys)}
    assert all(bool(env.action_space(a).contains(actions[a])) for a in env.agents)
    obs, state, rewards, dones, infos = env.step(jax.random.key(2), state, actions)
    assert set(rewards) == set(env.agents) and set(dones) == {*env.agents, "__all__"}
    for a in env.agents:
        assert obs[a].shape == env.observation_space(a).shape
        assert bool(env.observation_space(a).contains(obs[a]))
    for name in ("terminated", "truncated", "episode_return", "episode_length"):
        assert infos[name].shape == (2,)
    np.testing.assert_array_equal(infos["episode_return"],
                                  [rewards["agent_0"], rewards["agent_2"]])
    world = env.world_state(state)
    assert world.shape == (env.world_state_size,)
    np.testing.assert_array_equal(world[-20:], state.heuristic_params.reshape(-1))


def test_flat_actions_are_the_pairs():
    pair = make_marl_env("default", learners="all")
    flat = make_marl_env("default", learners="all", flat_actions=True)
    assert flat.action_space("agent_1").n == 20
    _, state = pair.reset(jax.random.key(0))
    houses, modes = jnp.array([3, 7, 0]), jnp.array([1, 0, 1])
    got = flat.step(jax.random.key(5), state,
                    {a: 2 * houses[i] + modes[i] for i, a in enumerate(flat.agents)})
    want = pair.step(jax.random.key(5), state,
                     {a: jnp.stack([houses[i], modes[i]]) for i, a in enumerate(pair.agents)})
    jax.tree.map(np.testing.assert_array_equal, got, want)


def test_auto_reset_on_all_done_and_reset_state():
    env = make_marl_env("default", learners="all", max_steps=3)
    _, state = env.reset(jax.random.key(0))
    actions = dict.fromkeys(env.agents, jnp.array([0, 1]))
    for i in range(3):
        obs, state, rewards, dones, infos = env.step(jax.random.key(i), state, actions)
    assert bool(dones["__all__"]) and bool(infos["truncated"].all())
    assert int(state.step_count) == 0 and not bool(state.episode_returns.any())
    assert int(infos["episode_length"][0]) == 3
    np.testing.assert_array_equal(obs["agent_0"], env.get_obs(state)["agent_0"])
    _, fixed = env.reset(jax.random.key(9))
    _, mid = env.reset(jax.random.key(1))
    mid = mid.replace(step_count=jnp.int32(2))
    _, after, *_ = env.step(jax.random.key(4), mid, actions, reset_state=fixed)
    jax.tree.map(np.testing.assert_array_equal, after, fixed)


def test_jit_and_vmap_over_a_batch():
    env = make_marl_env("default", learners=2)
    keys = jax.random.split(jax.random.key(0), 8)
    obs, state = jax.jit(jax.vmap(env.reset))(keys)
    actions = dict.fromkeys(env.agents, jnp.zeros((8, 2), jnp.int32))
    obs, state, rewards, dones, infos = jax.jit(jax.vmap(env.step))(keys, state, actions)
    assert obs["agent_1"].shape == (8, env.observation_space("agent_1").shape[0])
    assert rewards["agent_0"].shape == dones["__all__"].shape == (8,)
    assert infos["episode_return"].shape == (8, 2)


@pytest.mark.parametrize("learners,error", [
    ((0, 3), "distinct seats in 0..2"), ((1, 1), "distinct seats"), ((), "distinct seats"),
    (4, "count must be in 1..3"), ("some", "'all', a count or seats"),
])
def test_bad_learners_name_the_choices(learners, error):
    with pytest.raises(ValueError, match=error):
        parse_learners(learners, 3)


def test_heuristics_must_fill_the_other_seats():
    with pytest.raises(ValueError, match="1 heuristic kinds for 2 heuristic seats"):
        make_marl_env("default", num_agents=3, learners=(1,), heuristics=("firefighter",))
    with pytest.raises(ValueError, match="unknown opponent kind"):
        make_marl_env("default", num_agents=3, learners=(1, 2), heuristics=("nobody",))
