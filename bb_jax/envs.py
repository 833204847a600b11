"""Which environment a run learns on (`--env`), resolved to a gymnax env and its params, and
the batch of them the learner steps (`learner_view`).

    --env bucket_brigade     the game (default): its scenario from --scenario, its opponents
    --env gymnax:CartPole-v1 any env of gymnax's registry (`gymnax.make`)
    --env mypkg.envs:make    a user's gymnax env: `make()` returns an `Environment` or
                             (env, params)

The learner (`bb_jax.agent.ppo`) sees only what `learner_view` returns: `num_envs`
environments with `reset(key, params)` / `step(key, state, action, params)` on a leading
axis E, the spaces, `max_steps`, and info's "final_observation", "episode_return" and
"episode_length". The game's view draws the batch from one key (`bb_jax.game.wrappers`);
any other env is `jax.vmap`ped over keys split from it (`VmapEnv`). The game's own parts
(scenarios, opponents, heuristic baselines) exist only for `bucket_brigade` (`check_game`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

GAME = "bucket_brigade"
FORMS = f"{GAME}, gymnax:NAME (e.g. gymnax:CartPole-v1) or module:factory"


def check_env(spec: str) -> str:
    """`spec` if it has one of the valid forms (`FORMS`), else ValueError naming them."""
    if spec == GAME:
        return spec
    prefix, sep, name = str(spec).partition(":")
    if not sep or not prefix or not name:
        raise ValueError(f"unknown env {spec!r}; valid: {FORMS}")
    return spec


def is_game(spec: str) -> bool:
    return spec == GAME


def check_game(spec: str, what: str) -> None:
    """ValueError (one line) where a game-only part (`what`) is asked of another env."""
    if not is_game(spec):
        raise ValueError(f"{what} exist only for --env {GAME}, not for {spec}")


def configure(config, spec: str, scenarios=("default",)):
    """`config` learning on `spec`, checked before anything runs (ValueError, one line): a
    known form, an env that builds with categorical actions, and for any env but the game
    none of the game's own settings (scenarios, opponents)."""
    spec = check_env(spec)
    if not is_game(spec):
        if tuple(scenarios) != ("default",):
            check_game(spec, "--scenario values other than default")
        if config.opponents is not None or config.num_opponents != 2:
            check_game(spec, "--opponents and --num-opponents")
    config = config.replace(env=spec)
    env, params = make(config)
    space = env.action_space(params)
    parts = getattr(space, "spaces", [space])
    if not all(hasattr(part, "n") for part in (parts.values() if isinstance(parts, dict)
                                                  else parts)):
        raise ValueError(f"{spec}: PPO here needs discrete actions (Discrete, or a Tuple of "
                         f"them), not {type(space).__name__}")
    return config


def make(config) -> tuple[Any, Any]:
    """(env, params) of a PPOConfig's `env` (its scenario, opponents and episode length for
    the game; the env's default params otherwise)."""
    spec = check_env(getattr(config, "env", GAME))
    if is_game(spec):
        from bb_jax.game.env import make_env

        env = make_env(config.scenario, config.num_opponents, config.opponents,
                       config.max_steps)
        return env, env.default_params
    prefix, _, name = spec.partition(":")
    if prefix == "gymnax":
        import gymnax

        try:
            return gymnax.make(name)
        except ValueError as error:
            raise ValueError(f"unknown gymnax env {name!r} ({error})") from None
    try:
        factory = getattr(importlib.import_module(prefix), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"--env {spec}: no factory {name} in module {prefix} ({error})") \
            from None
    made = factory()
    return made if isinstance(made, tuple) else (made, made.default_params)


def stacked_params(config, names) -> Any:
    """The params of each scenario in `names`, stacked on a leading axis: the game's
    scenarios (with the config's agent count); any other env has one, "default" (its
    default params)."""
    if is_game(config.env):
        from bb_jax.game.scenarios import get_scenario, stack_scenarios

        return stack_scenarios([get_scenario(name, config.num_opponents + 1) for name in names])
    if any(name != "default" for name in names):
        check_game(config.env, "scenarios other than default")
    params = make(config)[1]
    return jax.tree.map(lambda x: jnp.stack([jnp.asarray(x)] * len(names)), params)


