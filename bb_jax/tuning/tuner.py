"""The Optuna side of tuning: ask trials in batches, train each batch as vectorised cohorts
(`bb_jax.tuning.cohorts`), report intermediate values, prune inside populations, tell results, and
write the outputs (results JSON, plots, the command that trains the best configuration).

This module is the only one that talks to Optuna's study (ask/tell/report/should_prune).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import shlex
import socket
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from bb_jax.stats import mean_ci95
from bb_jax.train.ppo import DEFAULT_HYPERPARAMS, PPOConfig
from bb_jax.tuning import interrupts
from bb_jax.tuning.cohorts import CohortTrainer, MemberSpec, Report
from bb_jax.tuning.storage import make_storage, redact

SEARCH_SPACE = {
    "hidden_size": CategoricalDistribution([64, 128, 256, 512]),
    "learning_rate": FloatDistribution(1e-5, 1e-3, log=True),
    "batch_size": CategoricalDistribution([512, 1024, 2048, 4096]),
    "num_epochs": IntDistribution(3, 10),
    "clip_epsilon": FloatDistribution(0.1, 0.3),
    "entropy_coef": FloatDistribution(0.001, 0.05, log=True),
    "value_coef": FloatDistribution(0.3, 0.7),
    "gamma": FloatDistribution(0.95, 0.999),
    "gae_lambda": FloatDistribution(0.9, 0.99),
}
LARGEST_BATCH = max(SEARCH_SPACE["batch_size"].choices)
# a bb_jax worker tags each trial within milliseconds of creating it; an untagged RUNNING
# trial older than this lost its worker between creation and tag
UNTAGGED_GRACE_S = 120.0
PRUNERS = ("median", "none")
OBJECTIVES = ("train_return", "eval_return")
OUTPUT_DIR = Path("experiments/hyperparameter_tuning")
# train_simple.py flag for each tuned parameter
TRAIN_FLAGS = {
    "hidden_size": "--hidden-size", "batch_size": "--batch-size", "learning_rate": "--lr",
    "num_epochs": "--num-epochs", "clip_epsilon": "--clip-epsilon",
    "entropy_coef": "--entropy-coef", "value_coef": "--value-coef", "gamma": "--gamma",
    "gae_lambda": "--gae-lambda",
}


class PopulationMedianPruner(optuna.pruners.BasePruner):
    """Median pruning that works inside a batch of trials training together.

    Optuna's MedianPruner compares a trial only with COMPLETE trials, so in the first batch
    (all trials RUNNING) it never prunes. This pruner compares a trial's latest intermediate
    value with the median over every other trial (running, complete or pruned) at the same
    stage: each peer contributes its latest value reported at a step <= this step and within
    `window` steps of it. Prunes below the median once `n_warmup_steps` have passed and at
    least `n_min_peers` peers are comparable (successive-halving-like inside a population).
    """

    def __init__(self, n_warmup_steps: int = 0, n_min_peers: int = 4, window: int = 10_000):
        self.n_warmup_steps = n_warmup_steps
        self.n_min_peers = n_min_peers
        self.window = window

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        value = trial.intermediate_values[step]
        peers = []
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        for other in study.get_trials(deepcopy=False, states=states):
            if other.number == trial.number:
                continue
            steps = [s for s in other.intermediate_values if step - self.window < s <= step]
            if steps:
                peers.append(other.intermediate_values[max(steps)])
        if len(peers) < self.n_min_peers:
            return False
        median = statistics.median(peers)
        if study.direction == optuna.study.StudyDirection.MAXIMIZE:
            return value < median
        return value > median


def default_population_size(backend: str) -> int:
    """Trials per batch for `--population-size auto` on a JAX backend ("cpu", "gpu", "tpu").

    A CPU gains no arithmetic throughput from a population (the vmapped program does P times
    the work on the same cores) and each population size is one more compile: on the 2-core
    CPU the standard sweep (100 x 50k, 2 jobs) took 156 s with populations of 1 and 333 s with
    16 (docs/PERFORMANCE.md). On an accelerator members are nearly free until it is full."""
    return 1 if backend == "cpu" else 16


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
    objective: str = "train_return"
    eval_episodes: int = 200
    enqueue: tuple[dict, ...] = ()
    output_dir: Path = OUTPUT_DIR
    scenario_arg: str = "default"  # as the user wrote it (for the outputs)
    max_population: int = 1024
    worker_index: int = 0  # > 0: an extra process of --n-jobs; its sampler is seeded apart

    def resolved_study_name(self) -> str:
        if self.study_name:
            return self.study_name
        self.study_name = self._auto_name()
        return self.study_name

    def _auto_name(self) -> str:
        stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        label = self.scenario_arg.replace(",", "+")
        return f"bb_{label}_{stamp}"


def make_pruner(settings: TuneSettings) -> optuna.pruners.BasePruner:
    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    return PopulationMedianPruner(
        n_warmup_steps=2 * settings.eval_interval, n_min_peers=4,
        window=settings.eval_interval + LARGEST_BATCH,
    )


def trial_seed(seed: int, trial_number: int) -> int:
    """The PRNG seed of a trial's training run (stored as the trial's user attr `seed`)."""
    return (seed * 1_000_003 + trial_number) % (2**31 - 1)


def member_spec(member_id: int, params: dict, scenario: str, seed: int) -> MemberSpec:
    """The training run of a trial's parameters (static shape + traced hyperparameters)."""
    return MemberSpec(
        member_id=member_id,
        hidden_size=int(params["hidden_size"]),
        batch_size=int(params["batch_size"]),
        hyperparams={k: params.get(k, DEFAULT_HYPERPARAMS[k]) for k in DEFAULT_HYPERPARAMS},
        scenario=scenario,
        seed=seed,
    )


