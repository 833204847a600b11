"""The study a tuning run works on: created with its settings recorded (tuning seeds last,
the FLOP budget and its calibration), or loaded and checked against this run's settings, with
the run's pruner and sampler attached."""

from __future__ import annotations

import dataclasses
import json
import time

import jax
import optuna

from bb_jax.agent.config import PPOConfig, resolve
from bb_jax.config import differences, study_fields, to_json
from bb_jax.runtime.cost import calibrate
from bb_jax.tuning.pruners import PRUNERS
from bb_jax.tuning.samplers import SAMPLERS, sampler_seed
from bb_jax.tuning.settings import PBTSettings, TuneSettings
from bb_jax.tuning.space import space_label, tuning_seeds
from bb_jax.tuning.storage import make_storage, redact
from bb_jax.tuning.warm_start import load_source, warm_start


def make_pruner(settings: TuneSettings) -> optuna.pruners.BasePruner:
    """The pruner --pruner names (`bb_jax.tuning.pruners.PRUNERS`: a registered name or
    MODULE:CLASS), on the study's progress axis; none for a multi-objective study (Optuna
    prunes single-objective studies only). Raises ChoiceError for a name it cannot build."""
    if settings.multi_objective:
        return optuna.pruners.NopPruner()
    return PRUNERS.resolve(settings.pruner)(settings)


def make_sampler(settings: TuneSettings, n_existing: int,
                 incumbent: dict | None = None) -> optuna.samplers.BaseSampler:
    """The sampler --sampler names (`bb_jax.tuning.samplers.SAMPLERS`), seeded from --seed,
    the worker and the `n_existing` trials already in the study. `incumbent`: the study's
    incumbent parameters (where CMA-ES starts; None: the middle of the space)."""
    seed = sampler_seed(settings, n_existing)
    return SAMPLERS.resolve(settings.sampler)(settings, seed, incumbent)


class StudyMismatchError(ValueError):
    """An existing study was created with other settings than this run asks for."""


def study_config(settings: TuneSettings) -> dict:
    """The settings tree as a study stores it (user attr "config", JSON): every field, the
    storage URLs redacted."""
    config = to_json(settings)
    for name in ("storage", "warm_start_from"):
        config[name] = config[name] and redact(config[name])
    return config


def _comparable(config: dict) -> dict:
    """A stored or current config with the space by its label (a file's name)."""
    return {**config, "space": config.get("space") and space_label(config["space"])}


def _legacy_config(attrs: dict) -> dict:
    """The study fields of a study recorded before the "config" attribute: its own attrs
    (the space by its label, as it was recorded)."""
    return {name: attrs[name] for name in study_fields(TuneSettings) if name in attrs}


def check_study_matches(study: optuna.Study, settings: TuneSettings) -> None:
    """Raise StudyMismatchError when resuming `study` with settings that would make its trials
    incomparable: the fields of `TuneSettings` declared `study=True` (scenario, opponent count,
    training budget, objective, seeds per trial, ...) diffed against the stored config, the
    search space, and a learner whose defaults changed since (`PPOConfig.learner_choices`;
    studies created before it was recorded are not checked for it)."""
    attrs = study.user_attrs
    stored, current = attrs.get("learner"), PPOConfig().learner_choices
    if stored is not None and stored != current:
        raise StudyMismatchError(
            f"study {study.study_name!r} was trained with the learner {_choices(stored)}, this "
            f"version trains with {_choices(current)} (docs/PPO.md); its trials are not "
            "comparable: use another --study-name")
    saved = _comparable(attrs["config"]) if "config" in attrs else _legacy_config(attrs)
    differ = differences(TuneSettings, saved, _comparable(study_config(settings)))
    if differ:
        (_, flag, there, here), others = differ[0], [d.flag for d in differ[1:]]
        raise StudyMismatchError(
            f"study {study.study_name!r} was created with {flag} {there}, this run asks for "
            f"{here}{'' if not others else ' (also ' + ', '.join(others) + ')'}; resume it "
            "with the same settings or use another --study-name")
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
    uses the recorded ones whatever its own --seed, so all trials stay paired; `settled`
    gives the settings the study runs with (its name and FLOP budget)."""
    if storage is None:
        storage = make_storage(settings.storage)
    settings = settings.named()
    directions = [("minimize" if o == "cost" else "maximize") for o in settings.objectives]
    study, created = create_or_load(settings.study_name, storage, directions)
    if not created:
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
    settings = settled(settings, study)
    study.pruner = make_pruner(settings)
    study.sampler = make_sampler(settings, len(study.get_trials(deepcopy=False)),
                                 study.user_attrs.get("incumbent"))
    return study


def settled(settings: TuneSettings, study: optuna.Study) -> TuneSettings:
    """`settings` as the opened `study` runs them: its name and the FLOP budget per training
    run it recorded (`open_study`; None: runs are measured in env steps)."""
    return dataclasses.replace(settings, study_name=study.study_name,
                               flop_budget=study.user_attrs.get("flop_budget"))


def create_or_load(name: str, storage, directions: list[str],
                   sampler: optuna.samplers.BaseSampler | None = None
                   ) -> tuple[optuna.Study, bool]:
    """(the study `name` on `storage`, whether this call created it): created with
    `directions` and `sampler`, or loaded when it exists. The one study opener of the sweep
    and of PBT."""
    try:
        return optuna.create_study(study_name=name, storage=storage, directions=directions,
                                   sampler=sampler), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage), False


def trial_id(storage: optuna.storages.BaseStorage, study_id: int, number: int) -> int:
    """A trial's id in `storage` (Optuna has no public attribute for it)."""
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


