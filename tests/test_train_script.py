"""scripts/train_simple.py end to end: a tiny two-seed run and every file it writes, the
scenario list, usage errors (exit code 2, one line on stderr), and checkpoint loading."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig
from bb_jax.cli import train_main
from bb_jax.game.scenarios import list_scenarios
from bb_jax.runtime.saved_runs import load_params

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_simple.py"
SEEDS = (1, 2)
NUM_STEPS, BATCH, HIDDEN = 8192, 512, 32
NUM_UPDATES = NUM_STEPS // BATCH
METRIC_KEYS = {"seed", "update", "mean_return", "episodes", "env_steps", "policy_loss",
               "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
               "finite"}


def _script(*args, cwd=ROOT, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], check=False, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    save, results = out / "save", out / "results" / "summary.json"
    proc = _script("--scenario", "easy", "--num-steps", NUM_STEPS, "--batch-size", BATCH,
                   "--hidden-size", HIDDEN, "--seeds", *SEEDS, "--eval-episodes", 20,
                   "--chunk-updates", 8, "--run-name", "tiny", "--save-path", save,
                   "--results-json", results)
    assert proc.returncode == 0, proc.stderr
    return proc, save, results


def _config():
    return PPOConfig(scenario="easy", hidden_size=HIDDEN, batch_size=BATCH,
                     total_steps=NUM_STEPS)


@pytest.mark.slow
def test_run_prints_progress_and_summary(tiny_run):
    proc, save, _ = tiny_run
    assert "final return" in proc.stdout
    assert str(save) in proc.stdout
    progress = [line for line in proc.stdout.splitlines() if line.startswith("steps ")]
    assert len(progress) == NUM_UPDATES // 8  # one line per chunk of 8 updates


@pytest.mark.slow
def test_config_json(tiny_run):
    _, save, _ = tiny_run
    data = json.loads((save / "config.json").read_text())
    assert data["run_name"] == "tiny" and data["seeds"] == list(SEEDS)
    assert data["config"]["scenario"] == "easy"
    assert data["config"]["hidden_size"] == HIDDEN
    assert data["config"]["batch_size"] == BATCH
    assert data["config"]["total_steps"] == NUM_STEPS
    assert data["hyperparameters"]["num_epochs"] == DEFAULT_HYPERPARAMS["num_epochs"]


@pytest.mark.slow
def test_metrics_jsonl(tiny_run):
    _, save, _ = tiny_run
    lines = (save / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(SEEDS) * NUM_UPDATES
    rows = [json.loads(line) for line in lines]
    for row in rows:
        assert set(row) >= METRIC_KEYS
        assert row["finite"] is True
    for seed in SEEDS:
        mine = [r for r in rows if r["seed"] == seed]
        assert [r["update"] for r in mine] == list(range(1, NUM_UPDATES + 1))
        assert [r["env_steps"] for r in mine] == [BATCH * u for u in range(1, NUM_UPDATES + 1)]
        episodes = [r["episodes"] for r in mine]
        assert episodes == sorted(episodes) and episodes[-1] > 100
        assert all(500 < r["mean_return"] < 1100 for r in mine)


@pytest.mark.slow
def test_learning_curve_png(tiny_run):
    _, save, _ = tiny_run
    data = (save / "learning_curve.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


@pytest.mark.slow
def test_results_json(tiny_run):
    _, _, results = tiny_run
    summary = json.loads(results.read_text())
    assert summary["scenario"] == "easy" and summary["seeds"] == list(SEEDS)
    final = summary["final_return"]
    assert len(final["per_seed"]) == len(SEEDS)
    assert final["mean"] == pytest.approx(np.mean(final["per_seed"]))
    assert final["ci95"] > 0 and math.isfinite(final["ci95"])
    for key in ("eval_return_sampled", "eval_return_greedy"):
        assert math.isfinite(summary[key]["mean"]) and math.isfinite(summary[key]["ci95"])
    assert summary["env_steps_total"] == NUM_STEPS * len(SEEDS)
    assert summary["hyperparameters"]["learning_rate"] == pytest.approx(
        DEFAULT_HYPERPARAMS["learning_rate"])


@pytest.mark.slow
def test_checkpoints_load(tiny_run):
    _, save, _ = tiny_run
    config = _config()
    loaded = [load_params(save / f"params_seed{seed}", config) for seed in SEEDS]
    for params in loaded:
        assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(params))
    # two seeds, two different networks
    assert any(not np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(loaded[0]), jax.tree.leaves(loaded[1])))


@pytest.mark.slow
def test_checkpoint_with_other_hidden_size_is_rejected(tiny_run):
    _, save, _ = tiny_run
    with pytest.raises(ValueError, match="does not match"):
        load_params(save / f"params_seed{SEEDS[0]}",
                    _config().replace(hidden_size=2 * HIDDEN))
    with pytest.raises(ValueError, match="does not match"):
        load_params(save / f"params_seed{SEEDS[0]}", _config().replace(num_opponents=3))


def test_list_scenarios(capsys):
    assert train_main(["--list-scenarios"]) == 0
    assert capsys.readouterr().out.split() == list_scenarios()
    assert len(list_scenarios()) == 12


@pytest.mark.parametrize("argv, valid", [
    (["--scenario", "nope"], "valid scenarios: default, easy, hard"),
    (["--scenario", "easy,nope"], "unknown scenario 'nope'"),
    (["--scenario", ","], "no scenario given"),
    (["--num-steps", "0"], "must be > 0"),
    (["--num-opponents", "10"], "1..9"),
    (["--num-epochs", "0"], "1..10"),
])
def test_bad_input_is_one_line_and_exit_code_2(argv, valid, capsys, tmp_path):
    code = train_main([*argv, "--save-path", str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("train_simple.py: error:") and valid in err


def test_script_exit_code_for_bad_input(tmp_path):
    proc = _script("--scenario", "nope", "--save-path", tmp_path / "never", timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "valid scenarios" in lines[0]
    for name in list_scenarios():
        assert name in lines[0]
    assert not (tmp_path / "never").exists()
