"""The tuner's command line: its parser (`tune_parser`, generated from the declared
`TuneSettings` tree) and the checks that turn it into `TuneSettings` (`tune_settings`; a bad
flag is one UsageError line, before anything is compiled or written)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax

from bb_jax.agent.config import MAX_TOTAL_STEPS, PPOConfig, resolve
from bb_jax.cli.common import (
    OneLineParser,
    UsageError,
    check_study_name,
    check_writable_dir,
    parse_scenarios,
)
from bb_jax.config import SettingError, add_flags, from_flags
from bb_jax.tuning.callbacks import check_mlflow, import_callback
from bb_jax.tuning.registry import ChoiceError
from bb_jax.tuning.settings import DEFAULT_NUM_STEPS, STUDY_OBJECTIVES, TuneSettings
from bb_jax.tuning.space import LARGEST_BATCH


def tune_parser() -> argparse.ArgumentParser:
    """The tuner's command line: one flag per declared field of `TuneSettings`."""
    p = OneLineParser(prog="tune_hyperparameters.py", description="Tune PPO hyperparameters "
                      "with Optuna; trials train as vectorised cohorts.")
    add_flags(p, TuneSettings)
    return p


def read_enqueue(path: str, space, flag: str = "--enqueue") -> tuple[dict, ...]:
    """The --enqueue file's parameter dicts, each checked against the study's search space
    (a SearchSpace: each value given the row's values before it)."""
    try:
        rows = json.loads(Path(path).read_text())
    except OSError as err:
        raise UsageError(f"cannot read {flag} file {path}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise UsageError(
            f"{flag} file {path} is not valid JSON: {err.msg} (line {err.lineno})") from None
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UsageError(f"{flag} file {path} must hold a JSON list of parameter objects")
    for row in rows:
        unknown = set(row) - set(space.rules)
        if unknown:
            raise UsageError(f"{flag} file {path}: unknown parameters {sorted(unknown)}; "
                             f"valid: {', '.join(space.rules)}")
        problem = space.problem(row)
        if problem is not None:
            raise UsageError(f"{flag} file {path}: {problem}")
    return tuple(rows)


def parse_fixed(text: str | None, space=None) -> dict:
    """--fix NAME=VALUE[,NAME=VALUE...]: parameters held at one value in every trial of the
    search space `space` (a SearchSpace; None: the full space)."""
    from bb_jax.tuning.space import SEARCH_SPACE, load_space, takes_integers

    if not text:
        return {}
    fixed = {}
    for item in text.split(","):
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or name not in SEARCH_SPACE:
            raise UsageError(f"--fix {text!r}: give NAME=VALUE pairs with NAME one of "
                             f"{', '.join(SEARCH_SPACE)}")
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"--fix {name}={value!r}: not a number") from None
        fixed[name] = int(number) if number.is_integer() and takes_integers(name) else number
    try:
        (space or load_space("full")).fixed(fixed)
    except ValueError as err:
        raise UsageError(f"--fix: {err}") from None
    return fixed


def tune_settings(args) -> TuneSettings:
    """Check the command line and build TuneSettings (raises UsageError): first each flag
    against its declared range (in --help order, so a command with several bad flags names
    the first), then what depends on several flags."""
    backend = jax.default_backend()
    scenarios = parse_scenarios(args.scenario_arg)
    objectives = parse_objectives(args.objectives)
    try:
        settings = from_flags(
            TuneSettings, args, backend, scenarios=scenarios, objectives=objectives,
            output_dir=Path(args.output_dir), callbacks=tuple(args.callbacks or ()), fixed={},
            enqueue=(), incumbent=None, space_rules={})
    except SettingError as err:
        raise UsageError(str(err)) from None
    check_budget(settings, args.num_steps)
    settings = _check_run(settings)
    settings = _check_env(settings)
    settings = _resolve_strategy(settings)
    _check_choices(settings)
    _check_resources(settings)
    settings = _search(settings, args)
    _check_warm_start(settings)
    check_memory(settings.num_opponents, settings.num_steps or LARGEST_BATCH,
                 settings.eval_episodes if settings.objective == "eval_return" else 0)
    # checked, not created: a run refused later (e.g. its database is unreachable) leaves
    # nothing behind; write_outputs creates the folder
    check_writable_dir(settings.output_dir, keep=False)
    _build_choices(settings)
    return settings


