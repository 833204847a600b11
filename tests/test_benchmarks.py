"""Smoke test of the benchmark suite's orchestration (a CI-sized subset: env and baseline)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_run_all_quick_writes_json_ratios_and_plots(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--quick", "--only", "env", "baseline",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert results["suite"] == "quick"
    assert results["versions"]["jax"] and results["machine"]["jax_backend"]
    env = results["benchmarks"]["env"]
    for row in env["jax"]:
        assert {"min", "median", "max"} <= set(row["env_steps_per_s"])
        assert row["compile_s"] >= 0
    assert results["benchmarks"]["baseline"]["baseline_trainer"]["env_steps_per_s"]["median"] > 0
    assert results["ratios"]["env_jax_largest_batch_vs_reference_loop"] > 0
    plot = tmp_path / "env_steps_vs_batch.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
