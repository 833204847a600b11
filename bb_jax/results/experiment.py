"""The RESULTS experiment (docs/RESULTS.md, `scripts/results_report.py`): PPO on every scenario
next to the uniform-random policy and the heuristic archetypes in the learner's seat.

All scenarios x seeds train as ONE population (scenario parameters are traced rows, so one
compiled program serves every member), with the default configuration (`PPOConfig`'s shapes,
`DEFAULT_HYPERPARAMS`) unless told otherwise. Each member is then evaluated on fresh episodes,
sampling its policy and acting greedily; its last-100 training mean is read from the run. The
baselines (`bb_jax.runtime.baselines`) play the same view: random, and each archetype in seat
0; the best archetype per scenario is the one with the highest mean. Learning speed
(`bb_jax.results.learning_speed`): per seed, the env steps from which its smoothed training
curve (per-chunk returns) stays above each baseline's mean.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import jax
import numpy as np

from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig, resolve, stack_hyperparams
from bb_jax.game.opponents import ARCHETYPES
from bb_jax.game.scenarios import get_scenario, list_scenarios, stack_scenarios
from bb_jax.machine import machine_info
from bb_jax.results.learning_speed import chunk_means, chunk_totals, learning_speed
from bb_jax.results.verdicts import episode_ci, seed_ci, verdicts
from bb_jax.runtime import baselines
from bb_jax.runtime.driver import Driver, plan_chunks, training_keys
from bb_jax.runtime.population import Population


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    num_steps: int = 500_000  # env steps per member
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    scenarios: tuple[str, ...] = tuple(list_scenarios())
    num_opponents: int = 2
    hidden_size: int = PPOConfig.hidden_size
    batch_size: int = PPOConfig.batch_size
    eval_episodes: int = 1000  # per member and mode
    baseline_episodes: int = 4000  # per scenario, policy and batch (two batches)
    chunk_updates: int = 8
    seed: int = 0  # evaluation keys
    speed_window_steps: int = 20_000  # learning speed: smoothing window, in env steps (at least)

    def config(self) -> PPOConfig:
        return resolve(PPOConfig(scenario=self.scenarios[0], num_opponents=self.num_opponents,
                                 hidden_size=self.hidden_size, batch_size=self.batch_size,
                                 total_steps=self.num_steps), jax.default_backend())


def _rounded(values) -> list[float]:
    return [round(float(x), 2) for x in values]


def train_all(settings: ReportSettings, progress: Callable[[str], None] | None = print) -> dict:
    """Train every (scenario, seed) as one population; evaluate. Returns per-scenario PPO
    figures, the mean training curve per scenario, each seed's per-chunk training returns
    (episodes finished and their mean return per chunk, `chunk_env_steps` at chunk ends) and
    timings."""
    config = settings.config()
    names = [s for s in settings.scenarios for _ in settings.seeds]
    seeds = [seed for _ in settings.scenarios for seed in settings.seeds]
    # a distinct stream per member: the seed, folded with the scenario's index
    keys = training_keys(seeds, [list_scenarios().index(n) for n in names])
    scenarios = stack_scenarios([get_scenario(n, settings.num_opponents + 1) for n in names])
    size = len(names)
    start = time.perf_counter()
    driver = Driver(Population(config, stack_hyperparams([{}] * size), keys, scenarios))
    plan = plan_chunks(config.num_updates, settings.chunk_updates)
    for chunk in driver.chunks(plan):
        if progress is not None:
            done = int(np.asarray(chunk.metrics["env_steps"])[0, -1])
            elapsed = time.perf_counter() - start
            progress(f"train: {done:>9,}/{config.num_updates * config.batch_size:,} steps per "
                     f"member, {size} members, {done * size / elapsed:,.0f} steps/s, "
                     f"{elapsed:.0f} s")
    curves = driver.curves()
    train_s = time.perf_counter() - start
    if not bool(np.all(curves["finite"])):
        raise RuntimeError("non-finite parameters or losses during training")
    start = time.perf_counter()
    # the experiment's own evaluation episodes: one key for all, split by member position
    eval_key = jax.random.PRNGKey(settings.seed + 1)
    sampled = driver.population.evaluate(eval_key, settings.eval_episodes, greedy=False)
    greedy = driver.population.evaluate(eval_key, settings.eval_episodes, greedy=True)
    eval_s = time.perf_counter() - start
    chunk_steps, chunk_episodes, chunk_sums = chunk_totals(curves, plan[0])
    out = {}
    for name in settings.scenarios:
        rows = [i for i, n in enumerate(names) if n == name]
        out[name] = {
            "ppo_sampled": seed_ci(sampled[rows].mean(axis=1)),
            "ppo_greedy": seed_ci(greedy[rows].mean(axis=1)),
            "ppo_train_last100": seed_ci(curves["mean_return"][rows, -1]),
            "train_curve_mean": _rounded(np.nanmean(curves["mean_return"][rows], axis=0)),
            "train_curve_min": _rounded(np.nanmin(curves["mean_return"][rows], axis=0)),
            "train_curve_max": _rounded(np.nanmax(curves["mean_return"][rows], axis=0)),
            "seed_chunk_episodes": chunk_episodes[rows].astype(int).tolist(),
            "seed_chunk_mean_return": [chunk_means(chunk_episodes[i], chunk_sums[i])
                                       for i in rows],
        }
    steps = curves["env_steps"][0].tolist()
    return {"ppo": out, "curve_env_steps": steps, "chunk_env_steps": chunk_steps,
            "members": size, "env_steps_per_member": int(steps[-1]), "train_wall_s": train_s,
            "eval_wall_s": eval_s}


def evaluate_baselines(settings: ReportSettings) -> dict:
    """Random and every archetype per scenario, each over 2 x baseline_episodes fresh
    episodes (two vmapped calls of one compiled program). The best archetype is the one with
    the highest mean: the maximum of five noisy means can only flatter the heuristic (by
    about one standard error), so "PPO beats the best heuristic" is a conservative call."""
    start = time.perf_counter()
    names = list(settings.scenarios)
    keys = jax.random.split(jax.random.PRNGKey(settings.seed + 2))
    batches = [baselines.all_baseline_returns(names, settings.baseline_episodes, k,
                                              settings.num_opponents) for k in keys]
    out = {}
    for name in names:
        figures = {}
        for policy in batches[0][name]:
            mean, ci = episode_ci(np.concatenate([b[name][policy] for b in batches]))
            figures[policy] = {"mean": mean, "ci95": ci}
        best = max(ARCHETYPES, key=lambda k: figures[k]["mean"])
        out[name] = {"policies": figures, "best_heuristic": best}
    return {"baselines": out, "baseline_wall_s": time.perf_counter() - start}


def run_report(settings: ReportSettings, progress: Callable[[str], None] | None = print) -> dict:
    start = time.perf_counter()
    machine = machine_info()
    results = {"settings": {**dataclasses.asdict(settings),
                            "hyperparameters": dict(DEFAULT_HYPERPARAMS),
                            "learner": settings.config().learner_choices},
               "machine": machine}
    results.update(train_all(settings, progress))
    if progress is not None:
        progress(f"trained and evaluated in {time.perf_counter() - start:.0f} s; baselines")
    results.update(evaluate_baselines(settings))
    results["wall_s"] = time.perf_counter() - start
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["verdicts"] = verdicts(results)
    results["learning_speed"] = learning_speed(results, settings.speed_window_steps)
    return results
