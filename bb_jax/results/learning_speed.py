"""Learning speed from training curves: when a run beats a baseline for good.

A run's curve is read in chunks of equal length (updates): the episodes finished in each chunk
and their mean return. `smoothed_curve` pools every episode of the trailing window of chunks;
`first_crossing` is the first chunk end from which that curve stays strictly above a baseline's
mean to the end of the run. `learning_speed` applies it per scenario and seed to the RESULTS
experiment's figures (`bb_jax.results`; random and the best heuristic as baselines), with a
Student-t interval over the seeds that got there.
"""

from __future__ import annotations

import math

import numpy as np

from bb_jax.stats import mean_ci95


def chunk_totals(curves: dict, chunk_len: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Per member and chunk of `chunk_len` updates (the run's equal chunks): the env steps at
    the chunk's end, the episodes finished in it [P, C] and the sum of their returns [P, C]."""
    size, updates = curves["episodes_finished"].shape
    shape = (size, updates // chunk_len, chunk_len)
    episodes = np.asarray(curves["episodes_finished"]).reshape(shape).sum(axis=2)
    sums = np.asarray(curves["return_sum"], np.float64).reshape(shape).sum(axis=2)
    steps = [int(x) for x in curves["env_steps"][0, chunk_len - 1::chunk_len]]
    return steps, episodes, sums


def chunk_means(episodes, sums) -> list[float | None]:
    """Mean return of each chunk's finished episodes (None for a chunk that finished none)."""
    return [round(float(s / n), 2) if n > 0 else None for n, s in zip(episodes, sums)]


def window_chunks(chunk_steps: int, window_steps: int) -> int:
    """Chunks in the learning-speed window: the fewest whose env steps cover `window_steps`."""
    return max(1, math.ceil(window_steps / chunk_steps))


def smoothed_curve(episodes, means, window: int) -> np.ndarray:
    """At each chunk end, the mean return over every episode finished in the trailing `window`
    chunks (that chunk included; fewer at the start of the run), NaN where they finished none.
    `means[i]`: the mean return of chunk i's `episodes[i]` episodes (None if it had none)."""
    n = np.asarray(episodes, np.float64)
    m = np.asarray([np.nan if x is None else x for x in means], np.float64)
    kernel = np.ones(window)
    count = np.convolve(n, kernel)[: n.size]
    total = np.convolve(np.where(n > 0, m * n, 0.0), kernel)[: n.size]
    return np.divide(total, count, out=np.full(n.size, np.nan), where=count > 0)


def first_crossing(steps, smoothed, threshold: float) -> int | None:
    """Env steps of the first chunk end from which `smoothed` stays strictly above `threshold`
    at every later chunk end; None if it is not above at the last one (NaN is not above)."""
    above = np.asarray(smoothed, np.float64) > threshold
    if above.size == 0 or not above[-1]:
        return None
    below = np.flatnonzero(~above)
    return int(steps[below[-1] + 1 if below.size else 0])


def speed_figures(steps, curves, threshold: float) -> dict:
    """First crossing of `threshold` per seed's smoothed curve; mean and Student-t 95%
    half-width over the seeds that reached it (mean None if none did, ci95 None below two)."""
    per_seed = [first_crossing(steps, c, threshold) for c in curves]
    reached = [x for x in per_seed if x is not None]
    mean, ci = mean_ci95(reached)
    return {"baseline_mean": float(threshold), "per_seed": per_seed, "reached": len(reached),
            "seeds": len(per_seed), "mean": mean if reached else None,
            "ci95": ci if len(reached) >= 2 else None}


def learning_speed(results: dict, window_steps: int) -> dict:
    """Per scenario, when each seed's training curve beats random and the best heuristic for
    good (`first_crossing` of its `smoothed_curve`), from the report's per-chunk curves and its
    own baseline means."""
    steps = results["chunk_env_steps"]
    window = window_chunks(steps[0], window_steps)  # chunk ends are equally spaced from 0
    out = {}
    for name, ppo in results["ppo"].items():
        base = results["baselines"][name]
        curves = [smoothed_curve(e, m, window) for e, m in
                  zip(ppo["seed_chunk_episodes"], ppo["seed_chunk_mean_return"])]
        out[name] = {
            other: {"policy": policy,
                    **speed_figures(steps, curves, base["policies"][policy]["mean"])}
            for other, policy in (("random", "random"), ("heuristic", base["best_heuristic"]))
        }
    return {"window_chunks": window, "window_env_steps": window * steps[0],
            "chunk_env_steps": steps[0], "scenarios": out}
