"""--warm-start-from: a new study queues the source study's best configurations and adds its
finished trials for the sampler; a resume adds nothing. Studies are asked here, nothing is
trained."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from bb_jax.cli import tune_main
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.space import control_params
from bb_jax.tuning.study import open_study
from bb_jax.tuning.validation import top_candidates
from bb_jax.tuning.warm_start import WARM_START_TOP, copied

RATES = (1e-4, 2e-4, 3e-4, 4e-4, 5e-4)
VALUES = (10.0, 50.0, 20.0, 40.0, 30.0)  # trial 1 best by tuning value, then 3, 4


def source_study(url: str) -> optuna.Study:
    """Five complete trials of learning rates RATES (small space), and a validation in which
    trial 4 beat the control and trial 1 did not."""
    settings = TuneSettings(storage=url, study_name="src", num_steps=4096, space="small",
                            seeds_per_trial=2)
    study = open_study(settings)
    for rate, value in zip(RATES, VALUES, strict=True):
        study.enqueue_trial({**control_params(), "learning_rate": rate})
        trial = study.ask()
        settings.search_space().suggest(trial)
        study.tell(trial, value)
    rows = [{"trial": 4, "params": study.trials[4].params, "mean": 35.0,
             "vs_control": {"mean": 5.0, "significant": True}},
            {"trial": 1, "params": study.trials[1].params, "mean": 36.0,
             "vs_control": {"mean": 1.0, "significant": False}},
            {"trial": "control", "params": control_params(), "mean": 30.0}]
    study.set_user_attr("validation", {"rows": rows, "recommended": 4})
    return study


def warm_settings(url: str, **extra) -> TuneSettings:
    return TuneSettings(storage=url, study_name="warm", num_steps=4096, space="small",
                        seeds_per_trial=2, warm_start_from="src", **extra)


def test_the_sources_configurations_come_first_and_its_trials_are_added(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    source_study(url)
    incumbent = control_params()
    settings = warm_settings(url, incumbent=incumbent)
    study = open_study(settings)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    # the incumbent, then the validated winner, then the best by tuning value
    assert [t.user_attrs.get("source_trial") for t in waiting] == [None, 4, 1, 3][
        :1 + WARM_START_TOP]
    assert all(t.user_attrs["warm_start_from"] == "src" for t in waiting[1:])
    copies = [t for t in study.get_trials() if copied(t)]
    assert sorted(t.user_attrs["copied_trial"] for t in copies) == [0, 1, 2, 3, 4]
    assert all(t.state == TrialState.COMPLETE for t in copies)
    assert sorted(t.value for t in copies) == sorted(VALUES)
    space = settings.search_space()
    asked = []
    for _ in range(3):
        trial = study.ask()
        asked.append(space.suggest(trial))
        study.tell(trial, 0.0)
    assert asked == [incumbent, {**control_params(), "learning_rate": RATES[4]},
                     {**control_params(), "learning_rate": RATES[1]}]
    # the copies' values were measured elsewhere: validation never takes them for its own
    assert all(c.trial not in {t.number for t in copies} for c in top_candidates(study, 10))


def test_a_resumed_warm_study_queues_and_adds_nothing_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    source_study(url)
    first = open_study(warm_settings(url))
    before = len(first.get_trials())
    again = open_study(warm_settings(url))
    assert len(again.get_trials()) == before


def test_the_source_may_live_in_another_storage(tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}"
    source_study(other)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(TuneSettings(storage=url, study_name="warm", num_steps=4096,
                                    space="small", seeds_per_trial=2,
                                    warm_start_from=f"src@{other}"))
    assert len([t for t in study.get_trials() if copied(t)]) == len(RATES)


def test_configurations_outside_the_space_are_left_out(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    source_study(url)
    study = open_study(warm_settings(url, fixed={"learning_rate": 3e-4}))
    assert [t.user_attrs["source_trial"]
            for t in study.get_trials(states=(TrialState.WAITING,))] == [2]
    assert [t.user_attrs["copied_trial"] for t in study.get_trials() if copied(t)] == [2]


def test_an_unknown_source_is_one_line_and_nothing_is_written(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    source_study(url)
    code = tune_main(["--warm-start-from", "nowhere", "--storage", url, "--study-name", "w",
                      "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "no study 'nowhere'" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    assert optuna.study.get_all_study_names(url) == ["src"]


def test_a_worker_command_line_never_carries_the_source_storage():
    """The source may name a storage with a password: --n-jobs workers do not need it (the
    study holds what the warm start queued), so it stays off their command lines."""
    import types

    from bb_jax.cli import worker_command
    from bb_jax.cli.tune_args import tune_parser

    source = "src@postgresql://bb:Secret9@127.0.0.1/db"
    args = tune_parser().parse_args(["--warm-start-from", source])
    settings = types.SimpleNamespace(study_name="w", storage="sqlite:///w.db", sampler="tpe")
    argv, _ = worker_command(args, settings, 1, 2)
    assert "--warm-start-from" not in argv and not any("Secret9" in a for a in argv)


def test_the_sources_incumbent_and_holm_rejected_winners_are_not_queued(tmp_path):
    """The source's best trial is its incumbent (the defaults): the warm study's own trial 0
    already is that configuration, so it is not queued again; a row significant alone but not
    after the source's Holm correction is no validated winner."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    source = source_study(url)
    source.enqueue_trial(control_params())
    trial = source.ask()
    TuneSettings(space="small").search_space().suggest(trial)
    source.tell(trial, 99.0)
    rows = source.user_attrs["validation"]["rows"]
    rows[0]["vs_control"] = {"mean": 5.0, "significant": True, "beats_control": False}
    source.set_user_attr("validation", {"rows": rows, "recommended": None})
    study = open_study(warm_settings(url, incumbent=control_params()))
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs.get("source_trial") for t in waiting] == [None, 1, 3, 4][
        :1 + WARM_START_TOP]
