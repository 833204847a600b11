"""The progress axis a study's pruners judge on, from its settings: env steps, or under a
compute budget the permille of the budget spent (so trials compare at equal compute)."""

from __future__ import annotations

import dataclasses

from bb_jax.runtime.cohorts import BUDGET_REPORTS
from bb_jax.tuning.settings import BUDGET_SCALE, TuneSettings
from bb_jax.tuning.space import LARGEST_BATCH


@dataclasses.dataclass(frozen=True)
class ProgressAxis:
    """steps: one run's length on the axis; interval: between a trial's reports; window: how
    far back a peer's latest report may lie when it has not reached a trial's step (a trial
    reports at multiples of its batch size, so up to one largest batch later than asked)."""

    steps: int
    interval: int
    window: int


def progress_axis(settings: TuneSettings) -> ProgressAxis:
    """Env steps and --eval-interval; under --flop-budget or --time-budget (which becomes a
    FLOP budget when the study is created) BUDGET_SCALE permille, reported about
    BUDGET_REPORTS times (a tenth apart)."""
    if settings.flop_budget is not None or settings.time_budget is not None:
        interval = BUDGET_SCALE // BUDGET_REPORTS
        return ProgressAxis(BUDGET_SCALE, interval, interval + 1)
    return ProgressAxis(settings.num_steps, settings.eval_interval,
                        settings.eval_interval + LARGEST_BATCH)
