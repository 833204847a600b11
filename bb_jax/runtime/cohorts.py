"""Train many configurations as a few vectorised populations ("cohorts").

Members that share every static (shape-changing) setting — hidden size and batch size — form
one cohort and train as one `Population`; everything else (hyperparameters, scenario, seed) is
a traced row. Between chunks of about `eval_interval` env steps the caller sees every member's
intermediate value and may stop members; stopped or diverged members are dropped and the
survivors repacked into the next power-of-two size, so dropping costs at most log2(P) extra
compiles per cohort and stopped members cost no compute. Population sizes are chosen to keep
compiles few (`bb_jax.runtime.sizing`). Knows nothing about Optuna.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax import envs, wall_time
from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig, ShapeChoices, stack_hyperparams
from bb_jax.runtime import kept_params
from bb_jax.runtime.cost import CompileClock, update_flops
from bb_jax.runtime.driver import Driver, plan_chunks, training_keys
from bb_jax.runtime.members import MemberPlan, MemberResult, MemberSpec, Report
from bb_jax.runtime.memory import memory_budget, population_limit
from bb_jax.runtime.population import Population
from bb_jax.runtime.sizing import CompileAwareSizing, next_power_of_two

# a FLOP-budget run reports about this many times (chunks of a power of two updates)
BUDGET_REPORTS = 10
# a FLOP-budget run ends with pieces of 1/TAIL_PIECES of a chunk: it spends its budget to
# within half a piece (1/16 of a chunk, or half an update where a chunk is under 8 updates)
TAIL_PIECES = 8


def tail_piece(chunk: int) -> int:
    """Updates per tail piece of a FLOP-budget run whose chunks are `chunk` updates."""
    return max(1, chunk // TAIL_PIECES)


def cohort_key(spec: MemberSpec) -> tuple[int, int]:
    return (spec.hidden_size, spec.batch_size)


def group_cohorts(specs: Sequence[MemberSpec],
                  key: Callable[[MemberSpec], tuple] = cohort_key) -> dict[tuple, list[MemberSpec]]:
    """Group by `key` (default: static shape), in order of first appearance."""
    cohorts: dict[tuple, list[MemberSpec]] = {}
    for spec in specs:
        cohorts.setdefault(key(spec), []).append(spec)
    return cohorts


@dataclasses.dataclass
class CohortTrainer:
    """Static settings shared by all cohorts: the base config's fields other than hidden size
    and batch size, the env steps per member and the report interval. With `shape_choices`
    every member trains in one shape-padded program of those shapes (`--shapes padded`)
    instead of one program per (hidden size, batch size)."""

    base_config: PPOConfig
    num_steps: int
    eval_interval: int
    # > 0: every member trains until it has spent this many FLOPs (its env steps follow
    # from its cost), instead of `num_steps` env steps
    flop_budget: float | None = None
    eval_episodes: int = 0  # > 0: final value = mean return over this many fresh episodes
    max_population: int = 1024  # larger cohorts train in several rounds (memory bound)
    progress: Callable[[str], None] | None = None
    sizing: CompileAwareSizing = dataclasses.field(default_factory=CompileAwareSizing)
    # bytes a population may use (bb_jax.runtime.memory); None: measured when `run` starts
    memory_budget: int | None = None
    shape_choices: ShapeChoices | None = None
    # members trained per compiled training program: (program name, population size) -> count
    programs: dict = dataclasses.field(default_factory=dict)
    compile_clock: CompileClock = dataclasses.field(default_factory=CompileClock)

    def config_for(self, hidden_size: int, batch_size: int) -> PPOConfig:
        """An exact cohort's config: the base config at this shape, its environments derived
        from this batch (`default_num_envs`, num_envs=None) as train_simple.py derives them, so
        a cohort trains the learner (envs x rollout length) its printed command trains."""
        return self.base_config.replace(hidden_size=hidden_size, batch_size=batch_size,
                                        num_envs=None, total_steps=None)

    def cohort_of(self, spec: MemberSpec) -> tuple:
        """The cohort (program) a member trains in: its shape and length, or "padded" for
        all."""
        if self.shape_choices is not None:
            return ("padded",)
        return (*cohort_key(spec), self.plan(spec).updates)

    def plan(self, spec: MemberSpec) -> MemberPlan:
        """A member's training length. By env steps: num_steps // batch updates in chunks
        (`plan_chunks`), a report about every eval_interval env steps. By a FLOP budget: the
        updates nearest what the budget buys, to a multiple of a tail piece (`tail_piece`),
        in chunks of a power of two near a tenth of what its shape buys at the default epochs
        (a report at each) and tail pieces (one report): one chunk length and one piece
        length, hence two compiles, per shape and population size, shared by members of
        other epochs. It spends the budget to within half a piece."""
        config = self.config_for(spec.hidden_size, spec.batch_size)
        flops = update_flops(config, int(spec.hyperparams["num_epochs"]))
        if self.flop_budget is None:
            updates = self.num_steps // spec.batch_size
            target = round(self.eval_interval / spec.batch_size)
            chunk = plan_chunks(updates, target)[0]
            every = max(1, round(self.eval_interval / (chunk * spec.batch_size)))
            return MemberPlan(updates, chunk, every, flops)
        affordable = self.flop_budget / flops
        # the chunk follows the shape alone (its cost at the default epochs), so every member
        # of a shape, the validation's control included, shares one compiled program
        typical = max(1, int(self.flop_budget // update_flops(
            config, DEFAULT_HYPERPARAMS["num_epochs"])))
        chunk = 1 << max(0, (typical // BUDGET_REPORTS).bit_length() - 1)
        chunk = min(chunk, 1 << (max(1, int(affordable)).bit_length() - 1))
        piece = tail_piece(chunk)
        return MemberPlan(max(1, round(affordable / piece)) * piece, chunk, 1, flops)

    def stretches(self, plan: MemberPlan) -> list[list[int]]:
        """The chunk lengths (updates) a member of `plan` trains, grouped by report: by env
        steps `plan_chunks`, `plan.every` chunks a report; by a FLOP budget, a report after
        each chunk and one after the tail pieces past the last whole chunk."""
        if self.flop_budget is None:
            lengths = plan_chunks(plan.updates, plan.chunk)
            return [lengths[i : i + plan.every] for i in range(0, len(lengths), plan.every)]
        piece = tail_piece(plan.chunk)
        whole, tail = divmod(plan.updates, plan.chunk)
        return [[plan.chunk]] * whole + ([[piece] * (tail // piece)] if tail else [])

    def run(
        self,
        specs: Sequence[MemberSpec],
        on_reports: Callable[[list[Report]], set[int]] = lambda reports: set(),
        on_finished: Callable[[dict[int, MemberResult]], None] = lambda results: None,
    ) -> dict[int, MemberResult]:
        """Train every member; `on_reports` receives each round of intermediate values and
        returns the ids of members to stop; `on_finished` receives the results of each
        population as soon as it ends (before the next one trains). Returns a result per
        member id."""
        results: dict[int, MemberResult] = {}
        budget = self.memory_budget if self.memory_budget is not None else memory_budget()
        cohorts = group_cohorts(specs, self.cohort_of)
        padded = self.shape_choices
        configs = {key: (self.config_for(*key[:2]) if padded is None else
                         padded.config(self.base_config.replace(total_steps=None)))
                   for key in cohorts}
        # members per population: --max-population, lowered to what fits in device memory;
        # every cohort is checked before any trains (PopulationMemoryError: not even one fits)
        limits = {key: population_limit(
            config, budget, self.max_population, self.eval_episodes, padded,
            needed=min(self.max_population, next_power_of_two(len(cohorts[key]))))
            for key, config in configs.items()}
        for key, members in cohorts.items():
            config = configs[key]
            work = max(self.plan(m).updates for m in members) * config.batch_size
            size = self.sizing.choose(self.program_of(key, members), len(members), work,
                                      limits[key])
            if len(members) > limits[key] and self.progress is not None:
                why = "device memory" if limits[key] < self.max_population else "max population"
                self.progress(f"cohort {self.program_name(config)}: {len(members)} members in "
                              f"rounds of {size} (limit {limits[key]}: {why})")
            for start in range(0, len(members), size):
                group = members[start : start + size]
                finished = self._run_cohort(key, config, group, size, on_reports)
                results.update(finished)
                on_finished(finished)
        return results

    def program_of(self, key, members: Sequence[MemberSpec]) -> tuple:
        """What a cohort's compiled program depends on besides its population size: its
        shape and chunk length (cohorts of one shape that train for different numbers of
        updates share it), or "padded"."""
        if self.shape_choices is not None:
            return key
        return (*key[:2], self.plan(members[0]).chunk)

    def program_name(self, config: PPOConfig) -> str:
        if self.shape_choices is None:
            return f"hidden={config.hidden_size} batch={config.batch_size}"
        return f"padded (hidden<={config.hidden_size} batch<={config.batch_size})"

    def _population(self, config, members, size) -> Population:
        """A population of `members`, repacked to `size` with copies of the last (id -1)."""
        rows = list(members) + [members[-1]] * (size - len(members))
        ids = [m.member_id for m in members] + [-1] * (size - len(members))
        shapes = None
        if self.shape_choices is not None:
            shapes = jax.tree.map(lambda *x: jnp.stack(x), *[
                self.shape_choices.member(m.hidden_size, m.batch_size) for m in rows])
        return Population(
            config,
            stack_hyperparams([m.hyperparams for m in rows]),
            training_keys([m.seed for m in rows]),
            envs.stacked_params(config, [m.scenario for m in rows]),
            members=ids, shapes=self.shape_choices, member_shapes=shapes,
        )

    def _run_cohort(self, key, config, members, size, on_reports) -> dict[int, MemberResult]:
        program = (self.program_name(config), size)
        self.programs[program] = self.programs.get(program, 0) + len(members)
        run = _CohortRun(self, self.program_of(key, members), config,
                         self._population(config, members, size), members)
        return run.train(on_reports)


class _CohortRun:
    """One population of a cohort from its first chunk to its results: stretches from one
    report to the next, their cost, the reports (a NaN fails its member), the members the
    caller stops, repacking the survivors, and the final values."""

    STRETCH_KEYS = ("env_steps", "finite", "episodes_finished", "return_sum")

    def __init__(self, trainer: CohortTrainer, program: tuple, config: PPOConfig,
                 population: Population, members: Sequence[MemberSpec]):
        self.trainer, self.program, self.config = trainer, program, config
        self.population = population
        self.driver = Driver(population, record=False, timed=False)
        self.by_id = {m.member_id: m for m in members}
        self.plans = {m.member_id: trainer.plan(m) for m in members}
        self.results: dict[int, MemberResult] = {}
        self.last_values: dict[int, float] = {}
        self.trained: dict[int, int] = {}  # env steps each member has trained
        self.seconds: dict[int, float] = {}  # each member's share of the training wall time

    def train(self, on_reports) -> dict[int, MemberResult]:
        clock = self.trainer.compile_clock
        started = stretch_start = time.perf_counter()
        compiled_before = clock.seconds()
        for metrics in self._stretches():
            self._observe(metrics, time.perf_counter() - stretch_start,
                          clock.seconds() - compiled_before)
            steps = metrics["env_steps"][:, -1]
            reports = self._reports(metrics, steps)
            self._stop(on_reports(reports) if reports else set(), steps)
            live = [p for p, m in enumerate(self.population.members)
                    if m >= 0 and m not in self.results]
            self._progress(live, steps, started)
            if not live:
                return self.results
            self._repack(live, steps)
            stretch_start, compiled_before = time.perf_counter(), clock.seconds()
        return self._finish()

    def _stretches(self):
        """Runs the population from one report to the next; yields each stretch's metrics
        (STRETCH_KEYS: [P, updates])."""
        if self.population.member_shapes is None:
            yield from self._exact_stretches()
        else:
            yield from self._padded_stretches()

    def _exact_stretches(self):
        plan = self.plans[next(m for m in self.population.members if m >= 0)]
        for lengths in self.trainer.stretches(plan):
            # no host sync within a stretch: dispatch stays asynchronous
            chunks = [self.driver.chunk(length) for length in lengths]
            yield {k: np.concatenate([np.asarray(m[k]) for m in chunks], axis=1)
                   for k in self.STRETCH_KEYS}

    def _padded_stretches(self):
        """Every call runs the longest stretch of its first members (one compiled length per
        population); each member stops at its own next report (`until`), so its report
        points are those of its exact cohort."""
        population = self.population
        length = max(self.plans[m].report_updates for m in population.members if m >= 0)
        while True:
            # strides and totals follow the members through repacks (`keep`); a filler row
            # copies the member before it
            rows = [m for m in population.members if m >= 0]
            rows += [rows[-1]] * (population.size - len(rows))
            strides = np.array([self.plans[m].report_updates for m in rows])
            totals = np.array([self.plans[m].updates for m in rows])
            done = np.asarray(population.state.update)[: population.size]
            if np.all(done >= totals):
                return
            metrics = self.driver.chunk(length, np.minimum(done + strides, totals))
            yield {k: np.asarray(metrics[k]) for k in self.STRETCH_KEYS}

    def _observe(self, metrics: dict, wall: float, compiling: float) -> None:
        """A stretch's cost: the sizing rule learns its seconds per member-env-step (work in
        program iterations x the program's batch: a padded program computes its largest
        batch for every member), and its training time is shared among its members."""
        sizing = self.trainer.sizing
        work = metrics["env_steps"].shape[1] * self.config.batch_size * self.population.size
        sizing.observe(self.program, self.population.size, wall, work,
                       new=self.population.size not in sizing.known(self.program),
                       compile_seconds=compiling)
        wall_time.add("training", wall - compiling)
        training = [m for m in self.population.members if m >= 0 and m not in self.results]
        for member in training:
            self.seconds[member] = (self.seconds.get(member, 0.0)
                                    + max(0.0, wall - compiling) / len(training))

    def _reports(self, metrics: dict, steps) -> list[Report]:
        """Each training member's value over the stretch (the mean return of the episodes it
        finished); a member whose loss or parameters became NaN/inf fails."""
        members = self.population.members
        self.trained.update((m, int(steps[p])) for p, m in enumerate(members) if m >= 0)
        episodes = metrics["episodes_finished"].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            interval_means = metrics["return_sum"].sum(axis=1) / episodes
        reports = []
        for pos, member in enumerate(members):
            if member < 0 or member in self.results:
                continue
            at = int(steps[pos])
            if not bool(metrics["finite"][pos].all()):
                self.results[member] = MemberResult(
                    member, "failed", reason="loss or parameters became NaN/inf "
                    f"by env step {at}", **self._cost(member, at))
                continue
            value = float(interval_means[pos])
            if np.isfinite(value):
                self.last_values[member] = value
                reports.append(Report(member, at, value, final=at >= self._total_steps(member),
                                      flops=self._cost(member, at)["flops"]))
        return reports

    def _stop(self, stop: set[int], steps) -> None:
        members = list(self.population.members)
        for member in stop:
            if member not in self.results:  # a member that failed stays failed
                self.results[member] = MemberResult(
                    member, "stopped", value=self.last_values.get(member),
                    **self._cost(member, int(steps[members.index(member)])))

    def _progress(self, live: list[int], steps, started: float) -> None:
        if self.trainer.progress is None:
            return
        rate = sum(self.trained.values()) / (time.perf_counter() - started)
        members = self.population.members
        where = (f"step {int(steps[live[0]]):,}/{self._total_steps(members[live[0]]):,}, "
                 f"{len(live)} live" if live else
                 f"all {len(self.results)} member(s) done or stopped")
        self.trainer.progress(f"cohort {self.trainer.program_name(self.config)}: {where}, "
                              f"{rate:,.0f} env-steps/s")

    def _repack(self, live: list[int], steps) -> None:
        """Drop the stopped and failed members: the survivors go on in a smaller population
        when the sizing rule finds the compile worth it."""
        members = self.population.members
        remaining = max(self.plans[members[p]].updates
                        - int(steps[p]) // self.by_id[members[p]].batch_size for p in live)
        size = self.trainer.sizing.choose(self.program, len(live),
                                          remaining * self.config.batch_size,
                                          self.population.size, rounds=False)
        if size < self.population.size:
            self.population.keep(live, size=size)
            name = self.trainer.program_name(self.config)
            self.trainer.programs.setdefault((name, size), 0)

    def _finish(self) -> dict[int, MemberResult]:
        """The final values: the last interval's mean, or the mean of fresh episodes."""
        final_eval = None
        members = self.population.members
        if self.trainer.eval_episodes > 0:
            seeds = [self.by_id[m].seed if m >= 0 else 0 for m in members]
            final_eval = self.driver.evaluate(seeds, self.trainer.eval_episodes)
        for pos, member in enumerate(members):
            if member < 0 or member in self.results:
                continue
            value = (self.last_values.get(member) if final_eval is None
                     else float(final_eval[pos].mean()))
            cost = self._cost(member, self._total_steps(member))
            if value is None or not np.isfinite(value):
                self.results[member] = MemberResult(member, "failed",
                                                    reason="no episode completed", **cost)
            else:
                self.results[member] = MemberResult(member, "complete", value, **cost)
                if kept_params.wanted():  # a caller keeps the trained policies
                    kept_params.keep(self.by_id[member], self.config,
                                     self.population.member_params(pos))
        return self.results

    def _total_steps(self, member: int) -> int:
        return self.plans[member].updates * self.by_id[member].batch_size

    def _cost(self, member: int, steps: int) -> dict:
        updates = steps // self.by_id[member].batch_size
        return {"env_steps": steps, "flops": updates * self.plans[member].update_flops,
                "seconds": self.seconds.get(member, 0.0)}
