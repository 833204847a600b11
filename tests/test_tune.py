"""The tuner end to end: a small sweep into SQLite with seeds per trial, pruning inside one
batch, validation against the control, reproducibility, resume, outputs, the printed training
command, and bounded compiles."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from bb_jax.cli import tune_main
from bb_jax.train.population import compiled, compiled_configs
from bb_jax.train.ppo import PPOConfig
from bb_jax.tuning.space import SEARCH_SPACE, tuning_seeds
from bb_jax.tuning.tuner import Tuner, TuneSettings

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["--n-trials", "6", "--population-size", "6", "--num-steps", "8192",
         "--eval-interval", "1024", "--seed", "7", "--seeds-per-trial", "2",
         "--pruner", "sha", "--min-fraction", "0.25", "--eval-episodes", "20"]
NO_VALIDATION = ("--no-validate",)
VALIDATION = ("--validate-top-k", "2", "--validate-seeds", "2")


def run_sweep(tmp: Path, name: str, *extra: str) -> dict:
    code = tune_main([*SWEEP, "--study-name", name, "--output-dir", str(tmp), *extra])
    assert code == 0
    return json.loads((tmp / f"{name}_results.json").read_text())


def compile_counts() -> dict:
    return {c: compiled(c).run_updates._cache_size() for c in compiled_configs()}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    storage = f"sqlite:///{tmp / 'study.db'}"
    before = compile_counts()
    results = run_sweep(tmp, "quick", "--storage", storage, *VALIDATION)
    after = compile_counts()
    new = {c: n - before.get(c, 0) for c, n in after.items() if n > before.get(c, 0)}
    return tmp, storage, results, new


def test_sweep_writes_every_output(sweep):
    tmp, _, results, _ = sweep
    for suffix in ("results.json", "history.html", "importances.html", "parallel.html",
                   "intermediate.html"):
        assert (tmp / f"quick_{suffix}").stat().st_size > 0
    assert results["study_name"] == "quick"
    assert results["scenario"] == "default"
    assert results["n_trials"] == 6 == len(results["trials"])
    complete = [t for t in results["trials"] if t["state"] == "COMPLETE"]
    assert complete, "at least one trial completes"
    best = max(complete, key=lambda t: t["value"])
    assert results["best_value"] == best["value"]
    assert results["best_params"] == best["params"]
    assert results["seeds_per_trial"] == 2 and results["tuning_seeds"] == tuning_seeds(7, 2)
    for trial in results["trials"]:
        assert set(trial["params"]) == set(SEARCH_SPACE)
        assert trial["user_attrs"]["seeds"] == tuning_seeds(7, 2)
        assert trial["intermediate_values"], "every trial reports intermediate values"
        steps = [int(s) for s in trial["intermediate_values"]]
        assert steps == sorted(steps) and steps[0] > 0


def test_pruning_prunes_inside_the_first_batch(sweep):
    _, _, results, _ = sweep
    states = [t["state"] for t in results["trials"]]
    assert "PRUNED" in states, states
    pruned = [t for t in results["trials"] if t["state"] == "PRUNED"]
    # a pruned trial stopped early: fewer intermediate values than a complete one
    complete = [t for t in results["trials"] if t["state"] == "COMPLETE"]
    assert max(len(t["intermediate_values"]) for t in pruned) < max(
        len(t["intermediate_values"]) for t in complete)


def test_same_seed_gives_identical_trials(sweep, tmp_path):
    _, _, first, _ = sweep
    again = run_sweep(tmp_path, "again", *VALIDATION)  # fresh in-memory study, same seed
    for a, b in zip(first["trials"], again["trials"], strict=True):
        assert a["params"] == b["params"]
        assert a["state"] == b["state"]
        assert a["value"] == b["value"]
        assert a["intermediate_values"] == b["intermediate_values"]


def test_compiles_are_bounded_by_cohort_shapes(sweep):
    _, _, results, new_compiles = sweep
    shapes = {(t["params"]["hidden_size"], t["params"]["batch_size"]) for t in results["trials"]}
    control = (PPOConfig.hidden_size, PPOConfig.batch_size)  # validated beside the trials
    assert {(c.hidden_size, c.batch_size) for c in new_compiles} <= shapes | {control}
    for count in new_compiles.values():
        # population sizes are powers of two: at most log2(8)+1 = 4 sizes, one chunk length
        assert count <= 4


def test_resume_adds_trials(sweep):
    tmp, storage, _, _ = sweep
    results = run_sweep(tmp, "quick", "--storage", storage, "--n-trials", "2",
                        "--population-size", "2", *NO_VALIDATION)
    assert results["n_trials"] == 8
    numbers = [t["number"] for t in results["trials"]]
    assert numbers == list(range(8))


def test_complete_trial_value_is_the_mean_over_its_seeds(sweep):
    _, _, results, _ = sweep
    for trial in results["trials"]:
        if trial["state"] == "COMPLETE":
            per_seed = trial["user_attrs"]["per_seed_values"]
            assert len(per_seed) == 2 and per_seed[0] != per_seed[1]
            assert trial["value"] == pytest.approx(sum(per_seed) / 2)


def test_sweep_ends_with_a_validated_recommendation(sweep):
    _, _, results, _ = sweep
    validation, rec = results["validation"], results["recommendation"]
    assert validation["seeds"] == [7500, 7501]  # fresh: the study tuned on 7000, 7001
    trials = {str(r["trial"]) for r in validation["rows"]}
    complete = sorted((t for t in results["trials"] if t["state"] == "COMPLETE"),
                      key=lambda t: t["value"], reverse=True)
    assert trials == {str(t["number"]) for t in complete[:2]} | {"control"}
    control = next(r for r in validation["rows"] if r["trial"] == "control")
    for row in validation["rows"]:
        assert len(row["per_seed"]) == 2 and row["n_failed"] == 0
        if row["trial"] != "control":
            diff = [a - b for a, b in zip(row["per_seed"], control["per_seed"], strict=True)]
            assert row["vs_control"]["mean"] == pytest.approx(sum(diff) / 2)
    if rec["beats_control"]:
        assert rec["trial"] == validation["recommended"] != "control"
        assert rec["vs_control"]["mean"] - rec["vs_control"]["ci95"] > 0
    else:
        assert validation["recommended"] is None and rec["trial"] == "control"
        assert "no configuration beat the default configuration" in rec["summary"]


def test_printed_command_reproduces_the_recommendation(sweep, tmp_path):
    _, _, results, _ = sweep
    rec = results["recommendation"]
    command = shlex.split(rec["train_command"])
    assert Path(command[0]).name.startswith("python")
    assert command[1] == "scripts/train_simple.py"
    for flag in ("--hidden-size", "--batch-size", "--lr", "--num-epochs", "--clip-epsilon",
                 "--entropy-coef", "--value-coef", "--gamma", "--gae-lambda", "--seeds"):
        assert flag in command
    out = tmp_path / "best.json"
    proc = subprocess.run(
        [sys.executable, *command[1:], "--save-path", str(tmp_path / "run"),
         "--results-json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    replay = json.loads(out.read_text())
    assert replay["seeds"] == rec["seeds"]
    # same configuration, seeds, steps and evaluation episodes: the validated figure again
    assert replay["eval_return_sampled"]["mean"] == pytest.approx(rec["validated_mean"],
                                                                  rel=1e-3)


def test_multi_scenario_objective_is_the_mean(tmp_path):
    settings = TuneSettings(scenarios=("easy", "hard"), num_steps=4096, n_trials=1,
                            population_size=1, eval_interval=4096, pruner="none", seeds_per_trial=1,
                            study_name="multi", scenario_arg="easy,hard")
    reports = []
    tuner = Tuner(settings, log=reports.append)
    study = tuner.run()
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert study.user_attrs["scenarios"] == ["easy", "hard"]
    assert trial.value == pytest.approx(trial.intermediate_values[max(trial.intermediate_values)])


def test_enqueued_configuration_runs_first(tmp_path):
    params = {"hidden_size": 64, "batch_size": 1024, "learning_rate": 3e-4, "num_epochs": 3,
              "clip_epsilon": 0.2, "entropy_coef": 0.01, "value_coef": 0.5, "gamma": 0.99,
              "gae_lambda": 0.95}
    path = tmp_path / "warm.json"
    path.write_text(json.dumps([params]))
    results = run_sweep(tmp_path, "warm", "--n-trials", "1", "--population-size", "1",
                        "--enqueue", str(path), *NO_VALIDATION)
    assert results["trials"][0]["params"] == params


def test_validate_best_compares_top_trials_with_the_control(sweep, tmp_path, capsys):
    from bb_jax.cli import validate_main

    _, storage, _, _ = sweep
    out = tmp_path / "validation.json"
    code = validate_main(["--study-name", "quick", "--storage", storage, "--top-k", "1",
                          "--seeds", "3", "--seed", "900", "--eval-episodes", "20",
                          "--results-json", str(out)])
    assert code == 0
    written = json.loads(out.read_text())
    assert written["seeds"] == [900, 901, 902]
    study = optuna.load_study(study_name="quick", storage=storage)
    best = max(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)),
               key=lambda t: t.value)
    assert sorted(str(r["trial"]) for r in written["rows"]) == sorted([str(best.number),
                                                                       "control"])
    means = [r["mean"] for r in written["rows"]]
    assert means == sorted(means, reverse=True)
    assert study.user_attrs["validation"]["seeds"] == [900, 901, 902]
    printed = capsys.readouterr().out
    assert "control (defaults)" in printed and "recommendation:" in printed


def test_validate_best_unknown_study_is_a_usage_error(sweep, capsys):
    from bb_jax.cli import validate_main

    _, storage, _, _ = sweep
    assert validate_main(["--study-name", "nope", "--storage", storage]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "quick" in err[0]


@pytest.mark.parametrize("backend, expected", [("cpu", 1), ("gpu", 16), ("tpu", 16)])
def test_population_size_auto_follows_the_backend(backend, expected, tmp_path, monkeypatch):
    import jax

    from bb_jax.cli import _tune_parser, tune_settings

    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    args = _tune_parser().parse_args(["--output-dir", str(tmp_path)])
    assert args.population_size == "auto"
    assert tune_settings(args).population_size == expected
    explicit = _tune_parser().parse_args(["--output-dir", str(tmp_path), "--population-size", "3"])
    assert tune_settings(explicit).population_size == 3


@pytest.mark.parametrize("backend, expected", [("cpu", 2), ("gpu", 4)])
def test_seeds_per_trial_auto_follows_the_backend(backend, expected, tmp_path, monkeypatch):
    import jax

    from bb_jax.cli import _tune_parser, tune_settings

    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    args = _tune_parser().parse_args(["--output-dir", str(tmp_path)])
    assert tune_settings(args).seeds_per_trial == expected
