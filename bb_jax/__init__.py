"""bb-jax: Bucket Brigade in pure JAX, jitted PPO over populations, and an Optuna tuner.

Layers (each imports only from the ones before it): `bb_jax.game` (the game, opponents, the
single-learner env, the plain-Python reference) <- `bb_jax.train` (networks, PPO, populations,
runs, baselines, report, memory sizing) <- `bb_jax.tuning` (Optuna ask/tell, cohorts, storage,
interrupts) <- `bb_jax.cli`. `bb_jax.stats` and `bb_jax.machine` are small shared helpers.
"""

import importlib

from bb_jax.game.opponents import OPPONENT_KINDS
from bb_jax.game.scenarios import Scenario, get_scenario, list_scenarios

__all__ = [
    "OPPONENT_KINDS",
    "BucketBrigadeEnv",
    "EnvState",
    "Scenario",
    "get_scenario",
    "list_scenarios",
    "make_env",
]

# Importing gymnax creates a JAX array, which starts JAX's backend; `bb_jax.devices` must be
# able to set the host device count after `import bb_jax`, so the env loads on first use.
_ENV_NAMES = ("BucketBrigadeEnv", "EnvState", "make_env")


def __getattr__(name: str):
    if name in _ENV_NAMES:
        return getattr(importlib.import_module("bb_jax.game.env"), name)
    raise AttributeError(f"module 'bb_jax' has no attribute {name!r}")
