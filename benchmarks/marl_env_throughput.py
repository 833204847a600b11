"""Env-steps/s and agent-steps/s of the multi-agent env against the single-learner view.

For each configuration, one jitted function runs `lax.scan` over `--steps` steps of
`jax.vmap(env.step)` on a batch of B environments, each step with its own key and uniformly
random actions for every learning seat (a heuristic seat acts inside the env). Compile time is
measured separately (first call minus a timed call); then the call is timed `--repeats` times.
An env-step is one night of one environment; an agent-step is one learning seat's step
(env-steps x learners), the unit a team learner's samples come in.

Configurations: the single-learner view (3 seats, seat 0 learns); the multi-agent env on the
same seats; the multi-agent env with every seat learning at 3, 5 and 10 seats.

    python benchmarks/marl_env_throughput.py            # B=4096
    python benchmarks/marl_env_throughput.py --quick    # short smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from bb_jax import make_env
from bb_jax.game.marl_env import make_marl_env
from bb_jax.machine import machine_info

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "marl_env_throughput_cpu.json"
PAIR = jnp.array([10, 2])


def single_rollout(env, batch: int, steps: int):
    """Jitted key -> sum of rewards, for the single-learner view."""
    def run(key):
        _, state = jax.vmap(env.reset)(jax.random.split(key, batch))

        def body(carry, k):
            state, total = carry
            k_act, k_step = jax.random.split(k)
            actions = jax.random.randint(k_act, (batch, 2), 0, PAIR)
            _, state, reward, *_ = jax.vmap(env.step)(jax.random.split(k_step, batch), state,
                                                      actions)
            return (state, total + reward.sum()), None

        return jax.lax.scan(body, (state, 0.0), jax.random.split(key, steps))[0][1]

    return jax.jit(run)


def marl_rollout(env, batch: int, steps: int):
    """Jitted key -> sum of the learners' rewards, for the multi-agent env."""
    def run(key):
        _, state = jax.vmap(env.reset)(jax.random.split(key, batch))

        def body(carry, k):
            state, total = carry
            k_act, k_step = jax.random.split(k)
            acts = jax.random.randint(k_act, (env.num_agents, batch, 2), 0, PAIR)
            actions = {a: acts[i] for i, a in enumerate(env.agents)}
            _, state, rewards, *_ = jax.vmap(env.step)(jax.random.split(k_step, batch), state,
                                                       actions)
            return (state, total + sum(r.sum() for r in rewards.values())), None

        return jax.lax.scan(body, (state, 0.0), jax.random.split(key, steps))[0][1]

    return jax.jit(run)


def bench(name: str, fn, learners: int, seats: int, batch: int, steps: int,
          repeats: int) -> dict:
    """Compile time and env-steps/s, agent-steps/s (min / median / max over repeats)."""
    key = jax.random.key(0)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(key))
    first = time.perf_counter() - t0
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(jax.random.key(i + 1)))
        times.append(time.perf_counter() - t0)
    rate = [batch * steps / t for t in times]
    summary = {"min": min(rate), "median": statistics.median(rate), "max": max(rate)}
    return {
        "env": name, "seats": seats, "learners": learners, "batch": batch, "steps": steps,
        "compile_s": first - statistics.median(times),
        "env_steps_per_s": summary,
        "agent_steps_per_s": {k: v * learners for k, v in summary.items()},
    }


def configurations(scenario: str):
    """(name, env, rollout maker, learners, seats) of each benchmarked env."""
    yield "single-learner view", make_env(scenario, num_opponents=2), single_rollout, 1, 3
    yield "multi-agent, seat 0 learns", make_marl_env(scenario, 3, (0,)), marl_rollout, 1, 3
    for seats in (3, 5, 10):
        env = make_marl_env(scenario, seats, "all")
        yield f"multi-agent, all {seats} learn", env, marl_rollout, seats, seats


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="B=64, 8 steps, 1 repeat")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=32, help="scan length inside one jit")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    batch, steps, repeats = (64, 8, 1) if args.quick else (args.batch, args.steps, args.repeats)

    machine = machine_info()
    print(f"# {machine}", flush=True)
    results = []
    for name, env, maker, learners, seats in configurations(args.scenario):
        res = bench(name, maker(env, batch, steps), learners, seats, batch, steps, repeats)
        results.append(res)
        print(f"{name:>30}: {res['env_steps_per_s']['median']:>12,.0f} env-steps/s, "
              f"{res['agent_steps_per_s']['median']:>12,.0f} agent-steps/s; "
              f"compile {res['compile_s']:.1f}s", flush=True)
    base = results[0]["env_steps_per_s"]["median"]
    for res in results:
        res["env_steps_ratio_vs_single"] = res["env_steps_per_s"]["median"] / base
    out = {"machine_at_start": machine, "machine_at_end": machine_info(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "scenario": args.scenario, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
