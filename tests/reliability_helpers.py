"""Shared pieces of the tests: tuner processes on a small fixed-shape sweep, study inspection,
counting compiles, and a throwaway PostgreSQL server.

Every sweep here trains trials of one static shape (hidden 64, batch 4096, one update of
4096 env steps) in populations of 2, queued into the study before the workers start: then a
whole test session compiles one program, which the workers share through JAX's persistent
compilation cache (the CLI turns it on), and each trial trains in about a second.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import optuna
import pytest
from optuna.trial import TrialState

from bb_jax.tuning.storage import make_storage

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "tune_hyperparameters.py"
# 4096 steps = one update of the largest batch; one report; no pruning
SMALL = ["--num-steps", "4096", "--eval-interval", "4096", "--pruner", "none", "--no-validate",
         "--no-incumbent"]
# the crash and interrupt sweeps: ten updates per trial, a report after each (the same
# compiled one-update chunk), so a trial is seen training between its first report and its end
LONGER = ["--num-steps", str(10 * 4096)]
FIXED = {"hidden_size": 64, "batch_size": 4096, "num_epochs": 3, "clip_epsilon": 0.2,
         "entropy_coef": 0.01, "value_coef": 0.5, "gamma": 0.99, "gae_lambda": 0.95}
PROCESS_TIMEOUT = 420


# JAX's monitoring event for each XLA executable a jitted function gets (compiled or loaded
# from the persistent cache); `fun_name` names the function
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def kill_9_after_a_checkpoint(proc: subprocess.Popen, folder: Path,
                              timeout: float = 600) -> None:
    """SIGKILL `proc` as soon as its orbax checkpoint folder holds a finished step."""
    deadline = time.monotonic() + timeout
    while not (folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def counting_compiles():
    """Yields the list of function names compiled inside the block (jax.monitoring)."""
    names = []

    def listener(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            names.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@functools.cache
def warm_compile_cache() -> None:
    """Compile (or load) the sweeps' one program in this process, with JAX's persistent cache
    on, before tuner processes start: otherwise on a cold cache every worker started at the
    same time compiles it itself. Once per process."""
    from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig
    from bb_jax.cli import enable_compile_cache
    from bb_jax.runtime.cohorts import CohortTrainer
    from bb_jax.runtime.members import MemberSpec

    enable_compile_cache()
    trainer = CohortTrainer(PPOConfig(total_steps=4096, batch_size=4096), num_steps=4096,
                            eval_interval=4096)
    trainer.run([MemberSpec(i, FIXED["hidden_size"], FIXED["batch_size"], DEFAULT_HYPERPARAMS,
                            "default", i) for i in range(2)])


def fixed_params(i: int) -> dict:
    """The i-th queued configuration: the fixed shape, a distinct learning rate."""
    return {**FIXED, "learning_rate": round(1e-4 + 1e-5 * i, 8)}


def queue_trials(url: str, name: str, count: int, start: int = 0) -> None:
    """Create study `name` (if needed) and queue `count` fixed-shape configurations."""
    study = optuna.create_study(study_name=name, storage=make_storage(url, None),
                                direction="maximize", load_if_exists=True)
    for i in range(start, start + count):
        study.enqueue_trial(fixed_params(i))


def write_enqueue_file(path: Path, indices) -> Path:
    path.write_text(json.dumps([fixed_params(i) for i in indices]))
    return path


def load_trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=make_storage(url, None))
    return study.get_trials(deepcopy=False)


def by_state(trials, state: TrialState) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state == state]


TOLD_ENV = "BB_TEST_TOLD"


def record_told(study, trial) -> None:
    """A tuner callback for --callback reliability_helpers:record_told: appends (pid, trial
    number, state) as a JSON line to the file $BB_TEST_TOLD names."""
    with open(os.environ[TOLD_ENV], "a") as f:
        f.write(json.dumps([os.getpid(), trial.number, trial.state.name]) + "\n")


def tune_args(name: str, storage: str | None, out: Path, n_trials: int, *extra: str) -> list:
    args = [sys.executable, str(SCRIPT), "--study-name", name, "--output-dir", str(out),
            "--n-trials", str(n_trials), "--population-size", "2", *SMALL, *extra]
    if storage is not None:
        args += ["--storage", storage]
    return args


class Tuner:
    """A tuner process whose stdout/stderr go to files (no pipe can fill up and block it)."""

    def __init__(self, args: list, log_dir: Path, label: str, env: dict | None = None):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_dir / f"{label}.stdout"
        self.stderr_path = log_dir / f"{label}.stderr"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=log_dir,
                                         env={**os.environ, **(env or {})})

    def wait(self, timeout: float = PROCESS_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"tuner did not finish in {timeout} s\n{self.output()}")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def output(self) -> str:
        return f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"


def wait_for(condition, proc: Tuner, timeout: float = PROCESS_TIMEOUT, what: str = "",
             poll_s: float = 0.1):
    """Poll `condition()` until it returns a true value; fail if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.proc.poll() is not None:
            pytest.fail(f"tuner exited ({proc.proc.returncode}) before {what}\n{proc.output()}")
        time.sleep(poll_s)
    proc.proc.kill()
    pytest.fail(f"timed out waiting for {what}\n{proc.output()}")