def suggest(trial: optuna.Trial, name: str, distribution) -> object:
    """Sample parameter `name` of `trial` from one of SEARCH_SPACE's distributions."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high,
                                 step=distribution.step, log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high,
                               step=distribution.step, log=distribution.log)


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker process (on this host) no longer exists,
    those whose heartbeat went stale (RDB storages with heartbeats), and those never tagged
    with a worker that started over UNTAGGED_GRACE_S ago. The reason goes into the trial's
    user attribute `fail_reason`. Returns their numbers."""
    storage = study._storage
    host = socket.gethostname()
    now = datetime.datetime.now()
    stale: dict[int, tuple[int, str]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.system_attrs
        if attrs.get("bb_host") == host and not _process_alive(attrs.get("bb_pid"),
                                                               attrs.get("bb_pid_start")):
            stale[trial._trial_id] = (trial.number, "worker process died (stale RUNNING trial)")
        elif ("bb_pid" not in attrs and trial.datetime_start is not None
              and (now - trial.datetime_start).total_seconds() > UNTAGGED_GRACE_S):
            stale[trial._trial_id] = (trial.number, "worker process died before tagging the "
                                                    "trial (stale RUNNING trial)")
    if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
        numbers = {t._trial_id: t.number for t in study.get_trials(deepcopy=False)}
        for trial_id in storage._get_stale_trial_ids(study._study_id):
            stale.setdefault(trial_id, (numbers.get(trial_id, -1),
                                        "worker stopped sending heartbeats (stale RUNNING trial)"))
    failed = []
    for trial_id, (number, reason) in stale.items():
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", reason)
            if storage.set_trial_state_values(trial_id, TrialState.FAIL):
                failed.append(number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker finished or failed it meanwhile
    return sorted(failed)


def process_start_time(pid: int) -> str | None:
    """The start time of process `pid` (Linux /proc, clock ticks since boot), or None. A pid
    with another start time is a new process that reused the number."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _process_alive(pid, start=None) -> bool:
    if not isinstance(pid, int):
        return True  # not ours to judge
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is not None:
        now = process_start_time(pid)
        return now is None or now == start
    return True


_START_TIME = process_start_time(os.getpid())


class StudyMismatchError(ValueError):
    """An existing study was created with other settings than this run asks for."""


# study user attribute -> (TuneSettings field, command-line flag)
_STUDY_SETTINGS = {"scenarios": ("scenarios", "--scenario"),
                   "num_opponents": ("num_opponents", "--num-opponents"),
                   "num_steps": ("num_steps", "--num-steps"),
                   "objective": ("objective", "--objective")}


def check_study_matches(study: optuna.Study, settings: TuneSettings) -> None:
    """Raise StudyMismatchError when resuming `study` with settings that would make its trials
    incomparable (another scenario, opponent count, training budget or objective)."""
    attrs = study.user_attrs
    for attr, (field, flag) in _STUDY_SETTINGS.items():
        if attr not in attrs:
            continue
        stored, wanted = attrs[attr], getattr(settings, field)
        if attr == "scenarios":
            stored, wanted = list(stored), list(wanted)
        if stored != wanted:
            shown = (lambda v: ",".join(v)) if attr == "scenarios" else str
            raise StudyMismatchError(
                f"study {study.study_name!r} was created with {flag} {shown(stored)}, this run "
                f"asks for {shown(wanted)}; resume it with the same settings or use another "
                "--study-name")


def open_study(settings: TuneSettings) -> optuna.Study:
    """Create the study, or load it (checking that it matches `settings`) when it exists."""
    storage = make_storage(settings.storage)
    study = optuna.create_study(
        study_name=settings.resolved_study_name(),
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=settings.seed + settings.worker_index),
        pruner=make_pruner(settings),
        direction="maximize",
        load_if_exists=True,
    )
    check_study_matches(study, settings)
    if "scenario" not in study.user_attrs:
        study.set_user_attr("scenario", settings.scenario_arg)
        study.set_user_attr("scenarios", list(settings.scenarios))
        study.set_user_attr("num_opponents", settings.num_opponents)
        study.set_user_attr("num_steps", settings.num_steps)
        study.set_user_attr("objective", settings.objective)
    return study


class Tuner:
    """Runs `settings.n_trials` new trials of a study in batches of `population_size`."""

    def __init__(self, settings: TuneSettings, log: Callable[[str], None] = print):
        self.settings = settings
        self.log = log
        self.study = open_study(settings)
        self.trainer = CohortTrainer(
            base_config=PPOConfig(scenario=settings.scenarios[0],
                                  num_opponents=settings.num_opponents,
                                  total_steps=settings.num_steps, batch_size=LARGEST_BATCH),
            num_steps=settings.num_steps,
            eval_interval=settings.eval_interval,
            eval_episodes=settings.eval_episodes if settings.objective == "eval_return" else 0,
            max_population=settings.max_population,
            progress=self._progress_line,
        )
        self.finished = 0
        self.env_steps = 0
        self.started = time.perf_counter()

    def _progress_line(self, text: str) -> None:
        n = self.settings.n_trials
        width = 20
        filled = int(width * self.finished / max(1, n))
        self.log(f"[{'#' * filled}{'.' * (width - filled)}] {self.finished}/{n} trials | {text}")

    def run(self) -> optuna.Study:
        stale = fail_stale_trials(self.study)
        if stale:
            self.log(f"marked stale RUNNING trials as FAIL: {stale}")
        for params in self.settings.enqueue:
            self.study.enqueue_trial(params, skip_if_exists=True)
        while self.finished < self.settings.n_trials:
            interrupts.raise_pending()
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
                raise
        return self.study

    def _ask(self) -> optuna.Trial:
        """Create (or take a queued) trial, tag it with this worker at once, then sample its
        parameters: a worker killed while TPE samples leaves a trial that others can tell
        is orphaned."""
        trial = self.study.ask()
        for key, value in (("bb_host", socket.gethostname()), ("bb_pid", os.getpid()),
                           ("bb_pid_start", _START_TIME)):
            trial.storage.set_trial_system_attr(trial._trial_id, key, value)
        for name, distribution in SEARCH_SPACE.items():
            suggest(trial, name, distribution)
        return trial

    def _close_unfinished(self, trials: list[optuna.Trial], reason: str) -> None:
        closed = []
        for trial in trials:
            try:
                if self.study._storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
                    continue
                trial.set_user_attr("fail_reason", reason)
                self.study.tell(trial, state=TrialState.FAIL)
                closed.append(trial.number)
            except Exception:  # the storage may be what failed; stale-trial checks catch it
                continue
        if closed:
            self.log(f"closed unfinished trials as FAIL ({reason}): {closed}")

    def _run_batch(self, trials: list[optuna.Trial]) -> None:
        scenarios = self.settings.scenarios
        specs, owner = [], {}
        for i, trial in enumerate(trials):
            seed = trial_seed(self.settings.seed, trial.number)
            trial.set_user_attr("seed", seed)
            for j, scenario in enumerate(scenarios):
                member = i * len(scenarios) + j
                owner[member] = trial
                specs.append(member_spec(member, trial.params, scenario, seed))
        pruned: set[int] = set()

        def on_reports(reports: list[Report]) -> set[int]:
            interrupts.raise_pending()
            by_trial: dict[int, list[Report]] = {}
            for r in reports:
                by_trial.setdefault(owner[r.member_id].number, []).append(r)
            stop_trials = []
            for rows in by_trial.values():
                trial = owner[rows[0].member_id]
                trial.report(float(np.mean([r.value for r in rows])), rows[0].env_steps)
            for rows in by_trial.values():
                trial = owner[rows[0].member_id]
                if not rows[0].final and trial.should_prune():
                    stop_trials.append(trial.number)
            pruned.update(stop_trials)
            return {m for m, t in owner.items() if t.number in stop_trials}

        with _Heartbeat(self.study, trials):
            results = self.trainer.run(specs, on_reports)
        for i, trial in enumerate(trials):
            rows = [results[i * len(scenarios) + j] for j in range(len(scenarios))]
            self.env_steps += sum(r.env_steps for r in rows)
            failed = [r for r in rows if r.state == "failed"]
            if failed:
                trial.set_user_attr("fail_reason", failed[0].reason)
                self.study.tell(trial, state=TrialState.FAIL)
                self.log(f"trial {trial.number} failed: {failed[0].reason}")
            elif trial.number in pruned:
                self.study.tell(trial, state=TrialState.PRUNED)
            else:
                self.study.tell(trial, float(np.mean([r.value for r in rows])))
            self.finished += 1
        best = self._best_value()
        rate = self.env_steps / (time.perf_counter() - self.started)
        self._progress_line(f"best {best:.2f} | {rate:,.0f} env-steps/s overall"
                            if best is not None else f"{rate:,.0f} env-steps/s overall")

    def _best_value(self) -> float | None:
        try:
            return self.study.best_value
        except ValueError:
            return None


class _Heartbeat:
    """While a batch trains, record its trials' heartbeats every interval (RDB storages with
    heartbeats; ask-and-tell does not do it), so other workers fail only dead workers' trials."""

    def __init__(self, study: optuna.Study, trials: list[optuna.Trial]):
        storage = study._storage
        self.interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        self.storage, self.trial_ids = storage, [t._trial_id for t in trials]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while True:
            for trial_id in self.trial_ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception:  # a transient database error: try again next interval
                    pass
            if self.stop.wait(self.interval):
                return

    def __enter__(self):
        if self.interval:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.interval:
            self.stop.set()
            self.thread.join()


def _python_command() -> str:
    """The interpreter to print: this one, relative, when it lives under the working folder
    (e.g. the quick start's .venv/bin/python), else plain `python`."""
    relative = os.path.relpath(sys.executable)
    return "python" if relative.startswith("..") else relative


def train_command(study: optuna.Study, trial: FrozenTrial) -> str:
    """A ready-to-run scripts/train_simple.py command carrying every tuned hyperparameter and
    every scenario of the study (its final return is then the trial's objective, their mean)."""
    attrs = study.user_attrs
    scenarios = attrs.get("scenarios", ["default"])
    args = [_python_command(), "scripts/train_simple.py", "--scenario", ",".join(scenarios),
            "--num-opponents", str(attrs.get("num_opponents", 2)),
            "--num-steps", str(attrs.get("num_steps", 50_000))]
    for name, flag in TRAIN_FLAGS.items():
        value = trial.params[name]
        args += [flag, repr(float(value)) if isinstance(value, float) else str(value)]
    args += ["--seed", str(trial.user_attrs.get("seed", 0)),
             "--run-name", f"{study.study_name}_best"]
    return shlex.join(args)


def trial_record(trial: FrozenTrial) -> dict:
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "params": trial.params,
        "intermediate_values": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
        "user_attrs": trial.user_attrs,
        "duration_s": trial.duration.total_seconds() if trial.duration else None,
    }


