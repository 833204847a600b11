"""What a tuning run is asked to do (`TuneSettings`, the declared tree the command line is
generated from) and the choices `auto` makes per JAX backend (population size, shapes, seeds
per trial, search space), resolved once when a run starts and stored resolved."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
from pathlib import Path

from bb_jax.agent.config import MAX_TOTAL_STEPS, ShapeChoices
from bb_jax.config import Valid, nested, setting
from bb_jax.tuning.space import (
    LARGEST_BATCH,
    MAX_SEEDS_PER_TRIAL,
    SearchSpace,
    default_space,
    load_space,
    space_label,
)

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
DEFAULT_NUM_STEPS = 50_000  # env steps per training run when no budget is given
STORAGE_ENV = "BB_JAX_STORAGE"  # --storage's default, as bb_jax.cli.common names it


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


def _auto_or_int(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: a positive integer or 'auto'") from None


def _shown_fixed(fixed: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in fixed.items()) or "(nothing)"


def _storage_default() -> str | None:
    """--storage's default: $BB_JAX_STORAGE (keeps a password off the command line)."""
    return os.environ.get(STORAGE_ENV) or None


@dataclasses.dataclass(frozen=True)
class ValidationSettings:
    """The validation on fresh seeds that ends a sweep."""

    validate_top_k: int = setting(
        3, "--validate-top-k", "at the end, retrain the top-k trials and the default "
        "configuration on fresh seeds and recommend only what beats it",
        valid=Valid(1, integer=True))
    validate_seeds: int = setting(8, "--validate-seeds", "fresh seeds per validated "
                                  "configuration (>= 2: a confidence interval needs two)",
                                  valid=Valid(2, integer=True))
    validate_steps: int | None = setting(
        None, "--validate-steps", "env steps per validation run (default: --num-steps)",
        type=int, valid=Valid(LARGEST_BATCH, MAX_TOTAL_STEPS, integer=True))
    no_validate: bool = setting(
        False, "--no-validate", "skip the validation (the study's best is then only a tuning "
        "value)", action="store_true")
    equivalence_margin: float | None = setting(
        None, "--equivalence-margin", "return units: the cheapest configuration named is one "
        "whose paired 95%% CI against the best validated one lies above minus this (default: "
        "half the control's across-seed SD)", type=float, valid=Valid(0))


