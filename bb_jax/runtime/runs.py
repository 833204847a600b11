"""Train one configuration over several seeds (and scenarios) as one population, through the
driver (`bb_jax.runtime.driver`): progress lines, live metrics, checkpoints and their resume,
and a hyperparameter schedule. Saving and loading a finished run: `bb_jax.runtime.saved_runs`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import numpy as np

from bb_jax import envs, interrupts, wall_time
from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig, stack_hyperparams
from bb_jax.runtime.checkpoints import Checkpoints
from bb_jax.runtime.driver import Driver, plan_chunks, training_keys
from bb_jax.runtime.population import Population
from bb_jax.runtime.schedule import Schedule
from bb_jax.stats import mean_ci95


class Diverged(RuntimeError):
    """A member's loss or parameters became NaN/inf: the run stops (one line says where)."""


@dataclasses.dataclass
class SeedRun:
    """Result of `train_seeds`: one member per (seed, scenario), seed-major (member
    i * K + k is seed i on scenario k of K); curves [S * K, num_updates] and final figures."""

    config: PPOConfig
    hyperparams: dict
    seeds: list[int]
    curves: dict[str, np.ndarray]
    eval_sampled: np.ndarray  # float32[S * K, M]
    eval_greedy: np.ndarray
    wall_time_s: float
    population: Population
    scenarios: list[str] = dataclasses.field(default_factory=list)  # default: the config's
    schedule: list[dict] | None = None  # changes of the hyperparameters (schedule-file form)

    def __post_init__(self):
        self.scenarios = list(self.scenarios) or [self.config.scenario]

    @property
    def members(self) -> list[tuple[int, str]]:
        """(seed, scenario) of each member, in population order."""
        return [(seed, name) for seed in self.seeds for name in self.scenarios]

    @property
    def final_returns(self) -> np.ndarray:
        """float[S, K]: each member's mean of its last 100 training episodes."""
        return self.curves["mean_return"][:, -1].reshape(len(self.seeds), len(self.scenarios))

    def summary(self) -> dict:
        """Final figures; with several scenarios `final_return` and the evaluations are the
        per-seed means over scenarios (the tuner's objective) and `per_scenario` gives each
        scenario's own."""
        finals = self.final_returns
        mean, ci = mean_ci95(finals.mean(axis=1))
        shape = (len(self.seeds), len(self.scenarios), -1)
        s_mean, s_ci = mean_ci95(self.eval_sampled.reshape(shape).mean(axis=(1, 2)))
        g_mean, g_ci = mean_ci95(self.eval_greedy.reshape(shape).mean(axis=(1, 2)))
        steps = int(self.curves["env_steps"][0, -1]) * len(self.members)
        per_scenario = {}
        for k, name in enumerate(self.scenarios):
            k_mean, k_ci = mean_ci95(finals[:, k])
            per_scenario[name] = {"mean": k_mean, "ci95": k_ci, "per_seed": finals[:, k].tolist()}
        return {
            "scenario": ",".join(self.scenarios),
            "scenarios": self.scenarios,
            "num_opponents": self.config.num_opponents,
            "seeds": self.seeds,
            "final_return": {"mean": mean, "ci95": ci,
                             "per_seed": finals.mean(axis=1).tolist()},
            "per_scenario": per_scenario,
            "eval_return_sampled": {"mean": s_mean, "ci95": s_ci},
            "eval_return_greedy": {"mean": g_mean, "ci95": g_ci},
            "env_steps_total": steps,
            "wall_time_s": self.wall_time_s,
            "env_steps_per_s": steps / self.wall_time_s if self.wall_time_s > 0 else None,
        }


