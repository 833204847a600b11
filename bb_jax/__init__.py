"""bb-jax: Bucket Brigade in pure JAX, jitted PPO over populations, and an Optuna tuner.

Layers (each imports only from the ones before it): `bb_jax.game` (the game, opponents, the
single-learner env as a gymnax `Environment`, wrappers) <- `bb_jax.agent` (the config leaf,
networks, losses, policies, PPO: pure functions) <- `bb_jax.runtime` (compiled programs,
populations over devices, the one host driver, runs, cohorts, checkpoints, cost, memory) <-
`bb_jax.tuning` (Optuna ask/tell, pruners, validation) and `bb_jax.results` (the RESULTS
experiment) <- `bb_jax.cli`. `bb_jax.stats`, `bb_jax.machine`, `bb_jax.devices`,
`bb_jax.interrupts` and `bb_jax.progress` are small shared helpers; `bb_jax.envs` (the
registry of envs behind `--env`: the game, gymnax's, a user's) builds what the learner
steps. `bb_jax.testing` (the plain-Python reference game, the synthetic pruner sweeps) serves
tests and benchmarks; nothing else in bb_jax imports it.
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
    "load_run",
    "make_env",
]

# Importing gymnax creates a JAX array, which starts JAX's backend; `bb_jax.devices` must be
# able to set the host device count after `import bb_jax`, so the env (and the training code
# that imports it) loads on first use.
_LAZY = {"BucketBrigadeEnv": "bb_jax.game.env", "EnvState": "bb_jax.game.env",
         "make_env": "bb_jax.game.env", "load_run": "bb_jax.runtime.saved_runs"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bb_jax' has no attribute {name!r}")
