"""The learner's choices (docs/PPO.md): the time input (the episode's progress beside the game
observation), the shared or separate critic, advantage normalisation per batch or minibatch,
and checkpoints of one network refused by another (library and command line).

Every config here is tiny (hidden 16, 64 env steps per update, 5-step episodes) so each
compiles in seconds; the jitted functions are cached per config."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from bb_jax.agent.config import PPOConfig, make_hyperparams
from bb_jax.agent.ppo import PPO
from bb_jax.cli import train_main
from bb_jax.runtime.saved_runs import load_params

MAX_STEPS = 5
TINY = PPOConfig(scenario="easy", hidden_size=16, batch_size=64, num_envs=8,
                 max_steps=MAX_STEPS, total_steps=64, critic="shared", time_input=False)
TIMED = TINY.replace(time_input=True)


@functools.cache
def _rollout(config: PPOConfig, seed: int = 0):
    """(ppo, train state, trajectory [T, E]) of one rollout from a fresh init."""
    ppo = PPO(config)
    state = jax.jit(ppo.init)(jax.random.PRNGKey(seed), make_hyperparams())
    _, _, traj = jax.jit(ppo.rollout)(state.params, state.env_state, state.obs,
                                      jax.random.PRNGKey(seed + 1), ppo.default_scenario)
    return ppo, state, jax.tree.map(np.asarray, traj)


def _steps_before(done: np.ndarray) -> np.ndarray:
    """int[T, E]: steps taken in each env's episode before step t (fresh episodes at t=0)."""
    steps = np.zeros(done.shape, int)
    for t in range(1, len(done)):
        steps[t] = np.where(done[t - 1], 0, steps[t - 1] + 1)
    return steps


# ---------------------------------------------------------------- time input


def test_time_input_is_the_episode_progress_beside_the_observation():
    ppo, _, traj = _rollout(TIMED)
    plain_ppo, _, plain = _rollout(TINY)
    size = plain_ppo.input_size  # the game's features: houses one-hot, the others scaled
    assert size == 3 * 10 + ppo.env.observation_size - 10 and ppo.input_size == size + 1
    assert traj.obs.shape[-1] == traj.final_obs.shape[-1] == size + 1
    assert plain.obs.shape[-1] == size
    steps = _steps_before(traj.done)
    assert steps.max() == MAX_STEPS - 1  # the rollout (8 steps) crosses episode ends
    np.testing.assert_allclose(traj.obs[..., -1], steps / MAX_STEPS)
    # the step's result: one step further on (1.0 where the episode ran out of steps)
    np.testing.assert_allclose(traj.final_obs[..., -1], (steps + 1) / MAX_STEPS)
    assert np.all(traj.done[steps == MAX_STEPS - 1])
    # the game observation itself is unchanged: same keys, same episodes, same first columns
    # until the policies (different networks) choose differently
    np.testing.assert_array_equal(traj.obs[0, :, :size], plain.obs[0])


def test_network_sees_the_progress_only_with_the_time_input():
    for config, sees in ((TIMED, True), (TINY, False)):
        ppo, state, _ = _rollout(config)
        features = ppo.view(8).features
        game_obs = jax.vmap(ppo.env.reset)(jax.random.split(jax.random.PRNGKey(0), 8))[0]
        early = features(game_obs, jnp.full((8,), 1))
        late = features(game_obs, jnp.full((8,), 4))
        apply = jax.jit(ppo.network.apply)
        for a, b in zip(apply(state.params, early), apply(state.params, late)):
            assert (not np.allclose(a, b)) == sees


def test_time_input_adds_one_input_column_to_the_plain_network():
    """The timed network is the plain one plus one input weight per first-layer unit: with
    that row zeroed it computes exactly what the plain network computes."""
    ppo, state, traj = _rollout(TIMED)
    plain, _, _ = _rollout(TINY)
    params = state.params["params"]
    plain_params = {"params": {**params, "Dense_0": {
        "bias": params["Dense_0"]["bias"], "kernel": params["Dense_0"]["kernel"][:-1]}}}
    zeroed = {"params": {**params, "Dense_0": {
        "bias": params["Dense_0"]["bias"],
        "kernel": params["Dense_0"]["kernel"].at[-1].set(0.0)}}}
    timed_out = jax.jit(ppo.network.apply)(zeroed, traj.obs[0])
    plain_out = jax.jit(plain.network.apply)(plain_params, traj.obs[0, :, :-1])
    for a, b in zip(timed_out, plain_out):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("config", [TIMED, TINY], ids=["timed", "plain"])
def test_bootstrap_uses_the_progress_after_the_step(config):
    """Targets of steps that did not end an episode bootstrap from the value of the step's
    result (with its progress); an episode's end at max_steps is terminal with the time input
    and bootstrapped without it."""
    ppo, state, traj = _rollout(config)
    hp = make_hyperparams(gae_lambda=0.0)  # one-step targets: r + gamma * V(next)
    _, targets = jax.jit(ppo.advantages)(state.params, traj, hp)
    next_value = np.asarray(jax.jit(ppo.network.apply)(state.params, traj.final_obs)[2])
    reward = traj.reward * config.reward_scale
    gamma = float(hp.gamma)
    bootstrap = ~traj.terminated & ~(traj.done & config.time_input)
    np.testing.assert_allclose(targets, reward + gamma * next_value * bootstrap,
                               rtol=1e-5, atol=1e-5)
    assert np.any(traj.done & ~traj.terminated)  # the rollout has truncated steps
    if config.time_input:  # V(next) with another progress is another number
        wrong = traj.final_obs.copy()
        wrong[..., -1] = traj.obs[..., -1]
        assert not np.allclose(next_value, jax.jit(ppo.network.apply)(state.params, wrong)[2])


