"""Train many configurations as a few vectorised populations ("cohorts").

Members that share every static (shape-changing) setting — hidden size and batch size — form
one cohort and train as one `Population`; everything else (hyperparameters, scenario, seed) is
a traced row. Between chunks of about `eval_interval` env steps the caller sees every member's
intermediate value and may stop members; stopped or diverged members are dropped and the
survivors repacked into the next power-of-two size, so dropping costs at most log2(P) extra
compiles per cohort and stopped members cost no compute. Population sizes are chosen to keep
compiles few
(`CompileAwareSizing`). Knows nothing about Optuna.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax.game.scenarios import get_scenario, stack_scenarios
from bb_jax.train.config import DEFAULT_HYPERPARAMS, PPOConfig, stack_hyperparams
from bb_jax.train.cost import CompileClock, update_flops
from bb_jax.train.memory import memory_budget, population_limit
from bb_jax.train.population import Population, evaluation_key, padded_size
from bb_jax.train.runs import plan_chunks
from bb_jax.train.shapes import ShapeChoices


@dataclasses.dataclass(frozen=True)
class MemberSpec:
    """One training run: hyperparams holds the 8 traced values; seed makes its PRNG key."""

    member_id: int
    hidden_size: int
    batch_size: int
    hyperparams: dict
    scenario: str
    seed: int


@dataclasses.dataclass
class Report:
    """An intermediate value after `env_steps`: the mean return of every episode the member
    finished since its previous report (a few hundred episodes: much less noisy than the last
    100); `final` for the report at the end of training (stopping the member then saves
    nothing)."""

    member_id: int
    env_steps: int
    value: float
    final: bool = False
    flops: float = 0.0  # training FLOPs spent so far (`bb_jax.train.cost`)


@dataclasses.dataclass
class MemberResult:
    """How a member ended, and what it cost: `flops` of training (XLA's count), `seconds`
    its share of its program's training wall time (compiles excluded; a stretch's time is
    shared equally among the members it trained)."""

    member_id: int
    state: str  # "complete", "stopped" or "failed"
    value: float | None = None  # final objective (complete) or last value (stopped)
    reason: str = ""
    env_steps: int = 0
    flops: float = 0.0
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class MemberPlan:
    """How long a member trains: `updates` in all, in chunks of `chunk` updates (the last
    one shorter where `chunk` does not divide them: `plan_chunks`), a report every `every`
    chunks and after the last; `update_flops` is one update's cost."""

    updates: int
    chunk: int
    every: int
    update_flops: float

    @property
    def report_updates(self) -> int:
        return self.chunk * self.every


# a FLOP-budget run reports about this many times (chunks of a power of two updates)
BUDGET_REPORTS = 10


