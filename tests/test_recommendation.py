"""The recommendation and its printing on hand-built studies (no training): both branches —
a trial that beat the control on fresh seeds, and "keep the defaults" — from a validation
outcome made by `validate` with scripted member values that carry seed noise; and the rules
behind it on synthetic per-seed values: Holm's correction over the candidates, and the
cheapest configuration within an equivalence margin, ranked by FLOPs."""

from __future__ import annotations

import json
import math
import re
import shlex

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from scipy import stats

from bb_jax.cli.tune import _print_best
from bb_jax.runtime.members import MemberResult, MemberSpec
from bb_jax.tuning.outputs import recommendation
from bb_jax.tuning.space import CONTROL, control_params
from bb_jax.tuning.validation import (
    Candidate,
    cheapest_not_worse,
    compare_with_control,
    validate,
)

SEEDS = [42500, 42501, 42502, 42503]
CONTROL_VALUES = [950.0, 960.0, 940.0, 970.0]
TUNED = {**control_params(), "learning_rate": 2e-4, "hidden_size": 64}
OTHER = {**TUNED, "learning_rate": 5e-4}
# each candidate's own seed noise around control + gain: paired differences spread
NOISE = {TUNED["learning_rate"]: [3.0, -2.0, 4.0, -1.0],
         OTHER["learning_rate"]: [6.0, -7.0, 2.0, -5.0]}


class Scripted:
    """Member values by (learning rate, seed): the control, trial 0 at +gain and trial 1 at
    +0, each candidate with its own noise (NOISE)."""

    def __init__(self, gain: float):
        self.gain = gain

    def run(self, specs):
        out = {}
        for spec in specs:
            lr, seed = spec.hyperparams["learning_rate"], SEEDS.index(spec.seed)
            value = CONTROL_VALUES[seed] + (NOISE[lr][seed] if lr in NOISE else 0.0)
            value += self.gain if lr == TUNED["learning_rate"] else 0.0
            out[spec.member_id] = MemberResult(spec.member_id, "complete", value)
        return out


def _spec(member_id, params, scenario, seed):
    return MemberSpec(member_id, params["hidden_size"], params["batch_size"],
                      {"learning_rate": params["learning_rate"]}, scenario, seed)


def _study(gain: float) -> optuna.Study:
    study = optuna.create_study(study_name="hand", direction="maximize")
    study.set_user_attr("scenarios", ["default"])
    study.set_user_attr("num_opponents", 2)
    for lr, value in ((TUNED["learning_rate"], 1001.0), (OTHER["learning_rate"], 999.0)):
        study.add_trial(optuna.trial.create_trial(
            params={"hidden_size": 64, "learning_rate": lr},
            distributions={"hidden_size": CategoricalDistribution([64, 128]),
                           "learning_rate": FloatDistribution(1e-5, 1e-3, log=True)},
            value=value))
    candidates = [Candidate(0, TUNED, 1001.0), Candidate(1, OTHER, 999.0),
                  Candidate(CONTROL, control_params(), None)]
    outcome = validate(candidates, _spec, Scripted(gain), ["default"], SEEDS)
    outcome.update(num_steps=8192, flop_budget=None, eval_episodes=50)
    for row in outcome["rows"]:
        row.update(train_seconds_per_run=2.0, tflops_per_run=0.1)
    study.set_user_attr("validation", outcome)
    return study


def _flags(command: str) -> dict:
    words = shlex.split(command)
    return {w: words[i + 1] for i, w in enumerate(words) if w.startswith("--") and w != "--seeds"}


def _by_hand(diff: list[float], level: float) -> tuple[float, float, float]:
    """(mean, half-width at `level`, two-sided p) of a paired t-test, from the textbook
    formulas (numpy and scipy's t distribution, not the code under test)."""
    d = np.asarray(diff)
    se = d.std(ddof=1) / math.sqrt(d.size)
    t = d.mean() / se
    return (float(d.mean()), float(stats.t.ppf(0.5 + level / 2, d.size - 1) * se),
            float(2 * stats.t.sf(abs(t), d.size - 1)))


def test_a_trial_that_beat_the_control_is_recommended_and_printed(capsys):
    study = _study(gain=12.0)
    rec = recommendation(study)
    assert rec["beats_control"] and rec["trial"] == 0
    # 12 + NOISE: mean 13, and an interval of real width, adjusted over the 2 candidates
    mean, half, p0 = _by_hand([12.0 + n for n in NOISE[TUNED["learning_rate"]]], 0.95)
    _, wide, _ = _by_hand([12.0 + n for n in NOISE[TUNED["learning_rate"]]], 0.975)
    _, _, p1 = _by_hand(NOISE[OTHER["learning_rate"]], 0.95)
    p_holm = max(2 * min(p0, p1), p0 if p0 > p1 else 0.0)
    assert mean == pytest.approx(13.0) and half > 4.0 and wide > half
    vs = rec["vs_control"]
    assert (vs["mean"], vs["ci95"], vs["ci_simultaneous"], vs["p_holm"]) == pytest.approx(
        (mean, half, wide, p_holm))
    assert vs["simultaneous_level"] == pytest.approx(0.975) and vs["correction"] == "holm"
    assert rec["correction"] == {"method": "holm", "family": 2, "alpha": 0.05}
    assert rec["seeds"] == SEEDS and "beat the default configuration" in rec["summary"]
    flags = _flags(rec["train_command"])
    assert flags["--lr"] == repr(TUNED["learning_rate"]) and flags["--hidden-size"] == "64"
    assert flags["--num-steps"] == "8192" and flags["--eval-episodes"] == "50"
    assert flags["--run-name"] == "hand_recommended"
    _print_best(study, 1.0, 2.0)
    out = capsys.readouterr().out
    assert "recommendation: trial 0 beat the default configuration on 4 fresh seeds" in out
    assert (f"+13.00 +/- {half:.2f} over the default configuration (paired 95% CI; "
            f"+/- {wide:.2f} at 97.5% simultaneous, Bonferroni; Holm-adjusted p "
            f"{p_holm:.3g})") in out
    assert f"vs control +13.00 +/- {half:.2f} [+/- {wide:.2f}], Holm p {p_holm:.3g} *" in out
    assert f"train it with:\n  {rec['train_command']}\n" in out
    assert "keep the defaults" not in out


def test_no_gain_keeps_the_defaults_and_prints_their_command(capsys):
    study = _study(gain=-3.0)
    rec = recommendation(study)
    assert not rec["beats_control"] and rec["trial"] == CONTROL
    assert rec["params"] == control_params()
    assert "Holm-adjusted over 2 candidate(s)" in rec["summary"]
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
