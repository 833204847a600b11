"""The defaults against the compute-budget study's pick, or against the previous defaults, at
equal *seconds* of training.

`defaults_per_second.py` compares configurations at equal FLOPs. FLOPs are not seconds across
network shapes: a small network does fewer FLOPs per second of a CPU than a larger one (its
matrix products are smaller, the game's step weighs more). Here each configuration trains for
the same wall time instead: its own throughput is measured first (the validation's population,
after its compile), then it trains the env steps that buy `--seconds` of training per run, on
fresh seeds, and both are judged on the same fresh episodes of each seed (paired).

    python benchmarks/defaults_equal_seconds.py                            # documented run
    python benchmarks/defaults_equal_seconds.py --quick --out /tmp/e.json  # smoke
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bb_jax import devices

devices.use_host_devices()  # every core a device, as the command lines do

import jax  # noqa: E402

from bb_jax.agent.config import HYPERPARAM_NAMES, PPOConfig, stack_hyperparams  # noqa: E402
from bb_jax.game.scenarios import get_scenario, stack_scenarios  # noqa: E402
from bb_jax.machine import machine_info  # noqa: E402
from bb_jax.runtime.cost import timed_chunks  # noqa: E402
from bb_jax.runtime.population import Population  # noqa: E402
from bb_jax.runtime.runs import train_seeds  # noqa: E402
from bb_jax.stats import mean_ci95, paired_difference  # noqa: E402
from bb_jax.tuning.space import control_params  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from defaults_per_second import previous_defaults  # noqa: E402

HERE = Path(__file__).resolve().parent
STUDY = HERE / "results" / "defaults_per_second_cpu.json"
DEFAULT_OUT = HERE / "results" / "defaults_equal_seconds_cpu.json"
CHUNK = 8  # updates per timed call


def versus(which: str, study: Path) -> dict:
    """What the defaults are compared with: the study's pick, or the previous defaults."""
    if which == "previous":
        return {"name": "previous", "params": previous_defaults()}
    return study_pick(study)


def study_pick(path: Path) -> dict:
    """The best validated configuration of the compute-budget study (not the control)."""
    rows = json.loads(path.read_text())["validation"]["rows"]
    best = max((r for r in rows if isinstance(r["trial"], int)), key=lambda r: r["mean"])
    return {"name": f"trial {best['trial']}", "params": best["params"]}


def split(params: dict) -> tuple[dict, dict]:
    shape = {k: params[k] for k in ("hidden_size", "batch_size")}
    return shape, {k: params[k] for k in HYPERPARAM_NAMES if k in params}


def member_rate(shape: dict, hp: dict, scenarios: list[str], members: int,
                seconds: float) -> dict:
    """Env steps per second of the whole device, in a population of `members` rows (as
    the validation trains them), after its compile, over about `seconds`."""
    config = PPOConfig(**shape, total_steps=None)
    names = [scenarios[i % len(scenarios)] for i in range(members)]
    pop = Population(config, stack_hyperparams([hp] * members),
                     jax.random.split(jax.random.PRNGKey(7), members),
                     stack_scenarios([get_scenario(n) for n in names]))
    updates, elapsed = timed_chunks(pop, CHUNK, seconds)
    steps = updates * shape["batch_size"]
    return {"env_steps_per_s": steps * members / elapsed, "timed_s": elapsed,
            "updates": updates}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (tiny)")
    ap.add_argument("--scenario", default="easy,default,hard", help="(default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=4.0,
                    help="training seconds per run (one seed on one scenario), as the "
                         "tuner's --time-budget counts them: the device's whole rate for "
                         "that long (default: %(default)s; the defaults then train about "
                         "as many env steps as in defaults_per_second.py's 0.45 TFLOP)")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(45600, 45608)),
                    help="fresh seeds (default: 45600..45607, met by no study)")
    ap.add_argument("--eval-episodes", type=int, default=200, help="(default: %(default)s)")
    ap.add_argument("--study", default=str(STUDY), help="(default: %(default)s)")
    ap.add_argument("--versus", choices=("study", "previous"), default="study",
                    help="the study's best validated trial, or the defaults before it "
                         "(default: %(default)s)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="(default: %(default)s)")
    args = ap.parse_args(argv)
    if args.quick:
        args.scenario, args.seconds, args.seeds, args.eval_episodes = "easy", 0.3, [1, 2], 8
    scenarios = args.scenario.split(",")
    members = len(args.seeds) * len(scenarios)
    configs = [{"name": "defaults", "params": control_params()},
               versus(args.versus, Path(args.study))]
    # both rates measured twice, alternated, so that the machine's drift hits both
    timed = min(5.0, args.seconds)
    rates = [[], []]
    for _ in range(2):
        for i, row in enumerate(configs):
            rates[i].append(member_rate(*split(row["params"]), scenarios, members, timed))
    rows = []
    for row, measured in zip(configs, rates, strict=True):
        shape, hp = split(row["params"])
        rate = {"env_steps_per_s": max(r["env_steps_per_s"] for r in measured),
                "measured": measured}
        # a run's share of the device for `seconds`: the population's whole rate for that
        # long, as the tuner's --time-budget counts it (a trial of K runs takes K x seconds)
        # whole chunks of CHUNK updates: one compiled chunk length, as measured
        unit = shape["batch_size"] * CHUNK
        steps = max(unit, int(rate["env_steps_per_s"] * args.seconds) // unit * unit)
        config = PPOConfig(**shape, scenario=scenarios[0], total_steps=steps)
        run = train_seeds(config, hp, args.seeds, chunk_updates=CHUNK,
                          eval_episodes=args.eval_episodes, scenarios=scenarios)
        per_seed = run.eval_sampled.reshape(len(args.seeds), len(scenarios), -1).mean(axis=(1, 2))
        mean, ci = mean_ci95(per_seed)
        rows.append({**row, "rate": rate, "env_steps_per_run": steps,
                     "wall_s": run.wall_time_s, "per_seed": per_seed.tolist(),
                     "mean": mean, "ci95": ci})
        print(f"{row['name']:>10}: {steps:>9,} env steps per run ("
              f"{rate['env_steps_per_s']:,.0f} per s of the device), fresh episodes "
              f"{mean:.1f} +/- {ci:.1f}, {run.wall_time_s:.0f} s", flush=True)
    diff = paired_difference(rows[0]["per_seed"], rows[1]["per_seed"]).as_dict()
    print(f"defaults - {rows[1]['name']} at equal seconds: {diff['mean']:+.1f} +/- "
          f"{diff['ci95']:.1f} (paired, {len(args.seeds)} seeds)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "defaults_equal_seconds", "quick": args.quick,
                               "machine": machine_info(),
                               "settings": {k: v for k, v in vars(args).items() if k != "out"},
                               "rows": rows, "defaults_minus_other": diff}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
