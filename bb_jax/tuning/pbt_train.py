"""One population-based training run: a compiled population trains in intervals; after each
interval but the last the members are evaluated on fresh episodes and `bb_jax.tuning.pbt`
decides who copies whom and with which new hyperparameters; the copy and the new values are
set on the device between two chunks (one program for the whole run).

The lineage is kept per member: the hyperparameters its current weights trained under (a
`Schedule` from update 0, its parent's history up to each copy, then its own explored
values) and the copies it made. A member's schedule can be replayed from scratch with
`train_seeds(..., schedule=...)`, which is how its value is checked on fresh seeds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from bb_jax.train.config import stack_hyperparams
from bb_jax.train.population import Population, evaluation_key
from bb_jax.train.runs import joined
from bb_jax.train.schedule import Schedule
from bb_jax.tuning import pbt
from bb_jax.tuning.pbt import PBTRule


@dataclasses.dataclass
class Lineage:
    """One member's record. history: (first update, hyperparameters) of the values its
    current weights trained under; root: the member that lineage began with; copies:
    (update, parent position) of each exploit; evaluations: fresh-episode mean return at
    each exploit step."""

    seed: int
    history: list[tuple[int, dict]]
    root: int  # the member whose initial weights and hyperparameters this lineage began with
    copies: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    evaluations: list[float] = dataclasses.field(default_factory=list)

    @property
    def schedule(self) -> Schedule:
        return Schedule(tuple((update, dict(row)) for update, row in self.history))


@dataclasses.dataclass
class PBTRun:
    """The members' lineages, each exploit step's update count, the training curves
    ([members, updates]) and the final fresh-episode returns float[P, episodes]."""

    lineages: list[Lineage]
    exploit_updates: list[int]
    curves: dict[str, np.ndarray]
    final_returns: np.ndarray

    @property
    def best(self) -> int:
        """The member with the highest final fresh-episode mean."""
        return int(np.argmax(self.final_returns.mean(axis=1)))


def _evaluation_keys(seeds: list[int], step: int) -> jax.Array:
    """Fresh episodes per member and exploit step: a function of the member's seed and the
    step alone."""
    return jax.numpy.stack([jax.random.fold_in(evaluation_key(seed), 1 + step)
                            for seed in seeds])


def run_pbt(population: Population, seeds: list[int], rows: list[dict], intervals: int,
            interval_updates: int, rule: PBTRule, rng: np.random.Generator,
            eval_episodes: int, environment: bool = False,
            on_interval: Callable[[int, np.ndarray | None], None] | None = None) -> PBTRun:
    """Train `population` (its members start with hyperparameters `rows`, one seed each) for
    `intervals` x `interval_updates` updates with an exploit-and-explore step between two
    intervals. `environment`: a copy also takes its parent's environments and PRNG key.
    on_interval(updates done, fresh-episode means or None after the last): progress."""
    if len(rows) != population.size or len(seeds) != population.size:
        raise ValueError(f"one row and one seed per member: {population.size} members, "
                         f"{len(rows)} rows, {len(seeds)} seeds")
    lineages = [Lineage(seed, [(0, dict(row))], i)
                for i, (seed, row) in enumerate(zip(seeds, rows, strict=True))]
    rows = [dict(row) for row in rows]
    chunks, exploit_updates = [], []
    for step in range(intervals):
        chunks.append(population.run(interval_updates))
        if step == intervals - 1:
            break
        done = (step + 1) * interval_updates
        returns = population.evaluate(_evaluation_keys(seeds, step), eval_episodes)
        means, errors = pbt.episode_scores(returns)
        parents, rows = pbt.step(rows, means, errors, rule, rng)
        population.copy_members(parents, environment=environment)
        population.set_hyperparams(stack_hyperparams(rows))
        before = [(list(lineage.history), lineage.root) for lineage in lineages]
        for i, (lineage, parent) in enumerate(zip(lineages, parents, strict=True)):
            lineage.evaluations.append(float(means[i]))
            if parent != i:
                history, lineage.root = before[parent]
                lineage.history = [*history, (done, dict(rows[i]))]
                lineage.copies.append((done, int(parent)))
        exploit_updates.append(done)
        if on_interval is not None:
            on_interval(done, means)
    if on_interval is not None:
        on_interval(intervals * interval_updates, None)
    curves = joined(chunks)
    final = population.evaluate(_evaluation_keys(seeds, intervals), eval_episodes)
    return PBTRun(lineages, exploit_updates, curves, np.asarray(final))