def learner_view(spec: str, env, params, num_envs: int, time_input: bool = False,
                 row_counts: tuple[int, ...] = ()):
    """The batch of `num_envs` environments the learner steps (with the time input: the
    episode's progress as the observation's last feature); `params` (concrete) sets a
    non-game env's episode length."""
    if is_game(spec):
        from bb_jax.game.wrappers import learner_view as game_view

        return game_view(env, num_envs, time_input, row_counts)
    steps = getattr(params, "max_steps_in_episode", None)
    if steps is None:
        raise ValueError(f"--env {spec}: its params have no max_steps_in_episode (the episode "
                         "length an evaluation plays)")
    return VmapEnv(env, num_envs, int(steps), time_input)


@struct.dataclass
class EpisodeState:
    """The batch's env states and each episode's running return and length."""

    env_state: Any
    episode_return: jnp.ndarray  # float32[E]
    episode_length: jnp.ndarray  # int32[E]


@dataclass(frozen=True, eq=False)
class VmapEnv:
    """`num_envs` copies of a gymnax env, each with its own key split from the call's (a
    row's key does not depend on the row count: JAX's partitionable threefry), observations
    flattened to float32[E, I]. Actions int32[E, K]: a `Discrete` env gets column 0.
    `max_steps`: the params' max_steps_in_episode, the most steps an episode lasts (gymnax
    truncates there) and the time input's scale."""

    env: Any
    num_envs: int
    max_steps: int
    time_input: bool = False

    @property
    def default_params(self):
        return self.env.default_params

    def action_space(self, params):
        return self.env.action_space(params)

    def observation_space(self, params):
        from gymnax.environments import spaces

        size = int(jnp.prod(jnp.asarray(self.env.observation_space(params).shape)))
        size += int(self.time_input)
        return spaces.Box(-jnp.inf, jnp.inf, (size,), jnp.float32)

    def reset(self, key, params=None, rows=None):
        """(obs float32[E, I], EpisodeState) of E fresh episodes; `rows` changes nothing."""
        params = self.env.default_params if params is None else params
        keys = jax.random.split(key, self.num_envs)
        obs, state = jax.vmap(self.env.reset, in_axes=(0, None))(keys, params)
        zeros = jnp.zeros((self.num_envs,), jnp.int32)
        return self._obs(obs, zeros), EpisodeState(state, zeros.astype(jnp.float32), zeros)

    def step(self, key, state: EpisodeState, action, params=None, rows=None):
        """gymnax's `step` (its auto-reset) per environment, with the episode's figures."""
        params = self.env.default_params if params is None else params
        if not hasattr(self.env.action_space(params), "spaces"):
            action = action[..., 0]
        keys = jax.random.split(key, self.num_envs)
        step = jax.vmap(self.env.step, in_axes=(0, 0, 0, None))
        obs, env_state, reward, terminated, truncated, info = step(keys, state.env_state,
                                                                   action, params)
        reward = reward.astype(jnp.float32)
        ret, length = state.episode_return + reward, state.episode_length + 1
        done = terminated | truncated
        state = EpisodeState(env_state, jnp.where(done, 0.0, ret), jnp.where(done, 0, length))
        info = {"final_observation": self._obs(info["final_observation"], length),
                "episode_return": ret, "episode_length": length}
        return self._obs(obs, state.episode_length), state, reward, terminated, truncated, info

    def _obs(self, obs, length):
        flat = obs.reshape(self.num_envs, -1).astype(jnp.float32)
        if not self.time_input:
            return flat
        return jnp.concatenate([flat, (length / self.max_steps)[:, None].astype(jnp.float32)],
                               axis=-1)
