"""What a tuning run is asked to do (`TuneSettings`, built by the command line) and the
choices `auto` makes per JAX backend (population size, shapes, seeds per trial)."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import jax

from bb_jax.agent.config import ShapeChoices
from bb_jax.tuning.space import SearchSpace, default_space, load_space, space_label

PRUNERS = ("median", "incumbent", "sha", "hyperband", "none")
SAMPLERS = ("tpe", "gp", "cmaes", "random")
# --strategy: trials from a sampler (tpe: the --sampler flag's), population-based training, or
# auto: the sampler AUTO_SAMPLERS names for the study's budget
STRATEGIES = ("tpe", "pbt", "auto")
# --strategy auto: (largest number of trials, sampler, the figures the choice rests on), the
# first row whose bound holds the run's --n-trials wins (None: no bound). The budget that
# decides is the number of trials the sampler proposes: the run length changes what one trial
# costs, not how the samplers differ. Provisional where a row says so (the tuner benchmark,
# docs/HYPERPARAMETER_TUNING.md, "Tuner benchmark", is to replace it with measured figures).
AUTO_SAMPLERS = (
    (10, "random",
     "TPE's first 10 trials are random start-up draws: at 16 trials TPE and random search "
     "picked the same trial on default, hard and easy (benchmarks/pbt_quality.py, 2026-12-03, "
     "2-core AMD EPYC); provisional: CMA-ES from the incumbent is not yet measured here"),
    (None, "tpe",
     "at 20 trials under a FLOP budget TPE's pick gained +50.6 +/- 9.6 over the defaults on "
     "easy against random search's +5.0 +/- 3.3; on default both within the noise, on hard "
     "the same pick (benchmarks/tune_cost.py, 2-core AMD EPYC); provisional beyond 20 "
     "trials, and GP and CMA-ES are not yet measured against it"),
)
OBJECTIVES = ("train_return", "eval_return")
# --objectives: what a study optimises. "return" is the --objective above; "cost" the training
# TFLOPs per run (XLA's count: deterministic, so the same seed gives the same study)
STUDY_OBJECTIVES = ("return", "cost")
# the pruners' axis under a FLOP budget: the share of the budget spent, in permille
BUDGET_SCALE = 1000
OUTPUT_DIR = Path("experiments/hyperparameter_tuning")


def auto_sampler(n_trials: int) -> dict:
    """--strategy auto's choice for a study of `n_trials` trials: {"sampler", "max_trials"
    (the bound of the rule's row; None: none), "basis" (the figures it rests on)}, as the
    study records it."""
    for max_trials, sampler, basis in AUTO_SAMPLERS:
        if max_trials is None or n_trials <= max_trials:
            return {"sampler": sampler, "max_trials": max_trials, "n_trials": n_trials,
                    "basis": basis}
    raise ValueError("AUTO_SAMPLERS has no unbounded last row")


def default_population_size(backend: str) -> int:
    """Trials per batch for `--population-size auto` on a JAX backend ("cpu", "gpu", "tpu").

    On a CPU the two cores are already busy with one trial's seeds (`--seeds-per-trial`: they
    are members too, so a batch of one trial is a population of K members), a batch's trials
    share a program only where they share a shape, and a batch waits for its slowest trial:
    batches of one are the fastest there (docs/PERFORMANCE.md, "Today's figures"). On an
    accelerator members are nearly free until it is full."""
    return 1 if backend == "cpu" else 16


SHAPES = ("exact", "padded", "auto")


def default_shapes(backend: str) -> str:
    """`--shapes auto` on a JAX backend: "exact" on a CPU, whose batches hold one trial (one
    shape), where a padded program would train every member at the space's largest shapes
    (docs/PERFORMANCE.md, "One program per batch"); "padded" on an accelerator, where a batch
    of 16 trials otherwise runs up to 16 launch-bound programs one after another and the
    padded arithmetic is nearly free."""
    return "exact" if backend == "cpu" else "padded"


def shape_choices(space: SearchSpace) -> ShapeChoices:
    """The shapes a search space's trials may take (with --fix's values held): what a padded
    program of this tuner serves."""
    return ShapeChoices(tuple(space.envelope("hidden_size").choices),
                        tuple(space.envelope("batch_size").choices))


def default_seeds_per_trial(backend: str) -> int:
    """Seeds per trial for `--seeds-per-trial auto` (docs/HYPERPARAMETER_TUNING.md, "Seeds
    per trial"): on a CPU 2 (one per core of the project's 2-core machines, halving the
    value's variance), on an accelerator 4 (members there are nearly free)."""
    return 2 if backend == "cpu" else 4


@dataclasses.dataclass
class TuneSettings:
    scenarios: tuple[str, ...] = ("default",)
    num_opponents: int = 2
    env: str = "bucket_brigade"  # what every trial learns on (`bb_jax.envs`)
    num_steps: int = 50_000
    n_trials: int = 100
    seed: int = 42
    eval_interval: int = 5_000
    pruner: str = "median"
    study_name: str | None = None
    storage: str | None = None
    population_size: int = 16
    seeds_per_trial: int = 2
    objective: str = "train_return"
    eval_episodes: int = 200
    enqueue: tuple[dict, ...] = ()
    output_dir: Path = OUTPUT_DIR
    scenario_arg: str = "default"  # as the user wrote it (for the outputs)
    max_population: int = 1024
    worker_index: int = 0  # > 0: an extra process of --n-jobs; its sampler is seeded apart
    sampler: str = "tpe"
    strategy: str = "tpe"  # "auto": `sampler` is auto_sampler's choice, stored in auto_rule
    auto_rule: dict | None = None
    timeout: float | None = None  # seconds; no new batch is asked after it
    prune_alpha: float = 0.05  # --pruner median / incumbent: a trial's false-prune rate
    warmup_fraction: float = 0.25  # --pruner median: no pruning before this share of steps
    sha_eta: int = 3  # --pruner sha / hyperband: keep the top 1/eta at each rung
    sha_min_fraction: float | None = None  # first rung (share of steps); None: per pruner
    shapes: str = "exact"  # "padded": every batch trains as one shape-padded program
    # FLOPs per training run (one seed on one scenario): each trains until it spent them,
    # instead of num_steps env steps; time_budget (seconds) converts to it by a calibration
    flop_budget: float | None = None
    time_budget: float | None = None
    objectives: tuple[str, ...] = ("return",)
    # search-space parameters held at one value in every trial (--fix)
    fixed: dict = dataclasses.field(default_factory=dict)
    # --space: "full", "small" or a file (bb_jax.tuning.space); None: the backend's default
    space: str | None = None
    # the space resolved for the scenarios, --fix held (SearchSpace.rules; what the study
    # stores); None: resolved from `space` here
    space_rules: dict | None = None
    # the configuration a new study tries first (trial 0, user attr "incumbent"); None: none
    incumbent: dict | None = None
    # STUDY[@STORAGE]: a new study starts with this study's best configurations and trials
    warm_start_from: str | None = None
    # Optuna callbacks by import path (--callback MODULE:NAME) and an MLflow tracking URI
    # (--mlflow-uri): names, not objects, so --n-jobs workers build the same (callbacks.py)
    callbacks: tuple[str, ...] = ()
    mlflow_uri: str | None = None

    def __post_init__(self):
        if self.space is None:
            self.space = default_space(jax.default_backend())
        if self.space_rules is None:
            self.space_rules = load_space(self.space, self.scenarios).fixed(self.fixed).rules

    @property
    def space_label(self) -> str:
        """The space's name as a study records it: full, small or the file's name."""
        return space_label(self.space)

    def search_space(self) -> SearchSpace:
        """What every trial samples from."""
        return SearchSpace(self.space_label, self.space_rules)

    @property
    def multi_objective(self) -> bool:
        return "cost" in self.objectives

    def resolved_study_name(self) -> str:
        if self.study_name:
            return self.study_name
        self.study_name = self._auto_name()
        return self.study_name

    def _auto_name(self) -> str:
        stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        label = self.scenario_arg.replace(",", "+")
        return f"bb_{label}_{stamp}"
