"""Any gymnax environment through the learner (`bb_jax.envs`): `--env bucket_brigade` (the
game), `gymnax:NAME` and `module:factory`, the batch the learner steps for a non-game env
(`VmapEnv`), and the game's own parts refused for other envs with one line.

Every config here is tiny (hidden 8, 128 env steps per update) so each compiles in seconds."""

from __future__ import annotations

import json
import shlex

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bb_jax import envs
from bb_jax.agent.config import PPOConfig, make_hyperparams
from bb_jax.agent.ppo import PPO
from bb_jax.cli import train_main, tune_main

CARTPOLE = PPOConfig(hidden_size=8, batch_size=128, num_envs=4, num_minibatches=2,
                     total_steps=128, env="gymnax:CartPole-v1")  # 32 steps per env


def make_cartpole():
    """A user's factory (`--env test_envs:make_cartpole`): gymnax's CartPole and its params
    with short episodes."""
    env, params = gymnax.make("CartPole-v1")
    return env, params.replace(max_steps_in_episode=20)


@pytest.mark.parametrize("spec", ["cartpole", "gymnax:", ":make", "bucket-brigade"])
def test_unknown_env_forms_are_refused_naming_the_valid_ones(spec):
    with pytest.raises(ValueError, match="valid: bucket_brigade, gymnax:NAME"):
        envs.check_env(spec)


def test_configure_refuses_the_games_own_settings_for_another_env():
    with pytest.raises(ValueError, match="exist only for --env bucket_brigade"):
        envs.configure(PPOConfig(), "gymnax:CartPole-v1", ("hard",))
    with pytest.raises(ValueError, match="--opponents and --num-opponents exist only"):
        envs.configure(PPOConfig(num_opponents=3), "gymnax:CartPole-v1")
    with pytest.raises(ValueError, match="needs discrete actions"):
        envs.configure(PPOConfig(), "gymnax:Pendulum-v1")
    with pytest.raises(ValueError, match="unknown gymnax env"):
        envs.configure(PPOConfig(), "gymnax:NoSuchEnv-v0")
    with pytest.raises(ValueError, match="no factory"):
        envs.configure(PPOConfig(), "test_envs:no_such_factory")
    assert envs.configure(PPOConfig(), "gymnax:CartPole-v1").env == "gymnax:CartPole-v1"
    assert envs.configure(PPOConfig(scenario="hard"), envs.GAME).scenario == "hard"


def test_a_user_factory_gives_its_env_and_params():
    env, params = envs.make(PPOConfig(env="test_envs:make_cartpole"))
    assert env.name == "CartPole-v1" and params.max_steps_in_episode == 20
    assert envs.learner_view("test_envs:make_cartpole", env, params, 4).max_steps == 20


def test_vmap_env_keeps_each_episodes_figures_through_its_auto_reset():
    """CartPole pays 1 per step, so an episode's return is its length; the final observation
    is the one before the reset, the next observation the reset's."""
    env, params = make_cartpole()
    view = envs.VmapEnv(env, 6, 500, time_input=True)
    obs, state = view.reset(jax.random.PRNGKey(0), params)
    assert obs.shape == (6, 5) and np.all(obs[:, -1] == 0)
    step = jax.jit(lambda k, s: view.step(k, s, jnp.zeros((6, 1), jnp.int32), params))
    ended = 0
    for t in range(25):
        obs, state, reward, terminated, truncated, info = step(jax.random.PRNGKey(t + 1), state)
        done = np.asarray(terminated | truncated)
        np.testing.assert_array_equal(info["episode_return"], info["episode_length"])
        np.testing.assert_allclose(info["final_observation"][:, -1],
                                   info["episode_length"] / 500)
        assert np.all(np.asarray(state.episode_length)[done] == 0)
        assert np.all(np.asarray(obs)[done][:, -1] == 0)
        ended += done.sum()
    assert ended > 0  # pushing left, every pole falls within 25 steps


