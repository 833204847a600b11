"""The tuner's command line: its parser (`tune_parser`) and the checks that turn it into
`TuneSettings` (`tune_settings`; a bad flag is one UsageError line). Shared by the sweep
(`bb_jax.cli.tune`) and `--strategy pbt` (`bb_jax.cli.tune_pbt`). Imports of the tuner
stay inside the functions: `--help` and usage errors come before JAX and Optuna load."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import jax

from bb_jax import envs
from bb_jax.agent.config import MAX_TOTAL_STEPS, PPOConfig
from bb_jax.cli.common import (
    STORAGE_ENV,
    OneLineParser,
    UsageError,
    check_study_name,
    check_writable_dir,
    parse_scenarios,
)
from bb_jax.cli.validate import add_margin_arg, check_margin
from bb_jax.tuning.callbacks import CallbackError, check_mlflow, import_callback


def _auto_or_int(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: a positive integer or 'auto'") from None


DEFAULT_NUM_STEPS = 50_000
# the samplers that need a package beyond Optuna's own dependencies
SAMPLER_PACKAGES = {"gp": "torch", "cmaes": "cmaes"}


def tune_parser() -> argparse.ArgumentParser:
    """The tuner's command line (its flags in `--help` order)."""
    p = OneLineParser(
        prog="tune_hyperparameters.py",
        description="Tune PPO hyperparameters with Optuna; trials train as vectorised cohorts.",
    )
    _add_run_args(p)
    _add_pruning_args(p)
    _add_validation_args(p)
    _add_study_args(p)
    _add_search_args(p)
    _add_pbt_args(p)
    _add_logging_args(p)
    return p


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """What one training run is and how many trials run."""
    p.add_argument("--scenario", default="default",
                   help="a scenario, a comma-separated list, or 'all' (objective = mean)")
    p.add_argument("--num-opponents", type=int, default=2,
                   help="heuristic opponents beside the learner, 1..9")
    p.add_argument("--env", default="bucket_brigade",
                   help="bucket_brigade (default), gymnax:NAME (e.g. gymnax:CartPole-v1) or "
                        "module:factory (a gymnax env of your own); bb_jax.envs")
    p.add_argument("--num-steps", type=int, default=None,
                   help=f"env steps per training run (one seed on one scenario; default: "
                        f"{DEFAULT_NUM_STEPS:,} unless a budget is given)")
    p.add_argument("--flop-budget", type=float, default=None,
                   help="training FLOPs per run instead of env steps: cheap configurations "
                        "train more steps; deterministic (default: none)")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds of training per run, converted once into a FLOP budget by "
                        "timing the default configuration when the study is created "
                        "(default: none)")
    p.add_argument("--objectives", default="return",
                   help="return, or return,cost: a multi-objective study of return and "
                        "training TFLOPs per run (Pareto front; no pruning) (default: return)")
    p.add_argument("--n-trials", type=int, default=100, help="new trials to run")
    p.add_argument("--seed", type=int, default=42,
                   help="seeds the sampler; a new study tunes on seeds SEED*1000+i")
    p.add_argument("--n-jobs", type=int, default=1,
                   help="worker processes sharing the study (-1: one per CPU core)")
    p.add_argument("--eval-interval", type=int, default=5_000,
                   help="env steps between intermediate values (pruning checks)")
    p.add_argument("--seeds-per-trial", type=_auto_or_int, default="auto",
                   help="seeds each trial trains as population members (the same seeds for "
                        "every trial: paired); its value is their mean. auto: 2 on a CPU, "
                        "4 on a GPU/TPU (default: auto)")


