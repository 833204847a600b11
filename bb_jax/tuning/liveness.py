"""Which RUNNING trials still have a live worker: the tags a worker puts on its trials, the
heartbeats it records while they train, and the rules by which any worker marks the trials of
dead ones FAIL (docs/DISTRIBUTED.md, "Failures").

Only public Optuna API: Optuna keeps a trial's storage id and a study's storage private, so
callers pass the storage they opened the study on, and ids come from
`storage.get_trial_id_from_study_id_trial_number`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import optuna
from optuna.trial import TrialState

# a bb_jax worker tags each trial within milliseconds of creating it; an untagged RUNNING
# trial older than this lost its worker between creation and tag
UNTAGGED_GRACE_S = 120.0
HEARTBEAT_REASON = "worker stopped sending heartbeats (stale RUNNING trial)"


def process_start_time(pid: int) -> str | None:
    """The start time of process `pid` (Linux /proc, clock ticks since boot), or None. A pid
    with another start time is a new process that reused the number."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _process_alive(pid, start=None) -> bool:
    if not isinstance(pid, int):
        return True  # not ours to judge
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is not None:
        now = process_start_time(pid)
        return now is None or now == start
    return True


_START_TIME = process_start_time(os.getpid())


def tag_trial(storage: optuna.storages.BaseStorage, trial_id: int) -> None:
    """Tag a trial with this worker (host, pid and the pid's start time), so that other
    workers can tell when it died."""
    for key, value in (("bb_host", socket.gethostname()), ("bb_pid", os.getpid()),
                       ("bb_pid_start", _START_TIME)):
        storage.set_trial_system_attr(trial_id, key, value)


class ReasonedRDBStorage(optuna.storages.RDBStorage):
    """An RDBStorage that can say why it failed trials. Optuna's fail_stale_trials, the public
    way to fail the trials whose heartbeat went stale, gives them no reason and does not say
    which it failed: inside `failing_with(reason)` each trial this storage sets to FAIL first
    gets the user attribute `fail_reason`, and its id is collected. One thread at a time."""

    _reason: str | None = None
    _failed: list[int] | None = None

    @contextlib.contextmanager
    def failing_with(self, reason: str) -> Iterator[list[int]]:
        self._reason, self._failed = reason, []
        try:
            yield self._failed
        finally:
            self._reason, self._failed = None, None

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        if self._reason is None or state != TrialState.FAIL:
            return super().set_trial_state_values(trial_id, state, values)
        self.set_trial_user_attr(trial_id, "fail_reason", self._reason)
        if not super().set_trial_state_values(trial_id, state, values):
            return False
        self._failed.append(trial_id)
        return True


def fail_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Mark FAIL the RUNNING trials of `study` (held by `storage`) whose worker process (on this
    host) no longer exists, those never tagged with a worker that started over
    UNTAGGED_GRACE_S ago, and those whose heartbeat went stale (RDB storages of
    `make_storage`, which have heartbeats). The reason goes into the trial's user attribute
    `fail_reason`. Returns their numbers."""
    study_id = storage.get_study_id_from_name(study.study_name)
    failed = []
    for number, reason in _orphans(study).items():
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", reason)
            if storage.set_trial_state_values(trial_id, TrialState.FAIL):
                failed.append(number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker finished or failed it meanwhile
    return sorted(failed + _fail_heartbeat_stale(study, storage))


def _orphans(study: optuna.Study) -> dict[int, str]:
    """The RUNNING trials whose worker is known dead, by number, with the reason."""
    host = socket.gethostname()
    now = datetime.datetime.now()
    orphans = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.system_attrs
        if attrs.get("bb_host") == host and not _process_alive(attrs.get("bb_pid"),
                                                               attrs.get("bb_pid_start")):
            orphans[trial.number] = "worker process died (stale RUNNING trial)"
        elif ("bb_pid" not in attrs and trial.datetime_start is not None
              and (now - trial.datetime_start).total_seconds() > UNTAGGED_GRACE_S):
            orphans[trial.number] = ("worker process died before tagging the trial (stale "
                                     "RUNNING trial)")
    return orphans


def _fail_heartbeat_stale(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Optuna's fail_stale_trials, with HEARTBEAT_REASON; the numbers of the trials it failed.
    Journal and in-memory storages have no heartbeats."""
    if not isinstance(storage, ReasonedRDBStorage):
        return []
    with warnings.catch_warnings(), storage.failing_with(HEARTBEAT_REASON) as failed:
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return [storage.get_trial(trial_id).number for trial_id in failed]


class Heartbeat:
    """While a batch trains, record its trials' heartbeats every interval (RDB storages with
    heartbeats; Optuna records them only inside study.optimize, not for ask-and-tell), so
    other workers fail only dead workers' trials."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_ids: list[int]):
        rdb = isinstance(storage, optuna.storages.RDBStorage)
        self.interval = storage.get_heartbeat_interval() if rdb else None
        self.storage, self.trial_ids = storage, trial_ids
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while True:
            for trial_id in self.trial_ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception:  # a transient database error: try again next interval
                    pass
            if self.stop.wait(self.interval):
                return

    def __enter__(self):
        if self.interval:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.interval:
            self.stop.set()
            self.thread.join()
