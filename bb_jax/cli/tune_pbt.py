"""`tune_hyperparameters.py --strategy pbt`: population-based training as one compiled
population (`bb_jax.tuning.pbt_train.run_pbt`) recorded in an Optuna study, then the best
final member's schedule replayed from scratch on fresh seeds against the default
configuration (paired, at equal env steps).

Each member is a trial: its parameters are the hyperparameters it started with (drawn by the
study's sampler from the search space), its intermediate values the fresh-episode means at
each exploit step (in env steps per member), its user attributes its lineage: `seed` (its
own), `weights_from` (the members' seeds whose runs trained its final weights, from which env
step), `schedule` (the hyperparameters its final weights trained under, in env steps, as
`train_simple.py --schedule` reads them), `root` and `copies` (trial numbers). Its value is
the mean of its final fresh episodes. A hyperparameter held by `--fix` is never explored.
The validation scores every configuration on fresh episodes, as the TPE validation does
(`--objective` does not apply), and corrects for its comparisons with the defaults (Holm).

The study records the run's settings and its members' trial numbers when it is created
(user attribute `pbt_plan`), and the run saves a checkpoint after every exploit step in
OUTPUT_DIR/STUDY_checkpoints. The same command again, after Ctrl-C, SIGTERM or kill -9,
goes on from the latest exploit step with the same trials and ends as the uninterrupted run
would; other settings are refused. A finished PBT study is not run again.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

from bb_jax import interrupts
from bb_jax.agent.config import HYPERPARAM_NAMES, MAX_TOTAL_STEPS, PPOConfig
from bb_jax.cli.common import (
    UsageError,
    check_study_name,
    check_writable_dir,
    enable_compile_cache,
    fail,
)
from bb_jax.cli.pbt_outputs import lineage_plot, record_run, validate_schedule

PROG = "tune_hyperparameters.py"
MAX_MEMBERS = 500  # each member trains its own tuning seed, below the validation seeds


def check_pbt(args) -> dict:
    """The PBT run's settings from the command line (UsageError: one line, exit 2)."""
    from bb_jax.cli.common import parse_scenarios
    from bb_jax.cli.tune_args import parse_fixed
    from bb_jax.tuning.pbt import MIN_EPISODES, MIN_POPULATION, SEARCHED, PBTRule
    from bb_jax.tuning.storage import StorageError, holds_nothing, validate_url

    check_flags(args)
    scenarios = parse_scenarios(args.scenario)
    if len(scenarios) > 1:
        raise UsageError("--strategy pbt trains one scenario; give one --scenario")
    size = 16 if args.population_size == "auto" else int(args.population_size)
    if not MIN_POPULATION <= size <= MAX_MEMBERS:
        raise UsageError(f"--strategy pbt needs --population-size in {MIN_POPULATION}.."
                         f"{MAX_MEMBERS}, got {size}")
    for flag, given in (("--n-jobs", args.n_jobs != 1), ("--flop-budget", args.flop_budget),
                        ("--time-budget", args.time_budget),
                        ("--objectives", args.objectives != "return")):
        if given:
            raise UsageError(f"--strategy pbt trains one population in one process at equal "
                             f"env steps: drop {flag}")
    fixed = parse_fixed(args.fix)
    rule = PBTRule(quantile=args.pbt_quantile, margin=args.pbt_margin,
                   explored=tuple(name for name in SEARCHED if name not in fixed))
    config = PPOConfig(scenario=scenarios[0], num_opponents=args.num_opponents,
                       hidden_size=fixed.get("hidden_size", PPOConfig.hidden_size),
                       batch_size=fixed.get("batch_size", PPOConfig.batch_size),
                       total_steps=None)
    num_steps = args.num_steps or 200 * config.batch_size
    if args.pbt_interval < config.batch_size or args.pbt_interval % config.batch_size:
        raise UsageError(f"--pbt-interval must be a multiple of the batch size "
                         f"({config.batch_size} env steps), got {args.pbt_interval}")
    if num_steps % args.pbt_interval or num_steps < 2 * args.pbt_interval:
        raise UsageError(f"--num-steps must be a multiple of --pbt-interval "
                         f"({args.pbt_interval}) and at least two intervals, got {num_steps}")
    if not args.no_validate and args.validate_seeds < 2:
        raise UsageError(f"--validate-seeds must be >= 2, got {args.validate_seeds}")
    if args.eval_episodes < MIN_EPISODES:
        raise UsageError(f"--strategy pbt ranks members on half of --eval-episodes fresh "
                         f"episodes each and tests on the other half: give at least "
                         f"{MIN_EPISODES}, got {args.eval_episodes}")
    try:
        validate_url(args.storage)
    except StorageError as err:
        raise UsageError(str(err)) from None
    if args.pbt_versus is not None and args.no_validate:
        raise UsageError("--pbt-versus compares in the validation: drop --no-validate")
    if args.pbt_versus is not None and holds_nothing(args.storage):
        raise _no_versus(args.pbt_versus)
    return {"config": config.replace(total_steps=num_steps), "size": size, "rule": rule,
            "fixed": fixed, "interval_updates": args.pbt_interval // config.batch_size,
            "intervals": num_steps // args.pbt_interval,
            "output_dir": check_writable_dir(Path(args.output_dir), keep=False),
            "study_name": args.study_name or f"pbt_{scenarios[0]}_s{args.seed}"}


