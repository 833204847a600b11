"""bb-jax: Bucket Brigade in pure JAX, jitted PPO over populations, and an Optuna tuner.

Layers (each imports only from the ones before it): `bb_jax.game` (the game, opponents, the
single-learner env, the plain-Python reference) <- `bb_jax.train` (networks, PPO, populations,
runs, baselines, report, memory sizing) <- `bb_jax.tuning` (Optuna ask/tell, cohorts, storage,
interrupts) <- `bb_jax.cli`. `bb_jax.stats` and `bb_jax.machine` are small shared helpers.
"""

from bb_jax.game.env import BucketBrigadeEnv, EnvState, make_env
from bb_jax.game.opponents import OPPONENT_KINDS
from bb_jax.game.scenarios import Scenario, get_scenario, list_scenarios
from bb_jax.train.runs import load_run

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
