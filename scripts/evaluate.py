"""A saved run's policy against chosen opponents, beside each heuristic. See `--help`."""

import sys

from bb_jax.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
