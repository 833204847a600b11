"""Team learners (IPPO, MAPPO, independent) on the game's JaxMARL env, through the
`MultiAgentEnv` interface: a population of teams (seeds x learning rates) is one jitted and
vmapped program, seats share or own parameters as declared, MAPPO's critic reads the world
state, whole episodes pair by key, and a trained IPPO team beats a random team."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bb_jax.agent.team import (
    LEARNERS,
    TeamConfig,
    apply_team,
    init_params,
    make_team,
    make_train,
    stack_configs,
    team_inputs,
)
from bb_jax.agent.team_eval import episode_returns, random_policy, trained_policy
from bb_jax.game.marl_env import make_marl_env
from bb_jax.game.marl_features import one_hot_houses
from bb_jax.stats import paired_difference

TINY = dict(num_envs=2, rollout_length=4, total_steps=8, num_epochs=1, num_minibatches=2,
            hidden_size=16)
# the slow test's team: IPPO on `default`, every seat learning
TRAINED = dict(learner="ippo", total_steps=600_000, learning_rate=1e-3, entropy_coef=0.01,
               gamma=0.955, gae_lambda=0.966, clip_epsilon=0.27, value_coef=0.31, num_epochs=5)


@pytest.fixture(scope="module")
def env():
    return make_marl_env("default", num_agents=3, learners="all")


def _inputs(team, obs, state):
    """The team's (actor, critic) inputs [A, 1, D] of one env's observations and state."""
    return team_inputs(team, *jax.tree.map(lambda x: x[None], (obs, state)))


def _params(team, env, key):
    return init_params(team, key, _inputs(team, *env.reset(key)))


RATES = (0.0, 1e-2)
_POPULATIONS = {}


def _population(env, learner):
    """2 seeds x RATES teams of one learner, trained one update each by one jitted and
    vmapped program (run once per learner and module)."""
    if learner not in _POPULATIONS:
        configs = stack_configs([TeamConfig(learner=learner, learning_rate=lr, **TINY)
                                 for _ in range(2) for lr in RATES])
        keys = jnp.stack([jax.random.key(s) for s in range(2) for _ in RATES])
        _POPULATIONS[learner] = keys, jax.jit(jax.vmap(make_train(env)))(configs, keys)
    return _POPULATIONS[learner]


@pytest.mark.parametrize("learner", LEARNERS)
def test_a_population_of_teams_is_one_program(env, learner):
    """2 seeds x 2 learning rates, jitted and vmapped: one update each, params per group."""
    keys, run = _population(env, learner)
    groups = 1 if learner != "independent" else env.num_agents
    kernel = run.params["params"]["actor_0"]["kernel"]
    assert kernel.shape[:2] == (4, groups)
    assert all(v.shape == (4, 1) for v in run.metrics.values())
    assert np.isfinite(np.asarray(run.metrics["value_loss"])).all()
    # a learning rate of 0 keeps the seed's initial network; 1e-2 moves it; seeds differ
    assert not np.allclose(kernel[0], kernel[1]) and not np.allclose(kernel[0], kernel[2])
    team = make_team(env, TeamConfig(learner=learner, **TINY))
    inputs = _inputs(team, *env.reset(jax.random.key(0)))
    still = jax.vmap(lambda k: init_params(team, jax.random.split(k, 3)[0], inputs))(keys)
    np.testing.assert_array_equal(kernel[::2], still["params"]["actor_0"]["kernel"][::2])


def _logits(env, learner, params, obs, state):
    team = make_team(env, TeamConfig(learner=learner, **TINY))
    return apply_team(team, params, _inputs(team, obs, state))


@pytest.mark.parametrize("learner", LEARNERS)
def test_seats_share_or_own_parameters_as_declared(env, learner):
    """Changing group 1's parameters changes only seat 1 for independent learners; a shared
    network has one group, and the seat's id alone makes seats act differently."""
    team = make_team(env, TeamConfig(learner=learner, **TINY))
    params = _params(team, env, jax.random.key(0))
    obs, state = env.reset(jax.random.key(1))
    before = _logits(env, learner, params, obs, state)[0]
    if learner == "independent":
        changed = jax.tree.map(lambda p: p.at[1].add(0.5), params)
        after = _logits(env, learner, changed, obs, state)[0]
        np.testing.assert_array_equal(after[0], before[0])
        np.testing.assert_array_equal(after[2], before[2])
        assert not np.allclose(after[1], before[1])
    else:
        assert jax.tree.leaves(params)[0].shape[0] == 1
        assert not np.allclose(before[0], before[1])  # same observation, different seat


