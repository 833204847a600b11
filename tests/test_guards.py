"""Guards of the command lines: a new run never replaces a finished one, no command writes onto
a file it reads, every credential form is redacted, a diverged run says so, and values outside
a field's declared range are refused (exit 2) before anything is written. Cheap: most tests
parse arguments only; the few that train use one tiny update (and are `slow` where they
compile a program)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import jax
import numpy as np
import optuna
import pytest
from flax import serialization
from reliability_helpers import refused_port

from bb_jax.agent.config import DEFAULT_HYPERPARAMS, TUNABLE_FIELDS, PPOConfig
from bb_jax.agent.ppo import PPO
from bb_jax.cli import evaluate_main, train_main, tune_main, validate_main
from bb_jax.runtime import runs
from bb_jax.runtime.saved_runs import config_json
from bb_jax.tuning.outputs import results_dict
from bb_jax.tuning.storage import make_storage, redact, validate_url

TINY = ["--scenario", "easy", "--num-steps", "512", "--batch-size", "256", "--hidden-size", "16",
        "--eval-episodes", "2", "--chunk-updates", "1"]
TUNE = ["--n-trials", "1", "--num-steps", "4096", "--eval-interval", "4096", "--no-validate"]


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{prog}: error: "), err
    return err[0]


def saved_run(folder: Path, seeds=(1,), poison: bool = False) -> Path:
    """A finished run's files for an untrained network (no training); `poison`: NaN weights."""
    config = PPOConfig(scenario="easy", hidden_size=16, batch_size=256, total_steps=512)
    ppo = PPO(config)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(
        {"run_name": "old", "seeds": list(seeds), "scenarios": ["easy"],
         **config_json(config, DEFAULT_HYPERPARAMS)}))
    (folder / "metrics.jsonl").write_text('{"update": 1}\n')
    for seed in seeds:
        params = ppo.network.init(jax.random.PRNGKey(seed), jax.numpy.zeros((ppo.input_size,)))
        if poison:
            params = jax.tree.map(lambda x: x * np.nan, params)
        (folder / f"params_seed{seed}.msgpack").write_bytes(serialization.to_bytes(params))
    return folder


# ---------------------------------------------------------------------------------------------
# Data loss: finished runs, outputs that are inputs


def test_default_run_name_includes_the_length():
    """Two runs that differ only in --num-steps go to two folders (the first one is not
    replaced by the second)."""
    from bb_jax.cli.train import _run_name, _train_parser

    names = {_run_name(_train_parser().parse_args([*TINY, "--num-steps", str(n)]))
             for n in (512, 1024)}
    assert names == {"ppo_easy_h16_s42_n512", "ppo_easy_h16_s42_n1024"}


def test_a_finished_run_is_not_replaced(tmp_path, capsys):
    folder = saved_run(tmp_path / "run")
    before = files(folder)
    assert train_main([*TINY, "--seed", "1", "--save-path", str(folder)]) == 2
    line = one_error_line(capsys, "train_simple.py")
    assert "holds a finished run" in line and "--overwrite" in line
    assert files(folder) == before


def test_overwrite_removes_the_earlier_runs_files_first(tmp_path, capsys, monkeypatch):
    """--overwrite removes what the earlier run wrote (parameters of seeds the new run lacks
    included) before the new one starts, and nothing else in the folder."""
    folder = saved_run(tmp_path / "run", seeds=(1, 99))
    (folder / "notes.txt").write_text("mine")
    (folder / "checkpoints" / "4").mkdir(parents=True)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "train_seeds", interrupted)
    assert train_main([*TINY, "--seed", "1", "--save-path", str(folder), "--overwrite"]) == 130
    assert "removed the earlier run's" in capsys.readouterr().out
    left = {str(p.relative_to(folder)) for p in folder.rglob("*")}
    assert "notes.txt" in left and not left & {"params_seed99.msgpack", "params_seed1.msgpack",
                                                "config.json", "checkpoints/4"}
    assert (folder / "metrics.jsonl").read_text() == ""  # the new run's, empty so far
    assert "--overwrite" not in (folder / "run.json").read_text()  # --resume does not redo it


def test_resume_of_a_finished_run_is_refused(tmp_path, capsys):
    folder = saved_run(tmp_path / "run")
    (folder / "run.json").write_text(json.dumps({"argv": TINY}))
    assert train_main(["--resume", str(folder)]) == 2
    assert "has finished" in one_error_line(capsys, "train_simple.py")


