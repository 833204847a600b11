"""Pruners and samplers as registries (`--pruner NAME|MODULE:CLASS`, `--sampler ...`): every
built-in builds what the tuner built before the registries (same seed, same trials), each
pruner checks its arguments and runs its docstring example, bad names are one usage line,
and a pruner and a sampler defined outside the package run a real study from the command
line."""

from __future__ import annotations

import doctest
import importlib.util
import json
import math
import textwrap
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from bb_jax.cli import tune_main
from bb_jax.runtime.cohorts import BUDGET_REPORTS
from bb_jax.testing.synthetic_sweeps import synthetic_sweep
from bb_jax.tuning.pruners import (
    PRUNERS,
    EvidenceMedianPruner,
    HyperbandPruner,
    IncumbentPruner,
    SyncHalvingPruner,
    halving,
    hyperband,
    incumbent,
    median,
    planned_checks,
)
from bb_jax.tuning.registry import ChoiceError, Registry
from bb_jax.tuning.samplers import SAMPLERS
from bb_jax.tuning.settings import BUDGET_SCALE, TuneSettings
from bb_jax.tuning.space import LARGEST_BATCH, control_params
from bb_jax.tuning.study import make_pruner, make_sampler

# ---------------------------------------------------------------- the builds before registries


def pruner_before(settings: TuneSettings) -> optuna.pruners.BasePruner:
    """The tuner's pruner as it was built before the registries (a string if-chain)."""
    if settings.pruner == "none" or settings.multi_objective:
        return optuna.pruners.NopPruner()
    steps, interval = settings.num_steps, settings.eval_interval
    window = interval + LARGEST_BATCH
    if settings.flop_budget is not None:
        steps, interval = BUDGET_SCALE, BUDGET_SCALE // BUDGET_REPORTS
        window = interval + 1
    if settings.pruner in ("median", "incumbent"):
        checks = planned_checks(steps, interval, settings.warmup_fraction)
        fallback = (EvidenceMedianPruner(steps, window, checks, settings.warmup_fraction,
                                         settings.prune_alpha)
                    if settings.pruner == "median" else optuna.pruners.NopPruner())
        return IncumbentPruner(fallback, steps, window, checks, settings.warmup_fraction,
                               settings.prune_alpha)
    fraction = settings.sha_min_fraction or {"sha": 1 / 2, "hyperband": 1 / 9}[settings.pruner]
    if settings.pruner == "sha":
        return SyncHalvingPruner(steps, settings.sha_eta, fraction)
    return HyperbandPruner(steps, settings.sha_eta, fraction)


def sampler_before(settings: TuneSettings, n_existing: int,
                   incumbent: dict | None) -> optuna.samplers.BaseSampler:
    """The tuner's sampler as it was built before the registries, with Optuna directly."""
    seed = (settings.seed * 1_000_003 + settings.worker_index * 7_919 + n_existing) % 2**31
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if settings.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(x0=incumbent, sigma0=0.1 if incumbent else None,
                                                seed=seed, warn_independent_sampling=False)
        group = {"group": True} if settings.search_space().conditional else {}
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                          **group)


def state(pruner: optuna.pruners.BasePruner) -> dict:
    """A pruner's parameters, nested pruners expanded (closures left out)."""
    out = {"type": type(pruner).__name__}
    for key, value in vars(pruner).items():
        if isinstance(value, optuna.pruners.BasePruner):
            out[key] = state(value)
        elif isinstance(value, list) and value and isinstance(value[0],
                                                              optuna.pruners.BasePruner):
            out[key] = [state(v) for v in value]
        elif not callable(value):
            out[key] = value
    return out


BUILT_IN_PRUNERS = ("median", "incumbent", "sha", "hyperband", "none")
AXES = {"steps": {"num_steps": 100_000, "eval_interval": 10_000},
        "flops": {"num_steps": 100_000, "eval_interval": 10_000, "flop_budget": 1e12},
        "options": {"num_steps": 60_000, "eval_interval": 6_000, "prune_alpha": 0.2,
                    "warmup_fraction": 0.4, "sha_eta": 2, "sha_min_fraction": 0.25}}


def test_the_registry_holds_the_built_in_pruners_and_samplers():
    assert sorted(PRUNERS) == sorted(BUILT_IN_PRUNERS)
    assert sorted(SAMPLERS) == ["cmaes", "gp", "random", "tpe"]


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("name", BUILT_IN_PRUNERS)
def test_each_pruner_is_built_as_before(name, axis):
    settings = TuneSettings(pruner=name, space="small", **AXES[axis])
    assert state(make_pruner(settings)) == state(pruner_before(settings))


