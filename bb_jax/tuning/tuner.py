"""The Optuna side of tuning: ask trials in batches, train each batch as vectorised cohorts
(`bb_jax.tuning.cohorts`), report intermediate values, prune inside populations, tell results, and
write the outputs (results JSON, plots, the command that trains the best configuration).

This module is the only one that talks to Optuna's study (ask/tell/report/should_prune);
`bb_jax.tuning.liveness` fails the trials of dead workers.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from bb_jax import interrupts
from bb_jax.progress import Progress
from bb_jax.stats import mean_ci95
from bb_jax.train.config import PPOConfig
from bb_jax.train.cost import calibrate
from bb_jax.train.shapes import ShapeChoices
from bb_jax.tuning.callbacks import tuner_callbacks
from bb_jax.tuning.cohorts import (
    BUDGET_REPORTS,
    CohortTrainer,
    MemberResult,
    Report,
)
from bb_jax.tuning.liveness import Heartbeat, fail_stale_trials, tag_trial
from bb_jax.tuning.pruners import BracketHalvingPruner, EvidenceMedianPruner, SyncHalvingPruner
from bb_jax.tuning.space import (
    LARGEST_BATCH,
    default_space,
    member_spec,
    search_space,
    suggest,
    tuning_seeds,
)
from bb_jax.tuning.storage import make_storage

PRUNERS = ("median", "sha", "hyperband", "none")
SAMPLERS = ("tpe", "random", "gp")
OBJECTIVES = ("train_return", "eval_return")
# --objectives: what a study optimises. "return" is the --objective above; "cost" the training
# TFLOPs per run (XLA's count: deterministic, so the same seed gives the same study)
STUDY_OBJECTIVES = ("return", "cost")
# the pruners' axis under a FLOP budget: the share of the budget spent, in permille
BUDGET_SCALE = 1000
OUTPUT_DIR = Path("experiments/hyperparameter_tuning")


def default_population_size(backend: str) -> int:
    """Trials per batch for `--population-size auto` on a JAX backend ("cpu", "gpu", "tpu").

    A CPU gains no arithmetic throughput from a population (the vmapped program does P times
    the work on the same cores) and each population size is one more compile: on the 2-core
    CPU the standard sweep (100 x 50k, 2 jobs, the learner and one seed per trial of
    2026-11-28) took 156 s with populations of 1 and 333 s with 16 (docs/PERFORMANCE.md).
    On an accelerator members are nearly free until it is full. The seeds of a trial
    (`--seeds-per-trial`) are members too: a CPU batch of one trial is still a population of
    K members."""
    return 1 if backend == "cpu" else 16


SHAPES = ("exact", "padded", "auto")


def default_shapes(backend: str) -> str:
    """`--shapes auto` on a JAX backend: "exact" on a CPU, where a padded program computes its
    largest shapes for every member (measured 1.5-9x slower per sweep on the 2-core CPU,
    docs/PERFORMANCE.md "One program per batch"); "padded" on an accelerator, where a batch
    of 16 trials otherwise runs up to 16 launch-bound programs one after another and the
    padded arithmetic is nearly free."""
    return "exact" if backend == "cpu" else "padded"


def shape_choices(fixed: dict | None = None, space: str = "full") -> ShapeChoices:
    """The shapes of the search space `space` (with --fix's values held): what a padded
    program of this tuner serves."""
    space = search_space(fixed, space)
    return ShapeChoices(tuple(space["hidden_size"].choices), tuple(space["batch_size"].choices))


def default_seeds_per_trial(backend: str) -> int:
    """Seeds per trial for `--seeds-per-trial auto` (docs/HYPERPARAMETER_TUNING.md, "Seeds
    per trial"): on a CPU 2 (one per core of the project's 2-core machines, halving the
    value's variance), on an accelerator 4 (members there are nearly free)."""
    return 2 if backend == "cpu" else 4


@dataclasses.dataclass
class TuneSettings:
    scenarios: tuple[str, ...] = ("default",)
    num_opponents: int = 2
    num_steps: int = 50_000
    n_trials: int = 100
    seed: int = 42
    eval_interval: int = 5_000
    pruner: str = "median"
    study_name: str | None = None
    storage: str | None = None
    population_size: int = 16
    seeds_per_trial: int = 2
    objective: str = "train_return"
    eval_episodes: int = 200
    enqueue: tuple[dict, ...] = ()
    output_dir: Path = OUTPUT_DIR
    scenario_arg: str = "default"  # as the user wrote it (for the outputs)
    max_population: int = 1024
    worker_index: int = 0  # > 0: an extra process of --n-jobs; its sampler is seeded apart
    sampler: str = "tpe"
    timeout: float | None = None  # seconds; no new batch is asked after it
    median_margin: float = 1.5  # --pruner median: noise SDs below the peers' median
    warmup_fraction: float = 0.25  # --pruner median: no pruning before this share of steps
    sha_eta: int = 3  # --pruner sha / hyperband: keep the top 1/eta at each rung
    sha_min_fraction: float | None = None  # first rung (share of steps); None: per pruner
    shapes: str = "exact"  # "padded": every batch trains as one shape-padded program
    # FLOPs per training run (one seed on one scenario): each trains until it spent them,
    # instead of num_steps env steps; time_budget (seconds) converts to it by a calibration
    flop_budget: float | None = None
    time_budget: float | None = None
    objectives: tuple[str, ...] = ("return",)
    # search-space parameters held at one value in every trial (--fix)
    fixed: dict = dataclasses.field(default_factory=dict)
    # --space: "full" or "small" (bb_jax.tuning.space); None: the backend's default
    space: str | None = None
    # Optuna callbacks by import path (--callback MODULE:NAME) and an MLflow tracking URI
    # (--mlflow-uri): names, not objects, so --n-jobs workers build the same (callbacks.py)
    callbacks: tuple[str, ...] = ()
    mlflow_uri: str | None = None

    def __post_init__(self):
        if self.space is None:
            self.space = default_space(jax.default_backend())

    @property
    def multi_objective(self) -> bool:
        return "cost" in self.objectives

    def resolved_study_name(self) -> str:
        if self.study_name:
            return self.study_name
        self.study_name = self._auto_name()
        return self.study_name

    def _auto_name(self) -> str:
        stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        label = self.scenario_arg.replace(",", "+")
        return f"bb_{label}_{stamp}"


# first halving rung as a share of the budget (docs/HYPERPARAMETER_TUNING.md, "Pruners")
DEFAULT_MIN_FRACTION = {"sha": 1 / 2, "hyperband": 1 / 9}


def make_pruner(settings: TuneSettings) -> optuna.pruners.BasePruner:
    """The pruner on the study's progress axis: env steps, or under a FLOP budget the
    permille of the budget spent (every member reports at most a tenth apart there)."""
    steps, window = settings.num_steps, settings.eval_interval + LARGEST_BATCH
    if settings.flop_budget is not None:
        steps, window = BUDGET_SCALE, BUDGET_SCALE // BUDGET_REPORTS + 1
    if settings.pruner == "none" or settings.multi_objective:
        return optuna.pruners.NopPruner()
    if settings.pruner == "median":
        return EvidenceMedianPruner(steps, window=window,
                                    warmup_fraction=settings.warmup_fraction,
                                    margin=settings.median_margin)
    fraction = settings.sha_min_fraction or DEFAULT_MIN_FRACTION[settings.pruner]
    if settings.pruner == "sha":
        return SyncHalvingPruner(steps, settings.sha_eta, fraction)
    return BracketHalvingPruner(steps, settings.sha_eta, fraction)


def make_sampler(settings: TuneSettings, n_existing: int) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded from --seed, the worker and the trials already in the study
    (a resumed study does not replay the random start of its first run)."""
    seed = (settings.seed * 1_000_003 + settings.worker_index * 7_919 + n_existing) % 2**31
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    # the batch design relies on both: joint sampling, and running trials as constant liars
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


class StudyMismatchError(ValueError):
    """An existing study was created with other settings than this run asks for."""


# study user attribute -> (TuneSettings field, command-line flag)
_STUDY_SETTINGS = {"scenarios": ("scenarios", "--scenario"),
                   "num_opponents": ("num_opponents", "--num-opponents"),
                   "num_steps": ("num_steps", "--num-steps"),
                   "time_budget": ("time_budget", "--time-budget"),
                   "objectives": ("objectives", "--objectives"),
                   "objective": ("objective", "--objective"),
                   "seeds_per_trial": ("seeds_per_trial", "--seeds-per-trial"),
                   "fixed": ("fixed", "--fix"),
                   "space": ("space", "--space")}


def check_study_matches(study: optuna.Study, settings: TuneSettings) -> None:
    """Raise StudyMismatchError when resuming `study` with settings that would make its trials
    incomparable (another scenario, opponent count, training budget, objective or number of
    seeds per trial, or a learner whose defaults changed since: `PPOConfig.learner_choices`;
    studies created before it was recorded are not checked for it)."""
    attrs = study.user_attrs
    stored, current = attrs.get("learner"), PPOConfig().learner_choices
    if stored is not None and stored != current:
        raise StudyMismatchError(
            f"study {study.study_name!r} was trained with the learner {_choices(stored)}, this "
            f"version trains with {_choices(current)} (docs/PPO.md); its trials are not "
            "comparable: use another --study-name")
    for attr, (field, flag) in _STUDY_SETTINGS.items():
        if attr not in attrs:
            continue
        stored, wanted = attrs[attr], getattr(settings, field)
        if attr in ("scenarios", "objectives"):
            stored, wanted = list(stored), list(wanted)
        if stored != wanted:
            shown = _shown_setting(attr)
            raise StudyMismatchError(
                f"study {study.study_name!r} was created with {flag} {shown(stored)}, this run "
                f"asks for {shown(wanted)}; resume it with the same settings or use another "
                "--study-name")


def _shown_setting(attr: str) -> Callable[[object], str]:
    """How a recorded study setting reads on the command line."""
    if attr in ("scenarios", "objectives"):
        return ",".join
    if attr == "fixed":
        return lambda fixed: ",".join(f"{k}={v}" for k, v in fixed.items()) or "(nothing)"
    return str


def _choices(learner: dict) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in learner.items())


# a worker that finds a study with no trials and no recorded settings waits this long for
# its creator (another worker, possibly still timing a --time-budget calibration) to record
# them; a study created outside the tuner has trials (queued ones) or waits once
CREATOR_WAIT_S = 300.0
# a worker that records the settings of a study created elsewhere re-reads them after this
# pause, so workers that started together all train on the last settings written
SETTLE_S = 1.0


def open_study(settings: TuneSettings,
               storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """Create the study, or load it (checking that it matches `settings`) when it exists, on
    `storage` (default: a new one for `settings.storage`).

    The study owns its settings (tuning seeds, budget, ...): the worker whose create_study
    succeeds records them (the tuning seeds last), and every other worker and every resume
    uses the recorded ones whatever its own --seed, so all trials stay paired."""
    if storage is None:
        storage = make_storage(settings.storage)
    name = settings.resolved_study_name()
    directions = [("minimize" if o == "cost" else "maximize") for o in settings.objectives]
    try:
        study = optuna.create_study(study_name=name, storage=storage, directions=directions)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        created = False
        _await_creator(study)
    check_study_matches(study, settings)
    recording = "tuning_seeds" not in study.user_attrs
    if recording:
        _record_settings(study, settings)
    _settle_budget(study, settings)
    if recording:
        study.set_user_attr("tuning_seeds", tuning_seeds(settings.seed,
                                                         settings.seeds_per_trial))
        if not created:  # another worker may have recorded its own meanwhile: use the last
            time.sleep(SETTLE_S)
            settings.flop_budget = study.user_attrs.get("flop_budget")
    study.pruner = make_pruner(settings)
    study.sampler = make_sampler(settings, len(study.get_trials(deepcopy=False)))
    return study


def _await_creator(study: optuna.Study) -> None:
    """Wait until the worker that created `study` has recorded its settings (their last,
    the tuning seeds), unless the study already has trials (it was created elsewhere)."""
    deadline = time.monotonic() + CREATOR_WAIT_S
    while ("tuning_seeds" not in study.user_attrs and time.monotonic() < deadline
           and not study.get_trials(deepcopy=False)):
        time.sleep(0.1)


def _record_settings(study: optuna.Study, settings: TuneSettings) -> None:
    """The settings that define what a trial of `study` means (the tuning seeds apart)."""
    recorded = {"scenario": settings.scenario_arg, "scenarios": list(settings.scenarios),
                "num_opponents": settings.num_opponents, "num_steps": settings.num_steps,
                "objective": settings.objective, "seeds_per_trial": settings.seeds_per_trial,
                "seed": settings.seed, "learner": PPOConfig().learner_choices,
                "objectives": list(settings.objectives), "time_budget": settings.time_budget,
                "device": device_kind(), "fixed": dict(settings.fixed),
                "space": settings.space}
    for key, value in recorded.items():
        study.set_user_attr(key, value)


def device_kind() -> str:
    """The accelerator a study's costs were measured on, e.g. "cpu:cpu x2"."""
    device = jax.devices()[0]
    return f"{device.platform}:{getattr(device, 'device_kind', device)} x{jax.device_count()}"


def _settle_budget(study: optuna.Study, settings: TuneSettings) -> None:
    """The study's FLOP budget per training run: the one it recorded (a resumed study keeps
    its budget and calibration, so its trials stay comparable), else --flop-budget, else
    --time-budget converted by a calibration of the default configuration measured now."""
    attrs = study.user_attrs
    if "flop_budget" in attrs:
        stored = attrs["flop_budget"]
        if settings.time_budget is None and settings.flop_budget not in (None, stored):
            raise StudyMismatchError(
                f"study {study.study_name!r} was created with --flop-budget {stored:g}, this "
                f"run asks for {settings.flop_budget:g}; resume it with the same settings or "
                "use another --study-name")
        settings.flop_budget = stored
        return
    if settings.time_budget is not None:
        calibration = calibrate(
            PPOConfig(scenario=settings.scenarios[0], num_opponents=settings.num_opponents),
            settings.seeds_per_trial * len(settings.scenarios),
            chunk=max(1, round(settings.eval_interval / PPOConfig.batch_size)))
        calibration["device"] = device_kind()
        settings.flop_budget = settings.time_budget * calibration["flops_per_second"]
        study.set_user_attr("calibration", calibration)
    study.set_user_attr("flop_budget", settings.flop_budget)


class Tuner:
    """Runs `settings.n_trials` new trials of a study in batches of `population_size`."""

    def __init__(self, settings: TuneSettings, log: Callable[[str], None] = print,
                 callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = ()):
        """`callbacks`: called as callback(study, frozen_trial) after each trial is told (the
        signature of study.optimize's callbacks, so optuna-integration's MLflowCallback and
        WeightsAndBiasesCallback attach as they are), after those `settings` names."""
        self.settings = settings
        self.log = log
        # kept: Optuna keeps a study's storage private, and trial ids need it (liveness.py)
        self.storage = make_storage(settings.storage)
        self.study = open_study(settings, self.storage)
        self.study_id = self.storage.get_study_id_from_name(self.study.study_name)
        metric_names = [settings.objective, *(["tflops_per_run"] * settings.multi_objective)]
        self.callbacks = (*tuner_callbacks(settings.callbacks, settings.mlflow_uri,
                                           self.study.study_name, metric_names), *callbacks)
        self.trainer = CohortTrainer(
            base_config=PPOConfig(scenario=settings.scenarios[0],
                                  num_opponents=settings.num_opponents,
                                  total_steps=settings.num_steps, batch_size=LARGEST_BATCH),
            num_steps=settings.num_steps,
            eval_interval=settings.eval_interval,
            flop_budget=settings.flop_budget,
            eval_episodes=settings.eval_episodes if settings.objective == "eval_return" else 0,
            max_population=settings.max_population,
            progress=self._progress_line,
            shape_choices=(shape_choices(settings.fixed, settings.space)
                           if settings.shapes == "padded" else None),
        )
        # the study's own seeds, recorded at its creation: every worker and every resume
        # trains on them whatever its --seed (which then seeds only its sampler), so all
        # trials of the study stay paired
        self.tuning_seeds = list(self.study.user_attrs["tuning_seeds"])
        # what every trial samples from
        self.space = search_space(settings.fixed, settings.space)
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
        """Create (or take a queued) trial, tag it with this worker at once, then sample its
        parameters: a worker killed while TPE samples leaves a trial that others can tell
        is orphaned."""
        trial = self.study.ask()
        tag_trial(self.storage, self._storage_id(trial))
        for name, distribution in self.space.items():
            suggest(trial, name, distribution)
        return trial

    def _storage_id(self, trial: optuna.Trial) -> int:
        """The trial's id in the storage (Optuna has no public attribute for it)."""
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)

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
                trials[i].report(float(np.mean([r.value for r in rows])), self._progress(rows))
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
        return max((t.values[0] for t in complete), default=None)


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
