"""--strategy auto: the sampler its rule picks per number of trials, recorded in the study and
passed to the --n-jobs workers; nothing is trained."""

from __future__ import annotations

import pytest

from bb_jax.cli import tune_main
from bb_jax.cli.tune import worker_command
from bb_jax.cli.tune_args import tune_parser, tune_settings
from bb_jax.tuning.samplers import SAMPLERS
from bb_jax.tuning.settings import AUTO_SAMPLERS, auto_sampler
from bb_jax.tuning.study import open_study


def parsed(tmp_path, *extra: str):
    return tune_parser().parse_args(
        ["--num-steps", "4096", "--eval-interval", "4096", "--output-dir",
         str(tmp_path / "out"), *extra])


def test_rule_table_is_ordered_and_ends_unbounded():
    bounds = [row[0] for row in AUTO_SAMPLERS]
    assert bounds[-1] is None and all(isinstance(b, int) for b in bounds[:-1])
    assert bounds[:-1] == sorted(bounds[:-1])
    assert all(row[1] in SAMPLERS and row[2] for row in AUTO_SAMPLERS)


@pytest.mark.parametrize("n_trials, sampler", [(1, "random"), (10, "random"), (11, "tpe"),
                                                (32, "tpe"), (1000, "tpe")])
def test_auto_resolves_per_number_of_trials(tmp_path, n_trials, sampler):
    assert auto_sampler(n_trials)["sampler"] == sampler
    settings = tune_settings(parsed(tmp_path, "--strategy", "auto", "--n-trials", str(n_trials)))
    assert (settings.strategy, settings.sampler) == ("auto", sampler)
    assert settings.auto_rule == auto_sampler(n_trials)


def test_without_auto_the_sampler_is_the_flag_or_tpe(tmp_path):
    assert tune_settings(parsed(tmp_path, "--n-trials", "4")).sampler == "tpe"
    settings = tune_settings(parsed(tmp_path, "--sampler", "random", "--n-trials", "40"))
    assert (settings.sampler, settings.strategy, settings.auto_rule) == ("random", "tpe", None)


def test_auto_with_a_sampler_is_refused(tmp_path, capsys):
    code = tune_main(["--strategy", "auto", "--sampler", "tpe", "--num-steps", "8192",
                      "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--strategy auto" in err[0], err
    assert not (tmp_path / "out").exists()


def test_auto_choice_is_recorded_in_the_study(tmp_path):
    settings = tune_settings(parsed(tmp_path, "--strategy", "auto", "--n-trials", "6"))
    study = open_study(settings)
    assert study.user_attrs["sampler"] == "random"
    assert study.user_attrs["strategy"] == "auto"
    assert study.user_attrs["auto_rule"]["max_trials"] == AUTO_SAMPLERS[0][0]
    assert "pbt_quality" in study.user_attrs["auto_rule"]["basis"]


def test_workers_get_the_parent_sampler_not_their_own_choice(tmp_path):
    """A worker's share of 12 trials is 6, for which auto would pick random: it must run the
    parent's tpe."""
    args = parsed(tmp_path, "--strategy", "auto", "--n-trials", "12", "--study-name", "w",
                  "--storage", f"sqlite:///{tmp_path}/s.db")
    parent = tune_settings(args)
    argv, _ = worker_command(args, parent, 1, 6)
    worker = tune_settings(tune_parser().parse_args(argv[3:]))
    assert parent.sampler == worker.sampler == "tpe"
