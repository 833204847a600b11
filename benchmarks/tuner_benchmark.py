"""The tuner benchmark: on scenarios the defaults were not chosen on, does the default strategy
find a configuration that beats the defaults on fresh seeds, and at what wall time?

Per scenario, at one budget (trials x env steps per run, or --flop-budget), through the
tuner's own command line (`bb_jax.cli.tune_main`, every study validated against the defaults
on the same fresh seeds, paired):
  - the default strategy (TPE, the incumbent as trial 0, the incumbent-referenced pruner);
  - each other sampler (random search, CMA-ES, GP where its package is installed) at the same
    trials and run length;
  - where the default strategy recommends nothing, the same with --rerun-factor (4) x trials.
Rows give the best tuning value beside validated figures (the best of many noisy values is
biased upwards), each sampler's best validated pick minus the default strategy's (paired),
and wall times.

    python benchmarks/tuner_benchmark.py                       # 6 scenarios, 32 x 200k
    python benchmarks/tuner_benchmark.py --quick --out /tmp/t.json   # smoke (test suite)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from tuner_runs import add_study_args, common_args, paired_pick, run_benchmark, run_study

from bb_jax.cli.common import UsageError, parse_scenarios

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "tuner_benchmark_cpu.json"
# six of the twelve, none of easy/default/hard (the defaults were chosen on those)
SCENARIOS = ("chain_reaction", "greedy_neighbor", "sparse_heroics", "rest_trap",
             "deceptive_calm", "mixed_motivation")
EXCLUDED = ("easy", "default", "hard")
# sampler -> the package it needs beyond Optuna (as bb_jax.tuning.samplers registers them)
OTHER_SAMPLERS = {"random": None, "cmaes": "cmaes", "gp": "torch"}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 scenario, 3 trials x 8,192 steps, 2 validation seeds, "
                         "random search beside the default")
    ap.add_argument("--scenario", default=",".join(SCENARIOS))
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200_000, help="env steps per training run")
    ap.add_argument("--flop-budget", type=float, default=None,
                    help="training FLOPs per run instead of --steps")
    ap.add_argument("--samplers", default="random,cmaes,gp",
                    help="the other samplers, at the same budget (those not installed are "
                         "recorded as skipped)")
    ap.add_argument("--rerun-factor", type=int, default=4,
                    help="trials x this where the default strategy recommends nothing (0: no "
                         "rerun)")
    add_study_args(ap, DEFAULT_OUT)
    return ap


def check_args(args) -> list[str]:
    """The scenarios (raises UsageError on a bad one); --quick's sizes applied."""
    if args.quick:
        args.scenario, args.trials, args.steps, args.eval_interval = "chain_reaction", 3, 8192, 4096
        args.samplers, args.top_k, args.validate_seeds, args.eval_episodes = "random", 1, 2, 16
        args.flop_budget = None
    scenarios = list(parse_scenarios(args.scenario))
    used = sorted(set(scenarios) & set(EXCLUDED))
    if used:
        raise UsageError(f"--scenario: {', '.join(used)} excluded (the defaults were chosen "
                         f"there); choose from the other nine")
    unknown = sorted(set(args.samplers.split(",")) - set(OTHER_SAMPLERS))
    if unknown:
        raise UsageError(f"--samplers: unknown {', '.join(unknown)}; valid: "
                         f"{', '.join(OTHER_SAMPLERS)}")
    if args.trials < 1 or args.rerun_factor < 0:
        raise UsageError("--trials must be >= 1 and --rerun-factor >= 0")
    return scenarios


def scenario_rows(scenario: str, args, workdir: Path, log) -> dict:
    """The default strategy, the other samplers and (if it found nothing) its rerun."""
    base = ["--scenario", scenario, *common_args(args)]
    default = run_study(f"{scenario}_default", [*base, "--n-trials", str(args.trials)],
                        workdir, log)
    out = {"scenario": scenario, "default": default, "samplers": {}, "rerun": None}
    for sampler in filter(None, args.samplers.split(",")):
        package = OTHER_SAMPLERS[sampler]
        if package and importlib.util.find_spec(package) is None:
            out["samplers"][sampler] = {"skipped": f"needs {package}"}
            continue
        row = run_study(f"{scenario}_{sampler}", [*base, "--n-trials", str(args.trials),
                                                  "--sampler", sampler], workdir, log)
        out["samplers"][sampler] = {**row, "minus_default": paired_pick(row, default)}
    if args.rerun_factor and not default.get("recommended") and not default.get("error"):
        trials = args.trials * args.rerun_factor
        out["rerun"] = run_study(f"{scenario}_default_x{args.rerun_factor}",
                                 [*base, "--n-trials", str(trials)], workdir, log)
    return out


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        scenarios = check_args(args)
    except UsageError as err:
        print(f"tuner_benchmark.py: error: {err}", file=sys.stderr)
        return 2
    return run_benchmark("tuner_benchmark", args, "scenarios", scenarios, scenario_rows)


if __name__ == "__main__":
    sys.exit(main())
