"""benchmarks/gpu_run.sh cannot rot: its dry run (BB_JAX_DRY_RUN=1, tiny sizes, on the CPU)
runs every step of the GPU script: the device line, one exact-agreement game test, and the
whole benchmark suite in its CI-sized mode (`run_all.py --quick`) with its JSON and plots.
The dry run compiles a dozen programs (minutes on a 2-core CPU), so it is `slow`; its quick
sibling checks that the script parses and that every benchmark, flag and test it names exists.
"""

import functools
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


@functools.cache
def _help(script: str) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--help"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_gpu_script_names_only_what_exists():
    subprocess.run(["bash", "-n", "benchmarks/gpu_run.sh"], cwd=REPO, check=True)
    spec = importlib.util.spec_from_file_location("run_all", REPO / "benchmarks" / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    for quick, gpu in ((True, False), (False, True), (False, False)):
        for name, (script, *args) in run_all.plan(quick, gpu).items():
            flags = [a for a in args if a.startswith("--")]
            missing = [f for f in [*flags, "--out"] if f not in _help(script)]
            assert not missing, f"{name}: {script} has no {missing}"
    assert "--plots-dir" in _help("run_all.py") and "--quick" in _help("run_all.py")
    # each game-test selection of the script (dry run and real) collects tests
    script = (REPO / "benchmarks" / "gpu_run.sh").read_text()
    selections = re.findall(r"^\s*game_tests=\((.*)\)$", script, flags=re.M)
    assert len(selections) == 2, selections
    for selection in selections:
        proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                               "-p", "no:cacheprovider", *shlex.split(selection)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "::" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.slow
def test_gpu_script_dry_run(tmp_path):
    out = tmp_path / "gpu"
    env = {**os.environ, "BB_JAX_DRY_RUN": "1", "PYTHON": sys.executable,
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(["bash", "benchmarks/gpu_run.sh", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "backend: cpu" in (out / "devices.txt").read_text()
    game = (out / "game_tests.txt").read_text()
    assert " passed" in game and "failed" not in game and "error" not in game, game
    assert "gpu_run.sh: exit 0" in (out / "log.txt").read_text()

    results = json.loads((out / "results.json").read_text())
    assert results["suite"] == "quick"
    assert results["versions"]["jax"] and results["machine"]["jax_backend"] == "cpu"
    bench = results["benchmarks"]
    assert set(bench) == {"env", "train", "baseline", "tune"}
    for row in bench["env"]["jax"]:
        assert {"min", "median", "max"} <= set(row["env_steps_per_s"])
        assert row["compile_s"] >= 0
    for row in bench["train"]["hidden_sweep"] + bench["train"]["population_sweep"]:
        assert row["env_steps_per_s"]["median"] > 0 and row["compile_s"] > 0
        assert 1 <= row["num_devices_used"] <= row["population"] + row["padded_members"]
    assert bench["baseline"]["baseline_trainer"]["env_steps_per_s"]["median"] > 0
    sweep = bench["tune"]["sweeps"][0]
    assert sweep["n_complete"] + sweep["n_pruned"] + sweep["n_failed"] == sweep["n_trials"]
    assert 0 < sweep["compile_s"] <= sweep["wall_s"]
    assert sweep["compiles"] >= sweep["training_programs"] >= 1
    assert sweep["members_per_program"] == sweep["n_trials"] / sweep["training_programs"]
    assert results["ratios"]["env_jax_largest_batch_vs_reference_loop"] > 0
    assert len(results["plots"]) == 4
    for plot in results["plots"]:
        assert Path(plot).read_bytes()[:8] == PNG