def results_dict(study: optuna.Study, storage_url: str | None) -> dict:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    attrs = study.user_attrs
    return {
        "study_name": study.study_name,
        "scenario": attrs.get("scenario"),
        "scenarios": attrs.get("scenarios"),
        "num_opponents": attrs.get("num_opponents"),
        "num_steps": attrs.get("num_steps"),
        "objective": attrs.get("objective"),
        "storage": redact(storage_url) if storage_url else "in-memory",
        "best_value": best.value if best else None,
        "best_params": best.params if best else None,
        "best_trial": best.number if best else None,
        "train_command": train_command(study, best) if best else None,
        "n_trials": len(trials),
        "n_complete": len(complete),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "n_failed": sum(t.state == TrialState.FAIL for t in trials),
        "trials": [trial_record(t) for t in trials],
    }


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader (or another worker writing the same
    outputs at the same moment) never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_plot(make_figure, path: Path) -> None:
    try:
        html = make_figure().to_html(include_plotlyjs="cdn")
    except (ValueError, RuntimeError, ZeroDivisionError) as err:
        html = f"<html><body><p>plot not available: {err}</p></body></html>\n"
    _write_atomic(path, html)


def write_outputs(study: optuna.Study, storage_url: str | None, output_dir: Path) -> dict:
    """Write {study}_results.json and the three HTML plots; returns their paths. Each file is
    replaced atomically; several workers of one study may write them concurrently."""
    from optuna import visualization

    output_dir.mkdir(parents=True, exist_ok=True)
    name = study.study_name
    paths = {
        "results": output_dir / f"{name}_results.json",
        "history": output_dir / f"{name}_history.html",
        "importances": output_dir / f"{name}_importances.html",
        "parallel": output_dir / f"{name}_parallel.html",
    }
    _write_atomic(paths["results"], json.dumps(_finite(results_dict(study, storage_url)),
                                               indent=2, default=_json_default, allow_nan=False))
    _write_plot(lambda: visualization.plot_optimization_history(study), paths["history"])
    _write_plot(lambda: visualization.plot_param_importances(study), paths["importances"])
    _write_plot(lambda: visualization.plot_parallel_coordinate(study), paths["parallel"])
    return paths


