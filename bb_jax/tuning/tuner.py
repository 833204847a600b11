"""The Optuna side of tuning: ask trials in batches, train each batch as vectorised cohorts
(`bb_jax.runtime.cohorts`), report intermediate values, prune inside populations and tell
results. The study it works on: `bb_jax.tuning.study`; the outputs: `bb_jax.tuning.outputs`.

This module is the only one that talks to Optuna's study (ask/tell/report/should_prune);
`bb_jax.tuning.liveness` fails the trials of dead workers.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence

import jax
import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from bb_jax import interrupts
from bb_jax.agent.config import PPOConfig, resolve
from bb_jax.progress import Progress
from bb_jax.runtime.cohorts import CohortTrainer
from bb_jax.runtime.members import MemberResult, Report
from bb_jax.stats import mean_ci95
from bb_jax.tuning.callbacks import tuner_callbacks
from bb_jax.tuning.liveness import Heartbeat, fail_stale_trials, tag_trial
from bb_jax.tuning.settings import BUDGET_SCALE, TuneSettings, shape_choices
from bb_jax.tuning.space import LARGEST_BATCH, member_spec
from bb_jax.tuning.storage import check_writable, make_storage
from bb_jax.tuning.study import open_study, settled, trial_id
from bb_jax.tuning.warm_start import copied


class Tuner:
    """Runs `settings.n_trials` new trials of a study in batches of `population_size`."""

    def __init__(self, settings: TuneSettings, log: Callable[[str], None] = print,
                 callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = ()):
        """`callbacks`: called as callback(study, frozen_trial) after each trial is told (the
        signature of study.optimize's callbacks, so optuna-integration's MLflowCallback and
        WeightsAndBiasesCallback attach as they are), after those `settings` names."""
        self.log = log
        # kept: Optuna keeps a study's storage private, and trial ids need it (liveness.py)
        self.storage = make_storage(settings.storage)
        check_writable(self.storage, settings.storage)  # read-only: refused before training
        self.study = open_study(settings, self.storage)
        # the settings the study runs with: its name and FLOP budget
        self.settings = settings = settled(settings, self.study)
        self.study_id = self.storage.get_study_id_from_name(self.study.study_name)
        metric_names = [settings.objective, *(["tflops_per_run"] * settings.multi_objective)]
        self.callbacks = (*tuner_callbacks(settings.callbacks, settings.mlflow_uri,
                                           self.study.study_name, metric_names), *callbacks)
        self.trainer = CohortTrainer(
            base_config=resolve(PPOConfig(scenario=settings.scenarios[0],
                                          num_opponents=settings.num_opponents,
                                          env=settings.env, total_steps=settings.num_steps,
                                          batch_size=LARGEST_BATCH), jax.default_backend()),
            num_steps=settings.num_steps,
            eval_interval=settings.eval_interval,
            flop_budget=settings.flop_budget,
            eval_episodes=settings.eval_episodes if settings.objective == "eval_return" else 0,
            max_population=settings.max_population,
            progress=self._progress_line,
            shape_choices=(shape_choices(settings.search_space())
                           if settings.shapes == "padded" else None),
        )
        # the study's own seeds, recorded at its creation: every worker and every resume
        # trains on them whatever its --seed (which then seeds only its sampler), so all
        # trials of the study stay paired
        self.tuning_seeds = list(self.study.user_attrs["tuning_seeds"])
        # what every trial samples from
        self.space = settings.search_space()
        self.finished = 0
        # trials told, with an ETA: a bar on a terminal when logging to stdout, else lines
        self.bar = Progress(settings.n_trials, "trials", "trial", None if log is print else log)
        self.compile_seconds = 0.0  # this worker's compiles, all batches
        self._batch_compile = (0.0, 1)  # compile clock at the batch's start, its trials
        self.env_steps = 0
        self.started = time.perf_counter()

    def _progress_line(self, text: str) -> None:
        self.bar.update(self.finished, text)

    def run(self) -> optuna.Study:
        stale = fail_stale_trials(self.study, self.storage)
        if stale:
            self.log(f"marked stale RUNNING trials as FAIL: {stale}")
        for params in self.settings.enqueue:
            self.study.enqueue_trial(params, skip_if_exists=True)
        while self.finished < self.settings.n_trials:
            interrupts.raise_pending()
            if self.finished and self.out_of_time():  # the first batch always runs
                self.log(f"--timeout {self.settings.timeout:g} s reached: no new batch "
                         f"({self.finished} of {self.settings.n_trials} trials run)")
                break
            batch = min(self.settings.population_size, self.settings.n_trials - self.finished)
            trials: list[optuna.Trial] = []
            try:
                for _ in range(batch):
                    # a signal between the trial's creation and the append would orphan it
                    with interrupts.deferred(), warnings.catch_warnings():
                        warnings.filterwarnings("ignore", message="Heartbeat of storage")
                        trials.append(self._ask())
                self._run_batch(trials)
            except BaseException as err:
                # Ctrl-C, SIGTERM or a crash: close this batch's unfinished trials as FAIL
                # (finished ones stay as told), then stop. A second Ctrl-C waits until then.
                if isinstance(err, KeyboardInterrupt):
                    interrupts.acknowledge()
                with interrupts.deferred():
                    self._close_unfinished(trials, "interrupted" if isinstance(
                        err, KeyboardInterrupt) else f"worker error: {type(err).__name__}")
                self.bar.close()
                raise
        self.bar.close()
        self.record_programs()
        return self.study

    def record_programs(self) -> None:
        """Print and store (study user attribute "programs", per worker) the compiled training
        programs this run used and the members each trained."""
        programs = self.trainer.programs
        if not programs:
            return
        members = sum(programs.values())
        self.log(f"{members} members trained in {len(programs)} compiled program(s) "
                 f"({self.settings.shapes} shapes): " + ", ".join(
                     f"{name} x{size}: {n}" for (name, size), n in programs.items()))
        self.log(f"compiling took {self.compile_seconds:.1f} s of this run")
        self.study.set_user_attr(f"programs_worker{self.settings.worker_index}", {
            "shapes": self.settings.shapes, "compiled_programs": len(programs),
            "compile_seconds": self.compile_seconds,
            "members": members,
            "members_per_program": [{"program": name, "population": size, "members": n}
                                    for (name, size), n in programs.items()]})

    def out_of_time(self) -> bool:
        timeout = self.settings.timeout
        return timeout is not None and time.perf_counter() - self.started >= timeout

    def _ask(self) -> optuna.Trial:
        """Create (or take a queued) trial with every parameter of the search space sampled
        in order (define-by-run: conditions see the parameters before them), then tag it
        with this worker. A worker killed in between leaves an untagged RUNNING trial, which
        others fail after a grace period (`bb_jax.tuning.liveness`)."""
        trial = self.study.ask()
        self.space.suggest(trial)
        tag_trial(self.storage, self._storage_id(trial))
        return trial

    def _storage_id(self, trial: optuna.Trial) -> int:
        """The trial's id in the storage (Optuna has no public attribute for it)."""
        return trial_id(self.storage, self.study_id, trial.number)

    def _close_unfinished(self, trials: list[optuna.Trial], reason: str) -> None:
        closed = []
        for trial in trials:
            try:
                if self.storage.get_trial(self._storage_id(trial)).state != TrialState.RUNNING:
                    continue
                trial.set_user_attr("fail_reason", reason)
                self.study.tell(trial, state=TrialState.FAIL)
                closed.append(trial.number)
            except Exception:  # the storage may be what failed; stale-trial checks catch it
                continue
        if closed:
            self.log(f"closed unfinished trials as FAIL ({reason}): {closed}")

    def _run_batch(self, trials: list[optuna.Trial]) -> None:
        """Train a batch: every trial x seed x scenario is one member. A trial's value is the
        mean over its members; it is told as soon as its last member finishes."""
        scenarios = self.settings.scenarios
        seeds = self.tuning_seeds
        per_trial = len(seeds) * len(scenarios)
        specs, owner = [], {}
        for i, trial in enumerate(trials):
            trial.set_user_attr("seeds", seeds)
            for j, seed in enumerate(seeds):
                for k, scenario in enumerate(scenarios):
                    member = (i * len(seeds) + j) * len(scenarios) + k
                    owner[member] = i
                    specs.append(member_spec(member, trial.params, scenario, seed))
        pruned: set[int] = set()
        seed_reports: dict[int, dict[str, list[float]]] = {i: {} for i in range(len(trials))}
        done: dict[int, MemberResult] = {}
        told: set[int] = set()

        def on_reports(reports: list[Report]) -> set[int]:
            interrupts.raise_pending()
            by_trial: dict[int, list[Report]] = {}
            for r in reports:
                by_trial.setdefault(owner[r.member_id], []).append(r)
            if self.settings.multi_objective:
                return set()  # Optuna prunes no multi-objective trial
            for i, rows in by_trial.items():
                step = self._progress(rows)
                seed_reports[i][str(step)] = seed_values(rows, len(seeds), len(scenarios))
                trials[i].set_user_attr("seed_reports", seed_reports[i])
                trials[i].report(float(np.mean([r.value for r in rows])), step)
            stop_trials = {i for i, rows in by_trial.items()
                           if not rows[0].final and trials[i].should_prune()}
            pruned.update(stop_trials)
            return {m for m, i in owner.items() if i in stop_trials}

        def on_finished(results: dict[int, MemberResult]) -> None:
            done.update(results)
            for i, trial in enumerate(trials):
                members = range(i * per_trial, (i + 1) * per_trial)
                if i not in told and all(m in done for m in members):
                    with interrupts.deferred():
                        self._tell(trial, [done[m] for m in members], i in pruned, seeds)
                    told.add(i)

        clock = self.trainer.compile_clock
        self._batch_compile = (clock.seconds(), len(trials))
        with Heartbeat(self.storage, [self._storage_id(trial) for trial in trials]):
            self.trainer.run(specs, on_reports, on_finished)
        self.compile_seconds += clock.seconds() - self._batch_compile[0]
        best = self._best_value()
        rate = self.env_steps / (time.perf_counter() - self.started)
        self._progress_line(f"best {best:.2f} (tuning value) | {rate:,.0f} env-steps/s overall"
                            if best is not None else f"{rate:,.0f} env-steps/s overall")

    def _progress(self, rows: list[Report]) -> int:
        """A trial's report step: its members' env steps, or under a FLOP budget the
        permille of the budget they spent (pruners then compare at equal compute)."""
        if self.settings.flop_budget is None:
            return rows[0].env_steps
        return round(BUDGET_SCALE * rows[0].flops / self.settings.flop_budget)

    def _tell(self, trial: optuna.Trial, rows: list[MemberResult], pruned: bool,
              seeds: list[int]) -> None:
        """Tell one trial: FAIL if any member failed, else PRUNED or COMPLETE with the mean
        over seeds (of the mean over scenarios), and with --objectives return,cost its
        training TFLOPs per run; per-seed values and costs go into user attrs."""
        n_scenarios = len(rows) // len(seeds)
        self.env_steps += sum(r.env_steps for r in rows)
        for name, value in cost_attrs(rows).items():
            trial.set_user_attr(name, value)
        since, shared_by = self._batch_compile
        trial.set_user_attr("compile_seconds",
                            (self.trainer.compile_clock.seconds() - since) / shared_by)
        failed = [r for r in rows if r.state == "failed"]
        if failed:
            trial.set_user_attr("fail_reason", failed[0].reason)
            told = self.study.tell(trial, state=TrialState.FAIL)
            self.log(f"trial {trial.number} failed: {failed[0].reason}")
        elif pruned:
            told = self.study.tell(trial, state=TrialState.PRUNED)
        else:
            per_seed = [float(np.mean([r.value for r in rows[j * n_scenarios:
                                                                (j + 1) * n_scenarios]]))
                        for j in range(len(seeds))]
            mean, ci95 = mean_ci95(per_seed)
            trial.set_user_attr("per_seed_values", per_seed)
            trial.set_user_attr("ci95", ci95 if math.isfinite(ci95) else None)
            cost = trial.user_attrs["tflops_per_run"]
            told = self.study.tell(trial, [mean, cost] if self.settings.multi_objective
                                   else mean)
        self.finished += 1
        for callback in self.callbacks:  # Optuna's callback protocol, as study.optimize calls it
            callback(self.study, told)

    def _best_value(self) -> float | None:
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return max((t.values[0] for t in complete if not copied(t)), default=None)


