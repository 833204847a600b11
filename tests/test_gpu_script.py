"""benchmarks/gpu_run.sh cannot rot: its dry run (BB_JAX_DRY_RUN=1, tiny sizes, on the CPU)
runs every step of the GPU script: the device line, one exact-agreement game test, and the
whole benchmark suite in its CI-sized mode (`run_all.py --quick`) with its JSON and plots.
The dry run compiles a dozen programs (minutes on a 2-core CPU), so it is `slow`; its quick
sibling checks that the script parses and that every benchmark, flag and test it names exists.
"""

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


def _outputs(commands: dict[str, list[str]]) -> dict[str, str]:
    """Each command's stdout, the commands run side by side (each starts Python and JAX:
    seconds, mostly on one core); any that fails fails the test."""
    procs = {name: subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "PYTHONPATH": str(REPO)})
             for name, argv in commands.items()}
    outputs = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {err[-2000:]}"
        outputs[name] = out
    return outputs


def test_gpu_script_names_only_what_exists():
    subprocess.run(["bash", "-n", "benchmarks/gpu_run.sh"], cwd=REPO, check=True)
    spec = importlib.util.spec_from_file_location("run_all", REPO / "benchmarks" / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    plans = [run_all.plan(quick, gpu) for quick, gpu in ((True, False), (False, True),
                                                         (False, False))]
    scripts = {"run_all.py"} | {script for plan in plans for script, *_ in plan.values()}
    commands = {script: [sys.executable, str(REPO / "benchmarks" / script), "--help"]
                for script in scripts}
    # each game-test selection of the script (dry run and real) collects tests
    script = (REPO / "benchmarks" / "gpu_run.sh").read_text()
    selections = re.findall(r"^\s*game_tests=\((.*)\)$", script, flags=re.M)
    assert len(selections) == 2, selections
    for i, selection in enumerate(selections):
        commands[f"selection {i}"] = [sys.executable, "-m", "pytest", "--collect-only", "-q",
                                      "-p", "no:cacheprovider", *shlex.split(selection)]
    outputs = _outputs(commands)
    for plan in plans:
        for name, (script, *args) in plan.items():
            flags = [a for a in args if a.startswith("--")]
            missing = [f for f in [*flags, "--out"] if f not in outputs[script]]
            assert not missing, f"{name}: {script} has no {missing}"
    assert "--plots-dir" in outputs["run_all.py"] and "--quick" in outputs["run_all.py"]
    for i in range(len(selections)):
        assert "::" in outputs[f"selection {i}"], outputs[f"selection {i}"][-2000:]


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
