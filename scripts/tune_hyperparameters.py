"""Tune PPO hyperparameters for Bucket Brigade with Optuna. See `--help`."""

import sys

from bb_jax.cli import tune_main

if __name__ == "__main__":
    sys.exit(tune_main())