def seed_values(rows: list[Report], n_seeds: int, n_scenarios: int) -> list[float]:
    """One trial's report per tuning seed, in the study's seed order: the mean over scenarios
    of its members' values (member id = (trial * n_seeds + seed) * n_scenarios + scenario,
    as `Tuner._run_batch` numbers them); the pruners pair trials on these."""
    by_seed: dict[int, list[float]] = {}
    for r in rows:
        by_seed.setdefault(r.member_id // n_scenarios % n_seeds, []).append(r.value)
    return [float(np.mean(by_seed[j])) for j in sorted(by_seed)]


def cost_attrs(rows: list[MemberResult]) -> dict:
    """A trial's cost from its members (one per seed and scenario): env steps and training
    FLOPs in all, TFLOPs per run (the cost objective), FLOPs per env step, training seconds
    (its members' shares of their programs' wall time, compiles excluded) and the env
    steps per such second."""
    steps = sum(r.env_steps for r in rows)
    flops = sum(r.flops for r in rows)
    seconds = sum(r.seconds for r in rows)
    return {"env_steps": int(steps), "flops": flops,
            "tflops_per_run": flops / len(rows) / 1e12,
            "flops_per_env_step": flops / steps if steps else None,
            "train_seconds": seconds,
            "env_steps_per_second": steps / seconds if seconds > 0 else None}