def test_results_json_onto_the_schedule_is_refused(tmp_path, capsys):
    schedule = tmp_path / "schedule.json"
    schedule.write_text(json.dumps([{"env_steps": 256, "learning_rate": 0.0005}]))
    before = schedule.read_bytes()
    assert train_main([*TINY, "--save-path", str(tmp_path / "run"), "--schedule", str(schedule),
                       "--results-json", str(schedule)]) == 2
    assert "--schedule reads" in one_error_line(capsys, "train_simple.py")
    assert schedule.read_bytes() == before and not (tmp_path / "run").exists()


def test_overwrite_never_deletes_the_init_params(tmp_path, capsys):
    folder = saved_run(tmp_path / "run", seeds=(1, 99))
    before = files(folder)
    assert train_main([*TINY, "--seed", "1", "--save-path", str(folder), "--overwrite",
                       "--init-params", str(folder / "params_seed99.msgpack")]) == 2
    assert "--init-params reads" in one_error_line(capsys, "train_simple.py")
    assert files(folder) == before


@pytest.mark.parametrize("flag, target", [("--replay", "params_seed1.msgpack"),
                                          ("--results-json", "config.json")])
def test_evaluate_never_writes_onto_the_run(flag, target, tmp_path, capsys):
    folder = saved_run(tmp_path / "run")
    before = files(folder)
    assert evaluate_main([str(folder), "--episodes", "2", flag, str(folder / target)]) == 2
    assert "is a file the run" in one_error_line(capsys, "evaluate.py")
    assert files(folder) == before


@pytest.fixture
def study_db(tmp_path) -> Path:
    path = tmp_path / "study.db"
    optuna.create_study(study_name="s", storage=f"sqlite:///{path}")
    return path


@pytest.mark.parametrize("scheme", ["sqlite:///", "journal://"])
def test_validate_never_writes_onto_its_storage(scheme, tmp_path, capsys):
    path = tmp_path / "study.store"
    path.write_bytes(b"the study")
    assert validate_main(["--study-name", "s", "--storage", f"{scheme}{path}",
                          "--results-json", str(path)]) == 2
    assert "--storage reads" in one_error_line(capsys, "validate_best.py")
    assert path.read_bytes() == b"the study"


@pytest.mark.parametrize("scheme", ["sqlite:///", "journal://"])
def test_validate_on_a_mistyped_storage_creates_nothing(scheme, tmp_path, capsys):
    assert validate_main(["--study-name", "s", "--storage",
                          f"{scheme}{tmp_path}/typo/stduy.db"]) == 2
    assert "no study database" in one_error_line(capsys, "validate_best.py")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Secrets: every form a password can take


@pytest.mark.parametrize("text, secret", [
    ("postgresql://bb:UserInfo-1@host/db", "UserInfo-1"),
    ("postgresql://bb@host:5432/db?password=QueryPw-2&sslmode=require", "QueryPw-2"),
    ("postgresql://bb@host/db?sslmode=require&PASSWORD=Upper-3", "Upper-3"),
    ("postgresql://bb@host/db?sslpassword=KeyPass-4", "KeyPass-4"),
    ("mysql+pymysql://bb@host/db?passwd=MyPw-5", "MyPw-5"),
    ("connection 'host=h port=5 user=bb password=Conn-6 dbname=db' refused", "Conn-6"),
    ("connection \"host=h password='with space 7' dbname=db\" refused", "with space 7"),
    ("PGPASSWORD=Env-8 psql", "Env-8"),
])
def test_every_password_form_is_redacted(text, secret):
    shown = redact(text)
    assert secret not in shown and "***" in shown
    assert redact(text.replace(secret, "x")).count("***") == shown.count("***")


def test_a_query_password_quoted_alone_is_redacted():
    validate_url("postgresql://bb@host/db?password=Lone-Query-9")
    assert redact('FATAL: password "Lone-Query-9" rejected') == 'FATAL: password "***" rejected'


def test_pgpassword_value_is_never_shown(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "From-The-Env-10")
    assert redact("auth failed for From-The-Env-10") == "auth failed for ***"


def test_results_json_redacts_a_query_password():
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("scenarios", ["default"])
    url = "postgresql://bb@host/db?password=Stored-11"
    assert results_dict(study, url)["storage"] == "postgresql://bb@host/db?password=***"