def _add_pruning_args(p: argparse.ArgumentParser) -> None:
    """Pruner, sampler and the time limit."""
    from bb_jax.tuning.settings import PRUNERS, SAMPLERS

    p.add_argument("--pruner", choices=PRUNERS, default="median",
                   help="median: significantly below the incumbent trial (paired on the "
                        "seeds), or without one below the peers' median; incumbent: below the "
                        "incumbent only; sha: synchronous successive halving; hyperband; none")
    p.add_argument("--prune-alpha", type=float, default=0.05,
                   help="--pruner median/incumbent: chance that a trial no worse than its "
                        "reference is pruned at any of its checks (default: 0.05)")
    p.add_argument("--warmup-fraction", type=float, default=0.25,
                   help="--pruner median: share of the steps before any pruning")
    p.add_argument("--eta", type=int, default=3,
                   help="--pruner sha/hyperband: keep the top 1/eta at each rung")
    p.add_argument("--min-fraction", type=float, default=None,
                   help="--pruner sha/hyperband: first rung as a share of the steps "
                        "(default: 1/2 for sha, 1/9 for hyperband)")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="tpe (multivariate, constant liar), gp (Gaussian process; needs "
                        "PyTorch), cmaes (CMA-ES started at the incumbent; needs the cmaes "
                        "package) or random (default: tpe; --strategy auto picks it)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds; no new batch is asked after it (finished trials are kept)")


