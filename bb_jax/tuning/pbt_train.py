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
from bb_jax.agent.config import DEFAULT_HYPERPARAMS, stack_hyperparams
from bb_jax.runtime.checkpoints import Checkpoints
from bb_jax.runtime.driver import Driver, training_keys
from bb_jax.runtime.population import Population
from bb_jax.runtime.schedule import Schedule
from bb_jax.tuning import pbt
from bb_jax.tuning.pbt import PBTRule
from bb_jax.tuning.space import tuning_seeds


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


def record_run(study, trials: list, run: PBTRun, config, settings, seconds: float) -> None:
    """Each member's trial (`trials`, in member order): its lineage as user attributes and
    its final value, the mean of its final fresh episodes (its intermediate values were
    reported live); the study's PBT settings (`settings`, a TuneSettings) beside them.
    Lineage attributes: `seed` (its own), `weights_from` (the seeds whose runs trained its
    final weights, from which env step), `schedule` (the hyperparameters those weights
    trained under, in env steps, as `train_simple.py --schedule` reads them), `root` and
    `copies` (trial numbers)."""
    batch = config.batch_size
    for key, value in (("strategy", "pbt"), ("scenarios", [config.scenario]),
                       ("num_opponents", config.num_opponents),
                       ("num_steps", config.total_steps)):
        study.set_user_attr(key, value)
    study.set_user_attr("pbt", {
        "population_size": len(trials), "interval_env_steps": settings.pbt.interval,
        "quantile": settings.pbt.quantile, "margin": settings.pbt.margin,
        "eval_episodes": settings.eval_episodes, "hidden_size": config.hidden_size,
        "batch_size": batch, "exploit_env_steps": [u * batch for u in run.exploit_updates],
        "wall_time_s": round(seconds, 2)})
    for trial, lineage, final in zip(trials, run.lineages, run.final_returns, strict=True):
        trial.set_user_attr("seed", lineage.seed)
        trial.set_user_attr("weights_from", [
            {"env_steps": u * batch, "trial": trials[m].number, "seed": run.lineages[m].seed}
            for u, m in lineage.weights_from])
        trial.set_user_attr("root", trials[lineage.root].number)
        trial.set_user_attr("schedule", lineage.schedule.as_env_steps(batch))
        trial.set_user_attr("copies", [{"env_steps": u * batch, "parent": trials[p].number}
                                       for u, p in lineage.copies])
        study.tell(trial, float(np.mean(final)))


def train_study(study, trials: list, settings, config, rule: PBTRule, interval_updates: int,
                checkpoints: Checkpoints) -> PBTRun:
    """`--strategy pbt`'s run: one member per trial of `study` (its parameters the member's
    starting hyperparameters, on its tuning seed), trained in intervals of
    `interval_updates`, continued from the latest of `checkpoints`; each member's
    fresh-episode means reported to its trial at every exploit step, a progress line
    printed, and the lineages recorded (`record_run`) when it ends."""
    batch, size = config.batch_size, len(trials)
    rows = [{**DEFAULT_HYPERPARAMS, **{k: v for k, v in t.params.items()
                                       if k in DEFAULT_HYPERPARAMS}} for t in trials]
    seeds = tuning_seeds(settings.seed, size)
    resumed = checkpoints.latest()
    print(f"study {study.study_name} | PBT: {size} members x {config.total_steps:,} env steps "
          f"| hidden {config.hidden_size} batch {batch} | exploit every "
          f"{settings.pbt.interval:,} steps (bottom {rule.quantile:g} copy the top beyond "
          f"{rule.margin:g} standard errors)"
          + ("" if resumed is None else f" | continued from {resumed * batch:,} env steps"),
          flush=True)
    started = time.perf_counter()

    def progress(updates: int, means) -> None:
        best = "" if means is None else f"  best fresh-episode mean {np.max(means):8.2f}"
        if means is not None:  # live in the study: intermediate values per member
            for trial, value in zip(trials, means, strict=True):
                trial.report(float(value), updates * batch)
        print(f"{updates * batch:>10,} env steps  {time.perf_counter() - started:7.1f} s"
              f"{best}", flush=True)

    population = Population(config, stack_hyperparams(rows), training_keys(seeds))
    run = run_pbt(population, seeds, rows, config.total_steps // batch // interval_updates,
                  interval_updates, rule, np.random.default_rng(settings.seed),
                  settings.eval_episodes, on_interval=progress, checkpoints=checkpoints)
    with interrupts.deferred():  # every member told, then the checkpoints closed
        record_run(study, trials, run, config, settings, time.perf_counter() - started)
        checkpoints.close()
    return run