def _check_env(settings: TuneSettings) -> TuneSettings:
    """--env resolved (`bb_jax.envs`): the game, gymnax:NAME or module:factory; another env
    than the game refuses the game's own settings."""
    from bb_jax import envs
    from bb_jax.agent.config import PPOConfig

    try:
        env = envs.configure(PPOConfig(num_opponents=settings.num_opponents), settings.env,
                             settings.scenarios).env
    except ValueError as err:
        raise UsageError(str(err)) from None
    return dataclasses.replace(settings, env=env)


def _check_choices(settings: TuneSettings) -> None:
    """--pruner and --sampler name a registered rule or an importable MODULE:CLASS of the
    right kind (a sampler's package installed)."""
    from bb_jax.tuning.pruners import PRUNERS
    from bb_jax.tuning.samplers import SAMPLERS

    try:
        PRUNERS.resolve(settings.pruner)
        SAMPLERS.resolve(settings.sampler)
    except ChoiceError as err:
        raise UsageError(str(err)) from None


def _build_choices(settings: TuneSettings) -> None:
    """Build the study's pruner and sampler once, so that arguments a user's pruner or
    sampler class refuses (ValueError) are one line here, before anything is written."""
    from bb_jax.tuning.study import make_pruner, make_sampler

    for flag, build in (("--pruner", lambda: make_pruner(settings)),
                        ("--sampler", lambda: make_sampler(settings, 0, settings.incumbent))):
        try:
            build()
        except (ValueError, TypeError) as err:
            raise UsageError(f"{flag}: {err}") from None


def _check_run(settings: TuneSettings) -> TuneSettings:
    """The run length (--num-steps defaults where no budget is given), the study name, the
    report interval and the worker count."""
    if settings.flop_budget is None and settings.time_budget is None \
            and settings.num_steps is None:
        settings = dataclasses.replace(settings, num_steps=DEFAULT_NUM_STEPS)
    steps = settings.num_steps
    if steps is not None and not LARGEST_BATCH <= steps <= MAX_TOTAL_STEPS:
        raise UsageError(f"--num-steps must be in {LARGEST_BATCH}..{MAX_TOTAL_STEPS} (at "
                         f"least the largest batch size in the search space), got {steps}")
    check_study_name(settings.study_name)
    if settings.eval_interval <= 0 or (steps is not None and settings.eval_interval > steps):
        raise UsageError(f"--eval-interval must be in 1..{steps or 'the run'}, got "
                         f"{settings.eval_interval}")
    if settings.n_jobs == 0 or settings.n_jobs < -1:
        raise UsageError(f"--n-jobs must be -1 or >= 1, got {settings.n_jobs}")
    return settings


def _resolve_strategy(settings: TuneSettings) -> TuneSettings:
    """--sampler's default (tpe) or --strategy auto's choice for --n-trials (its rule's row,
    as the study records it). The --n-jobs workers get it as --strategy tpe --sampler
    CHOICE (`bb_jax.cli.tune.worker_command`), so they use the same sampler."""
    from bb_jax.tuning.settings import auto_sampler

    if settings.strategy != "auto":
        return dataclasses.replace(settings, sampler=settings.sampler or "tpe")
    if settings.sampler is not None:
        raise UsageError(f"--strategy auto picks the sampler itself: leave out --sampler "
                         f"{settings.sampler}, or give --strategy tpe")
    rule = auto_sampler(settings.n_trials)
    return dataclasses.replace(settings, sampler=rule["sampler"], auto_rule=rule)


def _check_resources(settings: TuneSettings) -> None:
    """The storage URL and the callbacks."""
    from bb_jax.tuning.storage import StorageError, validate_url

    try:
        validate_url(settings.storage)
    except StorageError as err:
        raise UsageError(str(err)) from None
    try:
        for spec in settings.callbacks:
            import_callback(spec)
        if settings.mlflow_uri is not None:
            check_mlflow()
    except ChoiceError as err:
        raise UsageError(str(err)) from None