# what makes a PBT run what it is: these fields of its settings and PBTSettings' study ones
PBT_FIELDS = ("scenarios", "num_opponents", "num_steps", "fixed", "population_size",
              "eval_episodes", "seed")


def open_pbt_study(settings: TuneSettings, storage) -> tuple[optuna.Study, dict | None]:
    """(PBT's study, its record `pbt_plan` or None when this call created it): a new study
    (its TPE sampler seeded by --seed draws the members), or an unfinished PBT run whose
    stored config matches `settings` (StudyMismatchError naming the fields that differ)."""
    name = settings.study_name
    study, created = create_or_load(name, storage, ["maximize"],
                                    optuna.samplers.TPESampler(seed=settings.seed))
    if created:
        return study, None
    saved = study.user_attrs.get("pbt_plan")
    if saved is None or "pbt" in study.user_attrs or "config" not in saved:
        raise StudyMismatchError(f"study {name!r} exists and is no unfinished PBT run; choose "
                                 "another --study-name")
    stored, current = saved["config"], study_config(settings)
    differ = [*differences(TuneSettings, stored, current, PBT_FIELDS),
              *differences(PBTSettings, stored["pbt"], current["pbt"])]
    if differ:
        raise StudyMismatchError(
            f"study {name!r} is an unfinished PBT run with other settings "
            f"({', '.join(d.name for d in differ)}): give its own command to continue it, or "
            "another --study-name")
    return study, saved


def running_trials(study: optuna.Study, storage, numbers: list[int]) -> list[optuna.Trial]:
    """The running trials `numbers` of `study` (an unfinished PBT run's members)."""
    study_id = storage.get_study_id_from_name(study.study_name)
    trials = []
    for number in numbers:
        found = trial_id(storage, study_id, number)
        if storage.get_trial(found).state != optuna.trial.TrialState.RUNNING:
            raise StudyMismatchError(f"study {study.study_name!r}: member trial {number} is no "
                                     "longer running; choose another --study-name")
        trials.append(optuna.trial.Trial(study, found))
    return trials


def study_versus(name: str, storage) -> dict:
    """The best complete trial of the single-objective TPE study `name` (--pbt-versus): its
    number, parameters, value and the env steps the study trained in all
    (StudyMismatchError when there is none)."""
    missing = f"--pbt-versus {name}: no study with a complete trial of that name in --storage"
    try:
        other = optuna.load_study(study_name=name, storage=storage)
        best = other.best_trial
    except (KeyError, ValueError, RuntimeError):
        raise StudyMismatchError(missing) from None
    if len(other.directions) > 1 or other.user_attrs.get("strategy") == "pbt":
        raise StudyMismatchError(f"--pbt-versus {name}: a single-objective TPE study is needed")
    env_steps = sum(t.user_attrs.get("env_steps", 0) for t in other.get_trials(deepcopy=False))
    return {"study": name, "trial": best.number, "params": dict(best.params),
            "tuning_value": best.value, "study_env_steps": int(env_steps)}


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
                "num_opponents": settings.num_opponents, "num_steps": settings.num_steps,
                "objective": settings.objective, "seeds_per_trial": settings.seeds_per_trial,
                "seed": settings.seed, "learner": PPOConfig().learner_choices,
                "objectives": list(settings.objectives), "time_budget": settings.time_budget,
                "device": device_kind(), "fixed": dict(settings.fixed),
                "space": settings.space_label, "search_space": _space_record(settings),
                "sampler": settings.sampler, "strategy": settings.strategy,
                "auto_rule": settings.auto_rule, "incumbent": settings.incumbent,
                "warm_start_from": settings.warm_start_from and redact(
                    settings.warm_start_from), "config": study_config(settings)}
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
        return
    budget = settings.flop_budget
    if settings.time_budget is not None:
        calibration = calibrate(
            resolve(PPOConfig(scenario=settings.scenarios[0],
                              num_opponents=settings.num_opponents, env=settings.env),
                    jax.default_backend()),
            settings.seeds_per_trial * len(settings.scenarios),
            chunk=max(1, round(settings.eval_interval / PPOConfig.batch_size)))
        calibration["device"] = device_kind()
        budget = settings.time_budget * calibration["flops_per_second"]
        study.set_user_attr("calibration", calibration)
    study.set_user_attr("flop_budget", budget)
