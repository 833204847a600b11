"""Shared helpers for the game tests (agreement, properties, statistics, API).

Jitted functions are cached at module level (one compile per static shape), so every test
file that imports this module reuses them within a pytest session.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bb_jax import get_scenario, list_scenarios, make_env
from bb_jax.game.scenarios import stack_scenarios
from bb_jax.testing.reference_game import (
    FIXED_KINDS,
    SCENARIO_TABLE,
    ReferenceEnv,
    default_opponent_kinds,
)

SCENARIOS = tuple(list_scenarios())
# statistics of the upstream implementation, beside the repository (not part of it)
REFERENCE_STATS = Path(__file__).resolve().parents[2] / "shared" / "reference_stats.json"


def reference_stats(path: Path = REFERENCE_STATS) -> dict:
    """The upstream statistics by scenario. Skips the test when the file is missing, except
    where $CI is set: there a missing file fails it (CI must not pass without comparing)."""
    if not path.exists():
        message = f"reference statistics not found at {path}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (and CI is set)")
        pytest.skip(message)
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}

# Fixed replay shapes shared by the agreement and property tests (one compile per config).
STEPS = 500
# 12 scenarios x (plain blocks, edge-value blocks)
ENV_SCENARIOS = [name for name in SCENARIOS for _ in range(2)]
EDGE_ROWS = list(range(1, len(ENV_SCENARIOS), 2))
# (opponent kinds, max_steps): the default lists for N = 2, 3, 4, 10, and one list with every
# kind (N = 7) and a short max_steps so that truncation, and termination together with
# truncation, happen often.
CONFIGS = [
    (tuple(default_opponent_kinds(1)), 50),
    (tuple(default_opponent_kinds(2)), 50),
    (tuple(default_opponent_kinds(3)), 50),
    (tuple(default_opponent_kinds(9)), 50),
    (("hero", "liar", "random", "free_rider", "coordinator", "firefighter"), 14),
]
CONFIG_IDS = [f"N{len(k) + 1}-{'-'.join(k)}-T{m}" for k, m in CONFIGS]


@functools.cache
def jax_env(kinds: tuple[str, ...], max_steps: int = 50):
    return make_env("default", num_opponents=len(kinds), opponents=list(kinds),
                    max_steps=max_steps)


def scenario_batch(names, num_agents: int):
    """A stacked Scenario (leading axis = len(names))."""
    unique = list(dict.fromkeys(names))
    table = stack_scenarios([get_scenario(name, num_agents) for name in unique])
    index = np.asarray([unique.index(name) for name in names])
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[index]), table)


@functools.cache
def replay_fn(kinds: tuple[str, ...], max_steps: int = 50):
    """Jitted (scenarios[B], reset_blocks[B, R], blocks[T, B, D], actions[T, B, 2]) -> trajectory.

    One `lax.scan` over T steps of a `vmap` over B environments; the scenario is a traced
    argument, so every scenario shares one compile per (kinds, max_steps, B, T).
    The trajectory dict has arrays with leading axes [T, B]: obs (after auto-reset), reward,
    terminated, truncated, final_obs, episode_return, episode_length; plus the reset obs [B].
    """
    env = jax_env(kinds, max_steps)

    def run(scenarios, reset_blocks, blocks, actions):
        obs0, state0 = jax.vmap(env.reset_with_draws)(reset_blocks, scenarios)

        def body(state, xs):
            block, action = xs
            obs, state, reward, term, trunc, info = jax.vmap(env.step_with_draws)(
                state, action, block, scenarios
            )
            out = {
                "obs": obs, "reward": reward, "terminated": term, "truncated": trunc,
                "final_obs": info["final_observation"],
                "episode_return": info["episode_return"],
                "episode_length": info["episode_length"],
                "houses": state.game.houses,
            }
            return state, out

        _, traj = jax.lax.scan(body, state0, (blocks, actions))
        traj["obs0"] = obs0
        return traj

    return jax.jit(run)


def edge_values() -> np.ndarray:
    """float32 uniforms that sit exactly on decision thresholds: 0, the largest float32 below 1,
    0.5, every scenario probability, every fixed opponent parameter, and the extinguish
    thresholds 1 - (1 - p_ext)^k (k = 1..4, sequential float32 products)."""
    vals = {0.0, float(np.nextafter(np.float32(1), np.float32(0))), 0.5}
    for row in SCENARIO_TABLE.values():
        p_spread, p_ext, p_fire = (np.float32(x) for x in row[:3])
        vals.update([float(p_spread), float(p_ext), float(p_fire)])
        q, q_pow = np.float32(1) - p_ext, np.float32(1)
        for _ in range(4):
            q_pow = np.float32(q_pow * q)
            vals.add(float(np.float32(1) - q_pow))
    for params in FIXED_KINDS.values():
        vals.update(float(np.float32(x)) for x in params)
    return np.asarray(sorted(v for v in vals if v < 1.0), dtype=np.float32)  # uniforms: [0, 1)


def make_inputs(env_like, batch: int, steps: int, seed: int, edge_rows=None,
                edge_fraction: float = 0.5, action=None):
    """Uniform blocks and learner actions, as NumPy float32 / int32.

    Returns reset_blocks [batch, R], blocks [steps, batch, D], actions [steps, batch, 2].
    In the environments listed in `edge_rows`, each uniform is replaced, with probability
    `edge_fraction`, by one of `edge_values()` (values exactly on decision thresholds).
    `action`: a fixed (house, mode) for every step; default uniformly random.
    """
    rng = np.random.default_rng(seed)
    reset_blocks = rng.random((batch, env_like.num_reset_draws), dtype=np.float32)
    blocks = rng.random((steps, batch, env_like.num_draws), dtype=np.float32)
    if edge_rows is not None and len(edge_rows) and edge_fraction > 0:
        edges = edge_values()
        for b in edge_rows:
            for arr in (reset_blocks[b], blocks[:, b]):
                mask = rng.random(arr.shape) < edge_fraction
                arr[mask] = rng.choice(edges, size=int(mask.sum()))
    if action is None:
        actions = np.stack(
            [rng.integers(0, 10, (steps, batch)), rng.integers(0, 2, (steps, batch))], axis=-1
        )
    else:
        actions = np.broadcast_to(np.asarray(action), (steps, batch, 2))
    return reset_blocks, blocks, np.ascontiguousarray(actions, dtype=np.int32)


def last_actions_from_obs(obs: np.ndarray, num_agents: int) -> np.ndarray:
    """int[..., N, 2]: the last_actions block of an observation."""
    start = 10 + 2 * num_agents
    flat = obs[..., start:start + 2 * num_agents]
    return flat.reshape(*obs.shape[:-1], num_agents, 2).astype(np.int64)


def reference_rollout(scenario, kinds, reset_block, blocks, actions, max_steps=50):
    """Run the reference on one environment; returns a dict of stacked per-step results."""
    env = ReferenceEnv(scenario, num_opponents=len(kinds), opponents=list(kinds),
                       max_steps=max_steps)
    obs0 = env.reset_with_draws(reset_block)
    out = {k: [] for k in ("obs", "reward", "terminated", "truncated", "final_obs",
                           "episode_return", "episode_length", "actions")}
    for t in range(blocks.shape[0]):
        obs, reward, term, trunc, info = env.step_with_draws(actions[t], blocks[t])
        out["obs"].append(obs)
        out["reward"].append(reward)
        out["terminated"].append(term)
        out["truncated"].append(trunc)
        out["final_obs"].append(info["final_observation"])
        out["episode_return"].append(info["episode_return"])
        out["episode_length"].append(info["episode_length"])
        out["actions"].append(info["actions"])
    res = {k: np.asarray(v) for k, v in out.items()}
    res["obs0"] = obs0
    return res


def as_numpy(tree):
    return jax.tree.map(np.asarray, tree)