@pytest.mark.parametrize("main, prog, extra", [
    (tune_main, "tune_hyperparameters.py", TUNE),
    (validate_main, "validate_best.py", ["--study-name", "s"]),
])
def test_commands_redact_a_query_password(main, prog, extra, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with refused_port() as port:
        url = f"postgresql://bb@127.0.0.1:{port}/db?password=Cli-Secret-12"
        assert main([*extra, "--storage", url]) == 2
    captured = capsys.readouterr()
    assert "Cli-Secret-12" not in captured.err + captured.out
    assert "password=***" in one_error_line_of(captured.err, prog)


def one_error_line_of(err: str, prog: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), lines
    return lines[0]


# ---------------------------------------------------------------------------------------------
# Divergence


class _Chunk:
    def __init__(self, finite, done, length):
        self.metrics, self.done, self.length = {"finite": np.asarray(finite)}, done, length


def test_a_non_finite_update_names_its_member_and_env_step():
    config = PPOConfig(scenario="easy", hidden_size=16, batch_size=256, total_steps=2560)
    watch = runs._Watch(config, [(7, "easy"), (8, "easy")], 0.0, None, None, None, 0)
    watch._check_finite(_Chunk([[True, True], [True, True]], 4, 2))
    with pytest.raises(runs.Diverged, match="seed 8 on easy: .* by env step 1024"):
        watch._check_finite(_Chunk([[True, True], [True, False]], 4, 2))


def test_a_diverged_run_ends_with_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    def diverging(*args, **kwargs):
        raise runs.Diverged("training diverged: seed 1 on easy: ... by env step 256")

    monkeypatch.setattr(runs, "train_seeds", diverging)
    assert train_main([*TINY, "--save-path", str(tmp_path / "run")]) == 1
    assert "by env step 256" in one_error_line(capsys, "train_simple.py")


@pytest.mark.slow
def test_training_with_a_nan_learning_rate_stops_at_its_first_update():
    config = PPOConfig(scenario="easy", hidden_size=16, batch_size=256, total_steps=1024)
    with pytest.raises(runs.Diverged, match="seed 3 on easy: .* by env step 256"):
        runs.train_seeds(config, {"learning_rate": math.nan}, [3], chunk_updates=2,
                         eval_episodes=2)


def test_evaluate_refuses_non_finite_parameters(tmp_path, capsys):
    folder = saved_run(tmp_path / "run", poison=True)
    assert evaluate_main([str(folder), "--episodes", "2"]) == 2
    assert "NaN/inf parameters" in one_error_line(capsys, "evaluate.py")


def test_training_from_non_finite_parameters_is_refused(tmp_path, capsys):
    folder = saved_run(tmp_path / "old", poison=True)
    assert train_main([*TINY, "--save-path", str(tmp_path / "run"), "--init-params",
                       str(folder / "params_seed1.msgpack")]) == 2
    assert "NaN/inf parameters" in one_error_line(capsys, "train_simple.py")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# Ranges: one declaration per field, checked by every entry point


def test_every_search_range_and_default_lies_in_its_valid_range():
    from bb_jax.agent.config import VALID, check_hyperparams

    for field in TUNABLE_FIELDS:
        valid, search = field.metadata["valid"], field.metadata["search"]
        if valid is None:
            continue
        assert valid.contains(field.default), field.name
        if search is not None:
            for value in (*search.choices, search.low, search.high):
                assert value is None or valid.contains(value), field.name
    check_hyperparams(DEFAULT_HYPERPARAMS)
    assert set(VALID) == set(DEFAULT_HYPERPARAMS)


@pytest.mark.parametrize("argv, expected", [
    (["--lr", "nan"], "--lr"), (["--lr", "-1"], "--lr"), (["--lr", "inf"], "--lr"),
    (["--gamma", "1.5"], "--gamma"), (["--gamma", "1e30"], "--gamma"),
    (["--clip-epsilon", "-0.2"], "--clip-epsilon"), (["--gae-lambda", "2"], "--gae-lambda"),
    (["--entropy-coef", "-5"], "--entropy-coef"), (["--max-grad-norm", "0"], "--max-grad-norm"),
    (["--value-coef", "nan"], "--value-coef"), (["--num-epochs", "0"], "1..10"),
    (["--num-epochs", "50"], "1..10"), (["--num-steps", str(10**15)], "--num-steps"),
    (["--eval-episodes", "0"], "--eval-episodes"),
])
def test_train_refuses_values_outside_their_range(argv, expected, tmp_path, capsys):
    assert train_main([*TINY, *argv, "--save-path", str(tmp_path / "run")]) == 2
    assert expected in one_error_line(capsys, "train_simple.py")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change, expected", [
    ({"env_steps": 256, "learning_rate": math.nan}, "learning_rate"),
    ({"env_steps": 256, "learning_rate": -0.001}, "learning_rate"),
    ({"env_steps": 256, "num_epochs": 0}, "num_epochs"),
    ({"env_steps": 256, "num_epochs": 50}, "num_epochs"),
    ({"env_steps": 4096, "learning_rate": 0.0005}, "after the run ends"),
])
def test_a_schedule_outside_the_ranges_is_refused(change, expected, tmp_path, capsys):
    schedule = tmp_path / "schedule.json"
    schedule.write_text(json.dumps([change]))  # json writes NaN, as Python reads it back
    assert train_main([*TINY, "--save-path", str(tmp_path / "run"), "--schedule",
                       str(schedule)]) == 2
    assert expected in one_error_line(capsys, "train_simple.py")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--prune-alpha", "nan"], "--prune-alpha"),
    (["--prune-alpha", "1"], "--prune-alpha"),
    (["--timeout", "nan"], "--timeout"),
    (["--num-steps", str(10**15)], "--num-steps"),
    (["--population-size", "0"], "--population-size"),
    (["--min-fraction", "0"], "--min-fraction"),
    (["--n-jobs", "-5"], "--n-jobs"),
    (["--eval-episodes", "0"], "--eval-episodes"),
    (["--objectives", "return,return"], "each once"),
    (["--study-name", "../../escape"], "--study-name"),
    (["--study-name", "a/b"], "--study-name"),
    (["--study-name", "x" * 300], "--study-name"),
])
def test_tune_refuses_before_anything_is_created(argv, expected, tmp_path, capsys,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path}/study.db"
    assert tune_main([*TUNE, "--storage", storage, "--output-dir", str(tmp_path / "out"),
                      *argv]) == 2
    assert expected in one_error_line(capsys, "tune_hyperparameters.py")
    assert list(tmp_path.iterdir()) == []


