"""Whole episodes of a team on fresh keys, through JaxMARL's `MultiAgentEnv` interface.

A policy is `act(key, obs, env_state) -> actions`: observations {agent: float32[E, D]}, env
states with leading axis E, actions {agent: int32[E, ...]}. `episode_returns` plays E episodes
from their own reset keys until every one has ended (`dones["__all__"]`), so two policies given
the same key start from the same towns: their returns pair episode by episode.

    returns = episode_returns(env, trained_policy(team, run.params), key, 256)  # [256, A]
    baseline = episode_returns(env, random_policy(env), key, 256)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bb_jax.agent import networks
from bb_jax.agent.team import Team, apply_team, team_inputs


def trained_policy(team: Team, params, greedy: bool = False):
    """The team's policy: each seat samples its own action (the most likely with `greedy`)."""

    def act(key, obs, env_state):
        logits0, logits1, _ = apply_team(team, params, team_inputs(team, obs, env_state))
        action = (networks.greedy((logits0, logits1)) if greedy
                  else networks.sample(key, (logits0, logits1)))
        return {a: action[i] for i, a in enumerate(team.env.agents)}

    return act


def random_policy(env):
    """A uniformly random team: each seat samples its action space."""

    def act(key, obs, env_state):
        num_envs = jax.tree.leaves(obs)[0].shape[0]
        keys = jax.random.split(key, env.num_agents)
        return {a: jax.vmap(env.action_space(a).sample)(jax.random.split(k, num_envs))
                for a, k in zip(env.agents, keys)}

    return act


def episode_returns(env, policy, key, num_episodes: int) -> jnp.ndarray:
    """float32[num_episodes, A]: each learning seat's return (unscaled) over one whole episode
    per reset key `split(key, num_episodes)`; steps after an episode's end are not counted."""
    k_reset, k_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(k_reset, num_episodes))
    total = jnp.zeros((num_episodes, env.num_agents), jnp.float32)
    alive = jnp.ones((num_episodes,), bool)

    def body(carry):
        k, obs, state, alive, total = carry
        k, k_act, k_env = jax.random.split(k, 3)
        actions = policy(k_act, obs, state)
        obs, state, rewards, dones, _ = jax.vmap(env.step)(
            jax.random.split(k_env, num_episodes), state, actions)
        reward = jnp.stack([rewards[a] for a in env.agents], -1)
        total = total + jnp.where(alive[:, None], reward, 0.0)
        return k, obs, state, alive & ~dones["__all__"], total

    carry = jax.lax.while_loop(lambda c: jnp.any(c[3]), body, (k_run, obs, state, alive, total))
    return carry[4]
