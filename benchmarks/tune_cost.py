"""Compute-aware tuning: does comparing configurations at equal compute find better ones?

Per scenario, four tuners run the same number of trials with the same seeds per trial and
pruner, then their picks and the default configuration (the control) train on the same fresh
seeds for the same FLOP budget each (equal compute), paired:

  step_budget     every trial trains --steps env steps: what the default configuration trains
                  in the FLOP budget (the tuner before compute-aware tuning); pick: best value
  compute_budget  every trial trains until it spent the FLOP budget (TPE); pick: best value
  random_budget   the same with random search: does TPE earn its keep at this many trials?
  multi_objective return and TFLOPs per run at --steps env steps (multi-objective TPE); pick:
                  the best return on its Pareto front among members no dearer per run than
                  the control (the cheapest member when none is)

Per strategy: tuning wall time, compile seconds, env steps, its pick's tuning value and
validated mean, and the paired difference of every pick to the control and of the
compute-budget pick to the step-budget pick. A Pareto-front figure of the multi-objective
studies is written beside the JSON.

    python benchmarks/tune_cost.py                                 # documented run
    python benchmarks/tune_cost.py --quick --out /tmp/c.json       # smoke (test suite)
    python benchmarks/tune_cost.py --revalidate --validate-seeds 24 --validate-seed-start 42600
                                   # the stored picks again on 24 other fresh seeds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig
from bb_jax.machine import machine_info
from bb_jax.runtime.cohorts import CohortTrainer
from bb_jax.runtime.cost import CompileClock, flops_per_env_step
from bb_jax.stats import paired_difference
from bb_jax.tuning.outputs import finite_json
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.space import (
    CONTROL,
    LARGEST_BATCH,
    control_params,
    member_spec,
    validation_seeds,
)
from bb_jax.tuning.tuner import Tuner
from bb_jax.tuning.validation import Candidate, validate

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "tune_cost_cpu.json"
STRATEGIES = {
    "step_budget": {"budget": False, "sampler": "tpe", "objectives": ("return",)},
    "compute_budget": {"budget": True, "sampler": "tpe", "objectives": ("return",)},
    "random_budget": {"budget": True, "sampler": "random", "objectives": ("return",)},
    "multi_objective": {"budget": False, "sampler": "tpe", "objectives": ("return", "cost")},
}
# the smoke run's trials: the defaults' shape at other epochs, so it compiles one shape
QUICK_PARAMS = ({"num_epochs": 3}, {"num_epochs": 4})


def control_steps(flop_budget: float) -> int:
    """Env steps the default configuration trains in `flop_budget` FLOPs (whole updates)."""
    config = PPOConfig()
    per_update = flops_per_env_step(config, DEFAULT_HYPERPARAMS["num_epochs"]) \
        * config.batch_size
    return max(1, int(flop_budget // per_update)) * config.batch_size


def pick(study: optuna.Study, multi: bool, control_tflops: float):
    """The trial a strategy puts forward (see the module docstring), or None."""
    if multi:
        front = list(study.best_trials)
        affordable = [t for t in front if t.values[1] <= control_tflops * 1.001]
        if affordable:
            return max(affordable, key=lambda t: t.values[0])
        return min(front, key=lambda t: t.values[1]) if front else None
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda t: t.value) if complete else None


def tune(scenario: str, name: str, spec: dict, args, steps: int) -> dict:
    settings = TuneSettings(
        scenarios=(scenario,), scenario_arg=scenario, num_steps=steps, n_trials=args.trials,
        seed=args.seed, eval_interval=args.eval_interval, population_size=1,
        seeds_per_trial=args.seeds_per_trial, pruner=args.pruner,
        study_name=f"cost_{scenario}_{name}", sampler=spec["sampler"],
        flop_budget=args.flop_budget if spec["budget"] else None,
        objectives=spec["objectives"],
        enqueue=tuple({**control_params(), **QUICK_PARAMS[i % len(QUICK_PARAMS)],
                       "learning_rate": 3e-4 * (i + 1)} for i in range(args.trials))
        if args.quick else (),
    )
    clock = CompileClock()
    started = time.perf_counter()
    tuner = Tuner(settings, log=lambda line: None)
    study = tuner.run()
    trials = study.get_trials(deepcopy=False)
    row = {"strategy": name, "scenario": scenario, "sampler": spec["sampler"],
           "length": (f"{args.flop_budget:g} FLOPs" if spec["budget"] else f"{steps} steps"),
           "objectives": list(spec["objectives"]), "n_trials": len(trials),
           "n_complete": sum(t.state == TrialState.COMPLETE for t in trials),
           "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
           "env_steps": tuner.env_steps, "tune_s": time.perf_counter() - started,
           "compile_s": clock.seconds(),
           "train_s": sum(t.user_attrs.get("train_seconds", 0.0) for t in trials)}
    if len(spec["objectives"]) > 1:
        row["front"] = [{"trial": t.number, "return": t.values[0], "tflops_per_run": t.values[1],
                         "params": t.params} for t in study.best_trials]
        row["trials"] = [{"trial": t.number, "return": t.values[0], "tflops_per_run": t.values[1]}
                         for t in trials if t.state == TrialState.COMPLETE]
    control_tflops = control_steps(args.flop_budget) * flops_per_env_step(
        PPOConfig(), DEFAULT_HYPERPARAMS["num_epochs"]) / 1e12
    chosen = pick(study, len(spec["objectives"]) > 1, control_tflops)
    if chosen is not None:
        row["pick"] = {"trial": chosen.number, "tuning_value": chosen.values[0],
                       "tflops_per_run": chosen.user_attrs.get("tflops_per_run"),
                       "env_steps_per_run": chosen.user_attrs.get("env_steps", 0)
                       // (args.seeds_per_trial), "params": chosen.params}
    return row


def validate_picks(scenario: str, rows: list[dict], args) -> dict:
    """Every strategy's pick and the control on the same fresh seeds at the FLOP budget."""
    candidates, same_as = [Candidate(CONTROL, control_params(), None)], {}
    for r in rows:
        if "pick" not in r:
            continue
        twin = next((c.trial for c in candidates if c.params == r["pick"]["params"]), None)
        if twin is None:
            candidates.append(Candidate(r["strategy"], r["pick"]["params"],
                                        r["pick"]["tuning_value"]))
        else:  # the same configuration trains once; its row stands for both strategies
            same_as[r["strategy"]] = twin
    trainer = CohortTrainer(
        PPOConfig(scenario=scenario, total_steps=None, batch_size=LARGEST_BATCH),
        num_steps=None, flop_budget=args.flop_budget, eval_interval=args.eval_interval,
        eval_episodes=args.eval_episodes)
    seeds = validation_seeds(args.seed, args.validate_seeds, args.validate_seed_start)
    started = time.perf_counter()
    outcome = validate(candidates, member_spec, trainer, [scenario], seeds)
    by_name = {r["trial"]: r for r in outcome["rows"]}
    by_name.update({name: by_name[twin] for name, twin in same_as.items()})
    control = by_name[CONTROL]["per_seed"]
    comparisons = {name: paired_difference(row["per_seed"], control).as_dict()
                   for name, row in by_name.items() if name != CONTROL}
    if "compute_budget" in by_name and "step_budget" in by_name:
        comparisons["compute_budget_vs_step_budget"] = paired_difference(
            by_name["compute_budget"]["per_seed"], by_name["step_budget"]["per_seed"]).as_dict()
    return {"seeds": seeds, "validate_s": time.perf_counter() - started,
            "rows": outcome["rows"], "same_pick": same_as, "vs_control": comparisons}