def _finite(x):
    """Non-finite floats become None (JSON has no NaN or infinity)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (float, np.floating)) and not math.isfinite(x):
        return None
    return x


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def validate_top(study: optuna.Study, top_k: int, seeds: list[int], num_steps: int | None = None,
                 eval_episodes: int = 200, log: Callable[[str], None] = print) -> list[dict]:
    """Retrain the top-k complete trials on every seed in one population call per shape;
    returns rows ranked by mean final return, each with a 95% CI over seeds."""
    complete = sorted((t for t in study.get_trials(deepcopy=False)
                       if t.state == TrialState.COMPLETE), key=lambda t: t.value, reverse=True)
    top = complete[:top_k]
    if not top:
        raise ValueError(f"study {study.study_name!r} has no complete trial to validate")
    attrs = study.user_attrs
    scenarios = attrs.get("scenarios", ["default"])
    steps = int(num_steps or attrs.get("num_steps", 50_000))
    specs = [member_spec((i * len(seeds) + j) * len(scenarios) + k, trial.params, scenario, seed)
             for i, trial in enumerate(top) for j, seed in enumerate(seeds)
             for k, scenario in enumerate(scenarios)]
    trainer = CohortTrainer(
        PPOConfig(scenario=scenarios[0], num_opponents=attrs.get("num_opponents", 2),
                  total_steps=steps, batch_size=LARGEST_BATCH),
        num_steps=steps, eval_interval=steps, eval_episodes=eval_episodes,
        progress=log,
    )
    results = trainer.run(specs)
    rows = []
    for i, trial in enumerate(top):
        per_seed = []
        for j in range(len(seeds)):
            values = [results[(i * len(seeds) + j) * len(scenarios) + k].value
                      for k in range(len(scenarios))]
            per_seed.append(float(np.mean([v for v in values if v is not None]))
                            if any(v is not None for v in values) else float("nan"))
        mean, ci = mean_ci95([v for v in per_seed if math.isfinite(v)])
        rows.append({"trial": trial.number, "tuning_value": trial.value, "mean": mean,
                     "ci95": ci, "per_seed": per_seed, "params": trial.params})
    rows.sort(key=lambda r: -r["mean"] if math.isfinite(r["mean"]) else math.inf)
    return rows
