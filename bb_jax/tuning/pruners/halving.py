"""Synchronous successive halving (`--pruner sha`), judged at equal steps."""

from __future__ import annotations

import math
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial

from bb_jax.tuning.pruners.axis import progress_axis
from bb_jax.tuning.pruners.curves import peers, sign, value_at
from bb_jax.tuning.pruners.registry import PRUNERS
from bb_jax.tuning.settings import TuneSettings

# --pruner sha's first rung without --min-fraction: half the steps (one rung, the rule that
# kept the best 5% most often at 2-seed noise: docs/HYPERPARAMETER_TUNING.md, "Pruners")
FIRST_RUNG = 1 / 2


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
    batch and earlier trials, each at the rung step). No trial is pruned at a rung that fewer
    than `min_peers` trials (default: eta) have reached. `include` limits the competitors
    (e.g. to one Hyperband bracket); default: every other trial.

    Example (Optuna's sequential loop; the tuner reports a whole batch before it asks)::

        >>> import optuna
        >>> from bb_jax.tuning.pruners import SyncHalvingPruner
        >>> def objective(trial):
        ...     quality = trial.suggest_float("quality", 0.0, 1.0)
        ...     for step in range(100, 1001, 100):
        ...         trial.report(quality * step, step)
        ...         if trial.should_prune():
        ...             raise optuna.TrialPruned()
        ...     return quality * 1000
        >>> study = optuna.create_study(
        ...     direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
        ...     pruner=SyncHalvingPruner(num_steps=1000, eta=3, min_fraction=1 / 3))
        >>> study.optimize(objective, n_trials=12)
        >>> len(study.get_trials(states=[optuna.trial.TrialState.PRUNED])) > 0
        True
    """

    def __init__(self, num_steps: int, eta: int = 3, min_fraction: float = 1 / 3,
                 min_peers: int | None = None,
                 include: Callable[[FrozenTrial], bool] | None = None):
        validate_halving(num_steps, eta, min_fraction)
        if min_peers is not None and min_peers < 1:
            raise ValueError(f"min_peers must be >= 1, got {min_peers}")
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


@PRUNERS.register("sha")
def halving_pruner(settings: TuneSettings) -> SyncHalvingPruner:
    """`--pruner sha`: keep the top 1/--eta at rungs from --min-fraction (default FIRST_RUNG)
    of the steps."""
    return SyncHalvingPruner(progress_axis(settings).steps, settings.sha_eta,
                             settings.sha_min_fraction or FIRST_RUNG)
