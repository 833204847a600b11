"""The recommendation and its printing on hand-built studies (no training): both branches —
a trial that beat the control on fresh seeds, and "keep the defaults" — from a validation
outcome made by `validate` with scripted member values."""

from __future__ import annotations

import json
import re
import shlex

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from bb_jax.cli.tune import _print_best
from bb_jax.runtime.members import MemberResult, MemberSpec
from bb_jax.tuning.outputs import recommendation
from bb_jax.tuning.space import CONTROL, control_params
from bb_jax.tuning.validation import Candidate, validate

SEEDS = [42500, 42501, 42502, 42503]
CONTROL_VALUES = [950.0, 960.0, 940.0, 970.0]
TUNED = {**control_params(), "learning_rate": 2e-4, "hidden_size": 64}


class Scripted:
    """Member values by (learning rate, seed): the control, and trial 0 at +gain."""

    def __init__(self, gain: float):
        self.gain = gain

    def run(self, specs):
        out = {}
        for spec in specs:
            base = CONTROL_VALUES[SEEDS.index(spec.seed)]
            tuned = spec.hyperparams["learning_rate"] == TUNED["learning_rate"]
            out[spec.member_id] = MemberResult(spec.member_id, "complete",
                                               base + (self.gain if tuned else 0.0))
        return out


def _spec(member_id, params, scenario, seed):
    return MemberSpec(member_id, params["hidden_size"], params["batch_size"],
                      {"learning_rate": params["learning_rate"]}, scenario, seed)


def _study(gain: float) -> optuna.Study:
    study = optuna.create_study(study_name="hand", direction="maximize")
    study.set_user_attr("scenarios", ["default"])
    study.set_user_attr("num_opponents", 2)
    study.add_trial(optuna.trial.create_trial(
        params={"hidden_size": 64, "learning_rate": TUNED["learning_rate"]},
        distributions={"hidden_size": CategoricalDistribution([64, 128]),
                       "learning_rate": FloatDistribution(1e-5, 1e-3, log=True)},
        value=1001.0))
    candidates = [Candidate(0, TUNED, 1001.0), Candidate(CONTROL, control_params(), None)]
    outcome = validate(candidates, _spec, Scripted(gain), ["default"], SEEDS)
    outcome.update(num_steps=8192, flop_budget=None, eval_episodes=50)
    for row in outcome["rows"]:
        row.update(train_seconds_per_run=2.0, tflops_per_run=0.1)
    study.set_user_attr("validation", outcome)
    return study


def _flags(command: str) -> dict:
    words = shlex.split(command)
    return {w: words[i + 1] for i, w in enumerate(words) if w.startswith("--") and w != "--seeds"}


def test_a_trial_that_beat_the_control_is_recommended_and_printed(capsys):
    study = _study(gain=12.0)
    rec = recommendation(study)
    assert rec["beats_control"] and rec["trial"] == 0
    assert rec["vs_control"]["mean"] == pytest.approx(12.0)
    assert rec["seeds"] == SEEDS and "beat the default configuration" in rec["summary"]
    flags = _flags(rec["train_command"])
    assert flags["--lr"] == repr(TUNED["learning_rate"]) and flags["--hidden-size"] == "64"
    assert flags["--num-steps"] == "8192" and flags["--eval-episodes"] == "50"
    assert flags["--run-name"] == "hand_recommended"
    _print_best(study, 1.0, 2.0)
    out = capsys.readouterr().out
    assert "recommendation: trial 0 beat the default configuration on 4 fresh seeds" in out
    assert "+12.00 +/- 0.00 over the default configuration (paired)" in out
    assert f"train it with:\n  {rec['train_command']}\n" in out
    assert "keep the defaults" not in out


def test_no_gain_keeps_the_defaults_and_prints_their_command(capsys):
    study = _study(gain=-3.0)
    rec = recommendation(study)
    assert not rec["beats_control"] and rec["trial"] == CONTROL
    assert rec["params"] == control_params()
    flags = _flags(rec["train_command"])
    assert flags["--lr"] == repr(control_params()["learning_rate"])
    assert flags["--run-name"] == "hand_control"
    _print_best(study, 1.0, 2.0)
    out = capsys.readouterr().out
    assert "keep the defaults" in out and "\ntrain it with:" not in out
    assert f"train the defaults with:\n  {rec['train_command']}\n" in out


def test_no_validation_means_no_recommendation(capsys):
    study = _study(gain=12.0)
    study.set_user_attr("validation", None)
    assert recommendation(study) is None
    _print_best(study, 1.0, 0.0)
    assert "not validated (--no-validate)" in capsys.readouterr().out


def test_a_return_and_cost_study_writes_its_pareto_front_offline(tmp_path):
    """The outputs of a multi-objective study (hand-built: return up, TFLOPs down): the
    results JSON names the front, and every HTML page, the Pareto front's included, loads
    plotly from the local copy beside it, never from the network."""
    from bb_jax.tuning.outputs import write_outputs
    from bb_jax.tuning.space import SEARCH_SPACE

    study = optuna.create_study(study_name="front", directions=["maximize", "minimize"])
    study.set_user_attr("objectives", ["return", "cost"])
    points = [(950.0, 0.5), (960.0, 1.0), (955.0, 2.0), (940.0, 0.2)]  # (955, 2.0) dominated
    for value, tflops in points:
        trial = study.ask(SEARCH_SPACE)
        trial.set_user_attr("tflops_per_run", tflops)
        trial.set_user_attr("train_seconds", 10 * tflops)
        trial.set_user_attr("env_steps", 4096)
        study.tell(trial, [value, tflops])
    paths = write_outputs(study, None, tmp_path)
    results = json.loads(paths["results"].read_text())
    assert sorted(results["pareto_front"]) == [0, 1, 3]
    pages = sorted(tmp_path.glob("*.html"))
    assert {p.name for p in pages} == {f"front_{k}.html" for k in (
        "history", "importances", "parallel", "intermediate", "cost", "pareto")}
    for page in pages:
        html = page.read_text()
        assert 'src="plotly.min.js"' in html, page.name
        assert not re.search(r"""src=["']?https?:""", html), page.name
        assert "cdn.plot.ly" not in html
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
