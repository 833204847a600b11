"""Env-steps/s of end-to-end PPO training (rollout, GAE, epochs, all in one program).

Every case is a `bb_jax.runtime.population.Population` (population 1 = one run) of the default
scenario with the default hyperparameters, `--batch-size` env steps per update (default:
PPOConfig's). For each case the population's chunk (`updates` updates in one `lax.scan`) runs
through `Population.run`, as the command lines run it: the first call compiles (its compile
seconds from JAX's compile events, reported apart) and warms up, then `--repeats` calls are
timed with `block_until_ready` (min / median / max), each carrying the state on.

Cases: hidden 64 / 128 / 256 / 512 with one member; populations of 1, 2, 4, 8 members at
`--population-hidden` (default: PPOConfig's) (aggregate and per-member env-steps/s, members
per program, devices used). Like the command lines, the process first exposes every usable CPU
core as a host device (`bb_jax.devices`, no flags set by hand), and Population shards (and
pads) its members over them: this is the one-process population scaling a user gets.

    python benchmarks/train_throughput.py            # full run, a few minutes
    python benchmarks/train_throughput.py --quick    # tiny smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from bb_jax import devices
from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig, stack_hyperparams
from bb_jax.machine import machine_info
from bb_jax.runtime.cost import CompileClock
from bb_jax.runtime.population import Population

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "train_throughput_cpu.json"
QUICK_OUT = Path(tempfile.gettempdir()) / "train_throughput_cpu_quick.json"  # not a result
# Rough env-steps/s of one member on a 2-core CPU (docs/PERFORMANCE.md), used only to size
# the timing window (updates per timed call); a population is assumed ~20% faster in total on
# one device, ~90% of one member per device when sharded.
EXPECTED_RATE = {32: 80_000, 64: 60_000, 128: 45_000, 256: 22_000, 512: 8_000}
TARGETS = {"one_member_hidden128_env_steps_per_s": 40_000, "population_2_aggregate_over_one": 1.7}


def updates_per_call(hidden: int, population: int, batch: int, target_s: float) -> int:
    rate = EXPECTED_RATE.get(hidden, 45_000 * (128 / hidden))
    if population > 1:
        rate *= max(1.2, 0.9 * min(population, jax.local_device_count()))
    return max(1, round(target_s * rate / (population * batch)))


def bench_case(hidden: int, population: int, batch: int, repeats: int, target_s: float,
               updates: int | None = None, scenario: str = "default") -> dict:
    """Compile and time one population chunk program."""
    config = PPOConfig(scenario=scenario, hidden_size=hidden, batch_size=batch,
                       total_steps=batch)
    updates = updates or updates_per_call(hidden, population, batch, target_s)
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    pop = Population(config, stack_hyperparams([{}] * population),
                     jnp.stack([jax.random.PRNGKey(i) for i in range(population)]))
    jax.block_until_ready(pop.state)
    init_s = time.perf_counter() - t0

    # the first call compiles (JAX's compile events time it) and warms up; each later call
    # goes through `Population.run`, the path every command line takes
    clock = CompileClock()
    t0 = time.perf_counter()
    jax.block_until_ready(pop.run(updates))
    warmup_s = time.perf_counter() - t0
    compile_s = clock.seconds()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        metrics = jax.block_until_ready(pop.run(updates))
        times.append(time.perf_counter() - t0)
    state = pop.state
    finite = bool(jnp.all(metrics["finite"]))
    steps = population * updates * batch
    rates = sorted(steps / t for t in times)
    return {
        "hidden_size": hidden,
        "population": population,
        "batch_size": batch,
        "num_epochs": DEFAULT_HYPERPARAMS["num_epochs"],
        "updates_per_call": updates,
        "members_per_program": population,
        "padded_members": len(jax.tree.leaves(state.params)[0]) - population,
        "env_steps_per_call": steps,
        "num_devices_used": len(jax.tree.leaves(state.params)[0].sharding.device_set),
        "init_compile_and_run_s": init_s,
        "compile_s": compile_s,
        "warmup_call_s": warmup_s,
        "call_s": {"min": min(times), "median": statistics.median(times), "max": max(times)},
        "env_steps_per_s": {"min": rates[0], "median": statistics.median(rates),
                            "max": rates[-1]},
        "env_steps_per_s_per_member": statistics.median(rates) / population,
        "finite": finite,
        "load_average_before": load_before,
    }


def _line(case: dict) -> str:
    r = case["env_steps_per_s"]
    return (f"hidden {case['hidden_size']:>3}  P {case['population']:>3}  "
            f"devices {case['num_devices_used']}  compile {case['compile_s']:5.1f} s  "
            f"{r['median']:>9,.0f} env-steps/s (min {r['min']:,.0f}, max {r['max']:,.0f})  "
            f"per member {case['env_steps_per_s_per_member']:>9,.0f}")


def run_cases(cases, batch, repeats, target_s, fixed_updates, log) -> list[dict]:
    out = []
    for hidden, population in cases:
        case = bench_case(hidden, population, batch, repeats, target_s, fixed_updates)
        log(_line(case))
        out.append(case)
    return out


def summarize(report: dict) -> dict:
    pops = {c["population"]: c for c in report["population_sweep"]}
    one = pops.get(1)
    summary = {}
    hidden = {c["hidden_size"]: round(c["env_steps_per_s"]["median"])
              for c in report["hidden_sweep"]}
    summary["hidden_env_steps_per_s"] = hidden
    summary["compile_s"] = {
        **{f"hidden{c['hidden_size']}_P1": round(c["compile_s"], 1)
           for c in report["hidden_sweep"]},
        **{f"hidden{c['hidden_size']}_P{c['population']}": round(c["compile_s"], 1)
           for c in report["population_sweep"]},
    }
    summary["population_env_steps_per_s"] = {
        p: {"aggregate": round(c["env_steps_per_s"]["median"]),
            "per_member": round(c["env_steps_per_s_per_member"])}
        for p, c in pops.items()
    }
    summary["devices"] = {p: c["num_devices_used"] for p, c in pops.items()}
    if one is not None:
        base = one["env_steps_per_s"]["median"]
        summary["population_aggregate_over_one_member"] = {
            p: round(c["env_steps_per_s"]["median"] / base, 2) for p, c in pops.items()}
        if one["hidden_size"] == 128:
            summary["target_one_member_hidden128_met"] = (
                base >= TARGETS["one_member_hidden128_env_steps_per_s"])
        if 2 in pops:
            summary["target_population_2_met"] = (
                pops[2]["env_steps_per_s"]["median"] / base
                >= TARGETS["population_2_aggregate_over_one"])
    return summary


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"JSON output (default {DEFAULT_OUT}; with --quick {QUICK_OUT})")
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--populations", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--population-hidden", type=int, default=PPOConfig.hidden_size)
    ap.add_argument("--batch-size", type=int, default=PPOConfig.batch_size)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--target-s", type=float, default=2.5, help="seconds per timed call")
    ap.add_argument("--updates", type=int, default=None, help="updates per timed call "
                    "(default: sized from --target-s)")
    args = ap.parse_args(argv)
    devices.use_host_devices()
    if args.quick:
        args.hidden, args.populations, args.population_hidden = [32], [1, 2], 32
        args.batch_size, args.repeats, args.updates = 256, 1, 1
    out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)

    def log(line):
        print(line, flush=True)

    start = time.perf_counter()
    report = {"machine": machine_info(),
              "settings": {"batch_size": args.batch_size,
                           "num_envs": PPOConfig(batch_size=args.batch_size,
                                                 total_steps=args.batch_size).num_envs,
                           "hyperparameters": DEFAULT_HYPERPARAMS, "repeats": args.repeats,
                           "target_s_per_call": args.target_s, "quick": args.quick,
                           "scenario": "default", "num_opponents": 2},
              "targets": TARGETS}
    log(f"# {report['machine']}")
    log("# hidden sweep (one member)")
    report["hidden_sweep"] = run_cases([(h, 1) for h in args.hidden], args.batch_size,
                                       args.repeats, args.target_s, args.updates, log)
    log(f"# population sweep (hidden {args.population_hidden})")
    reuse = {c["hidden_size"]: c for c in report["hidden_sweep"]}
    pop_cases = []
    for p in args.populations:
        if p == 1 and args.population_hidden in reuse:
            pop_cases.append(reuse[args.population_hidden])
            log(_line(reuse[args.population_hidden]) + "  (from the hidden sweep)")
        else:
            pop_cases += run_cases([(args.population_hidden, p)], args.batch_size, args.repeats,
                                   args.target_s, args.updates, log)
    report["population_sweep"] = pop_cases
    report["wall_s"] = time.perf_counter() - start
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["summary"] = summarize(report)
    log(json.dumps(report["summary"], indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    log(f"wrote {out} ({report['wall_s']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
