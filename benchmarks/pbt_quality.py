"""Population-based training against TPE and random search at equal env steps, each pick
validated from scratch on the same fresh seeds as the default configuration (paired).

Per scenario, at the default network shape (one compiled training program for everything):

  pbt     --members members x --steps env steps in one compiled population with an exploit
          step every --interval env steps (`bb_jax.tuning.pbt_train.run_pbt`, the CLI's
          rule); pick: the best final member's schedule, replayed from update 0
  tpe     --members trials x --steps env steps, one seed each, TPE with the evidence-median
          pruner: at most PBT's env steps; pick: the best trial
  random  the same with random search

Validation: every pick and the defaults train --steps env steps on --validate-seeds fresh
seeds (none a tuning seed), scored on fresh episodes; differences paired by seed, 95% CI.

    python benchmarks/pbt_quality.py                                # documented run
    python benchmarks/pbt_quality.py --quick --out /tmp/p.json      # smoke (test suite)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np
import optuna
from optuna.trial import TrialState

from bb_jax.agent.config import DEFAULT_HYPERPARAMS, HYPERPARAM_NAMES, PPOConfig, stack_hyperparams
from bb_jax.machine import machine_info
from bb_jax.runtime.cost import CompileClock
from bb_jax.runtime.population import Population
from bb_jax.runtime.runs import train_seeds
from bb_jax.runtime.schedule import from_env_steps
from bb_jax.stats import mean_ci95, paired_difference
from bb_jax.tuning.outputs import finite_json
from bb_jax.tuning.pbt import PBTRule
from bb_jax.tuning.pbt_train import run_pbt
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.space import search_space, tuning_seeds, validation_seeds
from bb_jax.tuning.tuner import Tuner

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "pbt_quality_cpu.json"
SHAPE = {"hidden_size": PPOConfig.hidden_size, "batch_size": PPOConfig.batch_size}


def tune_pbt(scenario: str, args) -> dict:
    config = PPOConfig(scenario=scenario, total_steps=args.steps)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=args.seed))
    trials = [study.ask(search_space(SHAPE)) for _ in range(args.members)]
    rows = [{**DEFAULT_HYPERPARAMS, **{k: v for k, v in t.params.items()
                                       if k in HYPERPARAM_NAMES}} for t in trials]
    seeds = tuning_seeds(args.seed, args.members)
    keys = jax.numpy.stack([jax.random.PRNGKey(seed) for seed in seeds])
    clock, started = CompileClock(), time.perf_counter()
    population = Population(config, stack_hyperparams(rows), keys)
    interval = args.interval // config.batch_size
    run = run_pbt(population, seeds, rows, args.steps // args.interval, interval, PBTRule(),
                  np.random.default_rng(args.seed), args.eval_episodes)
    best = run.lineages[run.best]
    return {"strategy": "pbt", "tune_s": time.perf_counter() - started,
            "compile_s": clock.seconds(), "env_steps": args.members * args.steps,
            "copies": sum(len(lineage.copies) for lineage in run.lineages),
            "pick": {"tuning_value": float(run.final_returns[run.best].mean()),
                     "params": best.history[0][1],
                     "schedule": best.schedule.as_env_steps(config.batch_size)}}


def tune_search(scenario: str, sampler: str, args) -> dict:
    settings = TuneSettings(
        scenarios=(scenario,), scenario_arg=scenario, num_steps=args.steps,
        n_trials=args.members, seed=args.seed, eval_interval=args.interval,
        population_size=args.population, seeds_per_trial=1, pruner="median",
        sampler=sampler, fixed=dict(SHAPE), study_name=f"pbtq_{scenario}_{sampler}")
    clock, started = CompileClock(), time.perf_counter()
    tuner = Tuner(settings, log=lambda line: None)
    study = tuner.run()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value)
    return {"strategy": sampler, "tune_s": time.perf_counter() - started,
            "compile_s": clock.seconds(), "env_steps": tuner.env_steps,
            "n_complete": len(complete),
            "pick": {"trial": best.number, "tuning_value": best.value,
                     "params": {k: v for k, v in best.params.items()
                                if k in HYPERPARAM_NAMES}}}


def validate_picks(scenario: str, rows: list[dict], args) -> dict:
    """Each pick and the defaults from scratch on the same fresh seeds: fresh-episode means
    per seed, paired differences to the defaults and PBT's to TPE's."""
    config = PPOConfig(scenario=scenario, total_steps=args.steps)
    chunk = args.interval // config.batch_size
    seeds = validation_seeds(args.seed, args.validate_seeds)
    started = time.perf_counter()
    per_seed = {}
    for name, params, schedule in [("control", dict(DEFAULT_HYPERPARAMS), None)] + [
            (r["strategy"], r["pick"]["params"], r["pick"].get("schedule")) for r in rows]:
        run = train_seeds(config, params, seeds, chunk, args.eval_episodes, progress=None,
                          schedule=None if schedule is None else
                          from_env_steps(schedule, config.batch_size))
        per_seed[name] = run.eval_sampled.mean(axis=1).tolist()
    compared = {name: paired_difference(values, per_seed["control"]).as_dict()
                for name, values in per_seed.items() if name != "control"}
    compared["pbt_vs_tpe"] = paired_difference(per_seed["pbt"], per_seed["tpe"]).as_dict()
    means = {name: dict(zip(("mean", "ci95"), mean_ci95(np.asarray(v)), strict=True))
             for name, v in per_seed.items()}
    return {"seeds": seeds, "validate_s": time.perf_counter() - started,
            "per_seed": per_seed, "means": means, "differences": compared}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (one scenario, tiny)")
    ap.add_argument("--scenario", default="default,hard,easy",
                    help="comma-separated scenarios (default: %(default)s)")
    ap.add_argument("--members", type=int, default=16,
                    help="PBT members, and trials of each search (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=102_400,
                    help="env steps per member or trial (default: %(default)s)")
    ap.add_argument("--interval", type=int, default=10_240,
                    help="env steps between exploit steps, and between the searches' "
                         "reports (default: %(default)s)")
    ap.add_argument("--population", type=int, default=8,
                    help="trials per compiled cohort of the searches (default: %(default)s)")
    ap.add_argument("--validate-seeds", type=int, default=8, help="(default: %(default)s)")
    ap.add_argument("--eval-episodes", type=int, default=100, help="(default: %(default)s)")
    ap.add_argument("--seed", type=int, default=44, help="(default: %(default)s)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="(default: %(default)s)")
    args = ap.parse_args(argv)
    if args.quick:
        args.scenario, args.members, args.steps, args.interval = "easy", 4, 4096, 2048
        args.population, args.validate_seeds, args.eval_episodes = 4, 2, 8
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"benchmark": "pbt_quality", "quick": args.quick, "machine": machine_info(),
               "settings": {k: v for k, v in vars(args).items() if k != "out"},
               "shape": SHAPE, "scenarios": []}
    for scenario in args.scenario.split(","):
        rows = [tune_pbt(scenario, args), tune_search(scenario, "tpe", args),
                tune_search(scenario, "random", args)]
        for row in rows:
            print(f"{scenario:>8} {row['strategy']:<7} {row['env_steps']:>10,} env steps "
                  f"{row['tune_s']:6.0f} s ({row['compile_s']:.0f} s compiling) | pick "
                  f"{row['pick']['tuning_value']:.1f}", flush=True)
        entry = {"scenario": scenario, **{r["strategy"]: r for r in rows},
                 "validation": validate_picks(scenario, rows, args)}
        for name, diff in entry["validation"]["differences"].items():
            print(f"{scenario:>8} {name:<12} {diff['mean']:+7.1f} +/- {diff['ci95']:.1f}"
                  f"{' *' if diff['significant'] else ''}", flush=True)
        results["scenarios"].append(entry)
        results["pbt_beats_defaults"] = sum(
            e["validation"]["differences"]["pbt"]["significant"]
            and e["validation"]["differences"]["pbt"]["mean"] > 0 for e in results["scenarios"])
        out.write_text(json.dumps(finite_json(results), indent=2))  # partial results kept
    print(f"PBT's schedule beats the defaults on {results['pbt_beats_defaults']} of "
          f"{len(results['scenarios'])} scenarios")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
