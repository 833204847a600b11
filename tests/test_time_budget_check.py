"""Smoke form of benchmarks/time_budget_check.py: a time-budget study whose trials report the
seconds they trained against the budget."""

import json

import pytest
from benchmark_helpers import load_benchmark

pytestmark = pytest.mark.slow


def test_time_budget_check_reports_seconds_against_the_budget(tmp_path):
    module = load_benchmark("time_budget_check")
    out = tmp_path / "check.json"
    assert module.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["calibration"]["members"] == report["runs_per_trial"] == 2
    complete = [t for t in report["trials"] if t["state"] == "COMPLETE"]
    assert len(complete) == 2
    for trial in complete:
        assert trial["seconds_over_budget"] == pytest.approx(
            trial["train_seconds"] / (0.3 * 2))
    ratios = sorted(t["seconds_over_budget"] for t in complete)
    assert report["median_seconds_over_budget"] == pytest.approx(sum(ratios) / 2)
