"""What each team learner reaches on a scenario at equal env steps, every seat learning.

For each learner (IPPO, MAPPO, independent), `--seeds` teams are trained by one jitted program
(`jax.vmap` of `bb_jax.agent.team.make_train` over seeds) for `--steps` env steps with the same
hyperparameters, the game's one-hot house features (`bb_jax.game.marl_features`). Each team
then plays `--episodes` fresh episodes (reset keys no training step drew), sampling its
actions, and a uniformly random team plays the same reset keys. Per seed: the seats' mean
return over those episodes; reported: its mean over seeds with a 95% CI, and the paired
difference against the random team over seeds (`bb_jax.stats`).

    python benchmarks/team_learners.py                       # default, 3 agents, 3 seeds
    python benchmarks/team_learners.py --steps 20000 --seeds 2 --episodes 16   # smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax.agent.team import LEARNERS, TeamConfig, make_team, make_train
from bb_jax.agent.team_eval import episode_returns, random_policy, trained_policy
from bb_jax.game.marl_env import make_marl_env
from bb_jax.game.marl_features import one_hot_houses
from bb_jax.machine import machine_info
from bb_jax.stats import mean_ci95, paired_difference

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "team_learners_cpu.json"
# the hyperparameters every learner gets (the single learner's tuned PPO values, with a larger
# step size and a smaller entropy bonus; tests/test_team.py's slow test uses the same)
HYPERPARAMS = dict(learning_rate=1e-3, entropy_coef=0.01, gamma=0.955, gae_lambda=0.966,
                   clip_epsilon=0.27, value_coef=0.31, num_epochs=5)


def seat_means(env, policy, keys, episodes: int):
    """float32[S]: the seats' mean return over `episodes` fresh episodes per key (one key per
    seed); `policy(s)` is seed s's team."""
    play = jax.vmap(lambda s, k: episode_returns(env, policy(s), k, episodes))
    return np.asarray(jax.jit(play)(jnp.arange(keys.shape[0]), keys).mean(axis=(1, 2)))


def run_learner(env, learner: str, steps: int, episodes: int, fresh) -> dict:
    """Train one team per fresh key's seed; its and a random team's returns on those keys."""
    seeds = fresh.shape[0]
    config = TeamConfig(learner=learner, total_steps=steps, **HYPERPARAMS)
    features = one_hot_houses(env)
    t0 = time.perf_counter()
    runs = jax.jit(jax.vmap(make_train(env, features), in_axes=(None, 0)))(
        config, jax.random.split(jax.random.key(0), seeds))  # seeds: training keys
    jax.block_until_ready(runs)
    train_s = time.perf_counter() - t0
    team = make_team(env, config, features)
    means = seat_means(env, lambda s: trained_policy(
        team, jax.tree.map(lambda p: p[s], runs.params)), fresh, episodes)
    random = seat_means(env, lambda s: random_policy(env), fresh, episodes)
    return {"learner": learner, "env_steps": config.num_updates * config.steps_per_update,
            "train_and_compile_s": train_s, "per_seed": means.tolist(),
            "random_per_seed": random.tolist(), "mean_ci95": mean_ci95(means),
            "random_mean_ci95": mean_ci95(random),
            "vs_random": paired_difference(means, random).as_dict()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200_000, help="env steps per team")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=256, help="fresh episodes per team")
    ap.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=LEARNERS)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = ap.parse_args(argv)
    env = make_marl_env(args.scenario, args.agents, "all")
    fresh = jax.random.split(jax.random.key(10_000), args.seeds)  # no training step drew these
    out = {"machine_at_start": machine_info(), "scenario": args.scenario, "agents": args.agents,
           "seeds": args.seeds, "episodes": args.episodes, "hyperparams": HYPERPARAMS,
           "results": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for learner in args.learners:
        row = run_learner(env, learner, args.steps, args.episodes, fresh)
        out["results"].append(row)
        out.update(machine_at_end=machine_info(),
                   date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        args.out.write_text(json.dumps(out, indent=2))  # after each learner: a stop keeps them
        d = row["vs_random"]
        print(f"{learner:>12}: {row['mean_ci95'][0]:8.1f} ± {row['mean_ci95'][1]:5.1f} per seat; "
              f"vs random {d['mean']:+.1f} ± {d['ci95']:.1f}; {row['train_and_compile_s']:.0f}s",
              flush=True)
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
