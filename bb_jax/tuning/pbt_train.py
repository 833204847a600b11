"""One population-based training run: a compiled population trains in intervals; after each
interval but the last the members are evaluated on fresh episodes and `bb_jax.tuning.pbt`
decides who copies whom and with which new hyperparameters; the copy and the new values are
set on the device between two chunks (one program for the whole run).

With `checkpoints`, the population's whole state, the lineages, the explored
hyperparameters, the host's random generator and the curves are saved after every exploit
step, and a run that finds a checkpoint there goes on from it: a run stopped by Ctrl-C or
kill -9 and started again ends bit-identical to one that was never stopped.

The lineage is kept per member: the hyperparameters its current weights trained under (a
`Schedule` from update 0, its parent's history up to each copy, then its own explored
values), the seeds whose runs trained those weights (`weights_from`: a copy takes its
parent's weights, made by the parent's seed up to the copy) and the copies it made. A
member's schedule can be replayed from scratch with `train_seeds(..., schedule=...)`, which
is how its value is checked on fresh seeds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import numpy as np

from bb_jax import interrupts
from bb_jax.agent.config import stack_hyperparams
from bb_jax.runtime.checkpoints import Checkpoints
from bb_jax.runtime.driver import Driver
from bb_jax.runtime.population import Population
from bb_jax.runtime.schedule import Schedule
from bb_jax.tuning import pbt
from bb_jax.tuning.pbt import PBTRule


@dataclasses.dataclass
class Lineage:
    """One member's record. seed: the member's own seed (its PRNG stream and evaluation
    episodes); history: (first update, hyperparameters) of the values its current weights
    trained under; root: the member that lineage began with; weights_from: (first update,
    member position) of the members whose seeds' runs trained its current weights, from
    update 0 (its own alone until it copies); copies: (update, parent position) of each
    exploit; evaluations: fresh-episode mean return at each exploit step."""

    seed: int
    history: list[tuple[int, dict]]
    root: int  # the member whose initial weights and hyperparameters this lineage began with
    weights_from: list[tuple[int, int]]
    copies: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    evaluations: list[float] = dataclasses.field(default_factory=list)

    @property
    def schedule(self) -> Schedule:
        return Schedule(tuple((update, dict(row)) for update, row in self.history))

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, saved: dict) -> Lineage:
        return cls(saved["seed"], [(int(u), dict(row)) for u, row in saved["history"]],
                   saved["root"], [(int(u), int(p)) for u, p in saved["weights_from"]],
                   [(int(u), int(p)) for u, p in saved["copies"]], list(saved["evaluations"]))


@dataclasses.dataclass
class PBTRun:
    """The members' lineages, each exploit step's update count, the training curves
    ([members, updates]) and the final fresh-episode returns float[P, episodes].
    exploit_seconds: wall time of this process's exploit steps (evaluation, decisions, copy,
    new hyperparameters; from the end of an interval's training to the next one's start)."""

    lineages: list[Lineage]
    exploit_updates: list[int]
    curves: dict[str, np.ndarray]
    final_returns: np.ndarray
    exploit_seconds: float = 0.0

    @property
    def best(self) -> int:
        """The member with the highest final fresh-episode mean."""
        return int(np.argmax(self.final_returns.mean(axis=1)))


def run_pbt(population: Population, seeds: list[int], rows: list[dict], intervals: int,
            interval_updates: int, rule: PBTRule, rng: np.random.Generator,
            eval_episodes: int, environment: bool = False,
            on_interval: Callable[[int, np.ndarray | None], None] | None = None,
            checkpoints: Checkpoints | None = None) -> PBTRun:
    """Train `population` (its members start with hyperparameters `rows`, one seed each) for
    `intervals` x `interval_updates` updates with an exploit-and-explore step between two
    intervals. `environment`: a copy also takes its parent's environments and PRNG key.
    on_interval(updates done, fresh-episode means or None after the last): progress.
    checkpoints: saved after each exploit step, and the latest one resumed from (`rng` is
    then set to its saved state)."""
    if len(rows) != population.size or len(seeds) != population.size:
        raise ValueError(f"one row and one seed per member: {population.size} members, "
                         f"{len(rows)} rows, {len(seeds)} seeds")
    lineages = [Lineage(seed, [(0, dict(row))], i, [(0, i)])
                for i, (seed, row) in enumerate(zip(seeds, rows, strict=True))]
    rows = [dict(row) for row in rows]
    driver, exploit_updates, exploit_seconds = Driver(population), [], 0.0
    if checkpoints is not None and checkpoints.latest() is not None:
        restored = checkpoints.restore(population.state)
        saved = restored.settings
        population.state = restored.state
        driver = Driver(population, restored.updates, restored.curves)
        rows, exploit_updates = saved["rows"], saved["exploit_updates"]
        lineages = [Lineage.from_json(lineage) for lineage in saved["lineages"]]
        rng.bit_generator.state = saved["rng"]
        population.set_hyperparams(stack_hyperparams(rows))
    for step in range(len(exploit_updates), intervals):
        trained = driver.chunk(interval_updates)
        if step == intervals - 1:
            break
        done = driver.done
        interrupts.wait_ready(trained)  # the interval's training is done; Ctrl-C meanwhile
        began = time.perf_counter()
        returns = driver.evaluate(seeds, eval_episodes, step=step)
        means, _ = pbt.episode_scores(returns)
        parents, rows = pbt.step(rows, returns, rule, rng)
        population.copy_members(parents, environment=environment)
        population.set_hyperparams(stack_hyperparams(rows))
        jax.block_until_ready((population.state, population.hyperparams))
        exploit_seconds += time.perf_counter() - began
        _record_exploit(lineages, parents, rows, means, done, environment)
        exploit_updates.append(done)
        if on_interval is not None:  # before the checkpoint: a resume repeats, never skips it
            on_interval(done, means)
        if checkpoints is not None:
            with interrupts.deferred():  # a checkpoint is written whole
                checkpoints.save(done, population.state, driver.curves(), {
                    "rows": rows, "exploit_updates": exploit_updates,
                    "lineages": [lineage.as_json() for lineage in lineages],
                    "rng": rng.bit_generator.state})
                checkpoints.wait()  # on disk before the next interval: one per exploit step
    if on_interval is not None:
        on_interval(intervals * interval_updates, None)
    final = driver.evaluate(seeds, eval_episodes, step=intervals)
    return PBTRun(lineages, exploit_updates, driver.curves(), np.asarray(final),
                  exploit_seconds)


def _record_exploit(lineages: list[Lineage], parents, rows: list[dict], means, done: int,
                    environment: bool):
    """Each member's evaluation at this exploit step; a member that copied takes its
    parent's history and weights' seeds (as they were before this step) and goes on with its
    explored values, on its own seed's run (on its parent's with `environment`, which copies
    the PRNG key too)."""
    before = [(list(lineage.history), lineage.root, list(lineage.weights_from))
              for lineage in lineages]
    for i, (lineage, parent) in enumerate(zip(lineages, parents, strict=True)):
        lineage.evaluations.append(float(means[i]))
        if parent != i:
            history, lineage.root, weights_from = before[parent]
            lineage.history = [*history, (done, dict(rows[i]))]
            lineage.weights_from = weights_from if environment else [*weights_from,
                                                                     (done, i)]
            lineage.copies.append((done, int(parent)))