@pytest.mark.parametrize("name", ["median", "sha", "hyperband"])
def test_a_time_budget_judges_on_the_budget_axis_before_it_is_converted(name):
    """The command line builds the pruner before the study converts --time-budget into a
    FLOP budget: the pruner is already the one of the FLOP budget's axis."""
    timed = TuneSettings(pruner=name, space="small", num_steps=None, time_budget=20.0)
    budget = TuneSettings(pruner=name, space="small", num_steps=None, flop_budget=1e12)
    assert state(make_pruner(timed)) == state(make_pruner(budget))


@pytest.mark.parametrize("name", ["median", "sha", "hyperband"])
def test_each_pruner_prunes_a_sweep_as_before(name):
    """The same synthetic sweep (same seed) pruned by the registry's build and by the build
    before the registries: the same trials pruned at the same steps."""
    settings = TuneSettings(pruner=name, space="small", num_steps=100_000, eval_interval=10_000)
    runs = [synthetic_sweep(lambda steps, build=build: build(settings), 20.0, 4.0,
                            repetitions=1, n_seeds=2, n_trials=32)
            for build in (make_pruner, pruner_before)]
    assert runs[0] == runs[1] and runs[0].pruned > 0


def run_asks(study: optuna.Study, space, n: int, batch: int = 4) -> list[dict]:
    """n trials asked from `space` in batches, as the tuner asks (a batch's trials are
    running while the next of them is asked), each told a value of its parameters (a
    learning rate near 3e-4 is best)."""
    rows = []
    for _ in range(0, n, batch):
        trials = [study.ask() for _ in range(batch)]
        asked = [space.suggest(trial) for trial in trials]
        for trial, params in zip(trials, asked, strict=True):
            study.tell(trial, -abs(math.log(params["learning_rate"] / 3e-4)))
        rows += asked
    return rows


def conditional_space(tmp_path) -> str:
    path = tmp_path / "conditional.yaml"
    path.write_text("parameters:\n  num_epochs: {low: 3, high: 10}\n"
                    "  learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}\n"
                    "  entropy_coef: {low: 0.005, high: 0.05, log: true, "
                    "when: {num_epochs: {lt: 6}}}\n")
    return str(path)


@pytest.mark.parametrize("space", ["small", "conditional"])
@pytest.mark.parametrize("name", ["tpe", "random", "cmaes", "gp"])
def test_same_seed_samples_the_same_trials_as_before(name, space, tmp_path):
    """A short study (past TPE's 10 start-up trials, from trial 3 of a resumed worker 1)
    asks the same parameters of the registry's sampler as of the build before it."""
    package = {"cmaes": "cmaes", "gp": "torch"}.get(name)
    if package:
        pytest.importorskip(package)
    if space == "conditional":
        space = conditional_space(tmp_path)
    settings = TuneSettings(sampler=name, space=space, seed=11, worker_index=1)
    incumbent = None if name != "cmaes" else {**control_params(), "learning_rate": 2e-4}
    rows = []
    for build in (make_sampler, sampler_before):
        study = optuna.create_study(direction="maximize", sampler=build(settings, 3, incumbent))
        rows.append(run_asks(study, settings.search_space(), 20))
    assert rows[0] == rows[1]


# ---------------------------------------------------------------- arguments, examples, errors


@pytest.mark.parametrize("build,message", [
    (lambda: SyncHalvingPruner(1000, eta=1), "eta must be >= 2"),
    (lambda: SyncHalvingPruner(1000, min_fraction=0.0), "min_fraction must be in"),
    (lambda: SyncHalvingPruner(1000, min_peers=0), "min_peers must be >= 1"),
    (lambda: HyperbandPruner(0), "num_steps must be >= 1"),
    (lambda: IncumbentPruner(None, 1000, 100, 7), "fallback must be an optuna BasePruner"),
    (lambda: IncumbentPruner(optuna.pruners.NopPruner(), 1000, 0, 7), "window"),
    (lambda: IncumbentPruner(optuna.pruners.NopPruner(), 1000, 100, 7, alpha=1.0), "alpha"),
    (lambda: EvidenceMedianPruner(1000, 0, 7), "window"),
    (lambda: EvidenceMedianPruner(1000, 100, 7, warmup_fraction=1.0), "warmup_fraction"),
])
def test_each_pruner_refuses_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("module", [halving, hyperband, incumbent, median],
                         ids=lambda m: m.__name__)
