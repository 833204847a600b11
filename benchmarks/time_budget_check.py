"""Does `--time-budget S` buy S seconds? A time-budget study's calibration against the training
seconds its trials then spent.

`--time-budget S` converts S seconds of one run's share of the device into FLOPs once, by
timing the default configuration (as many copies as a trial has runs) when the study is
created. Each trial records the seconds its runs trained (`train_seconds`: their shares of
their programs' wall time, compiles excluded). This runs a small study (the default shape held,
so every trial is one program; three scenarios, so a trial has 2 x 3 = 6 runs) and reports,
per trial, its training seconds over S x its runs: 1.0 means the budget bought what it said.
Other shapes and epoch counts spend the same FLOPs in other times (FLOPs are not seconds
across shapes), which the `flops_per_env_step` and `env_steps_per_second` columns show.

    python benchmarks/time_budget_check.py                         # documented run
    python benchmarks/time_budget_check.py --quick --out /tmp/t.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from bb_jax import devices

devices.use_host_devices()  # every core a device, as the command lines do

import optuna  # noqa: E402

from bb_jax.machine import machine_info  # noqa: E402
from bb_jax.runtime.cost import CompileClock  # noqa: E402
from bb_jax.tuning.settings import TuneSettings  # noqa: E402
from bb_jax.tuning.space import control_params  # noqa: E402
from bb_jax.tuning.tuner import Tuner  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "time_budget_check_cpu.json"
ATTRS = ("train_seconds", "env_steps", "tflops_per_run", "flops_per_env_step",
         "env_steps_per_second", "compile_seconds")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (tiny)")
    ap.add_argument("--scenario", default="easy,default,hard", help="(default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=3.0, help="(default: %(default)s)")
    ap.add_argument("--trials", type=int, default=6, help="(default: %(default)s)")
    ap.add_argument("--seed", type=int, default=47, help="(default: %(default)s)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="(default: %(default)s)")
    args = ap.parse_args(argv)
    if args.quick:
        args.scenario, args.seconds, args.trials = "easy", 0.3, 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scenarios = tuple(args.scenario.split(","))
    control = control_params()
    settings = TuneSettings(
        scenarios=scenarios, scenario_arg=args.scenario, n_trials=args.trials, seed=args.seed,
        time_budget=args.seconds, study_name="time_budget_check", population_size=1,
        fixed={"hidden_size": control["hidden_size"], "batch_size": control["batch_size"]},
        eval_interval=4096)
    clock, started = CompileClock(), time.perf_counter()
    study = Tuner(settings, log=lambda line: print(line, flush=True)).run()
    runs = settings.seeds_per_trial * len(scenarios)
    trials = []
    for t in study.get_trials(deepcopy=False):
        row = {"trial": t.number, "state": t.state.name,
               "num_epochs": t.params.get("num_epochs"),
               **{k: t.user_attrs.get(k) for k in ATTRS}}
        if row["train_seconds"]:
            row["seconds_over_budget"] = row["train_seconds"] / (args.seconds * runs)
        trials.append(row)
        print(f"trial {t.number:>2} {t.state.name:>8}  {row['num_epochs']} epochs  "
              f"{row.get('seconds_over_budget', float('nan')):.2f} x the budget", flush=True)
    ratios = [t["seconds_over_budget"] for t in trials if "seconds_over_budget" in t]
    report = {"benchmark": "time_budget_check", "quick": args.quick, "machine": machine_info(),
              "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "runs_per_trial": runs, "calibration": study.user_attrs.get("calibration"),
              "flop_budget": study.user_attrs.get("flop_budget"), "trials": trials,
              "median_seconds_over_budget": statistics.median(ratios) if ratios else None,
              "wall_s": time.perf_counter() - started, "compile_s": clock.seconds()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"median training seconds over the budget: {report['median_seconds_over_budget']}")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
