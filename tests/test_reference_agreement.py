"""Exact agreement between the JAX view and the independent plain-Python reference.

Both are fed the same uniform blocks and learner actions. For every opponent configuration a
single jitted `lax.scan` (vmapped over environments, scenario traced) runs all 12 scenarios;
the reference then replays each environment in a Python loop. Half the environments get
blocks in which half of the uniforms sit exactly on decision thresholds (see
`bbref_helpers.edge_values`), so `<` versus `<=` and float32 rounding are exercised too.
"""

from __future__ import annotations

import numpy as np
import pytest
from bbref_helpers import (
    CONFIG_IDS,
    CONFIGS,
    EDGE_ROWS,
    ENV_SCENARIOS,
    STEPS,
    as_numpy,
    jax_env,
    last_actions_from_obs,
    make_inputs,
    reference_rollout,
    replay_fn,
    scenario_batch,
)

from bb_jax.testing.reference_game import ReferenceEnv, scenario_values

# Rewards: the JAX code may add the reward terms in another order; the terms reach |A|+|L| =
# 200, where one float32 ulp is ~1.5e-5, so allow a few ulps at that scale.
REWARD_ATOL = 3e-5


_cache: dict = {}


def run_both(kinds, max_steps, seed=0):
    """(inputs, JAX trajectory, list of reference trajectories), cached per config."""
    key = (kinds, max_steps, seed)
    if key not in _cache:
        n = len(kinds) + 1
        env = jax_env(kinds, max_steps)
        inputs = make_inputs(env, len(ENV_SCENARIOS), STEPS, seed, edge_rows=EDGE_ROWS)
        reset_blocks, blocks, actions = inputs
        traj = as_numpy(replay_fn(kinds, max_steps)(
            scenario_batch(ENV_SCENARIOS, n), reset_blocks, blocks, actions
        ))
        refs = [
            reference_rollout(name, kinds, reset_blocks[b], blocks[:, b], actions[:, b],
                              max_steps=max_steps)
            for b, name in enumerate(ENV_SCENARIOS)
        ]
        _cache[key] = (inputs, traj, refs)
    return _cache[key]


def first_mismatch(a, b):
    diff = np.asarray(a) != np.asarray(b)
    diff = diff.reshape(diff.shape[0], -1).any(axis=1)
    return int(np.argmax(diff)) if diff.any() else None


@pytest.mark.parametrize("kinds,max_steps", CONFIGS, ids=CONFIG_IDS)
def test_trajectories_identical(kinds, max_steps):
    n = len(kinds) + 1
    _, traj, refs = run_both(kinds, max_steps)
    for b, (name, ref) in enumerate(zip(ENV_SCENARIOS, refs)):
        where = f"scenario={name} env={b} N={n}"
        np.testing.assert_array_equal(traj["obs0"][b], ref["obs0"], err_msg=f"reset obs {where}")
        for field in ("obs", "final_obs", "terminated", "truncated", "episode_length"):
            jx = traj[field][:, b]
            t = first_mismatch(jx, ref[field])
            assert t is None, (
                f"{field} differs at step {t} ({where}):\njax={jx[t]}\nref={ref[field][t]}"
            )
        # every agent's action, opponents included, read from the step's last_actions
        jax_actions = last_actions_from_obs(traj["final_obs"][:, b], n)
        t = first_mismatch(jax_actions, ref["actions"])
        assert t is None, (
            f"actions differ at step {t} ({where}):\njax={jax_actions[t]}\nref={ref['actions'][t]}"
        )
        np.testing.assert_allclose(
            traj["reward"][:, b], ref["reward"], rtol=1e-6, atol=REWARD_ATOL,
            err_msg=f"reward {where}",
        )
        np.testing.assert_allclose(
            traj["episode_return"][:, b], ref["episode_return"], rtol=1e-5, atol=1e-3,
            err_msg=f"episode_return {where}",
        )
        # the state's houses are those of the returned observation (after auto-reset)
        np.testing.assert_array_equal(traj["houses"][:, b], traj["obs"][:, b, :10])


@pytest.mark.parametrize("kinds,max_steps", CONFIGS, ids=CONFIG_IDS)
def test_rollouts_exercise_every_branch(kinds, max_steps):
    """Guard against a vacuous agreement: the compared rollouts must contain resets,
    truncations (where max_steps allows), every house state, and both modes for every agent."""
    n = len(kinds) + 1
    _, traj, refs = run_both(kinds, max_steps)
    assert traj["terminated"].sum() > 100
    if max_steps < 20:
        assert traj["truncated"].sum() > 100
        assert (traj["terminated"] & traj["truncated"]).sum() > 0
    houses = traj["final_obs"][..., :10]
    for state in (0, 1, 2):
        assert (houses == state).any()
    actions = np.stack([r["actions"] for r in refs])  # [B, T, N, 2]
    for i in range(n):
        if i > 0 and kinds[i - 1] == "hero":  # p0 = p1 = 1, p6 = 0: a hero always works
            assert np.all(actions[:, :, i, 1] == 1)
            continue
        assert set(np.unique(actions[:, :, i, 1])) == {0, 1}, f"agent {i} never changes mode"
        assert len(np.unique(actions[:, :, i, 0])) >= 5, f"agent {i} visits few houses"


