"""Ablation of the learner's choices (docs/PPO.md): time input on/off x shared/separate critic,
and advantage normalisation per minibatch instead of per batch.

Each variant trains every scenario x seed as ONE population (one compile per variant; the
scenario is a traced row per member), default hyperparameters, the same seeds and evaluation
episodes in every variant. Per variant and scenario: the final return (mean of the last 100
training episodes) and the mean return of fresh sampled episodes, each with its 95% CI over
seeds, and the paired difference to the original learner (variant "default": time input off,
shared critic) on the same seeds; also pooled over all scenario x seed pairs.

    python benchmarks/learner_ablation.py            # 3 scenarios x 5 seeds x 200k steps
    python benchmarks/learner_ablation.py --quick    # tiny smoke run (not a result)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from bb_jax import devices
from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig, stack_hyperparams
from bb_jax.game.scenarios import get_scenario, stack_scenarios
from bb_jax.machine import machine_info
from bb_jax.runtime.driver import plan_chunks
from bb_jax.runtime.population import Population
from bb_jax.stats import mean_ci95, paired_difference

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "learner_ablation_cpu.json"
QUICK_OUT = Path(tempfile.gettempdir()) / "learner_ablation_cpu_quick.json"  # not a result
VARIANTS = {  # name -> (time_input, critic, adv_norm); the first is the original learner
    "default": (False, "shared", "batch"),
    "time_input": (True, "shared", "batch"),
    "separate_critic": (False, "separate", "batch"),
    "time_input+separate_critic": (True, "separate", "batch"),
    "minibatch_adv_norm": (False, "shared", "minibatch"),
}
EVAL_KEY = 20_261_129  # the same fresh episodes for every variant


def train_variant(config: PPOConfig, scenarios: list[str], seeds: list[int],
                  eval_episodes: int) -> dict:
    """One population of len(scenarios) x len(seeds) members (scenario-major).
    Returns final and evaluation returns float[scenarios, seeds] and the wall time."""
    rows = [(name, seed) for name in scenarios for seed in seeds]
    start = time.perf_counter()
    population = Population(
        config, stack_hyperparams([DEFAULT_HYPERPARAMS] * len(rows)),
        np.stack([jax.random.PRNGKey(seed) for _, seed in rows]),
        stack_scenarios([get_scenario(name, config.num_opponents + 1) for name, _ in rows]))
    for length in plan_chunks(config.num_updates, 10):
        metrics = population.run(length)
    final = np.asarray(metrics["mean_return"][:, -1])
    evaluation = population.evaluate(jax.random.PRNGKey(EVAL_KEY), eval_episodes).mean(axis=1)
    shape = (len(scenarios), len(seeds))
    return {"final": final.reshape(shape), "eval": evaluation.reshape(shape),
            "finite": bool(np.all(np.asarray(metrics["finite"]))),
            "wall_s": time.perf_counter() - start}


def summarise(results: dict, scenarios: list[str]) -> dict:
    """Per variant and scenario (and pooled): means with 95% CIs, paired differences."""
    base = results["default"]
    out = {}
    for name, res in results.items():
        rows = {}
        for i, scenario in enumerate([*scenarios, "pooled"]):
            pick = (lambda x: x.ravel()) if scenario == "pooled" else (lambda x, i=i: x[i])
            row = {}
            for figure in ("final", "eval"):
                mean, ci = mean_ci95(pick(res[figure]))
                row[figure] = {"mean": mean, "ci95": ci, "per_seed": pick(res[figure]).tolist()}
                if name != "default":
                    row[figure]["vs_default"] = paired_difference(
                        pick(res[figure]), pick(base[figure])).as_dict()
            rows[scenario] = row
        out[name] = {"scenarios": rows, "finite": res["finite"], "wall_s": res["wall_s"]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="easy,default,hard",
                   help="comma-separated scenarios (default: easy,default,hard)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--num-steps", type=int, default=200_000, help="env steps per member")
    p.add_argument("--eval-episodes", type=int, default=200)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--quick", action="store_true", help="tiny smoke run (written to /tmp)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    args.scenarios = [name.strip() for name in args.scenario.split(",")]
    devices.use_host_devices()
    if "default" not in args.variants:
        p.error("--variants must include 'default' (the paired comparisons' reference)")
    base = PPOConfig(total_steps=args.num_steps)
    if args.quick:
        base = PPOConfig(hidden_size=16, batch_size=256, total_steps=512)
        args.seeds, args.eval_episodes = args.seeds[:2], 8
    out = Path(args.out or (QUICK_OUT if args.quick else DEFAULT_OUT))
    load_before = list(os.getloadavg())
    results = {}
    for name in args.variants:  # the file is rewritten after each variant
        time_input, critic, adv_norm = VARIANTS[name]
        config = base.replace(time_input=time_input, critic=critic, adv_norm=adv_norm)
        results[name] = train_variant(config, args.scenarios, args.seeds, args.eval_episodes)
        print(f"{name}: {results[name]['wall_s']:.0f} s, final return by scenario "
              f"{np.round(results[name]['final'].mean(axis=1), 1).tolist()}", flush=True)
        write(out, report(args, base, load_before, results))
    print(f"wrote {out}")
    return 0


def report(args, base: PPOConfig, load_before: list[float], results: dict) -> dict:
    return {
        "benchmark": "learner_ablation",
        "machine": machine_info(),
        "load_average_before": load_before,
        "settings": {"scenarios": args.scenarios, "seeds": args.seeds,
                     "env_steps_per_member": base.num_updates * base.batch_size,
                     "eval_episodes": args.eval_episodes, "hidden_size": base.hidden_size,
                     "batch_size": base.batch_size, "hyperparameters": DEFAULT_HYPERPARAMS,
                     "variants": {k: dict(zip(("time_input", "critic", "adv_norm"), VARIANTS[k]))
                                  for k in args.variants}},
        "variants": summarise(results, args.scenarios),
    }


def write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
