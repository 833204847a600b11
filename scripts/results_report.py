"""Write docs/RESULTS.md (+ docs/results.png, docs/results.json): PPO on every scenario next to
uniform-random and heuristic play. See `python scripts/results_report.py --help`; the full
run takes a while on a CPU (12 scenarios x 5 seeds x 500k steps as one population)."""

import sys

from bb_jax.cli import results_main

if __name__ == "__main__":
    sys.exit(results_main())