def test_tune_refuses_an_infinite_flop_budget(tmp_path, capsys):
    assert tune_main(["--n-trials", "1", "--flop-budget", "inf", "--output-dir",
                      str(tmp_path / "out")]) == 2
    assert "--flop-budget" in one_error_line(capsys, "tune_hyperparameters.py")


@pytest.mark.parametrize("argv, expected", [
    (["--num-steps", str(10**15)], "--num-steps"),
    (["--study-name", "../escape"], "--study-name"),
    (["--eval-episodes", "0"], "--eval-episodes"),
])
def test_validate_refuses_before_anything_is_created(argv, expected, study_db, tmp_path,
                                                     capsys):
    before = study_db.read_bytes()
    assert validate_main(["--study-name", "s", "--storage", f"sqlite:///{study_db}",
                          "--results-json", str(tmp_path / "out" / "v.json"), *argv]) == 2
    assert expected in one_error_line(capsys, "validate_best.py")
    assert study_db.read_bytes() == before and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# Stopping, and two processes on one run


def test_validate_says_it_replaces_a_stored_validation(study_db, capsys):
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{study_db}")
    study.set_user_attr("validation", {"seeds": [900, 901]})
    assert validate_main(["--study-name", "s", "--storage", f"sqlite:///{study_db}"]) == 2
    assert "already holds a validation (seeds [900, 901]): this one replaces it" in \
        capsys.readouterr().out  # then refused: the study has no complete trial


def test_validate_interrupted_stores_nothing_and_says_so(study_db, capsys, monkeypatch):
    from bb_jax.tuning import validation

    def interrupted(study, *args, **kwargs):
        raise KeyboardInterrupt  # what a Ctrl-C raises between two populations

    monkeypatch.setattr(validation, "validate_study", interrupted)
    assert validate_main(["--study-name", "s", "--storage", f"sqlite:///{study_db}"]) == 130
    assert "no validation stored" in capsys.readouterr().err
    assert "validation" not in optuna.load_study(study_name="s",
                                                 storage=f"sqlite:///{study_db}").user_attrs