def test_reference_own_rng_mode_replays_with_blocks():
    """The reference's numpy-RNG mode is its replay mode fed with the generator's blocks."""
    env_a = ReferenceEnv("hard", num_opponents=3)
    env_b = ReferenceEnv("hard", num_opponents=3)
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    obs_a = env_a.reset(rng_a)
    obs_b = env_b.reset_with_draws(rng_b.random(env_b.num_reset_draws, dtype=np.float32))
    np.testing.assert_array_equal(obs_a, obs_b)
    for t in range(200):
        action = (t % 10, t % 2)
        out_a = env_a.step(rng_a, action)
        out_b = env_b.step_with_draws(action, rng_b.random(env_b.num_draws, dtype=np.float32))
        np.testing.assert_array_equal(out_a[0], out_b[0])
        assert out_a[1:4] == out_b[1:4]


def test_reference_layout_sizes_match_jax():
    for kinds, max_steps in CONFIGS:
        ref = ReferenceEnv("default", len(kinds), list(kinds), max_steps)
        env = jax_env(kinds, max_steps)
        assert ref.num_draws == env.num_draws
        assert ref.num_reset_draws == env.num_reset_draws
        assert ref.observation_size == env.observation_size


# --- quirks ----------------------------------------------------------------------------------


def test_p_spread_never_changes_a_trajectory():
    """(quirk) burn-out runs before spread, so nothing burns when spread is evaluated: the same
    draws with p_spread = 0 or 1 (and spread uniforms forced to 0, i.e. 'always spread')
    give the same trajectory as the scenario's own p_spread."""
    kinds, max_steps = CONFIGS[1]
    n = len(kinds) + 1
    (reset_blocks, blocks, actions), traj, _ = run_both(kinds, max_steps)
    fn = replay_fn(kinds, max_steps)
    always_spread = blocks.copy()
    always_spread[..., 10:30] = 0.0  # the spread uniforms (10 houses x 2 neighbours)
    p_spread_index = 10 + 4 * n
    for p_spread, blk in ((0.0, blocks), (1.0, blocks), (1.0, always_spread)):
        scn = scenario_batch(ENV_SCENARIOS, n).replace(
            p_spread=np.full(len(ENV_SCENARIOS), p_spread, np.float32)
        )
        other = as_numpy(fn(scn, reset_blocks, blk, actions))
        for field in ("reward", "terminated", "truncated", "episode_length", "houses"):
            np.testing.assert_array_equal(other[field], traj[field], err_msg=field)
        for field in ("obs", "final_obs"):
            a = np.delete(other[field], p_spread_index, axis=-1)
            b = np.delete(traj[field], p_spread_index, axis=-1)
            np.testing.assert_array_equal(a, b, err_msg=field)
            assert np.all(other[field][..., p_spread_index] == np.float32(p_spread))
    # the reference agrees: spread draws of 0 with p_spread = 1 change nothing either
    scenario = dict(scenario_values("hard"))
    scenario["p_spread"] = 1.0
    base = ReferenceEnv("hard", num_opponents=2)
    spready = ReferenceEnv(scenario, num_opponents=2)
    base.reset_with_draws(reset_blocks[0])
    spready.reset_with_draws(reset_blocks[0])
    for t in range(STEPS):
        a = base.step_with_draws(actions[t, 0], blocks[t, 0])
        b = spready.step_with_draws(actions[t, 0], always_spread[t, 0])
        assert a[1:4] == b[1:4]
        np.testing.assert_array_equal(a[0][:10], b[0][:10])


def test_trivial_cooperation_lasts_13_steps_and_ends_all_safe():
    """p_fire = 0: nothing ever burns, so every episode terminates at night min_nights = 12,
    i.e. after exactly 13 steps, with all houses SAFE."""
    for kinds, max_steps in CONFIGS[:4]:
        _, traj, refs = run_both(kinds, max_steps)
        rows = [b for b, name in enumerate(ENV_SCENARIOS) if name == "trivial_cooperation"]
        for b in rows:
            done = traj["terminated"][:, b] | traj["truncated"][:, b]
            assert done.sum() == STEPS // 13
            assert np.all(traj["terminated"][:, b] == done)
            assert np.all(traj["episode_length"][:, b][done] == 13)
            assert np.all(traj["final_obs"][:, b, :10][done] == 0)
            assert np.all(traj["obs"][:, b, :10] == 0)
            assert np.array_equal(done, np.asarray(refs[b]["terminated"]))
