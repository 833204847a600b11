"""The arithmetic of one PPO update: GAE, the clipped-surrogate loss, (masked) batch
statistics and the ring buffer of completed episode returns that gives the objective.

Pure functions on arrays; `bb_jax.agent.ppo.PPO` composes them. Every statistic takes an
optional 0/1 `weight`: a shape-padded member (`bb_jax.agent.config.ShapeChoices`) counts only
its own entries.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from bb_jax.agent import networks
from bb_jax.agent.config import PPOHyperparams

RETURN_WINDOW = 100  # the objective: mean of the last 100 completed episode returns


class Batch(NamedTuple):
    """Flat training batch, leading axis B."""

    obs: jnp.ndarray
    action: jnp.ndarray
    log_prob: jnp.ndarray
    advantage: jnp.ndarray
    target: jnp.ndarray


def compute_gae(
    reward: jnp.ndarray, value: jnp.ndarray, next_value: jnp.ndarray,
    terminated: jnp.ndarray, done: jnp.ndarray, gamma, gae_lambda, valid=None,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """GAE over a time-major rollout, all float32[T, E] (bool for the masks).

    next_value[t] is the value of the step's result (its final observation), so truncated
    steps bootstrap from it while terminated steps do not; the advantage recursion stops at
    every episode end. `valid` bool[T, E]: steps past a member's own rollout (a padded
    program) get advantage 0, so its last real step starts the recursion as at T.
    Returns (advantages, value targets)."""
    delta = reward + gamma * next_value * (1.0 - terminated) - value
    valid = jnp.ones(delta.shape, bool) if valid is None else valid

    def backward(carry, xs):
        d, stop, real = xs
        adv = jnp.where(real, d + gamma * gae_lambda * (1.0 - stop) * carry, 0.0)
        return adv, adv

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(delta[0]), (delta, done.astype(jnp.float32), valid),
        reverse=True,
    )
    return advantages, advantages + value


def ppo_loss(params, apply_fn, batch: Batch, hp: PPOHyperparams, weight=None):
    """Clipped-surrogate PPO loss on a (mini)batch with already normalised advantages; with
    `weight` (0/1, float32[B]) over the entries where it is 1.

    Returns (total, metrics dict)."""
    *logits, value = apply_fn(params, batch.obs)
    log_prob = networks.log_prob(logits, batch.action)
    chex.assert_equal_shape([log_prob, batch.log_prob, batch.advantage, value, batch.target])
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    clipped = jnp.clip(ratio, 1.0 - hp.clip_epsilon, 1.0 + hp.clip_epsilon)
    mask = _where(weight)
    policy_loss = -jnp.mean(jnp.minimum(ratio * batch.advantage, clipped * batch.advantage),
                            where=mask)
    value_loss = 0.5 * jnp.mean((value - batch.target) ** 2, where=mask)
    entropy = jnp.mean(networks.entropy(logits), where=mask)
    total = policy_loss + hp.value_coef * value_loss - hp.entropy_coef * entropy
    metrics = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio, where=mask),
        "clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > hp.clip_epsilon, where=mask,
                                  dtype=jnp.float32),
    }
    return total, metrics


def record_returns(recent, num_episodes, episode_return, done):
    """Push the returns of finished episodes (time-major [T, E]) into the ring buffer."""
    ret = episode_return.reshape(-1)
    fin = done.reshape(-1)
    rank = jnp.cumsum(fin) - 1
    total = jnp.sum(fin)
    keep = fin & (rank >= total - RETURN_WINDOW)
    slot = jnp.where(keep, (num_episodes + rank) % RETURN_WINDOW, RETURN_WINDOW)
    return recent.at[slot].set(ret, mode="drop"), num_episodes + total.astype(jnp.int32)


def mean_recent_return(recent, num_episodes):
    """Mean of the last min(100, num_episodes) completed returns (NaN before the first)."""
    count = jnp.minimum(num_episodes, RETURN_WINDOW)
    valid = jnp.arange(RETURN_WINDOW) < count
    return jnp.where(count > 0, jnp.sum(jnp.where(valid, recent, 0.0)) / jnp.maximum(count, 1),
                     jnp.nan)


def _where(weight):
    """The mask of a 0/1 `weight` (None: every entry counts), for jnp's where= reductions."""
    return None if weight is None else weight > 0


def normalise(advantage, weight=None):
    """Advantages standardised over the entries where `weight` is 1 (all when None)."""
    mask = _where(weight)
    return (advantage - jnp.mean(advantage, where=mask)) / (
        jnp.std(advantage, where=mask) + 1e-8)


def explained_variance(value, target, weight=None):
    var = jnp.var(target, where=_where(weight))
    return jnp.where(var > 0, 1.0 - jnp.var(target - value, where=_where(weight)) / var, 0.0)
