"""The one evaluation scan every policy plays: PPO's network (`PPO.policy_act`), an ensemble
of networks, or the game's non-learning baselines (`bb_jax.game.heuristics`), on the same
batch of fresh episodes, so a trained policy's figures and the baselines'
(`bb_jax.runtime.baselines`) compare directly: same view, same opponents, same truncation.
Pure functions: jit and vmap them from outside.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

# act(key, obs float32[E, I], env state [E], policy) -> int32[E, K]
ActFn = Callable[[jax.Array, jnp.ndarray, object, object], jnp.ndarray]


def evaluate_policy(env, act: ActFn, key, params=None, policy_params=None,
                    record: bool = False):
    """float32[E]: the undiscounted returns of E = env.num_envs fresh episodes (pure; jit and
    vmap it from outside; params: the env's, None its default).

    env: a batch of environments (`PPO.view`: `reset(key, params)` / `step(key, state,
    action, params)` on a leading axis E, `max_steps` steps per episode at most). With
    `record`, (returns, trace): trace["info"] the step's info dict and trace["reward"],
    trace["alive"] (the step belongs to the episode) float32 / bool[T, E], T = max_steps."""
    k_reset, k_run = jax.random.split(key)
    obs, env_state = env.reset(k_reset, params)

    def one_step(carry, step_key):
        env_state, obs, alive, total = carry
        k_act, k_env = jax.random.split(step_key)
        action = act(k_act, obs, env_state, policy_params)
        obs, env_state, reward, terminated, truncated, info = env.step(k_env, env_state, action,
                                                                       params)
        total = total + jnp.where(alive, reward, 0.0)
        trace = {"info": info, "reward": reward, "alive": alive} if record else None
        return (env_state, obs, alive & ~(terminated | truncated), total), trace

    init = (env_state, obs, jnp.ones((env.num_envs,), bool), jnp.zeros((env.num_envs,)))
    (_, _, _, total), trace = jax.lax.scan(one_step, init,
                                           jax.random.split(k_run, env.max_steps))
    return (total, trace) if record else total