def test_ppo_learns_on_cartpole_through_the_public_api():
    """The CI sibling of the end-to-end command: the env builds, one update runs, and the
    evaluation plays CartPole episodes (returns are episode lengths, 1..500)."""
    ppo = PPO(CARTPOLE)
    assert ppo.network.action_dims == (2,) and ppo.input_size == 4 + 1  # with the time input
    hp = make_hyperparams()
    state = jax.jit(ppo.init)(jax.random.PRNGKey(0), hp)
    state, metrics = jax.jit(ppo.run_updates, static_argnums=2)(state, hp, 1)
    assert bool(metrics["finite"][-1]) and int(metrics["env_steps"][-1]) == 128
    assert float(metrics["episodes_finished"][-1]) > 0
    returns = jax.jit(ppo.evaluate, static_argnums=(2, 3))(state.params, jax.random.PRNGKey(1),
                                                           4, True)
    assert np.all((np.asarray(returns) >= 1) & (np.asarray(returns) <= 500))


def test_train_simple_refuses_a_game_setting_for_gymnax_with_one_line(tmp_path, capsys):
    code = train_main(["--env", "gymnax:CartPole-v1", "--scenario", "hard",
                       "--save-path", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "exist only for --env bucket_brigade" in err[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_simple_trains_cartpole_end_to_end(tmp_path, capsys):
    code = train_main(["--env", "gymnax:CartPole-v1", "--num-steps", "1024", "--batch-size",
                       "512", "--eval-episodes", "4", "--save-path", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0 and "fresh-episode return" in out
    assert (tmp_path / "run" / "params_seed42.msgpack").exists()


# the tuner's command line, the same for the game and for CartPole but for --env
STUDY = ["--n-trials", "2", "--population-size", "2", "--num-steps", "4096",
         "--eval-interval", "1024", "--seed", "3", "--seeds-per-trial", "2", "--pruner", "none",
         "--eval-episodes", "4", "--fix", "hidden_size=64,batch_size=512",
         "--validate-top-k", "1", "--validate-seeds", "2", "--no-incumbent"]


@pytest.mark.parametrize("argv", [[*STUDY, "--scenario", "hard"],
                                  ["--strategy", "pbt", "--num-opponents", "3"]])
def test_the_tuner_refuses_a_game_setting_for_gymnax_with_one_line(tmp_path, capsys, argv):
    code = tune_main([*argv, "--env", "gymnax:CartPole-v1", "--study-name", "x",
                      "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "exist only for --env bucket_brigade" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_study_on_cartpole_runs_tune_validate_recommend(tmp_path, capsys):
    """The game's study command line with --env gymnax:CartPole-v1: trials, validation on
    fresh seeds against the defaults, a recommendation whose command trains CartPole."""
    code = tune_main([*STUDY, "--env", "gymnax:CartPole-v1", "--study-name", "cp",
                      "--output-dir", str(tmp_path), "--storage",
                      f"sqlite:///{tmp_path / 'cp.db'}"])
    assert code == 0
    results = json.loads((tmp_path / "cp_results.json").read_text())
    complete = [t for t in results["trials"] if t["state"] == "COMPLETE"]
    assert len(complete) == 2 and all(1 <= t["value"] <= 500 for t in complete)
    rows = {str(r["trial"]) for r in results["validation"]["rows"]}
    assert "control" in rows and len(rows) == 2
    command = shlex.split(results["recommendation"]["train_command"])
    assert command[command.index("--env") + 1] == "gymnax:CartPole-v1"
    assert results["recommendation"]["train_command"] in capsys.readouterr().out


def test_a_population_plays_its_configs_own_params_by_default():
    """Members not given params play the config's (here `hard`), not those of the shared
    compiled program (whose config says `default`)."""
    from bb_jax.agent.config import stack_hyperparams
    from bb_jax.game.scenarios import get_scenario
    from bb_jax.runtime.driver import training_keys
    from bb_jax.runtime.population import Population

    config = PPOConfig(scenario="hard", hidden_size=8, batch_size=64, num_envs=8,
                       num_minibatches=2, total_steps=None)
    population = Population(config, stack_hyperparams([{}, {}]), training_keys([0, 1]))
    hard = get_scenario("hard", config.num_opponents + 1)
    for got, want in zip(jax.tree.leaves(population.scenarios), jax.tree.leaves(hard)):
        np.testing.assert_array_equal(np.asarray(got)[:2], np.full(2, want))
