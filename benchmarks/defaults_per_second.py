"""The default configuration judged per second of training: a compute-budget study over easy,
default and hard with the project's own tuner, then its top-k, the defaults and the previous
defaults (`previous_defaults`) trained again on the same fresh seeds at the same budget,
paired.

The budget is --seconds of training per run (one seed on one scenario), converted once into
FLOPs by the tuner's calibration of the default configuration at the start of the study
(`--time-budget`: the FLOPs the whole device gives the defaults in that time), so every run
of the study and of its validation spends the same FLOPs.

    python benchmarks/defaults_per_second.py                            # documented run
    python benchmarks/defaults_per_second.py --quick --out /tmp/d.json  # smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import optuna

from bb_jax import devices
from bb_jax.agent.config import PPOConfig
from bb_jax.machine import machine_info
from bb_jax.runtime.cohorts import CohortTrainer
from bb_jax.runtime.cost import CompileClock
from bb_jax.tuning.outputs import finite_json
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.space import LARGEST_BATCH, control_params, member_spec, validation_seeds
from bb_jax.tuning.tuner import Tuner
from bb_jax.tuning.validation import Candidate, top_candidates, validate

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "defaults_per_second_cpu.json"
PREVIOUS = "previous_defaults"


def previous_defaults() -> dict:
    """The defaults before this study's pick replaced them: hidden 128, batch 1024 with the
    hyperparameters a 200k-step study had chosen at equal env steps (docs/PPO.md)."""
    return {"hidden_size": 128, "learning_rate": 8.5e-4, "batch_size": 1024, "num_epochs": 6,
            "clip_epsilon": 0.12, "entropy_coef": 0.007, "value_coef": 0.5, "gamma": 0.995,
            "gae_lambda": 0.92}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (tiny)")
    ap.add_argument("--scenario", default="easy,default,hard", help="(default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="training seconds per run, as FLOPs (default: %(default)s)")
    ap.add_argument("--trials", type=int, default=20, help="(default: %(default)s)")
    ap.add_argument("--seeds-per-trial", type=int, default=2, help="(default: %(default)s)")
    ap.add_argument("--top-k", type=int, default=2, help="(default: %(default)s)")
    ap.add_argument("--validate-seeds", type=int, default=8, help="(default: %(default)s)")
    ap.add_argument("--eval-interval", type=int, default=8192, help="(default: %(default)s)")
    ap.add_argument("--eval-episodes", type=int, default=100, help="(default: %(default)s)")
    ap.add_argument("--seed", type=int, default=45, help="(default: %(default)s)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="(default: %(default)s)")
    args = ap.parse_args(argv)
    devices.use_host_devices()  # every core a device, as the command lines do
    if args.quick:
        args.scenario, args.seconds, args.trials, args.top_k = "easy", 0.5, 2, 1
        args.validate_seeds, args.eval_episodes, args.eval_interval = 2, 8, 2048
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scenarios = args.scenario.split(",")
    settings = TuneSettings(
        scenarios=tuple(scenarios), scenario_arg=args.scenario, n_trials=args.trials,
        seed=args.seed, eval_interval=args.eval_interval, seeds_per_trial=args.seeds_per_trial,
        time_budget=args.seconds, study_name="defaults_per_second", population_size=1,
        enqueue=(control_params(), previous_defaults()) if not args.quick else ())
    clock, started = CompileClock(), time.perf_counter()
    tuner = Tuner(settings, log=lambda line: print(line, flush=True))
    study = tuner.run()
    tune_s, compile_s = time.perf_counter() - started, clock.seconds()
    budget = settings.flop_budget
    candidates = top_candidates(study, args.top_k)
    if all(c.params != previous_defaults() for c in candidates):
        candidates.append(Candidate(PREVIOUS, previous_defaults(), None))
    trainer = CohortTrainer(
        PPOConfig(scenario=scenarios[0], total_steps=None, batch_size=LARGEST_BATCH),
        num_steps=None, flop_budget=budget, eval_interval=args.eval_interval,
        eval_episodes=args.eval_episodes)
    seeds = validation_seeds(args.seed, args.validate_seeds)
    started = time.perf_counter()
    outcome = validate(candidates, member_spec, trainer, scenarios, seeds)
    trials = [{"trial": t.number, "state": t.state.name, "value": t.value, "params": t.params,
               **{k: t.user_attrs.get(k) for k in ("tflops_per_run", "env_steps",
                                                   "train_seconds", "compile_seconds")}}
              for t in study.get_trials(deepcopy=False)]
    results = {"benchmark": "defaults_per_second", "quick": args.quick,
               "machine": machine_info(),
               "settings": {k: v for k, v in vars(args).items() if k != "out"},
               "calibration": study.user_attrs.get("calibration"), "flop_budget": budget,
               "tune_s": tune_s, "compile_s": compile_s, "trials": trials,
               "validation": {**outcome, "validate_s": time.perf_counter() - started}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(finite_json(results), indent=2))
    for row in outcome["rows"]:
        vs = row.get("vs_control") or {}
        print(f"{row['trial']!s:>18} {row['mean']:8.1f} +/- {row['ci95']:5.1f}  "
              f"{row.get('num_steps', 0):>8,} env steps  vs defaults "
              f"{vs.get('mean', 0.0):+6.1f} +/- {vs.get('ci95', 0.0):.1f}"
              f"{' *' if vs.get('significant') else ''}")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
