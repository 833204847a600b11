"""Distributed tuning on a real PostgreSQL 15 server started for this module: a small sweep
created, stored and resumed in-process (quick), three worker processes on one study and
redaction of the password everywhere (slow), and clear refusals for a wrong password or
database (quick). Skips when the server binaries or psycopg are missing, except where
$BB_JAX_REQUIRE_POSTGRES is set (CI), where it fails."""

from __future__ import annotations

import json
import re

import optuna
import pytest
from optuna.trial import TrialState
from reliability_helpers import (
    PG_PASSWORD,
    PG_USER,
    SMALL,
    PostgresServer,
    Tuner,
    assert_plots_show_study,
    by_state,
    fixed_params,
    load_trials,
    tune_args,
    warm_compile_cache,
    write_enqueue_file,
)

from bb_jax.cli import tune_main
from bb_jax.tuning.space import SEARCH_SPACE
from bb_jax.tuning.storage import make_storage

WORKERS = 3
TRIALS_PER_WORKER = 2


@pytest.fixture(scope="module")
def server():
    server = PostgresServer().start()
    yield server
    server.stop()


def test_sweep_is_stored_and_resumed(server, tmp_path, capsys):
    """A one-trial sweep into a new database creates the study and stores the trial with the
    study's seeds; resuming with another --seed adds a trial on the same seeds (the same
    configuration, so the same value); resuming with another --num-steps is refused and
    changes nothing."""
    url = server.create_database("quick")
    fixed = ",".join(f"{name}={value}" for name, value in fixed_params(0).items())
    args = ["--storage", url, "--study-name", "quick", "--population-size", "2", *SMALL,
            "--fix", fixed, "--n-trials", "1", "--output-dir", str(tmp_path / "out")]
    assert tune_main(args) == 0
    study = optuna.load_study(study_name="quick", storage=make_storage(url, None))
    seeds = study.user_attrs["tuning_seeds"]
    (first,) = load_trials(url, "quick")
    assert first.state == TrialState.COMPLETE and first.user_attrs["seeds"] == seeds
    assert first.params == fixed_params(0)
    assert tune_main([*args, "--seed", "7"]) == 0
    trials = load_trials(url, "quick")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert trials[1].user_attrs["seeds"] == seeds and trials[1].value == first.value
    capsys.readouterr()
    assert tune_main([*args[:-2], "--num-steps", "8192",
                      "--output-dir", str(tmp_path / "out2")]) == 2
    assert "was created with --num-steps 4096" in capsys.readouterr().err
    assert len(load_trials(url, "quick")) == 2 and not (tmp_path / "out2").exists()


@pytest.fixture(scope="module")
def three_workers(server, tmp_path_factory):
    """Three tuner processes started together on a fresh database (they race to create the
    schema and the study), each queueing and running its own two configurations."""
    tmp = tmp_path_factory.mktemp("pg")
    url = server.create_database("bb_study")
    warm_compile_cache()
    out = tmp / "out"
    workers = []
    for w in range(WORKERS):
        indices = range(w * TRIALS_PER_WORKER, (w + 1) * TRIALS_PER_WORKER)
        enqueue = write_enqueue_file(tmp / f"enqueue{w}.json", indices)
        args = tune_args("shared", url, out, TRIALS_PER_WORKER, "--seed", str(w),
                         "--enqueue", str(enqueue))
        workers.append(Tuner(args, tmp / "logs", f"worker{w}"))
    codes = [w.wait() for w in workers]
    return url, out, workers, codes


@pytest.mark.slow
def test_three_workers_share_one_study(three_workers):
    url, _, workers, codes = three_workers
    for worker, code in zip(workers, codes, strict=True):
        assert code == 0, worker.output()
        assert "Traceback" not in worker.stderr and "error" not in worker.stderr.lower(), \
            worker.output()
    trials = load_trials(url, "shared")
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), "trial numbers are unique"
    complete = by_state(trials, TrialState.COMPLETE)
    assert len(complete) == WORKERS * TRIALS_PER_WORKER  # exactly the trials asked for
    assert not by_state(trials, TrialState.RUNNING) and not by_state(trials, TrialState.FAIL)
    # every queued configuration ran exactly once, whichever worker took it
    rates = sorted(t.params["learning_rate"] for t in complete)
    assert len(set(rates)) == len(rates)
    # each worker reports its own trials done
    for worker in workers:
        assert re.search(rf"trials +{TRIALS_PER_WORKER}/{TRIALS_PER_WORKER}\b", worker.stdout)


@pytest.mark.slow
def test_results_json_agrees_with_the_database(three_workers):
    url, out, _, _ = three_workers
    results = json.loads((out / "shared_results.json").read_text())
    stored = {t.number: t for t in load_trials(url, "shared")}
    assert results["study_name"] == "shared"
    assert results["n_complete"] >= TRIALS_PER_WORKER  # at least the writer's own trials
    for record in results["trials"]:
        trial = stored[record["number"]]
        if record["state"] in ("COMPLETE", "PRUNED", "FAIL"):
            assert record["state"] == trial.state.name
            assert record["value"] == trial.value
            assert record["params"] == trial.params
    complete = [r for r in results["trials"] if r["state"] == "COMPLETE"]
    best = max(complete, key=lambda r: r["value"])
    assert results["best_value"] == best["value"] and results["best_trial"] == best["number"]
    assert set(best["params"]) == set(SEARCH_SPACE)
    # each worker writes the plots when it ends, possibly while others still train
    assert_plots_show_study(out, "shared", list(stored.values()), exact=False)