def unfinished_run(folder: Path, holder: int | None) -> Path:
    """A run folder with a checkpoint and, for `holder`, the lock of that process."""
    from bb_jax.cli.train import LOCK_FILE
    from bb_jax.tuning.liveness import process_start_time

    (folder / "checkpoints" / "2").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"argv": TINY}))
    if holder is not None:
        (folder / LOCK_FILE).write_text(json.dumps({"pid": holder,
                                                    "start": process_start_time(holder)}))
    return folder


def test_resume_of_a_run_another_process_trains_is_refused(tmp_path, capsys):
    other = subprocess.Popen(["sleep", "60"])
    try:
        folder = unfinished_run(tmp_path / "run", other.pid)
        assert train_main(["--resume", str(folder)]) == 2
        assert f"being trained by process {other.pid}" in one_error_line(capsys,
                                                                         "train_simple.py")
    finally:
        other.kill()
        other.wait()


def test_the_lock_of_a_dead_process_is_taken_over_and_released(tmp_path, capsys, monkeypatch):
    from bb_jax.cli.train import LOCK_FILE


    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = unfinished_run(tmp_path / "run", dead.pid)
    seen = []

    def training(*args, **kwargs):
        seen.append(json.loads((folder / LOCK_FILE).read_text())["pid"])
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "train_seeds", training)
    assert train_main(["--resume", str(folder)]) == 130
    assert seen == [os.getpid()] and not (folder / LOCK_FILE).exists()


def test_evaluate_checks_its_results_folder_before_evaluating(tmp_path, capsys):
    folder = saved_run(tmp_path / "run")
    assert evaluate_main([str(folder), "--episodes", "2", "--results-json",
                          "/proc/bb_jax_nowhere/out.json"]) == 2
    captured = capsys.readouterr()
    assert "not writable" in one_error_line_of(captured.err, "evaluate.py")
    assert captured.out == ""  # refused before any episode was played


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path):
    from bb_jax.runtime.checkpoints import Checkpoints

    state = {"w": jax.numpy.arange(4.0)}
    curves = {"env_steps": np.zeros((1, 2))}
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    for updates in (2, 4):
        checkpoints.save(updates, {"w": state["w"] + updates}, curves,
                         {"elapsed_s": float(updates)})
    checkpoints.wait()  # both on disk before the latest one is damaged
    for path in (tmp_path / "checkpoints" / "4" / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"damaged")
    said = []
    restored = checkpoints.restore(state, log=said.append)
    assert restored.updates == 2 and restored.settings == {"elapsed_s": 2.0}
    np.testing.assert_array_equal(restored.state["w"], np.arange(4.0) + 2)
    assert len(said) == 1 and "update 4 is damaged" in said[0] and "update 2" in said[0]
    assert checkpoints.latest() == 2  # the damaged one is gone: the next save follows on
    checkpoints.close()


def test_checkpoints_that_do_not_fit_the_state_are_kept(tmp_path):
    """Another shape (e.g. another device count) is not damage: nothing is deleted."""
    from bb_jax.runtime.checkpoints import Checkpoints

    checkpoints = Checkpoints(tmp_path / "checkpoints")
    for updates in (2, 4):
        checkpoints.save(updates, {"w": jax.numpy.zeros(4)}, {"env_steps": np.zeros((1, 2))},
                         {"elapsed_s": 0.0})
    with pytest.raises(Exception):  # noqa: B017  orbax's own error, raised as it is
        checkpoints.restore({"w": jax.numpy.zeros(7)}, log=pytest.fail)
    assert sorted(checkpoints.manager.all_steps()) == [2, 4]
    checkpoints.close()


# ---------------------------------------------------------------------------------------------
# Validation: stopped between chunks, storage checked before training, figures before storing


def validation_study(url: str) -> optuna.Study:
    """A study of one complete trial in the control's shape (learning rate halved): its
    validation trains one population of one compiled program."""
    from bb_jax.tuning.space import SEARCH_SPACE, control_params

    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    params = {**control_params(), "learning_rate": control_params()["learning_rate"] / 2}
    study.add_trial(optuna.trial.create_trial(params=params, value=1.0,
                                              distributions=dict(SEARCH_SPACE)))
    return study


def scripted_training(monkeypatch, trainers: list | None = None) -> None:
    """CohortTrainer.run without training: every run completes with a seed-dependent value."""
    from bb_jax.runtime import cohorts
    from bb_jax.runtime.members import MemberResult

    def run(self, specs, on_reports=None, on_finished=None):
        if trainers is not None:
            trainers.append((self, specs))
        return {s.member_id: MemberResult(s.member_id, "complete", 900.0 + s.seed % 7 + s.member_id,
                                          env_steps=self.num_steps) for s in specs}

    monkeypatch.setattr(cohorts.CohortTrainer, "run", run)