# ---------------------------------------------------------------- critic, advantages


def test_separate_critic_has_its_own_torso():
    ppo, state, traj = _rollout(TINY.replace(critic="separate"))
    shared_ppo, shared_state, _ = _rollout(TINY)
    params = state.params["params"]
    assert set(params) == set(shared_state.params["params"]) | {"critic_0", "critic_1"}
    x = jnp.asarray(traj.obs[0])

    def grads(network, params, head):
        return jax.grad(lambda p: jnp.sum(network.apply(p, x)[head]))(params)["params"]

    def touched(g, layer):
        return any(np.any(np.asarray(leaf) != 0) for leaf in jax.tree.leaves(g[layer]))

    value_grads, policy_grads = grads(ppo.network, state.params, 2), grads(ppo.network,
                                                                           state.params, 0)
    assert touched(value_grads, "critic_0") and not touched(value_grads, "Dense_0")
    assert touched(policy_grads, "Dense_0") and not touched(policy_grads, "critic_0")
    shared_value_grads = grads(shared_ppo.network, shared_state.params, 2)
    assert touched(shared_value_grads, "Dense_0")


def _learned(config: PPOConfig):
    ppo, state, traj = _rollout(config)
    hp = make_hyperparams(num_epochs=2)
    params, _, _ = jax.jit(ppo.learn)(state.params, state.opt_state, traj,
                                      jax.random.PRNGKey(5), hp)
    return params


def test_advantage_normalisation_per_minibatch():
    """With one minibatch the two choices are the same computation (up to summation order);
    with several, each minibatch's own statistics give other updates."""
    one = TINY.replace(num_minibatches=1)
    for a, b in zip(jax.tree.leaves(_learned(one)),
                    jax.tree.leaves(_learned(one.replace(adv_norm="minibatch")))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    four = TINY.replace(num_minibatches=4)
    assert any(not np.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(
        jax.tree.leaves(_learned(four)),
        jax.tree.leaves(_learned(four.replace(adv_norm="minibatch")))))


@pytest.mark.parametrize("change, valid", [
    ({"critic": "twin"}, "valid: shared, separate"),
    ({"adv_norm": "global"}, "valid: batch, minibatch"),
])
def test_unknown_choices_are_rejected(change, valid):
    with pytest.raises(ValueError, match=valid):
        TINY.replace(**change)


# ---------------------------------------------------------------- checkpoints


def _checkpoint(tmp_path, config: PPOConfig, seed: int = 0):
    ppo = PPO(config)
    params = ppo.network.init(jax.random.PRNGKey(seed), jnp.zeros((ppo.input_size,)))
    path = tmp_path / f"params_{config.time_input}_{config.critic}.msgpack"
    path.write_bytes(serialization.to_bytes(params))
    return path, params


@pytest.mark.parametrize("saved, loaded, names", [
    (TINY, TIMED, "saved with time_input=False, critic='shared'"),
    (TIMED, TINY, "saved with time_input=True, critic='shared'"),
    (TINY, TINY.replace(critic="separate"), "saved with time_input=False, critic='shared'"),
    (TIMED.replace(critic="separate"), TIMED, "saved with time_input=True, critic='separate'"),
])
def test_checkpoint_of_another_network_is_refused(tmp_path, saved, loaded, names):
    path, _ = _checkpoint(tmp_path, saved)
    with pytest.raises(ValueError, match="does not match") as err:
        load_params(path, loaded)
    assert names in str(err.value) and "\n" not in str(err.value)


def _train_argv(save, *extra):
    return ["--scenario", "easy", "--num-steps", "64", "--batch-size", "64", "--num-envs", "8",
            "--hidden-size", "16", "--eval-episodes", "4", "--seeds", "0", "1",
            "--save-path", str(save), *map(str, extra)]


@pytest.mark.parametrize("argv, valid", [
    (["--critic", "twin"], ("shared", "separate")),
    (["--adv-norm", "global"], ("batch", "minibatch")),
])
def test_bad_choice_on_the_command_line(tmp_path, capsys, argv, valid):
    with pytest.raises(SystemExit) as exit_info:
        train_main(_train_argv(tmp_path / "never", *argv))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "invalid choice" in err
    assert all(name in err for name in valid)
    assert not (tmp_path / "never").exists()


def test_init_params_of_another_network_exits_2_and_writes_nothing(tmp_path, capsys):
    path, _ = _checkpoint(tmp_path, TINY)
    save = tmp_path / "run"
    save.mkdir()
    (save / "config.json").write_text("earlier run")
    code = train_main(_train_argv(save, "--time-input", "--init-params", path))
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "time_input=False" in err
    assert [p.name for p in save.iterdir()] == ["config.json"]
    assert (save / "config.json").read_text() == "earlier run"
    code = train_main(_train_argv(tmp_path / "other", "--init-params", tmp_path / "missing"))
    assert code == 2 and "cannot be read" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_init_params_start_every_seed_from_the_checkpoint(tmp_path):
    """With a zero learning rate the parameters never move: each seed ends where it began."""
    config = TIMED.replace(critic=PPOConfig.critic)  # the command line's default
    path, params = _checkpoint(tmp_path, config, seed=9)
    save = tmp_path / "run"
    assert train_main(_train_argv(save, "--time-input", "--init-params", path, "--lr", 0)) == 0
    saved_config = json.loads((save / "config.json").read_text())["config"]
    assert (saved_config["time_input"], saved_config["critic"], saved_config["adv_norm"]) == (
        True, PPOConfig.critic, PPOConfig.adv_norm)
    for seed in (0, 1):
        saved = load_params(save / f"params_seed{seed}", config)
        for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(params), strict=True):
            np.testing.assert_array_equal(a, b)