@pytest.mark.slow
def test_password_never_leaks(three_workers):
    url, out, workers, _ = three_workers
    assert PG_PASSWORD in url
    texts = {f"worker {i} {stream}": getattr(w, stream)
             for i, w in enumerate(workers) for stream in ("stdout", "stderr")}
    texts.update({p.name: p.read_text() for p in out.iterdir() if p.is_file()})
    assert any(name.endswith("_results.json") for name in texts)
    assert any(name.endswith(".html") for name in texts)
    for name, text in texts.items():
        assert PG_PASSWORD not in text, f"password in {name}"
    results = json.loads((out / "shared_results.json").read_text())
    assert results["storage"] == url.replace(PG_PASSWORD, "***")
    assert "postgresql://bb_tuner:***@127.0.0.1" in workers[0].stdout


def test_wrong_password_is_one_clear_line(server, tmp_path, capsys):
    url = server.url("bb_study", password="not-the-" + PG_PASSWORD)
    code = tune_main(["--storage", url, "--study-name", "x", "--n-trials", "1",
                      "--num-steps", "4096", "--eval-interval", "4096",
                      "--output-dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "password authentication failed" in lines[0], captured.err
    assert PG_PASSWORD not in captured.err + captured.out
    assert not (tmp_path / "out").exists()


def test_missing_database_is_one_clear_line(server, tmp_path, capsys):
    code = tune_main(["--storage", server.url("no_such_db"), "--study-name", "x",
                      "--n-trials", "1", "--num-steps", "4096", "--eval-interval", "4096",
                      "--output-dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2
    assert len(captured.err.strip().splitlines()) == 1
    assert "no_such_db" in captured.err and PG_PASSWORD not in captured.err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_password_from_the_environment(server, tmp_path, monkeypatch):
    """A URL without a password takes it from libpq's PGPASSWORD (keeps it out of `ps`)."""
    url = server.url("bb_study", password=None)
    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)
    storage = make_storage(url, None)
    assert "shared" in [s.study_name for s in storage.get_all_studies()]


READER_PASSWORD = "r3ader-Pa55"


@pytest.fixture(scope="module")
def read_only_urls(server):
    """A database holding study "s" (one complete trial), and the URLs of two roles that can
    only read it: one granted SELECT alone, one granted everything whose transactions are
    read-only (default_transaction_read_only, as on a standby or a read-only database)."""
    import psycopg
    from test_guards import validation_study

    url = server.create_database("read_only")
    validation_study(make_storage(url, None))
    with psycopg.connect(host="127.0.0.1", port=server.port, user=PG_USER,
                         password=PG_PASSWORD, dbname="read_only", autocommit=True) as conn:
        for role in ("selecting", "read_only_tx"):
            conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{READER_PASSWORD}'")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO selecting")
        conn.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO read_only_tx")
        conn.execute("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO read_only_tx")
        conn.execute("ALTER ROLE read_only_tx SET default_transaction_read_only = on")
    return {role: f"postgresql://{role}:{READER_PASSWORD}@127.0.0.1:{server.port}/read_only"
            for role in ("selecting", "read_only_tx")}


@pytest.mark.parametrize("role, cause", [("selecting", "permission denied"),
                                         ("read_only_tx", "read-only transaction")])
@pytest.mark.parametrize("command", ["validate", "tune", "pbt"])
def test_a_read_only_database_is_refused_before_training(read_only_urls, role, cause, command,
                                                         tmp_path, capsys, monkeypatch):
    """Every command that stores into the study refuses a role that can only read it, in one
    line (password redacted) with exit 2, before anything trains or is created."""
    from bb_jax.cli import validate_main
    from bb_jax.runtime.cohorts import CohortTrainer
    from bb_jax.tuning import validation

    url = read_only_urls[role]
    monkeypatch.setattr(validation, "validate_study", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(CohortTrainer, "run", lambda *a, **k: pytest.fail("trained"))
    out = tmp_path / "out"
    argv = {"validate": ["--study-name", "s", "--storage", url],
            "tune": ["--study-name", "t", "--storage", url, "--n-trials", "1",
                     "--num-steps", "4096", "--eval-interval", "4096", "--output-dir", str(out)],
            "pbt": ["--strategy", "pbt", "--scenario", "easy", "--population-size", "4",
                    "--fix", "hidden_size=64,batch_size=512", "--num-steps", "3072",
                    "--pbt-interval", "1024", "--study-name", "t", "--storage", url,
                    "--output-dir", str(out)]}[command]
    main = validate_main if command == "validate" else tune_main
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write to storage" in err[0] and cause in err[0], err
    assert READER_PASSWORD not in err[0]
    studies = optuna.get_all_study_summaries(make_storage(url, None))
    assert [s.study_name for s in studies] == ["s"] and not out.exists()