def _add_validation_args(p: argparse.ArgumentParser) -> None:
    """The validation on fresh seeds that ends a sweep."""
    p.add_argument("--validate-top-k", type=int, default=3,
                   help="at the end, retrain the top-k trials and the default configuration "
                        "on fresh seeds and recommend only what beats it")
    p.add_argument("--validate-seeds", type=int, default=8,
                   help="fresh seeds per validated configuration")
    p.add_argument("--validate-steps", type=int, default=None,
                   help="env steps per validation run (default: --num-steps)")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the validation (the study's best is then only a tuning value)")
    add_margin_arg(p)


def _add_study_args(p: argparse.ArgumentParser) -> None:
    """The study, its storage and how trials batch into populations."""
    from bb_jax.tuning.settings import OBJECTIVES, SHAPES

    p.add_argument("--study-name", default=None,
                   help="the study to create or resume (default: bb_SCENARIO_DATE_TIME)")
    p.add_argument("--storage", default=os.environ.get(STORAGE_ENV) or None,
                   help="sqlite:///PATH, postgresql://USER:PASSWORD@HOST/DB, journal:///PATH "
                        f"(default: ${STORAGE_ENV} if set, else in-memory; the variable keeps a "
                        "password off the command line)")
    p.add_argument("--population-size", type=_auto_or_int, default="auto",
                   help="trials asked and trained together per batch; auto: 1 on a CPU, 16 on "
                        "a GPU/TPU (default: auto)")
    p.add_argument("--shapes", choices=SHAPES, default="auto",
                   help="exact: one compiled program per (hidden size, batch size) in a batch; "
                        "padded: the whole batch in one program of the largest shapes, smaller "
                        "members masked (same results); auto: exact on a CPU, padded on a "
                        "GPU/TPU (default: auto)")
    p.add_argument("--objective", choices=OBJECTIVES, default="train_return",
                   help="a seed's value: its last-interval training return, or the mean of "
                        "--eval-episodes fresh episodes")
    p.add_argument("--eval-episodes", type=int, default=200,
                   help="fresh episodes per seed in evaluations")


def _add_search_args(p: argparse.ArgumentParser) -> None:
    """The search space, queued trials and the outputs."""
    p.add_argument("--space", default="auto", metavar="full|small|auto|FILE",
                   help="the search space: full (hidden 64..512), small (hidden 64, 128: the "
                        "ones that pay per second on a CPU), auto (small on a CPU, full on a "
                        "GPU/TPU) or a YAML/JSON file of ranges, choices, fixed values and "
                        "conditions (docs/HYPERPARAMETER_TUNING.md) (default: auto)")
    p.add_argument("--fix", default=None, metavar="NAME=VALUE[,...]",
                   help="hold search-space parameters at one value in every trial, e.g. "
                        "hidden_size=128,batch_size=1024 (one network shape: one compiled "
                        "program for the whole study) (default: none)")
    p.add_argument("--enqueue", default=None,
                   help="JSON file: a list of parameter dicts to try first")
    p.add_argument("--incumbent", default=None, metavar="FILE",
                   help="JSON file: the configuration a new study tries first (trial 0; "
                        "parameters it leaves out: the defaults) (default: the default "
                        "configuration, fitted to the space and --fix)")
    p.add_argument("--no-incumbent", action="store_true",
                   help="a new study starts from the sampler alone (no trial 0 incumbent)")
    p.add_argument("--warm-start-from", default=None, metavar="STUDY[@STORAGE]",
                   help="a new study first tries this study's best validated configurations "
                        "and best trials, and its sampler sees that study's finished trials "
                        "(default storage: --storage)")
    p.add_argument("--output-dir", default=str(Path("experiments") / "hyperparameter_tuning"),
                   help="where the results JSON and plots go")
    p.add_argument("--max-population", type=int, default=1024,
                   help="members per compiled population; larger cohorts run in rounds")


def _add_pbt_args(p: argparse.ArgumentParser) -> None:
    """--strategy pbt and its settings."""
    from bb_jax.tuning.settings import STRATEGIES

    p.add_argument("--strategy", choices=STRATEGIES, default="tpe",
                   help="tpe: trials proposed by --sampler, trained in batches and pruned; "
                        "pbt: population-based training of --population-size members (auto: "
                        "16) in one compiled population, exploiting and exploring every "
                        "--pbt-interval env steps; auto: as tpe, with the sampler picked for "
                        "--n-trials by a stated rule (docs/HYPERPARAMETER_TUNING.md)")
    p.add_argument("--pbt-interval", type=int, default=20_480,
                   help="--strategy pbt: env steps per member between exploit steps")
    p.add_argument("--pbt-quantile", type=float, default=0.25,
                   help="--strategy pbt: share of members that may copy (the bottom) and be "
                        "copied (the top), in (0, 0.5]")
    p.add_argument("--pbt-margin", type=float, default=2.0,
                   help="--strategy pbt: a member copies only a member better by this many "
                        "standard errors of the difference (fresh episodes)")
    p.add_argument("--pbt-versus", default=None, metavar="STUDY",
                   help="--strategy pbt: also validate the best trial of this TPE study (same "
                        "storage) on the same fresh seeds, paired with the schedule")


def _add_logging_args(p: argparse.ArgumentParser) -> None:
    """Callbacks, MLflow and the worker index of --n-jobs workers."""
    p.add_argument("--callback", nargs="+", default=None, metavar="MODULE:NAME",
                   help="Optuna callbacks called as callback(study, frozen_trial) after each "
                        "trial is told, in every --n-jobs worker too (default: none)")
    p.add_argument("--mlflow-uri", default=None, metavar="URI",
                   help="log every told trial to MLflow (optuna-integration's MLflowCallback; "
                        "experiment = study name), e.g. sqlite:///mlflow.db; needs "
                        "bb-jax[mlflow]")
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)


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


