"""The tuner end to end: a small sweep into SQLite, pruning inside one batch, reproducibility,
resume, outputs, the printed training command, and bounded compiles."""

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
from bb_jax.tuning.tuner import SEARCH_SPACE, PopulationMedianPruner, Tuner, TuneSettings

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["--n-trials", "6", "--population-size", "6", "--num-steps", "8192",
         "--eval-interval", "1024", "--seed", "7"]


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
    results = run_sweep(tmp, "quick", "--storage", storage)
    after = compile_counts()
    new = {c: n - before.get(c, 0) for c, n in after.items() if n > before.get(c, 0)}
    return tmp, storage, results, new


def test_sweep_writes_every_output(sweep):
    tmp, _, results, _ = sweep
    for suffix in ("results.json", "history.html", "importances.html", "parallel.html"):
        assert (tmp / f"quick_{suffix}").stat().st_size > 0
    assert results["study_name"] == "quick"
    assert results["scenario"] == "default"
    assert results["n_trials"] == 6 == len(results["trials"])
    complete = [t for t in results["trials"] if t["state"] == "COMPLETE"]
    assert complete, "at least one trial completes"
    best = max(complete, key=lambda t: t["value"])
    assert results["best_value"] == best["value"]
    assert results["best_params"] == best["params"]
    for trial in results["trials"]:
        assert set(trial["params"]) == set(SEARCH_SPACE)
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
    again = run_sweep(tmp_path, "again")  # fresh in-memory study, same seed
    for a, b in zip(first["trials"], again["trials"], strict=True):
        assert a["params"] == b["params"]
        assert a["state"] == b["state"]
        assert a["value"] == b["value"]
        assert a["intermediate_values"] == b["intermediate_values"]


def test_compiles_are_bounded_by_cohort_shapes(sweep):
    _, _, results, new_compiles = sweep
    shapes = {(t["params"]["hidden_size"], t["params"]["batch_size"]) for t in results["trials"]}
    assert {(c.hidden_size, c.batch_size) for c in new_compiles} <= shapes
    for count in new_compiles.values():
        # population sizes are powers of two: at most log2(8)+1 = 4 sizes, one chunk length
        assert count <= 4


def test_resume_adds_trials(sweep):
    tmp, storage, _, _ = sweep
    results = run_sweep(tmp, "quick", "--storage", storage, "--n-trials", "2",
                        "--population-size", "2")
    assert results["n_trials"] == 8
    numbers = [t["number"] for t in results["trials"]]
    assert numbers == list(range(8))


def test_printed_command_trains_the_best_config(sweep, tmp_path):
    _, _, results, _ = sweep
    command = shlex.split(results["train_command"])
    assert Path(command[0]).name.startswith("python")
    assert command[1] == "scripts/train_simple.py"
    for flag in ("--hidden-size", "--batch-size", "--lr", "--num-epochs", "--clip-epsilon",
                 "--entropy-coef", "--value-coef", "--gamma", "--gae-lambda", "--seed"):
        assert flag in command
    out = tmp_path / "best.json"
    proc = subprocess.run(
        [sys.executable, *command[1:], "--save-path", str(tmp_path / "run"),
         "--results-json", str(out), "--eval-episodes", "10"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    replay = json.loads(out.read_text())
    best = next(t for t in results["trials"] if t["number"] == results["best_trial"])
    # same config, same seed, same steps: the replay reaches the trial's value
    assert replay["final_return"]["mean"] == pytest.approx(best["value"], rel=1e-4)


def test_population_median_pruner_compares_running_peers():
    study = optuna.create_study(direction="maximize", pruner=PopulationMedianPruner(
        n_warmup_steps=0, n_min_peers=3, window=1000))
    trials = [study.ask() for _ in range(5)]
    for value, trial in zip([1.0, 2.0, 3.0, 4.0, 5.0], trials, strict=True):
        trial.report(value, 1000)
    verdicts = [t.should_prune() for t in trials]
    assert verdicts == [True, True, False, False, False]
    # a peer whose latest value is too old (outside the window) does not count
    lone = study.ask()
    lone.report(0.0, 5000)
    assert not lone.should_prune()


def test_multi_scenario_objective_is_the_mean(tmp_path):
    settings = TuneSettings(scenarios=("easy", "hard"), num_steps=4096, n_trials=1,
                            population_size=1, eval_interval=4096, pruner="none",
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
                        "--enqueue", str(path))
    assert results["trials"][0]["params"] == params


def test_validate_best_ranks_top_trials_over_seeds(sweep, tmp_path, capsys):
    from bb_jax.cli import validate_main

    _, storage, _, _ = sweep
    out = tmp_path / "validation.json"
    code = validate_main(["--study-name", "quick", "--storage", storage, "--top-k", "2",
                          "--seeds", "3", "--eval-episodes", "20", "--results-json", str(out)])
    assert code == 0
    ranking = json.loads(out.read_text())["ranking"]
    study = optuna.load_study(study_name="quick", storage=storage)
    complete = sorted(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)),
                      key=lambda t: t.value, reverse=True)
    assert {r["trial"] for r in ranking} == {t.number for t in complete[:2]}
    assert all(len(r["per_seed"]) == 3 and r["ci95"] >= 0 for r in ranking)
    assert [r["mean"] for r in ranking] == sorted((r["mean"] for r in ranking), reverse=True)
    assert "#1 trial" in capsys.readouterr().out


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
