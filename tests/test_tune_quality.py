"""The tuning-quality benchmark in its smoke form: three strategies tune, then validate against
the control on the same fresh seeds."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tune_quality_quick(tmp_path):
    out = tmp_path / "quality.json"
    proc = subprocess.run([sys.executable, "benchmarks/tune_quality.py", "--quick", "--out",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    rows = results["rows"]
    assert [r["strategy"] for r in rows] == ["a_one_seed_latest_median",
                                              "b_k_seeds_evidence_median", "c_k_seeds_sha"]
    # equal env-step budgets before pruning: twice the trials with one seed
    assert rows[0]["n_trials"] == 2 * rows[1]["n_trials"] == 2 * rows[2]["n_trials"]
    seeds = {tuple(r["validation_seeds"]) for r in rows}
    assert len(seeds) == 1, "every strategy is validated on the same fresh seeds"
    for row in rows:
        best = row["best_trial"]
        assert best["tuning_minus_validated"] == pytest.approx(best["tuning_value"]
                                                       - best["validated_mean"])
        assert {"mean", "ci95", "significant"} <= set(best["vs_control"])
        assert row["env_steps"] > 0 and row["tune_s"] >= 0
