"""What population-based training's exploit-and-explore steps cost: one population trained
twice from the same keys and hyperparameters, side by side in one process, once in plain
intervals and once with an exploit-and-explore step between two intervals
(`bb_jax.tuning.pbt_train.run_pbt`: fresh evaluation episodes, the decisions, the copy on the
device and the new hyperparameters). Both end with the same final evaluation. Both programs
are compiled before the timed runs (and their compile seconds reported), so the overhead is
(PBT wall - plain wall) / plain wall at equal env steps, over `--repeats` alternating
pairs. That difference of two runs carries the machine's drift between them; the PBT runs
also time their exploit steps from inside (from the end of an interval's training to the
end of the copy), whose share of their own wall time the drift cannot reach. Also checks
that the PBT run compiled no training program of its own.

    python benchmarks/pbt_overhead.py                      # 16 members x 204,800 steps
    python benchmarks/pbt_overhead.py --num-steps 20480 --out /tmp/pbt.json   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from bb_jax import devices
from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig, stack_hyperparams
from bb_jax.machine import machine_info
from bb_jax.runtime.population import Population
from bb_jax.tuning import pbt
from bb_jax.tuning.pbt import PBTRule
from bb_jax.tuning.pbt_train import run_pbt

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "pbt_overhead_cpu.json"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def _population(config: PPOConfig, rows: list[dict], seeds: list[int]) -> Population:
    keys = jax.numpy.stack([jax.random.PRNGKey(seed) for seed in seeds])
    return Population(config, stack_hyperparams(rows), keys)


def _plain(population: Population, intervals: int, interval_updates: int, seeds,
           eval_episodes: int) -> None:
    """The same training without exploit steps, ending with the same final evaluation."""
    for _ in range(intervals):
        metrics = population.run(interval_updates)
    np.asarray(metrics["mean_return"])
    keys = jax.numpy.stack([jax.random.PRNGKey(seed) for seed in seeds])
    population.evaluate(keys, eval_episodes)


def main(argv: list[str] | None = None) -> int:
    devices.use_host_devices()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--population-size", type=int, default=16)
    p.add_argument("--num-steps", type=int, default=204_800,
                   help="env steps per member (10 intervals of 20,480)")
    p.add_argument("--repeats", type=int, default=2, help="plain/PBT pairs, alternating")
    p.add_argument("--interval", type=int, default=20_480,
                   help="env steps per member between exploit steps")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--eval-episodes", type=int, default=32,
                   help="fresh episodes per member at each exploit step")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)

    config = PPOConfig(scenario="default", hidden_size=args.hidden_size,
                       batch_size=args.batch_size, total_steps=args.num_steps)
    interval_updates = max(1, args.interval // config.batch_size)
    intervals = max(2, config.num_updates // interval_updates)
    rng = np.random.default_rng(0)
    drawn = PBTRule(resample_probability=1.0)
    rows = [pbt.explore(dict(DEFAULT_HYPERPARAMS), drawn, rng)
            for _ in range(args.population_size)]
    seeds = list(range(args.population_size))

    compiles = []  # (function name, seconds) of every XLA compile
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, seconds, **kw: compiles.append((kw.get("fun_name"), seconds))
        if event == COMPILE_EVENT else None)
    warm = _population(config, rows, seeds)  # compiles the chunk and the evaluations
    run_pbt(warm, seeds, rows, 2, interval_updates, PBTRule(), np.random.default_rng(1),
            args.eval_episodes)
    warm_compile_s = sum(seconds for _, seconds in compiles)

    load_before = [round(x, 2) for x in os.getloadavg()]
    compiled_before = len(compiles)
    plain_s, pbt_s, exploit_s = [], [], []
    for _ in range(args.repeats):  # alternating, so drift in the machine hits both alike
        population = _population(config, rows, seeds)
        start = time.perf_counter()
        _plain(population, intervals, interval_updates, seeds, args.eval_episodes)
        plain_s.append(time.perf_counter() - start)
        population = _population(config, rows, seeds)
        start = time.perf_counter()
        run = run_pbt(population, seeds, rows, intervals, interval_updates, PBTRule(),
                      np.random.default_rng(2), args.eval_episodes)
        pbt_s.append(time.perf_counter() - start)
        exploit_s.append(run.exploit_seconds)
    steps = intervals * interval_updates * config.batch_size
    ratios = [b / a - 1 for a, b in zip(plain_s, pbt_s, strict=True)]
    result = {
        "benchmark": "pbt_overhead",
        "machine": machine_info(),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "population_size": args.population_size,
        "hidden_size": config.hidden_size,
        "batch_size": config.batch_size,
        "env_steps_per_member": steps,
        "interval_env_steps": interval_updates * config.batch_size,
        "exploit_steps": len(run.exploit_updates),
        "eval_episodes_per_step": args.eval_episodes,
        "compile_s": round(warm_compile_s, 1),
        "plain_wall_s": [round(x, 2) for x in plain_s],
        "pbt_wall_s": [round(x, 2) for x in pbt_s],
        "overhead_fraction_per_pair": [round(x, 4) for x in ratios],
        "overhead_fraction": round(sum(pbt_s) / sum(plain_s) - 1, 4),
        "exploit_s": [round(x, 2) for x in exploit_s],
        "exploit_share_of_pbt_wall": round(sum(exploit_s) / sum(pbt_s), 4),
        "training_programs_compiled_by_the_timed_runs": sum(
            "run_updates" in str(name) for name, _ in compiles[compiled_before:]),
        "copies_in_the_last_pbt_run": sum(len(lineage.copies) for lineage in run.lineages),
        "aggregate_env_steps_per_s": {
            "plain": round(steps * args.population_size * len(plain_s) / sum(plain_s)),
            "pbt": round(steps * args.population_size * len(pbt_s) / sum(pbt_s))},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
