"""A training run's live metrics, chunk by chunk: metrics.jsonl always, TensorBoard event
files with `--log tensorboard` (tensorboardX's writer: TensorBoard itself reads them, no
TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bb_jax.cli.common import UsageError
from bb_jax.train.runs import metric_lines

LOGGERS = ("tensorboard",)


def check_loggers(text: str | None) -> tuple[str, ...]:
    """--log: a comma-separated list of LOGGERS (one line naming them otherwise)."""
    names = tuple(n.strip() for n in (text or "").split(",") if n.strip())
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise UsageError(f"--log {unknown[0]!r}: valid loggers are {', '.join(LOGGERS)}")
    if "tensorboard" in names:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            raise UsageError("--log tensorboard needs tensorboardX: pip install "
                             "'bb-jax[tensorboard]'") from None
    return names


class RunLogs:
    """Where each chunk's metrics go. `members`: (seed, scenario) per population row."""

    def __init__(self, folder: Path, members: list[tuple[int, str]], loggers: tuple[str, ...],
                 batch_size: int):
        self.members, self.batch_size = members, batch_size
        self.jsonl = folder / "metrics.jsonl"
        self.jsonl.write_text("")
        self.writer = None
        if "tensorboard" in loggers:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(folder / "tensorboard"))

    def chunk(self, metrics: dict, first_update: int) -> None:
        """Append the [members, updates] arrays of updates first_update, first_update+1, ..."""
        with self.jsonl.open("a") as f:
            f.writelines(metric_lines(self.members, metrics, first_update))
        if self.writer is None:
            return
        several = len({s for _, s in self.members}) > 1
        values = {k: np.asarray(v) for k, v in metrics.items()}
        for i, (seed, scenario) in enumerate(self.members):
            tag = f"seed{seed}" + (f"_{scenario}" if several else "")
            for t in range(values["env_steps"].shape[1]):
                step = (first_update + t) * self.batch_size  # env steps per seed
                for name, row in values.items():
                    if name != "env_steps" and np.isfinite(row[i, t]):
                        self.writer.add_scalar(f"{tag}/{name}", float(row[i, t]), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
