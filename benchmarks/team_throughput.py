"""Team training throughput: env-steps/s of `bb_jax.agent.team` at 3, 5 and 10 seats, every
seat learning, for each team learner, next to the multi-agent env alone at the same batch.

Each configuration is one jitted `make_train(env)` run of `--updates` updates of `--envs`
environments x `--rollout` steps (PPO epochs and minibatches at TeamConfig's defaults), timed
with `marl_env_throughput.bench` (compile time apart, median of `--repeats` timed calls on fresh
keys). The env alone is `marl_env_throughput.marl_rollout` at the same batch and scan length:
the ratio is what learning costs on top of stepping. An env-step is one night of one
environment; an agent-step one learning seat's sample (env-steps x seats).

    python benchmarks/team_throughput.py                          # every seat count and learner
    python benchmarks/team_throughput.py --agents 3 --learners ippo --quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from marl_env_throughput import bench, marl_rollout  # noqa: E402

from bb_jax.agent.team import LEARNERS, TeamConfig, make_train  # noqa: E402
from bb_jax.game.marl_env import make_marl_env  # noqa: E402
from bb_jax.machine import machine_info  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "team_throughput_cpu.json"
AGENTS = (3, 5, 10)


def train_call(env, config: TeamConfig):
    """Jitted key -> the run's last episode return (the whole run is one call)."""
    train = make_train(env)
    return jax.jit(lambda key: train(config, key).metrics["episode_return"][-1])


def run_seats(scenario: str, seats: int, learners, config: TeamConfig, repeats: int) -> list:
    """The env alone and each learner's training at `seats` seats, every seat learning."""
    env = make_marl_env(scenario, seats, "all")
    steps = config.rollout_length * config.num_updates
    rows = [bench("env alone (random actions)", marl_rollout(env, config.num_envs, steps),
                  seats, seats, config.num_envs, steps, repeats)]
    for learner in learners:
        cfg = config.replace(learner=learner)
        rows.append(bench(f"train {learner}", train_call(env, cfg), seats, seats,
                          cfg.num_envs, steps, repeats))
    base = rows[0]["env_steps_per_s"]["median"]
    for row in rows:
        row["env_steps_ratio_vs_env_alone"] = row["env_steps_per_s"]["median"] / base
        print(f"{seats:>3} seats {row['env']:>27}: {row['env_steps_per_s']['median']:>10,.0f} "
              f"env-steps/s, {row['agent_steps_per_s']['median']:>10,.0f} agent-steps/s; "
              f"compile {row['compile_s']:.1f}s", flush=True)
    return rows


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 envs x 8 steps x 2 updates, 1 repeat")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--agents", type=int, nargs="+", default=list(AGENTS), choices=AGENTS)
    ap.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=LEARNERS)
    ap.add_argument("--envs", type=int, default=16)
    ap.add_argument("--rollout", type=int, default=32)
    ap.add_argument("--updates", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    envs, rollout, updates, repeats = ((4, 8, 2, 1) if args.quick else
                                       (args.envs, args.rollout, args.updates, args.repeats))
    config = TeamConfig(num_envs=envs, rollout_length=rollout,
                        total_steps=envs * rollout * updates)
    machine = machine_info()
    print(f"# {machine}", flush=True)
    results = [row for seats in args.agents
               for row in run_seats(args.scenario, seats, args.learners, config, repeats)]
    out = {"machine_at_start": machine, "machine_at_end": machine_info(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "scenario": args.scenario, "num_envs": envs, "rollout_length": rollout,
           "updates": updates, "num_epochs": config.num_epochs,
           "num_minibatches": config.num_minibatches, "hidden_size": config.hidden_size,
           "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
