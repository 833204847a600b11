"""Smoke form of benchmarks/masked_path.py: both paths train and the ratio is written."""

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "masked_path.py"


def test_masked_path_benchmark_times_both_paths(tmp_path):
    spec = importlib.util.spec_from_file_location("masked_path", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "masked.json"
    assert module.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {c["path"] for c in report["cases"]} == {"exact", "padded"}
    assert all(c["env_steps_per_s"] > 0 for c in report["cases"])
    assert set(report["padded_over_exact"]) == {"32"}
    assert set(report["largest_parameter_difference"]) == {"32"}
