"""`train_main`: scripts/train_simple.py and bb-train (PPO on one scenario, several seeds as one
population, saved runs)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import jax

from bb_jax import devices, envs, interrupts, wall_time
from bb_jax.agent.config import (
    HYPERPARAM_NAMES,
    MAX_TOTAL_STEPS,
    PPOConfig,
    PPOHyperparams,
    check_hyperparams,
    resolve,
)
from bb_jax.cli.common import (
    OneLineParser,
    UsageError,
    check_not_inputs,
    check_writable_dir,
    command_line,
    enable_compile_cache,
    fail,
    parse_scenarios,
)
from bb_jax.config import add_flags, from_flags
from bb_jax.game.opponents import OPPONENT_KINDS
from bb_jax.game.scenarios import list_scenarios
from bb_jax.progress import Progress


def _train_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="train_simple.py",
        description="Train PPO on Bucket Brigade scenarios (seeds x scenarios in one vmapped "
                    "call).",
    )
    p.add_argument("--scenario", default="default",
                   help="a scenario, a comma-separated list, or 'all': every seed trains on "
                        "each; the final return is their mean (the tuner's objective)")
    p.add_argument("--num-opponents", type=int, default=2,
                   help="heuristic opponents beside the learner, 1..9")
    p.add_argument("--opponents", nargs="+", choices=OPPONENT_KINDS, default=None,
                   help="opponent kinds (default: docs/GAME_RULES.md's list)")
    p.add_argument("--env", default="bucket_brigade",
                   help="bucket_brigade (default), gymnax:NAME (e.g. gymnax:CartPole-v1) or "
                        "module:factory (a gymnax env of your own); bb_jax.envs")
    p.add_argument("--num-steps", type=int, default=500_000, help="env steps per seed")
    p.add_argument("--init-params", default=None,
                   help="start every seed from these saved parameters (a params_seed*.msgpack "
                        "of a run with the same network)")
    add_flags(p, PPOConfig)  # the declared static settings with a flag
    add_flags(p, PPOHyperparams)  # and the traced hyperparameters
    _add_run_args(p)
    return p


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """Seeds, evaluation, where the run goes, its checkpoints, live logs and its resume."""
    p.add_argument("--seed", type=int, default=42, help="the run's seed")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="train all these seeds in one vmapped call (overrides --seed)")
    p.add_argument("--eval-episodes", type=int, default=200,
                   help="fresh episodes per seed evaluated after training")
    p.add_argument("--chunk-updates", type=int, default=10, help="updates between progress lines")
    p.add_argument("--run-name", default=None,
                   help="the run's name (default: ppo_SCENARIO_hHIDDEN_sSEED_nNUM_STEPS)")
    p.add_argument("--save-path", default=None, help="folder for the run (default: runs/RUN_NAME)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in the folder (its files are removed first, "
                        "so two runs never mix); without it such a folder is refused")
    p.add_argument("--results-json", default=None, help="also write the summary here")
    p.add_argument("--checkpoint-every", type=int, default=50_000,
                   help="env steps per seed between checkpoints of the whole training state "
                        "(rounded up to whole chunks; one is also saved on Ctrl-C/SIGTERM)")
    p.add_argument("--log", default=None, metavar="LOGGER[,...]",
                   help="also log each chunk's metrics live: tensorboard (event files in "
                        "RUN_DIR/tensorboard; needs bb-jax[tensorboard]), mlflow (one MLflow "
                        "run in experiment bb-jax; needs bb-jax[mlflow]) (default: "
                        "metrics.jsonl only)")
    p.add_argument("--mlflow-uri", default=None, metavar="URI",
                   help="MLflow tracking URI for --log mlflow (default: $MLFLOW_TRACKING_URI, "
                        "else sqlite:///RUN_DIR/mlflow.db)")
    p.add_argument("--schedule", default=None, metavar="FILE",
                   help="JSON list of hyperparameter changes in env steps per seed, e.g. "
                        "[{\"env_steps\": 40960, \"learning_rate\": 0.0005}], each on a "
                        "chunk boundary; from a flag's value on (default: none)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the run saved in RUN_DIR from its latest checkpoint, with "
                        "its own settings (no other flag)")
    p.add_argument("--list-scenarios", action="store_true", help="print the scenarios and stop")


def train_main(argv: list[str] | None = None) -> int:
    wall_time.start()
    devices.use_host_devices()
    enable_compile_cache()
    parser = _train_parser()
    args = parser.parse_args(argv)
    if args.list_scenarios:
        print("\n".join(list_scenarios()))
        return 0
    try:
        if args.resume is not None:
            args = resumed_args(parser, args)
        with interrupts.raising():
            return _train(args)
    except (UsageError, ValueError) as err:
        return fail("train_simple.py", str(err))
    except RuntimeError as err:  # a diverged run: not bad input, but one line all the same
        from bb_jax.runtime.runs import Diverged

        if not isinstance(err, Diverged):
            raise
        print(f"train_simple.py: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        folder = _save_dir(args)
        print(f"interrupted: continue from the latest checkpoint with --resume {folder}"
              if (folder / CHECKPOINTS).is_dir() else
              "interrupted before the first checkpoint", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(err, interrupts.Terminated)
                      else signal.SIGINT)


RUN_FILE = "run.json"  # a run's settings, written when it starts (for --resume)
CHECKPOINTS = "checkpoints"  # a run's orbax checkpoints while it is unfinished
NOT_STORED = ("resume", "save_path", "overwrite", "list_scenarios")  # how, not what, it runs


def run_settings(args: argparse.Namespace, num_envs: int) -> dict:
    """The run's settings as RUN_FILE stores them: {"config": every option's value} (JSON;
    the flags of how this command runs it, --resume and --overwrite, left out), with the
    environments per seed resolved for this backend (`num_envs`), so a resume elsewhere
    trains the same program."""
    config = {k: v for k, v in vars(args).items() if k not in NOT_STORED}
    return {"config": {**config, "num_envs": num_envs}}


def resumed_args(parser: OneLineParser, args: argparse.Namespace) -> argparse.Namespace:
    """The settings of the run in --resume's folder, read back from the config it stored
    (a run saved before the config was stored: from the command line it saved)."""
    given = command_line(parser, args, leave_out=("resume",))
    if given:
        raise UsageError(f"--resume continues a run with its own settings; drop "
                         f"{' '.join(given)}")
    folder = Path(args.resume)
    try:
        saved = json.loads((folder / RUN_FILE).read_text())
        config = saved["config"] if "config" in saved else vars(parser.parse_args(saved["argv"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"--resume {folder}: no run of train_simple.py there (no readable "
                         f"{RUN_FILE})") from None
    unknown = set(config) - set(vars(args))
    if unknown:
        raise UsageError(f"--resume {folder}: its {RUN_FILE} names settings this version does "
                         f"not have: {', '.join(sorted(unknown))}")
    return argparse.Namespace(**{**vars(parser.parse_args([])), **config,
                                 "save_path": str(folder), "resume": str(folder)})


def _run_name(args) -> str:
    seeds = args.seeds if args.seeds else [args.seed]
    label = "+".join(parse_scenarios(args.scenario)) if args.scenario != "all" else "all"
    return args.run_name or f"ppo_{label}_h{args.hidden_size}_s{seeds[0]}_n{args.num_steps}"


def _save_dir(args) -> Path:
    return Path(args.save_path or Path("runs") / _run_name(args))


def _run_files(folder: Path) -> list[Path]:
    """What a run wrote into `folder` (saved run, logs, checkpoints), as far as it is there:
    what --overwrite removes, and nothing else."""
    from bb_jax.cli.run_logs import MLFLOW_RUN_FILE
    from bb_jax.runtime.saved_runs import saved_files

    own = (RUN_FILE, CHECKPOINTS, "tensorboard", MLFLOW_RUN_FILE, "mlflow.db")
    return [*saved_files(folder), *(folder / name for name in own if (folder / name).exists())]


def _checked_folder(args) -> Path:
    """The run's folder, checked: an unfinished run's checkpoints are continued only with
    --resume, a finished run is not resumed, and a run already there (finished or not) is
    replaced only with --overwrite."""
    save_dir = _save_dir(args)
    has_checkpoints = (save_dir / CHECKPOINTS).is_dir() and any((save_dir / CHECKPOINTS).iterdir())
    finished = (save_dir / "config.json").exists()
    if args.resume is not None:
        if not has_checkpoints and finished:
            raise UsageError(f"--resume {save_dir}: that run has finished (its results are "
                             "there)")
    elif has_checkpoints and not args.overwrite:
        raise UsageError(f"{save_dir} holds checkpoints of an unfinished run: continue it with "
                         f"--resume {save_dir}, or choose another --save-path or --run-name "
                         "(--overwrite replaces it)")
    elif finished and not args.overwrite:
        raise UsageError(f"{save_dir} holds a finished run: choose another --save-path or "
                         "--run-name, or --overwrite to replace it")
    return check_writable_dir(save_dir)


def _check_paths(args, save_dir: Path, seeds: list[int], scenarios: tuple[str, ...]) -> None:
    """No file the run writes (or --overwrite removes) is one it reads."""
    from bb_jax.runtime.saved_runs import SAVED_FILES, params_file

    written = [save_dir / name for name in (RUN_FILE, *SAVED_FILES)]
    written += [save_dir / params_file(seed, name, list(scenarios))
                for seed in seeds for name in scenarios]
    if args.overwrite and args.resume is None:
        written += _run_files(save_dir)
    check_not_inputs([*(("the run", path) for path in written),
                      ("--results-json", args.results_json)],
                     [("--init-params", args.init_params), ("--schedule", args.schedule)])


LOCK_FILE = "training.lock"  # {"pid", "start"} of the process training the run


@contextlib.contextmanager
def _run_lock(folder: Path):
    """Hold `folder` for this process while it trains: a folder that another live process is
    training (its lock names a running pid with the same start time) is refused; a lock left by
    a process that died (kill -9) is taken over. The lock goes when training ends."""
    from bb_jax.tuning.liveness import process_start_time

    lock = folder / LOCK_FILE
    try:
        held = json.loads(lock.read_text())
        pid = held["pid"]
        alive = isinstance(pid, int) and process_start_time(pid) == held["start"] is not None
    except (OSError, ValueError, KeyError, TypeError):
        held, alive = None, False
    if alive:
        raise UsageError(f"{folder} is being trained by process {held['pid']}: wait for it or "
                         "stop it (Ctrl-C), then --resume")
    lock.unlink(missing_ok=True)
    try:
        with open(lock, "x") as f:  # two processes starting at once: one gets it
            json.dump({"pid": os.getpid(), "start": process_start_time(os.getpid())}, f)
    except FileExistsError:
        raise UsageError(f"{folder} is being trained by another process that just started") \
            from None
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _train(args) -> int:
    from bb_jax.cli.run_logs import RunLogs, check_loggers
    from bb_jax.runtime.checkpoints import Checkpoints
    from bb_jax.runtime.runs import train_seeds

    scenarios, config, init_params, schedule = _checked_run(args)
    loggers = check_loggers(args.log)
    seeds = args.seeds if args.seeds else [args.seed]
    _check_paths(args, _save_dir(args), seeds, scenarios)
    save_dir, run_name = _checked_folder(args), _run_name(args)
    if args.results_json:
        check_writable_dir(Path(args.results_json).resolve().parent)
    with _run_lock(save_dir):
        if args.overwrite and args.resume is None:
            _remove(_run_files(save_dir))
        print(f"training {run_name}: scenario={','.join(scenarios)} seeds={seeds} "
              f"steps/seed={config.num_updates * config.batch_size:,}", flush=True)
        (save_dir / RUN_FILE).write_text(json.dumps(run_settings(args, config.num_envs),
                                                      indent=2))
        checkpoints = Checkpoints(save_dir / CHECKPOINTS)
        hyperparams = {name: getattr(args, name) for name in HYPERPARAM_NAMES}
        logs = RunLogs(save_dir, [(seed, name) for seed in seeds for name in scenarios], loggers,
                       config.batch_size, run_name=run_name, mlflow_uri=args.mlflow_uri,
                       params={**dataclasses.asdict(config), **hyperparams, "seeds": seeds},
                       resuming=checkpoints.latest() is not None)
        bar = Progress(config.num_updates * config.batch_size, "steps", "step")
        run = train_seeds(config, hyperparams, seeds,
                          args.chunk_updates, args.eval_episodes, progress=bar.update,
                          scenarios=list(scenarios), init_params=init_params,
                          checkpoints=checkpoints,
                          checkpoint_every=-(-args.checkpoint_every // config.batch_size),
                          on_chunk=logs.chunk, schedule=schedule)
        bar.close()
        logs.close()
        _save(run, args, save_dir, run_name, checkpoints, len(seeds))
        return 0


def _checked_run(args):
    """(scenarios, config, initial parameters or None, schedule or None) from the command
    line, each checked before anything is written (UsageError or ValueError: one line)."""
    from bb_jax.runtime.driver import plan_chunks
    from bb_jax.runtime.saved_runs import check_finite, load_params
    from bb_jax.runtime.schedule import read_schedule

    scenarios = parse_scenarios(args.scenario)
    if not 0 < args.num_steps <= MAX_TOTAL_STEPS:
        raise UsageError(f"--num-steps must be > 0 and at most {MAX_TOTAL_STEPS} (env steps "
                         f"per seed, counted in int32), got {args.num_steps}")
    if not 1 <= args.num_opponents <= 9:
        raise UsageError(f"--num-opponents must be in 1..9, got {args.num_opponents}")
    if args.checkpoint_every <= 0:
        raise UsageError(f"--checkpoint-every must be > 0 (env steps per seed), got "
                         f"{args.checkpoint_every}")
    config = resolve(from_flags(PPOConfig, args, scenario=scenarios[0],
                                num_opponents=args.num_opponents,
                                opponents=tuple(args.opponents) if args.opponents else None,
                                total_steps=args.num_steps),
                     jax.default_backend(), args.num_envs)
    config = envs.configure(config, args.env, scenarios)
    check_hyperparams({name: getattr(args, name) for name in HYPERPARAM_NAMES},
                      config.max_epochs)
    if args.eval_episodes < 1:
        raise UsageError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
    init_params = None
    if args.init_params:  # a checkpoint of another network or a diverged one stops it here
        init_params = load_params(Path(args.init_params), config)
        check_finite(init_params, args.init_params)
    schedule = None
    if args.schedule:
        schedule = read_schedule(Path(args.schedule), config.batch_size)
        schedule.check_boundaries(plan_chunks(config.num_updates, args.chunk_updates)[0])
        schedule.check_within(config.num_updates, config.batch_size)
    return scenarios, config, init_params, schedule


def _remove(paths: list[Path]) -> None:
    """Delete the files and folders of the run being replaced (--overwrite)."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    if paths:
        print(f"--overwrite: removed the earlier run's {len(paths)} files and folders from "
              f"{paths[0].parent}")


