"""The search space and what a trial's parameters mean: the members it trains (seeds,
scenarios) and the seeds a study tunes and validates on.

A study of `--seed` S tunes every trial on the seeds S*1000 + 0..K-1 (common random numbers:
differences between trials are paired) and validates on S*1000 + 500 + i, which no tuning seed
of that study meets.
"""

from __future__ import annotations

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from bb_jax.agent.config import DEFAULT_HYPERPARAMS, TUNABLE_FIELDS, PPOConfig, Search
from bb_jax.runtime.members import MemberSpec


def _distribution(search: Search, space: str = "full"):
    """The Optuna distribution of a field's declared search range in `space`."""
    if search.choices:
        small = space == "small" and search.small_choices
        return CategoricalDistribution(list(search.small_choices if small else search.choices))
    if search.integer:
        return IntDistribution(int(search.low), int(search.high), log=search.log)
    return FloatDistribution(search.low, search.high, log=search.log)


_SEARCHED = {f.name: f for f in TUNABLE_FIELDS if f.metadata["search"] is not None}
# the order in which a trial samples its parameters: it decides which of the sampler's random
# draws each parameter gets, so it stays fixed (the same --seed gives the same study)
SAMPLING_ORDER = ("hidden_size", "learning_rate", "batch_size", "num_epochs", "clip_epsilon",
                  "entropy_coef", "value_coef", "gamma", "gae_lambda")
# the search spaces: each field's declared range (bb_jax.agent.config). "full" is the whole
# range; "small" keeps the networks that pay per second on a CPU (`default_space`)
SPACES = ("full", "small")
SEARCH_SPACES = {space: {name: _distribution(_SEARCHED[name].metadata["search"], space)
                         for name in SAMPLING_ORDER} for space in SPACES}
SEARCH_SPACE = SEARCH_SPACES["full"]
LARGEST_BATCH = max(SEARCH_SPACE["batch_size"].choices)
CONTROL = "control"  # the default configuration's name beside trial numbers
FRESH_SEED_OFFSET = 500  # validation seeds start at seed * 1000 + this
MAX_SEEDS_PER_TRIAL = FRESH_SEED_OFFSET  # tuning seeds stay below the validation seeds
# train_simple.py flag for each tuned parameter
TRAIN_FLAGS = {name: _SEARCHED[name].metadata["flag"] for name in SAMPLING_ORDER}


def contains(distribution, value) -> bool:
    """Whether `value` is one of `distribution`'s values (a choice, or inside its range; an
    integer distribution takes integers only, and no distribution takes a bool)."""
    if isinstance(value, bool):
        return False
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(distribution, IntDistribution) and not float(value).is_integer():
        return False
    return isinstance(value, (int, float)) and distribution.low <= value <= distribution.high


def default_space(backend: str) -> str:
    """`--space auto` on a JAX backend: "small" (hidden 64 or 128) on a CPU, "full" on an
    accelerator. On a CPU a member's cost grows with its hidden size (hidden 512 trains
    several times slower than 128), a step-budget study drifts to the networks that learn
    most per step, which are the slow ones, and larger networks lose at equal wall time
    (docs/PERFORMANCE.md, "Search space per backend"; docs/PPO.md, "Defaults per second").
    On an accelerator a network of 512 costs little more than one of 128."""
    return "small" if backend == "cpu" else "full"


def search_space(fixed: dict | None = None, space: str = "full") -> dict:
    """The search space `space` ("full" or "small") with each parameter of `fixed` held at
    its value (a one-choice distribution: every trial still carries all parameters, and a
    study records one space). Fixing the network shape makes every trial one compiled
    program."""
    if space not in SEARCH_SPACES:
        raise ValueError(f"unknown search space {space!r}; valid: {', '.join(SPACES)}")
    distributions = SEARCH_SPACES[space]
    fixed = fixed or {}
    unknown = sorted(set(fixed) - set(distributions))
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; valid: {', '.join(distributions)}")
    for name, value in fixed.items():
        if not contains(distributions[name], value):
            full = describe(SEARCH_SPACE[name])
            hint = f"; --space full: {full}" if full != describe(distributions[name]) else ""
            raise ValueError(f"{name}={value!r} is outside the {space} search space "
                             f"({describe(distributions[name])}{hint})")
    return {name: CategoricalDistribution([fixed[name]]) if name in fixed else distribution
            for name, distribution in distributions.items()}


def takes_integers(name: str) -> bool:
    """Whether SEARCH_SPACE's parameter `name` is an integer (a shape or a count)."""
    distribution = SEARCH_SPACE[name]
    if isinstance(distribution, CategoricalDistribution):
        return all(isinstance(c, int) for c in distribution.choices)
    return isinstance(distribution, IntDistribution)


def describe(distribution) -> str:
    """The values of a distribution, for error messages."""
    if isinstance(distribution, CategoricalDistribution):
        return "one of " + ", ".join(map(str, distribution.choices))
    return f"{distribution.low} .. {distribution.high}"


def member_spec(member_id: int, params: dict, scenario: str, seed: int) -> MemberSpec:
    """The training run of a trial's parameters (static shape + traced hyperparameters)."""
    return MemberSpec(
        member_id=member_id,
        hidden_size=int(params["hidden_size"]),
        batch_size=int(params["batch_size"]),
        hyperparams={k: params.get(k, DEFAULT_HYPERPARAMS[k]) for k in DEFAULT_HYPERPARAMS},
        scenario=scenario,
        seed=seed,
    )


def control_params() -> dict:
    """The default configuration (PPOConfig's shapes, DEFAULT_HYPERPARAMS) in the search
    space's parameter names: the control every recommendation must beat."""
    defaults = {"hidden_size": PPOConfig.hidden_size, "batch_size": PPOConfig.batch_size,
                **DEFAULT_HYPERPARAMS}
    return {name: defaults[name] for name in SEARCH_SPACE}


def tuning_seeds(seed: int, k: int) -> list[int]:
    """The K training seeds every trial of a study shares: seed * 1000 + 0..K-1."""
    if not 1 <= k <= MAX_SEEDS_PER_TRIAL:
        raise ValueError(f"seeds per trial must be in 1..{MAX_SEEDS_PER_TRIAL}, got {k}")
    return [seed * 1000 + j for j in range(k)]


def validation_seeds(seed: int, n: int, first: int | None = None) -> list[int]:
    """n fresh seeds: from `first` when given, else seed * 1000 + 500 + 0..n-1, where no
    tuning seed of a study with this --seed lies."""
    start = seed * 1000 + FRESH_SEED_OFFSET if first is None else first
    return [start + i for i in range(n)]
