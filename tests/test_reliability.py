"""Reliability of the tuner: concurrent workers on journal and SQLite storages, SIGKILL and
resume, Ctrl-C, diverging trials, bad input, secrets, and memory-bounded populations.
(Real PostgreSQL: tests/test_postgres.py.)"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
import optuna
import pytest
from flax import serialization
from optuna.trial import TrialState
from reliability_helpers import (
    FIXED,
    LONGER,
    TOLD_ENV,
    Tuner,
    assert_plots_show_study,
    by_state,
    counting_compiles,
    fixed_params,
    freeze_mid_batch,
    kill,
    load_trials,
    queue_trials,
    refused_port,
    signal_all,
    tune_args,
    wait_for,
    warm_compile_cache,
)

from bb_jax import interrupts
from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig
from bb_jax.agent.ppo import PPO
from bb_jax.cli import STORAGE_ENV, tune_main, worker_command
from bb_jax.runtime import memory
from bb_jax.runtime.cohorts import CohortTrainer
from bb_jax.runtime.members import MemberSpec
from bb_jax.runtime.saved_runs import load_params
from bb_jax.tuning.liveness import ReasonedRDBStorage, fail_stale_trials, process_start_time
from bb_jax.tuning.outputs import results_dict, write_outputs
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.space import SEARCH_SPACE
from bb_jax.tuning.storage import StorageError, make_storage, redact, validate_url
from bb_jax.tuning.tuner import Tuner as StudyTuner


@pytest.fixture(autouse=True)
def _compiled_once(request):
    """In-process training here shares compiled programs with the tuner processes (JAX's
    persistent cache, as the CLI sets it up): compile the sweeps' program once, before the
    first slow test (the quick ones train nothing)."""
    if request.node.get_closest_marker("slow"):
        warm_compile_cache()


SHAPE = (FIXED["hidden_size"], FIXED["batch_size"])
BASE = PPOConfig(scenario="default", total_steps=4096, batch_size=4096)


# ---------------------------------------------------------------------------------------------
# Several worker processes on one study


@pytest.mark.slow
def test_journal_storage_two_worker_processes(tmp_path):
    url = f"journal://{tmp_path / 'study.journal'}"
    queue_trials(url, "journal", 4)
    out = tmp_path / "out"
    workers = [Tuner(tune_args("journal", url, out, 2, "--seed", str(w)), tmp_path, f"w{w}")
               for w in range(2)]
    for worker in workers:
        assert worker.wait() == 0, worker.output()
    trials = load_trials(url, "journal")
    assert len(by_state(trials, TrialState.COMPLETE)) == 4 == len(trials)
    assert len({t.number for t in trials}) == 4
    assert {t.params["learning_rate"] for t in trials} == {
        fixed_params(i)["learning_rate"] for i in range(4)}
    results = json.loads((out / "journal_results.json").read_text())
    assert results["storage"] == url and results["n_complete"] >= 2


@pytest.mark.slow
def test_sqlite_two_processes_never_locked(tmp_path):
    """--n-jobs 2: the tuner and one worker process on one SQLite file. Both run the
    --callback and --mlflow-uri callbacks on the trials they tell: every trial once, from the
    process that trained it, and one MLflow run per trial with its value."""
    from mlflow import MlflowClient

    url = f"sqlite:///{tmp_path / 'study.db'}"
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    queue_trials(url, "sqlite2", 4)
    out = tmp_path / "out"
    told = tmp_path / "told.jsonl"
    tuner = Tuner(tune_args("sqlite2", url, out, 4, "--n-jobs", "2", "--callback",
                            "reliability_helpers:record_told", "--mlflow-uri", mlflow_uri),
                  tmp_path, "tuner", env={TOLD_ENV: str(told), "PYTHONPATH": os.pathsep.join(
                      [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])})
    assert tuner.wait() == 0, tuner.output()
    assert "locked" not in tuner.stderr and "Traceback" not in tuner.stderr, tuner.output()
    trials = load_trials(url, "sqlite2")
    assert len(by_state(trials, TrialState.COMPLETE)) == 4 == len(trials)
    pids = {t.system_attrs["bb_pid"] for t in trials}
    assert len(pids) == 2, "both processes trained trials"
    seen = [json.loads(line) for line in told.read_text().splitlines()]
    assert sorted((pid, number) for pid, number, _ in seen) == sorted(
        (t.system_attrs["bb_pid"], t.number) for t in trials)
    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("sqlite2").experiment_id])
    assert sorted((r.info.run_name, r.data.metrics["train_return"]) for r in runs) == sorted(
        (str(t.number), t.value) for t in trials)
    results = json.loads((out / "sqlite2_results.json").read_text())
    assert results["n_complete"] == 4  # the tuner waits for its worker before writing


RACE = """
import sys, optuna
from bb_jax.tuning.storage import make_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.load_study(study_name="race", storage=make_storage(sys.argv[1], None))
for _ in range(int(sys.argv[2])):
    trial = study.ask()
    print(trial.number, flush=True)
    study.tell(trial, 1.0)
