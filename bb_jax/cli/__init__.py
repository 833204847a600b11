"""Command lines. Usage errors print one line naming the valid choices and exit with 2.

- `train_main`: scripts/train_simple.py, bb-train (`bb_jax.cli.train`)
- `tune_main`: scripts/tune_hyperparameters.py, bb-tune (`bb_jax.cli.tune`)
- `validate_main`: scripts/validate_best.py, bb-validate (`bb_jax.cli.validate`)
- `evaluate_main`: scripts/evaluate.py, bb-evaluate (`bb_jax.cli.evaluate`)
- `results_main`: scripts/results_report.py (`bb_jax.cli.results`: docs/RESULTS.md)
- shared pieces (`bb_jax.cli.common`): `UsageError`, `STORAGE_ENV`, `enable_compile_cache`
"""

from bb_jax.cli.common import STORAGE_ENV, USAGE_ERROR, UsageError, enable_compile_cache
from bb_jax.cli.evaluate import evaluate_main
from bb_jax.cli.results import results_main
from bb_jax.cli.train import train_main
from bb_jax.cli.tune import tune_main, worker_command
from bb_jax.cli.validate import validate_main

__all__ = ["STORAGE_ENV", "USAGE_ERROR", "UsageError", "enable_compile_cache", "evaluate_main",
           "results_main", "train_main", "tune_main", "validate_main", "worker_command"]
