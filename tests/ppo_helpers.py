"""Shared PPO configs and jitted single-run functions for the PPO / population tests.

Compiling is most of these tests' cost on a 2-core CPU, so every test uses one of two configs
and the functions below are cached: the jitted single-run `init`, `run_updates` (CHUNK
updates) and `evaluate` compile once per pytest session, and `bb_jax.runtime.programs.compiled` is
itself cached per config.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from bb_jax.agent.config import PPOConfig
from bb_jax.agent.ppo import PPO

# The learning test's config (easy, hidden 64, the default batch and hyperparameters, 300k
# steps) doubles as the population tests' config: those run a few CHUNK-update chunks of it,
# so they reuse its single-run compile.
# CHUNK = 1 lets the population tests compare a member with a single run update by update
# from the same state (see test_population.py); dispatching 488 one-update calls costs
# nothing next to the updates themselves.
LEARN_CONFIG = PPOConfig(scenario="easy", hidden_size=64, total_steps=300_000)
CHUNK = 1


@functools.cache
def single(config: PPOConfig = LEARN_CONFIG):
    """(ppo, init, run_chunk, evaluate): jitted, un-vmapped functions of one run.

    run_chunk(state, hp) does CHUNK updates; evaluate(params, key, num_episodes, greedy)."""
    ppo = PPO(config)
    init = jax.jit(ppo.init)
    run_chunk = jax.jit(functools.partial(ppo.run_updates, num_updates=CHUNK))
    evaluate = jax.jit(ppo.evaluate, static_argnums=(2, 3))
    return ppo, init, run_chunk, evaluate


def train_single(key, hp, num_chunks: int, config: PPOConfig = LEARN_CONFIG):
    """One un-vmapped run of num_chunks * CHUNK updates: (state, metrics of the last chunk)."""
    _, init, run_chunk, _ = single(config)
    state = init(key, hp)
    metrics = None
    for _ in range(num_chunks):
        state, metrics = run_chunk(state, hp)
    return state, metrics


def keys(seeds) -> jnp.ndarray:
    return jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])
