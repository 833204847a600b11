"""The compute-aware tuning benchmark in its smoke form: four tuners, their picks and the
control validated on the same fresh seeds at one FLOP budget."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig
from bb_jax.runtime.cost import flops_per_env_step

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tune_cost_quick(tmp_path):
    out = tmp_path / "cost.json"
    proc = subprocess.run([sys.executable, "benchmarks/tune_cost.py", "--quick", "--out",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    budget = results["settings"]["flop_budget"]
    # the step budget is what the defaults train in the FLOP budget: equal compute for them
    per_step = flops_per_env_step(PPOConfig(), DEFAULT_HYPERPARAMS["num_epochs"])
    steps = results["step_budget_steps"]
    assert steps * per_step <= budget < (steps + PPOConfig.batch_size) * per_step
    (entry,) = results["scenarios"]
    names = ["step_budget", "compute_budget", "random_budget", "multi_objective"]
    assert all(entry[n]["n_trials"] == 2 for n in names)
    assert entry["multi_objective"]["front"], "a multi-objective study has a Pareto front"
    validation = entry["validation"]
    rows = {r["trial"]: r for r in validation["rows"]}
    # a configuration two strategies picked trains once; its row stands for both
    assert set(rows) | set(validation["same_pick"]) == {*names, "control"}
    assert set(validation["same_pick"].values()) <= set(rows)
    assert set(validation["vs_control"]) == {*names, "compute_budget_vs_step_budget"}
    for row in rows.values():
        # every candidate trained on the same fresh seeds at the same FLOP budget
        assert len(row["per_seed"]) == len(validation["seeds"]) == 2
        assert row["tflops_per_run"] * 1e12 <= budget * 1.0001
    assert not set(validation["seeds"]) & {42000, 42001}, "validation seeds are fresh"
    assert results["compute_aware_wins"] == int(entry["compute_aware_wins"])
    assert (out.parent / "cost_pareto.png").stat().st_size > 0

    # the same picks again on other fresh seeds, kept beside the first validation
    again = [sys.executable, "benchmarks/tune_cost.py", "--revalidate", "--out", str(out),
             "--validate-seeds", "3", "--validate-seed-start", "43000"]
    proc = subprocess.run(again, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stored = json.loads(out.read_text())
    assert stored["scenarios"] == results["scenarios"], "tuning and first validation unchanged"
    (revalidation,) = stored["revalidations"]
    assert revalidation["seeds"] == [43000, 43001, 43002]
    rows = {r["trial"]: r for r in revalidation["scenarios"][0]["validation"]["rows"]}
    assert {n: r["params"] for n, r in rows.items()} == {
        r["trial"]: r["params"] for r in validation["rows"]}, "the same picks, validated again"
    assert all(len(r["per_seed"]) == 3 for r in rows.values())
    # a seed block that overlaps an earlier validation is refused, nothing written
    before = out.read_text()
    proc = subprocess.run(again, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 2 and "used by an earlier validation" in proc.stderr
    assert out.read_text() == before


@pytest.mark.slow
def test_defaults_per_second_quick(tmp_path):
    """benchmarks/defaults_per_second.py --quick: a time-budget study (calibrated once), then
    its pick, the defaults and the previous defaults on the same fresh seeds at the same FLOP
    budget, paired."""
    out = tmp_path / "dps.json"
    proc = subprocess.run([sys.executable, "benchmarks/defaults_per_second.py", "--quick",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    budget = results["flop_budget"]
    calibration = results["calibration"]
    assert budget == pytest.approx(calibration["flops_per_second"] * 0.5)
    rows = {r["trial"]: r for r in results["validation"]["rows"]}
    assert {"control", "previous_defaults"} <= set(rows) and len(rows) == 3
    assert (rows["previous_defaults"]["params"]["hidden_size"],
            rows["previous_defaults"]["params"]["batch_size"]) == (128, 1024)
    for row in rows.values():
        assert len(row["per_seed"]) == 2
        assert row["tflops_per_run"] * 1e12 <= budget * 1.0001
    # at equal FLOPs the dearer network trains fewer env steps
    assert rows["previous_defaults"]["num_steps"] < rows["control"]["num_steps"]
