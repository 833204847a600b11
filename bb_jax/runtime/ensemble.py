"""Ensembles: K trained policies combined into one policy in the learner's seat.

Each member's network gives its heads' logits (the game: house [.., 10], mode [.., 2]); per head the
members' distributions combine into one (`combine`) and the action is drawn from it exactly as
one network's is (`networks.sample` / `networks.greedy`), through the one evaluation scan
every policy plays (`bb_jax.agent.policies.evaluate_policy`). Rules:

- "probs": the mean of the members' probabilities (a mixture: the ensemble does what a
  member picked at random each decision would do on average);
- "logits": the normalised mean of their log-probabilities (a geometric mean: an action any
  member finds very unlikely stays unlikely).

An ensemble of K copies of one network combines to that network's distribution, so it plays
its episodes. Members may differ in hidden size and in the time input (their configs): each
reads its own leading features of the view's observation (the time input is the last one).
Costs K forward passes per action.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax import envs
from bb_jax.agent import networks
from bb_jax.agent.config import PPOConfig
from bb_jax.agent.policies import evaluate_policy
from bb_jax.agent.ppo import PPO

RULES = ("probs", "logits")


def combine(heads: Sequence[tuple[jnp.ndarray, ...]], rule: str = "probs"):
    """K members' head logits (the game: house [..., 10], mode [..., 2]) -> the ensemble's
    normalised log-probabilities of each head, same shapes (`RULES`)."""
    if rule not in RULES:
        raise ValueError(f"unknown ensemble rule {rule!r}; valid: {', '.join(RULES)}")

    def one(logits):
        logp = jax.nn.log_softmax(jnp.stack(logits), axis=-1)  # [K, ..., A]
        if rule == "probs":
            return jax.nn.logsumexp(logp, axis=0) - jnp.log(len(logits))
        return jax.nn.log_softmax(logp.mean(axis=0), axis=-1)

    return tuple(one([member[k] for member in heads]) for k in range(len(heads[0])))


def ensemble_act(ppos: Sequence[PPO], rule: str = "probs", greedy: bool = False):
    """An ActFn (`bb_jax.agent.policies`) whose policy argument is the members' parameters,
    one per PPO in `ppos` (a tuple): each member's network on the same inputs, combined."""

    def act(key, obs, env_state, params):
        heads = [ppo.network.apply(p, obs[..., :ppo.input_size])[:-1]
                 for ppo, p in zip(ppos, params, strict=True)]
        logits = combine(heads, rule)
        return networks.greedy(logits) if greedy else networks.sample(key, logits)

    return act


def ensemble_returns(configs: Sequence[PPOConfig], params: Sequence, keys, episodes: int,
                     scenario: str, rule: str = "probs", greedy: bool = False) -> np.ndarray:
    """float32[S, episodes]: the ensemble of `configs` (member k's network) on fresh episodes
    of `scenario`, one row per key in keys [S, 2] (e.g. `evaluation_keys(seeds)`, the
    episodes validation judged each seed on); params[k] is member k's parameters stacked
    over the S rows (row s: the member trained on seed s)."""
    ppos = [PPO(c) for c in configs]
    widest = max(ppos, key=lambda ppo: ppo.input_size)
    game = envs.make(widest.config.replace(scenario=scenario))[1]
    act = ensemble_act(ppos, rule, greedy)
    view = widest.view(episodes)
    play = jax.jit(jax.vmap(lambda p, key: evaluate_policy(view, act, key, game, tuple(p))))
    return np.asarray(play(tuple(params), jnp.asarray(keys)))