def test_each_pruner_docstring_example_runs(module):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_a_registry_refuses_a_name_twice_and_a_name_with_a_colon():
    registry = Registry("--thing", "things", "pkg.mod:Thing", lambda spec, found: found)
    registry.register("a")(lambda settings: 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a")(lambda settings: 2)
    with pytest.raises(ValueError, match="has no ':'"):
        registry.register("pkg:a")
    assert registry.resolve("a")(None) == 1
    with pytest.raises(ChoiceError, match="valid things are a, or MODULE:CLASS"):
        registry.resolve("b")


@pytest.mark.parametrize("flag,value,message", [
    ("--pruner", "bogus", "valid pruners are hyperband, incumbent, median, none, sha"),
    ("--pruner", "json:dumps", "is not a subclass of optuna.pruners.BasePruner"),
    ("--pruner", "no_such_module_here:Rule", "cannot import it"),
    ("--sampler", "bogus", "valid samplers are cmaes, gp, random, tpe"),
    ("--sampler", "optuna.pruners:NopPruner", "is not a subclass of optuna.samplers"),
])
def test_a_bad_name_is_one_line_naming_the_choices(flag, value, message, tmp_path, capsys):
    code = tune_main([flag, value, "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_missing_package_names_it(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else find_spec(name, *a))
    with pytest.raises(ChoiceError, match="--sampler gp needs the torch package"):
        make_sampler(TuneSettings(sampler="gp", space="small"), 0)


# ---------------------------------------------------------------- a pruner and a sampler of a user

USER_MODULE = '''
import optuna


class EdgeSampler(optuna.samplers.BaseSampler):
    """Even trials at each range's low end, odd ones at its high end (built with seed=)."""

    def __init__(self, *, seed):
        self.seed = seed

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, name, distribution):
        high = trial.number % 2
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            return distribution.choices[-1 if high else 0]
        return distribution.high if high else distribution.low


class PruneOdd(optuna.pruners.BasePruner):
    """Prunes odd trials once they have trained `at_step` env steps."""

    def __init__(self, at_step):
        if at_step < 1:
            raise ValueError(f"at_step must be >= 1, got {at_step}")
        self.at_step = at_step

    @classmethod
    def from_settings(cls, settings):
        return cls(round(settings.warmup_fraction * settings.num_steps))

    def prune(self, study, trial):
        return trial.number % 2 == 1 and trial.last_step >= self.at_step
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_rules").mkdir()
    (tmp_path / "user_rules" / "my_rules.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path / "user_rules"))
    return "my_rules"


def test_a_pruner_and_a_sampler_from_outside_run_a_study(user_module, tmp_path):
    """The user's sampler proposes each trial (low ends, then high ends) and the user's
    pruner, built by its from_settings (at half the steps), stops trial 1 at its first
    report: a real study through the command line, two trials of 4096 env steps."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    # the shapes and sizes of tests/test_tune.py's one-shape sweep: one compiled program
    code = tune_main(["--pruner", f"{user_module}:PruneOdd",
                      "--sampler", f"{user_module}:EdgeSampler", "--n-trials", "2",
                      "--population-size", "1", "--num-steps", str(LARGEST_BATCH),
                      "--eval-interval", "1024", "--warmup-fraction", "0.5",
                      "--seeds-per-trial", "2", "--eval-episodes", "20", "--space", "small",
                      "--fix", "hidden_size=64,batch_size=512,num_epochs=4", "--no-incumbent",
                      "--no-validate", "--study-name", "user", "--storage", storage,
                      "--output-dir", str(tmp_path / "out")])
    assert code == 0
    study = optuna.load_study(study_name="user", storage=storage)
    first, second = study.get_trials()
    assert first.state == TrialState.COMPLETE and second.state == TrialState.PRUNED
    assert max(second.intermediate_values) == 2048
    assert (first.params["learning_rate"], second.params["learning_rate"]) == (1e-5, 1e-3)
    assert (first.params["gamma"], second.params["gamma"]) == (0.95, 0.999)
    assert study.user_attrs["sampler"] == f"{user_module}:EdgeSampler"
    results = json.loads((tmp_path / "out" / "user_results.json").read_text())
    assert results["n_complete"] == 1


def test_a_user_pruner_refusing_its_arguments_is_one_usage_line(user_module, tmp_path, capsys):
    code = tune_main(["--pruner", f"{user_module}:PruneOdd", "--num-steps", "4096",
                      "--eval-interval", "2048", "--warmup-fraction", "0", "--output-dir",
                      str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--pruner: at_step must be >= 1, got 0" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
