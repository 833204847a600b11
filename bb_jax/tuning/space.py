"""The search space and what a trial's parameters mean: the members it trains (seeds,
scenarios) and the seeds a study tunes and validates on.

A study of `--seed` S tunes every trial on the seeds S*1000 + 0..K-1 (common random numbers:
differences between trials are paired) and validates on S*1000 + 500 + i, which no tuning seed
of that study meets.
"""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from bb_jax.train.ppo import DEFAULT_HYPERPARAMS, PPOConfig
from bb_jax.tuning.cohorts import MemberSpec

SEARCH_SPACE = {
    "hidden_size": CategoricalDistribution([64, 128, 256, 512]),
    "learning_rate": FloatDistribution(1e-5, 1e-3, log=True),
    "batch_size": CategoricalDistribution([512, 1024, 2048, 4096]),
    "num_epochs": IntDistribution(3, 10),
    "clip_epsilon": FloatDistribution(0.1, 0.3),
    "entropy_coef": FloatDistribution(0.001, 0.05, log=True),
    "value_coef": FloatDistribution(0.3, 0.7),
    "gamma": FloatDistribution(0.95, 0.999),
    "gae_lambda": FloatDistribution(0.9, 0.99),
}
LARGEST_BATCH = max(SEARCH_SPACE["batch_size"].choices)
CONTROL = "control"  # the default configuration's name beside trial numbers
FRESH_SEED_OFFSET = 500  # validation seeds start at seed * 1000 + this
MAX_SEEDS_PER_TRIAL = FRESH_SEED_OFFSET  # tuning seeds stay below the validation seeds
# train_simple.py flag for each tuned parameter
TRAIN_FLAGS = {
    "hidden_size": "--hidden-size", "batch_size": "--batch-size", "learning_rate": "--lr",
    "num_epochs": "--num-epochs", "clip_epsilon": "--clip-epsilon",
    "entropy_coef": "--entropy-coef", "value_coef": "--value-coef", "gamma": "--gamma",
    "gae_lambda": "--gae-lambda",
}


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


def search_space(fixed: dict | None = None) -> dict:
    """SEARCH_SPACE with each parameter of `fixed` held at its value (a one-choice
    distribution: every trial still carries all parameters, and a study records one space).
    Fixing the network shape makes every trial one compiled program."""
    fixed = fixed or {}
    unknown = sorted(set(fixed) - set(SEARCH_SPACE))
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; valid: {', '.join(SEARCH_SPACE)}")
    for name, value in fixed.items():
        if not contains(SEARCH_SPACE[name], value):
            raise ValueError(f"{name}={value!r} is outside the search space "
                             f"({describe(SEARCH_SPACE[name])})")
    return {name: CategoricalDistribution([fixed[name]]) if name in fixed else distribution
            for name, distribution in SEARCH_SPACE.items()}


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


def suggest(trial: optuna.Trial, name: str, distribution) -> object:
    """Sample parameter `name` of `trial` from one of search_space()'s distributions."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high,
                                 step=distribution.step, log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high,
                               step=distribution.step, log=distribution.log)


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
