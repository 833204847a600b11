"""Population-based training's decisions between two chunks of one compiled population
(Jaderberg et al. 2017): which weak members copy which strong ones (exploit) and the new
hyperparameters of those that copied (explore). Host-side numpy on a few numbers per member;
the copy itself is `Population.copy_members` (one gather on the device) and the new
hyperparameters `Population.set_hyperparams` (traced rows: no recompile).

Noise: members are compared on fresh evaluation episodes, split in two independent halves.
The first half ranks the members; on the second half a member of the bottom `quantile`
copies a member of the top `quantile` only when the top one's mean return exceeds its own by
more than `margin` standard errors of the difference, each standard error measured from the
member's own episodes. Testing on the episodes that picked the two members would find the
bottom of the ranking below its top even among equal members (16 equal members, 32 episodes
each: 28% of the bottom copied at margin 2, against the 2.3% a one-sided test at 2 standard
errors means); on held-out episodes 2.6% copy (`tests/test_pbt.py`).

Explore: each explored hyperparameter of a member that copied is, with probability
`resample_probability`, drawn afresh from its range in its scale, else moved by one of
`factors` in the space where a factor means the same change everywhere in the range:
log-scale fields are multiplied by it, discounts (gamma, lambda) have 1 - x (the inverse
horizon) multiplied by it, linear fields move by log(factor) of their range, whole-number
fields by one. A move past a bound is reflected back into the range (clipping would pile the
values up on the bounds). The ranges are the Optuna distributions the study's sampler drew
the members from (`PBTRule.ranges`; by default each field's declared search range,
`bb_jax.agent.config`), so `--space` and `--fix` bound explore as they bound the sampler.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution

from bb_jax.agent.config import PPOHyperparams, Search

# the searched traced hyperparameters and their ranges, from their field declarations
SEARCHED = {f.name: f.metadata["search"] for f in dataclasses.fields(PPOHyperparams)
            if f.metadata.get("search") is not None}
# per-step discounts: a factor scales 1 - x, so it changes the horizon 1 / (1 - x) alike at
# 0.95 and at 0.999 (a factor on x itself leaves the range at once)
DISCOUNTS = frozenset({"gamma", "gae_lambda"})
MIN_POPULATION = 4  # a quantile of a smaller population is at most one member
MIN_EPISODES = 4  # two per half: a standard error from each half


def distribution(search: Search) -> BaseDistribution:
    """A declared search range as the Optuna distribution a sampler draws from."""
    if search.integer:
        return IntDistribution(int(search.low), int(search.high))
    return FloatDistribution(search.low, search.high, log=search.log)


def _declared_ranges() -> dict[str, BaseDistribution]:
    return {name: distribution(search) for name, search in SEARCHED.items()}


def _integer(distribution) -> bool:
    """Whole numbers: an IntDistribution, or a declared `Search` with `integer`."""
    return isinstance(distribution, IntDistribution) or getattr(distribution, "integer", False)


@dataclasses.dataclass(frozen=True)
class PBTRule:
    """quantile: share of the population in the bottom (copies) and top (copied) groups;
    margin: standard errors of the held-out difference a copy needs; factors: explore's
    moves; resample_probability: chance per hyperparameter of a fresh draw; explored: the
    hyperparameters explore changes (the others a copy keeps as its parent had them); ranges:
    {name: Optuna distribution} explore draws and moves within (the study's sampler's)."""

    quantile: float = 0.25
    margin: float = 2.0
    factors: tuple[float, ...] = (0.8, 1.25)
    resample_probability: float = 0.25
    explored: tuple[str, ...] = tuple(SEARCHED)
    ranges: dict = dataclasses.field(default_factory=_declared_ranges)

    def __post_init__(self):
        if not 0 < self.quantile <= 0.5:
            raise ValueError(f"the PBT quantile must be in (0, 0.5], got {self.quantile:g}")
        if self.margin < 0:
            raise ValueError(f"the PBT margin must be >= 0, got {self.margin:g}")
        if not 0 <= self.resample_probability <= 1:
            raise ValueError(f"the resample probability must be in [0, 1], got "
                             f"{self.resample_probability:g}")
        if any(f <= 0 or f == 1 for f in self.factors):
            raise ValueError(f"explore's factors must be positive and not 1, got "
                             f"{self.factors}")
        unknown = sorted(set(self.explored) - set(SEARCHED))
        if unknown:
            raise ValueError(f"cannot explore {unknown}; searched: {', '.join(SEARCHED)}")
        missing = sorted(set(self.explored) - set(self.ranges))
        if missing:
            raise ValueError(f"no range to explore {missing} in")


def episode_scores(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard error) per member of fresh-episode returns float[P, episodes]."""
    returns = np.asarray(returns, np.float64)
    n = returns.shape[1]
    return returns.mean(axis=1), returns.std(axis=1, ddof=1) / math.sqrt(n)


