"""A training run's live metrics, chunk by chunk: metrics.jsonl always; with `--log`, also
TensorBoard event files (tensorboardX's writer: TensorBoard itself reads them, no TensorFlow
needed) and an MLflow run (a local SQLite store in the run folder, or any tracking URI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np

from bb_jax.cli.common import UsageError
from bb_jax.runtime.saved_runs import metric_lines

LOGGERS = ("tensorboard", "mlflow")
_NEEDS = {"tensorboard": ("tensorboardX", "bb-jax[tensorboard]"),
          "mlflow": ("mlflow", "bb-jax[mlflow]")}
MLFLOW_RUN_FILE = "mlflow_run.json"  # the MLflow run a resumed run goes on logging into


def check_loggers(text: str | None) -> tuple[str, ...]:
    """--log: a comma-separated list of LOGGERS (one line naming them otherwise)."""
    names = tuple(n.strip() for n in (text or "").split(",") if n.strip())
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise UsageError(f"--log {unknown[0]!r}: valid loggers are {', '.join(LOGGERS)}")
    for name in names:
        module, extra = _NEEDS[name]
        try:
            __import__(module)
        except ImportError:
            raise UsageError(f"--log {name} needs {module}: pip install '{extra}'") from None
    return names


def default_mlflow_uri(folder: Path) -> str:
    """$MLFLOW_TRACKING_URI if set, else a SQLite store in the run folder (MLflow 3 keeps
    its plain-file store in maintenance mode)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{folder.resolve()}/mlflow.db"


class _TensorBoard:
    def __init__(self, folder: Path):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(folder / "tensorboard"))

    def scalars(self, rows: list[tuple[str, float, int]]) -> None:
        for key, value, step in rows:
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _MLflow:
    """One MLflow run per training run (experiment "bb-jax", run name = the run's name), its
    parameters logged once; a resumed run logs into the same MLflow run (the chunks trained
    after its last checkpoint are logged again, with the same values)."""

    def __init__(self, folder: Path, uri: str, run_name: str, params: dict, resuming: bool):
        from mlflow import MlflowClient
        from mlflow.entities import Param

        saved = folder / MLFLOW_RUN_FILE
        if resuming and saved.exists():
            known = json.loads(saved.read_text())
            self.client, self.run_id = MlflowClient(known["tracking_uri"]), known["run_id"]
            return
        self.client = MlflowClient(uri)
        experiment = self.client.get_experiment_by_name("bb-jax")
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment("bb-jax"))
        run = self.client.create_run(experiment_id, run_name=run_name)
        self.run_id = run.info.run_id
        saved.write_text(json.dumps({"tracking_uri": uri, "run_id": self.run_id}))
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def scalars(self, rows: list[tuple[str, float, int]]) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(key, value, 0, step) for key, value, step in rows]
        for start in range(0, len(metrics), 1000):  # log_batch takes at most 1000 metrics
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class RunLogs:
    """Where each chunk's metrics go. `members`: (seed, scenario) per population row. With
    `resuming`, the first chunk (the restored history, replayed from update 1) rewrites
    metrics.jsonl only: the live loggers already hold it."""

    def __init__(self, folder: Path, members: list[tuple[int, str]], loggers: tuple[str, ...],
                 batch_size: int, *, run_name: str = "", params: dict | None = None,
                 mlflow_uri: str | None = None, resuming: bool = False):
        self.members, self.batch_size, self.replay = members, batch_size, resuming
        self.jsonl = folder / "metrics.jsonl"
        self.jsonl.write_text("")
        self.sinks = []
        if "tensorboard" in loggers:
            self.sinks.append(_TensorBoard(folder))
        if "mlflow" in loggers:
            self.sinks.append(_MLflow(folder, mlflow_uri or default_mlflow_uri(folder),
                                      run_name, params or {}, resuming))

    def chunk(self, metrics: dict, first_update: int) -> None:
        """Append the [members, updates] arrays of updates first_update, first_update+1, ...
        (read from the device in one transfer, for every sink)."""
        metrics = jax.device_get(dict(metrics))
        with self.jsonl.open("a") as f:
            f.writelines(metric_lines(self.members, metrics, first_update))
        if self.replay:
            self.replay = False
            return
        if self.sinks:
            rows = self._scalars(metrics, first_update)
            for sink in self.sinks:
                sink.scalars(rows)

    def _scalars(self, metrics: dict, first_update: int) -> list[tuple[str, float, int]]:
        """(key, value, env steps per seed) of every finite metric; keys "seed{S}/{name}",
        with "_{scenario}" after the seed when the run trains several scenarios."""
        several = len({s for _, s in self.members}) > 1
        values = {k: np.asarray(v) for k, v in metrics.items() if k != "env_steps"}
        rows = []
        for i, (seed, scenario) in enumerate(self.members):
            tag = f"seed{seed}" + (f"_{scenario}" if several else "")
            for name, row in values.items():
                for t in np.flatnonzero(np.isfinite(row[i])):
                    rows.append((f"{tag}/{name}", float(row[i, t]),
                                 int((first_update + t) * self.batch_size)))
        return rows

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
