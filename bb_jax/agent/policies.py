"""Policies in the learner's seat (agent 0) and the one evaluation scan they all play.

`evaluate_policy` plays fresh episodes in parallel with any act function: PPO's network
(`PPO.policy_act`), `uniform_random_act` (house uniform in 0..9, mode uniform in {REST,
WORK}) or `heuristic_act`, a heuristic archetype of docs/GAME_RULES.md (firefighter,
coordinator, free_rider, liar, hero) playing agent 0 with the opponents' decision rule. As for
every heuristic, its "own" house is its seat mod 10, so in seat 0 it guards house 0 (and, like
an opponent, repeats its own last action). One scan, so a trained policy's figures and the
baselines' (`bb_jax.runtime.baselines`) compare directly: same view, same opponents, same
truncation. Pure functions: jit and vmap them from outside.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from bb_jax.game import opponents, rules
from bb_jax.game.scenarios import Scenario

if TYPE_CHECKING:  # the env (gymnax) loads on first use: see bb_jax/__init__.py
    from bb_jax.game.env import BucketBrigadeEnv, EnvState

LEARNER_SEAT = 0

# act(key, obs float32[M, D], state EnvState[M], policy) -> int32[M, 2]
ActFn = Callable[[jax.Array, jnp.ndarray, "EnvState", jnp.ndarray], jnp.ndarray]


def uniform_random_act(key, obs, state: EnvState, policy_params=None) -> jnp.ndarray:
    """House uniform in 0..9 and mode uniform in {0, 1}, independently per episode."""
    del state, policy_params
    return jax.random.randint(key, (obs.shape[0], 2), 0, jnp.array([10, 2])).astype(jnp.int32)


def heuristic_act(key, obs, state: EnvState, policy_params: jnp.ndarray) -> jnp.ndarray:
    """A heuristic with parameters float32[10] in seat 0: docs/GAME_RULES.md's opponent rule with
    own house 0, its last action the game's last_actions[0] (it has one iff night > 0)."""
    del obs
    num_episodes = state.step_count.shape[0]
    blocks = rules.uniforms(key, (num_episodes, 1, opponents.NUM_ACT_DRAWS))

    def one(game_state, block):
        return opponents.act(
            policy_params[None], game_state.houses, game_state.locations,
            game_state.last_actions[LEARNER_SEAT:LEARNER_SEAT + 1], game_state.night > 0,
            opponents.act_draws_from_block(block), seats=jnp.array([LEARNER_SEAT]),
        )[0]

    return jax.vmap(one)(state.game, blocks)


def evaluate_policy(env: BucketBrigadeEnv, act: ActFn, key, num_episodes: int,
                    scenario: Scenario | None = None, policy_params=None,
                    record: bool = False):
    """float32[num_episodes]: agent 0's undiscounted returns over fresh episodes (pure; jit
    and vmap it from outside; num_episodes is static; scenario None: the env's). With
    `record`, (returns, trace): trace["first_obs"] float32[E, D] (after the reset),
    trace["obs"] float32[T, E, D] (each night's result, before any auto-reset),
    trace["reward"] and trace["alive"] [T, E] (alive: the night belongs to the episode)."""
    k_reset, k_run = jax.random.split(key)
    blocks = env.sample_reset_draws(k_reset, (num_episodes,))
    obs, env_state = jax.vmap(env.reset_with_draws, in_axes=(0, None))(blocks, scenario)
    step_envs = jax.vmap(env.step_with_draws, in_axes=(0, 0, 0, None))

    def one_step(carry, step_key):
        env_state, obs, alive, total = carry
        k_act, k_env = jax.random.split(step_key)
        action = act(k_act, obs, env_state, policy_params)
        obs, env_state, reward, terminated, truncated, info = step_envs(
            env_state, action, env.sample_draws(k_env, (num_episodes,)), scenario
        )
        total = total + jnp.where(alive, reward, 0.0)
        trace = (info["final_observation"], reward, alive) if record else None
        return (env_state, obs, alive & ~(terminated | truncated), total), trace

    init = (env_state, obs, jnp.ones((num_episodes,), bool), jnp.zeros((num_episodes,)))
    (_, _, _, total), trace = jax.lax.scan(one_step, init,
                                           jax.random.split(k_run, env.max_steps))
    if not record:
        return total
    return total, {"first_obs": obs, "obs": trace[0], "reward": trace[1], "alive": trace[2]}


def mixed_act(key, obs, state: EnvState, policy) -> jnp.ndarray:
    """policy = (is_random bool[], params float32[10]): uniform random or a heuristic, chosen
    per row, so that a batch mixing both kinds compiles once."""
    is_random, params = policy
    k_random, k_heuristic = jax.random.split(key)
    return jnp.where(is_random, uniform_random_act(k_random, obs, state),
                     heuristic_act(k_heuristic, obs, state, params))


