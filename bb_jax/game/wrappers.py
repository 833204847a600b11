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

The learner's view (`learner_view`: what PPO, evaluation and the baselines step) is a batch:

- `BatchEnv`: `num_envs` environments stepped together, every environment's draws from one
  key per call (`reset(key, params)` / `step(key, state, action, params)` on states, actions
  and observations with a leading axis E), as the game's batched path has always drawn them;
- `FeatureWrapper`: the game's feature encoding of the observation (the house states one-hot,
  the other features scaled to about [0, 1], optionally the time input), so the network is a
  plain MLP over a flat vector.

Each keeps the env's one-block draw layout, so a wrapped env replays the same episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import chex
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from bb_jax.game.env import NUM_MODES, BucketBrigadeEnv, EnvState
from bb_jax.game.rules import NUM_HOUSES, observation_high, time_input
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


HOUSE_STATES = 3  # SAFE, BURNING, RUINED: the one-hot width of a house


@dataclass(frozen=True, eq=False)
class BatchEnv:
    """`num_envs` copies of `env` stepped together: every environment's uniforms come from one
    key per call (`env.sample_draws(key, (E,))`), so a batch replays the game's batched path
    bit for bit. `reset` / `step` take and return states, actions int32[E, 2] and observations
    float32[E, D] with a leading axis E; params (the scenario) is one for the batch.

    `rows` (int32, optional): draw the first `rows` environments' uniforms as a batch of that
    many would (threefry's non-partitionable form makes a row's draws depend on the row count),
    the others as the full batch's. A shape-padded program passes a member's own environment
    count; `row_counts` lists the counts it may take (static)."""

    env: BucketBrigadeEnv
    num_envs: int
    row_counts: tuple[int, ...] = ()

    @property
    def max_steps(self) -> int:
        return self.env.max_steps

    @property
    def num_agents(self) -> int:
        return self.env.num_agents

    @property
    def default_params(self) -> Scenario:
        return self.env.default_params

    def observation_space(self, params: Scenario) -> spaces.Box:
        """One environment's (a row of the batch's observations)."""
        return self.env.observation_space(params)

    def action_space(self, params: Scenario) -> spaces.Tuple:
        """One environment's (a row of the batch's actions)."""
        return self.env.action_space(params)

    def reset(self, key: chex.PRNGKey, params: Scenario | None = None, rows=None):
        """(obs float32[E, D], EnvState[E]) of E fresh episodes drawn from `key`."""
        blocks = self._draws(self.env.sample_reset_draws, key, rows)
        return jax.vmap(self.env.reset_with_draws, in_axes=(0, None))(blocks, params)

    def step(self, key: chex.PRNGKey, state: EnvState, action, params: Scenario | None = None,
             rows=None):
        """The env's `step` for each environment, on its row of the block drawn from `key`.

        info also holds "houses" int32[E, 10] and "actions" int32[E, N, 2] (every agent's
        action) of the night's result before any auto-reset, and "houses_before" int32[E, 10]
        (the town the night started from), so a caller never reads the observation's layout."""
        blocks = self._draws(self.env.sample_draws, key, rows)
        step = jax.vmap(self.env.step_with_draws, in_axes=(0, 0, 0, None))
        obs, new_state, reward, terminated, truncated, info = step(state, action, blocks, params)
        n = self.env.num_agents
        final = info["final_observation"]
        info = {**info, "houses_before": state.game.houses,
                "houses": final[..., :NUM_HOUSES].astype(jnp.int32),
                "actions": final[..., NUM_HOUSES + 2 * n:NUM_HOUSES + 4 * n]
                .astype(jnp.int32).reshape(*final.shape[:-1], n, 2)}
        return obs, new_state, reward, terminated, truncated, info

    def _draws(self, sample, key, rows):
        """float32[E, n]: `sample(key, (E,))`, its first `rows` rows drawn as `rows` rows."""
        full = sample(key, (self.num_envs,))
        if rows is None:
            return full
        chosen = full
        for count in sorted(set(self.row_counts)):
            if count < self.num_envs:
                own = jnp.concatenate([sample(key, (count,)), full[count:]])
                chosen = jnp.where(rows == count, own, chosen)
        return chosen


@dataclass(frozen=True, eq=False)
class FeatureWrapper:
    """`env` (a `BatchEnv`, or the single env) whose observations are the network's features
    float32[..., 30 + (D - 10) (+ 1)]: the 10 house states one-hot (SAFE / BURNING / RUINED),
    the other D - 10 features divided by their typical highs (`observation_high`), and with
    `time_input` the episode's progress step_count / max_steps in [0, 1] (so the end of an
    episode at max_steps is part of the state). The final observation of an auto-reset step
    is encoded the same way; states, actions, params and extra arguments are `env`'s."""

    env: BatchEnv | BucketBrigadeEnv
    time_input: bool = False

    @property
    def num_envs(self) -> int:
        return self.env.num_envs

    @property
    def max_steps(self) -> int:
        return self.env.max_steps

    @property
    def num_agents(self) -> int:
        return self.env.num_agents

    @property
    def default_params(self) -> Scenario:
        return self.env.default_params

    def action_space(self, params: Scenario) -> spaces.Tuple:
        return self.env.action_space(params)

    def observation_space(self, params: Scenario) -> spaces.Box:
        """Box of the features: one-hot houses in [0, 1], the others scaled as the env's."""
        inner = self.env.observation_space(params)
        high = observation_high(self.num_agents)[NUM_HOUSES:]
        parts_low = [jnp.zeros(HOUSE_STATES * NUM_HOUSES), inner.low[NUM_HOUSES:] / high]
        parts_high = [jnp.ones(HOUSE_STATES * NUM_HOUSES), inner.high[NUM_HOUSES:] / high]
        if self.time_input:
            parts_low.append(jnp.zeros(1))
            parts_high.append(jnp.ones(1))
        low, top = jnp.concatenate(parts_low), jnp.concatenate(parts_high)
        return spaces.Box(low, top, low.shape, jnp.float32)

    def reset(self, key: chex.PRNGKey, params: Scenario | None = None, **kwargs):
        obs, state = self.env.reset(key, params, **kwargs)
        return self.features(obs, state.step_count), state

    def step(self, key: chex.PRNGKey, state, action, params: Scenario | None = None, **kwargs):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action,
                                                                        params, **kwargs)
        info = {**info, "final_observation": self.features(info["final_observation"],
                                                           info["episode_length"])}
        return self.features(obs, state.step_count), state, reward, terminated, truncated, info

    def features(self, obs: jnp.ndarray, step_count: jnp.ndarray) -> jnp.ndarray:
        """float32[..., F] from game observations float32[..., D] and step counts int32[...]."""
        high = observation_high(self.num_agents)[NUM_HOUSES:]
        houses = jax.nn.one_hot(obs[..., :NUM_HOUSES].astype(jnp.int32), HOUSE_STATES)
        parts = [houses.reshape(*obs.shape[:-1], HOUSE_STATES * NUM_HOUSES),
                 obs[..., NUM_HOUSES:] / high]
        if self.time_input:
            parts.append(time_input(obs[..., :0], step_count, self.max_steps))
        return jnp.concatenate(parts, axis=-1)


def learner_view(env: BucketBrigadeEnv, num_envs: int, time_input: bool = False,
                 row_counts: tuple[int, ...] = ()) -> FeatureWrapper:
    """What the learner steps: `num_envs` environments (`BatchEnv`) with the network's
    features (`FeatureWrapper`)."""
    return FeatureWrapper(BatchEnv(env, num_envs, tuple(row_counts)), time_input)