def check_flags(args) -> None:
    """PBT's own flags and those it shares with the tuner, checked as the tuner checks them
    (which PBT runs without): one UsageError naming the flag and its valid range."""
    check_study_name(args.study_name)
    if not 1 <= args.num_opponents <= 9:
        raise UsageError(f"--num-opponents must be in 1..9, got {args.num_opponents}")
    if args.num_steps is not None and not 0 < args.num_steps <= MAX_TOTAL_STEPS:
        raise UsageError(f"--num-steps must be in 1..{MAX_TOTAL_STEPS}, got {args.num_steps}")
    if not 0 < args.pbt_quantile <= 0.5:  # NaN fails every comparison
        raise UsageError(f"--pbt-quantile must be in (0, 0.5] (the share of members that "
                         f"copy and are copied), got {args.pbt_quantile}")
    if not 0 <= args.pbt_margin < float("inf"):
        raise UsageError(f"--pbt-margin must be a finite number >= 0 (standard errors), got "
                         f"{args.pbt_margin}")


def pbt_main(args) -> int:
    try:
        plan = check_pbt(args)
    except UsageError as err:
        return fail(PROG, str(err))
    from bb_jax.tuning.storage import StorageError, error_text, redact

    try:
        with interrupts.raising():
            return _run(args, plan)
    except KeyboardInterrupt as err:
        print(f"interrupted: the same command continues study {plan['study_name']!r} from "
              f"its latest exploit step", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(err, interrupts.Terminated)
                      else signal.SIGINT)
    except StorageError as err:
        return fail(PROG, redact(str(err)))
    except Exception as err:  # noqa: BLE001  never echo a storage password in a traceback
        print(f"{PROG}: {type(err).__name__}: {error_text(err)}", file=sys.stderr)
        return 1


def plan_record(args, plan) -> dict:
    """The settings that make a PBT run what it is, as the study records them."""
    config, rule = plan["config"], plan["rule"]
    return {"scenario": config.scenario, "num_opponents": config.num_opponents,
            "hidden_size": config.hidden_size, "batch_size": config.batch_size,
            "num_steps": config.total_steps, "population_size": plan["size"],
            "interval_env_steps": args.pbt_interval, "quantile": rule.quantile,
            "margin": rule.margin, "eval_episodes": args.eval_episodes, "seed": args.seed,
            "fixed": plan["fixed"]}


def _study(args, plan, storage):
    """(study, its members' trial numbers or None for a new study, checkpoint folder)."""
    import optuna

    record = plan_record(args, plan)
    name = plan["study_name"]
    folder = (plan["output_dir"] / f"{name}_checkpoints").resolve()
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=args.seed))
        return study, None, folder
    saved = study.user_attrs.get("pbt_plan")
    if saved is None or "pbt" in study.user_attrs:
        raise UsageError(f"study {name!r} exists and is no unfinished PBT run; choose another "
                         f"--study-name")
    differ = [key for key in record if saved["settings"].get(key) != record[key]]
    if differ:
        raise UsageError(f"study {name!r} is an unfinished PBT run with other settings "
                         f"({', '.join(differ)}): give its own command to continue it, or "
                         f"another --study-name")
    return study, saved["trials"], Path(saved["checkpoints"])


def _member_trials(study, storage, numbers: list[int]):
    """The running trials of an unfinished PBT run, by number."""
    import optuna

    study_id = storage.get_study_id_from_name(study.study_name)
    trials = []
    for number in numbers:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        if storage.get_trial(trial_id).state != optuna.trial.TrialState.RUNNING:
            raise UsageError(f"study {study.study_name!r}: member trial {number} is no longer "
                             f"running; choose another --study-name")
        trials.append(optuna.trial.Trial(study, trial_id))
    return trials


def _run(args, plan) -> int:
    from bb_jax.tuning.storage import check_writable, make_storage

    storage = make_storage(args.storage, heartbeat_interval=None)  # one process, no liveness
    check_writable(storage, args.storage)  # read-only: refused before training
    try:
        versus = None if args.pbt_versus is None else _versus(args.pbt_versus, storage)
        study, trials, folder = _open(args, plan, storage)
    except UsageError as err:
        return fail(PROG, str(err))
    run, seconds = _train(args, plan, study, trials, folder)
    _finish(args, plan, study, trials, run, seconds, versus)
    return 0


