"""The tuner end to end: a small sweep into SQLite, pruning inside one batch, reproducibility,
resume, outputs, the printed training command, bounded compiles, several scenarios, the
eval-return objective, and worker processes (--n-jobs)."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import jax
import optuna
import pytest
from optuna.trial import TrialState
from reliability_helpers import assert_plots_show_study, fixed_params

from bb_jax.cli import STORAGE_ENV, tune_main, worker_command
from bb_jax.game.scenarios import list_scenarios
from bb_jax.stats import mean_ci95
from bb_jax.train.population import compiled_configs
from bb_jax.train.ppo import PPOConfig
from bb_jax.tuning.cohorts import CohortTrainer
from bb_jax.tuning.storage import make_storage
from bb_jax.tuning.tuner import (
    SEARCH_SPACE,
    PopulationMedianPruner,
    Tuner,
    TuneSettings,
    member_spec,
    train_command,
)

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["--n-trials", "6", "--population-size", "6", "--num-steps", "8192",
         "--eval-interval", "1024", "--seed", "7"]
# JAX's monitoring event for each XLA executable a jitted function gets (compiled or loaded
# from the persistent cache); `fun_name` names the function
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def run_sweep(tmp: Path, name: str, *extra: str) -> dict:
    code = tune_main([*SWEEP, "--study-name", name, "--output-dir", str(tmp), *extra])
    assert code == 0
    return json.loads((tmp / f"{name}_results.json").read_text())


@contextlib.contextmanager
def counting_compiles():
    """Yields the list of function names compiled inside the block (jax.monitoring)."""
    names = []

    def listener(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            names.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    storage = f"sqlite:///{tmp / 'study.db'}"
    before = set(compiled_configs())
    with counting_compiles() as names:
        results = run_sweep(tmp, "quick", "--storage", storage)
    new_configs = set(compiled_configs()) - before
    return tmp, storage, results, (new_configs, names)


@pytest.mark.slow
def test_sweep_writes_every_output(sweep):
    tmp, storage, results, _ = sweep
    study = optuna.load_study(study_name="quick", storage=make_storage(storage, None))
    assert_plots_show_study(tmp, "quick", study.get_trials(deepcopy=False))
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


@pytest.mark.slow
def test_pruning_prunes_inside_the_first_batch(sweep):
    _, _, results, _ = sweep
    states = [t["state"] for t in results["trials"]]
    assert "PRUNED" in states, states
    pruned = [t for t in results["trials"] if t["state"] == "PRUNED"]
    # a pruned trial stopped early: fewer intermediate values than a complete one
    complete = [t for t in results["trials"] if t["state"] == "COMPLETE"]
    assert max(len(t["intermediate_values"]) for t in pruned) < max(
        len(t["intermediate_values"]) for t in complete)


@pytest.mark.slow
def test_same_seed_gives_identical_trials(sweep, tmp_path):
    _, _, first, _ = sweep
    again = run_sweep(tmp_path, "again")  # fresh in-memory study, same seed
    for a, b in zip(first["trials"], again["trials"], strict=True):
        assert a["params"] == b["params"]
        assert a["state"] == b["state"]
        assert a["value"] == b["value"]
        assert a["intermediate_values"] == b["intermediate_values"]


@pytest.mark.slow
def test_compiles_are_bounded_by_cohort_shapes(sweep):
    _, _, results, (new_configs, names) = sweep
    shapes = {(t["params"]["hidden_size"], t["params"]["batch_size"]) for t in results["trials"]}
    assert {(c.hidden_size, c.batch_size) for c in new_configs} <= shapes
    # population sizes are powers of two: at most log2(8)+1 = 4 sizes per shape, one chunk
    # length each
    runs = [name for name in names if "run_updates" in name]  # e.g. jit(run_updates)
    # each new config compiles its program at least once (others may be compiled already)
    assert len(new_configs) <= len(runs) <= 4 * len(shapes), names


@pytest.mark.slow
def test_resume_adds_trials(sweep):
    tmp, storage, _, _ = sweep
    results = run_sweep(tmp, "quick", "--storage", storage, "--n-trials", "2",
                        "--population-size", "2")
    assert results["n_trials"] == 8
    numbers = [t["number"] for t in results["trials"]]
    assert numbers == list(range(8))


@pytest.mark.slow
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


TWO = ("easy", "hard")
EVAL_EPISODES = 16


def tiny_study(name: str, **settings) -> optuna.Study:
    """One trial of the fixed small shape (hidden 64, one update of 4096 steps) on easy and
    hard, run in this process."""
    settings = TuneSettings(scenarios=TWO, scenario_arg=",".join(TWO), num_steps=4096,
                            n_trials=1, population_size=1, eval_interval=4096, pruner="none",
                            study_name=name, enqueue=(fixed_params(0),), **settings)
    return Tuner(settings, log=lambda line: None).run()


def own_values(trial, eval_episodes: int = 0) -> list[float]:
    """The trial's configuration trained on each of TWO, outside the tuner: its figures."""
    trainer = CohortTrainer(PPOConfig(total_steps=4096, batch_size=4096), num_steps=4096,
                            eval_interval=4096, eval_episodes=eval_episodes)
    specs = [member_spec(k, trial.params, name, trial.user_attrs["seed"])
             for k, name in enumerate(TWO)]
    results = trainer.run(specs)
    return [results[k].value for k in range(len(TWO))]


@pytest.fixture(scope="module")
def multi_scenario():
    return tiny_study("multi")