def storage_reader(url: str):
    """A storage for reading a study while tuner processes use it. For SQLite a plain
    RDBStorage that gives up at once on a locked database: its reads take a shared lock and
    never wait for a tuner (make_storage's BEGIN IMMEDIATE would wait for the write lock, and
    a stopped tuner holds it)."""
    if url.startswith("sqlite:"):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 0.05}})
    return make_storage(url, None)


def study_trials(storage, name: str):
    """The trials of study `name`, or None while it cannot be read (not created yet, or the
    database locked)."""
    try:
        return storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False)
    except (KeyError, optuna.exceptions.StorageInternalError):
        return None


def mid_batch(trials, pid: int) -> bool:
    """Whether, in `trials`, the tuner process `pid` has completed a batch and is training the
    next: it has RUNNING trials, all started after its last COMPLETE trial ended (not the rest
    of a batch it is still telling, one trial after the other), and each has reported an
    intermediate value (it is between its first report and its end). Other workers' trials
    may be anywhere in their own batch (waiting for them too could let the tuner finish its
    last batch first)."""
    def own(state):
        return [t for t in by_state(trials, state) if t.system_attrs.get("bb_pid") == pid]

    running, complete = own(TrialState.RUNNING), own(TrialState.COMPLETE)
    return bool(running and complete
                and min(t.datetime_start for t in running)
                >= max(t.datetime_complete for t in complete)
                and all(t.intermediate_values for t in running))


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants (Linux /proc), parents first."""
    tree, i = [pid], 0
    while i < len(tree):
        for task in glob.glob(f"/proc/{tree[i]}/task/*/children"):
            with contextlib.suppress(OSError):
                tree += [int(c) for c in Path(task).read_text().split()]
        i += 1
    return [p for p in tree if _state(p) not in ("Z", None)]


def _state(pid: int) -> str | None:
    """The state letter of process `pid` (R, S, T, Z, ...), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


# a stopped tuner may hold SQLite's lock mid-commit: then it runs this long, beyond SQLite's
# longest busy-handler sleep (0.1 s), to finish the commit before the study is read again
COMMIT_S = 0.25


def freeze_mid_batch(proc: Tuner, url: str, name: str, slice_s: float = 0.02) -> list[int]:
    """Stop `proc` and its worker processes (SIGSTOP) at a moment when `mid_batch` holds for
    the tuner, so that a signal sent next lands while it trains a batch (a sweep of LONGER
    trials). Returns the stopped pids, for `signal_all(pids, SIGCONT)`.

    The moment is read from the storage, not guessed from a time window. The tuner runs
    freely until a trial is COMPLETE (its program compiled, batches of ten updates to go);
    from then on the processes run only in slices of `slice_s` seconds, each followed by a
    check of the study while they are stopped. A batch trains for nine updates after its
    first report, far longer than a slice, so the tuner cannot run through the moment, or
    finish its run, between two checks, however fast the machine."""
    storage = storage_reader(url)

    def finished_one() -> bool:
        return bool(by_state(study_trials(storage, name) or [], TrialState.COMPLETE))

    wait_for(finished_one, proc, what="the tuner's first complete trial", poll_s=slice_s)
    while True:
        pids = process_tree(proc.proc.pid)
        signal_all(pids, signal.SIGSTOP)
        if proc.proc.poll() is not None:
            pytest.fail(f"tuner exited ({proc.proc.returncode}) before a complete trial and "
                        f"a running batch\n{proc.output()}")
        trials = study_trials(storage, name)
        if trials is not None and mid_batch(trials, proc.proc.pid):
            return pids
        signal_all(pids, signal.SIGCONT)
        time.sleep(slice_s if trials is not None else COMMIT_S)


# ---------------------------------------------------------------------------------------------
# A throwaway PostgreSQL server


PG_USER = "bb_tuner"
PG_PASSWORD = "s3cret-Pa55word"
REQUIRE_ENV = "BB_JAX_REQUIRE_POSTGRES"


