"""The game as a gymnax user should meet it: `make_gymnax_env` and the wrappers it stacks.

    env = make_gymnax_env("default")           # the recommended stack
    obs, state = env.reset(key)                # obs float32[55] in [0, 1]
    obs, state, reward, terminated, truncated, info = env.step(key, state, action)  # 0..19

Why a stack (docs/GYMNAX.md has the figures): on the raw view a stock PPO at its published
settings learns nothing. Its observation holds the scenario's constants (100, 50) beside
house states of 0..2, which saturate an orthogonally initialised tanh layer; its rewards
(about 73 a night) make the critic's gradient dominate global-norm clipping; and it says
neither which night it is nor, as one input, which house burns. Each wrapper fixes one of
these and keeps the env's one-block draw layout, so a stack replays the same episodes, and
info["episode_return"] stays the game's own return whatever rewards the learner trains on.
"""

from __future__ import annotations

from dataclasses import dataclass

import chex
import jax
import jax.numpy as jnp
from gymnax.environments import spaces

from bb_jax.game.env import make_env
from bb_jax.game.rules import NUM_HOUSES, observation_high
from bb_jax.game.scenarios import Scenario
from bb_jax.game.wrappers import FlatActionWrapper, TimeInputWrapper, Wrapper

REWARD_SCALE = 0.01  # a night's reward is about 73 in `default`: about 1 after scaling
NUM_HOUSE_STATES = 3  # SAFE, BURNING, RUINED


@dataclass(frozen=True, eq=False)
class ScaleObservationWrapper(Wrapper):
    """`env` whose observations (the final observation of an ending step included) are
    divided by `high` float32[D], positive: the game's features then lie in about [0, 1]."""

    high: jnp.ndarray = None
    suffix = "scaled"

    def observation_space(self, params: Scenario) -> spaces.Box:
        inner = self.env.observation_space(params)
        return spaces.Box(inner.low / self.high, inner.high / self.high, inner.shape,
                          inner.dtype)

    def reset_env(self, key: chex.PRNGKey, params: Scenario):
        obs, state = self.env.reset_env(key, params)
        return obs / self.high, state

    def step_env(self, key: chex.PRNGKey, state, action, params: Scenario):
        obs, state, reward, terminated, info = self.env.step_env(key, state, action, params)
        return obs / self.high, state, reward, terminated, info

    def step(self, key: chex.PRNGKey, state, action, params: Scenario | None = None):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action,
                                                                        params)
        info = {**info, "final_observation": info["final_observation"] / self.high}
        return obs / self.high, state, reward, terminated, truncated, info


def one_hot_houses(obs: jnp.ndarray) -> jnp.ndarray:
    """float32[..., D] -> float32[..., D + 20]: the first 10 entries (house states 0, 1, 2)
    become 30 indicators, house by house (SAFE, BURNING, RUINED); the rest follows as is."""
    states = obs[..., :NUM_HOUSES].astype(jnp.int32)
    hot = jax.nn.one_hot(states, NUM_HOUSE_STATES, dtype=obs.dtype)
    return jnp.concatenate([hot.reshape(*obs.shape[:-1], -1), obs[..., NUM_HOUSES:]], axis=-1)


@dataclass(frozen=True, eq=False)
class OneHotHousesWrapper(Wrapper):
    """`env` whose observations (final ones included) start with the house states one-hot
    (`one_hot_houses`): "this house burns" is then one input, not the middle of a range."""

    suffix = "one-hot"

    def observation_space(self, params: Scenario) -> spaces.Box:
        inner = self.env.observation_space(params)
        ones = jnp.ones(NUM_HOUSES * NUM_HOUSE_STATES, inner.low.dtype)
        return spaces.Box(jnp.concatenate([0 * ones, inner.low[NUM_HOUSES:]]),
                          jnp.concatenate([ones, inner.high[NUM_HOUSES:]]),
                          (inner.shape[0] + NUM_HOUSES * (NUM_HOUSE_STATES - 1),), inner.dtype)

    def reset_env(self, key: chex.PRNGKey, params: Scenario):
        obs, state = self.env.reset_env(key, params)
        return one_hot_houses(obs), state

    def step_env(self, key: chex.PRNGKey, state, action, params: Scenario):
        obs, state, reward, terminated, info = self.env.step_env(key, state, action, params)
        return one_hot_houses(obs), state, reward, terminated, info

    def step(self, key: chex.PRNGKey, state, action, params: Scenario | None = None):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action,
                                                                        params)
        info = {**info, "final_observation": one_hot_houses(info["final_observation"])}
        return one_hot_houses(obs), state, reward, terminated, truncated, info


@dataclass(frozen=True, eq=False)
class ScaleRewardWrapper(Wrapper):
    """`env` whose rewards are multiplied by `scale`; info["episode_return"] stays the
    env's own (unscaled) return, so the game's figures are read as before."""

    scale: float = REWARD_SCALE
    suffix = "reward-scaled"

    def step_env(self, key: chex.PRNGKey, state, action, params: Scenario):
        obs, state, reward, terminated, info = self.env.step_env(key, state, action, params)
        return obs, state, reward * self.scale, terminated, info

    def step(self, key: chex.PRNGKey, state, action, params: Scenario | None = None):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action,
                                                                        params)
        return obs, state, reward * self.scale, terminated, truncated, info


def make_gymnax_env(
    scenario: str | Scenario = "default",
    num_opponents: int = 2,
    opponents: list[str] | tuple[str, ...] | None = None,
    max_steps: int = 50,
    *,
    time_input: bool = True,
    one_hot: bool = True,
    scale_observation: bool = True,
    reward_scale: float | None = REWARD_SCALE,
    flat_action: bool = True,
) -> Wrapper:
    """The game's single-learner view (`make_env`'s arguments) in the stack a stock gymnax
    learner needs, innermost first: the clock (`TimeInputWrapper`: steps taken / max_steps
    appended), the house states one-hot (`OneHotHousesWrapper`), observations divided by the
    game's typical upper bounds (`observation_high`; 1 for the clock and the indicators),
    rewards times `reward_scale` (None: unscaled) and one Discrete(20) action
    (`FlatActionWrapper`; False keeps the (house, mode) Tuple). With N = num_opponents + 1
    agents the observation is float32[22 + 4N + 20 + 1]. Each keyword turns one wrapper off,
    for ablations."""
    env = make_env(scenario, num_opponents, opponents, max_steps)
    high = observation_high(env.num_agents)
    if time_input:
        env, high = TimeInputWrapper(env), jnp.append(high, 1.0)
    if one_hot:
        env = OneHotHousesWrapper(env)
        high = jnp.concatenate([jnp.ones(NUM_HOUSES * NUM_HOUSE_STATES), high[NUM_HOUSES:]])
    if scale_observation:
        env = ScaleObservationWrapper(env, high)
    if reward_scale is not None:
        env = ScaleRewardWrapper(env, float(reward_scale))
    return FlatActionWrapper(env) if flat_action else env
