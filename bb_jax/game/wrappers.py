"""Wrappers of the single-learner view for code written against gymnax's API.

    env = FlatActionWrapper(make_env("easy", num_opponents=2))
    obs, state = env.reset(key)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action)  # action 0..19

- `Wrapper`: passes every call through (the base of the others);
- `FlatActionWrapper`: one `Discrete(20)` action instead of the (house, mode) pair;
- `TimeInputWrapper`: the observation followed by the episode's progress in [0, 1] (the time
  input PPO's network sees, `time_input`);
- `EpisodeLogWrapper`: the last finished episode's return and length in `info`, as
  PureJaxRL's LogWrapper logs them.

Each keeps the env's one-block draw layout, so a wrapped env replays the same episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import chex
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from bb_jax.game.env import NUM_MODES, BucketBrigadeEnv, EnvState
from bb_jax.game.rules import time_input
from bb_jax.game.scenarios import Scenario


def unflatten_action(action: jnp.ndarray) -> jnp.ndarray:
    """int32[...] in 0..19 -> int32[..., 2] (house, mode), action = NUM_MODES * house + mode
    (the observation's last-action order: house, then mode)."""
    action = jnp.asarray(action, jnp.int32)
    return jnp.stack([action // NUM_MODES, action % NUM_MODES], axis=-1)


# eq=False: hashed by identity, like the env it wraps (gymnax jits with the env static).
@dataclass(frozen=True, eq=False)
class Wrapper(environment.Environment):
    """A gymnax `Environment` around `env` that passes every call through; a wrapper
    overrides what it changes. `suffix` ends its name."""

    env: environment.Environment
    suffix = "wrapped"

    @property
    def default_params(self) -> Scenario:
        return self.env.default_params

    @property
    def name(self) -> str:
        return f"{self.env.name}-{self.suffix}"

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    def action_space(self, params: Scenario):
        return self.env.action_space(params)

    def observation_space(self, params: Scenario):
        return self.env.observation_space(params)

    def is_truncated(self, state, params: Scenario) -> jnp.ndarray:
        return self.env.is_truncated(state, params)

    def reset_env(self, key: chex.PRNGKey, params: Scenario):
        return self.env.reset_env(key, params)

    def step_env(self, key: chex.PRNGKey, state, action, params: Scenario):
        return self.env.step_env(key, state, action, params)

    def step(self, key: chex.PRNGKey, state, action, params: Scenario | None = None):
        """The wrapped env's `step` (bb_jax's one-block auto-reset, not jitted)."""
        return self.env.step(key, state, action, params)


@dataclass(frozen=True, eq=False)
class FlatActionWrapper(Wrapper):
    """`env` with one `Discrete(20)` action (`unflatten_action`); states, observations,
    params and the draw layout are `env`'s."""

    suffix = "flat"

    def action_space(self, params: Scenario) -> spaces.Discrete:
        del params
        return spaces.Discrete(self.env.num_actions)

    def step_env(self, key: chex.PRNGKey, state: EnvState, action, params: Scenario):
        return self.env.step_env(key, state, unflatten_action(action), params)

    def step(self, key: chex.PRNGKey, state: EnvState, action, params: Scenario | None = None):
        """`env.step` (its one-block auto-reset, not jitted) with the action unflattened."""
        return self.env.step(key, state, unflatten_action(action), params)


@dataclass(frozen=True, eq=False)
class TimeInputWrapper(Wrapper):
    """`env` whose observations end with the episode's progress (`time_input`), the final
    observation of an auto-reset step included; states, actions and params are `env`'s."""

    env: BucketBrigadeEnv
    suffix = "time"

    def observation_space(self, params: Scenario) -> spaces.Box:
        inner = self.env.observation_space(params)
        return spaces.Box(jnp.append(inner.low, 0.0), jnp.append(inner.high, 1.0),
                          (inner.shape[0] + 1,), inner.dtype)

    def reset_env(self, key: chex.PRNGKey, params: Scenario):
        obs, state = self.env.reset_env(key, params)
        return self._with_time(obs, state.step_count), state

    def step_env(self, key: chex.PRNGKey, state: EnvState, action, params: Scenario):
        obs, state, reward, terminated, info = self.env.step_env(key, state, action, params)
        return self._with_time(obs, state.step_count), state, reward, terminated, info

    def step(self, key: chex.PRNGKey, state: EnvState, action, params: Scenario | None = None):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action,
                                                                        params)
        info = {**info, "final_observation": self._with_time(info["final_observation"],
                                                             info["episode_length"])}
        return (self._with_time(obs, state.step_count), state, reward, terminated, truncated,
                info)

    def _with_time(self, obs, step_count):
        return time_input(obs, step_count, self.env.max_steps)


@struct.dataclass
class LogState:
    """The wrapped env's state and the last finished episode's figures (0 before one)."""

    env_state: EnvState
    returned_episode_return: jnp.ndarray
    returned_episode_length: jnp.ndarray


@dataclass(frozen=True, eq=False)
class EpisodeLogWrapper(Wrapper):
    """`env` whose `info` also holds "returned_episode" (bool: this step ended an episode)
    and the last finished episode's "returned_episode_return" / "returned_episode_length",
    kept between steps as PureJaxRL's LogWrapper keeps them. The running figures
    ("episode_return", "episode_length") stay the env's own."""

    suffix = "log"

    def is_truncated(self, state: LogState, params: Scenario) -> jnp.ndarray:
        return self.env.is_truncated(state.env_state, params)

    def reset_env(self, key: chex.PRNGKey, params: Scenario):
        obs, env_state = self.env.reset_env(key, params)
        return obs, LogState(env_state, jnp.float32(0.0), jnp.int32(0))

    def step_env(self, key: chex.PRNGKey, state: LogState, action, params: Scenario):
        obs, env_state, reward, terminated, info = self.env.step_env(
            key, state.env_state, action, params)
        return obs, state.replace(env_state=env_state), reward, terminated, info

    def step(self, key: chex.PRNGKey, state: LogState, action, params: Scenario | None = None):
        obs, env_state, reward, terminated, truncated, info = self.env.step(
            key, state.env_state, action, params)
        done = terminated | truncated
        state = LogState(
            env_state,
            jnp.where(done, info["episode_return"], state.returned_episode_return),
            jnp.where(done, info["episode_length"], state.returned_episode_length))
        info = {**info, "returned_episode": done,
                "returned_episode_return": state.returned_episode_return,
                "returned_episode_length": state.returned_episode_length}
        return obs, state, reward, terminated, truncated, info