def next_power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, n))))


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
class CompileAwareSizing:
    """Chooses population sizes so a study compiles few programs.

    Each (shape, population size) is one compile (~5-20 s on a 2-core CPU). For a cohort of n
    members it compares: compiling a population of exactly n (rounded up to a multiple of the
    device count), or running in rounds of a size already compiled for that shape (padding the
    last round). Costs use measured seconds per member-env-step of the shape and a measured
    compile time; before any measurement it compiles. Padding costs what it trains: a 3-scenario
    trial of 2 seeds (6 members) padded to 8 spent a third more than its own runs.

    The same rule decides whether to repack survivors after pruning; a repack compiles the next
    power of two >= the survivors, so pruning costs at most log2(P) compiles per cohort."""

    compile_s: float = 15.0
    step_cost: dict = dataclasses.field(default_factory=dict)  # shape -> s per member-step
    sizes: dict = dataclasses.field(default_factory=dict)  # shape -> compiled sizes

    def known(self, shape) -> set[int]:
        return self.sizes.setdefault(shape, set())

    def choose(self, shape, n: int, steps: int, limit: int, rounds: bool = True) -> int:
        """Population size (<= limit) for n members that still need `steps` env steps each;
        with rounds=False (members mid-training) the size must hold all n."""
        fresh = min(padded_size(n) if rounds else next_power_of_two(n), max(1, limit))
        options = {fresh: self.cost(shape, n, fresh, steps, new=fresh not in self.known(shape))}
        for size in self.known(shape):
            if size <= limit and (rounds or size >= n):
                options[size] = self.cost(shape, n, size, steps, new=False)
        return min(options, key=lambda size: (options[size], -size))

    def cost(self, shape, n: int, size: int, steps: int, new: bool) -> float:
        per_step = self.step_cost.get(shape)
        rounds = -(-n // size)
        run = 0.0 if per_step is None else rounds * size * steps * per_step
        return run + (self.compile_s if new else 0.0)

    def observe(self, shape, size: int, seconds: float, member_steps: int, new: bool,
                compile_seconds: float = 0.0) -> None:
        """A timed stretch of training: `seconds` of wall time, `compile_seconds` of them
        compiling (JAX's own compile events; a new program's first stretch compiles)."""
        if new:
            self.compile_s = 0.5 * self.compile_s + 0.5 * compile_seconds
            self.known(shape).add(size)
        training = seconds - compile_seconds
        if training > 0:
            per_step = self.step_cost.get(shape)
            measured = training / max(1, member_steps)
            self.step_cost[shape] = measured if per_step is None else 0.5 * (per_step + measured)


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
    # bytes a population may use (bb_jax.train.memory); None: measured when `run` starts
    memory_budget: int | None = None
    shape_choices: ShapeChoices | None = None
    # members trained per compiled training program: (program name, population size) -> count
    programs: dict = dataclasses.field(default_factory=dict)
    compile_clock: CompileClock = dataclasses.field(default_factory=CompileClock)

    def config_for(self, hidden_size: int, batch_size: int) -> PPOConfig:
        return self.base_config.replace(hidden_size=hidden_size, batch_size=batch_size,
                                        total_steps=None)

    def cohort_of(self, spec: MemberSpec) -> tuple:
        """The cohort (program) a member trains in: its shape and length, or "padded" for
        all."""
        if self.shape_choices is not None:
            return ("padded",)
        return (*cohort_key(spec), self.plan(spec).updates)

    def plan(self, spec: MemberSpec) -> MemberPlan:
        """A member's training length. By env steps: num_steps // batch updates in chunks
        (`plan_chunks`), a report about every eval_interval env steps. By a FLOP budget: as
        many updates as the budget buys, in chunks of a power of two near a tenth of what its
        shape buys at the default epochs (a report at each; one chunk length, hence one
        compile, per shape and population size, shared by members of other epochs)."""
        config = self.config_for(spec.hidden_size, spec.batch_size)
        flops = update_flops(config, int(spec.hyperparams["num_epochs"]))
        if self.flop_budget is None:
            updates = self.num_steps // spec.batch_size
            target = round(self.eval_interval / spec.batch_size)
            chunk = plan_chunks(updates, target)[0]
            every = max(1, round(self.eval_interval / (chunk * spec.batch_size)))
            return MemberPlan(updates, chunk, every, flops)
        affordable = max(1, int(self.flop_budget // flops))
        # the chunk follows the shape alone (its cost at the default epochs), so every member
        # of a shape, the validation's control included, shares one compiled program
        typical = max(1, int(self.flop_budget // update_flops(
            config, DEFAULT_HYPERPARAMS["num_epochs"])))
        chunk = 1 << max(0, (typical // BUDGET_REPORTS).bit_length() - 1)
        chunk = min(chunk, 1 << (affordable.bit_length() - 1))
        return MemberPlan(affordable // chunk * chunk, chunk, 1, flops)

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
                self.progress(f"cohort {self._name(config)}: {len(members)} members in rounds "
                              f"of {size} (limit {limits[key]}: {why})")
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

    def _name(self, config: PPOConfig) -> str:
        if self.shape_choices is None:
            return f"hidden={config.hidden_size} batch={config.batch_size}"
        return f"padded (hidden<={config.hidden_size} batch<={config.batch_size})"

    def _stretches(self, population: Population, plans: dict[int, MemberPlan]):
        """Runs the population from one report to the next; yields each stretch's metrics
        (env_steps, finite, episodes_finished, return_sum: [P, updates])."""
        keys = ("env_steps", "finite", "episodes_finished", "return_sum")
        if population.shapes is None:
            plan = plans[next(m for m in population.members if m >= 0)]
            lengths = plan_chunks(plan.updates, plan.chunk)
            pending = []
            for index, length in enumerate(lengths, 1):
                pending.append(population.run(length))
                if index % plan.every and index != len(lengths):
                    continue  # no host sync between reports: dispatch stays asynchronous
                yield {k: np.concatenate([np.asarray(m[k]) for m in pending], axis=1)
                       for k in keys}
                pending = []
            return
        # a padded population: every call runs the longest stretch of its first members (one
        # compiled length per population); each member stops at its own next report (`until`),
        # so its report points are those of its exact cohort
        length = max(plans[m].report_updates for m in population.members if m >= 0)
        while True:
            # strides and totals follow the members through repacks (`keep`); a padding row
            # copies the member before it
            rows = [m for m in population.members if m >= 0]
            rows += [rows[-1]] * (population.size - len(rows))
            strides = np.array([plans[m].report_updates for m in rows])
            totals = np.array([plans[m].updates for m in rows])
            done = np.asarray(population.state.update)[: population.size]
            if np.all(done >= totals):
                return
            metrics = population.run(length, np.minimum(done + strides, totals))
            yield {k: np.asarray(metrics[k]) for k in keys}

    def _population(self, config, members, size) -> Population:
        """A population of `members`, padded to `size` with copies of the last (id -1)."""
        padded = list(members) + [members[-1]] * (size - len(members))
        ids = [m.member_id for m in members] + [-1] * (size - len(members))
        shapes = None
        if self.shape_choices is not None:
            shapes = jax.tree.map(lambda *x: jnp.stack(x), *[
                self.shape_choices.member(m.hidden_size, m.batch_size) for m in padded])
        return Population(
            config,
            stack_hyperparams([m.hyperparams for m in padded]),
            jnp.stack([jax.random.PRNGKey(m.seed) for m in padded]),
            stack_scenarios([get_scenario(m.scenario, config.num_opponents + 1) for m in padded]),
            members=ids, shapes=self.shape_choices, member_shapes=shapes,
        )

    def _run_cohort(self, key, config, members, size, on_reports) -> dict[int, MemberResult]:
        key = self.program_of(key, members)
        population = self._population(config, members, size)
        by_id = {m.member_id: m for m in members}
        plans = {m.member_id: self.plan(m) for m in members}
        program = (self._name(config), size)
        self.programs[program] = self.programs.get(program, 0) + len(members)

        def total_steps(member: int) -> int:
            return plans[member].updates * by_id[member].batch_size

        def cost(member: int, steps: int) -> dict:
            updates = steps // by_id[member].batch_size
            return {"env_steps": steps, "flops": updates * plans[member].update_flops,
                    "seconds": seconds.get(member, 0.0)}

        results: dict[int, MemberResult] = {}
        last_values: dict[int, float] = {}
        trained: dict[int, int] = {}  # env steps each member has trained
        seconds: dict[int, float] = {}  # each member's share of the training wall time
        started = stretch_start = time.perf_counter()
        compiled_before = self.compile_clock.seconds()
        for metrics in self._stretches(population, plans):
            # work in program iterations x the program's batch: a padded program computes its
            # largest batch for every member
            work = metrics["env_steps"].shape[1] * config.batch_size * population.size
            wall = time.perf_counter() - stretch_start
            compiling = self.compile_clock.seconds() - compiled_before
            self.sizing.observe(key, population.size, wall, work,
                                new=population.size not in self.sizing.known(key),
                                compile_seconds=compiling)
            training = [m for m in population.members if m >= 0 and m not in results]
            for member in training:
                seconds[member] = (seconds.get(member, 0.0)
                                   + max(0.0, wall - compiling) / len(training))
            steps = metrics["env_steps"][:, -1]
            trained.update((m, int(steps[p])) for p, m in enumerate(population.members) if m >= 0)
            episodes = metrics["episodes_finished"].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                interval_means = metrics["return_sum"].sum(axis=1) / episodes
            reports = []
            for pos, member in enumerate(population.members):
                if member < 0 or member in results:
                    continue
                at = int(steps[pos])
                if not bool(metrics["finite"][pos].all()):
                    results[member] = MemberResult(
                        member, "failed", reason="loss or parameters became NaN/inf "
                        f"by env step {at}", **cost(member, at))
                    continue
                value = float(interval_means[pos])
                if np.isfinite(value):
                    last_values[member] = value
                    reports.append(Report(member, at, value, final=at >= total_steps(member),
                                          flops=cost(member, at)["flops"]))
            stop = on_reports(reports) if reports else set()
            for member in stop:
                if member not in results:  # a member that failed stays failed
                    pos = list(population.members).index(member)
                    results[member] = MemberResult(member, "stopped",
                                                   value=last_values.get(member),
                                                   **cost(member, int(steps[pos])))
            live = [p for p, m in enumerate(population.members) if m >= 0 and m not in results]
            if self.progress is not None:
                rate = sum(trained.values()) / (time.perf_counter() - started)
                where = (f"step {int(steps[live[0]]):,}/"
                         f"{total_steps(population.members[live[0]]):,}, {len(live)} live"
                         if live else f"all {len(results)} member(s) done or stopped")
                self.progress(f"cohort {self._name(config)}: {where}, {rate:,.0f} env-steps/s")
            if not live:
                return results
            remaining = max(plans[population.members[p]].updates
                            - int(steps[p]) // by_id[population.members[p]].batch_size
                            for p in live)
            new_size = self.sizing.choose(key, len(live), remaining * config.batch_size,
                                          population.size, rounds=False)
            if new_size < population.size:
                population.keep(live, pad_to=new_size)
                self.programs.setdefault((self._name(config), new_size), 0)
            stretch_start = time.perf_counter()
            compiled_before = self.compile_clock.seconds()
        final_eval = None
        if self.eval_episodes > 0:
            keys = jnp.stack([evaluation_key(by_id[m].seed if m >= 0 else 0)
                              for m in population.members])
            final_eval = population.evaluate(keys, self.eval_episodes)
        for pos, member in enumerate(population.members):
            if member < 0 or member in results:
                continue
            value = (last_values.get(member) if final_eval is None
                     else float(final_eval[pos].mean()))
            if value is None or not np.isfinite(value):
                results[member] = MemberResult(member, "failed", reason="no episode completed",
                                               **cost(member, total_steps(member)))
            else:
                results[member] = MemberResult(member, "complete", value,
                                               **cost(member, total_steps(member)))
        return results