def _search(settings: TuneSettings, args) -> TuneSettings:
    """--space, --fix's held values, the space's rules resolved for the scenarios with them,
    --enqueue's rows and the incumbent, each checked."""
    from bb_jax.tuning.space import SPACES, SpaceError, load_space

    space = settings.space
    if space not in SPACES and not Path(space).is_file():
        raise UsageError(f"--space {space!r}: give one of {', '.join(SPACES)}, auto or a "
                         "YAML/JSON file (no such file)")
    try:
        resolved = load_space(space, settings.scenarios)
    except SpaceError as err:
        raise UsageError(f"--space {space}: {err}") from None
    fixed = parse_fixed(args.fixed, resolved)
    resolved = resolved.fixed(fixed)
    enqueue = read_enqueue(args.enqueue, resolved) if args.enqueue else ()
    return dataclasses.replace(settings, fixed=fixed, space_rules=resolved.rules,
                               enqueue=enqueue, incumbent=_incumbent(args, resolved))


def _check_warm_start(settings: TuneSettings) -> None:
    """--warm-start-from names a study that exists (read, nothing written)."""
    from bb_jax.tuning.storage import StorageError
    from bb_jax.tuning.warm_start import load_source

    if settings.warm_start_from is None:
        return
    try:
        load_source(settings.warm_start_from, settings.storage)
    except (ValueError, StorageError) as err:
        raise UsageError(str(err)) from None


def _incumbent(args, space) -> dict | None:
    """The configuration a new study tries first: --incumbent's values (each inside the
    space) with the defaults for the rest, each default moved to its nearest value inside the
    space; None with --no-incumbent."""
    if args.no_incumbent:
        if args.incumbent:
            raise UsageError("give --incumbent FILE or --no-incumbent, not both")
        return None
    named = {}
    if args.incumbent:
        named = read_enqueue(args.incumbent, space, flag="--incumbent")
        if len(named) != 1:
            raise UsageError(f"--incumbent file {args.incumbent} must hold one parameter "
                             "object")
        named = named[0]
    params, _ = space.walk(named, fit=True)
    moved = [name for name in named if params[name] != named[name]]
    if moved:
        raise UsageError(f"--incumbent file {args.incumbent}: {moved[0]}={named[moved[0]]!r} "
                         "is outside the search space given the other values")
    return params


def parse_objectives(text: str) -> tuple[str, ...]:
    """--objectives: "return" or "return,cost" (cost alone would favour doing nothing)."""
    names = tuple(name.strip() for name in text.split(","))
    unknown = [n for n in names if n not in STUDY_OBJECTIVES]
    if unknown or len(set(names)) != len(names):
        raise UsageError(f"--objectives {text!r}: valid objectives are "
                         f"{', '.join(STUDY_OBJECTIVES)}, each once (e.g. return,cost)")
    if "return" not in names:
        raise UsageError("--objectives needs return (cost alone is minimised by not "
                         "learning): use return or return,cost")
    return ("return", *(n for n in names if n != "return"))


def check_budget(settings: TuneSettings, num_steps: int | None) -> None:
    """At most one budget, none beside an explicit --num-steps (`num_steps`), and none with
    the cost objective (under a budget every configuration costs the same)."""
    budgets = [flag for flag, value in (("--flop-budget", settings.flop_budget),
                                        ("--time-budget", settings.time_budget))
               if value is not None]
    if len(budgets) == 2:
        raise UsageError("give one budget: --flop-budget or --time-budget, not both")
    if budgets and num_steps is not None:
        raise UsageError(f"--num-steps and {budgets[0]} both set the length of a run: give "
                         "one of them")
    if budgets and "cost" in settings.objectives:
        raise UsageError(f"--objectives return,cost compares costs at equal env steps: give "
                         f"--num-steps instead of {budgets[0]}")


def check_memory(num_opponents: int, num_steps: int, eval_episodes: int) -> None:
    """Refuse (UsageError) a sweep whose largest member would not fit in device memory."""
    from bb_jax.runtime.memory import PopulationMemoryError, memory_budget, population_limit
    from bb_jax.tuning.space import SEARCH_SPACE

    largest = resolve(PPOConfig(num_opponents=num_opponents, total_steps=num_steps,
                                hidden_size=max(SEARCH_SPACE["hidden_size"].choices),
                                batch_size=LARGEST_BATCH), jax.default_backend())
    try:
        population_limit(largest, memory_budget(), 1, eval_episodes)
    except (PopulationMemoryError, ValueError) as err:
        raise UsageError(str(err)) from None
