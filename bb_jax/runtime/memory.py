"""How many population members fit in memory.

`member_bytes` is what one member needs while training, from XLA itself: the population's
chunk program for one member, lowered and compiled without running, and its
`memory_analysis()` (arguments + outputs - donated + temporaries, plus the final evaluation's
program). Compiling costs seconds, so `population_limit` first screens with `estimate_bytes`,
a generous hand count (3-5x XLA's figure on the search space's shapes, docs/PERFORMANCE.md):
when even that fits the largest population allowed, or the members a cohort trains at once,
no program is compiled. `memory_budget` is what the device offers (80% of
an accelerator's free memory, half the host's available RAM on a CPU backend, or
$BB_JAX_MEMORY_BUDGET). `bb_jax.runtime.cohorts.CohortTrainer` trains larger cohorts in several
rounds, and refuses (`PopulationMemoryError`) a member that does not fit on its own, before any
training.
"""

from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp

from bb_jax.agent.config import PPOConfig, ShapeChoices, stack_hyperparams
from bb_jax.agent.ppo import PPO
from bb_jax.runtime.population import broadcast_scenario
from bb_jax.runtime.programs import compiled

MEMORY_BUDGET_ENV = "BB_JAX_MEMORY_BUDGET"
_MEMORY_SAFETY = 3.0  # XLA temporaries, allocator fragmentation, the rest of the program
# XLA's figure against a measured run (hidden 512, batch 4096, CPU, peak RSS of 8 members vs
# 1): 28.1 MiB per member from memory_analysis, 36.3 MiB measured (allocator, the init
# program's buffers, host copies of the metrics): margin on top of the analysis
_XLA_MARGIN = 1.3
_DEVICE_SHARE = 0.8  # of a GPU/TPU's free memory
_HOST_SHARE = 0.5  # of the host's available RAM on a CPU backend


class PopulationMemoryError(ValueError):
    """Not even one population member fits in the memory available for training."""


