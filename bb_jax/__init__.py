"""bb-jax: Bucket Brigade in pure JAX, jitted PPO over populations, and an Optuna tuner."""

from bb_jax.opponents import OPPONENT_KINDS
from bb_jax.scenarios import Scenario, get_scenario, list_scenarios
from bb_jax.view import BucketBrigadeEnv, EnvState, make_env

__all__ = [
    "OPPONENT_KINDS",
    "BucketBrigadeEnv",
    "EnvState",
    "Scenario",
    "get_scenario",
    "list_scenarios",
    "make_env",
]
