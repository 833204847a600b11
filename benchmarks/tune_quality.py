"""Tuning quality: does a sweep's recommendation hold on fresh seeds, and what does it cost?

For each scenario, three strategies tune at equal env-step budgets (before pruning) and their
top 3 are validated with the control (the default configuration) on the same fresh seeds:

  (a) one seed per trial, twice the trials, the previous median rule (a trial's latest value
      below the median of its peers' latest values, after two reports, with 4 peers);
  (b) K seeds per trial, the evidence median rule (`--pruner median`);
  (c) K seeds per trial, synchronous successive halving (`--pruner sha`).

Per strategy: the recommendation (or none), its validated gain over the control (paired 95%
CI), the best trial's tuning value minus its validated mean (training episodes on tuning
seeds against fresh episodes on fresh seeds, so not a pure selection bias), env steps used
and wall time. Every strategy's value is the interval mean (`bb_jax.runtime.cohorts.Report`).

    python benchmarks/tune_quality.py                       # documented horizon, 3 scenarios
    python benchmarks/tune_quality.py --quick --out /tmp/q.json   # smoke (test suite)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import optuna

from bb_jax.machine import machine_info
from bb_jax.tuning.outputs import finite_json
from bb_jax.tuning.pruners import latest_at
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.tuner import Tuner
from bb_jax.tuning.validation import validate_study

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "tune_quality_cpu.json"
# a fixed shape for the smoke run, so it compiles one program
QUICK_PARAMS = {"hidden_size": 64, "batch_size": 4096, "num_epochs": 3, "clip_epsilon": 0.2,
                "entropy_coef": 0.01, "value_coef": 0.5, "gamma": 0.99, "gae_lambda": 0.95}


class LatestMedianPruner(optuna.pruners.BasePruner):
    """The rule the tuner used before seeds per trial (strategy a): prune when the latest value
    is below the median of the peers' latest values at the same stage."""

    def __init__(self, warmup_steps: int, window: int, min_peers: int = 4):
        self.warmup_steps, self.window, self.min_peers = warmup_steps, window, min_peers

    def prune(self, study: optuna.Study, trial) -> bool:
        step = trial.last_step
        if step is None or step < self.warmup_steps:
            return False
        peers = []
        for other in study.get_trials(deepcopy=False):
            if other.number != trial.number:
                latest = latest_at(other.intermediate_values, step, self.window)
                if latest is not None:
                    peers.append(latest[1])
        if len(peers) < self.min_peers:
            return False
        return trial.intermediate_values[step] < statistics.median(peers)


def strategies(k: int) -> dict[str, dict]:
    return {
        "a_one_seed_latest_median": {"seeds_per_trial": 1, "pruner": "latest_median",
                                     "trials_factor": k},
        "b_k_seeds_evidence_median": {"seeds_per_trial": k, "pruner": "median",
                                      "trials_factor": 1},
        "c_k_seeds_sha": {"seeds_per_trial": k, "pruner": "sha", "trials_factor": 1},
    }


def run_strategy(scenario: str, name: str, spec: dict, args, log) -> dict:
    settings = TuneSettings(
        scenarios=(scenario,), scenario_arg=scenario, num_steps=args.steps,
        n_trials=args.trials * spec["trials_factor"], seed=args.seed,
        eval_interval=args.eval_interval, population_size=args.population_size,
        seeds_per_trial=spec["seeds_per_trial"],
        pruner="median" if spec["pruner"] == "latest_median" else spec["pruner"],
        study_name=f"quality_{scenario}_{name}", eval_episodes=args.eval_episodes,
        enqueue=tuple({**QUICK_PARAMS, "learning_rate": 1e-4 * (i + 1)}
                      for i in range(args.trials * spec["trials_factor"])) if args.quick else (),
    )
    tuner = Tuner(settings, log=lambda line: None)
    if spec["pruner"] == "latest_median":
        tuner.study.pruner = LatestMedianPruner(2 * args.eval_interval,
                                                args.eval_interval + 4096)
    started = time.perf_counter()
    study = tuner.run()
    tune_s = time.perf_counter() - started
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    row = {"strategy": name, "scenario": scenario, **spec, "n_trials": len(trials),
           "n_complete": len(complete),
           "n_pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
           "env_steps": tuner.env_steps, "tune_s": tune_s}
    if not complete:
        return {**row, "recommendation": None}
    best = max(complete, key=lambda t: t.value)
    started = time.perf_counter()
    outcome = validate_study(study, args.top_k, args.validate_seeds, args.steps,
                             args.eval_episodes, log=lambda line: None, tuner_trainer=tuner.trainer)
    rows = {r["trial"]: r for r in outcome["rows"]}
    control = rows["control"]
    chosen = rows.get(outcome["recommended"]) if outcome["recommended"] is not None else None
    row.update(
        validate_s=time.perf_counter() - started,
        validation_seeds=outcome["seeds"],
        control={"mean": control["mean"], "ci95": control["ci95"]},
        best_trial={"number": best.number, "tuning_value": best.value,
                    "validated_mean": rows[best.number]["mean"],
                    "validated_ci95": rows[best.number]["ci95"],
                    "tuning_minus_validated": rows[best.number].get("tuning_minus_validated"),
                    "vs_control": rows[best.number]["vs_control"],
                    "params": best.params},
        recommendation=None if chosen is None else {
            "trial": chosen["trial"], "tuning_value": chosen["tuning_value"],
            "validated_mean": chosen["mean"], "validated_ci95": chosen["ci95"],
            "vs_control": chosen["vs_control"], "params": chosen["params"]},
    )
    rec = row["recommendation"]
    log(f"{scenario:>8} {name:<28} {row['n_complete']:>2} complete {row['n_pruned']:>2} pruned"
        f" | best tuning {best.value:7.1f} validated {rows[best.number]['mean']:7.1f}"
        f" | control {control['mean']:7.1f} | "
        + (f"recommended trial {rec['trial']}: {rec['vs_control']['mean']:+.1f} +/- "
           f"{rec['vs_control']['ci95']:.1f}" if rec else "nothing beat the control")
        + f" | {tune_s:.0f}+{row['validate_s']:.0f} s")
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (one scenario, tiny)")
    ap.add_argument("--scenario", default="default,hard,easy",
                    help="comma-separated scenarios (default: default,hard,easy)")
    ap.add_argument("--steps", type=int, default=100_000, help="env steps per training run")
    ap.add_argument("--trials", type=int, default=16, help="trials of the K-seed strategies")
    ap.add_argument("--seeds-per-trial", type=int, default=2)
    ap.add_argument("--population-size", type=int, default=1)
    ap.add_argument("--eval-interval", type=int, default=10_000)
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--validate-seeds", type=int, default=8)
    ap.add_argument("--eval-episodes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args(argv)
    if args.quick:
        args.scenario, args.steps, args.trials, args.eval_interval = "easy", 8192, 2, 4096
        args.top_k, args.validate_seeds, args.eval_episodes = 1, 2, 16
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = {"benchmark": "tune_quality", "quick": args.quick, "machine": machine_info(),
               "settings": {k: v for k, v in vars(args).items() if k != "out"}, "rows": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for scenario in args.scenario.split(","):
        for name, spec in strategies(args.seeds_per_trial).items():
            results["rows"].append(run_strategy(scenario, name, spec, args,
                                                lambda line: print(line, flush=True)))
            out.write_text(json.dumps(finite_json(results), indent=2))  # partial results kept
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
