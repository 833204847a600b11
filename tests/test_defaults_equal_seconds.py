"""Smoke form of benchmarks/defaults_equal_seconds.py: the defaults and the previous defaults
trained for the same seconds of the device on the same seeds, paired."""

import json

import pytest
from benchmark_helpers import load_benchmark

pytestmark = pytest.mark.slow


def test_equal_seconds_buys_each_its_own_env_steps(tmp_path):
    module = load_benchmark("defaults_equal_seconds")
    out = tmp_path / "equal.json"
    assert module.main(["--quick", "--versus", "previous", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    defaults, previous = report["rows"]
    assert (defaults["name"], previous["name"]) == ("defaults", "previous")
    assert all(len(row["per_seed"]) == 2 for row in report["rows"])
    # the same seconds buy the cheaper defaults more env steps, in whole chunks
    assert defaults["env_steps_per_run"] > previous["env_steps_per_run"]
    for row in report["rows"]:
        assert row["env_steps_per_run"] % (8 * row["params"]["batch_size"]) == 0
    assert report["defaults_minus_other"]["n"] == 2
