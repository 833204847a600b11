"""Synthetic sweeps for judging pruners: planted quality plus noise, run through a real Optuna
study in the tuner's batch order (every trial of a batch reports, then each is asked
`should_prune`), so the pruners are judged exactly as the tuner uses them.

Trial i has a planted quality q_i ~ N(0, quality_sd) and trains `n_seeds` seeds; seed j's
value at checkpoint t of T is q_i * (t + 1) / T + o_ij + e, with a lasting seed offset
o_ij ~ N(0, offset_sd) drawn once and e ~ N(0, noise_sd * sqrt(n_seeds)) drawn afresh at each
checkpoint (the quality shows more as training goes on; the reported value, the mean over the
seeds, has fresh noise of SD noise_sd). The per-seed values go into the trial's
"seed_reports" user attr, as the tuner writes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import optuna
from optuna.trial import TrialState


@dataclasses.dataclass(frozen=True)
class SweepOutcome:
    """Means over repetitions: top_survival = share of the truly best `top_fraction` trials
    that were not pruned; compute_saved = 1 - checkpoints trained / (trials * T);
    pruned = share of trials pruned."""

    top_survival: float
    compute_saved: float
    pruned: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def synthetic_sweep(
    make_pruner: Callable[[int], optuna.pruners.BasePruner],
    quality_sd: float,
    noise_sd: float,
    n_trials: int = 100,
    checkpoints: int = 10,
    batch: int = 16,
    num_steps: int = 100_000,
    repetitions: int = 10,
    top_fraction: float = 0.05,
    seed: int = 0,
    n_seeds: int = 1,
    offset_sd: float = 0.0,
) -> SweepOutcome:
    """Run `repetitions` synthetic sweeps; `make_pruner(num_steps)` builds a fresh pruner.
    `n_seeds` seeds per trial, each with a lasting offset of SD `offset_sd` (module doc)."""
    rng = np.random.default_rng(seed)
    steps = [num_steps * (t + 1) // checkpoints for t in range(checkpoints)]
    survival, saved, pruned = [], [], []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for _ in range(repetitions):
        quality = rng.normal(0.0, quality_sd, n_trials)
        study = optuna.create_study(direction="maximize", pruner=make_pruner(num_steps),
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        offsets = rng.normal(0.0, offset_sd, (n_trials, n_seeds))
        trained = np.zeros(n_trials, int)
        for start in range(0, n_trials, batch):
            trials = [study.ask() for _ in range(min(batch, n_trials - start))]
            live = list(trials)
            last = {}  # trial number -> its last reported value (what a survivor is told)
            reports = {trial.number: {} for trial in trials}
            for t, step in enumerate(steps):
                for trial in live:
                    n = trial.number
                    seeds = (quality[n] * (t + 1) / checkpoints + offsets[n]
                             + rng.normal(0.0, noise_sd * np.sqrt(n_seeds), n_seeds))
                    reports[n][str(step)] = seeds.tolist()
                    trial.set_user_attr("seed_reports", reports[n])
                    last[n] = float(seeds.mean())
                    trial.report(last[n], step)
                    trained[n] += 1
                final = t == checkpoints - 1
                stop = [] if final else [trial for trial in live if trial.should_prune()]
                for trial in stop:
                    study.tell(trial, state=TrialState.PRUNED)
                live = [trial for trial in live if trial not in stop]
            for trial in live:
                study.tell(trial, last[trial.number])
        states = np.array([t.state == TrialState.PRUNED for t in study.get_trials()])
        top = np.argsort(-quality)[: max(1, int(round(top_fraction * n_trials)))]
        survival.append(float(np.mean(~states[top])))
        saved.append(1.0 - trained.sum() / (n_trials * checkpoints))
        pruned.append(float(states.mean()))
    return SweepOutcome(float(np.mean(survival)), float(np.mean(saved)), float(np.mean(pruned)))
