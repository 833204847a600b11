"""Population-based training's decisions between two chunks of one compiled population
(Jaderberg et al. 2017): which weak members copy which strong ones (exploit) and the new
hyperparameters of those that copied (explore). Host-side numpy on a few numbers per member;
the copy itself is `Population.copy_members` (one gather on the device) and the new
hyperparameters `Population.set_hyperparams` (traced rows: no recompile).

Noise: members are compared on fresh evaluation episodes, and a member of the bottom
`quantile` copies a member of the top `quantile` only when the top one's mean return exceeds
its own by more than `margin` standard errors of the difference, each standard error measured
from the member's own episodes. Plain truncation selection (margin 0) copies members that only
looked better on this evaluation's episodes.

Explore: each searched hyperparameter of a member that copied is, with probability
`resample_probability`, drawn afresh from its search range (`bb_jax.agent.config`, declared
once per field), else multiplied by one of `factors`; clipped to the range, whole numbers
rounded.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from bb_jax.agent.config import PPOHyperparams, Search

# the searched traced hyperparameters and their ranges, from their field declarations
SEARCHED = {f.name: f.metadata["search"] for f in dataclasses.fields(PPOHyperparams)
            if f.metadata.get("search") is not None}
MIN_POPULATION = 4  # a quantile of a smaller population is at most one member


@dataclasses.dataclass(frozen=True)
class PBTRule:
    """quantile: share of the population in the bottom (copies) and top (copied) groups;
    margin: standard errors of the difference a copy needs; factors: explore's
    multiplications; resample_probability: chance per hyperparameter of a fresh draw."""

    quantile: float = 0.25
    margin: float = 2.0
    factors: tuple[float, ...] = (0.8, 1.25)
    resample_probability: float = 0.25

    def __post_init__(self):
        if not 0 < self.quantile <= 0.5:
            raise ValueError(f"the PBT quantile must be in (0, 0.5], got {self.quantile:g}")
        if self.margin < 0:
            raise ValueError(f"the PBT margin must be >= 0, got {self.margin:g}")
        if not 0 <= self.resample_probability <= 1:
            raise ValueError(f"the resample probability must be in [0, 1], got "
                             f"{self.resample_probability:g}")


def episode_scores(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard error) per member of fresh-episode returns float[P, episodes]."""
    returns = np.asarray(returns, np.float64)
    n = returns.shape[1]
    return returns.mean(axis=1), returns.std(axis=1, ddof=1) / math.sqrt(n)


def exploit(means: np.ndarray, standard_errors: np.ndarray, rule: PBTRule,
            rng: np.random.Generator) -> np.ndarray:
    """parents int[P]: parents[i] == i keeps member i, else member i copies parents[i]. Each
    member of the bottom quantile draws one member of the top quantile and copies it if the
    difference exceeds rule.margin standard errors of the difference."""
    means = np.asarray(means, np.float64)
    errors = np.asarray(standard_errors, np.float64)
    size = len(means)
    if size < MIN_POPULATION:
        raise ValueError(f"PBT needs a population of at least {MIN_POPULATION}, got {size}")
    count = max(1, int(rule.quantile * size))
    order = np.argsort(means, kind="stable")
    bottom, top = order[:count], order[size - count:]
    parents = np.arange(size)
    for member in bottom:
        parent = int(rng.choice(top))
        noise = math.hypot(errors[member], errors[parent])
        if means[parent] - means[member] > rule.margin * noise:
            parents[member] = parent
    return parents


def _draw(search: Search, rng: np.random.Generator) -> float:
    if search.log:
        return float(math.exp(rng.uniform(math.log(search.low), math.log(search.high))))
    return float(rng.uniform(search.low, search.high))


def _fit(search: Search, value: float):
    value = min(max(value, search.low), search.high)
    return int(round(value)) if search.integer else float(value)


def explore(row: dict, rule: PBTRule, rng: np.random.Generator) -> dict:
    """A copied member's new hyperparameters: its parent's `row`, each searched one perturbed
    or redrawn (the rest kept)."""
    new = dict(row)
    for name, search in SEARCHED.items():
        if rng.random() < rule.resample_probability:
            value = _draw(search, rng)
        else:
            value = row[name] * float(rng.choice(rule.factors))
        new[name] = _fit(search, value)
    return new


def step(rows: list[dict], means, standard_errors, rule: PBTRule,
         rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """One exploit-and-explore step: (parents, each member's hyperparameters after it). A
    member that copied gets its parent's hyperparameters, explored; the others keep theirs."""
    parents = exploit(means, standard_errors, rule, rng)
    new = [explore(rows[p], rule, rng) if p != i else dict(rows[i])
           for i, p in enumerate(parents)]
    return parents, new