@pytest.mark.slow
def test_multi_scenario_objective_is_the_mean(multi_scenario):
    trial = multi_scenario.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert multi_scenario.user_attrs["scenarios"] == list(TWO)
    easy, hard = own_values(trial)
    assert easy > hard + 100  # the scenarios' own figures are far apart ...
    assert trial.value == pytest.approx((easy + hard) / 2, rel=1e-5)  # ... the value is their mean


@pytest.mark.slow
def test_printed_command_reproduces_a_multi_scenario_trial(multi_scenario, tmp_path, capsys):
    from bb_jax.cli import train_main

    trial = multi_scenario.trials[0]
    command = shlex.split(train_command(multi_scenario, trial))
    assert command[command.index("--scenario") + 1] == "easy,hard"
    out = tmp_path / "replay.json"
    assert train_main([*command[2:], "--save-path", str(tmp_path / "run"),
                       "--results-json", str(out), "--eval-episodes", str(EVAL_EPISODES)]) == 0
    replay = json.loads(out.read_text())
    assert replay["scenarios"] == list(TWO)
    per = replay["per_scenario"]
    easy, hard = per["easy"]["mean"], per["hard"]["mean"]
    assert easy > hard + 100
    assert replay["final_return"]["mean"] == pytest.approx((easy + hard) / 2)
    assert replay["final_return"]["mean"] == pytest.approx(trial.value, rel=1e-4)
    printed = capsys.readouterr().out
    assert f"on easy: {easy:.2f}" in printed and f"on hard: {hard:.2f}" in printed
    assert f"mean over 2 scenarios): {replay['final_return']['mean']:.2f}" in printed
    for scenario in TWO:
        assert (tmp_path / "run" / f"params_seed{trial.user_attrs['seed']}_{scenario}.msgpack"
                ).exists()


@pytest.mark.slow
def test_eval_return_objective_scores_fresh_episodes():
    study = tiny_study("eval", objective="eval_return", eval_episodes=EVAL_EPISODES)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and study.user_attrs["objective"] == "eval_return"
    evaluated = own_values(trial, eval_episodes=EVAL_EPISODES)
    assert trial.value == pytest.approx(sum(evaluated) / len(evaluated), rel=1e-5)
    # not the training return that the intermediate values report
    assert trial.value != pytest.approx(trial.intermediate_values[4096], rel=1e-3)


def test_scenario_all_is_every_scenario(tmp_path):
    from bb_jax.cli import _tune_parser, tune_settings

    args = _tune_parser().parse_args(["--scenario", "all", "--output-dir", str(tmp_path)])
    settings = tune_settings(args)
    assert settings.scenarios == tuple(list_scenarios()) and settings.scenario_arg == "all"


class _FakeWorker:
    """Stands in for a worker process that exits with `code` without running a trial."""

    def __init__(self, code: int):
        self.code = code

    def poll(self):
        return self.code

    def wait(self):
        return self.code

    def send_signal(self, sig):
        pass


@pytest.mark.slow
def test_n_jobs_all_cores_shares_a_journal_and_reports_a_failed_worker(tmp_path, monkeypatch,
                                                                       capsys):
    """--n-jobs -1 starts one process per core; without --storage they share a journal file
    in the output folder; a worker that fails makes the tuner exit with 1 (after its own
    trials and the outputs)."""
    import bb_jax.cli as cli

    started = []

    def start_worker(settings, index, n_trials):
        started.append((index, n_trials, worker_command(settings, index, n_trials)[1]))
        return _FakeWorker(1)

    monkeypatch.setattr(cli, "_start_worker", start_worker)
    monkeypatch.setattr(cli, "_pin_to_core", lambda index: None)
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 2)
    enqueue = tmp_path / "enqueue.json"
    enqueue.write_text(json.dumps([fixed_params(i) for i in range(2)]))
    code = tune_main(["--n-jobs", "-1", "--n-trials", "4", "--population-size", "2",
                      "--num-steps", "4096", "--eval-interval", "4096", "--pruner", "none",
                      "--study-name", "jobs", "--output-dir", str(tmp_path),
                      "--enqueue", str(enqueue)])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "1 worker process(es) failed" in captured.err
    journal = f"journal://{(tmp_path / 'jobs.journal.log').resolve()}"
    assert [(index, n) for index, n, _ in started] == [(1, 2)]  # 2 cores: the tuner + 1
    assert started[0][2][STORAGE_ENV] == journal
    study = optuna.load_study(study_name="jobs", storage=make_storage(journal, None))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 2  # the tuner's own share
    assert json.loads((tmp_path / "jobs_results.json").read_text())["n_complete"] == 2


@pytest.mark.slow
def test_enqueued_configuration_runs_first(tmp_path):
    params = {"hidden_size": 64, "batch_size": 1024, "learning_rate": 3e-4, "num_epochs": 3,
              "clip_epsilon": 0.2, "entropy_coef": 0.01, "value_coef": 0.5, "gamma": 0.99,
              "gae_lambda": 0.95}
    path = tmp_path / "warm.json"
    path.write_text(json.dumps([params]))
    results = run_sweep(tmp_path, "warm", "--n-trials", "1", "--population-size", "1",
                        "--enqueue", str(path))
    assert results["trials"][0]["params"] == params


@pytest.mark.slow
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
    for row in ranking:
        assert len(row["per_seed"]) == 3
        assert (row["mean"], row["ci95"]) == pytest.approx(mean_ci95(row["per_seed"]))
    assert [r["mean"] for r in ranking] == sorted((r["mean"] for r in ranking), reverse=True)
    assert "#1 trial" in capsys.readouterr().out


@pytest.mark.slow
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