def verdict(scenario_result: dict) -> bool:
    """The issue's test: the compute-budget pick beats the step-budget pick or the control
    (paired 95% CI wholly above zero)."""
    vs = scenario_result["validation"]["vs_control"]
    return any(vs.get(k, {}).get("significant") and vs[k]["mean"] > 0
               for k in ("compute_budget", "compute_budget_vs_step_budget"))


def revalidate(out: Path, args) -> int:
    """Validate the stored picks again on another block of fresh seeds (a larger one, say):
    the picks and the first validation stay as they were; the new one is stored beside them
    under "revalidations", with the same verdict."""
    results = json.loads(out.read_text())
    seeds = validation_seeds(args.seed, args.validate_seeds, args.validate_seed_start)
    used = {s for e in results["scenarios"] for s in e["validation"]["seeds"]}
    used |= {s for r in results.get("revalidations", []) for s in r["seeds"]}
    if used & set(seeds):
        print(f"error: seeds {sorted(used & set(seeds))} were used by an earlier validation; "
              f"choose another --validate-seed-start", file=sys.stderr)
        return 2
    args.flop_budget, args.eval_interval = (results["settings"][k]
                                            for k in ("flop_budget", "eval_interval"))
    args.eval_episodes = results["settings"]["eval_episodes"]
    entry = {"seeds": seeds, "machine": machine_info(), "scenarios": []}
    for stored in results["scenarios"]:
        rows = [stored[name] for name in STRATEGIES if name in stored]
        again = {"scenario": stored["scenario"],
                 "validation": validate_picks(stored["scenario"], rows, args)}
        again["compute_aware_wins"] = verdict(again)
        report(stored["scenario"], again["validation"])
        entry["scenarios"].append(again)
    entry["compute_aware_wins"] = sum(e["compute_aware_wins"] for e in entry["scenarios"])
    results.setdefault("revalidations", []).append(entry)
    out.write_text(json.dumps(finite_json(results), indent=2))
    print(f"on {len(seeds)} new fresh seeds the compute-aware pick beats the step-budget pick "
          f"or the defaults on {entry['compute_aware_wins']} of {len(entry['scenarios'])} "
          f"scenarios")
    return 0


