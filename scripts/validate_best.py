"""Population-based validation of a study's top configurations. See `--help`."""

import sys

from bb_jax.cli import validate_main

if __name__ == "__main__":
    sys.exit(validate_main())
