"""Smoke test of the whole benchmark suite in its CI-sized mode (`run_all.py --quick`), and
the GPU script's syntax."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def test_gpu_script_parses():
    """benchmarks/gpu_run.sh needs a GPU to run; here bash checks its syntax (`bash -n`)."""
    proc = subprocess.run(["bash", "-n", "benchmarks/gpu_run.sh"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_run_all_quick_writes_json_ratios_and_plots(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert results["suite"] == "quick"
    assert results["versions"]["jax"] and results["machine"]["jax_backend"]
    bench = results["benchmarks"]
    assert set(bench) == {"env", "train", "baseline", "tune"}
    for row in bench["env"]["jax"]:
        assert {"min", "median", "max"} <= set(row["env_steps_per_s"])
        assert row["compile_s"] >= 0
    for row in bench["train"]["hidden_sweep"]:
        assert row["env_steps_per_s"]["median"] > 0 and row["compile_s"] > 0
    assert bench["baseline"]["baseline_trainer"]["env_steps_per_s"]["median"] > 0
    sweep = bench["tune"]["sweeps"][0]
    assert sweep["n_complete"] + sweep["n_pruned"] + sweep["n_failed"] == sweep["n_trials"]
    assert 0 < sweep["compile_s"] <= sweep["wall_s"]
    assert results["ratios"]["env_jax_largest_batch_vs_reference_loop"] > 0
    assert len(results["plots"]) == 4
    for plot in results["plots"]:
        assert Path(plot).read_bytes()[:8] == PNG