def report(scenario: str, validation: dict) -> None:
    for name, diff in validation["vs_control"].items():
        print(f"{scenario:>8} {name:<32} {diff['mean']:+7.1f} +/- {diff['ci95']:.1f}"
              f"{' *' if diff['significant'] else ''}", flush=True)


def plot_fronts(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in results["scenarios"] if s.get("multi_objective")]
    if not scenarios:
        return
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.5 * len(scenarios), 3.6),
                             squeeze=False)
    for ax, entry in zip(axes[0], scenarios):
        mo = entry["multi_objective"]
        ax.scatter([t["tflops_per_run"] for t in mo["trials"]],
                   [t["return"] for t in mo["trials"]], c="0.6", s=18, label="trials")
        front = sorted(mo["front"], key=lambda t: t["tflops_per_run"])
        ax.plot([t["tflops_per_run"] for t in front], [t["return"] for t in front], "o-",
                c="C3", label="Pareto front")
        ax.axvline(entry["control_tflops"], ls="--", c="C0", label="defaults' cost")
        ax.set_xscale("log")
        ax.set(title=entry["scenario"], xlabel="training TFLOPs per run",
               ylabel="tuning return (mean over seeds)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (one scenario, tiny)")
    ap.add_argument("--scenario", default="default,hard,easy",
                    help="comma-separated scenarios (default: default,hard,easy)")
    ap.add_argument("--flop-budget", type=float, default=1e11,
                    help="FLOPs per training run (default: %(default)g)")
    ap.add_argument("--trials", type=int, default=20, help="trials per strategy (default: "
                    "%(default)s)")
    ap.add_argument("--seeds-per-trial", type=int, default=2)
    ap.add_argument("--pruner", default="median")
    ap.add_argument("--eval-interval", type=int, default=4096)
    ap.add_argument("--validate-seeds", type=int, default=6)
    ap.add_argument("--eval-episodes", type=int, default=200)
    ap.add_argument("--validate-seed-start", type=int, default=None,
                    help="first fresh seed (default: seed x 1000 + 500)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--revalidate", action="store_true",
                    help="tune nothing: validate the picks already in --out again on the "
                         "fresh seeds given, kept beside the first validation")
    args = ap.parse_args(argv)
    if args.quick:
        args.scenario, args.flop_budget, args.trials = "easy", 1e10, 2
        args.validate_seeds, args.eval_episodes, args.eval_interval = 2, 16, 2048
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.revalidate:
        return revalidate(Path(args.out), args)
    steps = control_steps(args.flop_budget)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"benchmark": "tune_cost", "quick": args.quick, "machine": machine_info(),
               "settings": {k: v for k, v in vars(args).items() if k != "out"},
               "step_budget_steps": steps, "scenarios": []}
    for scenario in args.scenario.split(","):
        entry = {"scenario": scenario, "control_tflops": steps * flops_per_env_step(
            PPOConfig(), DEFAULT_HYPERPARAMS["num_epochs"]) / 1e12}
        rows = []
        for name, spec in STRATEGIES.items():
            row = tune(scenario, name, spec, args, steps)
            rows.append(row)
            entry[name] = row
            print(f"{scenario:>8} {name:<16} {row['n_complete']:>2} complete "
                  f"{row['n_pruned']:>2} pruned | pick {row.get('pick', {}).get('tuning_value')}"
                  f" | {row['tune_s']:.0f} s ({row['compile_s']:.0f} s compiling)", flush=True)
        entry["validation"] = validate_picks(scenario, rows, args)
        entry["compute_aware_wins"] = verdict(entry)
        report(scenario, entry["validation"])
        results["scenarios"].append(entry)
        results["compute_aware_wins"] = sum(e["compute_aware_wins"]
                                            for e in results["scenarios"])
        out.write_text(json.dumps(finite_json(results), indent=2))  # partial results kept
    plot_fronts(results, out.with_name(out.stem + "_pareto.png"))
    print(f"compute-aware pick beats the step-budget pick or the defaults on "
          f"{results['compute_aware_wins']} of {len(results['scenarios'])} scenarios")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
