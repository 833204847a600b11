"""Statistical agreement with the upstream implementation (../shared/reference_stats.json;
skipped without it, failed without it where $CI is set): every scenario of the file (slow),
and the default scenario alone on fewer environments (quick, in CI).

Agent 0 acts uniformly at random, default opponents, max_steps from the file. All listed
scenarios run in one jitted `lax.scan` over a `vmap` of environments (scenario traced). Each
environment contributes its first EPISODES_PER_ENV episodes; the scan is long enough
(EPISODES_PER_ENV * max_steps) that they always finish, so no episode-length bias is
introduced by cutting the horizon.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bbref_helpers import reference_stats, scenario_batch

from bb_jax import make_env

ENVS_PER_SCENARIO = 2560
QUICK_ENVS = 2048  # the quick tier's environments: 4096 episodes of one scenario
EPISODES_PER_ENV = 2
METRICS = ("episode_length", "agent0_return", "final_safe", "final_ruined", "initial_burning")
NUM_SE = 4.0


def episode_stats(num_opponents: int, max_steps: int, names: list[str], seed: int,
                  envs_per_scenario: int = ENVS_PER_SCENARIO):
    """dict metric -> float64[len(names), envs_per_scenario * EPISODES_PER_ENV]."""
    env = make_env("default", num_opponents=num_opponents, max_steps=max_steps)
    n_agents = num_opponents + 1
    env_names = [name for name in names for _ in range(envs_per_scenario)]
    scenarios = scenario_batch(env_names, n_agents)
    batch = len(env_names)
    steps = EPISODES_PER_ENV * max_steps

    @jax.jit
    def run(key, scenarios):
        key, reset_key = jax.random.split(key)
        reset_blocks = env.sample_reset_draws(reset_key, (batch,))
        obs, state = jax.vmap(env.reset_with_draws)(reset_blocks, scenarios)
        stats = jnp.zeros((batch, EPISODES_PER_ENV, len(METRICS)), jnp.float32)
        stats = stats.at[:, 0, 4].set(jnp.sum(obs[:, :10] == 1, axis=-1))
        episode = jnp.zeros(batch, jnp.int32)

        def body(carry, step_key):
            state, stats, episode = carry
            draw_key, act_key = jax.random.split(step_key)
            blocks = env.sample_draws(draw_key, (batch,))
            actions = jax.random.randint(act_key, (batch, 2), 0, jnp.array([10, 2]))
            obs, state, _, term, trunc, info = jax.vmap(env.step_with_draws)(
                state, actions, blocks, scenarios
            )
            done = term | trunc
            final_houses = info["final_observation"][:, :10]
            burning_now = jnp.sum(obs[:, :10] == 1, axis=-1).astype(jnp.float32)
            finished = jnp.stack([
                info["episode_length"].astype(jnp.float32),
                info["episode_return"],
                jnp.sum(final_houses == 0, axis=-1).astype(jnp.float32),
                jnp.sum(final_houses == 2, axis=-1).astype(jnp.float32),
                jnp.zeros(batch, jnp.float32),
            ], axis=-1)  # [B, M]
            slots = jnp.arange(EPISODES_PER_ENV)[None, :]
            # the episode that just finished: all metrics but initial_burning
            end_slot = done[:, None] & (slots == episode[:, None])  # [B, E]
            is_end_metric = jnp.arange(len(METRICS)) < 4
            stats = jnp.where(end_slot[:, :, None] & is_end_metric, finished[:, None, :], stats)
            # the episode that starts now: initial_burning
            start_slot = done[:, None] & (slots == episode[:, None] + 1)
            stats = jnp.where(start_slot[:, :, None] & ~is_end_metric,
                              burning_now[:, None, None], stats)
            episode = episode + done.astype(jnp.int32)
            return (state, stats, episode), None

        (_, stats, episode), _ = jax.lax.scan(
            body, (state, stats, episode), jax.random.split(key, steps)
        )
        return stats, episode

    stats, episode = jax.device_get(run(jax.random.key(seed), scenarios))
    assert np.all(episode >= EPISODES_PER_ENV), "some episodes did not finish"
    stats = np.asarray(stats, np.float64).reshape(len(names), -1, len(METRICS))
    return {m: stats[..., k] for k, m in enumerate(METRICS)}


def measure(ref: dict, envs_per_scenario: int = ENVS_PER_SCENARIO) -> dict:
    """Our statistics for each scenario of `ref`: name -> metric -> float64[episodes]."""
    groups: dict[tuple[int, int], list[str]] = {}
    for name, entry in ref.items():
        groups.setdefault((entry["num_opponents"], entry["max_steps"]), []).append(name)
    out = {}
    for (num_opponents, max_steps), names in groups.items():
        stats = episode_stats(num_opponents, max_steps, names, seed=12345,
                              envs_per_scenario=envs_per_scenario)
        for i, name in enumerate(names):
            out[name] = {m: stats[m][i] for m in METRICS}
    return out


@pytest.fixture(scope="module")
def measured():
    ref = reference_stats()
    return ref, measure(ref)


def mismatches(ref: dict, out: dict) -> list[str]:
    """One line per scenario and metric whose means differ by more than NUM_SE combined
    standard errors."""
    failures = []
    for name, entry in ref.items():
        for metric in METRICS:
            if metric not in entry:
                continue
            sample = out[name][metric]
            mean = sample.mean()
            se = sample.std(ddof=1) / np.sqrt(sample.size)
            combined = float(np.hypot(entry[metric]["se"], se))
            tol = NUM_SE * combined + 1e-6 * max(1.0, abs(entry[metric]["mean"]))
            diff = mean - entry[metric]["mean"]
            line = (f"{name}.{metric}: jax {mean:.4f} (se {se:.4f}, n {sample.size}) vs "
                    f"upstream {entry[metric]['mean']:.4f} (se {entry[metric]['se']:.4f}); "
                    f"diff {diff:+.4f}, tol {tol:.4f}")
            if abs(diff) > tol:
                failures.append(line)
    return failures


@pytest.mark.slow
def test_matches_upstream_statistics(measured):
    failures = mismatches(*measured)
    assert not failures, "\n".join(failures)


def test_default_scenario_matches_upstream_statistics():
    """The quick sibling: the default scenario alone, 4096 episodes."""
    ref = {"default": reference_stats()["default"]}
    out = measure(ref, QUICK_ENVS)
    assert out["default"]["episode_length"].size >= 4000
    failures = mismatches(ref, out)
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_enough_episodes(measured):
    ref, out = measured
    for name in ref:
        assert out[name]["episode_length"].size >= 4000