def tune_settings(args):
    """Check the command line and build TuneSettings (raises UsageError). The checks run in
    the order of the flags they read, so a command with several bad flags names the first."""
    from bb_jax.tuning.settings import TuneSettings
    from bb_jax.tuning.space import LARGEST_BATCH

    scenarios = parse_scenarios(args.scenario)
    try:
        env = envs.configure(PPOConfig(num_opponents=args.num_opponents), args.env,
                             scenarios).env
    except ValueError as err:
        raise UsageError(str(err)) from None
    objectives = parse_objectives(args.objectives)
    flop_budget, time_budget = check_budget(args, objectives)
    _check_run(args, flop_budget, time_budget)
    auto_rule = _resolve_strategy(args)
    population_size, shapes, seeds_per_trial = _batch_choices(args)
    _check_pruning(args)
    _check_validation(args)
    _check_resources(args)
    space, fixed, rules, enqueue, incumbent = _search(args, scenarios)
    _check_warm_start(args)
    check_memory(args.num_opponents, args.num_steps or LARGEST_BATCH,
                 args.eval_episodes if args.objective == "eval_return" else 0)
    # checked, not created: a run refused later (e.g. its database is unreachable) leaves
    # nothing behind; write_outputs creates the folder
    output_dir = check_writable_dir(Path(args.output_dir), keep=False)
    return TuneSettings(
        scenarios=scenarios, num_opponents=args.num_opponents, num_steps=args.num_steps,
        n_trials=args.n_trials, seed=args.seed, eval_interval=args.eval_interval,
        pruner=args.pruner, study_name=args.study_name, storage=args.storage,
        population_size=population_size, objective=args.objective,
        eval_episodes=args.eval_episodes, enqueue=enqueue, output_dir=output_dir,
        scenario_arg=args.scenario, max_population=args.max_population,
        worker_index=args.worker_index, seeds_per_trial=seeds_per_trial,
        sampler=args.sampler, strategy="auto" if auto_rule else "tpe", auto_rule=auto_rule,
        timeout=args.timeout, prune_alpha=args.prune_alpha,
        warmup_fraction=args.warmup_fraction, sha_eta=args.eta,
        sha_min_fraction=args.min_fraction, shapes=shapes, flop_budget=flop_budget,
        time_budget=time_budget, objectives=objectives, fixed=fixed, space=space,
        space_rules=rules, incumbent=incumbent, warm_start_from=args.warm_start_from,
        callbacks=tuple(args.callback or ()), mlflow_uri=args.mlflow_uri, env=env,
    )


def _check_run(args, flop_budget, time_budget) -> None:
    """Opponents, the run length (--num-steps defaults where no budget is given), trials and
    the report interval."""
    from bb_jax.tuning.space import LARGEST_BATCH

    if flop_budget is None and time_budget is None and args.num_steps is None:
        args.num_steps = DEFAULT_NUM_STEPS
    if not 1 <= args.num_opponents <= 9:
        raise UsageError(f"--num-opponents must be in 1..9, got {args.num_opponents}")
    if args.num_steps is not None and not LARGEST_BATCH <= args.num_steps <= MAX_TOTAL_STEPS:
        raise UsageError(f"--num-steps must be in {LARGEST_BATCH}..{MAX_TOTAL_STEPS} (at least "
                         f"the largest batch size in the search space), got {args.num_steps}")
    check_study_name(args.study_name)
    if args.n_trials <= 0:
        raise UsageError(f"--n-trials must be > 0, got {args.n_trials}")
    if args.eval_interval <= 0 or (args.num_steps is not None
                                   and args.eval_interval > args.num_steps):
        raise UsageError(
            f"--eval-interval must be in 1..{args.num_steps or 'the run'}, got "
            f"{args.eval_interval}")


def _resolve_strategy(args) -> dict | None:
    """--sampler's default (tpe) or --strategy auto's choice for --n-trials (its rule's row,
    as the study records it; None without auto). Written back into `args`, as --strategy tpe
    --sampler CHOICE, so the --n-jobs workers, given their shares of the trials, use the same
    sampler."""
    from bb_jax.tuning.settings import auto_sampler

    if args.strategy != "auto":
        args.sampler = args.sampler or "tpe"
        return None
    if args.sampler is not None:
        raise UsageError(f"--strategy auto picks the sampler itself: leave out --sampler "
                         f"{args.sampler}, or give --strategy tpe")
    rule = auto_sampler(args.n_trials)
    args.strategy, args.sampler = "tpe", rule["sampler"]
    return rule


