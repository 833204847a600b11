"""Baseline (b): a per-step PPO trainer in the style users run today.

The plain-Python reference game is stepped one environment at a time, the same actor-critic
is called once per step (a jitted single-observation forward pass on the game's features,
without the time input; actions sampled on the host), and the PPO update (the very same
jitted `PPO.learn` as bb-jax, on the batch's observations encoded at once) runs once per
batch.
Only the loop structure differs from bb-jax's end-to-end jitted trainer, so the ratio of the
two is the price of per-step host round trips. Writes JSON with env-steps/s.

    python benchmarks/baseline_trainer.py [--quick] [--hidden-size 128] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax.agent.config import PPOConfig, make_hyperparams
from bb_jax.agent.ppo import PPO, Transition, init_optimizer
from bb_jax.testing.reference_game import ReferenceEnv

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "baseline_trainer_cpu.json"


def jitted_parts(ppo: PPO):
    """(forward: params, obs -> (house probs, mode probs, value), learn: PPO.learn,
    encode: game observations [..., D] -> the network's features [..., I]), jitted."""
    features = ppo.view(1).features

    def encode(obs):
        return features(obs, jnp.zeros(obs.shape[:-1], jnp.int32))

    def forward(params, obs):
        house_logits, mode_logits, value = ppo.network.apply(params, encode(obs))
        return jax.nn.softmax(house_logits), jax.nn.softmax(mode_logits), value

    return jax.jit(forward), jax.jit(ppo.learn), jax.jit(encode)


def run_updates(ppo: PPO, parts, num_updates: int, seed: int = 0) -> float:
    """Train `num_updates` updates, stepping one env per host iteration; wall seconds."""
    forward, learn, encode = parts
    config = ppo.config
    hp = make_hyperparams()
    params = ppo.network.init(jax.random.PRNGKey(seed), jnp.zeros((ppo.input_size,)))
    opt_state = init_optimizer(params, hp)
    env = ReferenceEnv(config.scenario, num_opponents=config.num_opponents)
    rng = np.random.default_rng(seed)
    obs = env.reset(rng)
    key = jax.random.PRNGKey(seed)
    start = time.perf_counter()
    for _ in range(num_updates):
        rows = []
        for _ in range(config.batch_size):
            p_house, p_mode, value = (np.asarray(x, np.float64) for x in forward(params, obs))
            action = (int(rng.choice(10, p=p_house / p_house.sum())),
                      int(rng.choice(2, p=p_mode / p_mode.sum())))
            log_prob = float(np.log(p_house[action[0]]) + np.log(p_mode[action[1]]))
            next_obs, reward, terminated, truncated, info = env.step(rng, action)
            rows.append((obs, action, log_prob, float(value), reward, terminated,
                         terminated or truncated, info["final_observation"],
                         info["episode_return"]))
            obs = next_obs
        columns = [np.asarray(col)[:, None] for col in zip(*rows)]  # time-major [T, 1]
        traj = Transition(*(jnp.asarray(c) for c in columns))
        traj = traj._replace(obs=encode(traj.obs), final_obs=encode(traj.final_obs))
        key, k_learn = jax.random.split(key)
        params, opt_state, _ = learn(params, opt_state, traj, k_learn, hp)
    jax.block_until_ready(params)
    return time.perf_counter() - start


def measure(hidden_size: int, batch_size: int, num_updates: int, repeats: int) -> dict:
    ppo = PPO(PPOConfig(hidden_size=hidden_size, batch_size=batch_size, num_envs=1,
                        num_minibatches=4, total_steps=batch_size, time_input=False))
    parts = jitted_parts(ppo)
    run_updates(ppo, parts, 1)  # compile the forward pass and the update
    times = [run_updates(ppo, parts, num_updates, seed=r + 1) for r in range(repeats)]
    steps = num_updates * batch_size
    rates = sorted(steps / t for t in times)
    return {"hidden_size": hidden_size, "batch_size": batch_size, "num_epochs": 4,
            "updates_timed": num_updates, "repeats": repeats,
            "env_steps_per_s": {"min": rates[0], "median": statistics.median(rates),
                                "max": rates[-1]}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--updates", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.updates, args.repeats = 256, 1, 1
    row = measure(args.hidden_size, args.batch_size, args.updates, args.repeats)
    print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"baseline_trainer": row}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
