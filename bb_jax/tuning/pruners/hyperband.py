"""Hyperband (`--pruner hyperband`) as published (Li et al., JMLR 2018): brackets
s = s_max .. 0, bracket s starting n_s = ceil((s_max + 1) / (s + 1) * eta**s) trials at
min resource R * eta**-s and halving them synchronously; bracket 0 trains all of its trials
to the end (no pruning)."""

from __future__ import annotations

import math

import optuna
from optuna.trial import FrozenTrial

from bb_jax.tuning.pruners.axis import progress_axis
from bb_jax.tuning.pruners.halving import SyncHalvingPruner, rung_steps, validate_halving
from bb_jax.tuning.pruners.registry import PRUNERS
from bb_jax.tuning.settings import TuneSettings

# --pruner hyperband's smallest first rung without --min-fraction: a ninth of the steps
# (brackets 2..0 at eta 3)
SMALLEST_RUNG = 1 / 9


def bracket_sizes(s_max: int, eta: int) -> list[int]:
    """n_s for s = 0 .. s_max: the trials bracket s starts with in one Hyperband round."""
    return [math.ceil((s_max + 1) / (s + 1) * eta**s) for s in range(s_max + 1)]


def bracket_cycle(sizes: list[int]) -> list[int]:
    """One round's bracket per trial, sizes[s] of bracket s, interleaved (smooth weighted
    round robin) so that a batch of consecutive trials spreads over the brackets."""
    total, credit, order = sum(sizes), [0] * len(sizes), []
    for _ in range(total):
        credit = [c + n for c, n in zip(credit, sizes, strict=True)]
        chosen = max(range(len(sizes)), key=lambda s: (credit[s], s))
        credit[chosen] -= total
        order.append(chosen)
    return order


class HyperbandPruner(optuna.pruners.BasePruner):
    """Hyperband's brackets of synchronous halving. s_max is the number of rungs of a halving
    from `min_fraction` (the smallest first rung); bracket s's first rung lies at
    min_fraction * eta**(s_max - s) of the budget. Trial n belongs to bracket
    `cycle[n % len(cycle)]` (`bracket_cycle` of `bracket_sizes`) and is judged only against
    its bracket.

    Example (Optuna's sequential loop; the tuner reports a whole batch before it asks)::

        >>> import optuna
        >>> from bb_jax.tuning.pruners import HyperbandPruner
        >>> def objective(trial):
        ...     quality = trial.suggest_float("quality", 0.0, 1.0)
        ...     for step in range(100, 1001, 100):
        ...         trial.report(quality * step, step)
        ...         if trial.should_prune():
        ...             raise optuna.TrialPruned()
        ...     return quality * 1000
        >>> pruner = HyperbandPruner(num_steps=1000, eta=3, min_fraction=1 / 9)
        >>> pruner.sizes  # trials per round in brackets 0, 1, 2
        [3, 5, 9]
        >>> study = optuna.create_study(
        ...     direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
        ...     pruner=pruner)
        >>> study.optimize(objective, n_trials=17)
        >>> len(study.get_trials(states=[optuna.trial.TrialState.PRUNED])) > 0
        True
    """

    def __init__(self, num_steps: int, eta: int = 3, min_fraction: float = 1 / 9):
        validate_halving(num_steps, eta, min_fraction)
        self.s_max = len(rung_steps(num_steps, eta, min_fraction))
        self.sizes = bracket_sizes(self.s_max, eta)
        self.cycle = bracket_cycle(self.sizes)
        self.brackets = [
            SyncHalvingPruner(num_steps, eta, min(1.0, min_fraction * eta ** (self.s_max - s)),
                              include=lambda t, s=s: self.bracket_of(t) == s)
            for s in range(self.s_max + 1)
        ]

    def bracket_of(self, trial: FrozenTrial) -> int:
        return self.cycle[trial.number % len(self.cycle)]

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.brackets[self.bracket_of(trial)].prune(study, trial)


@PRUNERS.register("hyperband")
def hyperband_pruner(settings: TuneSettings) -> HyperbandPruner:
    """`--pruner hyperband`: brackets of halving at --eta from --min-fraction (default
    SMALLEST_RUNG) of the steps."""
    return HyperbandPruner(progress_axis(settings).steps, settings.sha_eta,
                           settings.sha_min_fraction or SMALLEST_RUNG)