@dataclasses.dataclass(frozen=True)
class PBTSettings:
    """--strategy pbt's own settings (flags --pbt-NAME)."""

    interval: int = setting(20_480, "--pbt-interval", "--strategy pbt: env steps per member "
                            "between exploit steps", study=True)
    quantile: float = setting(0.25, "--pbt-quantile", "--strategy pbt: share of members that "
                              "may copy (the bottom) and be copied (the top), in (0, 0.5]",
                              valid=Valid(0, 0.5, low_open=True), study=True)
    margin: float = setting(2.0, "--pbt-margin", "--strategy pbt: a member copies only a "
                            "member better by this many standard errors of the difference "
                            "(fresh episodes)", study=True)
    versus: str | None = setting(
        None, "--pbt-versus", "--strategy pbt: also validate the best trial of this TPE study "
        "(same storage) on the same fresh seeds, paired with the schedule", type=str,
        metavar="STUDY")


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """What a tuning run is asked to do: each field declared once (`bb_jax.config.setting`)
    with its flag, default and range; the tuner's command line is generated from them
    (`bb_jax.cli.tune_args`). `study=True` fields are what a study's trials mean: a study
    stores them (user attr "config") and a resume must match them. Frozen: what a run
    settles (its study name, the study's FLOP budget) comes back as a new tree
    (`named`, `bb_jax.tuning.study.settled`)."""

    scenario_arg: str = setting(  # as the user wrote it; `scenarios` is what it names
        "default", "--scenario", "a scenario, a comma-separated list, or 'all' (objective = "
        "mean)")
    scenarios: tuple[str, ...] = setting(("default",), study=True, show=",".join,
                                         label="--scenario")
    num_opponents: int = setting(2, "--num-opponents", "heuristic opponents beside the "
                                 "learner, 1..9", valid=Valid(1, 9, integer=True), study=True)
    num_steps: int | None = setting(
        DEFAULT_NUM_STEPS, "--num-steps", f"env steps per training run (one seed on one "
        f"scenario; default: {DEFAULT_NUM_STEPS:,} unless a budget is given)",
        flag_default=None, type=int, study=True)
    flop_budget: float | None = setting(
        None, "--flop-budget", "training FLOPs per run instead of env steps: cheap "
        "configurations train more steps; deterministic (default: none)", type=float,
        valid=Valid(0, math.inf, low_open=True, high_open=True))
    time_budget: float | None = setting(
        None, "--time-budget", "seconds of training per run, converted once into a FLOP "
        "budget by timing the default configuration when the study is created (default: "
        "none)", type=float, valid=Valid(0, math.inf, low_open=True, high_open=True),
        study=True)
    objectives: tuple[str, ...] = setting(
        ("return",), "--objectives", "return, or return,cost: a multi-objective study of "
        "return and training TFLOPs per run (Pareto front; no pruning) (default: return)",
        flag_default="return", type=str, study=True, show=",".join)
    n_trials: int = setting(100, "--n-trials", "new trials to run",
                            valid=Valid(0, math.inf, low_open=True, integer=True))
    seed: int = setting(42, "--seed", "seeds the sampler; a new study tunes on seeds "
                        "SEED*1000+i")
    n_jobs: int = setting(1, "--n-jobs", "worker processes sharing the study (-1: one per CPU "
                          "core)")
    eval_interval: int = setting(5_000, "--eval-interval", "env steps between intermediate "
                                 "values (pruning checks)")
    seeds_per_trial: int = setting(
        2, "--seeds-per-trial", "seeds each trial trains as population members (the same "
        "seeds for every trial: paired); its value is their mean. auto: 2 on a CPU, 4 on a "
        "GPU/TPU (default: auto)", flag_default="auto", type=_auto_or_int,
        auto=default_seeds_per_trial,
        valid=Valid(1, MAX_SEEDS_PER_TRIAL, integer=True), study=True)
    pruner: str = setting(
        "median", "--pruner", "median: significantly below the incumbent trial (paired on "
        "the seeds), or without one below the peers' median; incumbent: below the incumbent "
        "only; sha: synchronous successive halving; hyperband; none; or an optuna BasePruner "
        "subclass MODULE:CLASS, built by its from_settings(settings) if it has one, else with "
        "no arguments", metavar="NAME|MODULE:CLASS")
    prune_alpha: float = setting(
        0.05, "--prune-alpha", "--pruner median/incumbent: chance that a trial no worse than "
        "its reference is pruned at any of its checks (default: 0.05)",
        valid=Valid(0, 1, low_open=True, high_open=True))
    warmup_fraction: float = setting(0.25, "--warmup-fraction", "--pruner median: share of "
                                     "the steps before any pruning",
                                     valid=Valid(0, 1, high_open=True))
    sha_eta: int = setting(3, "--eta", "--pruner sha/hyperband: keep the top 1/eta at each "
                           "rung", valid=Valid(2, integer=True))
    sha_min_fraction: float | None = setting(
        None, "--min-fraction", "--pruner sha/hyperband: first rung as a share of the steps "
        "(default: 1/2 for sha, 1/9 for hyperband)", type=float,
        valid=Valid(0, 1, low_open=True, high_open=True))
    sampler: str = setting(
        "tpe", "--sampler", "tpe (multivariate, constant liar), gp (Gaussian process; needs "
        "PyTorch), cmaes (CMA-ES started at the incumbent; needs the cmaes package), random, "
        "or an optuna BaseSampler subclass MODULE:CLASS, built by its from_settings(settings, "
        "seed, incumbent) if it has one, else with the seed the study derives from --seed "
        "(default: tpe; --strategy auto picks it)", flag_default=None,
        metavar="NAME|MODULE:CLASS", type=str, study=True)
    timeout: float | None = setting(  # seconds; no new batch is asked after it
        None, "--timeout", "seconds; no new batch is asked after it (finished trials are "
        "kept)", type=float, valid=Valid(0, math.inf, low_open=True, high_open=True))
    validation: ValidationSettings = nested(ValidationSettings)
    study_name: str | None = setting(
        None, "--study-name", "the study to create or resume (default: "
        "bb_SCENARIO_DATE_TIME)", type=str)
    storage: str | None = setting(
        None, "--storage", "sqlite:///PATH, postgresql://USER:PASSWORD@HOST/DB, "
        f"journal:///PATH (default: ${STORAGE_ENV} if set, else in-memory; the variable keeps "
        "a password off the command line)", flag_default=_storage_default, type=str)
    population_size: int = setting(
        16, "--population-size", "trials asked and trained together per batch; auto: 1 on a "
        "CPU, 16 on a GPU/TPU (default: auto)", flag_default="auto", type=_auto_or_int,
        auto=default_population_size, valid=Valid(0, low_open=True, integer=True))
    shapes: str = setting(
        "exact", "--shapes", "exact: one compiled program per (hidden size, batch size) in a "
        "batch; padded: the whole batch in one program of the largest shapes, smaller members "
        "masked (same results); auto: exact on a CPU, padded on a GPU/TPU (default: auto)",
        flag_default="auto", choices=SHAPES, auto=default_shapes)
    objective: str = setting(
        "train_return", "--objective", "a seed's value: its last-interval training return, "
        "or the mean of --eval-episodes fresh episodes", choices=OBJECTIVES, study=True)
    eval_episodes: int = setting(200, "--eval-episodes", "fresh episodes per seed in "
                                 "evaluations", valid=Valid(1, integer=True))
    space: str = setting(  # "small": a CPU's choice (--space auto resolves per backend)
        "small", "--space", "the search space: full (hidden 64..512), small (hidden 64, 128: the "
        "ones that pay per second on a CPU), auto (small on a CPU, full on a GPU/TPU) or a "
        "YAML/JSON file of ranges, choices, fixed values and conditions "
        "(docs/HYPERPARAMETER_TUNING.md) (default: auto)", flag_default="auto", type=str,
        metavar="full|small|auto|FILE", auto=default_space, study=True)
    fixed: dict = setting(  # search-space parameters held at one value in every trial
        default_factory=dict, flag="--fix", help="hold search-space parameters at one value "
        "in every trial, e.g. hidden_size=128,batch_size=1024 (one network shape: one "
        "compiled program for the whole study) (default: none)", flag_default=None, type=str,
        metavar="NAME=VALUE[,...]", study=True, show=_shown_fixed)
    enqueue: tuple[dict, ...] = setting(
        (), "--enqueue", "JSON file: a list of parameter dicts to try first",
        flag_default=None, type=str)
    # the configuration a new study tries first (trial 0, user attr "incumbent"); None: none
    incumbent: dict | None = setting(
        None, "--incumbent", "JSON file: the configuration a new study tries first (trial 0; "
        "parameters it leaves out: the defaults) (default: the default configuration, fitted "
        "to the space and --fix)", type=str, metavar="FILE")
    no_incumbent: bool = setting(False, "--no-incumbent", "a new study starts from the "
                                 "sampler alone (no trial 0 incumbent)", action="store_true")
    # STUDY[@STORAGE]: a new study starts with this study's best configurations and trials
    warm_start_from: str | None = setting(
        None, "--warm-start-from", "a new study first tries this study's best validated "
        "configurations and best trials, and its sampler sees that study's finished trials "
        "(default storage: --storage)", type=str, metavar="STUDY[@STORAGE]")
    output_dir: Path = setting(OUTPUT_DIR, "--output-dir", "where the results JSON and plots "
                               "go", flag_default=str(OUTPUT_DIR), type=str)
    max_population: int = setting(1024, "--max-population", "members per compiled "
                                  "population; larger cohorts run in rounds",
                                  valid=Valid(1, integer=True))
    # "auto": `sampler` is auto_sampler's choice, stored in auto_rule
    strategy: str = setting(
        "tpe", "--strategy", "tpe: trials proposed by --sampler, trained in batches and "
        "pruned; pbt: population-based training of --population-size members (auto: 16) in "
        "one compiled population, exploiting and exploring every --pbt-interval env steps; "
        "auto: as tpe, with the sampler picked for --n-trials by a stated rule "
        "(docs/HYPERPARAMETER_TUNING.md)", choices=STRATEGIES)
    pbt: PBTSettings = nested(PBTSettings, "pbt_")
    # Optuna callbacks by import path (--callback MODULE:NAME) and an MLflow tracking URI
    # (--mlflow-uri): names, not objects, so --n-jobs workers build the same (callbacks.py)
    callbacks: tuple[str, ...] = setting(
        (), "--callback", "Optuna callbacks called as callback(study, frozen_trial) after "
        "each trial is told, in every --n-jobs worker too (default: none)", flag_default=None,
        type=str, nargs="+", metavar="MODULE:NAME")
    mlflow_uri: str | None = setting(
        None, "--mlflow-uri", "log every told trial to MLflow (optuna-integration's "
        "MLflowCallback; experiment = study name), e.g. sqlite:///mlflow.db; needs "
        "bb-jax[mlflow]", type=str, metavar="URI")
    # > 0: an extra process of --n-jobs; its sampler is seeded apart
    worker_index: int = setting(0, "--worker-index")
    auto_rule: dict | None = None
    # the space resolved for the scenarios, --fix held (SearchSpace.rules; what the study
    # stores); None: resolved from `space` here
    space_rules: dict | None = None

    def __post_init__(self):
        if self.space_rules is None:
            object.__setattr__(self, "space_rules", load_space(
                self.space, self.scenarios).fixed(self.fixed).rules)

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

    def named(self) -> TuneSettings:
        """These settings with a study name: --study-name, else bb_SCENARIO_DATE_TIME."""
        return self if self.study_name else dataclasses.replace(self,
                                                                study_name=self._auto_name())

    def _auto_name(self) -> str:
        stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
        label = self.scenario_arg.replace(",", "+")
        return f"bb_{label}_{stamp}"
