"""Wall time of tuning sweeps on the default scenario, compile included, and its compile share.

Sweeps: quick (30 trials x 20k steps) and standard (100 trials x 50k steps), each in a fresh
process with a cold compilation cache (a fresh temporary cache folder, so "compile included"
means it), in-memory
study, seed 42, population 16, median pruning. Compile time is the sum of XLA backend compile
durations reported by `jax.monitoring` during the sweep, compiles their number; the training
programs are the distinct (shape, population rows, chunk length) `run_updates` calls, and
members per program is trials / programs. Like the command line, the process uses every CPU
core as a host device (`bb_jax.devices`; with --n-jobs each process its share). `--shapes
exact padded` runs each sweep both ways (one program per shape met, or one shape-padded
program per batch: docs/PERFORMANCE.md, "One program per batch"). Writes JSON.

    python benchmarks/tune_throughput.py              # quick + standard (CPU: ~15 min)
    python benchmarks/tune_throughput.py --quick      # a tiny smoke sweep
    python benchmarks/tune_throughput.py --sweeps batch16 --population-size 16 \
        --seeds-per-trial 1 --shapes exact padded
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.monitoring

from bb_jax.machine import machine_info

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "tune_throughput_cpu.json"
# batch16: one batch of 16 trials of mixed shapes at the shortest horizon the search space
# allows (its largest batch), for --shapes exact against padded
SWEEPS = {"quick": (30, 20_000), "standard": (100, 50_000), "batch16": (16, 4096)}
SMOKE = {"smoke": (4, 4096)}

_compile_seconds = [0.0]
_compiles = [0]
_programs: set[tuple] = set()


def _on_event(name: str, seconds: float, **_) -> None:
    if name == "/jax/core/compile/backend_compile_duration":
        _compile_seconds[0] += seconds
        _compiles[0] += 1


def _record_programs() -> None:
    """Record every training program a population runs (config, rows, chunk length)."""
    from bb_jax.runtime.population import Population

    run = Population.run

    def recording_run(self, num_updates, until=None):
        rows = len(jax.tree.leaves(self.state.params)[0])
        _programs.add((self.fns.ppo.config, self.fns.ppo.shapes, rows, int(num_updates)))
        return run(self, num_updates, until)

    Population.run = recording_run


def run_sweep(name: str, n_trials: int, num_steps: int, population: str, n_jobs: int,
              shapes: str = "exact", seeds: str = "auto") -> dict:
    """Run one sweep in this process (n_jobs 1) or through the CLI's workers (n_jobs > 1)."""
    from bb_jax.cli import tune_main

    out_dir = Path(tempfile.mkdtemp(prefix=f"bb_tune_{name}_"))
    eval_interval = max(1024, min(5_000, num_steps // 4))
    args = ["--scenario", "default", "--n-trials", str(n_trials), "--num-steps", str(num_steps),
            "--eval-interval", str(eval_interval), "--population-size", str(population),
            "--seed", "42", "--study-name", f"bench_{name}_{population}",
            "--output-dir", str(out_dir), "--n-jobs", str(n_jobs), "--no-validate",
            "--shapes", shapes, "--seeds-per-trial", seeds]
    compile_before, compiles_before = _compile_seconds[0], _compiles[0]
    _programs.clear()
    start = time.perf_counter()
    code = tune_main(args)
    wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"sweep {name} failed with exit code {code}")
    results = json.loads((out_dir / f"bench_{name}_{population}_results.json").read_text())
    compile_s = _compile_seconds[0] - compile_before
    steps = sum(max((int(s) for s in t["intermediate_values"]), default=0)
                for t in results["trials"])
    return {
        "sweep": name, "n_trials": n_trials, "num_steps": num_steps,
        "population_size": int(population) if population.isdigit() else population,
        "n_jobs": n_jobs, "shapes": shapes, "seeds_per_trial": seeds, "wall_s": wall,
        "compile_s": compile_s if n_jobs == 1 else None,
        "compile_share": compile_s / wall if n_jobs == 1 else None,
        "compiles": _compiles[0] - compiles_before if n_jobs == 1 else None,
        "training_programs": len(_programs) if n_jobs == 1 else None,
        "members_per_program": n_trials / len(_programs) if n_jobs == 1 and _programs else None,
        "devices": jax.local_device_count(),
        "trials_per_hour": n_trials / wall * 3600,
        "env_steps_trained": steps, "env_steps_per_s": steps / wall,
        "n_complete": results["n_complete"], "n_pruned": results["n_pruned"],
        "n_failed": results["n_failed"], "best_value": results["best_value"],
    }


def _sweep_in_subprocess(name: str, population: str, shapes: str, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sweep.json"
        which = ["--quick"] if name in SMOKE else ["--sweeps", name]
        subprocess.run([sys.executable, __file__, *which, "--population-size", population,
                        "--shapes", shapes, "--seeds-per-trial", args.seeds_per_trial,
                        "--n-jobs", str(args.n_jobs), "--out", str(out)],
                       check=True)
        return json.loads(out.read_text())["sweeps"][0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny sweep (smoke test)")
    parser.add_argument("--population-size", nargs="+", default=["16"],
                        help="one sweep per value: trials per batch, or auto")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--shapes", nargs="+", choices=("exact", "padded"), default=["exact"],
                        help="one sweep per value")
    parser.add_argument("--seeds-per-trial", default="auto")
    parser.add_argument("--sweeps", nargs="+", choices=sorted(SWEEPS), default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    # A cold cache of our own: the figures include every compile.
    os.environ["BB_JAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="bb_jax_cold_cache_")
    jax.monitoring.register_event_duration_secs_listener(_on_event)
    _record_programs()
    plan = SMOKE if args.quick else {k: SWEEPS[k] for k in (args.sweeps or ("quick", "standard"))}
    runs = [(name, population, shapes) for name in plan for population in args.population_size
            for shapes in args.shapes]
    rows = []
    for name, population, shapes in runs:
        if len(runs) == 1:
            row = run_sweep(name, *plan[name], population, args.n_jobs, shapes,
                            args.seeds_per_trial)
        else:  # each sweep in a fresh process: no program compiled by an earlier one
            row = _sweep_in_subprocess(name, population, shapes, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine_info(), "sweeps": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
