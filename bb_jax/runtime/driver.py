"""The one host loop that drives a population: how a run splits into chunks, which PRNG keys
its members and their evaluation episodes get, and the chunk loop itself.

Every caller trains through a `Driver`: a multi-seed run (`bb_jax.runtime.runs`), the RESULTS
experiment, the tuner's cohorts (`bb_jax.runtime.cohorts`), population-based training and the
time-budget calibration. A chunk is one call of the compiled program (`num_updates` static):
between two chunks the host reports, reads intermediate values, stops members, copies them
(PBT) or sets new hyperparameters (a schedule), and a Ctrl-C or SIGTERM lands only there.

Seeding, decided here:

- a run's training key is `PRNGKey(seed)`, the same on every scenario (a trial's runs and a
  multi-seed run share their seeds across scenarios); the RESULTS experiment folds in the
  scenario's index (`training_keys(..., streams=...)`), one distinct run per (seed, scenario);
- its evaluation episodes come from `evaluation_key(seed)`: a function of the seed alone, so
  configurations trained on the same seed are judged on the same episodes (paired); PBT's
  exploit step `step` folds in `1 + step`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence

import jax
import numpy as np

from bb_jax import interrupts, wall_time
from bb_jax.agent.config import stack_hyperparams
from bb_jax.runtime.population import Population
from bb_jax.runtime.schedule import Schedule

EVALUATION_STREAM = 0x0E7A1  # folded into a run's seed for its evaluation episodes


def plan_chunks(num_updates: int, target: int) -> list[int]:
    """Chunk lengths (updates) summing to num_updates: the largest divisor of num_updates
    that is <= target, so one compiled chunk serves the whole run; when that divisor is below
    target / 2 (97 updates, a prime, would run as 97 one-update calls, ~15% slower on a
    CPU), chunks of `target` and one shorter last chunk: two compiled lengths."""
    target = max(1, min(int(target), num_updates))
    length = next(n for n in range(target, 0, -1) if num_updates % n == 0)
    if 2 * length >= target:
        return [length] * (num_updates // length)
    rest = num_updates % target
    return [target] * (num_updates // target) + ([rest] if rest else [])


def joined(chunks: list[dict]) -> dict[str, np.ndarray]:
    """The curves of consecutive chunks ([members, updates] arrays each) as one run's."""
    return {k: np.concatenate([np.asarray(c[k]) for c in chunks], axis=1) for k in chunks[0]}


def training_keys(seeds: Sequence[int], streams: Sequence[int] | None = None) -> jax.Array:
    """PRNG keys [P, 2] of P runs: `PRNGKey(seed)`, or with `streams` that key folded with the
    run's stream (one distinct run per (seed, stream))."""
    if streams is None:
        return jax.numpy.stack([jax.random.PRNGKey(int(seed)) for seed in seeds])
    return jax.numpy.stack([jax.random.fold_in(jax.random.PRNGKey(int(seed)), int(stream))
                            for seed, stream in zip(seeds, streams, strict=True)])


def evaluation_key(seed: int, step: int | None = None) -> jax.Array:
    """The PRNG key of a run's fresh evaluation episodes: a function of its seed alone (and
    of PBT's exploit `step`, when given), so configurations trained on the same seed are
    judged on the same episodes (paired)."""
    key = jax.random.fold_in(jax.random.PRNGKey(int(seed)), EVALUATION_STREAM)
    return key if step is None else jax.random.fold_in(key, 1 + int(step))


def evaluation_keys(seeds: Sequence[int], step: int | None = None) -> jax.Array:
    """`evaluation_key` of every seed, [P, 2]."""
    return jax.numpy.stack([evaluation_key(seed, step) for seed in seeds])


@dataclasses.dataclass
class Chunk:
    """One call of the compiled program: `length` updates, `done` updates done after it, and
    the metrics [P, length] (on the device until read)."""

    done: int
    length: int
    metrics: dict


class Driver:
    """Trains a population chunk by chunk: `done` updates so far (a resumed run starts past
    0) and, with `record`, the metrics of every chunk (`curves`; a resumed run passes the
    curves it restored). A chunk runs with signals deferred, so the state, the curves and
    `done` always agree when a Ctrl-C or SIGTERM is raised, right after the chunk."""

    def __init__(self, population: Population, done: int = 0, curves: dict | None = None,
                 record: bool = True, timed: bool = True):
        self.population = population
        self.done = done
        self.record = record
        self.timed = timed  # False: the caller times its training itself (the tuner's cohorts)
        self.history: list[dict] = [] if curves is None else [curves]

    def chunk(self, length: int, until=None) -> dict:
        """Train `length` more updates (a padded population: member i at most up to
        `until[i]` updates done). Returns the metrics [P, length]."""
        # training time: on a CPU a dispatch can wait for the chunk before it to finish
        timing = wall_time.part("training") if self.timed else contextlib.nullcontext()
        with interrupts.deferred(), timing:
            metrics = self.population.run(length, until)
            self.done += length
            if self.record:
                self.history.append(metrics)
        interrupts.raise_pending()  # a signal whose exception JAX swallowed
        return metrics

    def chunks(self, lengths: Sequence[int], schedule: Schedule | None = None,
               base: dict | None = None) -> Iterator[Chunk]:
        """Train `lengths` chunk after chunk, yielding each as soon as it is dispatched. With
        `schedule`, every member trains under `schedule.at(update, base)`, set on the device
        when a change starts (the same program: no recompile)."""
        in_force = base  # the population starts with `base`
        for length in lengths:
            if schedule is not None:
                row = schedule.at(self.done, base)
                if row != in_force:
                    self.population.set_hyperparams(
                        stack_hyperparams([row] * self.population.size))
                    in_force = row
            metrics = self.chunk(length)
            yield Chunk(self.done, length, metrics)

    def curves(self) -> dict[str, np.ndarray]:
        """Every recorded chunk's metrics joined along the updates: [P, updates] arrays."""
        self.history = [joined(self.history)]
        return self.history[0]

    def evaluate(self, seeds: Sequence[int], episodes: int, greedy: bool = False,
                 step: int | None = None) -> np.ndarray:
        """float32[P, episodes]: fresh episodes of each member, from its seed's
        `evaluation_key` (members in population order, one seed each)."""
        return self.population.evaluate(evaluation_keys(seeds, step), episodes, greedy)
