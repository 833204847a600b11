"""`tune_hyperparameters.py --strategy pbt`: population-based training as one compiled
population recorded in an Optuna study (`bb_jax.tuning.pbt_train.train_study`: a member per
trial, its lineage in user attributes), then the best final member's schedule replayed from
scratch on fresh seeds against the defaults (`bb_jax.tuning.validation.validate_schedule`).
The members are drawn by the study's sampler from the search space, whose ranges explore
then keeps to; a hyperparameter held by `--fix` is never explored.

The study stores the run's settings tree and its members' trial numbers when it is created
(user attribute `pbt_plan`); a checkpoint follows every exploit step (OUTPUT_DIR/
STUDY_checkpoints). The same command again, after Ctrl-C, SIGTERM or kill -9, goes on from
the latest exploit step and ends as the uninterrupted run would; other settings are refused,
naming the fields that differ. A finished PBT study is not run again.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import sys
from pathlib import Path

import jax

from bb_jax import envs, interrupts
from bb_jax.agent.config import MAX_TOTAL_STEPS, PPOConfig, resolve
from bb_jax.cli.common import UsageError, check_study_name, check_writable_dir, fail
from bb_jax.cli.pbt_outputs import lineage_plot
from bb_jax.config import SettingError, from_flags

PROG = "tune_hyperparameters.py"
MAX_MEMBERS = 500  # each member trains its own tuning seed, below the validation seeds


def check_pbt(args) -> dict:
    """The PBT run's settings and plan from the command line (UsageError: one line, exit 2):
    {"settings" (the tree, run length and study name resolved), "config", "space", "rule",
    "size", "interval_updates"}."""
    from bb_jax.tuning.pbt import MIN_EPISODES, MIN_POPULATION, SEARCHED, PBTRule
    from bb_jax.tuning.space import search_space
    from bb_jax.tuning.storage import StorageError, holds_nothing, validate_url

    settings = _settings(args)
    size, pbt = settings.population_size, settings.pbt
    if not MIN_POPULATION <= size <= MAX_MEMBERS:
        raise UsageError(f"--strategy pbt needs --population-size in {MIN_POPULATION}.."
                         f"{MAX_MEMBERS}, got {size}")
    for flag, given in (("--n-jobs", settings.n_jobs != 1), ("--flop-budget",
                        settings.flop_budget), ("--time-budget", settings.time_budget),
                        ("--objectives", settings.objectives != ("return",))):
        if given:
            raise UsageError(f"--strategy pbt trains one population in one process at equal "
                             f"env steps: drop {flag}")
    fixed = settings.fixed
    config = resolve(PPOConfig(scenario=settings.scenarios[0],
                               num_opponents=settings.num_opponents,
                               hidden_size=fixed.get("hidden_size", PPOConfig.hidden_size),
                               batch_size=fixed.get("batch_size", PPOConfig.batch_size),
                               total_steps=None), jax.default_backend())
    try:
        config = envs.configure(config, settings.env, settings.scenarios)
    except ValueError as err:
        raise UsageError(str(err)) from None
    num_steps = settings.num_steps or 200 * config.batch_size
    if pbt.interval < config.batch_size or pbt.interval % config.batch_size:
        raise UsageError(f"--pbt-interval must be a multiple of the batch size "
                         f"({config.batch_size} env steps), got {pbt.interval}")
    if num_steps % pbt.interval or num_steps < 2 * pbt.interval:
        raise UsageError(f"--num-steps must be a multiple of --pbt-interval "
                         f"({pbt.interval}) and at least two intervals, got {num_steps}")
    if settings.eval_episodes < MIN_EPISODES:
        raise UsageError(f"--strategy pbt ranks members on half of --eval-episodes fresh "
                         f"episodes each and tests on the other half: give at least "
                         f"{MIN_EPISODES}, got {settings.eval_episodes}")
    try:
        validate_url(settings.storage)
    except StorageError as err:
        raise UsageError(str(err)) from None
    if pbt.versus is not None and settings.validation.no_validate:
        raise UsageError("--pbt-versus compares in the validation: drop --no-validate")
    if pbt.versus is not None and holds_nothing(settings.storage):
        raise UsageError(f"--pbt-versus {pbt.versus}: no study with a complete trial of that "
                         "name in --storage")
    space = search_space({**fixed, "hidden_size": config.hidden_size,
                          "batch_size": config.batch_size})
    explored = tuple(name for name in SEARCHED if name not in fixed)
    rule = PBTRule(quantile=pbt.quantile, margin=pbt.margin, explored=explored,
                   ranges={name: space[name] for name in explored})
    check_writable_dir(settings.output_dir, keep=False)
    return {"settings": dataclasses.replace(
                settings, num_steps=num_steps, study_name=settings.study_name
                or f"pbt_{config.scenario}_s{settings.seed}"),
            "config": config.replace(total_steps=num_steps), "space": space, "rule": rule,
            "size": size, "interval_updates": pbt.interval // config.batch_size}


def _settings(args):
    """The declared tree from the flags (each checked against its declared range), one
    scenario and --fix parsed; --population-size auto is 16 members."""
    from bb_jax.cli.common import parse_scenarios
    from bb_jax.cli.tune_args import parse_fixed, parse_objectives
    from bb_jax.tuning.settings import TuneSettings

    check_study_name(args.study_name)
    if args.num_steps is not None and not 0 < args.num_steps <= MAX_TOTAL_STEPS:
        raise UsageError(f"--num-steps must be in 1..{MAX_TOTAL_STEPS}, got {args.num_steps}")
    if not 0 <= args.pbt_margin < float("inf"):
        raise UsageError(f"--pbt-margin must be a finite number >= 0 (standard errors), got "
                         f"{args.pbt_margin}")
    try:
        settings = from_flags(
            TuneSettings, args, jax.default_backend(), output_dir=Path(args.output_dir),
            population_size=16 if args.population_size == "auto" else args.population_size,
            scenarios=parse_scenarios(args.scenario_arg), fixed=parse_fixed(args.fixed),
            objectives=parse_objectives(args.objectives), callbacks=(), enqueue=(),
            incumbent=None, space_rules={})
    except SettingError as err:
        raise UsageError(str(err)) from None
    if len(settings.scenarios) > 1:
        raise UsageError("--strategy pbt trains one scenario; give one --scenario")
    return settings


def pbt_main(args) -> int:
    try:
        plan = check_pbt(args)
    except UsageError as err:
        return fail(PROG, str(err))
    from bb_jax.tuning.storage import StorageError, error_text, redact
    from bb_jax.tuning.study import StudyMismatchError

    try:
        with interrupts.raising():
            return _run(plan)
    except KeyboardInterrupt as err:
        print(f"interrupted: the same command continues study "
              f"{plan['settings'].study_name!r} from its latest exploit step", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(err, interrupts.Terminated)
                      else signal.SIGINT)
    except (StorageError, StudyMismatchError) as err:
        return fail(PROG, redact(str(err)))
    except Exception as err:  # noqa: BLE001  never echo a storage password in a traceback
        print(f"{PROG}: {type(err).__name__}: {error_text(err)}", file=sys.stderr)
        return 1


def _run(plan: dict) -> int:
    from bb_jax.runtime.checkpoints import Checkpoints
    from bb_jax.tuning.pbt_train import train_study
    from bb_jax.tuning.storage import check_writable, make_storage
    from bb_jax.tuning.study import study_versus

    settings = plan["settings"]
    storage = make_storage(settings.storage, heartbeat_interval=None)  # one process
    check_writable(storage, settings.storage)  # read-only: refused before training
    versus = None if settings.pbt.versus is None else study_versus(settings.pbt.versus, storage)
    study, trials, folder = _open(plan, storage)
    run = train_study(study, trials, settings, plan["config"], plan["rule"],
                      plan["interval_updates"], Checkpoints(folder))
    shutil.rmtree(folder, ignore_errors=True)
    _finish(plan, study, trials, run, versus)
    return 0


def _open(plan: dict, storage):
    """(study, its member trials, checkpoint folder): a new run asks its members from the
    search space and records them with its settings; an unfinished one finds them again."""
    from bb_jax.cli.common import enable_compile_cache
    from bb_jax.tuning.study import open_pbt_study, running_trials, study_config

    settings = plan["settings"]
    study, saved = open_pbt_study(settings, storage)
    enable_compile_cache()
    if saved is not None:
        return study, running_trials(study, storage, saved["trials"]), Path(saved["checkpoints"])
    folder = (settings.output_dir / f"{settings.study_name}_checkpoints").resolve()
    with interrupts.deferred():  # the members and the record that names them
        trials = [study.ask(plan["space"]) for _ in range(plan["size"])]
        study.set_user_attr("pbt_plan", {"config": study_config(settings),
                                         "checkpoints": str(folder),
                                         "trials": [t.number for t in trials]})
    return study, trials, folder


def _finish(plan: dict, study, trials, run, versus) -> None:
    """The best member's schedule written and validated, the outputs and the lineage plot."""
    from bb_jax.tuning.outputs import write_outputs
    from bb_jax.tuning.validation import validate_schedule

    settings, config = plan["settings"], plan["config"]
    out = settings.output_dir
    schedule_path = out / f"{study.study_name}_schedule.json"
    out.mkdir(parents=True, exist_ok=True)
    schedule_path.write_text(json.dumps(
        run.lineages[run.best].schedule.as_env_steps(config.batch_size), indent=2))
    print(f"best final member: trial {trials[run.best].number}, fresh-episode mean "
          f"{float(run.final_returns[run.best].mean()):.2f} (the best of {plan['size']} noisy "
          f"values, biased upwards); its schedule: {schedule_path}")
    if not settings.validation.no_validate:
        validate_schedule(study, run, config, settings, plan["interval_updates"],
                          schedule_path, versus, log=print)
    paths = write_outputs(study, settings.storage, out)
    lineage_plot(run, config.batch_size, out / f"{study.study_name}_lineage.png")
    print(f"results: {paths['results']}")
