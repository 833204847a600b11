"""What the pruners read from trials: a trial's value (or per-seed values) at a step of the
study's progress axis (env steps, or permille of a FLOP budget), its peers, the incumbent, and
how many checks a rule makes in one run (the number a per-trial error rate is split over)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

PEER_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
SEED_REPORTS = "seed_reports"  # user attr: {str(step): [value per tuning seed]}
INCUMBENT = "incumbent"  # user attr: True on the study's incumbent trial


def sign(study: optuna.Study) -> float:
    """+1 when the study maximizes, -1 when it minimizes (values are compared as sign * v)."""
    return 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0


def peers(study: optuna.Study, trial: FrozenTrial) -> Iterable[FrozenTrial]:
    """Every other complete, pruned or running trial of the study."""
    for other in study.get_trials(deepcopy=False, states=PEER_STATES):
        if other.number != trial.number:
            yield other


def incumbent_of(study: optuna.Study) -> FrozenTrial | None:
    """The first complete or running trial marked user_attrs["incumbent"], or None."""
    for other in study.get_trials(deepcopy=False, states=PEER_STATES):
        if other.user_attrs.get(INCUMBENT):
            return other
    return None


def latest_at(values: dict[int, float], step: int, window: int) -> tuple[int, float] | None:
    """The latest (step, value) reported at a step in (step - window, step], or None."""
    steps = [s for s in values if step - window < s <= step]
    if not steps:
        return None
    last = max(steps)
    return last, values[last]


def value_at(points: dict, step: int):
    """A curve {step: value or list} at `step`: linear interpolation between the reports
    around it, the first report when none lies before it, None when it has not reached it.
    Trials with other batch sizes report at other steps, so this compares them at equal steps."""
    after = [s for s in points if s >= step]
    if not after:
        return None
    hi = min(after)
    before = [s for s in points if s < step]
    if hi == step or not before:
        return points[hi]
    lo = max(before)
    w = (step - lo) / (hi - lo)
    return (1.0 - w) * np.asarray(points[lo]) + w * np.asarray(points[hi])


def seed_curve(trial: FrozenTrial) -> dict[int, list[float]]:
    """The trial's per-seed reports {step: [value per tuning seed]} (empty without them)."""
    reports = trial.user_attrs.get(SEED_REPORTS) or {}
    return {int(step): values for step, values in reports.items()}


def planned_checks(num_steps: int, interval: int, start_fraction: float) -> int:
    """How many times one run is judged: its reports every `interval` steps from
    `start_fraction` of `num_steps` on, the last (final) report excluded; at least 1."""
    first = start_fraction * num_steps
    return max(1, sum(1 for s in range(interval, num_steps, interval) if s >= first))