def estimate_bytes(config: PPOConfig, eval_episodes: int = 0) -> int:
    """A generous hand estimate of the memory one member needs while training: parameters
    (counted from the network's shapes, no compile), gradients and Adam state; the rollout
    buffer with its GAE, flattened and shuffled copies; one minibatch's activations kept for
    the backward pass; the environment states; and the final evaluation's episodes. Times a
    safety factor. Only screens (`population_limit`)."""
    ppo = PPO(config)
    observation = int(jnp.prod(jnp.asarray(ppo.env.observation_space(ppo.default_scenario).shape)))
    net_in = ppo.input_size  # the view's features (house states one-hot)
    h = config.hidden_size
    torsos = 2 if config.critic == "separate" else 1
    shapes = jax.eval_shape(ppo.network.init, jax.random.PRNGKey(0),
                            jax.ShapeDtypeStruct((ppo.input_size,), jnp.float32))
    params = sum(leaf.size for leaf in jax.tree.leaves(shapes))
    floats = (
        6 * params
        + 3 * config.batch_size * (2 * observation + 12)
        + 4 * (config.batch_size // config.num_minibatches) * (net_in + 2 * h * torsos + 16)
        + config.num_envs * (4 * observation + 64)
        + eval_episodes * (4 * observation + 64 + 2 * h * torsos)
    )
    return int(_MEMORY_SAFETY * 4 * floats)


_MEMBER_BYTES: dict[tuple, int] = {}


def member_bytes(config: PPOConfig, eval_episodes: int = 0,
                 shapes: ShapeChoices | None = None) -> int:
    """Bytes one population member of `config` needs, from XLA's `memory_analysis()` of the
    population programs for one member (lowered and compiled, not run; once per process and
    shape): the training chunk's arguments, outputs and temporaries less what the donated
    state lets XLA reuse, plus the evaluation's outputs and temporaries, times a 1.3 margin
    measured against a real run. Falls back to `estimate_bytes` where the backend gives no
    analysis. With `shapes`: a member of that padded program (its largest shapes)."""
    fns = compiled(config, shapes)
    key = (fns.ppo.config, shapes, int(eval_episodes))
    if key not in _MEMBER_BYTES:
        hp = stack_hyperparams([{}])
        keys = jax.random.PRNGKey(0)[None]
        scenarios = broadcast_scenario(fns.ppo.default_scenario, 1)
        rows = until = None
        if shapes is not None:
            rows = jax.tree.map(lambda x: x[None], shapes.member(max(shapes.hidden_sizes),
                                                                 max(shapes.batch_sizes)))
            until = jnp.ones((1,), jnp.int32)
        state = jax.eval_shape(fns.init, keys, hp, scenarios, rows)
        train = fns.run_updates.lower(state, hp, 1, scenarios, rows, until).compile()
        train = train.memory_analysis()
        if train is None:
            return estimate_bytes(fns.ppo.config, eval_episodes)
        need = (train.argument_size_in_bytes + train.output_size_in_bytes
                - train.alias_size_in_bytes + train.temp_size_in_bytes)
        if eval_episodes:
            evaluation = fns.evaluate.lower(state.params, keys, int(eval_episodes), False,
                                            scenarios).compile().memory_analysis()
            need += evaluation.output_size_in_bytes + evaluation.temp_size_in_bytes
        _MEMBER_BYTES[key] = int(_XLA_MARGIN * need)
    return _MEMBER_BYTES[key]


def parse_bytes(text: str) -> int:
    """'512M', '2G', '1.5GiB', '1000000' -> bytes."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", text)
    if not match:
        raise ValueError(f"{MEMORY_BUDGET_ENV}={text!r} is not a size like 512M or 2G")
    scale = 1024 ** " KMGT".index(match[2].upper() or " ")
    return int(float(match[1]) * scale)


def memory_budget() -> int | None:
    """Bytes a population may use: $BB_JAX_MEMORY_BUDGET if set; else 80% of the free memory of
    the first accelerator (`memory_stats()`); else, on a CPU backend, half the host's
    available RAM; None when nothing is known (no bound)."""
    if os.environ.get(MEMORY_BUDGET_ENV):
        return parse_bytes(os.environ[MEMORY_BUDGET_ENV])
    device = jax.local_devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # not every backend implements it
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(_DEVICE_SHARE * (stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
    if device.platform != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(_HOST_SHARE * int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        return int(_HOST_SHARE * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def population_limit(config: PPOConfig, budget: int | None, max_population: int,
                     eval_episodes: int = 0, shapes: ShapeChoices | None = None,
                     needed: int | None = None) -> int:
    """Members of `config` (with `shapes`: of its padded program) trained together at most:
    `max_population`, lowered to what fits in `budget` bytes by XLA's figure
    (`member_bytes`). With `needed` (the members the caller will train at once), a
    generous estimate that already fits that many is limit enough: nothing is compiled.
    Raises PopulationMemoryError if not even one member fits."""
    if budget is None:
        return max_population
    if shapes is not None:
        config = shapes.config(config)
    by_estimate = budget // estimate_bytes(config, eval_episodes)
    if by_estimate >= max_population:
        return max_population  # fits even by the generous estimate: nothing to compile
    if needed is not None and by_estimate >= needed:
        return by_estimate  # a lower bound of XLA's figure that holds the caller's members
    need = member_bytes(config, eval_episodes, shapes)
    fit = budget // need
    if fit < 1:
        raise PopulationMemoryError(
            f"one member with hidden_size={config.hidden_size}, batch_size={config.batch_size} "
            f"needs about {need / 2**20:,.0f} MiB but only {max(budget, 0) / 2**20:,.0f} MiB "
            f"of device memory are available (set {MEMORY_BUDGET_ENV} to override)")
    return max(1, min(max_population, fit))


