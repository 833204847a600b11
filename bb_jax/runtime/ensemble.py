"""Ensembles: K trained policies combined into one policy in the learner's seat.

Each member's network gives the two heads' logits (house [.., 10], mode [.., 2]); per head the
members' distributions combine into one (`combine`) and the action is drawn from it exactly as
one network's is (`networks.sample` / `networks.greedy`), through the one evaluation scan
every policy plays (`bb_jax.agent.policies.evaluate_policy`). Rules:

- "probs": the mean of the members' probabilities (a mixture: the ensemble does what a
  member picked at random each decision would do on average);
- "logits": the normalised mean of their log-probabilities (a geometric mean: an action any
  member finds very unlikely stays unlikely).

An ensemble of K copies of one network combines to that network's distribution, so it plays
its episodes. Members may differ in hidden size (their configs), not in what they observe.
Costs K forward passes per action.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax.agent import networks
from bb_jax.agent.config import PPOConfig
from bb_jax.agent.policies import evaluate_policy
from bb_jax.agent.ppo import PPO
from bb_jax.game.scenarios import get_scenario

RULES = ("probs", "logits")


def combine(heads: Sequence[tuple[jnp.ndarray, jnp.ndarray]], rule: str = "probs"):
    """K members' (house logits [..., 10], mode logits [..., 2]) -> the ensemble's
    normalised log-probabilities of each head, same shapes (`RULES`)."""
    if rule not in RULES:
        raise ValueError(f"unknown ensemble rule {rule!r}; valid: {', '.join(RULES)}")

    def one(logits):
        logp = jax.nn.log_softmax(jnp.stack(logits), axis=-1)  # [K, ..., A]
        if rule == "probs":
            return jax.nn.logsumexp(logp, axis=0) - jnp.log(len(logits))
        return jax.nn.log_softmax(logp.mean(axis=0), axis=-1)

    return one([h for h, _ in heads]), one([m for _, m in heads])


def ensemble_act(ppos: Sequence[PPO], rule: str = "probs", greedy: bool = False):
    """An ActFn (`bb_jax.agent.policies`) whose policy argument is the members' parameters,
    one per PPO in `ppos` (a tuple): each member's network on the same inputs, combined."""

    def act(key, obs, env_state, params):
        heads = [ppo.network.apply(p, ppo.inputs(obs, env_state.step_count))[:2]
                 for ppo, p in zip(ppos, params, strict=True)]
        house, mode = combine(heads, rule)
        return networks.greedy(house, mode) if greedy else networks.sample(key, house, mode)

    return act


def ensemble_returns(configs: Sequence[PPOConfig], params: Sequence, keys, episodes: int,
                     scenario: str, rule: str = "probs", greedy: bool = False) -> np.ndarray:
    """float32[S, episodes]: the ensemble of `configs` (member k's network) on fresh episodes
    of `scenario`, one row per key in keys [S, 2] (e.g. `evaluation_keys(seeds)`, the
    episodes validation judged each seed on); params[k] is member k's parameters stacked
    over the S rows (row s: the member trained on seed s)."""
    ppos = [PPO(c) for c in configs]
    env = ppos[0].env
    num_agents = env.num_agents
    game = get_scenario(scenario, num_agents)
    act = ensemble_act(ppos, rule, greedy)
    play = jax.jit(jax.vmap(lambda p, key: evaluate_policy(env, act, key, episodes, game,
                                                           tuple(p))))
    return np.asarray(play(tuple(params), jnp.asarray(keys)))
