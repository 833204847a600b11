"""The env's outputs are pinned bit for bit: a faster step must not move a single bit.

Each configuration runs a few hundred steps of the single-learner view at batch 64 from fixed
keys (the env's own key -> draws streams, so the RNG streams are pinned too) and hashes every
output: observations, rewards, terminated / truncated, the info dict and the final state. The
hashes in tests/data/env_golden.json were computed from the implementation of 2026-12-07,
before the step was optimised; regenerate them only for a change meant to alter the game:

    PYTHONPATH=$PWD python tests/test_env_golden.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bb_jax import get_scenario, list_scenarios, make_env
from bb_jax.game import opponents
from bb_jax.game.scenarios import stack_scenarios

GOLDEN = Path(__file__).resolve().parent / "data" / "env_golden.json"
BATCH, STEPS = 64, 200

# name -> (scenario, opponent kinds, max_steps, params): params "env" = the env's own scenario
# (None: compile-time constants), "traced" = passed in, one for all, the batch's draws from one
# key (as PPO steps), "mixed" = the 12 scenarios in turn, one per environment. "env" and
# "mixed" step with `env.step` and a key per environment.
CONFIGS = {
    "default_2": ("default", None, 50, "env"),
    "every_kind_6": ("hard", opponents.OPPONENT_KINDS, 50, "traced"),
    "one_random_trunc7": ("easy", ("random",), 7, "traced"),
    "nine_mixed_all_scenarios": ("default", ("hero", "liar") * 4 + ("random",), 50, "mixed"),
}


def _rollout(name: str):
    """(obs0, final state, per-step outputs) of CONFIGS[name] from fixed keys."""
    scenario, kinds, max_steps, how = CONFIGS[name]
    num_opponents = 2 if kinds is None else len(kinds)
    env = make_env(scenario, num_opponents=num_opponents, opponents=kinds, max_steps=max_steps)
    n = env.num_agents
    names = list_scenarios()
    params = {
        "env": None,
        "traced": env.default_params,
        "mixed": stack_scenarios([get_scenario(names[b % len(names)], n) for b in range(BATCH)]),
    }[how]
    in_axes = 0 if how == "mixed" else None

    @jax.jit
    def run(key, params):
        reset_key, key = jax.random.split(key)
        reset = jax.vmap(env.reset, in_axes=(0, in_axes))
        obs0, state = reset(jax.random.split(reset_key, BATCH), params)

        def body(state, step_key):
            keys = jax.random.split(step_key, BATCH + 1)
            actions = jax.random.randint(keys[0], (BATCH, 2), 0, jnp.array([10, 2]))
            if how == "traced":
                blocks = env.sample_draws(keys[1], (BATCH,))
                step = jax.vmap(env.step_with_draws, in_axes=(0, 0, 0, None))
                out = step(state, actions, blocks, params)
            else:
                step = jax.vmap(env.step, in_axes=(0, 0, 0, in_axes))
                out = step(keys[1:], state, actions, params)
            return out[1], (out[0], *out[2:])

        state, outs = jax.lax.scan(body, state, jax.random.split(key, STEPS))
        return obs0, state, outs

    return run(jax.random.key(7), params)


def _act_with_seats():
    """opponents.act of four heuristics in seats 0, 3, 5, 9 (the learner's seat included)."""
    keys = jax.random.split(jax.random.key(11), 4)
    m = 4
    params = jax.random.uniform(keys[0], (BATCH, m, opponents.NUM_PARAMS))
    houses = jax.random.randint(keys[1], (BATCH, 10), 0, 3)
    locations = jax.random.randint(keys[2], (BATCH, 10), 0, 10)
    block = jax.random.uniform(keys[3], (BATCH, m * 2 + m * opponents.NUM_ACT_DRAWS))
    last = (block[:, : 2 * m].reshape(BATCH, m, 2) * jnp.array([10, 2])).astype(jnp.int32)
    draws = jax.vmap(opponents.act_draws_from_block)(
        block[:, 2 * m:].reshape(BATCH, m, opponents.NUM_ACT_DRAWS)
    )
    has_last = jnp.arange(BATCH) % 3 > 0
    act = jax.vmap(opponents.act, in_axes=(0, 0, 0, 0, 0, 0, None))
    return jax.jit(act)(params, houses, locations, last, has_last, draws, jnp.array([0, 3, 5, 9]))


def fingerprint(tree) -> dict[str, str]:
    """{leaf path: sha256 of its dtype, shape and bytes}."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        arr = np.ascontiguousarray(np.asarray(leaf))
        digest = hashlib.sha256(f"{arr.dtype}{arr.shape}".encode() + arr.tobytes())
        out[jax.tree_util.keystr(path)] = digest.hexdigest()[:16]
    return out


def compute_all() -> dict[str, dict[str, str]]:
    result = {name: fingerprint(_rollout(name)) for name in CONFIGS}
    result["act_with_seats"] = fingerprint(_act_with_seats())
    return result


@pytest.mark.parametrize("name", [*CONFIGS, "act_with_seats"])
def test_outputs_bit_identical_to_golden(name):
    golden = json.loads(GOLDEN.read_text())[name]
    got = fingerprint(_act_with_seats() if name == "act_with_seats" else _rollout(name))
    assert got.keys() == golden.keys()
    moved = [leaf for leaf in golden if got[leaf] != golden[leaf]]
    assert not moved, f"{name}: outputs changed in {moved}"


if __name__ == "__main__":
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(compute_all(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
