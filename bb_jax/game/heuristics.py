"""The game's non-learning policies in the learner's seat (agent 0), as act functions of the
evaluation scan (`bb_jax.agent.policies.evaluate_policy`):

- `uniform_random_act`: house uniform in 0..9, mode uniform in {REST, WORK};
- `heuristic_act`: a heuristic archetype of docs/GAME_RULES.md (firefighter, coordinator,
  free_rider, liar, hero) playing agent 0 with the opponents' decision rule. As for every
  heuristic, its "own" house is its seat mod 10, so in seat 0 it guards house 0 (and, like an
  opponent, repeats its own last action);
- `mixed_act`: either of them chosen per row, so that a batch mixing both compiles once.

They read the game's state (`EnvState`), so they serve this game only; `BASELINES` names them
and `policy_params` gives each one's parameter row. Pure functions: jit and vmap them from
outside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax.game import opponents, rules

if TYPE_CHECKING:  # the env (gymnax) loads on first use: see bb_jax/__init__.py
    from bb_jax.game.env import EnvState

LEARNER_SEAT = 0
BASELINES = ("random", *opponents.ARCHETYPES)


def policy_params(policy: str) -> np.ndarray:
    """float32[10]: the heuristic's parameters (zeros for "random"); ValueError naming the
    valid baselines for any other name."""
    if policy == "random":
        return np.zeros(opponents.NUM_PARAMS, np.float32)
    if policy not in opponents.ARCHETYPES:
        raise ValueError(f"unknown baseline {policy!r}; valid baselines: {', '.join(BASELINES)}")
    return np.asarray(opponents.ARCHETYPES[policy], np.float32)


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


def mixed_act(key, obs, state: EnvState, policy) -> jnp.ndarray:
    """policy = (is_random bool[], params float32[10]): uniform random or a heuristic, chosen
    per row, so that a batch mixing both kinds compiles once."""
    is_random, params = policy
    k_random, k_heuristic = jax.random.split(key)
    return jnp.where(is_random, uniform_random_act(k_random, obs, state),
                     heuristic_act(k_heuristic, obs, state, params))