def _batch_choices(args) -> tuple[int, str, int]:
    """(population size, shapes, seeds per trial), `auto` resolved for this JAX backend."""
    from bb_jax.tuning.settings import (
        default_population_size,
        default_seeds_per_trial,
        default_shapes,
    )
    from bb_jax.tuning.space import MAX_SEEDS_PER_TRIAL

    backend = jax.default_backend()
    population_size = args.population_size
    if population_size == "auto":
        population_size = default_population_size(backend)
    if population_size <= 0:
        raise UsageError(f"--population-size must be > 0, got {population_size}")
    shapes = default_shapes(backend) if args.shapes == "auto" else args.shapes
    seeds_per_trial = args.seeds_per_trial
    if seeds_per_trial == "auto":
        seeds_per_trial = default_seeds_per_trial(backend)
    if not 1 <= seeds_per_trial <= MAX_SEEDS_PER_TRIAL:
        raise UsageError(f"--seeds-per-trial must be in 1..{MAX_SEEDS_PER_TRIAL}, got "
                         f"{seeds_per_trial}")
    return population_size, shapes, seeds_per_trial


def _check_pruning(args) -> None:
    if args.eta < 2:
        raise UsageError(f"--eta must be >= 2, got {args.eta}")
    if args.min_fraction is not None and not 0 < args.min_fraction < 1:
        raise UsageError(f"--min-fraction must be in (0, 1), got {args.min_fraction}")
    if not 0 <= args.warmup_fraction < 1:
        raise UsageError(f"--warmup-fraction must be in [0, 1), got {args.warmup_fraction}")
    if not 0 < args.prune_alpha < 1:
        raise UsageError(f"--prune-alpha must be in (0, 1), got {args.prune_alpha}")
    if args.timeout is not None and not 0 < args.timeout < math.inf:
        raise UsageError(f"--timeout must be > 0 seconds, got {args.timeout:g}")
    if args.sampler in SAMPLER_PACKAGES:
        check_sampler_package(args.sampler)


def _check_validation(args) -> None:
    from bb_jax.tuning.space import LARGEST_BATCH

    if args.no_validate:
        return
    if args.validate_top_k < 1:
        raise UsageError(f"--validate-top-k must be >= 1, got {args.validate_top_k} "
                         "(--no-validate skips the validation)")
    if args.validate_seeds < 2:
        raise UsageError(f"--validate-seeds must be >= 2 (a confidence interval needs "
                         f"two), got {args.validate_seeds}")
    if args.validate_steps is not None and not (LARGEST_BATCH <= args.validate_steps
                                                <= MAX_TOTAL_STEPS):
        raise UsageError(f"--validate-steps must be in {LARGEST_BATCH}..{MAX_TOTAL_STEPS}, got "
                         f"{args.validate_steps}")
    check_margin(args.equivalence_margin)


def _check_resources(args) -> None:
    """Jobs, population and episode counts, the storage URL and the callbacks."""
    from bb_jax.tuning.storage import StorageError, validate_url

    if args.n_jobs == 0 or args.n_jobs < -1:
        raise UsageError(f"--n-jobs must be -1 or >= 1, got {args.n_jobs}")
    if args.max_population < 1:
        raise UsageError(f"--max-population must be >= 1, got {args.max_population}")
    if args.eval_episodes < 1:
        raise UsageError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
    try:
        validate_url(args.storage)
    except StorageError as err:
        raise UsageError(str(err)) from None
    try:
        for spec in args.callback or ():
            import_callback(spec)
        if args.mlflow_uri is not None:
            check_mlflow()
    except CallbackError as err:
        raise UsageError(str(err)) from None


