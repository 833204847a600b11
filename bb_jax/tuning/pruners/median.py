"""The evidence median rule, and `--pruner median`: the incumbent rule first, this rule when
the study has no incumbent (or it is behind the trial)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import optuna
from optuna.trial import FrozenTrial
from scipy.stats import median_abs_deviation

from bb_jax.tuning.pruners.axis import progress_axis
from bb_jax.tuning.pruners.curves import (
    latest_at,
    peers,
    planned_checks,
    seed_curve,
    sign,
    value_at,
)
from bb_jax.tuning.pruners.evidence import (
    critical,
    pooled_seed_variance,
    standard_error,
    validate_alpha,
)
from bb_jax.tuning.pruners.incumbent import IncumbentPruner, incumbent_rule
from bb_jax.tuning.pruners.registry import PRUNERS
from bb_jax.tuning.settings import TuneSettings


def _at(points: dict, step: int, window: int):
    """A peer's curve at `step` (interpolated) or, when it has not reached it, its latest
    report within `window` below it; None when it has neither."""
    reached = value_at(points, step)
    if reached is not None:
        return reached
    latest = latest_at(points, step, window)
    return None if latest is None else latest[1]


class EvidenceMedianPruner(optuna.pruners.BasePruner):
    """Prune a trial whose value lies significantly below its peers' median at its step.

    The trial's standard error comes from its tuning seeds (`seed_reports`): the larger of its
    own and the pooled across-seed variance of the trials at that stage, over n seeds; the
    median's own error adds pi / (2k) of it for k peers. The one-sided test runs at
    alpha / checks (`evidence.critical`, t with the pooled degrees of freedom). With one seed
    (no seed spread) the noise is the spread of the values across the trials (normal-consistent
    MAD), which true differences between trials only widen.

    num_steps: budget on the progress axis; window: how far back a peer's latest report may lie
    when it has not reached the trial's step; checks: planned judgements per run
    (`curves.planned_checks`); nothing is pruned before `warmup_fraction` of the budget or
    with fewer than `min_peers` peers.

    Example (two tuning seeds; each trial's per-seed values are stored before its report)::

        >>> import optuna
        >>> from bb_jax.tuning.pruners import EvidenceMedianPruner
        >>> def objective(trial):
        ...     quality = trial.suggest_float("quality", 0.0, 1.0)
        ...     for step in range(100, 1001, 100):
        ...         seeds = [quality * step - 1.0, quality * step + 1.0]
        ...         reports = {**trial.user_attrs.get("seed_reports", {}), str(step): seeds}
        ...         trial.set_user_attr("seed_reports", reports)
        ...         trial.report(sum(seeds) / 2, step)
        ...         if trial.should_prune():
        ...             raise optuna.TrialPruned()
        ...     return quality * 1000
        >>> pruner = EvidenceMedianPruner(num_steps=1000, window=100, checks=7, min_peers=3)
        >>> study = optuna.create_study(
        ...     direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
        ...     pruner=pruner)
        >>> study.optimize(objective, n_trials=12)
        >>> len(study.get_trials(states=[optuna.trial.TrialState.PRUNED])) > 0
        True
    """

    def __init__(self, num_steps: int, window: int, checks: int,
                 warmup_fraction: float = 0.25, alpha: float = 0.05, min_peers: int = 5):
        validate_alpha(alpha)
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        if checks < 1 or min_peers < 1 or num_steps < 1 or window < 1:
            raise ValueError("num_steps, window, checks and min_peers must be >= 1, got "
                             f"{num_steps}, {window}, {checks}, {min_peers}")
        self.num_steps, self.window, self.checks = num_steps, window, checks
        self.warmup_fraction, self.alpha, self.min_peers = warmup_fraction, alpha, min_peers

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.warmup_fraction * self.num_steps:
            return False
        s = sign(study)
        value = s * trial.intermediate_values[step]
        own = seed_curve(trial).get(step)
        own = None if own is None else np.asarray(own, float)
        peer_values, seed_samples = [], [] if own is None else [own]
        for other in peers(study, trial):
            at = _at(other.intermediate_values, step, self.window)
            if at is None:
                continue
            peer_values.append(s * at)
            # the seed spread of a report as made (an interpolated one would be smoother)
            seeds = latest_at(seed_curve(other), step, self.window)
            if seeds is not None:
                seed_samples.append(np.asarray(seeds[1], float))
        if len(peer_values) < self.min_peers:
            return False
        error, df = self._error(value, own, peer_values, seed_samples)
        inflate = math.sqrt(1.0 + math.pi / (2 * len(peer_values)))
        margin = critical(self.alpha, self.checks, df) * error * inflate
        return value < statistics.median(peer_values) - margin

    @staticmethod
    def _error(value: float, own, peer_values: list[float],
               seed_samples: list[np.ndarray]) -> tuple[float, float]:
        """The trial's standard error and its degrees of freedom (inf: normal)."""
        pooled, df = pooled_seed_variance(seed_samples)
        if own is not None and df:
            return standard_error(own, pooled), df
        spread = median_abs_deviation([value, *peer_values], scale="normal")
        return float(spread), math.inf


@PRUNERS.register("median")
def median_pruner(settings: TuneSettings) -> IncumbentPruner:
    """`--pruner median` (the default): the incumbent rule when the study has an incumbent
    that has reached the trial's step, else the evidence median; with no incumbent it prunes
    exactly as the evidence median alone."""
    axis = progress_axis(settings)
    checks = planned_checks(axis.steps, axis.interval, settings.warmup_fraction)
    fallback = EvidenceMedianPruner(axis.steps, axis.window, checks, settings.warmup_fraction,
                                    settings.prune_alpha)
    return incumbent_rule(settings, fallback)
