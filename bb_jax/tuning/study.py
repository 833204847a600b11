"""The study a tuning run works on: created with its settings recorded (tuning seeds last,
the FLOP budget and its calibration), or loaded and checked against this run's settings, with
the run's pruner and sampler attached."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable

import jax
import optuna

from bb_jax.agent.config import PPOConfig
from bb_jax.runtime.cohorts import BUDGET_REPORTS
from bb_jax.runtime.cost import calibrate
from bb_jax.tuning.pruners import (
    EvidenceMedianPruner,
    HyperbandPruner,
    IncumbentPruner,
    SyncHalvingPruner,
    planned_checks,
)
from bb_jax.tuning.settings import BUDGET_SCALE, TuneSettings
from bb_jax.tuning.space import LARGEST_BATCH, tuning_seeds
from bb_jax.tuning.storage import make_storage, redact
from bb_jax.tuning.warm_start import load_source, warm_start

# first halving rung as a share of the budget (docs/HYPERPARAMETER_TUNING.md, "Pruners")
DEFAULT_MIN_FRACTION = {"sha": 1 / 2, "hyperband": 1 / 9}


def make_pruner(settings: TuneSettings) -> optuna.pruners.BasePruner:
    """The pruner `settings.pruner` names, on the study's progress axis: env steps, or under
    a FLOP budget the permille of the budget spent (members report about a tenth apart
    there). `median` (the default) judges a trial against the study's incumbent trial when
    there is one and it has reached the trial's step, else against the peers' median; with no
    incumbent it prunes exactly as the median rule alone. `incumbent`: against the incumbent
    only (no pruning without one)."""
    if settings.pruner == "none" or settings.multi_objective:
        return optuna.pruners.NopPruner()
    steps, interval = settings.num_steps, settings.eval_interval
    window = interval + LARGEST_BATCH
    if settings.flop_budget is not None:
        steps, interval = BUDGET_SCALE, BUDGET_SCALE // BUDGET_REPORTS
        window = interval + 1
    if settings.pruner in ("median", "incumbent"):
        checks = planned_checks(steps, interval, settings.warmup_fraction)
        fallback = (EvidenceMedianPruner(steps, window, checks, settings.warmup_fraction,
                                         settings.prune_alpha)
                    if settings.pruner == "median" else optuna.pruners.NopPruner())
        return IncumbentPruner(fallback, steps, window, checks, settings.warmup_fraction,
                               settings.prune_alpha)
    fraction = settings.sha_min_fraction or DEFAULT_MIN_FRACTION[settings.pruner]
    if settings.pruner == "sha":
        return SyncHalvingPruner(steps, settings.sha_eta, fraction)
    return HyperbandPruner(steps, settings.sha_eta, fraction)


# --sampler cmaes: the first generation's spread, in units of each parameter's range (log
# ranges in log space); Optuna's default is a sixth around the middle of the box, this keeps
# the search near the incumbent it starts from
CMA_SIGMA0 = 0.1


def make_sampler(settings: TuneSettings, n_existing: int,
                 incumbent: dict | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler (--sampler), seeded from --seed, the worker and the trials already
    in the study (a resumed study does not replay the random start of its first run).
    `incumbent`: where CMA-ES starts (None: the middle of the space)."""
    seed = (settings.seed * 1_000_003 + settings.worker_index * 7_919 + n_existing) % 2**31
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if settings.sampler == "cmaes":
        with warnings.catch_warnings():  # x0 and sigma0 are deprecated (still in Optuna 5)
            warnings.simplefilter("ignore", FutureWarning)
            return optuna.samplers.CmaEsSampler(
                x0=incumbent, sigma0=CMA_SIGMA0 if incumbent else None, seed=seed,
                warn_independent_sampling=False)
    # the batch design relies on both: joint sampling, and running trials as constant liars;
    # a conditional space samples each group of parameters that occur together jointly
    if not settings.search_space().conditional:
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    with warnings.catch_warnings():  # group is experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                          group=True)


class StudyMismatchError(ValueError):
    """An existing study was created with other settings than this run asks for."""