def _save(run, args, save_dir: Path, run_name: str, checkpoints, num_seeds: int) -> None:
    """The finished run saved (its checkpoints dropped), its summary printed and written."""
    from bb_jax.runtime.saved_runs import save_run

    paths = save_run(run, save_dir, run_name)
    checkpoints.close()
    shutil.rmtree(save_dir / CHECKPOINTS)  # finished: the saved run replaces them
    summary = {"run_name": run_name, **run.summary(), "hyperparameters": run.hyperparams,
               **({"schedule": run.schedule} if run.schedule is not None else {}),
               "save_path": str(save_dir), "time": wall_time.current().split()}
    _print_summary(summary, num_seeds, args.eval_episodes)
    print(wall_time.current().line())
    print(f"saved to {save_dir} ({', '.join(p.name for p in paths.values())})")
    if args.results_json:
        Path(args.results_json).write_text(json.dumps(summary, indent=2))
        print(f"results: {args.results_json}")


def _print_summary(summary: dict, num_seeds: int, eval_episodes: int) -> None:
    what = "final return (mean of last 100 episodes"
    if len(summary["scenarios"]) > 1:
        for name, figure in summary["per_scenario"].items():
            print(f"{what}) on {name}: {figure['mean']:.2f}")
        what += f", mean over {len(summary['scenarios'])} scenarios"
    fr = summary["final_return"]
    print(f"{what}): {fr['mean']:.2f} +/- {fr['ci95']:.2f} (95% CI over {num_seeds} seeds)"
          if num_seeds > 1 else f"{what}): {fr['mean']:.2f}")
    ev = summary["eval_return_sampled"]
    print(f"fresh-episode return ({eval_episodes} episodes per seed, sampled policy): "
          f"{ev['mean']:.2f} +/- {ev['ci95']:.2f} (95% CI over seeds)" if num_seeds > 1 else
          f"fresh-episode return ({eval_episodes} episodes, sampled policy): "
          f"{ev['mean']:.2f}")
