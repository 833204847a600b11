"""Smoke form of benchmarks/masked_path.py: both paths train and the ratio is written."""

import json

import pytest
from benchmark_helpers import load_benchmark

pytestmark = pytest.mark.slow


def test_masked_path_benchmark_times_both_paths(tmp_path):
    module = load_benchmark("masked_path")
    out = tmp_path / "masked.json"
    assert module.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {c["path"] for c in report["cases"]} == {"exact", "padded"}
    assert all(c["env_steps_per_s"] > 0 for c in report["cases"])
    assert set(report["padded_over_exact"]) == {"32"}
    assert set(report["largest_parameter_difference"]) == {"32"}
