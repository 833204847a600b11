"""Train PPO on a Bucket Brigade scenario. See `python scripts/train_simple.py --help`."""

import sys

from bb_jax.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
