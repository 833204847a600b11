"""The study owns its tuning seeds: three worker processes started together with --seed 1, 2
and 3 on one new study (SQLite, journal file, a real PostgreSQL server) train every trial on
the same seeds, the ones the study recorded at its creation and the results JSON shows. Every
parameter is held (--fix) at the reliability tests' fixed configuration, so the three share
one compiled program through JAX's persistent cache. (Queueing a configuration per worker
instead would leave one queued trial behind now and then: a worker that loses the race for
the only queued trial it has seen samples a new one, as Optuna's ask does.)"""

from __future__ import annotations

import json

import pytest
from optuna.trial import TrialState
from reliability_helpers import (
    PostgresServer,
    Tuner,
    fixed_params,
    load_trials,
    tune_args,
    warm_compile_cache,
)

from bb_jax.tuning.space import tuning_seeds

SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer().start()
    yield server
    server.stop()


def _url(backend: str, tmp_path, request) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if backend == "journal":
        return f"journal:///{tmp_path / 'study.log'}"
    return request.getfixturevalue("postgres").create_database("paired")


# the journal case is slow-tier: test_reliability.py's two journal workers cover that storage
@pytest.mark.parametrize("backend", [
    "sqlite", pytest.param("journal", marks=pytest.mark.slow), "postgresql"])
def test_workers_with_other_seeds_train_on_the_study_seeds(backend, tmp_path, request):
    url = _url(backend, tmp_path, request)
    warm_compile_cache()
    out = tmp_path / "out"
    fixed = ",".join(f"{name}={value}" for name, value in fixed_params(0).items())
    # one host device each, like this process: the warmed program is theirs too
    workers = [Tuner(tune_args("paired", url, out, 1, "--seed", str(seed), "--fix", fixed),
                     tmp_path / "logs", f"worker{seed}", env={"JAX_NUM_CPU_DEVICES": "1"})
               for seed in SEEDS]
    for worker in workers:
        assert worker.wait() == 0, worker.output()
    trials = load_trials(url, "paired")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(SEEDS)
    seeds = [t.user_attrs["seeds"] for t in trials]
    # one worker created the study; its --seed gave every trial's seeds
    assert seeds[0] in [tuning_seeds(seed, 2) for seed in SEEDS]
    assert seeds == [seeds[0]] * len(SEEDS)
    for worker in workers:  # each worker writes the results when it ends
        assert "results:" in worker.stdout
    results = json.loads((out / "paired_results.json").read_text())
    assert results["tuning_seeds"] == seeds[0]
    assert [t["user_attrs"]["seeds"] for t in results["trials"]] == seeds


def test_a_worker_that_finds_the_study_new_waits_for_its_creator(tmp_path):
    """The creator of a study may take a while to record its settings (a --time-budget
    calibration compiles and trains first): a worker that finds the study with neither
    settings nor trials waits for them instead of recording its own --seed's."""
    import threading
    import time

    import optuna

    from bb_jax.tuning import study as study_module
    from bb_jax.tuning.settings import TuneSettings
    from bb_jax.tuning.study import open_study

    url = f"sqlite:///{tmp_path / 'study.db'}"
    creator = TuneSettings(storage=url, study_name="new", seed=1, num_steps=4096)
    study = optuna.create_study(study_name="new", storage=url, direction="maximize")
    seen = {}

    def worker():
        opened = open_study(TuneSettings(storage=url, study_name="new", seed=2, num_steps=4096))
        seen["seeds"] = opened.user_attrs["tuning_seeds"]

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(study_module.SETTLE_S + 1.0)  # longer than a recording worker's settling pause
    study_module._record_settings(study, creator)
    study.set_user_attr("tuning_seeds", tuning_seeds(1, creator.seeds_per_trial))
    thread.join(timeout=60)
    assert seen["seeds"] == tuning_seeds(1, creator.seeds_per_trial)
