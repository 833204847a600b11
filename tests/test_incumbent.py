"""The incumbent as trial 0 and the sampler choice (--incumbent, --no-incumbent, --sampler):
studies are created and asked here, nothing is trained."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from bb_jax.cli import tune_main
from bb_jax.cli.tune_args import tune_parser, tune_settings
from bb_jax.tuning.samplers import SAMPLERS
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.space import SEARCH_SPACE, control_params
from bb_jax.tuning.study import StudyMismatchError, make_sampler, open_study


def cli_settings(tmp_path, *extra: str) -> TuneSettings:
    return tune_settings(tune_parser().parse_args(
        ["--num-steps", "4096", "--eval-interval", "4096", "--output-dir",
         str(tmp_path / "out"), *extra]))


def fake_value(params: dict) -> float:
    """A synthetic objective: best near learning rate 3e-4 and gamma 0.97."""
    import math

    return -abs(math.log(params["learning_rate"] / 3e-4)) - 10 * abs(params["gamma"] - 0.97)


def run_asks(study: optuna.Study, space, n: int) -> list[dict]:
    """n trials asked from `space` and told the synthetic value."""
    rows = []
    for _ in range(n):
        trial = study.ask()
        params = space.suggest(trial)
        study.tell(trial, fake_value(params))
        rows.append(params)
    return rows


def test_by_default_the_incumbent_is_the_defaults_fitted_to_space_and_fix(tmp_path):
    settings = cli_settings(tmp_path, "--space", "small", "--fix", "gamma=0.97")
    assert settings.incumbent == {**control_params(), "gamma": 0.97}
    full = cli_settings(tmp_path, "--space", "full", "--fix", "hidden_size=256")
    assert full.incumbent["hidden_size"] == 256
    assert cli_settings(tmp_path, "--no-incumbent").incumbent is None


def test_a_default_outside_the_space_moves_to_the_nearest_value(tmp_path):
    space = tmp_path / "narrow.yaml"
    space.write_text("parameters:\n  learning_rate: {low: 1.0e-3, high: 1.0e-2, log: true}\n"
                     "  hidden_size: {choices: [256, 512]}\n")
    settings = cli_settings(tmp_path, "--space", str(space))
    assert settings.incumbent["learning_rate"] == 1e-3
    assert settings.incumbent["hidden_size"] == 256  # 64's nearest in log space


def test_the_named_incumbent_is_checked_against_the_space(tmp_path, capsys):
    named = tmp_path / "inc.json"
    named.write_text(json.dumps({"learning_rate": 2e-4, "num_epochs": 4}))
    settings = cli_settings(tmp_path, "--incumbent", str(named))
    assert settings.incumbent == {**control_params(), "learning_rate": 2e-4, "num_epochs": 4}
    named.write_text(json.dumps({"learning_rate": 0.5}))
    code = tune_main(["--incumbent", str(named), "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "learning_rate=0.5 is outside" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_trial_0_is_the_incumbent_and_a_resume_does_not_queue_it_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    incumbent = {**control_params(), "learning_rate": 2e-4}
    settings = TuneSettings(storage=url, study_name="inc", num_steps=4096, space="full",
                            incumbent=incumbent)
    study = open_study(settings)
    space = settings.search_space()
    first = run_asks(study, space, 3)
    assert first[0] == incumbent
    trials = study.get_trials()
    assert trials[0].user_attrs["incumbent"] is True
    assert not any(t.user_attrs.get("incumbent") for t in trials[1:])
    assert trials[0].state == TrialState.COMPLETE  # a normal trial: the sampler sees it
    resumed = open_study(TuneSettings(storage=url, study_name="inc", num_steps=4096,
                                      space="full", incumbent=incumbent))
    assert not resumed.get_trials(states=(TrialState.WAITING,))
    run_asks(resumed, space, 1)
    assert sum(bool(t.user_attrs.get("incumbent")) for t in resumed.get_trials()) == 1


def test_without_the_incumbent_the_same_seed_samples_todays_trials():
    """--no-incumbent on the full space: the define-by-run asks sample exactly what the
    define-and-run `study.ask(SEARCH_SPACE)` sampled before spaces became data."""
    settings = TuneSettings(space="full", seed=5)
    space = settings.search_space()
    before = optuna.create_study(direction="maximize", sampler=make_sampler(settings, 0))
    now = optuna.create_study(direction="maximize", sampler=make_sampler(settings, 0))
    old = []
    for _ in range(14):  # past TPE's 10 random startup trials
        trial = before.ask(SEARCH_SPACE)
        before.tell(trial, fake_value(trial.params))
        old.append(trial.params)
    assert run_asks(now, space, 14) == old


@pytest.mark.parametrize("name", [s for s in SAMPLERS if s != "gp"])
def test_each_sampler_proposes_inside_the_space(name):
    if name == "cmaes":
        pytest.importorskip("cmaes")
    incumbent = {**control_params(), "learning_rate": 2e-4}
    settings = TuneSettings(space="small", sampler=name, seed=3)
    sampler = make_sampler(settings, 0, incumbent)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(incumbent, user_attrs={"incumbent": True})
    space = settings.search_space()
    rows = run_asks(study, space, 6)
    assert rows[0] == incumbent
    for row in rows:
        assert row["hidden_size"] in (64, 128)
        assert 1e-5 <= row["learning_rate"] <= 1e-3
    assert len({r["learning_rate"] for r in rows}) == 6


def test_cmaes_starts_at_the_incumbent():
    """CMA-ES's first generation is centred on the incumbent: its learning rates lie near
    2e-4 in log space, where random draws over 1e-5..1e-3 would spread over the range."""
    pytest.importorskip("cmaes")
    incumbent = {**control_params(), "learning_rate": 2e-4}
    settings = TuneSettings(space="small", sampler="cmaes", seed=3)
    study = optuna.create_study(direction="maximize",
                                sampler=make_sampler(settings, 0, incumbent))
    study.enqueue_trial(incumbent)
    rows = run_asks(study, settings.search_space(), 8)
    import math

    spread = [abs(math.log10(r["learning_rate"] / 2e-4)) for r in rows[1:]]
    assert max(spread) < 0.8  # sigma0 0.1 of a 2-decade range: 0.2 decades per SD


def test_gp_sampler_is_optunas_gp():
    pytest.importorskip("torch")
    settings = TuneSettings(space="small", sampler="gp")
    assert isinstance(make_sampler(settings, 0), optuna.samplers.GPSampler)


def test_a_study_records_its_sampler_and_a_resume_checks_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(TuneSettings(storage=url, study_name="s", num_steps=4096,
                                    sampler="random"))
    assert study.user_attrs["sampler"] == "random"
    with pytest.raises(StudyMismatchError, match="was created with --sampler random, this run "
                                                 "asks for tpe"):
        open_study(TuneSettings(storage=url, study_name="s", num_steps=4096, sampler="tpe"))


def test_an_unknown_sampler_is_one_line_naming_the_choices(tmp_path, capsys):
    code = tune_main(["--sampler", "bogus", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert all(name in err for name in SAMPLERS)


def test_a_sampler_without_its_package_is_refused_naming_the_usable_ones(tmp_path, capsys,
                                                                       monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torch", "cmaes") else find_spec(
                            name, *a))
    code = tune_main(["--sampler", "cmaes", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--sampler cmaes needs the cmaes package" in err, err
    assert "valid samplers here: random, tpe" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
