"""The tuner benchmark and the transfer benchmark: their summaries and argument checks (CI
tier, nothing trained) and their --quick runs' JSON (slow: several minutes on a 2-core CPU)."""

from __future__ import annotations

import json
import sys

import pytest
from benchmark_helpers import load_benchmark


@pytest.fixture
def modules(monkeypatch):
    """(tuner_runs, tuner_benchmark, transfer), the latter two importing the first by name as
    they do when run as scripts."""
    runs = load_benchmark("tuner_runs")
    monkeypatch.setitem(sys.modules, "tuner_runs", runs)
    return runs, load_benchmark("tuner_benchmark"), load_benchmark("transfer")


def results(control: list[float], picks: dict[int, list[float]], recommended=None) -> dict:
    """A study's results JSON as write_outputs shapes it (only the keys read here)."""
    rows = [{"trial": "control", "mean": sum(control) / len(control), "ci95": 1.0,
             "per_seed": control}]
    rows += [{"trial": t, "tuning_value": 900.0 + t, "mean": sum(v) / len(v), "ci95": 2.0,
              "per_seed": v, "vs_control": {"mean": 0.0, "ci95": 1.0}} for t, v in picks.items()]
    rec = {"beats_control": recommended is not None, "trial": recommended, "params": {},
           "validated_mean": 0.0, "validated_ci95": 0.0, "vs_control": {}}
    return {"n_trials": 5, "n_complete": 3, "n_pruned": 2, "best_value": 950.0,
            "best_trial": 4, "auto_rule": None, "recommendation": rec,
            "validation": {"seeds": [7, 8, 9], "rows": rows}}


def test_summary_keeps_tuning_value_beside_the_best_validated(modules):
    runs, _, _ = modules
    row = runs.summarise(results([10, 20, 30], {3: [11, 21, 31], 4: [5, 6, 7]}))
    assert row["best_tuning_value"] == 950.0 and row["best_trial"] == 4
    assert row["best_validated"]["trial"] == 3  # validated best, not the best tuning value
    assert row["best_validated"]["tuning_value"] == 903.0
    assert row["control"]["mean"] == 20 and not row["recommended"]
    assert row["recommendation"] is None


def test_picks_pair_only_on_the_same_seeds(modules):
    runs, _, _ = modules
    a = runs.summarise(results([1, 2, 3], {1: [12, 22, 32]}, recommended=1))
    b = runs.summarise(results([1, 2, 3], {2: [10, 20, 30]}))
    diff = runs.paired_pick(a, b)
    assert diff["mean"] == pytest.approx(2.0) and diff["ci95"] == pytest.approx(0.0)
    assert a["recommended"] and a["recommendation"]["trial"] == 1
    b["validation_seeds"] = [1, 2, 3]
    assert runs.paired_pick(a, b) is None
    assert runs.paired_pick(a, {"error": "x"}) is None


@pytest.mark.parametrize("argv, names", [
    (["--scenario", "easy,rest_trap"], "easy"),
    (["--samplers", "random,nope"], "nope"),
])
def test_benchmark_refuses_bad_input(modules, tmp_path, capsys, argv, names):
    _, bench, _ = modules
    out = tmp_path / "t.json"
    assert bench.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and names in err[0] and not out.exists()


@pytest.mark.parametrize("pairs", ["rest_trap", "rest_trap:rest_trap", "rest_trap:nope"])
def test_transfer_refuses_bad_pairs(modules, tmp_path, capsys, pairs):
    _, _, transfer = modules
    out = tmp_path / "x.json"
    assert transfer.main(["--pairs", pairs, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and not out.exists()


def test_benchmark_default_scenarios_avoid_the_tuned_ones(modules):
    _, bench, _ = modules
    assert len(bench.SCENARIOS) >= 6 and not set(bench.SCENARIOS) & set(bench.EXCLUDED)


@pytest.mark.slow
def test_tuner_benchmark_quick(modules, tmp_path):
    _, bench, _ = modules
    out = tmp_path / "t.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    (row,) = data["scenarios"]
    default, random_row = row["default"], row["samplers"]["random"]
    for study in (default, random_row):
        assert study["n_trials"] >= 3 and study["wall_s"] > 0
        assert study["control"]["per_seed"] and len(study["validation_seeds"]) == 2
    assert default["validation_seeds"] == random_row["validation_seeds"]
    assert (row["rerun"] is None) == default["recommended"]
    if row["rerun"] is not None:
        assert row["rerun"]["n_trials"] >= 4 * 3


@pytest.mark.slow
def test_transfer_quick(modules, tmp_path):
    _, _, transfer = modules
    out = tmp_path / "x.json"
    assert transfer.main(["--quick", "--out", str(out)]) == 0
    (pair,) = json.loads(out.read_text())["pairs"]
    studies = pair["studies"]
    assert set(studies) == {"a", "b_cold", "b_warm", "b_warm_half", "joint"}
    assert all("error" not in s for s in studies.values()), studies
    # the warm study starts with the source's configurations beside its own trials
    assert studies["b_warm_half"]["n_trials"] >= 1
    assert isinstance(pair["transfers"], bool)


@pytest.mark.parametrize("code", [130, 143])
def test_an_interrupted_study_stops_the_benchmark(modules, tmp_path, monkeypatch, code):
    """tune_main returns 130/143 after Ctrl-C/SIGTERM: the benchmark must not go on to the
    next study."""
    runs, _, _ = modules
    monkeypatch.setattr(runs, "tune_main", lambda argv: code)
    with pytest.raises(KeyboardInterrupt):
        runs.run_study("s", ["--scenario", "rest_trap"], tmp_path, print)


def test_a_failed_study_is_an_error_row(modules, tmp_path, monkeypatch):
    runs, _, _ = modules
    monkeypatch.setattr(runs, "tune_main", lambda argv: 1)
    row = runs.run_study("s", ["--scenario", "rest_trap"], tmp_path, lambda text: None)
    assert row["error"] and row["study"] == "s"