def test_mappo_critic_reads_the_world_state():
    """Two states with the same observation and different hidden heuristic parameters: MAPPO's
    values differ, its actor's logits and IPPO's values do not."""
    env = make_marl_env("default", num_agents=3, learners=(0, 1))
    obs, state = env.reset(jax.random.key(0))
    other = state.replace(heuristic_params=1.0 - state.heuristic_params)
    assert not np.allclose(env.world_state(state), env.world_state(other))
    for learner in ("mappo", "ippo"):
        team = make_team(env, TeamConfig(learner=learner, **TINY))
        params = jax.tree.map(lambda p: p * 20.0, _params(team, env, jax.random.key(1)))
        a = _logits(env, learner, params, obs, state)
        b = _logits(env, learner, params, obs, other)
        np.testing.assert_array_equal(a[0], b[0])
        assert np.allclose(a[2], b[2]) == (learner == "ippo")


@pytest.mark.parametrize("changes,match", [
    (dict(learner="coma"), "valid: ippo, mappo, independent"),
    (dict(total_steps=4), "smaller than one update"),
    (dict(num_minibatches=5), "minibatches"),
    (dict(num_envs=0), "num_envs must be >= 1"),
])
def test_config_refuses_what_cannot_run(changes, match):
    with pytest.raises(ValueError, match=match):
        TeamConfig(**{**TINY, **changes}).check(num_agents=3)


def test_episode_returns_count_each_episode_once(env):
    """Whole episodes from their reset keys: the same key gives the same returns, and each
    seat's return is the env's own episode return at the episode's end (no step after it)."""
    key = jax.random.key(4)
    play = jax.jit(lambda k: episode_returns(env, random_policy(env), k, 8))
    returns = play(key)
    np.testing.assert_array_equal(returns, play(key))
    assert returns.shape == (8, env.num_agents)
    assert (returns > 0).all()
    k_reset, k_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(k_reset, 8))
    act = random_policy(env)

    def body(carry, _):
        k, obs, state, final, alive = carry
        k, k_act, k_env = jax.random.split(k, 3)
        obs, state, _, dones, infos = jax.vmap(env.step)(
            jax.random.split(k_env, 8), state, act(k_act, obs, state))
        ended = alive & dones["__all__"]
        final = jnp.where(ended[:, None], infos["episode_return"], final)
        return (k, obs, state, final, alive & ~dones["__all__"]), None

    carry = (k_run, obs, state, jnp.zeros((8, env.num_agents)), jnp.ones(8, bool))
    (*_, final, alive), _ = jax.lax.scan(body, carry, None, length=60)
    assert not alive.any()
    np.testing.assert_allclose(returns, final, rtol=1e-6)


def test_one_hot_houses_encodes_each_house_state(env):
    """The ten house codes become three one-hot columns each; the rest is scaled by `high`."""
    obs, _ = env.reset(jax.random.key(0))
    obs = obs["agent_0"].at[:3].set(jnp.array([0.0, 1.0, 2.0]))
    x = one_hot_houses(env)(obs)
    assert x.shape == (obs.shape[0] + 20,)
    np.testing.assert_array_equal(x[:9].reshape(3, 3), np.eye(3))
    np.testing.assert_array_equal(x[:30].reshape(10, 3).sum(1), np.ones(10))
    assert float(x[30:].min()) >= 0 and float(x[30:].max()) <= 1


def _versus_random(env, team, params, key, episodes):
    """Paired difference of the seats' mean return per fresh episode, the team's minus a
    uniformly random team's on the same reset keys (`key`: drawn by no training step)."""
    trained = episode_returns(env, trained_policy(team, params), key, episodes)
    random = episode_returns(env, random_policy(env), key, episodes)
    return paired_difference(trained.mean(1), random.mean(1))


def test_a_trained_team_is_measured_against_a_random_team(env):
    """The slow test's measurement on the population's one-update IPPO team (seed 0, the
    moving learning rate): the same keys pair every episode."""
    _, run = _population(env, "ippo")
    team = make_team(env, TeamConfig(learner="ippo", **TINY))
    params = jax.tree.map(lambda p: p[1], run.params)
    diff = _versus_random(env, team, params, jax.random.key(10_000), 16)
    assert diff.n == 16 and np.isfinite(diff.mean) and np.isfinite(diff.ci95)


@pytest.mark.slow
def test_trained_ippo_team_beats_a_random_team(env):
    """Done when: IPPO, written against the MultiAgentEnv interface, every seat of `default`
    learning, beats a uniformly random team on 512 fresh episodes (95% CI of the paired
    difference above 0)."""
    config, features = TeamConfig(**TRAINED), one_hot_houses(env)
    run = jax.jit(make_train(env, features))(config, jax.random.key(0))
    team = make_team(env, config, features)
    diff = _versus_random(env, team, run.params, jax.random.key(10_000), 512)
    assert diff.significant, diff