def postgres_bin_dir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres ($BB_JAX_PG_BIN, Debian's
    /usr/lib/postgresql/N/bin, newest first, or the PATH)."""
    candidates = []
    if os.environ.get("BB_JAX_PG_BIN"):
        candidates.append(os.environ["BB_JAX_PG_BIN"])
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit()
                         else 0, reverse=True)
    if shutil.which("pg_ctl"):
        candidates.append(str(Path(shutil.which("pg_ctl")).resolve().parent))
    for folder in candidates:
        if all((Path(folder) / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def skip_or_fail(reason: str):
    """Skip, unless $BB_JAX_REQUIRE_POSTGRES is set (CI), where a missing server fails."""
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason} (and {REQUIRE_ENV} is set)")
    pytest.skip(reason)


PORT_ATTEMPTS = 3


def free_port() -> int:
    """A local port free at this moment (only a hint: another program may take it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def refused_port():
    """A local port bound by this process but not listening, held for the block: connections
    to it are refused, and no other program can start listening on it meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


class PostgresServer:
    """initdb + pg_ctl in a temporary folder, listening on 127.0.0.1:<free port>. initdb refuses
    to run as root, so as root the server runs as the `postgres` user (runuser)."""

    def __init__(self):
        self.bin = postgres_bin_dir()
        if self.bin is None:
            skip_or_fail("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; "
                         "install the Debian package `postgresql` (.ci/run does)")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            skip_or_fail("psycopg is not installed; install bb-jax[postgres]")
        self.run_as = None
        if os.geteuid() == 0:
            try:
                self.run_as = pwd.getpwnam("postgres")
            except KeyError:
                skip_or_fail("running as root and there is no `postgres` user to run the server")
        self.root = Path(tempfile.mkdtemp(prefix="bb_jax_pg_"))
        self.data = self.root / "data"
        self.port = None
        if self.run_as is not None:
            os.chown(self.root, self.run_as.pw_uid, self.run_as.pw_gid)

    def _run(self, *args: str, check: bool = True, timeout: float = 120):
        command = [str(self.bin / args[0]), *args[1:]]
        if self.run_as is not None:
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            command = [runuser, "-u", "postgres", "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root)
        if check and proc.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(f"{' '.join(args[:2])} failed: {proc.stderr.strip()}\n"
                               f"{log.read_text()[-3000:] if log.exists() else ''}")
        return proc

    def start(self) -> PostgresServer:
        pwfile = self.root / "pwfile"
        pwfile.write_text(PG_PASSWORD + "\n")
        if self.run_as is not None:
            os.chown(pwfile, self.run_as.pw_uid, self.run_as.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", PG_USER, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        pwfile.unlink()
        # a free port may be taken by another program before the server binds it: then the
        # start fails and is tried again on another port
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = free_port()
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=50")
            proc = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                             "-w", "-t", "60", "-o", options, "start",
                             check=attempt == PORT_ATTEMPTS)
            if proc.returncode == 0:
                return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop",
                      check=False, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, password: str | None = PG_PASSWORD,
            scheme: str = "postgresql") -> str:
        auth = PG_USER if password is None else f"{PG_USER}:{password}"
        return f"{scheme}://{auth}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=PG_USER,
                             password=PG_PASSWORD, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


# ---------------------------------------------------------------------------------------------
# The tuner's HTML plots


def plot_figure(path: Path) -> tuple[list, dict]:
    """(traces, layout) of the Plotly figure embedded in an HTML plot; fails the test when the
    file holds no figure (e.g. the "plot not available" page written on an error)."""
    text = path.read_text()
    call = "Plotly.newPlot("
    assert call in text, f"{path.name} holds no plot: {text[:300]}"
    decoder = json.JSONDecoder()
    rest = text[text.index(call) + len(call):]
    parts = []
    for _ in range(3):  # the element id, the traces, the layout
        value, end = decoder.raw_decode(rest.lstrip())
        parts.append(value)
        rest = rest.lstrip()[end:].lstrip().removeprefix(",")
    return parts[1], parts[2]


def assert_plots_show_study(out: Path, name: str, trials, exact: bool = True) -> None:
    """The three HTML plots of study `name` in `out` show these trials: the history plots the
    complete trials' values by number, the importances rank the tuned parameters, and the
    parallel-coordinate plot draws one line per complete trial over the objective and every
    parameter. exact=False (workers writing the plots while others still finish trials): the
    plots show some of the complete trials, with their values."""
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE),
                      key=lambda t: t.number)
    assert complete, "the plots need a complete trial"
    params = sorted(complete[0].params)
    history, _ = plot_figure(out / f"{name}_history.html")
    points = next(t for t in history if t.get("name") == "Objective Value")
    shown = list(zip(points["x"], points["y"], strict=True))
    expected = [(t.number, t.value) for t in complete]
    if exact:
        assert shown == expected
    else:
        assert shown and set(shown) <= set(expected)
    if len(shown) > 1:  # importances need at least two complete trials
        bars, _ = plot_figure(out / f"{name}_importances.html")
        assert sorted(bars[0]["y"]) == params
    lines, layout = plot_figure(out / f"{name}_parallel.html")
    assert layout["xaxis"]["ticktext"] == ["Objective Value", *params]
    drawn = sum(len(t.get("x") or []) == len(params) + 1 for t in lines)
    assert drawn == len(complete) if exact else 1 <= drawn <= len(complete)


def kill(proc: Tuner, sig: int = signal.SIGKILL) -> None:
    if proc.proc.poll() is None:
        proc.proc.send_signal(sig)