def train_seeds(
    config: PPOConfig,
    hyperparams: dict,
    seeds: list[int],
    chunk_updates: int = 10,
    eval_episodes: int = 200,
    progress: Callable[[int, str], None] | None = None,
    scenarios: list[str] | None = None,
    init_params=None,
    checkpoints: Checkpoints | None = None,
    checkpoint_every: int = 0,
    on_chunk: Callable[[dict, int], None] | None = None,
    schedule: Schedule | None = None,
) -> SeedRun:
    """Train every seed of one configuration on every scenario (default: the config's) as one
    vmapped population of seeds x scenarios, in chunks. A seed's PRNG key is the same on every
    scenario, as in the tuner's trials.

    init_params: network parameters (`load_params`) every member starts from instead of its
    own initialisation (the optimizer state starts fresh). checkpoints: the run continues
    from their latest checkpoint if there is one, saves one every `checkpoint_every` updates
    (rounded up to whole chunks; 0: none) and one when interrupted (KeyboardInterrupt, which
    is raised again). on_chunk(metrics, first_update): each chunk's metrics ([members,
    updates] arrays) as soon as it is done, for live logs. progress(env steps per seed done,
    text): after each chunk (`bb_jax.progress.Progress.update`). schedule: hyperparameters
    that change between chunks (each change on a chunk boundary), over `hyperparams`."""
    scenarios = list(scenarios or [config.scenario])
    hp_row = {**DEFAULT_HYPERPARAMS, **hyperparams}
    members = [(seed, name) for seed in seeds for name in scenarios]
    tables = envs.stacked_params(config, [name for _, name in members])
    start = time.perf_counter()
    population = Population(config, stack_hyperparams([hp_row] * len(members)),
                            training_keys([seed for seed, _ in members]), tables)
    if init_params is not None:
        population.state = population.state.replace(params=jax.tree.map(
            lambda row, x: jax.device_put(np.broadcast_to(x, row.shape).astype(row.dtype),
                                          row.sharding),
            population.state.params, init_params))
    plan = plan_chunks(config.num_updates, chunk_updates)
    if schedule is not None:
        schedule.check_boundaries(plan[0])
    driver, earlier_s = Driver(population), 0.0
    if checkpoints is not None and checkpoints.latest() is not None:
        restored = checkpoints.restore(population.state)
        population.state, earlier_s = restored.state, restored.settings["elapsed_s"]
        driver = Driver(population, restored.updates, restored.curves)
        if on_chunk is not None:
            on_chunk(restored.curves, 1)
    watch = _Watch(config, members, start - earlier_s, progress, on_chunk,
                   checkpoints, checkpoint_every)
    watch.train(driver, plan[driver.done // plan[0]:], schedule, hp_row)
    curves = driver.curves()
    eval_seeds = [seed for seed, _ in members]
    eval_sampled = driver.evaluate(eval_seeds, eval_episodes, greedy=False)
    eval_greedy = driver.evaluate(eval_seeds, eval_episodes, greedy=True)
    return SeedRun(config, hp_row, list(seeds), curves, eval_sampled, eval_greedy,
                   time.perf_counter() - start + earlier_s, population, scenarios,
                   None if schedule is None else schedule.as_env_steps(config.batch_size))


@dataclasses.dataclass
class _Watch:
    """What a multi-seed run does between chunks: live metrics, a progress line and
    checkpoints (every `checkpoint_every` updates, and on an interrupt); a chunk in which a
    member diverged raises `Diverged` (after its metrics are logged, before any checkpoint)."""

    config: PPOConfig
    members: list[tuple[int, str]]  # (seed, scenario) of each member
    started: float  # perf_counter of the run's start, earlier sessions' time included
    progress: Callable[[int, str], None] | None
    on_chunk: Callable[[dict, int], None] | None
    checkpoints: Checkpoints | None
    checkpoint_every: int

    def train(self, driver: Driver, plan: list[int], schedule: Schedule | None,
              base: dict) -> None:
        """Each chunk: wait for it, check it, checkpoint it (copied off the device, written in
        the background), dispatch the next one, then log it while the next one trains."""
        saved = driver.done
        chunks = driver.chunks(plan, schedule, base)
        try:
            chunk = next(chunks, None)
            while chunk is not None:
                with wall_time.part("training"):
                    jax.block_until_ready(chunk.metrics)
                self._check_finite(chunk)
                if self.checkpoint_every and chunk.done - saved >= self.checkpoint_every:
                    with interrupts.deferred():  # copied whole; a Ctrl-C then finds it
                        self._save(driver)
                        saved = chunk.done
                following = next(chunks, None)  # dispatched: it trains while this is logged
                self._log(chunk)
                chunk = following
        except KeyboardInterrupt:
            if driver.done > saved:
                with interrupts.deferred():  # a second Ctrl-C waits for the checkpoint
                    self._save(driver)
            raise
        finally:
            if self.checkpoints is not None:
                with interrupts.deferred():  # however it ends, the last checkpoint is on disk
                    self.checkpoints.wait()

    def _log(self, chunk) -> None:
        """The chunk's live metrics and progress line."""
        if self.on_chunk is not None:
            self.on_chunk(chunk.metrics, chunk.done - chunk.length + 1)
        if self.progress is not None:
            self._report(chunk)

    def _check_finite(self, chunk) -> None:
        """Raise Diverged naming the first member and env step whose update was not finite."""
        finite = np.asarray(chunk.metrics["finite"])  # bool[members, chunk length]
        if finite.all():
            return
        if self.on_chunk is not None:  # the diverged chunk's metrics are logged first
            self.on_chunk(chunk.metrics, chunk.done - chunk.length + 1)
        member, t = (int(i) for i in np.argwhere(~finite)[0])
        seed, scenario = self.members[member]
        step = (chunk.done - chunk.length + 1 + t) * self.config.batch_size
        raise Diverged(f"training diverged: seed {seed} on {scenario}: loss or parameters "
                       f"became NaN/inf by env step {step}")

    def _report(self, chunk) -> None:
        """The progress line: the one value read per chunk (it waits for the chunk)."""
        returns = np.asarray(chunk.metrics["mean_return"][:, -1])
        shown = (f"return {np.nanmean(returns):8.2f}" if np.isfinite(returns).any()
                 else "no episode finished yet")
        steps = chunk.done * self.config.batch_size
        rate = steps * len(self.members) / (time.perf_counter() - self.started)
        self.progress(steps, f"{rate:>9,.0f} steps/s  {shown}")

    def _save(self, driver: Driver) -> None:
        if self.checkpoints is None:
            return
        self.checkpoints.save(driver.done, driver.population.state, driver.curves(),
                              {"elapsed_s": time.perf_counter() - self.started})
