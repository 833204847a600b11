"""How many population members fit in memory.

`member_bytes` estimates what one member needs while training; `memory_budget` is what the
device offers (80% of an accelerator's free memory, half the host's available RAM on a CPU
backend, or $BB_JAX_MEMORY_BUDGET); `population_limit` turns both into members per compiled
population. `bb_jax.tuning.cohorts.CohortTrainer` trains larger cohorts in several rounds, and
refuses (`PopulationMemoryError`) a member that does not fit on its own, before any training.
"""

from __future__ import annotations

import os
import re

import jax

from bb_jax.train.ppo import PPO, PPOConfig

MEMORY_BUDGET_ENV = "BB_JAX_MEMORY_BUDGET"
_MEMORY_SAFETY = 3.0  # XLA temporaries, allocator fragmentation, the rest of the program
_DEVICE_SHARE = 0.8  # of a GPU/TPU's free memory
_HOST_SHARE = 0.5  # of the host's available RAM on a CPU backend


class PopulationMemoryError(ValueError):
    """Not even one population member fits in the memory available for training."""


def member_bytes(config: PPOConfig, eval_episodes: int = 0) -> int:
    """A generous estimate of the device memory one population member needs while training:
    parameters, gradients and Adam state; the rollout buffer with its GAE, flattened and
    shuffled copies; one minibatch's activations kept for the backward pass; the environment
    states; and the final evaluation's episodes. Times a safety factor."""
    observation = PPO(config).env.observation_size
    houses = 10
    net_in = 3 * houses + (observation - houses)  # house states enter one-hot
    h = config.hidden_size
    params = net_in * h + h + h * h + h + h * (houses + 2 + 1) + houses + 2 + 1
    floats = (
        6 * params
        + 3 * config.batch_size * (2 * observation + 12)
        + 4 * (config.batch_size // config.num_minibatches) * (net_in + 2 * h + 16)
        + config.num_envs * (4 * observation + 64)
        + eval_episodes * (4 * observation + 64 + 2 * h)
    )
    return int(_MEMORY_SAFETY * 4 * floats)


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
                     eval_episodes: int = 0) -> int:
    """Members of `config` trained together at most: `max_population`, lowered to what fits
    in `budget` bytes. Raises PopulationMemoryError if not even one member fits."""
    if budget is None:
        return max_population
    need = member_bytes(config, eval_episodes)
    fit = budget // need
    if fit < 1:
        raise PopulationMemoryError(
            f"one member with hidden_size={config.hidden_size}, batch_size={config.batch_size} "
            f"needs about {need / 2**20:,.0f} MiB but only {max(budget, 0) / 2**20:,.0f} MiB "
            f"of device memory are available (set {MEMORY_BUDGET_ENV} to override)")
    return max(1, min(max_population, fit))


