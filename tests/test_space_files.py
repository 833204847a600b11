"""Search spaces as data (--space FILE, the built-in space_files): parsing, conditions,
scenario-dependent ranges, bad files and the stored space checked on resume."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from bb_jax.agent.config import TUNABLE_FIELDS
from bb_jax.cli import tune_main
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.space import (
    SAMPLING_ORDER,
    SpaceError,
    control_params,
    load_space,
    search_space,
)
from bb_jax.tuning.study import StudyMismatchError, open_study

REPO = Path(__file__).resolve().parents[1]
# a condition on a parameter sampled before (clip range and entropy's presence depend on
# num_epochs) and a range that depends on the scenario (by a scenario parameter and by name)
CONDITIONAL = """\
parameters:
  hidden_size: 64
  learning_rate:
    low: 1e-4
    high: 1e-3
    log: true
    cases:
      - when: {p_spread: {ge: 0.4}}
        low: 3e-4
  batch_size: {choices: [512]}
  num_epochs: {low: 3, high: 10}
  clip_epsilon:
    low: 0.1
    high: 0.3
    cases:
      - when: {num_epochs: {ge: 8}}
        high: 0.2
  entropy_coef:
    low: 0.005
    high: 0.05
    log: true
    when: {num_epochs: {lt: 6}}
  gamma:
    low: 0.95
    high: 0.99
    when: {scenario: [easy, default]}
"""


@pytest.fixture
def conditional(tmp_path) -> Path:
    path = tmp_path / "conditional.yaml"
    path.write_text(CONDITIONAL)
    return path


def declared(name: str, space: str):
    """A parameter's range as PPOConfig / PPOHyperparams declare it (their `Search`)."""
    search = next(f for f in TUNABLE_FIELDS if f.name == name).metadata["search"]
    if search.choices:
        small = space == "small" and search.small_choices
        return optuna.distributions.CategoricalDistribution(
            list(search.small_choices if small else search.choices))
    if search.integer:
        return optuna.distributions.IntDistribution(int(search.low), int(search.high),
                                                    log=search.log)
    return optuna.distributions.FloatDistribution(search.low, search.high, log=search.log)


@pytest.mark.parametrize("space", ["full", "small"])
def test_the_builtin_files_are_the_declared_ranges_in_sampling_order(space):
    """Same distributions in the same order + the same sampler seed => the same trials as
    the hard-coded spaces gave (tests/test_incumbent.py pins the asks themselves)."""
    distributions = search_space(None, space)
    assert list(distributions) == list(SAMPLING_ORDER)
    for name in SAMPLING_ORDER:
        assert distributions[name] == declared(name, space), name
    assert not load_space(space).conditional


def test_scenario_conditions_resolve_for_the_studys_scenarios(conditional):
    hard = load_space(str(conditional), ["chain_reaction"])  # p_spread 0.45
    assert hard.rules["learning_rate"] == {"low": 3e-4, "high": 1e-3, "log": True}
    assert hard.rules["gamma"] == {"value": control_params()["gamma"]}  # not easy/default
    easy = load_space(str(conditional), ["easy"])  # p_spread 0.1
    assert easy.rules["learning_rate"] == {"low": 1e-4, "high": 1e-3, "log": True}
    assert easy.rules["gamma"] == {"low": 0.95, "high": 0.99}
    both = load_space(str(conditional), ["easy", "chain_reaction"])  # must hold for all
    assert both.rules["learning_rate"]["low"] == 1e-4
    assert both.rules["gamma"] == hard.rules["gamma"]
    with pytest.raises(SpaceError, match="needs the study's scenarios"):
        load_space(str(conditional))


def test_parameter_conditions_hold_in_every_sampled_trial(conditional):
    space = load_space(str(conditional), ["chain_reaction"])
    assert space.conditional
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(
        seed=1, multivariate=True, group=True, n_startup_trials=4))
    seen = set()
    for _ in range(16):
        trial = study.ask()
        params = space.suggest(trial)
        study.tell(trial, -params["clip_epsilon"])
        assert set(params) == set(SAMPLING_ORDER)  # every parameter, always
        assert 3e-4 <= params["learning_rate"] <= 1e-3
        if params["num_epochs"] >= 8:
            assert params["clip_epsilon"] <= 0.2
        if params["num_epochs"] >= 6:
            assert params["entropy_coef"] == control_params()["entropy_coef"]
        seen.add(params["num_epochs"] >= 6)
        assert params["value_coef"] == control_params()["value_coef"]  # left out: default
    assert seen == {True, False}


def test_queued_rows_are_checked_against_the_conditions(conditional, tmp_path):
    from bb_jax.cli.common import UsageError
    from bb_jax.cli.tune_args import read_enqueue

    space = load_space(str(conditional), ["chain_reaction"])
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"clip_epsilon": 0.25}, {"num_epochs": 5, "clip_epsilon": 0.25}]))
    assert len(read_enqueue(str(rows), space)) == 2  # num_epochs sampled: any clip may fit
    rows.write_text(json.dumps([{"num_epochs": 9, "clip_epsilon": 0.25}]))
    with pytest.raises(UsageError, match=r"clip_epsilon=0.25 is outside the search space "
                                         r"\(0.1 .. 0.2\)"):
        read_enqueue(str(rows), space)


