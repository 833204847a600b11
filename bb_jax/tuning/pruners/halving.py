"""Synchronous successive halving (`--pruner sha`), judged at equal steps."""

from __future__ import annotations

import math
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial

from bb_jax.tuning.pruners.curves import peers, sign, value_at


def validate_halving(num_steps: int, eta: int, min_fraction: float) -> None:
    """Optuna-style argument checks shared by the halving rules."""
    if eta < 2:
        raise ValueError(f"eta must be >= 2, got {eta}")
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")


def rung_steps(num_steps: int, eta: int, min_fraction: float) -> list[int]:
    """Env steps of the halving rungs: min_fraction * eta**k of the budget, below the end."""
    rungs, fraction = [], min_fraction
    while fraction < 1.0 - 1e-9:
        rungs.append(max(1, int(round(fraction * num_steps))))
        fraction *= eta
    return rungs


class SyncHalvingPruner(optuna.pruners.BasePruner):
    """Synchronous successive halving over a batch of trials.

    Rungs at `min_fraction * eta**k` of the budget. A trial is judged at its first report at
    or past a rung, by its value *at the rung step*: linearly interpolated between its reports
    around the rung (trials with other batch sizes report at other steps, e.g. 25,600 and
    28,672 around a rung at 25,000, and a later report has simply trained longer). It survives
    when it ranks in the top ceil(n / eta) of the n trials that have reached the rung (its
    batch and earlier trials, each at the rung step). `include` limits the competitors (e.g. to
    one Hyperband bracket); default: every other trial."""

    def __init__(self, num_steps: int, eta: int = 3, min_fraction: float = 1 / 3,
                 min_peers: int | None = None,
                 include: Callable[[FrozenTrial], bool] | None = None):
        validate_halving(num_steps, eta, min_fraction)
        self.rungs = rung_steps(num_steps, eta, min_fraction)
        self.eta = eta
        self.min_peers = eta if min_peers is None else min_peers
        self.include = include

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        earlier = [s for s in trial.intermediate_values if s < step]
        previous = max(earlier) if earlier else -1
        crossed = [r for r in self.rungs if previous < r <= step]
        if not crossed:
            return False
        rung = crossed[-1]
        s = sign(study)
        value = s * value_at(trial.intermediate_values, rung)
        values = [value]
        for other in peers(study, trial):
            if self.include is None or self.include(other):
                at_rung = value_at(other.intermediate_values, rung)
                if at_rung is not None:
                    values.append(s * at_rung)
        if len(values) < max(2, self.min_peers):
            return False
        keep = math.ceil(len(values) / self.eta)
        return value < sorted(values, reverse=True)[keep - 1]
