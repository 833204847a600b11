"""The compiled programs of a population: PPO's `init`, `run_updates` and `evaluate`, each
vmapped over members and jitted once per static config (`compiled`). Hyperparameters,
scenarios and member shapes are traced rows, so every population of a config shares them;
the number of updates per call is static (one program per chunk length). On several devices
each one trains its own members (`_per_device`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from bb_jax.agent.config import PPOConfig, ShapeChoices
from bb_jax.agent.ppo import PPO
from bb_jax.runtime import sharding


@dataclass(frozen=True)
class CompiledPPO:
    """Jitted, vmapped entry points for one static config (cached per config)."""

    ppo: PPO
    init: object
    run_updates: object
    evaluate: object


_FAST_COMPILE = {"xla_backend_optimization_level": 0}


def compiled(config: PPOConfig, shapes: ShapeChoices | None = None) -> CompiledPPO:
    """The jitted entry points of `config` (with `shapes`: the padded program of
    `shapes.config(config)`), created once per process and program: configs that differ only
    in total steps or default scenario share them (populations always pass their scenarios,
    and the number of updates is the host's loop: the shared programs' config has
    total_steps=None, so reading its `num_updates` raises)."""
    config = config.replace(total_steps=None, scenario="default")
    return _programs(config if shapes is None else shapes.config(config), shapes)


def _evaluator(config: PPOConfig):
    """The jitted, vmapped `PPO.evaluate` of `config`. Evaluation plays fresh episodes with
    the network alone, so configs that differ only in batch size share one program (one
    compile per hidden size instead of per shape)."""
    try:
        return _jitted_evaluate(config.replace(batch_size=PPOConfig.batch_size, num_envs=None))
    except ValueError:  # a config whose minibatches do not divide the default batch
        return _jitted_evaluate(config)


@functools.cache
def _jitted_evaluate(config: PPOConfig):
    return _jit_evaluate(PPO(config))


def _jit_evaluate(ppo: PPO):
    """`ppo.evaluate` vmapped over members (params, keys, scenarios) and jitted with the number
    of episodes static and `greedy` traced: sampled and greedy play share one program."""
    return jax.jit(jax.vmap(ppo.evaluate, in_axes=(0, 0, None, None, 0)), static_argnums=2)


@functools.cache
def _programs(config: PPOConfig, shapes: ShapeChoices | None) -> CompiledPPO:
    """One set of jitted functions per program, kept for the process: a new `jax.jit` of a
    new PPO would trace and compile again."""
    ppo = PPO(config, shapes=shapes)
    return CompiledPPO(
        ppo=ppo,
        # Init runs once per population: compile it fast rather than make it fast.
        init=jax.jit(jax.vmap(ppo.init), compiler_options=_FAST_COMPILE),
        # The training state is consumed: its buffers are reused for the next state.
        run_updates=jax.jit(_per_device(jax.vmap(ppo.run_updates, in_axes=(0, 0, None, 0, 0, 0))),
                            static_argnums=2, donate_argnums=0),
        evaluate=_evaluator(config) if shapes is None else _jit_evaluate(ppo),
    )


def _per_device(vmapped):
    """`vmapped` (PPO.run_updates vmapped over members) run by each device on its own members,
    with no collective between devices (`jax.shard_map`). Without it the partitioner turns the
    members' epoch loop (a traced trip count, so a while loop over the batch) into one loop
    for all devices whose condition is an all-reduce every epoch: the devices wait for each
    other, and under CPU contention XLA's in-process all-reduce can time out and abort the
    process."""

    def run_updates(state, hyperparams, num_updates, scenarios, shapes, until):
        mesh = sharding.population_mesh(int(jnp.shape(state.update)[0]))
        args = (state, hyperparams, scenarios, shapes, until)
        if mesh is None:
            return vmapped(state, hyperparams, num_updates, scenarios, shapes, until)
        members = jax.sharding.PartitionSpec("population")
        local = jax.shard_map(
            lambda *a: vmapped(a[0], a[1], num_updates, *a[2:]), mesh=mesh,
            in_specs=tuple(None if a is None else members for a in args), out_specs=members,
            check_vma=False)  # no collective inside: nothing varies across devices but data
        return local(*args)

    return run_updates  # the name compile events and profiles show
