"""Env-steps/s of the JAX single-learner view vs the plain-Python reference loop.

JAX: for each batch size B, one jitted function runs `lax.scan` over `--steps` steps; each step
draws the whole batch's uniforms from one key (`env.sample_draws(key, (B,))`), random learner
actions, and `jax.vmap(env.step_with_draws)`. Compile time is measured separately (first call
minus a timed call), then the function is timed `--repeats` times (min / median / max).

Reference: `bb_jax.testing.reference_game.ReferenceEnv` in its own numpy-RNG mode, one
environment, a few thousand steps with random learner actions. Both sides' CPU time per env
step is recorded too: on a shared machine their ratio moves less with the load than the wall's.

    python benchmarks/env_throughput.py            # full run
    python benchmarks/env_throughput.py --quick    # short smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax import make_env
from bb_jax.machine import machine_info
from bb_jax.testing.reference_game import ReferenceEnv

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "env_throughput_cpu.json"


def make_rollout(env, batch: int, steps: int):
    """Jitted key -> (final state, sum of rewards, number of finished episodes)."""

    def run(key):
        key, reset_key = jax.random.split(key)
        _, state = jax.vmap(env.reset)(jax.random.split(reset_key, batch))

        def body(carry, step_key):
            state, total, episodes = carry
            draw_key, act_key = jax.random.split(step_key)
            blocks = env.sample_draws(draw_key, (batch,))
            actions = jax.random.randint(act_key, (batch, 2), 0, jnp.array([10, 2]))
            _, state, reward, term, trunc, _ = jax.vmap(env.step_with_draws)(
                state, actions, blocks
            )
            total = total + reward.sum()
            episodes = episodes + jnp.sum(term | trunc)
            return (state, total, episodes), None

        carry0 = (state, jnp.float32(0.0), jnp.int32(0))
        (state, total, episodes), _ = jax.lax.scan(body, carry0, jax.random.split(key, steps))
        return state, total, episodes

    return jax.jit(run)


def make_rng_only(env, batch: int, steps: int):
    """The random part alone: per step, the batch's uniforms and the learner's actions."""

    def run(key):
        def body(total, step_key):
            draw_key, act_key = jax.random.split(step_key)
            blocks = env.sample_draws(draw_key, (batch,))
            actions = jax.random.randint(act_key, (batch, 2), 0, jnp.array([10, 2]))
            # consume every value so nothing is optimised away
            return total + blocks.sum() + actions.sum().astype(jnp.float32), None

        return jax.lax.scan(body, jnp.float32(0.0), jax.random.split(key, steps))[0]

    return jax.jit(run)


def make_step_only(env, batch: int, steps: int, num_blocks: int = 8):
    """The game alone: `num_blocks` pre-drawn uniform blocks and action sets, cycled (picked by
    a traced index so that nothing is hoisted out of the scan)."""

    def run(key):
        k_reset, k_blocks, k_act = jax.random.split(key, 3)
        _, state = jax.vmap(env.reset)(jax.random.split(k_reset, batch))
        blocks = env.sample_draws(k_blocks, (num_blocks, batch))
        actions = jax.random.randint(k_act, (num_blocks, batch, 2), 0, jnp.array([10, 2]))

        def body(carry, t):
            state, total = carry
            i = t % num_blocks
            _, state, reward, _, _, _ = jax.vmap(env.step_with_draws)(
                state, actions[i], blocks[i]
            )
            return (state, total + reward.sum()), None

        (state, total), _ = jax.lax.scan(body, (state, jnp.float32(0.0)), jnp.arange(steps))
        return state, total

    return jax.jit(run)


def block(out):
    return jax.block_until_ready(out)


def bench_jax(env, batch: int, steps: int, repeats: int, factory=make_rollout) -> dict:
    fn = factory(env, batch, steps)
    key = jax.random.key(0)
    t0 = time.perf_counter()
    block(fn(key))
    first = time.perf_counter() - t0
    times, cpu = [], []
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        block(fn(jax.random.key(r + 1)))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    median = statistics.median(times)
    n = batch * steps
    return {
        "batch": batch,
        "steps": steps,
        "env_steps_per_call": n,
        "compile_s": max(first - median, 0.0),
        "first_call_s": first,
        "call_s": {"min": min(times), "median": median, "max": max(times)},
        "env_steps_per_s": {"min": n / max(times), "median": n / median, "max": n / min(times)},
        # CPU time of the process (all threads): steadier than the wall on a shared machine,
        # and the work itself when XLA runs on one thread (--xla_cpu_multi_thread_eigen=false)
        "cpu_ns_per_env_step": 1e9 * min(cpu) / n,
    }


def bench_reference(scenario: str, num_opponents: int, steps: int, repeats: int) -> dict:
    rates, cpu = [], []
    for r in range(repeats):
        env = ReferenceEnv(scenario, num_opponents=num_opponents)
        rng = np.random.default_rng(r)
        env.reset(rng)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            action = (int(rng.integers(10)), int(rng.integers(2)))
            env.step(rng, action)
        rates.append(steps / (time.perf_counter() - t0))
        cpu.append(time.process_time() - c0)
    return {
        "steps": steps,
        "repeats": repeats,
        "env_steps_per_s": {
            "min": min(rates), "median": statistics.median(rates), "max": max(rates),
        },
        "cpu_ns_per_env_step": 1e9 * min(cpu) / steps,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (smaller batches, 1 repeat)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--num-opponents", type=int, default=2)
    ap.add_argument("--steps", type=int, default=128, help="scan length inside one jit")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batches", type=str, default="1,256,4096,16384")
    ap.add_argument("--ref-steps", type=int, default=3000)
    ap.add_argument("--ref-repeats", type=int, default=3)
    args = ap.parse_args(argv)

    batches = [int(b) for b in args.batches.split(",")]
    repeats, ref_steps, ref_repeats = args.repeats, args.ref_steps, args.ref_repeats
    if args.quick:
        batches = [b for b in batches if b <= 4096] or batches[:1]
        repeats, ref_steps, ref_repeats = 2, 500, 1

    env = make_env(args.scenario, num_opponents=args.num_opponents)
    machine_at_start = machine_info()
    print(f"# {machine_at_start}", flush=True)
    ref = bench_reference(args.scenario, args.num_opponents, ref_steps, ref_repeats)
    ref_rate = ref["env_steps_per_s"]["median"]
    print(f"reference loop: {ref_rate:,.0f} env-steps/s (median of {ref_repeats}); "
          f"{ref['cpu_ns_per_env_step']:,.0f} CPU ns per env-step", flush=True)

    results = []
    for batch in batches:
        res = bench_jax(env, batch, args.steps, repeats)
        res["ratio_vs_reference"] = res["env_steps_per_s"]["median"] / ref_rate
        # the same in CPU time (the JAX side's threads summed): what a shared machine's load
        # moves least
        res["cpu_ratio_vs_reference"] = ref["cpu_ns_per_env_step"] / res["cpu_ns_per_env_step"]
        results.append(res)
        r = res["env_steps_per_s"]
        print(
            f"B={batch:6d}: {r['median']:>13,.0f} env-steps/s "
            f"(min {r['min']:,.0f}, max {r['max']:,.0f}); compile {res['compile_s']:.2f}s; "
            f"x{res['ratio_vs_reference']:,.0f} vs reference; {res['cpu_ns_per_env_step']:,.0f} "
            f"CPU ns per env-step (x{res['cpu_ratio_vs_reference']:,.0f} in CPU time)",
            flush=True,
        )
    # where the time goes, at the largest batch: random numbers vs the game itself
    largest = max(results, key=lambda r: r["batch"])
    rng_part = bench_jax(env, largest["batch"], args.steps, repeats, make_rng_only)
    game_part = bench_jax(env, largest["batch"], args.steps, repeats, make_step_only)
    t_rng = rng_part["call_s"]["median"]
    t_game = game_part["call_s"]["median"]
    profile = {
        "batch": largest["batch"],
        "rng_only_cpu_ns_per_env_step": rng_part["cpu_ns_per_env_step"],
        "step_only_cpu_ns_per_env_step": game_part["cpu_ns_per_env_step"],
        "rng_only_s": t_rng,
        "step_only_s": t_game,
        "rng_only_env_steps_per_s": rng_part["env_steps_per_s"]["median"],
        "step_only_env_steps_per_s": game_part["env_steps_per_s"]["median"],
        "rng_share_of_sum": t_rng / (t_rng + t_game),
        "uniforms_per_env_step": env.num_draws,
    }
    print(
        f"profile B={largest['batch']}: random numbers alone {t_rng:.3f}s "
        f"({profile['rng_only_env_steps_per_s']:,.0f}/s), game step alone {t_game:.3f}s "
        f"({profile['step_only_env_steps_per_s']:,.0f}/s): RNG ~"
        f"{100 * profile['rng_share_of_sum']:.0f}% of the sum",
        flush=True,
    )
    best = max(results, key=lambda r: r["env_steps_per_s"]["median"])
    report = {
        "benchmark": "env_throughput",
        "quick": args.quick,
        "scenario": args.scenario,
        "num_opponents": args.num_opponents,
        "scan_steps": args.steps,
        "repeats": repeats,
        "machine": machine_info(),
        "machine_at_start": machine_at_start,
        "note": "the 2-core CPU may be shared with other jobs; see the load averages",
        "reference": ref,
        "jax": results,
        "profile": profile,
        "summary": {
            "largest_batch": largest["batch"],
            "largest_batch_env_steps_per_s": largest["env_steps_per_s"]["median"],
            "ratio_vs_reference": largest["ratio_vs_reference"],
            "cpu_ratio_vs_reference": largest["cpu_ratio_vs_reference"],
            "best": {"batch": best["batch"],
                     "env_steps_per_s": best["env_steps_per_s"]["median"],
                     "ratio_vs_reference": best["ratio_vs_reference"]},
            "targets": {"env_steps_per_s": 1_000_000, "ratio_vs_reference": 300},
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
