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
    default_margin,
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


def _rows(values: np.ndarray, tflops=None) -> list[dict]:
    """Validation rows of synthetic per-seed values (candidates x seeds)."""
    return [{"trial": i, "per_seed": v.tolist(), "n_failed": 0, "mean": float(v.mean()),
             "tflops_per_run": 1.0 if tflops is None else tflops[i]}
            for i, v in enumerate(values)]


def test_holm_keeps_false_recommendations_at_5_percent_among_5_candidates():
    """Five candidates no better than the control (seed SD 10, 8 seeds, 300 draws): the
    unadjusted rule (any raw 95% CI above zero) recommends one about 10% of the time, the
    Holm-adjusted rule at most 5%."""
    rng = np.random.default_rng(7)
    holm_hits = raw_hits = 0
    for _ in range(300):
        values = 1000.0 + 10.0 * rng.standard_normal((6, 8))
        rows = _rows(values[:5])
        compare_with_control(rows, values[5].tolist())
        holm_hits += any(r["vs_control"]["beats_control"] for r in rows)
        raw_hits += any(r["vs_control"]["significant"] for r in rows)
    assert holm_hits / 300 <= 0.05 < 0.08 <= raw_hits / 300


class Table:
    """Member values by (learning rate, seed index); every run costs its epochs x 1e11 FLOPs
    and the same 0.245 s (its equal share of one population's wall time)."""

    def __init__(self, values: dict):
        self.values = values

    def run(self, specs):
        return {s.member_id: MemberResult(
            s.member_id, "complete", self.values[s.hyperparams["learning_rate"]][s.seed],
            flops=s.hyperparams.get("num_epochs", 5) * 1e11, seconds=0.245) for s in specs}


def _table_spec(member_id, params, scenario, seed):
    return MemberSpec(member_id, 64, 512, {"learning_rate": params["learning_rate"],
                                           "num_epochs": params["num_epochs"]},
                      scenario, seed)


def _candidates(*lrs_epochs):
    rows = [Candidate(i, {"learning_rate": lr, "num_epochs": e}, None)
            for i, (lr, e) in enumerate(lrs_epochs)]
    return rows + [Candidate(CONTROL, {"learning_rate": 1.0, "num_epochs": 5}, None)]


CONTROL_6 = [950.0, 962.0, 941.0, 968.0, 955.0, 946.0]


def test_a_gain_significant_alone_is_not_recommended_among_three():
    """Trial 0 gains +4 with a raw 95% CI above zero (p about 0.04): the old rule
    recommended it; among three candidates Holm's adjusted p (3 x p) is above 0.05."""
    gain = [6.0, 0.0, 8.0, -1.0, 5.0, 6.0]
    values = {1.0: CONTROL_6, 0.1: [c + g for c, g in zip(CONTROL_6, gain, strict=True)],
              0.2: [c + n for c, n in zip(CONTROL_6, [4, -6, 3, -2, 5, -4], strict=True)],
              0.3: [c + n for c, n in zip(CONTROL_6, [-3, 2, -5, 6, -1, 1], strict=True)]}
    out = validate(_candidates((0.1, 5), (0.2, 5), (0.3, 5)), _table_spec,
                   Table(values), ["default"], list(range(6)))
    row = next(r for r in out["rows"] if r["trial"] == 0)["vs_control"]
    _, _, p = _by_hand(gain, 0.95)
    assert row["significant"] and row["mean"] - row["ci95"] > 0 and p < 0.05
    assert row["p_holm"] == pytest.approx(3 * p) and row["p_holm"] > 0.05
    assert row["mean"] - row["ci_simultaneous"] < 0  # the printed simultaneous CI agrees
    assert not row["beats_control"] and out["recommended"] is None


def test_a_candidate_one_sd_worse_is_not_called_not_worse():
    """A cheap candidate truly 1 SD (10) worse than an expensive one, 8 seeds, 300 draws:
    non-significance (the old rule) called it not worse about half the time; the margin
    rule (default: half the control's SD) names it at most 5% of the time."""
    rng = np.random.default_rng(3)
    named = old = 0
    for _ in range(300):
        values = 1000.0 + 10.0 * rng.standard_normal((3, 8))
        values[1] -= 10.0
        rows = _rows(values[:2], tflops=[1.0, 0.3])
        margin = default_margin(values[2].tolist())
        named += cheapest_not_worse(rows, margin) == 1
        vs = rows[1]["vs_best"]
        old += vs["best"] == 1 or vs["mean"] + vs["ci95"] >= 0
    assert named / 300 <= 0.05 and old / 300 > 0.4


def test_the_cheapest_is_ranked_by_flops_not_by_shared_seconds():
    """A 3-epoch and a 10-epoch member of one population get the same share of its seconds;
    the 3-epoch one (0.3 vs 1.0 TFLOP per run, 1 below the 10-epoch one, within the margin)
    is the cheapest; the rows say what the choice rested on."""
    values = {1.0: CONTROL_6,
              0.1: [c + 20 for c in CONTROL_6],
              0.2: [c + 19 + n for c, n in zip(CONTROL_6, [0.5, -0.5, 0.3, -0.2, 0.1, -0.2],
                                                strict=True)]}
    out = validate(_candidates((0.1, 10), (0.2, 3)), _table_spec, Table(values),
                   ["default"], list(range(6)))
    rows = {r["trial"]: r for r in out["rows"]}
    assert rows[0]["train_seconds_per_run"] == rows[1]["train_seconds_per_run"]
    assert (rows[0]["tflops_per_run"], rows[1]["tflops_per_run"]) == pytest.approx((1.0, 0.3))
    assert out["equivalence_margin"] == pytest.approx(0.5 * np.std(CONTROL_6, ddof=1))
    assert out["margin_rule"] == "0.5 x the control's across-seed SD"
    assert rows[1]["vs_best"]["best"] == 0 and rows[1]["vs_best"]["not_worse"]
    assert out["cheapest"] == 1
    # a margin the user sets below the 1-point gap: the 10-epoch best is the cheapest
    again = validate(_candidates((0.1, 10), (0.2, 3)), _table_spec, Table(values),
                     ["default"], list(range(6)), margin=0.5)
    assert again["cheapest"] == 0 and again["margin_rule"] == "--equivalence-margin"


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