def _search(args, scenarios) -> tuple[str, dict, dict, tuple[dict, ...], dict | None]:
    """(--space, --fix's held values, the space's rules resolved for the scenarios with them,
    --enqueue's rows, the incumbent), each checked."""
    from bb_jax.tuning.space import SPACES, SpaceError, default_space, load_space

    space = default_space(jax.default_backend()) if args.space == "auto" else args.space
    if space not in SPACES and not Path(space).is_file():
        raise UsageError(f"--space {space!r}: give one of {', '.join(SPACES)}, auto or a "
                         "YAML/JSON file (no such file)")
    try:
        resolved = load_space(space, scenarios)
    except SpaceError as err:
        raise UsageError(f"--space {space}: {err}") from None
    fixed = parse_fixed(args.fix, resolved)
    resolved = resolved.fixed(fixed)
    enqueue = read_enqueue(args.enqueue, resolved) if args.enqueue else ()
    return space, fixed, resolved.rules, enqueue, _incumbent(args, resolved)


def _check_warm_start(args) -> None:
    """--warm-start-from names a study that exists (read, nothing written)."""
    from bb_jax.tuning.storage import StorageError
    from bb_jax.tuning.warm_start import load_source

    if args.warm_start_from is None:
        return
    try:
        load_source(args.warm_start_from, args.storage)
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
    from bb_jax.tuning.settings import STUDY_OBJECTIVES

    names = tuple(name.strip() for name in text.split(","))
    unknown = [n for n in names if n not in STUDY_OBJECTIVES]
    if unknown or len(set(names)) != len(names):
        raise UsageError(f"--objectives {text!r}: valid objectives are "
                         f"{', '.join(STUDY_OBJECTIVES)}, each once (e.g. return,cost)")
    if "return" not in names:
        raise UsageError("--objectives needs return (cost alone is minimised by not "
                         "learning): use return or return,cost")
    return ("return", *(n for n in names if n != "return"))


def check_budget(args, objectives) -> tuple[float | None, float | None]:
    """(flop budget, time budget) from the command line; at most one budget, none beside an
    explicit --num-steps, and none with the cost objective (under a budget every
    configuration costs the same)."""
    budgets = [(flag, value) for flag, value in (("--flop-budget", args.flop_budget),
                                                 ("--time-budget", args.time_budget))
               if value is not None]
    for flag, value in budgets:
        if not 0 < value < math.inf:
            raise UsageError(f"{flag} must be > 0 and finite, got {value:g}")
    if len(budgets) == 2:
        raise UsageError("give one budget: --flop-budget or --time-budget, not both")
    if budgets and args.num_steps is not None:
        raise UsageError(f"--num-steps and {budgets[0][0]} both set the length of a run: give "
                         "one of them")
    if budgets and "cost" in objectives:
        raise UsageError(f"--objectives return,cost compares costs at equal env steps: give "
                         f"--num-steps instead of {budgets[0][0]}")
    return args.flop_budget, args.time_budget


def check_sampler_package(sampler: str) -> None:
    """Optuna's GPSampler needs PyTorch, its CmaEsSampler the cmaes package: refuse such a
    --sampler up front without it."""
    import importlib.util

    from bb_jax.tuning.settings import SAMPLERS

    package = SAMPLER_PACKAGES[sampler]
    if importlib.util.find_spec(package) is None:
        usable = [s for s in SAMPLERS if s not in SAMPLER_PACKAGES
                  or importlib.util.find_spec(SAMPLER_PACKAGES[s])]
        raise UsageError(f"--sampler {sampler} needs the {package} package (pip install "
                         f"{package}); valid samplers here: {', '.join(usable)}")


def check_memory(num_opponents: int, num_steps: int, eval_episodes: int) -> None:
    """Refuse (UsageError) a sweep whose largest member would not fit in device memory."""
    from bb_jax.runtime.memory import PopulationMemoryError, memory_budget, population_limit
    from bb_jax.tuning.space import SEARCH_SPACE

    largest = PPOConfig(num_opponents=num_opponents, total_steps=num_steps,
                        hidden_size=max(SEARCH_SPACE["hidden_size"].choices),
                        batch_size=max(SEARCH_SPACE["batch_size"].choices))
    try:
        population_limit(largest, memory_budget(), 1, eval_episodes)
    except (PopulationMemoryError, ValueError) as err:
        raise UsageError(str(err)) from None
