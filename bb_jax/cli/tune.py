"""`tune_main`: scripts/tune_hyperparameters.py and bb-tune (an Optuna sweep, its worker
processes, the validation that follows and the printed recommendation)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys

import jax

from bb_jax import devices, interrupts, wall_time
from bb_jax.cli.common import (
    STORAGE_ENV,
    UsageError,
    command_line,
    enable_compile_cache,
    fail,
)
from bb_jax.cli.tune_args import tune_parser, tune_settings
from bb_jax.cli.validate import adjusted_text, print_cheapest, print_validation


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
    wall_time.start()
    args = tune_parser().parse_args(argv)
    devices.use_host_devices(devices.job_cores(0, _jobs(args.n_jobs, args.n_trials)))
    if args.strategy == "pbt":
        from bb_jax.cli.tune_pbt import pbt_main

        return pbt_main(args)
    try:
        settings = tune_settings(args)
    except UsageError as err:
        return fail(prog, str(err))
    from bb_jax.runtime.memory import PopulationMemoryError
    from bb_jax.tuning.storage import StorageError, error_text, redact
    from bb_jax.tuning.study import StudyMismatchError

    try:
        return _tune(settings, args)
    except (StorageError, StudyMismatchError, PopulationMemoryError) as err:
        return fail(prog, redact(str(err)))
    except Exception as err:  # noqa: BLE001  never echo a storage password in a traceback
        print(f"{prog}: {type(err).__name__}: {error_text(err)}", file=sys.stderr)
        return 1


def _tune(settings, args) -> int:
    import time

    from bb_jax.tuning.tuner import Tuner

    enable_compile_cache()
    started = time.perf_counter()
    jobs = _jobs(args.n_jobs, settings.n_trials)
    if settings.worker_index == 0 and jobs > 1 and settings.storage is None:
        settings = settings.named()
        journal = settings.output_dir.resolve() / f"{settings.study_name}.journal.log"
        settings = dataclasses.replace(settings, storage=f"journal://{journal}")
        print(f"--n-jobs {jobs} needs a shared storage: using {settings.storage}")
    if settings.worker_index > 0:
        _pin(devices.usable_cores())  # the share the tuner gave this worker
    shares = [settings.n_trials // jobs + (i < settings.n_trials % jobs) for i in range(jobs)]
    tuner = Tuner(dataclasses.replace(settings, n_trials=shares[0]))  # opens (or creates)
    settings = tuner.settings  # the study before any worker starts; its name and budget
    workers = [_start_worker(args, settings, i, share, devices.job_cores(i, jobs))
               for i, share in enumerate(shares) if i > 0]
    if settings.worker_index > 0:
        tuner.run()
        return 0
    _print_header(settings, sum(shares), jobs)
    study, failed_workers = _sweep(tuner, settings, workers, jobs)
    tuned_s = time.perf_counter() - started
    if not args.no_validate and _has_complete_trial(study):
        _validate(study, settings, args, tuner)
    _print_best(study, tuned_s, time.perf_counter() - started - tuned_s)
    print(wall_time.current().line())
    if failed_workers:
        print(f"{failed_workers} worker process(es) failed", file=sys.stderr)
        return 1
    return 0


def _print_header(settings, n_trials: int, jobs: int) -> None:
    from bb_jax.tuning.storage import redact
    from bb_jax.tuning.study import device_kind

    print(f"study {settings.study_name} | storage "
          f"{redact(settings.storage) if settings.storage else 'in-memory'} | scenarios "
          f"{','.join(settings.scenarios)} | {n_trials} trials x {_run_length(settings)} x "
          f"{settings.seeds_per_trial} seed(s) | objectives {','.join(settings.objectives)} | "
          f"device {device_kind()} | population "
          f"{settings.population_size} trial(s), {settings.shapes} shapes | space "
          f"{_space_line(settings)} | pruner "
          f"{settings.pruner} | sampler "
          f"{settings.sampler} | {jobs} job(s)", flush=True)


def _sweep(tuner, settings, workers, jobs: int):
    """This process's trials beside the worker processes; the outputs written however it
    ends (Ctrl-C: the workers are stopped, their unfinished trials failed, then it is raised
    again). Returns (the study, how many workers failed)."""
    from bb_jax.tuning.liveness import fail_stale_trials
    from bb_jax.tuning.outputs import write_outputs
    from bb_jax.tuning.study import open_study

    try:
        if jobs > 1:
            _pin(devices.job_cores(0, jobs))
        tuner.run()
    except KeyboardInterrupt:
        for worker in workers:  # they close their own batches and stop
            if worker.poll() is None:
                worker.send_signal(signal.SIGINT)
        raise
    finally:
        failed_workers, interrupt = _wait_for_workers(workers)
        with interrupts.deferred():  # a further Ctrl-C waits until the outputs are written
            study = tuner.study if settings.storage is None else open_study(settings)
            if interrupt is not None:  # the killed workers' batches
                fail_stale_trials(study, tuner.storage)
            _record_time(study)
            paths = write_outputs(study, settings.storage, settings.output_dir)
            print(f"results: {paths['results']}", flush=True)
        if interrupt is not None:
            raise interrupt
    return study, failed_workers


def _validate(study, settings, args, tuner) -> None:
    from bb_jax.tuning.outputs import write_outputs
    from bb_jax.tuning.validation import validate_study

    validate_study(study, args.validate_top_k, args.validate_seeds, args.validate_steps,
                   settings.eval_episodes, max_population=settings.max_population,
                   log=lambda line: print(line, flush=True), tuner_trainer=tuner.trainer,
                   margin=args.equivalence_margin)
    _record_time(study)
    paths = write_outputs(study, settings.storage, settings.output_dir)
    print(f"results: {paths['results']}", flush=True)


def _record_time(study) -> None:
    """Store where this command's wall time went so far (study user attribute "time", in the
    results JSON)."""
    study.set_user_attr("time", wall_time.current().split())


def _space_line(settings) -> str:
    """The search space of the header, e.g. "small (hidden 64/128)"."""
    hidden = settings.search_space().envelope("hidden_size").choices
    return f"{settings.space_label} (hidden {'/'.join(map(str, hidden))})"


def _run_length(settings) -> str:
    """What one training run of the study is: env steps, or a FLOP budget (and the time it
    was converted from)."""
    if settings.flop_budget is None:
        return f"{settings.num_steps:,} steps"
    text = f"{settings.flop_budget / 1e12:.3g} TFLOP"
    return text if settings.time_budget is None else f"{text} (~{settings.time_budget:g} s)"


def _wait_for_workers(workers) -> tuple[int, KeyboardInterrupt | None]:
    """Wait for the worker processes: (how many failed, the interrupt received meanwhile). A
    Ctrl-C or SIGTERM while waiting kills those still running instead of abandoning the wait
    (the caller marks their unfinished trials FAIL), so the caller can still write the
    outputs before it raises the interrupt."""
    interrupt = None
    while True:
        try:
            return sum(worker.wait() != 0 for worker in workers), interrupt
        except KeyboardInterrupt as err:
            interrupts.acknowledge()
            interrupt = err
            print("interrupted while waiting for the worker processes: stopping them",
                  file=sys.stderr, flush=True)
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()


def _jobs(n_jobs: int, n_trials: int) -> int:
    """Processes of a sweep: --n-jobs (-1: one per usable core), at most one per trial."""
    return min(len(devices.usable_cores()) if n_jobs == -1 else n_jobs, n_trials)


def _start_worker(args, settings, index: int, n_trials: int, cores: list[int]):
    """Another process running `n_trials` trials of the same study (its sampler seeded apart)
    on `cores`."""
    import subprocess

    argv, env = worker_command(args, settings, index, n_trials, cores)
    # its own process group: a Ctrl-C in the terminal reaches only the tuner, which passes
    # one SIGINT on (a second one could cut short the worker's closing of its batch)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=env, process_group=0)


def worker_command(args: argparse.Namespace, settings, index: int, n_trials: int,
                   cores: list[int] | None = None) -> tuple[list[str], dict]:
    """The command line and environment of worker `index`: the tuner's own command line
    (`args`, derived by the parser, so every flag reaches the workers) with its share of the
    trials, its index, the study's resolved name and no validation. The storage URL travels
    in the environment ($BB_JAX_STORAGE), not the command line, which any local user can read;
    the worker's share of the cores in $BB_JAX_CORES; the enqueued rows and a warm start's
    (whose storage URL may hold a password) are in the study."""
    worker = argparse.Namespace(**{**vars(args), "n_trials": n_trials, "worker_index": index,
                                   "study_name": settings.study_name, "no_validate": True,
                                   "strategy": "tpe", "sampler": settings.sampler})
    argv = [sys.executable, "-c", ("import sys; from bb_jax.cli import tune_main; "
                                   "sys.exit(tune_main())"),
            *command_line(tune_parser(), worker,
                          leave_out=("storage", "enqueue", "n_jobs", "warm_start_from"))]
    env = {**os.environ, STORAGE_ENV: settings.storage}
    if cores is not None:
        env[devices.CORES_ENV] = ",".join(map(str, cores))
    return argv, env


def _pin(cores: list[int]) -> None:
    """On a CPU backend, keep this process on its share of the cores (processes beat threads
    there)."""
    if jax.default_backend() == "cpu":
        devices.pin(cores)


def _has_complete_trial(study) -> bool:
    from optuna.trial import TrialState

    return bool(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _print_best(study, tune_s: float, validate_s: float) -> None:
    from bb_jax.tuning.outputs import results_dict

    summary = results_dict(study, None)
    print(f"finished in {tune_s:.1f} s: {summary['n_complete']} complete, "
          f"{summary['n_pruned']} pruned, {summary['n_failed']} failed "
          f"({summary['n_trials']} trials in the study)")
    if summary["best_value"] is None:
        print("no complete trial yet")
        return
    print(f"best tuning value {summary['best_value']:.2f} (trial {summary['best_trial']}; the "
          "best of many noisy values, biased upwards)")
    rec = summary["recommendation"]
    if rec is None:
        print("not validated (--no-validate): run validate_best.py before trusting it")
        return
    print(f"validation in {validate_s:.1f} s:")
    print_validation(summary["validation"])
    print(f"recommendation: {rec['summary']}")
    if rec["beats_control"]:
        diff = rec["vs_control"]
        print(f"  trial {rec['trial']}: {rec['validated_mean']:.2f} +/- "
              f"{rec['validated_ci95']:.2f} on fresh seeds, {diff['mean']:+.2f} +/- "
              f"{diff['ci95']:.2f} over the default configuration ({adjusted_text(diff)})")
        for name, value in rec["params"].items():
            print(f"  {name}: {value}")
    print("train it with:" if rec["beats_control"] else "train the defaults with:")
    print(f"  {rec['train_command']}")
    print_cheapest(rec.get("cheapest"))