def test_a_json_file_is_read_like_yaml(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"parameters": {"learning_rate": {"low": 1e-4, "high": 1e-3,
                                                                 "log": True}}}))
    space = load_space(str(path))
    assert space.label == "space.json"
    assert space.rules["learning_rate"] == {"low": 1e-4, "high": 1e-3, "log": True}


BAD = [
    ("parameters:\n  lr: {low: 1, high: 2}\n", "parameters.lr: unknown parameter"),
    ("parameters:\n  gamma: {low: 0.9, hi: 0.99}\n", "parameters.gamma.hi: unknown key"),
    ("parameters:\n  gamma: {low: 0.99, high: 0.9}\n", "parameters.gamma: low must be below"),
    ("parameters:\n  entropy_coef: {low: 0, high: 0.1, log: true}\n",
     "parameters.entropy_coef: a log range needs low > 0"),
    ("parameters:\n  hidden_size: {low: 64, high: 512}\n",
     "parameters.hidden_size: a network shape takes choices"),
    ("parameters:\n  num_epochs: {low: 3.5, high: 8}\n",
     "parameters.num_epochs.low: num_epochs takes whole numbers"),
    ("parameters:\n  gamma: {low: 0.9, high: 0.99, when: {num_epochs: {ge: 8}}}\n"
     "  num_epochs: {low: 3, high: 10}\n",
     "parameters.gamma.when.num_epochs: a condition names a parameter sampled before"),
    ("parameters:\n  gamma: {low: 0.9, high: 0.99, when: {scenario: nowhere}}\n",
     "parameters.gamma.when.scenario: unknown scenario 'nowhere'"),
    ("parameters:\n  num_epochs: {low: 3, high: 10}\n  gamma:\n    low: 0.9\n    high: 0.99\n"
     "    cases: [{when: {num_epochs: 3}, choices: [0.9]}]\n",
     "parameters.gamma.cases[0]: a case keeps its rule's kind"),
    ("parameters:\n  num_epochs: {low: 3, high: 10}\n"
     "  gamma: {low: 0.9, high: 0.99, when: {num_epochs: {ge: eight}}}\n",
     "parameters.gamma.when.num_epochs: compares numbers, got 'eight'"),
    ("parameters: [gamma]\n", "parameters: a mapping"),
    ("parameters:\n  gamma: {low: 0.9\n", "not valid YAML"),
]


@pytest.mark.parametrize("text, expected", BAD, ids=[e.split(":")[0] + str(i)
                                                     for i, (_, e) in enumerate(BAD)])
def test_a_bad_file_is_one_line_naming_the_key_and_nothing_is_written(text, expected,
                                                                      tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    code = tune_main(["--space", str(path), "--storage", url, "--study-name", "s",
                      "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and expected in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "study.db").exists()


def test_a_missing_space_names_the_choices(tmp_path, capsys):
    code = tune_main(["--space", "medium", "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "give one of full, small, auto or a YAML/JSON file" in err


def test_the_study_stores_its_space_and_a_resume_names_the_changed_field(conditional,
                                                                        tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    settings = TuneSettings(storage=url, study_name="s", num_steps=4096, seeds_per_trial=2,
                            space=str(conditional), scenarios=("chain_reaction",),
                            scenario_arg="chain_reaction")
    study = open_study(settings)
    assert study.user_attrs["space"] == "conditional.yaml"
    stored = dict(study.user_attrs["search_space"])
    assert stored["clip_epsilon"]["cases"][0]["when"] == {"num_epochs": {"ge": 8}}
    conditional.write_text(CONDITIONAL.replace("high: 0.2", "high: 0.25"))
    changed = dataclasses.replace(settings, space_rules=None)
    with pytest.raises(StudyMismatchError) as err:
        open_study(changed)
    assert ("another search space: clip_epsilon.cases[0].high is 0.2 there, 0.25 in this "
            "run's --space conditional.yaml") in str(err.value)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.slow
def test_a_conditional_space_drives_a_study_to_a_reproducible_command(conditional, tmp_path):
    """tune -> validate -> the printed train command reproduces the validated figure, on a
    space with a parameter condition and a scenario-dependent range."""
    out = tmp_path / "out"
    code = tune_main(["--space", str(conditional), "--scenario", "chain_reaction",
                      "--n-trials", "3", "--population-size", "1", "--num-steps", "4096",
                      "--eval-interval", "4096", "--seeds-per-trial", "1", "--pruner", "none",
                      "--validate-top-k", "1", "--validate-seeds", "2", "--eval-episodes", "16",
                      "--study-name", "cond", "--output-dir", str(out)])
    assert code == 0
    results = json.loads((out / "cond_results.json").read_text())
    assert results["trials"][0]["user_attrs"]["incumbent"] is True
    for trial in results["trials"]:
        params = trial["params"]
        assert 3e-4 <= params["learning_rate"] <= 1e-3  # chain_reaction's range
        assert params["num_epochs"] < 8 or params["clip_epsilon"] <= 0.2
    rec = results["recommendation"]
    command = shlex.split(rec["train_command"])
    proc = subprocess.run(
        [sys.executable, *command[1:], "--save-path", str(tmp_path / "run"),
         "--results-json", str(tmp_path / "best.json")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO), "JAX_NUM_CPU_DEVICES": "1"})
    assert proc.returncode == 0, proc.stderr
    replay = json.loads((tmp_path / "best.json").read_text())
    assert math.isclose(replay["eval_return_sampled"]["mean"], rec["validated_mean"],
                        rel_tol=1e-3)
