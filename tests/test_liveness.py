"""Which RUNNING trials have a live worker, quick: a heartbeat records into the storage while
a batch trains, and a trial whose worker's pid no longer exists is failed (the pid is that of
a short subprocess started and reaped here)."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from bb_jax.tuning.liveness import (
    Heartbeat,
    ReasonedRDBStorage,
    fail_stale_trials,
    process_start_time,
)
from bb_jax.tuning.storage import make_storage


def running_trial(storage, study_name: str, **system_attrs) -> int:
    """A new RUNNING trial of `study_name` tagged with `system_attrs`; returns its id."""
    trial_id = storage.create_new_trial(storage.get_study_id_from_name(study_name))
    for key, value in system_attrs.items():
        storage.set_trial_system_attr(trial_id, key, value)
    return trial_id


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_heartbeat_records_each_trial_of_the_batch(tmp_path):
    """Entering a Heartbeat records a heartbeat for every trial it was given (the first at
    once, then one per interval), and none for the others."""
    path = tmp_path / "hb.db"
    storage = ReasonedRDBStorage(f"sqlite:///{path}", heartbeat_interval=60, grace_period=120)
    optuna.create_study(storage=storage, study_name="hb")
    batch = [running_trial(storage, "hb") for _ in range(2)]
    other = running_trial(storage, "hb")
    with Heartbeat(storage, batch):
        pass
    with sqlite3.connect(path) as db:
        beating = {row[0] for row in db.execute("SELECT trial_id FROM trial_heartbeats")}
    assert beating == set(batch) and other not in beating


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_trial_of_a_dead_worker_is_failed(tmp_path):
    """A RUNNING trial tagged with a pid of this host that no longer exists is failed with
    its reason; one tagged with this live process is left RUNNING."""
    storage = make_storage(f"sqlite:///{tmp_path / 'dead.db'}", None)
    study = optuna.create_study(storage=storage, study_name="dead")
    host = socket.gethostname()
    live = running_trial(storage, "dead", bb_host=host, bb_pid=os.getpid(),
                         bb_pid_start=process_start_time(os.getpid()))
    pid = dead_pid()
    assert process_start_time(pid) is None  # gone (not reused)
    dead = running_trial(storage, "dead", bb_host=host, bb_pid=pid, bb_pid_start="12345")
    dead_no_start = running_trial(storage, "dead", bb_host=host, bb_pid=pid)
    failed = fail_stale_trials(study, storage)
    assert failed == sorted(storage.get_trial(t).number for t in (dead, dead_no_start))
    assert storage.get_trial(live).state == TrialState.RUNNING
    for trial_id in (dead, dead_no_start):
        assert storage.get_trial(trial_id).state == TrialState.FAIL
        assert "worker process died" in storage.get_trial(trial_id).user_attrs["fail_reason"]
