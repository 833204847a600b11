"""Pruners for trials that train together in batches (Optuna's pruner interface).

The tuner reports every trial of a batch before it asks any of them `should_prune`, so a
pruner sees the whole batch at the same stage, next to earlier batches' trials (complete,
pruned or running). Intermediate values are noisy (a few seeds, a few hundred episodes), so
each rule asks for evidence before it stops a trial:

- `EvidenceMedianPruner` (`--pruner median`): prune a trial only when its latest value lies
  below the median of its peers at the same stage by more than `margin` noise standard
  deviations. The noise is measured from the values themselves: the spread (median absolute
  deviation) across trials of the change between each trial's last two reports, which cancels
  the learning trend that all trials share. Nothing is pruned before `warmup_fraction` of the
  budget or with fewer than `min_peers` peers.
- `SyncHalvingPruner` (`--pruner sha`): synchronous successive halving. Rungs at
  `min_fraction * eta**k` of the budget; at each rung a trial survives when it ranks in the top
  ceil(n / eta) of the n trials with a value at that rung (its batch and earlier trials).
- `BracketHalvingPruner` (`--pruner hyperband`): Hyperband's brackets of successive halving,
  each with its own first rung; a trial's bracket is its number modulo the bracket count,
  and it is judged only against its own bracket.

docs/HYPERPARAMETER_TUNING.md reports each rule's survival of the truly best trials, compute
saved and prune rate on pure noise (synthetic sweeps of `bb_jax.testing.synthetic_sweeps`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import median_abs_deviation

PEER_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def _sign(study: optuna.Study) -> float:
    return 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0


def _peers(study: optuna.Study, trial: FrozenTrial) -> Iterable[FrozenTrial]:
    for other in study.get_trials(deepcopy=False, states=PEER_STATES):
        if other.number != trial.number:
            yield other


def latest_at(values: dict[int, float], step: int, window: int) -> tuple[int, float] | None:
    """The latest (step, value) reported at a step in (step - window, step], or None."""
    steps = [s for s in values if step - window < s <= step]
    if not steps:
        return None
    last = max(steps)
    return last, values[last]


def first_from(values: dict[int, float], step: int) -> float | None:
    """The value of the first report at or after `step`, or None."""
    steps = [s for s in values if s >= step]
    return values[min(steps)] if steps else None


def noise_sd(changes: list[float]) -> float:
    """Noise standard deviation of one intermediate value from the changes between trials'
    last two reports: the normal-consistent MAD / sqrt(2) (a change holds two independent
    noises)."""
    if len(changes) < 2:
        return math.nan
    return float(median_abs_deviation(changes, scale="normal")) / math.sqrt(2.0)


class EvidenceMedianPruner(optuna.pruners.BasePruner):
    """Prune below the peers' median only by a margin of `margin` noise SDs (see module doc).

    num_steps: the training budget in env steps; window: how far back (env steps) a peer's
    latest report may lie to count as 'the same stage' (reports of trials with other batch
    sizes do not fall on the same steps)."""

    def __init__(self, num_steps: int, window: int, warmup_fraction: float = 0.25,
                 margin: float = 1.5, min_peers: int = 5):
        self.num_steps = num_steps
        self.window = window
        self.warmup_fraction = warmup_fraction
        self.margin = margin
        self.min_peers = min_peers

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.warmup_fraction * self.num_steps:
            return False
        sign = _sign(study)
        value = sign * trial.intermediate_values[step]
        peer_values, changes = [], []
        for record in [trial, *_peers(study, trial)]:
            latest = latest_at(record.intermediate_values, step, self.window)
            if latest is None:
                continue
            if record is not trial:
                peer_values.append(sign * latest[1])
            before = latest_at(record.intermediate_values, latest[0] - 1, self.window)
            if before is not None:
                changes.append(sign * (latest[1] - before[1]))
        if len(peer_values) < self.min_peers:
            return False
        sd = noise_sd(changes)
        if not math.isfinite(sd):
            return False
        return value < statistics.median(peer_values) - self.margin * sd


def rung_steps(num_steps: int, eta: int, min_fraction: float) -> list[int]:
    """Env steps of the halving rungs: min_fraction * eta**k of the budget, below the end."""
    rungs, fraction = [], min_fraction
    while fraction < 1.0 - 1e-9:
        rungs.append(max(1, int(round(fraction * num_steps))))
        fraction *= eta
    return rungs


class SyncHalvingPruner(optuna.pruners.BasePruner):
    """Synchronous successive halving over a batch of trials (see module doc). `include`
    limits the competitors (e.g. to one Hyperband bracket); default: every other trial."""

    def __init__(self, num_steps: int, eta: int = 3, min_fraction: float = 1 / 3,
                 min_peers: int | None = None,
                 include: Callable[[FrozenTrial], bool] | None = None):
        if eta < 2:
            raise ValueError(f"eta must be >= 2, got {eta}")
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
        sign = _sign(study)
        value = sign * trial.intermediate_values[step]
        values = [value]
        for other in _peers(study, trial):
            if self.include is None or self.include(other):
                at_rung = first_from(other.intermediate_values, rung)
                if at_rung is not None:
                    values.append(sign * at_rung)
        if len(values) < max(2, self.min_peers):
            return False
        keep = math.ceil(len(values) / self.eta)
        return value < sorted(values, reverse=True)[keep - 1]


class BracketHalvingPruner(optuna.pruners.BasePruner):
    """Hyperband's brackets of synchronous halving (see module doc): bracket b's first rung
    is at min_fraction * eta**b of the budget; trial n belongs to bracket n % n_brackets."""

    def __init__(self, num_steps: int, eta: int = 3, min_fraction: float = 1 / 9,
                 n_brackets: int | None = None):
        if eta < 2:
            raise ValueError(f"eta must be >= 2, got {eta}")
        most = max(1, len(rung_steps(num_steps, eta, min_fraction)))
        self.n_brackets = most if n_brackets is None else max(1, min(n_brackets, most))
        self.brackets = [
            SyncHalvingPruner(num_steps, eta, min_fraction * eta**b,
                              include=lambda t, b=b: self.bracket_of(t) == b)
            for b in range(self.n_brackets)
        ]

    def bracket_of(self, trial: FrozenTrial) -> int:
        return trial.number % self.n_brackets

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.brackets[self.bracket_of(trial)].prune(study, trial)