def test_validation_runs_report_between_chunks(monkeypatch):
    """A validation run trains in stretches of about the tuner's report interval, so a Ctrl-C
    (raised between chunks) takes effect within one stretch, not at the end of the run."""
    from bb_jax.tuning.validation import REPORT_INTERVAL, validate_study

    trainers = []
    scripted_training(monkeypatch, trainers)
    validate_study(validation_study(None), 1, 2, num_steps=50_000, log=lambda line: None)
    (trainer, specs), = trainers
    for spec in specs:
        stretches = trainer.stretches(trainer.plan(spec))
        assert len(stretches) > 1
        assert max(sum(s) for s in stretches) * spec.batch_size <= REPORT_INTERVAL + spec.batch_size


@pytest.mark.slow
def test_validated_figures_do_not_depend_on_the_chunking():
    """The same seeds give the same validated figures whether each run is one chunk or
    several (a report and an interrupt check after each)."""
    from bb_jax.tuning.validation import validate_study

    outcomes = []
    for interval in (4 * 4096, 4096):
        study = validation_study(None)
        outcome = validate_study(study, 1, 2, num_steps=4 * 4096, eval_episodes=4,
                                 log=lambda line: None, eval_interval=interval)
        outcomes.append([(r["trial"], r["per_seed"], r["n_failed"]) for r in outcome["rows"]])
    assert outcomes[0] == outcomes[1]
    assert all(math.isfinite(v) for _, per_seed, _ in outcomes[0] for v in per_seed)


@pytest.mark.slow
def test_validate_best_stops_on_ctrl_c_within_seconds_keeping_the_study(tmp_path):
    import signal
    import sys

    from reliability_helpers import REPO, Tuner, wait_for

    url = f"sqlite:///{tmp_path / 'study.db'}"
    validation_study(url)
    before = [(t.number, t.params, t.value) for t in optuna.load_study(
        study_name="s", storage=url).trials]
    proc = Tuner([sys.executable, str(REPO / "scripts" / "validate_best.py"), "--study-name",
                  "s", "--storage", url, "--n-seeds", "2", "--num-steps", str(400 * 4096),
                  "--eval-episodes", "2"], tmp_path / "logs", "validate")
    wait_for(lambda: "live, " in proc.stdout, proc, what="the first report")
    proc.proc.send_signal(signal.SIGINT)
    # one chunk of one update is a fraction of a second: well within 5 s on an idle box; the
    # bound here leaves room for a loaded one and is far below the 400 updates of the run
    assert proc.wait(timeout=30) == 130, proc.output()
    assert "validation of s" not in proc.stdout  # stopped mid-run, not at its end
    assert proc.stderr.strip().splitlines()[-1].startswith("interrupted: no validation stored")
    assert "Traceback" not in proc.stderr
    study = optuna.load_study(study_name="s", storage=url)
    assert [(t.number, t.params, t.value) for t in study.trials] == before
    assert "validation" not in study.user_attrs


def read_only_storage(path: Path):
    """The study database at `path` opened read-only by SQLite (what a read-only file or
    folder gives; chmod does not bind the root user the tests may run as)."""
    return optuna.storages.RDBStorage(f"sqlite:///file:{path}?mode=ro&uri=true")


def test_a_read_only_database_is_refused_before_training(tmp_path, capsys, monkeypatch):
    from bb_jax.tuning import storage, validation

    path = tmp_path / "study.db"
    validation_study(f"sqlite:///{path}")
    before = path.read_bytes()
    monkeypatch.setattr(storage, "make_storage", lambda url: read_only_storage(path))
    monkeypatch.setattr(validation, "validate_study", lambda *a, **k: pytest.fail("trained"))
    assert validate_main(["--study-name", "s", "--storage", f"sqlite:///{path}"]) == 2
    line = one_error_line(capsys, "validate_best.py")
    assert "cannot write to storage" in line and "readonly database" in line
    assert path.read_bytes() == before


