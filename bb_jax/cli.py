"""Command lines: `train_main` (scripts/train_simple.py, bb-train) and `tune_main`
(scripts/tune_hyperparameters.py, bb-tune). Usage errors print one line and exit with 2."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import jax

from bb_jax.game.opponents import OPPONENT_KINDS
from bb_jax.game.scenarios import list_scenarios
from bb_jax.train.ppo import DEFAULT_HYPERPARAMS
from bb_jax.tuning import interrupts

USAGE_ERROR = 2
STORAGE_ENV = "BB_JAX_STORAGE"


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit code 2) instead of the usage."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def check_scenario(name: str) -> str:
    if name not in list_scenarios():
        valid = ", ".join(list_scenarios())
        raise UsageError(f"unknown scenario {name!r}; valid scenarios: {valid}")
    return name


def check_writable_dir(path: Path, keep: bool = True) -> Path:
    """Make sure files can be written in `path`, creating it if needed. With keep=False the
    folders created for the check are removed again (nothing is left behind when a later
    check fails; the outputs create them when they are written)."""
    created = []
    try:
        missing = [p for p in (path, *path.parents) if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        probe = path / f".bb_jax_write_probe.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"output folder {path} is not writable: {err.strerror or err}") from None
    finally:
        if not keep:
            for folder in reversed(created):
                try:
                    folder.rmdir()
                except OSError:
                    pass
    return path


def _train_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="train_simple.py",
        description="Train PPO on Bucket Brigade scenarios (seeds x scenarios in one vmapped "
                    "call).",
    )
    p.add_argument("--scenario", default="default",
                   help="a scenario, a comma-separated list, or 'all': every seed trains on "
                        "each; the final return is their mean (the tuner's objective)")
    p.add_argument("--num-opponents", type=int, default=2)
    p.add_argument("--opponents", nargs="+", choices=OPPONENT_KINDS, default=None,
                   help="opponent kinds (default: docs/GAME_RULES.md's list)")
    p.add_argument("--num-steps", type=int, default=500_000, help="env steps per seed")
    p.add_argument("--batch-size", type=int, default=2048, help="env steps per update")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--lr", type=float, default=DEFAULT_HYPERPARAMS["learning_rate"])
    p.add_argument("--num-epochs", type=int, default=DEFAULT_HYPERPARAMS["num_epochs"])
    p.add_argument("--clip-epsilon", type=float, default=DEFAULT_HYPERPARAMS["clip_epsilon"])
    p.add_argument("--entropy-coef", type=float, default=DEFAULT_HYPERPARAMS["entropy_coef"])
    p.add_argument("--value-coef", type=float, default=DEFAULT_HYPERPARAMS["value_coef"])
    p.add_argument("--gamma", type=float, default=DEFAULT_HYPERPARAMS["gamma"])
    p.add_argument("--gae-lambda", type=float, default=DEFAULT_HYPERPARAMS["gae_lambda"])
    p.add_argument("--max-grad-norm", type=float, default=DEFAULT_HYPERPARAMS["max_grad_norm"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="train all these seeds in one vmapped call (overrides --seed)")
    p.add_argument("--eval-episodes", type=int, default=200)
    p.add_argument("--chunk-updates", type=int, default=10, help="updates between progress lines")
    p.add_argument("--run-name", default=None)
    p.add_argument("--save-path", default=None, help="folder for the run (default runs/RUN_NAME)")
    p.add_argument("--results-json", default=None)
    p.add_argument("--list-scenarios", action="store_true")
    return p


def train_main(argv: list[str] | None = None) -> int:
    args = _train_parser().parse_args(argv)
    if args.list_scenarios:
        print("\n".join(list_scenarios()))
        return 0
    try:
        return _train(args)
    except (UsageError, ValueError) as err:
        return _fail("train_simple.py", str(err))


def _train(args) -> int:
    from bb_jax.train.ppo import PPOConfig
    from bb_jax.train.runs import save_run, train_seeds

    scenarios = parse_scenarios(args.scenario)
    if args.num_steps <= 0:
        raise UsageError(f"--num-steps must be > 0, got {args.num_steps}")
    if not 1 <= args.num_opponents <= 9:
        raise UsageError(f"--num-opponents must be in 1..9, got {args.num_opponents}")
    seeds = args.seeds if args.seeds else [args.seed]
    label = "+".join(scenarios) if args.scenario != "all" else "all"
    run_name = args.run_name or f"ppo_{label}_h{args.hidden_size}_s{seeds[0]}"
    save_dir = check_writable_dir(Path(args.save_path or Path("runs") / run_name))
    if args.results_json:
        check_writable_dir(Path(args.results_json).resolve().parent)
    config = PPOConfig(
        scenario=scenarios[0], num_opponents=args.num_opponents,
        opponents=tuple(args.opponents) if args.opponents else None,
        hidden_size=args.hidden_size, batch_size=args.batch_size, num_envs=args.num_envs,
        total_steps=args.num_steps,
    )
    hyperparams = {
        "learning_rate": args.lr, "clip_epsilon": args.clip_epsilon,
        "entropy_coef": args.entropy_coef, "value_coef": args.value_coef, "gamma": args.gamma,
        "gae_lambda": args.gae_lambda, "max_grad_norm": args.max_grad_norm,
        "num_epochs": args.num_epochs,
    }
    if not 1 <= args.num_epochs <= config.max_epochs:
        raise UsageError(f"--num-epochs must be in 1..{config.max_epochs}, got {args.num_epochs}")
    print(f"training {run_name}: scenario={','.join(scenarios)} seeds={seeds} "
          f"steps/seed={config.num_updates * config.batch_size:,}", flush=True)
    run = train_seeds(config, hyperparams, seeds, args.chunk_updates, args.eval_episodes,
                      progress=lambda line: print(line, flush=True), scenarios=list(scenarios))
    paths = save_run(run, save_dir, run_name)
    summary = {"run_name": run_name, **run.summary(), "hyperparameters": run.hyperparams,
               "save_path": str(save_dir)}
    what = "final return (mean of last 100 episodes"
    if len(scenarios) > 1:
        for name, figure in summary["per_scenario"].items():
            print(f"{what}) on {name}: {figure['mean']:.2f}")
        what += f", mean over {len(scenarios)} scenarios"
    fr = summary["final_return"]
    print(f"{what}): {fr['mean']:.2f} +/- {fr['ci95']:.2f} (95% CI over {len(seeds)} seeds)"
          if len(seeds) > 1 else f"{what}): {fr['mean']:.2f}")
    print(f"saved to {save_dir} ({', '.join(p.name for p in paths.values())})")
    if args.results_json:
        Path(args.results_json).write_text(json.dumps(summary, indent=2))
        print(f"results: {args.results_json}")
    return 0


def enable_compile_cache() -> Path:
    """Turn on JAX's persistent compilation cache (BB_JAX_CACHE_DIR, default
    ~/.cache/bb_jax/xla) so a second run with the same shapes starts without compiling."""
    path = Path(os.environ.get("BB_JAX_CACHE_DIR", Path.home() / ".cache" / "bb_jax" / "xla"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return path
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def _population_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: a positive integer or 'auto'") from None


def _tune_parser() -> argparse.ArgumentParser:
    from bb_jax.tuning.tuner import OBJECTIVES, PRUNERS

    p = OneLineParser(
        prog="tune_hyperparameters.py",
        description="Tune PPO hyperparameters with Optuna; trials train as vectorised cohorts.",
    )
    p.add_argument("--scenario", default="default",
                   help="a scenario, a comma-separated list, or 'all' (objective = mean)")
    p.add_argument("--num-opponents", type=int, default=2)
    p.add_argument("--num-steps", type=int, default=50_000, help="env steps per trial")
    p.add_argument("--n-trials", type=int, default=100, help="new trials to run")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--n-jobs", type=int, default=1,
                   help="worker processes sharing the study (-1: one per CPU core)")
    p.add_argument("--eval-interval", type=int, default=5_000,
                   help="env steps between intermediate values (pruning checks)")
    p.add_argument("--pruner", choices=PRUNERS, default="median")
    p.add_argument("--study-name", default=None)
    p.add_argument("--storage", default=os.environ.get(STORAGE_ENV) or None,
                   help="sqlite:///PATH, postgresql://USER:PASSWORD@HOST/DB, journal:///PATH "
                        f"(default: ${STORAGE_ENV} if set, else in-memory; the variable keeps a "
                        "password off the command line)")
    p.add_argument("--population-size", type=_population_size, default="auto",
                   help="trials asked and trained together per batch; auto: 1 on a CPU, 16 on "
                        "a GPU/TPU (default: auto)")
    p.add_argument("--objective", choices=OBJECTIVES, default="train_return")
    p.add_argument("--eval-episodes", type=int, default=200)
    p.add_argument("--enqueue", default=None,
                   help="JSON file: a list of parameter dicts to try first")
    p.add_argument("--output-dir", default=str(Path("experiments") / "hyperparameter_tuning"))
    p.add_argument("--max-population", type=int, default=1024,
                   help="members per compiled population; larger cohorts run in rounds")
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    return p


def parse_scenarios(text: str) -> tuple[str, ...]:
    names = list_scenarios() if text == "all" else [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UsageError(f"no scenario given; valid scenarios: {', '.join(list_scenarios())}")
    for name in names:
        check_scenario(name)
    return tuple(dict.fromkeys(names))


def read_enqueue(path: str) -> tuple[dict, ...]:
    from bb_jax.tuning.tuner import SEARCH_SPACE

    try:
        rows = json.loads(Path(path).read_text())
    except OSError as err:
        raise UsageError(f"cannot read --enqueue file {path}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise UsageError(
            f"--enqueue file {path} is not valid JSON: {err.msg} (line {err.lineno})") from None
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UsageError(f"--enqueue file {path} must hold a JSON list of parameter objects")
    for row in rows:
        unknown = set(row) - set(SEARCH_SPACE)
        if unknown:
            raise UsageError(f"--enqueue file {path}: unknown parameters {sorted(unknown)}; "
                             f"valid: {', '.join(SEARCH_SPACE)}")
        for name, value in row.items():
            try:
                inside = SEARCH_SPACE[name]._contains(SEARCH_SPACE[name].to_internal_repr(value))
            except (ValueError, TypeError):
                inside = False
            if not inside or isinstance(value, bool):
                raise UsageError(f"--enqueue file {path}: {name}={value!r} is outside the "
                                 f"search space ({_describe(SEARCH_SPACE[name])})")
    return tuple(rows)


def _describe(distribution) -> str:
    if hasattr(distribution, "choices"):
        return "one of " + ", ".join(map(str, distribution.choices))
    return f"{distribution.low} .. {distribution.high}"


def tune_settings(args):
    """Check the command line and build TuneSettings (raises UsageError)."""
    from bb_jax.tuning.storage import StorageError, validate_url
    from bb_jax.tuning.tuner import LARGEST_BATCH, TuneSettings, default_population_size

    scenarios = parse_scenarios(args.scenario)
    if not 1 <= args.num_opponents <= 9:
        raise UsageError(f"--num-opponents must be in 1..9, got {args.num_opponents}")
    if args.num_steps < LARGEST_BATCH:
        raise UsageError(f"--num-steps must be at least {LARGEST_BATCH} (the largest batch size "
                         f"in the search space), got {args.num_steps}")
    if args.n_trials <= 0:
        raise UsageError(f"--n-trials must be > 0, got {args.n_trials}")
    if not 0 < args.eval_interval <= args.num_steps:
        raise UsageError(
            f"--eval-interval must be in 1..{args.num_steps}, got {args.eval_interval}")
    population_size = args.population_size
    if population_size == "auto":
        population_size = default_population_size(jax.default_backend())
    if population_size <= 0:
        raise UsageError(f"--population-size must be > 0, got {population_size}")
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
    enqueue = read_enqueue(args.enqueue) if args.enqueue else ()
    check_memory(args.num_opponents, args.num_steps,
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
        worker_index=args.worker_index,
    )


def check_memory(num_opponents: int, num_steps: int, eval_episodes: int) -> None:
    """Refuse (UsageError) a sweep whose largest member would not fit in device memory."""
    from bb_jax.train.memory import PopulationMemoryError, memory_budget, population_limit
    from bb_jax.train.ppo import PPOConfig
    from bb_jax.tuning.tuner import SEARCH_SPACE

    largest = PPOConfig(num_opponents=num_opponents, total_steps=num_steps,
                        hidden_size=max(SEARCH_SPACE["hidden_size"].choices),
                        batch_size=max(SEARCH_SPACE["batch_size"].choices))
    try:
        population_limit(largest, memory_budget(), 1, eval_episodes)
    except (PopulationMemoryError, ValueError) as err:
        raise UsageError(str(err)) from None


def tune_main(argv: list[str] | None = None) -> int:
    """The tuner's command line. Exit codes: 0 done, 1 a failure during the run, 2 bad input
    (nothing created), 130 / 143 interrupted by Ctrl-C / SIGTERM (finished trials stored,
    outputs written)."""
    try:
        with interrupts.raising():
            return _tune_main(argv)
    except KeyboardInterrupt as err:
        print("interrupted: finished trials are stored", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(err, interrupts.Terminated)
                      else signal.SIGINT)


def _tune_main(argv: list[str] | None) -> int:
    prog = "tune_hyperparameters.py"
    args = _tune_parser().parse_args(argv)
    try:
        settings = tune_settings(args)
    except UsageError as err:
        return _fail(prog, str(err))
    from bb_jax.train.memory import PopulationMemoryError
    from bb_jax.tuning.storage import StorageError, redact
    from bb_jax.tuning.tuner import StudyMismatchError

    try:
        return _tune(settings, args.n_jobs)
    except (StorageError, StudyMismatchError, PopulationMemoryError) as err:
        return _fail(prog, redact(str(err)))
    except Exception as err:  # noqa: BLE001  never echo a storage password in a traceback
        print(f"{prog}: {type(err).__name__}: {redact(str(err))}", file=sys.stderr)
        return 1


def _tune(settings, n_jobs: int) -> int:
    import time

    from bb_jax.tuning.storage import redact
    from bb_jax.tuning.tuner import Tuner, open_study, write_outputs

    enable_compile_cache()
    started = time.perf_counter()
    jobs = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    jobs = min(jobs, settings.n_trials)
    if settings.worker_index == 0 and jobs > 1 and settings.storage is None:
        journal = settings.output_dir.resolve() / f"{settings.resolved_study_name()}.journal.log"
        settings.study_name = settings.resolved_study_name()
        settings.storage = f"journal://{journal}"
        print(f"--n-jobs {jobs} needs a shared storage: using {settings.storage}")
    if settings.worker_index > 0:
        _pin_to_core(settings.worker_index)
    shares = [settings.n_trials // jobs + (i < settings.n_trials % jobs) for i in range(jobs)]
    settings.n_trials = shares[0]
    tuner = Tuner(settings)  # opens (or creates) the study before any worker starts
    workers = [_start_worker(settings, i, share) for i, share in enumerate(shares) if i > 0]
    if settings.worker_index > 0:
        tuner.run()
        return 0
    print(f"study {settings.study_name} | storage "
          f"{redact(settings.storage) if settings.storage else 'in-memory'} | scenarios "
          f"{','.join(settings.scenarios)} | {sum(shares)} trials x "
          f"{settings.num_steps:,} steps | population {settings.population_size}"
          f" | {jobs} job(s)", flush=True)
    failed_workers = 0
    try:
        if jobs > 1:
            _pin_to_core(0)
        tuner.run()
    except KeyboardInterrupt:
        for worker in workers:  # they close their own batches and stop
            if worker.poll() is None:
                worker.send_signal(signal.SIGINT)
        raise
    finally:
        for worker in workers:
            failed_workers += worker.wait() != 0
        study = tuner.study if settings.storage is None else open_study(settings)
        paths = write_outputs(study, settings.storage, settings.output_dir)
        print(f"results: {paths['results']}", flush=True)
    _print_best(study, time.perf_counter() - started)
    if failed_workers:
        print(f"{failed_workers} worker process(es) failed", file=sys.stderr)
        return 1
    return 0


def _start_worker(settings, index: int, n_trials: int):
    """Another process running `n_trials` trials of the same study (its sampler seeded apart)."""
    import subprocess

    args, env = worker_command(settings, index, n_trials)
    # its own process group: a Ctrl-C in the terminal reaches only the tuner, which passes
    # one SIGINT on (a second one could cut short the worker's closing of its batch)
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, env=env, process_group=0)


def worker_command(settings, index: int, n_trials: int) -> tuple[list[str], dict]:
    """The command line and environment of worker `index`. The storage URL travels in the
    environment ($BB_JAX_STORAGE), not the command line, which any local user can read."""
    args = [sys.executable, "-c", ("import sys; from bb_jax.cli import tune_main; "
                                   "sys.exit(tune_main())"),
            "--scenario", settings.scenario_arg, "--num-opponents", str(settings.num_opponents),
            "--num-steps", str(settings.num_steps), "--n-trials", str(n_trials),
            "--seed", str(settings.seed), "--eval-interval", str(settings.eval_interval),
            "--pruner", settings.pruner, "--study-name", settings.study_name,
            "--population-size", str(settings.population_size),
            "--objective", settings.objective, "--eval-episodes", str(settings.eval_episodes),
            "--output-dir", str(settings.output_dir),
            "--max-population", str(settings.max_population), "--worker-index", str(index)]
    return args, {**os.environ, STORAGE_ENV: settings.storage}


def _pin_to_core(index: int) -> None:
    """On a CPU backend, keep worker `index` on one core (processes beat threads there)."""
    import jax

    if jax.default_backend() == "cpu" and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > 1:
            os.sched_setaffinity(0, {cores[index % len(cores)]})


def _print_best(study, wall_s: float) -> None:
    from bb_jax.tuning.tuner import results_dict

    summary = results_dict(study, None)
    print(f"finished in {wall_s:.1f} s: {summary['n_complete']} complete, "
          f"{summary['n_pruned']} pruned, {summary['n_failed']} failed "
          f"({summary['n_trials']} trials in the study)")
    if summary["best_value"] is None:
        print("no complete trial yet")
        return
    print(f"best value {summary['best_value']:.3f} (trial {summary['best_trial']})")
    for name, value in summary["best_params"].items():
        print(f"  {name}: {value}")
    print("train the best configuration with:")
    print(f"  {summary['train_command']}")


def _validate_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="validate_best.py",
        description="Retrain the top-k configurations of a study on many seeds in one "
                    "population call; print mean +/- 95%% CI and the ranking.",
    )
    p.add_argument("--study-name", required=True)
    p.add_argument("--storage", required=True, help="the study's storage URL")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--seeds", type=int, default=5, help="number of seeds per configuration")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--num-steps", type=int, default=None, help="default: the study's")
    p.add_argument("--eval-episodes", type=int, default=200)
    p.add_argument("--results-json", default=None)
    return p


def validate_main(argv: list[str] | None = None) -> int:
    args = _validate_parser().parse_args(argv)
    prog = "validate_best.py"
    from bb_jax.tuning.storage import StorageError, make_storage

    if args.top_k <= 0 or args.seeds <= 0:
        return _fail(prog, "--top-k and --seeds must be > 0")
    try:
        import optuna

        storage = make_storage(args.storage)
        try:
            study = optuna.load_study(study_name=args.study_name, storage=storage)
        except KeyError:
            names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
            raise UsageError(f"no study {args.study_name!r} in this storage; studies: "
                             f"{', '.join(names) or 'none'}") from None
        from bb_jax.tuning.tuner import validate_top

        enable_compile_cache()
        seeds = list(range(args.seed, args.seed + args.seeds))
        rows = validate_top(study, args.top_k, seeds, args.num_steps, args.eval_episodes,
                            log=lambda line: print(line, flush=True))
    except (UsageError, StorageError, ValueError) as err:
        return _fail(prog, str(err))
    print(f"validation of the top {len(rows)} trials of {args.study_name} over {len(seeds)} "
          "seeds (mean return on fresh episodes, 95% CI):")
    for rank, row in enumerate(rows, start=1):
        print(f"  #{rank} trial {row['trial']}: {row['mean']:.2f} +/- {row['ci95']:.2f} "
              f"(tuning value {row['tuning_value']:.2f})")
    if args.results_json:
        Path(args.results_json).write_text(json.dumps(
            {"study_name": args.study_name, "seeds": seeds, "ranking": rows}, indent=2))
    return 0