def _open(args, plan, storage):
    """(study, its member trials, checkpoint folder): a new run asks its members from the
    search space and records them with its settings; an unfinished one finds them again."""
    from bb_jax.tuning.space import search_space

    study, numbers, folder = _study(args, plan, storage)
    enable_compile_cache()
    config = plan["config"]
    if numbers is not None:
        return study, _member_trials(study, storage, numbers), folder
    space = search_space({**plan["fixed"], "hidden_size": config.hidden_size,
                          "batch_size": config.batch_size})
    with interrupts.deferred():  # the members and the record that names them
        trials = [study.ask(space) for _ in range(plan["size"])]
        study.set_user_attr("pbt_plan", {
            "settings": plan_record(args, plan), "checkpoints": str(folder),
            "trials": [t.number for t in trials]})
    return study, trials, folder


def _train(args, plan, study, trials, folder):
    """The PBT run (continued from its latest checkpoint, if any); (run, wall seconds)."""
    from bb_jax.agent.config import DEFAULT_HYPERPARAMS, stack_hyperparams
    from bb_jax.runtime.checkpoints import Checkpoints
    from bb_jax.runtime.driver import training_keys
    from bb_jax.runtime.population import Population
    from bb_jax.tuning.pbt_train import run_pbt
    from bb_jax.tuning.space import tuning_seeds

    config, size = plan["config"], plan["size"]
    rows = [{**DEFAULT_HYPERPARAMS, **{k: v for k, v in t.params.items()
                                       if k in HYPERPARAM_NAMES}} for t in trials]
    seeds = tuning_seeds(args.seed, size)
    checkpoints = Checkpoints(folder)
    resumed = checkpoints.latest()
    print(f"study {study.study_name} | PBT: {size} members x {config.total_steps:,} env steps "
          f"| hidden {config.hidden_size} batch {config.batch_size} | exploit every "
          f"{args.pbt_interval:,} steps (bottom {plan['rule'].quantile:g} copy the top beyond "
          f"{plan['rule'].margin:g} standard errors)"
          + ("" if resumed is None else
             f" | continued from {resumed * config.batch_size:,} env steps"), flush=True)
    started = time.perf_counter()
    population = Population(config, stack_hyperparams(rows), training_keys(seeds))

    def progress(updates: int, means) -> None:
        best = "" if means is None else f"  best fresh-episode mean {np.max(means):8.2f}"
        if means is not None:  # live in the study: intermediate values per member
            for trial, value in zip(trials, means, strict=True):
                trial.report(float(value), updates * config.batch_size)
        print(f"{updates * config.batch_size:>10,} env steps  "
              f"{time.perf_counter() - started:7.1f} s{best}", flush=True)

    run = run_pbt(population, seeds, rows, plan["intervals"], plan["interval_updates"],
                  plan["rule"], np.random.default_rng(args.seed), args.eval_episodes,
                  on_interval=progress, checkpoints=checkpoints)
    seconds = time.perf_counter() - started
    with interrupts.deferred():  # every member told, then the checkpoints dropped
        record_run(study, trials, run, config, args, plan, seconds)
        checkpoints.close()
        shutil.rmtree(folder, ignore_errors=True)
    return run, seconds


def _finish(args, plan, study, trials, run, seconds: float, versus) -> None:
    """The best member's schedule written and validated, the outputs and the lineage plot."""
    from bb_jax.tuning.outputs import write_outputs

    config = plan["config"]
    best = trials[run.best]
    schedule_path = plan["output_dir"] / f"{study.study_name}_schedule.json"
    plan["output_dir"].mkdir(parents=True, exist_ok=True)
    schedule_path.write_text(json.dumps(
        run.lineages[run.best].schedule.as_env_steps(config.batch_size), indent=2))
    print(f"best final member: trial {best.number}, fresh-episode mean "
          f"{float(run.final_returns[run.best].mean()):.2f} (the best of {plan['size']} noisy "
          f"values, biased upwards); its schedule: {schedule_path}")
    if not args.no_validate:
        validate_schedule(study, run, config, args, plan, schedule_path, versus)
    paths = write_outputs(study, args.storage, plan["output_dir"])
    lineage_plot(run, config.batch_size, plan["output_dir"] / f"{study.study_name}_lineage.png")
    print(f"results: {paths['results']}")


def _no_versus(name: str) -> UsageError:
    return UsageError(f"--pbt-versus {name}: no study with a complete trial of that name in "
                      f"--storage")


def _versus(name: str, storage) -> dict:
    """The best complete trial of the TPE study `name`: its number, parameters, value and
    the env steps the study trained in all (UsageError when there is none)."""
    import optuna

    try:
        other = optuna.load_study(study_name=name, storage=storage)
        best = other.best_trial
    except (KeyError, ValueError, RuntimeError):
        raise _no_versus(name) from None
    if len(other.directions) > 1 or other.user_attrs.get("strategy") == "pbt":
        raise UsageError(f"--pbt-versus {name}: a single-objective TPE study is needed")
    env_steps = sum(t.user_attrs.get("env_steps", 0) for t in other.get_trials(deepcopy=False))
    return {"study": name, "trial": best.number, "params": dict(best.params),
            "tuning_value": best.value, "study_env_steps": int(env_steps)}


