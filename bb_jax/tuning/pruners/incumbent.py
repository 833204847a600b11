"""The incumbent rule (`--pruner incumbent`, and `median`'s first rule): stop a trial that is
significantly below the study's incumbent (the trial marked user_attrs["incumbent"], e.g. the
default configuration) at the same step, paired on the tuning seeds."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from bb_jax.tuning.pruners.axis import progress_axis
from bb_jax.tuning.pruners.curves import (
    INCUMBENT,
    incumbent_of,
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
from bb_jax.tuning.pruners.registry import PRUNERS
from bb_jax.tuning.settings import TuneSettings


class IncumbentPruner(optuna.pruners.BasePruner):
    """A one-sided paired test against the incumbent, else `fallback`.

    At a trial's step the incumbent's per-seed curve is interpolated (`curves.value_at`) and
    the trial's per-seed values minus it give n paired differences. Their standard error is
    the larger of their own and the pooled variance of all trials' paired differences at that
    stage (`evidence.standard_error`); the trial is pruned when their mean lies below
    -t(1 - alpha / checks, pooled df) standard errors. The incumbent itself is never pruned.

    The study has no incumbent, the incumbent has not reached the trial's step yet, a trial
    has no per-seed reports, or the tuning uses one seed (no paired spread to judge by: the
    paired difference of one seed is as noisy as the effect it would test): `fallback`
    decides, so a study without an incumbent prunes exactly as `fallback` alone.

    num_steps: budget on the progress axis; window: how far back a peer's latest report may
    lie; checks: planned judgements per run (`curves.planned_checks`); nothing is pruned
    before `warmup_fraction` of the budget.

    Example (two tuning seeds; trial 0 is the incumbent, at quality 0.5)::

        >>> import optuna
        >>> from bb_jax.tuning.pruners import IncumbentPruner
        >>> def objective(trial):
        ...     quality = trial.suggest_float("quality", 0.0, 1.0)
        ...     for step in range(100, 1001, 100):
        ...         seeds = [quality * step - 1.0, quality * step + 1.0]
        ...         reports = {**trial.user_attrs.get("seed_reports", {}), str(step): seeds}
        ...         trial.set_user_attr("seed_reports", reports)  # just before the report
        ...         trial.report(sum(seeds) / 2, step)
        ...         if trial.should_prune():
        ...             raise optuna.TrialPruned()
        ...     return quality * 1000
        >>> pruner = IncumbentPruner(optuna.pruners.NopPruner(), num_steps=1000, window=100,
        ...                          checks=7)
        >>> study = optuna.create_study(
        ...     direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
        ...     pruner=pruner)
        >>> study.enqueue_trial({"quality": 0.5}, user_attrs={"incumbent": True})
        >>> study.optimize(objective, n_trials=8)
        >>> all((t.state.name == "PRUNED") == (t.params["quality"] < 0.5)
        ...     for t in study.trials[1:])
        True
    """

    def __init__(self, fallback: optuna.pruners.BasePruner, num_steps: int, window: int,
                 checks: int, warmup_fraction: float = 0.25, alpha: float = 0.05):
        validate_alpha(alpha)
        if not isinstance(fallback, optuna.pruners.BasePruner):
            raise ValueError(f"fallback must be an optuna BasePruner, got {fallback!r}")
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        if checks < 1 or num_steps < 1 or window < 1:
            raise ValueError(f"num_steps, window and checks must be >= 1, got {num_steps}, "
                             f"{window}, {checks}")
        self.fallback, self.num_steps, self.window = fallback, num_steps, window
        self.checks, self.warmup_fraction, self.alpha = checks, warmup_fraction, alpha

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if trial.user_attrs.get(INCUMBENT):
            return False
        step = trial.last_step
        incumbent = incumbent_of(study)
        reference = None if incumbent is None else seed_curve(incumbent)
        differences = _paired(trial, step, reference)
        if differences is None or len(differences) < 2:
            return self.fallback.prune(study, trial)
        if step < self.warmup_fraction * self.num_steps:
            return False
        samples = [differences]
        for other in peers(study, trial):
            if other.number == incumbent.number:
                continue
            latest = latest_at(other.intermediate_values, step, self.window)
            paired = None if latest is None else _paired(other, latest[0], reference)
            if paired is not None:
                samples.append(paired)
        pooled, df = pooled_seed_variance(samples)
        error = standard_error(differences, pooled)
        shortfall = sign(study) * float(np.mean(differences))
        if error == 0.0:  # no spread on any seed of any trial: below is below
            return shortfall < 0.0
        return shortfall / error < -critical(self.alpha, self.checks, df)


def incumbent_rule(settings: TuneSettings,
                   fallback: optuna.pruners.BasePruner) -> IncumbentPruner:
    """The incumbent rule on the study's progress axis at --prune-alpha and
    --warmup-fraction, with `fallback` where it cannot judge."""
    axis = progress_axis(settings)
    checks = planned_checks(axis.steps, axis.interval, settings.warmup_fraction)
    return IncumbentPruner(fallback, axis.steps, axis.window, checks, settings.warmup_fraction,
                           settings.prune_alpha)


@PRUNERS.register("incumbent")
def incumbent_pruner(settings: TuneSettings) -> IncumbentPruner:
    """`--pruner incumbent`: against the incumbent only (no pruning without one)."""
    return incumbent_rule(settings, optuna.pruners.NopPruner())


def _paired(trial: FrozenTrial, step: int | None, reference: dict | None) -> np.ndarray | None:
    """The trial's per-seed values at `step` minus the reference curve's there, or None when
    either is missing (or their seed counts differ)."""
    if step is None or not reference:
        return None
    own = seed_curve(trial).get(step)
    ref = value_at(reference, step)
    if own is None or ref is None or len(own) != len(ref):
        return None
    return np.asarray(own, float) - np.asarray(ref, float)