def fill_up(storage) -> None:
    """From now on the SQLite database of `storage` (study "s") cannot grow, as on a full
    disk, and its pages hold no room for another user attribute of 200 bytes or more."""
    from sqlalchemy import event

    @event.listens_for(storage.engine, "connect")
    def no_more_pages(connection, record):
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages}")

    storage.engine.dispose()
    study = optuna.load_study(study_name="s", storage=storage)
    with pytest.raises(optuna.exceptions.StorageInternalError):
        for i in range(10_000):
            study.set_user_attr(f"pad{i}", "x" * 200)


def test_figures_are_printed_before_a_store_that_fails(tmp_path, capsys, monkeypatch):
    """The database fills up while validating: the figures and the results JSON are out
    before the store fails, which then says in one line what was not stored and why."""
    from bb_jax.tuning import storage, validation

    path = tmp_path / "study.db"
    validation_study(f"sqlite:///{path}")
    scripted_training(monkeypatch)
    opened = []
    monkeypatch.setattr(storage, "make_storage", lambda url: opened.append(make_storage(url))
                        or opened[-1])
    store = validation.store_validation

    def store_when_full(study, outcome):
        fill_up(opened[0])
        store(study, outcome)

    monkeypatch.setattr(validation, "store_validation", store_when_full)
    out_json = tmp_path / "v.json"
    assert validate_main(["--study-name", "s", "--storage", f"sqlite:///{path}",
                          "--num-steps", "4096", "--results-json", str(out_json)]) == 1
    captured = capsys.readouterr()
    assert "validated" in captured.out and "recommendation:" in captured.out
    line = one_error_line_of(captured.err, "validate_best.py")
    assert "not stored" in line and "database or disk is full" in line
    assert "max length" not in line
    assert json.loads(out_json.read_text())["rows"]
    assert "validation" not in optuna.load_study(study_name="s",
                                                 storage=f"sqlite:///{path}").user_attrs


def test_a_corrupt_database_names_the_cause(tmp_path, capsys):
    path = tmp_path / "study.db"
    path.write_bytes(np.random.default_rng(0).bytes(64 * 1024))
    assert validate_main(["--study-name", "s", "--storage", f"sqlite:///{path}"]) == 2
    assert "file is not a database" in one_error_line(capsys, "validate_best.py")


def test_a_failed_commit_names_the_database_cause(tmp_path):
    """Optuna wraps every failed commit in "...e.g. exceeding max length"; the line shown
    names SQLite's own cause instead (read-only, full), in validate_best.py and the tuner."""
    from bb_jax.tuning.storage import describe_error, error_text

    path = tmp_path / "study.db"
    validation_study(f"sqlite:///{path}")
    writable = make_storage(f"sqlite:///{path}")
    fill_up(writable)
    causes = []
    for storage in (read_only_storage(path), writable):
        study = optuna.load_study(study_name="s", storage=storage)
        with pytest.raises(optuna.exceptions.StorageInternalError) as raised:
            study.set_user_attr("big", "x" * 100_000)
        causes.append(describe_error(raised.value))
        assert error_text(raised.value) == causes[-1]  # what the tuner prints
    assert "readonly database" in causes[0] and "database or disk is full" in causes[1]
    assert not any("max length" in c for c in causes)


# ---------------------------------------------------------------------------------------------
# PBT's flags


@pytest.mark.parametrize("argv, expected", [
    (["--pbt-quantile", "nan"], "--pbt-quantile must be in (0, 0.5]"),
    (["--pbt-quantile", "0"], "--pbt-quantile must be in (0, 0.5]"),
    (["--pbt-margin", "nan"], "--pbt-margin must be a finite number >= 0"),
    (["--pbt-margin", "inf"], "--pbt-margin must be a finite number >= 0"),
    (["--pbt-margin", "-1"], "--pbt-margin must be a finite number >= 0"),
    (["--study-name", "../../escape"], "--study-name '../../escape'"),
    (["--study-name", "x" * 300], "--study-name"),
    (["--num-steps", str(10**15)], "--num-steps must be in 1.."),
    (["--num-opponents", "0"], "--num-opponents must be in 1..9"),
])
def test_pbt_refuses_bad_flags_before_anything_is_written(argv, expected, tmp_path, capsys):
    assert tune_main(["--strategy", "pbt", "--scenario", "easy", "--population-size", "4",
                      "--storage", f"sqlite:///{tmp_path}/pbt.db", "--study-name", "pbt",
                      "--output-dir", str(tmp_path / "out"), *argv]) == 2
    assert expected in one_error_line(capsys, "tune_hyperparameters.py")
    assert list(tmp_path.iterdir()) == []
