"""Hyperparameter schedules: piecewise-constant traced hyperparameters that change between two
chunks of a run (`Population.set_hyperparams`: the same compiled program, no recompile), as
population-based training leaves them and as `train_simple.py --schedule FILE` replays them.

A schedule file is JSON: a list of changes in env steps per seed, e.g.

    [{"env_steps": 0, "learning_rate": 0.0008},
     {"env_steps": 40960, "learning_rate": 0.00064, "entropy_coef": 0.005}]

Each change sets the hyperparameters it names from that step on; the others keep their value.
A change must fall on a chunk boundary of the run (a multiple of chunk_updates x batch_size
env steps), where the host sets the new values.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bb_jax.agent.config import HYPERPARAM_NAMES, check_hyperparams


@dataclasses.dataclass(frozen=True)
class Schedule:
    """changes: ((first update, {name: value}), ...), sorted by update."""

    changes: tuple[tuple[int, dict], ...]

    def __post_init__(self):
        updates = [u for u, _ in self.changes]
        if updates != sorted(set(updates)) or any(u < 0 for u in updates):
            raise ValueError(f"schedule changes must be at distinct updates >= 0 in order, got "
                             f"{updates}")
        for _, values in self.changes:
            unknown = sorted(set(values) - set(HYPERPARAM_NAMES))
            if unknown:
                raise ValueError(f"schedule: unknown hyperparameter {unknown[0]!r}; valid: "
                                 f"{', '.join(HYPERPARAM_NAMES)}")
            try:
                check_hyperparams(values)
            except ValueError as err:
                raise ValueError(f"schedule: {err}") from None

    def at(self, update: int, base: dict) -> dict:
        """The hyperparameters in force during `update` (0-based): `base` overridden by every
        change up to it."""
        values = dict(base)
        for first, change in self.changes:
            if first <= update:
                values.update(change)
        return values

    def check_boundaries(self, chunk: int) -> None:
        """Every change at a multiple of `chunk` updates (where the host can set it)."""
        for update, _ in self.changes:
            if update % chunk:
                raise ValueError(f"schedule change at update {update} is not at a chunk "
                                 f"boundary (every {chunk} updates)")

    def check_within(self, num_updates: int, batch_size: int) -> None:
        """Every change before the run's end (`num_updates` updates): a later one would never
        be applied."""
        last = self.changes[-1][0] if self.changes else 0
        if last >= num_updates:
            raise ValueError(f"schedule change at {last * batch_size} env steps comes after the "
                             f"run ends ({num_updates * batch_size} env steps)")

    def as_env_steps(self, batch_size: int) -> list[dict]:
        """The schedule-file form: changes in env steps per seed."""
        return [{"env_steps": update * batch_size, **values} for update, values in self.changes]


def from_env_steps(rows: list[dict], batch_size: int) -> Schedule:
    """A Schedule from the schedule-file form (`as_env_steps`'s inverse); ValueError with one
    line for a change between two updates or a malformed row."""
    changes = []
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("env_steps"), int):
            raise ValueError(f"schedule: each change needs an integer env_steps, got {row!r}")
        steps = row["env_steps"]
        if steps % batch_size:
            raise ValueError(f"schedule change at {steps} env steps is between two updates "
                             f"(batch_size {batch_size}): use a multiple of it")
        changes.append((steps // batch_size, {k: v for k, v in row.items()
                                              if k != "env_steps"}))
    return Schedule(tuple(changes))


def read_schedule(path: Path, batch_size: int) -> Schedule:
    """A schedule file (JSON, see the module docstring)."""
    try:
        rows = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the schedule {path}: {err}") from None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"schedule {path}: expected a non-empty JSON list of changes")
    return from_env_steps(rows, batch_size)
