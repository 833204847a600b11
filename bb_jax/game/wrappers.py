"""Wrappers of the single-learner view for code written against gymnax's API.

    env = FlatActionWrapper(make_env("easy", num_opponents=2))
    obs, state = env.reset(key)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action)  # action 0..19
"""

from __future__ import annotations

from dataclasses import dataclass

import chex
import jax.numpy as jnp
from gymnax.environments import environment, spaces

from bb_jax.game.env import NUM_MODES, BucketBrigadeEnv, EnvState
from bb_jax.game.scenarios import Scenario


def unflatten_action(action: jnp.ndarray) -> jnp.ndarray:
    """int32[...] in 0..19 -> int32[..., 2] (house, mode), action = NUM_MODES * house + mode
    (the observation's last-action order: house, then mode)."""
    action = jnp.asarray(action, jnp.int32)
    return jnp.stack([action // NUM_MODES, action % NUM_MODES], axis=-1)


# eq=False: hashed by identity, like the env it wraps (gymnax jits with the env static).
@dataclass(frozen=True, eq=False)
class FlatActionWrapper(environment.Environment[EnvState, Scenario]):
    """`env` with one `Discrete(20)` action (`unflatten_action`); states, observations,
    params and the draw layout are `env`'s."""

    env: BucketBrigadeEnv

    @property
    def default_params(self) -> Scenario:
        return self.env.default_params

    @property
    def name(self) -> str:
        return f"{self.env.name}-flat"

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    def action_space(self, params: Scenario) -> spaces.Discrete:
        del params
        return spaces.Discrete(self.env.num_actions)

    def observation_space(self, params: Scenario) -> spaces.Box:
        return self.env.observation_space(params)

    def is_truncated(self, state: EnvState, params: Scenario) -> jnp.ndarray:
        return self.env.is_truncated(state, params)

    def reset_env(self, key: chex.PRNGKey, params: Scenario):
        return self.env.reset_env(key, params)

    def step_env(self, key: chex.PRNGKey, state: EnvState, action, params: Scenario):
        return self.env.step_env(key, state, unflatten_action(action), params)

    def step(self, key: chex.PRNGKey, state: EnvState, action, params: Scenario | None = None):
        """`env.step` (its one-block auto-reset, not jitted) with the action unflattened."""
        return self.env.step(key, state, unflatten_action(action), params)