def exploit(returns: np.ndarray, rule: PBTRule, rng: np.random.Generator) -> np.ndarray:
    """parents int[P]: parents[i] == i keeps member i, else member i copies parents[i].
    returns: fresh-episode returns float[P, episodes >= 4]. The first half of each member's
    episodes ranks the members; each member of the bottom quantile draws one member of the
    top quantile and copies it if, on the second half, the difference exceeds rule.margin
    standard errors of the difference."""
    returns = np.asarray(returns, np.float64)
    size, episodes = returns.shape
    if size < MIN_POPULATION:
        raise ValueError(f"PBT needs a population of at least {MIN_POPULATION}, got {size}")
    if episodes < MIN_EPISODES:
        raise ValueError(f"PBT's exploit needs at least {MIN_EPISODES} episodes per member, "
                         f"got {episodes}")
    ranking, _ = episode_scores(returns[:, :episodes // 2])
    means, errors = episode_scores(returns[:, episodes // 2:])
    count = max(1, int(rule.quantile * size))
    order = np.argsort(ranking, kind="stable")
    bottom, top = order[:count], order[size - count:]
    parents = np.arange(size)
    for member in bottom:
        parent = int(rng.choice(top))
        noise = math.hypot(errors[member], errors[parent])
        if means[parent] - means[member] > rule.margin * noise:
            parents[member] = parent
    return parents


def draw(search, rng: np.random.Generator) -> float | int:
    """A fresh value from a field's range (an Optuna distribution or a declared `Search`)
    in its scale: log-uniform with `log`, each whole number alike for integers."""
    if _integer(search):
        return int(rng.integers(int(search.low), int(search.high) + 1))
    if search.log:
        return float(math.exp(rng.uniform(math.log(search.low), math.log(search.high))))
    return float(rng.uniform(search.low, search.high))


def _reflect(x: float, low: float, high: float) -> float:
    """x folded into [low, high] by reflection at the bounds (any distance past them)."""
    width = high - low
    if width <= 0:
        return low
    y = (x - low) % (2 * width)
    return low + (2 * width - y if y > width else y)


def perturb(name: str, search, value: float, factor: float) -> float | int:
    """`value` of field `name` moved by `factor` in its explore space (module docstring),
    reflected at the bounds of its range (an Optuna distribution or a declared `Search`)."""
    step = math.log(factor)
    low, high = search.low, search.high
    if _integer(search):
        return int(_reflect(int(value) + math.copysign(1, step), low, high))
    if name in DISCOUNTS:
        moved = _reflect(math.log1p(-value) + step, math.log1p(-high), math.log1p(-low))
        new = -math.expm1(moved)
    elif search.log:
        new = math.exp(_reflect(math.log(value) + step, math.log(low), math.log(high)))
    else:
        new = _reflect(value + step * (high - low), low, high)
    return float(min(max(new, low), high))  # the round trip's last bit


def explore(row: dict, rule: PBTRule, rng: np.random.Generator) -> dict:
    """A copied member's new hyperparameters: its parent's `row`, each explored one moved
    or redrawn (the rest kept)."""
    new = dict(row)
    for name in rule.explored:
        search = rule.ranges[name]
        if rng.random() < rule.resample_probability:
            new[name] = draw(search, rng)
        else:
            new[name] = perturb(name, search, row[name], float(rng.choice(rule.factors)))
    return new


def step(rows: list[dict], returns: np.ndarray, rule: PBTRule,
         rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """One exploit-and-explore step on fresh-episode returns float[P, episodes]: (parents,
    each member's hyperparameters after it). A member that copied gets its parent's
    hyperparameters, explored; the others keep theirs."""
    parents = exploit(returns, rule, rng)
    new = [explore(rows[p], rule, rng) if p != i else dict(rows[i])
           for i, p in enumerate(parents)]
    return parents, new