"""


@pytest.mark.slow
def test_sqlite_concurrent_asks_take_each_queued_trial_once(tmp_path):
    """Plain pysqlite transactions let two processes take the same WAITING trial; the
    storage's BEGIN IMMEDIATE makes every ask atomic."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    study = optuna.create_study(study_name="race", storage=make_storage(url, None))
    for i in range(45):
        study.enqueue_trial({"x": i})
    procs = [subprocess.Popen([sys.executable, "-c", RACE, url, "15"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    numbers = [int(n) for out, _ in outputs for n in out.split()]
    assert sorted(numbers) == list(range(45)), "every queued trial taken exactly once"
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 45 and all(t.state == TrialState.COMPLETE for t in trials)


# ---------------------------------------------------------------------------------------------
# Crash, resume, Ctrl-C


@pytest.mark.slow
def test_sigkill_mid_batch_then_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    queue_trials(url, "crash", 10)
    first = Tuner(tune_args("crash", url, tmp_path / "out", 8, *LONGER), tmp_path, "first")
    freeze_mid_batch(first, url, "crash")
    kill(first, signal.SIGKILL)
    first.wait()
    before = {t.number: t for t in load_trials(url, "crash")}
    complete = {n: t.value for n, t in before.items() if t.state == TrialState.COMPLETE}
    stale = {n for n, t in before.items() if t.state == TrialState.RUNNING}
    assert complete and stale

    again = Tuner(tune_args("crash", url, tmp_path / "out", 2, *LONGER), tmp_path, "again")
    assert again.wait() == 0, again.output()
    assert f"marked stale RUNNING trials as FAIL: {sorted(stale)}" in again.stdout
    after = {t.number: t for t in load_trials(url, "crash")}
    for number, value in complete.items():  # every completed trial kept as it was
        assert after[number].state == TrialState.COMPLETE and after[number].value == value
    for number in stale:
        assert after[number].state == TrialState.FAIL
        assert "worker process died" in after[number].user_attrs["fail_reason"]
    new = {n for n, t in after.items() if t.state == TrialState.COMPLETE} - set(complete)
    assert len(new) == 2  # the requested new trials
    assert not [t for t in after.values() if t.state == TrialState.RUNNING]
    results = json.loads((tmp_path / "out" / "crash_results.json").read_text())
    assert results["n_complete"] == len(complete) + 2
    assert results["n_failed"] == len(stale)


def test_trial_orphaned_before_its_worker_tagged_it(tmp_path, monkeypatch):
    """A worker killed between creating a trial and tagging it leaves an untagged RUNNING
    trial: failed once older than the grace period, left alone before (its worker may be
    tagging it right now)."""
    storage = make_storage(f"sqlite:///{tmp_path / 'o.db'}", None)
    study = optuna.create_study(storage=storage)
    orphan = study.ask()
    assert fail_stale_trials(study, storage) == []
    assert study.trials[0].state == TrialState.RUNNING
    monkeypatch.setattr("bb_jax.tuning.liveness.UNTAGGED_GRACE_S", -1.0)
    assert fail_stale_trials(study, storage) == [orphan.number]
    assert study.trials[0].state == TrialState.FAIL
    assert "before tagging" in study.trials[0].user_attrs["fail_reason"]


def running_trial(storage, study_name: str, **system_attrs) -> int:
    """A new RUNNING trial of `study_name` tagged with `system_attrs`; returns its id."""
    trial_id = storage.create_new_trial(storage.get_study_id_from_name(study_name))
    for key, value in system_attrs.items():
        storage.set_trial_system_attr(trial_id, key, value)
    return trial_id


def test_stale_check_tells_a_reused_pid_from_the_live_worker(tmp_path):
    """A RUNNING trial tagged with a live process of this host stays RUNNING when that
    process started when the tag says, and is failed when it started at another time (the
    worker died and its pid was reused)."""
    storage = make_storage(f"sqlite:///{tmp_path / 'pids.db'}", None)
    study = optuna.create_study(storage=storage, study_name="pids")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        start = process_start_time(other.pid)
        assert start is not None
        tags = {"bb_host": socket.gethostname(), "bb_pid": other.pid}
        same = running_trial(storage, "pids", **tags, bb_pid_start=start)
        reused = running_trial(storage, "pids", **tags, bb_pid_start=str(int(start) - 1))
        failed = fail_stale_trials(study, storage)
    finally:
        other.kill()
        other.wait()
    assert failed == [storage.get_trial(reused).number]
    assert storage.get_trial(same).state == TrialState.RUNNING
    assert storage.get_trial(reused).state == TrialState.FAIL
    assert "worker process died" in storage.get_trial(reused).user_attrs["fail_reason"]


@pytest.mark.slow
def test_stale_heartbeat_fails_the_trial(tmp_path):
    """With heartbeats (RDB storages), a RUNNING trial whose last heartbeat is older than the
    grace period is failed, even though its tag names a live process; one with a fresh
    heartbeat is not."""
    storage = ReasonedRDBStorage(f"sqlite:///{tmp_path / 'hb.db'}",
                                 heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, study_name="hb")
    tags = {"bb_host": socket.gethostname(), "bb_pid": os.getpid(),
            "bb_pid_start": process_start_time(os.getpid())}
    silent, beating = (running_trial(storage, "hb", **tags) for _ in range(2))
    storage.record_heartbeat(silent)
    storage.record_heartbeat(beating)
    # the silent trial's last heartbeat, moved a minute back: beyond the 2 s grace period
    with sqlite3.connect(tmp_path / "hb.db") as db:
        db.execute("UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, '-60 seconds')"
                   " WHERE trial_id = ?", (silent,))
    assert fail_stale_trials(study, storage) == [storage.get_trial(silent).number]
    assert storage.get_trial(beating).state == TrialState.RUNNING
    assert "heartbeats" in storage.get_trial(silent).user_attrs["fail_reason"]


class _SignalsWhenCollected:
    """Sends `sig` to this process from its finalizer, where Python drops the exception."""

    def __init__(self, sig: int):
        self.sig = sig

    def __del__(self):
        signal.raise_signal(self.sig)


class _FailsWhenCollected:
    def __del__(self):
        raise ValueError("not an interrupt")


@pytest.mark.parametrize("sig, exception", [(signal.SIGINT, KeyboardInterrupt),
                                            (signal.SIGTERM, interrupts.Terminated)])
def test_an_interrupt_swallowed_by_a_finalizer_is_raised_again(sig, exception, monkeypatch):
    printed = []  # what Python would print as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", printed.append)
    with interrupts.raising():
        interrupts.raise_pending()  # nothing received yet
        _SignalsWhenCollected(sig)  # collected at once: its exception is dropped there
        assert printed == []  # ... without a traceback on the console
        with pytest.raises(exception):
            interrupts.raise_pending()
        interrupts.raise_pending()  # raised once, then forgotten
        with pytest.raises(exception):
            signal.raise_signal(sig)
        interrupts.acknowledge()  # the tuner handled that one
        interrupts.raise_pending()
        unrelated = _FailsWhenCollected()
        del unrelated
        assert [type(u.exc_value) for u in printed] == [ValueError]  # other errors still shown
    assert signal.getsignal(signal.SIGTERM) is not interrupts._on_signal
    assert sys.unraisablehook == printed.append


@pytest.mark.slow
@pytest.mark.parametrize("sig, jobs", [(signal.SIGINT, 1), (signal.SIGTERM, 2)],
                         ids=["SIGINT", "SIGTERM-two-processes"])
def test_interrupt_stops_cleanly(tmp_path, sig, jobs):
    """Ctrl-C (or SIGTERM) keeps finished trials, closes the running batch as FAIL and still
    writes the outputs; with --n-jobs 2 the worker process is stopped the same way."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    queue_trials(url, "stop", 10)
    out = tmp_path / "out"
    tuner = Tuner(tune_args("stop", url, out, 8, "--n-jobs", str(jobs), *LONGER), tmp_path,
                  "tuner")
    frozen = freeze_mid_batch(tuner, url, "stop")
    kill(tuner, sig)
    signal_all(frozen, signal.SIGCONT)
    assert tuner.wait() == 128 + sig, tuner.output()
    assert "interrupted: finished trials are stored" in tuner.stderr
    assert "Traceback" not in tuner.stderr, tuner.output()
    trials = load_trials(url, "stop")
    assert not by_state(trials, TrialState.RUNNING), "the interrupted batch is closed"
    failed = by_state(trials, TrialState.FAIL)
    assert failed and all(t.user_attrs["fail_reason"] == "interrupted" for t in failed)
    results = json.loads((out / "stop_results.json").read_text())
    records = {r["number"]: r for r in results["trials"]}
    for trial in trials:  # the results JSON holds exactly what the study holds
        assert records[trial.number]["state"] == trial.state.name
        assert records[trial.number]["value"] == trial.value
    assert results["n_complete"] == len(by_state(trials, TrialState.COMPLETE)) >= 1
    assert_plots_show_study(out, "stop", trials)


def _pending_signals(pid: int) -> int:
    """Bit mask of the signals pending for process `pid` (Linux /proc; 0 once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    mask = 0
    for line in lines:
        if line.startswith(("SigPnd:", "ShdPnd:")):
            mask |= int(line.split()[1], 16)
    return mask


@pytest.mark.slow
def test_second_interrupt_while_waiting_for_a_worker_still_writes_the_outputs(tmp_path):
    """Ctrl-C, then Ctrl-C again while the tuner waits for its worker process (kept stopped
    here, so it cannot finish by itself): the worker is killed, its unfinished trials are
    marked FAIL, the outputs are still written and the run exits 130 without a traceback."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    queue_trials(url, "again", 10)
    out = tmp_path / "out"
    tuner = Tuner(tune_args("again", url, out, 8, "--n-jobs", "2", *LONGER), tmp_path, "tuner")
    frozen = freeze_mid_batch(tuner, url, "again")
    children = [pid for pid in frozen if pid != tuner.proc.pid]
    try:
        kill(tuner, signal.SIGINT)
        os.kill(tuner.proc.pid, signal.SIGCONT)  # the tuner runs on, its worker stays stopped
        sigint = 1 << (signal.SIGINT - 1)
        wait_for(lambda: any(_pending_signals(pid) & sigint for pid in children), tuner,
                 what="the tuner passing the interrupt to its stopped worker")
        # the tuner's main thread blocks in waitpid for its worker (Linux: /proc wchan)
        wait_for(lambda: Path(f"/proc/{tuner.proc.pid}/wchan").read_text() == "do_wait",
                 tuner, what="the tuner waiting for its worker process")
        kill(tuner, signal.SIGINT)
        assert tuner.wait() == 128 + signal.SIGINT, tuner.output()
    finally:
        signal_all(frozen, signal.SIGKILL)
    assert "interrupted while waiting for the worker processes" in tuner.stderr
    assert "Traceback" not in tuner.stderr, tuner.output()
    trials = load_trials(url, "again")
    assert not by_state(trials, TrialState.RUNNING), "every batch is closed"
    assert by_state(trials, TrialState.FAIL)
    results = json.loads((out / "again_results.json").read_text())
    assert {r["number"]: r["state"] for r in results["trials"]} == {
        t.number: t.state.name for t in trials}


# ---------------------------------------------------------------------------------------------
# Divergence


def member(i: int, **hyperparams) -> MemberSpec:
    return MemberSpec(i, *SHAPE, {**DEFAULT_HYPERPARAMS, "learning_rate": 1e-4 * (i + 1),
                                  **hyperparams}, "default", 100 + i)


def trainer(**kwargs) -> CohortTrainer:
    return CohortTrainer(BASE, num_steps=4096, eval_interval=4096, **kwargs)


@pytest.mark.slow
def test_diverging_member_fails_and_its_population_carries_on():
    specs = [member(0), member(1, learning_rate=1e10), member(2), member(3)]
    results = trainer().run(specs)
    assert results[1].state == "failed"
    assert "NaN/inf" in results[1].reason
    healthy = trainer().run([specs[0], specs[2], specs[3]])
    for i in (0, 2, 3):  # the others train exactly as they would without it
        assert results[i].state == "complete" and np.isfinite(results[i].value)
        assert results[i].value == healthy[i].value


@pytest.mark.slow
def test_diverging_trial_is_failed_with_its_reason(tmp_path):
    diverging = {**fixed_params(0), "learning_rate": 1e10}  # far outside the search space
    settings = TuneSettings(num_steps=4096, n_trials=4, population_size=4, eval_interval=4096,
                            pruner="none", study_name="diverge", seed=3,
                            enqueue=(diverging, *[fixed_params(i) for i in range(1, 4)]))
    with warnings.catch_warnings():  # Optuna warns that the enqueued value is out of range
        warnings.simplefilter("ignore", UserWarning)
        study = StudyTuner(settings, log=lambda line: None).run()
    trials = study.get_trials(deepcopy=False)
    bad = [t for t in trials if t.params["learning_rate"] == 1e10]
    assert len(bad) == 1 and bad[0].state == TrialState.FAIL
    assert "NaN/inf" in bad[0].user_attrs["fail_reason"]
    others = [t for t in trials if t is not bad[0]]
    assert len(others) == 3 and all(t.state == TrialState.COMPLETE for t in others)
    paths = write_outputs(study, None, tmp_path)
    results = json.loads(paths["results"].read_text())  # strict JSON (no NaN)
    assert results["n_failed"] == 1 and results["n_complete"] == 3
    record = next(r for r in results["trials"] if r["number"] == bad[0].number)
    assert "NaN/inf" in record["user_attrs"]["fail_reason"]


# ---------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit code 2, nothing written


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = tune_main(args)
    captured = capsys.readouterr()
    return code, captured.err


SWEEP = ["--n-trials", "2", "--num-steps", "4096", "--eval-interval", "4096", "--no-validate"]


@pytest.fixture(scope="module")
def closed_port():
    """A local port on which connections are refused for the whole module."""
    with refused_port() as port:
        yield port


def bad_inputs(tmp: Path, closed_port: int) -> dict[str, tuple[list[str], str]]:
    a_file = tmp / "a_file"
    a_file.write_text("x")
    enqueue = {
        "invalid_json": "[{",
        "not_a_list": '"hidden_size"',
        "unknown_param": json.dumps([{"hidden": 64}]),
        "out_of_range": json.dumps([{"learning_rate": 0.5}]),
        "wrong_type": json.dumps([{"hidden_size": "big"}]),
        "null_value": json.dumps([{"gamma": None}]),
    }
    rows = {
        "unknown_scenario": (["--scenario", "nope"], "unknown scenario"),
        "one_unknown_scenario": (["--scenario", "easy,nope"], "unknown scenario"),
        "num_steps_zero": (["--num-steps", "0"], "--num-steps"),
        "num_steps_negative": (["--num-steps", "-5"], "--num-steps"),
        "num_steps_below_batch": (["--num-steps", "1000"], "--num-steps"),
        "n_trials_zero": (["--n-trials", "0"], "--n-trials"),
        "n_trials_negative": (["--n-trials", "-1"], "--n-trials"),
        "storage_no_scheme": (["--storage", "study.db"], "malformed storage URL"),
        "storage_unknown_scheme": (["--storage", "redis://host/0"], "malformed storage URL"),
        "storage_sqlite_two_slashes": (["--storage", "sqlite://x.db"], "malformed storage URL"),
        "storage_bad_port": (["--storage", "postgresql://u:pw@localhost:port/db"],
                             "malformed storage URL"),
        "storage_no_database": (["--storage", "postgresql://u:pw@localhost/"], "no database"),
        "storage_empty_journal": (["--storage", "journal://"], "malformed storage URL"),
        "unreachable_postgres": (
            ["--storage", f"postgresql://bb:hunter22pw@127.0.0.1:{closed_port}/db"],
            "cannot use storage"),
        "sqlite_missing_folder": (["--storage", f"sqlite:///{tmp}/missing/x.db"],
                                  "does not exist"),
        "output_under_a_file": (["--output-dir", str(a_file / "out")], "not writable"),
        "output_in_proc": (["--output-dir", "/proc/bb_jax_out"], "not writable"),
        "num_opponents_zero": (["--num-opponents", "0"], "--num-opponents"),
        "num_opponents_ten": (["--num-opponents", "10"], "--num-opponents"),
        "max_population_zero": (["--max-population", "0"], "--max-population"),
        "n_jobs_zero": (["--n-jobs", "0"], "--n-jobs"),
        "eval_interval_too_big": (["--eval-interval", "9000"], "--eval-interval"),
        "missing_enqueue_file": (["--enqueue", str(tmp / "none.json")], "cannot read"),
        "fix_unknown": (["--fix", "hidden=64"], "NAME one of hidden_size"),
        "fix_no_value": (["--fix", "hidden_size"], "NAME one of hidden_size"),
        "fix_outside": (["--fix", "hidden_size=100"], "one of 64, 128, 256, 512"),
        "fix_not_a_number": (["--fix", "gamma=high"], "not a number"),
        "enqueue_against_fix": (["--fix", "hidden_size=128", "--enqueue",
                                 str(tmp / "hidden_64.json")], "one of 128"),
        "callback_not_importable": (["--callback", "no_such_module:hook"], "cannot import"),
        "callback_no_name": (["--callback", "json"], "give MODULE:NAME"),
        "callback_not_callable": (["--callback", "json:__doc__"], "is not callable"),
    }
    (tmp / "hidden_64.json").write_text(json.dumps([{"hidden_size": 64}]))
    for name, text in enqueue.items():
        path = tmp / f"{name}.json"
        path.write_text(text)
        rows[f"enqueue_{name}"] = (["--enqueue", str(path)], "--enqueue")
    return rows


@pytest.fixture
def inputs_dir(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("case", [
    "unknown_scenario", "one_unknown_scenario", "num_steps_zero", "num_steps_negative",
    "num_steps_below_batch", "n_trials_zero", "n_trials_negative", "storage_no_scheme",
    "storage_unknown_scheme", "storage_sqlite_two_slashes", "storage_bad_port",
    "storage_no_database", "storage_empty_journal", "unreachable_postgres",
    "sqlite_missing_folder", "output_under_a_file", "output_in_proc", "num_opponents_zero",
    "num_opponents_ten", "max_population_zero", "n_jobs_zero", "eval_interval_too_big",
    "missing_enqueue_file", "enqueue_invalid_json", "enqueue_not_a_list",
    "enqueue_unknown_param", "enqueue_out_of_range", "enqueue_wrong_type",
    "enqueue_null_value", "fix_unknown", "fix_no_value", "fix_outside", "fix_not_a_number",
    "enqueue_against_fix", "callback_not_importable", "callback_no_name",
    "callback_not_callable",
])
def test_bad_input_is_one_line_exit_2_nothing_written(case, inputs_dir, closed_port, tmp_path,
                                                      capsys, monkeypatch):
    args, expected = bad_inputs(inputs_dir, closed_port)[case]
    monkeypatch.chdir(tmp_path)  # anything written by mistake would land here
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = tmp_path / "out"
    code, err = run_cli([*SWEEP, "--study-name", "bad", "--output-dir", str(out), *args],
                        capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tune_hyperparameters.py: error: ") and expected in lines[0]
    assert "hunter22pw" not in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.fixture
def existing_study(tmp_path):
    """A SQLite study made by a real (tiny) sweep: 2 queued trials, both complete."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    queue_trials(url, "kept", 2)
    code = tune_main(["--study-name", "kept", "--storage", url, "--population-size", "2",
                      "--output-dir", str(tmp_path / "out"), "--n-trials", "2",
                      "--num-steps", "4096", "--eval-interval", "4096", "--pruner", "none",
                      "--no-validate"])
    assert code == 0
    return url, tmp_path / "study.db"


def snapshot(url: str, path: Path):
    trials = [(t.number, t.state, t.value, t.params, t.user_attrs)
              for t in load_trials(url, "kept")]
    return hashlib.sha256(path.read_bytes()).hexdigest(), trials


@pytest.mark.slow
@pytest.mark.parametrize("args, expected", [
    (["--num-steps", "0"], "--num-steps"),
    (["--scenario", "nope"], "unknown scenario"),
    (["--num-steps", "8192"], "was created with --num-steps 4096"),
    (["--scenario", "easy"], "was created with --scenario default"),
    (["--num-opponents", "3"], "was created with --num-opponents 2"),
    (["--fix", "hidden_size=64"], "was created with --fix (nothing)"),
], ids=["bad_steps", "bad_scenario", "other_steps", "other_scenario", "other_opponents",
        "other_fix"])
def test_bad_input_leaves_an_existing_study_untouched(existing_study, args, expected, tmp_path,
                                                      capsys):
    url, path = existing_study
    capsys.readouterr()
    before = snapshot(url, path)
    code, err = run_cli(["--study-name", "kept", "--storage", url, "--n-trials", "2",
                         "--num-steps", "4096", "--eval-interval", "4096",
                         "--output-dir", str(tmp_path / "out2"), *args], capsys)
    assert code == 2 and expected in err, err
    assert len(err.strip().splitlines()) == 1
    assert snapshot(url, path) == before
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize("args, expected", [
    (["--num-steps", "8192"], "was created with --num-steps 4096"),
    (["--scenario", "easy"], "was created with --scenario default"),
    (["--num-opponents", "3"], "was created with --num-opponents 2"),
    (["--objective", "eval_return"], "was created with --objective train_return"),
    (["--seeds-per-trial", "3"], "was created with --seeds-per-trial 2"),
    (["--objectives", "return,cost"], "was created with --objectives return"),
    (["--fix", "hidden_size=64"], "was created with --fix (nothing)"),
    (["--space", "full"], "was created with --space small"),
], ids=["steps", "scenario", "opponents", "objective", "seeds_per_trial", "objectives", "fix",
        "space"])
def test_every_recorded_setting_is_checked_on_resume(args, expected, tmp_path, capsys):
    """A study recorded by the tuner (no trial trained): resuming it with any one of its
    recorded settings changed is refused with one line, exit 2, the database unchanged."""
    from bb_jax.tuning.study import open_study

    url, path = f"sqlite:///{tmp_path / 'study.db'}", tmp_path / "study.db"
    open_study(TuneSettings(storage=url, study_name="kept", num_steps=4096, seeds_per_trial=2))
    before = path.read_bytes()
    code, err = run_cli(["--study-name", "kept", "--storage", url, "--n-trials", "1",
                         "--num-steps", "4096", "--eval-interval", "4096",
                         "--seeds-per-trial", "2", "--output-dir", str(tmp_path / "out"),
                         *args], capsys)
    assert code == 2 and expected in err, err
    assert len(err.strip().splitlines()) == 1
    assert path.read_bytes() == before and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_study_of_another_learner_is_refused_and_left_untouched(existing_study, tmp_path,
                                                                capsys):
    """A study records the learner its trials trained with; resuming it after the defaults
    changed (here: a study from a version without the time input) would mix incomparable
    trials, so the run stops with one line and exit code 2."""
    url, path = existing_study
    study = optuna.load_study(study_name="kept", storage=url)
    assert study.user_attrs["learner"] == PPOConfig().learner_choices
    older = {**PPOConfig().learner_choices, "time_input": not PPOConfig.time_input}
    study.set_user_attr("learner", older)
    capsys.readouterr()
    before = snapshot(url, path)
    code, err = run_cli(["--study-name", "kept", "--storage", url, "--n-trials", "2",
                         "--num-steps", "4096", "--eval-interval", "4096",
                         "--output-dir", str(tmp_path / "out2")], capsys)
    assert code == 2 and f"time_input={not PPOConfig.time_input}" in err, err
    assert "use another --study-name" in err and len(err.strip().splitlines()) == 1
    assert snapshot(url, path) == before
    assert not (tmp_path / "out2").exists()


def test_checkpoint_that_does_not_match_the_network(tmp_path):
    config = PPOConfig(hidden_size=32, batch_size=512, total_steps=4096)
    ppo = PPO(config)
    params = ppo.network.init(jax.random.PRNGKey(0), np.zeros(ppo.input_size))
    good = tmp_path / "params.msgpack"
    good.write_bytes(serialization.to_bytes(params))
    assert jax.tree.structure(load_params(good, config)) == jax.tree.structure(params)
    with pytest.raises(ValueError, match="does not match the network"):
        load_params(good, config.replace(hidden_size=64))
    with pytest.raises(ValueError, match="does not match the network"):
        load_params(good, config.replace(num_opponents=4))
    truncated = tmp_path / "truncated.msgpack"
    truncated.write_bytes(good.read_bytes()[:100])
    garbage = tmp_path / "garbage.msgpack"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    wrong_tree = tmp_path / "tree.msgpack"
    wrong_tree.write_bytes(serialization.msgpack_serialize({"w": np.zeros(3)}))
    for path in (truncated, garbage, wrong_tree):
        with pytest.raises(ValueError):
            load_params(path, config)


# ---------------------------------------------------------------------------------------------
# Secrets


@pytest.mark.parametrize("url, shown", [
    ("postgresql://bb:pw123@host/db", "postgresql://bb:***@host/db"),
    ("postgresql+psycopg://bb:p%40ss:w@host:5432/db", "postgresql+psycopg://bb:***@host:5432/db"),
    ("mysql://:emptyuser@host/db", "mysql://:***@host/db"),
    ("postgresql://bb:a@b@host/db", "postgresql://bb:***@host/db"),
    ("postgresql://bb@host/db", "postgresql://bb@host/db"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_redact_hides_passwords(url, shown):
    assert redact(f"storage '{url}' failed") == f"storage '{shown}' failed"


def test_redact_hides_a_bare_password_of_a_seen_url():
    validate_url("postgresql://bb:Zebra-Horse-9@host/db")
    assert redact('FATAL: password "Zebra-Horse-9" rejected') == 'FATAL: password "***" rejected'


def test_worker_processes_get_the_url_outside_their_command_line(tmp_path):
    url = "postgresql://bb:TopSecret1@db.example/study"
    from bb_jax.cli.tune_args import tune_parser

    settings = TuneSettings(storage=url, study_name="s", output_dir=tmp_path)
    args, env = worker_command(tune_parser().parse_args(["--storage", url]), settings, 1, 3)
    assert not any("TopSecret1" in arg for arg in args)  # `ps` shows the command line
    assert env["BB_JAX_STORAGE"] == url


def test_a_worker_command_line_parses_back_to_the_same_settings(tmp_path, monkeypatch):
    """Every setting reaches an --n-jobs worker: its command line (and the storage URL in its
    environment) parses back into the parent's settings, but for its share of the trials
    and its index. Non-default values for every flag, so a dropped one shows."""
    from bb_jax.cli.tune_args import tune_parser, tune_settings

    argv = ["--scenario", "easy,hard", "--num-opponents", "3", "--flop-budget", "2e10",
            "--n-trials", "5", "--seed", "11", "--eval-interval", "2048",
            "--seeds-per-trial", "3", "--pruner", "hyperband", "--prune-alpha", "0.1",
            "--warmup-fraction", "0.1", "--eta", "4", "--min-fraction", "0.2",
            "--sampler", "random", "--timeout", "77.5", "--study-name", "rt",
            "--storage", f"sqlite:///{tmp_path}/rt.db", "--population-size", "3",
            "--shapes", "padded", "--objective", "eval_return", "--eval-episodes", "33",
            "--output-dir", str(tmp_path / "out"), "--max-population", "64",
            "--fix", "hidden_size=64,gamma=0.97", "--space", "full",
            "--callback", "reliability_helpers:record_told", "json:dumps",
            "--mlflow-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    parser = tune_parser()
    # every flag but help, those a worker does not take, those the budget excludes and the
    # validation's (a worker does not validate) and PBT's (one process) is set here
    not_set = {"help", "n_jobs", "enqueue", "worker_index", "num_steps", "time_budget",
               "objectives", "no_validate", "validate_top_k", "validate_seeds",
               "validate_steps", "strategy", "pbt_interval", "pbt_quantile", "pbt_margin",
               "pbt_versus", "incumbent", "no_incumbent", "warm_start_from", "equivalence_margin",
               "env"}
    assert {a.dest for a in parser.options if a.option_strings[-1] not in argv} == not_set
    parsed = parser.parse_args(argv)
    parent = tune_settings(parsed)
    args, env = worker_command(parsed, parent, 1, 2)
    monkeypatch.setenv(STORAGE_ENV, env[STORAGE_ENV])
    worker = tune_settings(tune_parser().parse_args(args[3:]))
    # a worker trains its share and does not validate (the parent validates once)
    assert dataclasses.replace(worker, n_trials=5, worker_index=0,
                               validation=parent.validation) == parent
    assert (worker.n_trials, worker.worker_index, worker.validation.no_validate) == (2, 1, True)


def test_storage_from_the_environment(tmp_path, closed_port, monkeypatch, capsys):
    monkeypatch.setenv("BB_JAX_STORAGE",
                       f"postgresql://bb:EnvSecret9@127.0.0.1:{closed_port}/db")
    code, err = run_cli([*SWEEP, "--study-name", "env", "--output-dir", str(tmp_path / "o")],
                        capsys)
    assert code == 2 and "cannot use storage postgresql://bb:***@127.0.0.1" in err
    assert "EnvSecret9" not in err


def test_results_and_plots_redact_the_storage_password(tmp_path):
    study = optuna.create_study(direction="maximize", study_name="redacted")
    study.set_user_attr("scenarios", ["default"])
    for i in range(3):
        study.tell(study.ask(SEARCH_SPACE), float(i))
    url = "postgresql://bb:Plot-Secret-7@host/db"
    paths = write_outputs(study, url, tmp_path)
    for path in paths.values():
        assert "Plot-Secret-7" not in path.read_text()
    assert results_dict(study, url)["storage"] == "postgresql://bb:***@host/db"


def test_unknown_driver_is_a_clear_storage_error():
    with pytest.raises(StorageError, match="no database driver|cannot use storage"):
        make_storage("mysql://bb:pw@127.0.0.1:1/db")


# ---------------------------------------------------------------------------------------------
# Memory: populations too large for the device run in rounds, or are refused


def test_member_estimate_grows_with_the_network_and_batch():
    small = memory.estimate_bytes(PPOConfig(hidden_size=64, batch_size=512, total_steps=4096))
    wide = memory.estimate_bytes(PPOConfig(hidden_size=512, batch_size=512, total_steps=4096))
    big = memory.estimate_bytes(PPOConfig(hidden_size=64, batch_size=4096, total_steps=4096))
    assert 0 < small < wide and small < big
    # a separate critic has its own torso: its parameters and activations count too
    shared = memory.estimate_bytes(PPOConfig(hidden_size=512, batch_size=512, total_steps=4096,
                                             critic="shared"))
    assert shared < wide


def test_member_bytes_come_from_xla_and_the_estimate_bounds_them():
    """XLA's figure (compiled, not run) is what sizes populations; the hand estimate that
    screens them must stay above it, or a population it passes could not fit."""
    config = BASE.replace(hidden_size=64)
    need = memory.member_bytes(config)
    assert 0 < need <= memory.estimate_bytes(config)
    # the final evaluation's episodes add their own buffers
    with_eval = memory.member_bytes(config, eval_episodes=64)
    assert need < with_eval <= memory.estimate_bytes(config, eval_episodes=64)


def test_population_limit():
    config = BASE.replace(hidden_size=64)
    need = memory.member_bytes(config)
    assert memory.population_limit(config, None, 1024) == 1024
    assert memory.population_limit(config, 3 * need + 1, 1024) == 3  # XLA's figure decides
    assert memory.population_limit(config, 10**15, 16) == 16  # the estimate screens it
    with pytest.raises(memory.PopulationMemoryError, match="MiB"):
        memory.population_limit(config, need - 1, 1024)
    # a caller that trains only `needed` members at once: the estimate is enough when it
    # holds them (no program compiled for the analysis), XLA's figure decides otherwise
    other = BASE.replace(hidden_size=128)
    estimate = memory.estimate_bytes(other)
    with counting_compiles() as names:
        assert memory.population_limit(other, 3 * estimate, 1024, needed=2) == 3
    assert names == []
    exact = memory.population_limit(other, 3 * estimate, 1024, needed=4)
    assert exact == 3 * estimate // memory.member_bytes(other) >= 3


def test_memory_budget_sources(monkeypatch):
    monkeypatch.delenv(memory.MEMORY_BUDGET_ENV, raising=False)
    assert memory.memory_budget() > 0  # CPU: half the available RAM

    class Device:
        platform = "gpu"

        def memory_stats(self):
            return {"bytes_limit": 10 * 2**30, "bytes_in_use": 2 * 2**30}

    monkeypatch.setattr(memory.jax, "local_devices", lambda: [Device()])
    assert memory.memory_budget() == int(0.8 * 8 * 2**30)
    monkeypatch.setenv(memory.MEMORY_BUDGET_ENV, "1.5G")
    assert memory.memory_budget() == int(1.5 * 2**30)
    monkeypatch.setenv(memory.MEMORY_BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match="512M"):
        memory.memory_budget()


@pytest.mark.slow
def test_cohort_split_by_memory_gives_identical_results():
    specs = [member(i) for i in range(4)]
    need = memory.member_bytes(BASE.replace(hidden_size=SHAPE[0], batch_size=SHAPE[1]))
    lines = []
    one_round = trainer(memory_budget=10**15).run(specs)
    two_rounds = trainer(memory_budget=2 * need + need // 2, progress=lines.append).run(specs)
    assert any("rounds of 2" in line and "device memory" in line for line in lines), lines
    for i in range(4):
        assert one_round[i].state == two_rounds[i].state == "complete"
        assert one_round[i].value == two_rounds[i].value


def test_trainer_refuses_a_member_that_does_not_fit():
    with pytest.raises(memory.PopulationMemoryError):
        trainer(memory_budget=1000).run([member(0)])


def test_cli_refuses_a_sweep_too_large_for_memory(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(memory.MEMORY_BUDGET_ENV, "1M")
    code, err = run_cli([*SWEEP, "--output-dir", str(tmp_path / "out")], capsys)
    assert code == 2 and "MiB" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("main_name, argv", [
    ("train_main", ["--num-steps", "abc"]),
    ("tune_main", ["--eta", "foo"]),
    ("tune_main", ["--population-size", "many"]),
    ("validate_main", ["--top-k", "x"]),
])
def test_argparse_errors_are_one_line_with_exit_code_2(main_name, argv, capsys):
    import bb_jax.cli

    with pytest.raises(SystemExit) as exc:
        getattr(bb_jax.cli, main_name)(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0]