# study user attribute -> (TuneSettings field, command-line flag)
_STUDY_SETTINGS = {"scenarios": ("scenarios", "--scenario"),
                   "num_opponents": ("num_opponents", "--num-opponents"),
                   "env": ("env", "--env"),
                   "num_steps": ("num_steps", "--num-steps"),
                   "time_budget": ("time_budget", "--time-budget"),
                   "objectives": ("objectives", "--objectives"),
                   "objective": ("objective", "--objective"),
                   "seeds_per_trial": ("seeds_per_trial", "--seeds-per-trial"),
                   "fixed": ("fixed", "--fix"),
                   "space": ("space_label", "--space"),
                   "sampler": ("sampler", "--sampler")}


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
    stored = attrs.get("search_space")
    if stored is not None and stored != _space_record(settings):
        where, there, here = first_difference(stored, _space_record(settings))
        raise StudyMismatchError(
            f"study {study.study_name!r} was created with another search space: {where} is "
            f"{there} there, {here} in this run's --space {settings.space_label}; resume it "
            "with the same space or use another --study-name")


def _space_record(settings: TuneSettings) -> list:
    """The resolved space as a study stores it: [name, rule] pairs in sampling order (the
    order decides the sampler's draws)."""
    return [[name, rule] for name, rule in settings.space_rules.items()]


def first_difference(a, b, where: str = "") -> tuple[str, str, str]:
    """(path, value in a, value in b) of the first place two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            if a.get(key, _ABSENT) != b.get(key, _ABSENT):
                return first_difference(a.get(key, _ABSENT), b.get(key, _ABSENT),
                                        f"{where}.{key}" if where else str(key))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        if all(isinstance(x, list) and len(x) == 2 for x in (*a, *b)):  # [name, rule] pairs
            for (name_a, rule_a), (name_b, rule_b) in zip(a, b, strict=True):
                if name_a != name_b:
                    return where or "the parameter order", name_a, name_b
                if rule_a != rule_b:
                    return first_difference(rule_a, rule_b, name_a)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return first_difference(x, y, f"{where}[{i}]")
    return where, _shown_value(a), _shown_value(b)


_ABSENT = object()


def _shown_value(value) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value)


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
        _enqueue_start(study, settings)
    _settle_budget(study, settings)
    if recording:
        study.set_user_attr("tuning_seeds", tuning_seeds(settings.seed,
                                                         settings.seeds_per_trial))
        if not created:  # another worker may have recorded its own meanwhile: use the last
            time.sleep(SETTLE_S)
            settings.flop_budget = study.user_attrs.get("flop_budget")
    study.pruner = make_pruner(settings)
    study.sampler = make_sampler(settings, len(study.get_trials(deepcopy=False)),
                                 study.user_attrs.get("incumbent"))
    return study


def _enqueue_start(study: optuna.Study, settings: TuneSettings) -> None:
    """A new study's first trials: the incumbent (user attr "incumbent"), then a warm
    start's (`bb_jax.tuning.warm_start`), queued once, when the study's settings are
    recorded (a resume finds them recorded and queues nothing)."""
    trials = study.get_trials(deepcopy=False)
    if settings.incumbent is not None and not any(t.user_attrs.get("incumbent")
                                                  for t in trials):
        study.enqueue_trial(settings.incumbent, user_attrs={"incumbent": True})
    if settings.warm_start_from and not any("warm_start_from" in t.user_attrs
                                            for t in trials):
        source = load_source(settings.warm_start_from, settings.storage)
        warm_start(study, source, settings.search_space(), redact(settings.warm_start_from))


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
                "num_opponents": settings.num_opponents, "env": settings.env,
                "num_steps": settings.num_steps,
                "objective": settings.objective, "seeds_per_trial": settings.seeds_per_trial,
                "seed": settings.seed, "learner": PPOConfig().learner_choices,
                "objectives": list(settings.objectives), "time_budget": settings.time_budget,
                "device": device_kind(), "fixed": dict(settings.fixed),
                "space": settings.space_label, "search_space": _space_record(settings),
                "sampler": settings.sampler, "strategy": settings.strategy,
                "auto_rule": settings.auto_rule, "incumbent": settings.incumbent,
                "warm_start_from": settings.warm_start_from and redact(
                    settings.warm_start_from)}
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
            PPOConfig(scenario=settings.scenarios[0], num_opponents=settings.num_opponents,
                      env=settings.env),
            settings.seeds_per_trial * len(settings.scenarios),
            chunk=max(1, round(settings.eval_interval / PPOConfig.batch_size)))
        calibration["device"] = device_kind()
        settings.flop_budget = settings.time_budget * calibration["flops_per_second"]
        study.set_user_attr("calibration", calibration)
    study.set_user_attr("flop_budget", settings.flop_budget)
