"""PBT on the tuner's parts: explore draws and moves within the Optuna distributions the
study's sampler drew the members from (the same values as from the declared ranges, which the
full space repeats), a PBT study is opened by the tuner's study opener and a resume with other
settings is a diff of the stored settings tree naming the fields. Cheap: no training."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import optuna
import pytest

from bb_jax.agent.config import DEFAULT_HYPERPARAMS
from bb_jax.cli.tune_args import tune_parser
from bb_jax.cli.tune_pbt import check_pbt
from bb_jax.tuning import pbt
from bb_jax.tuning.pbt import PBTRule
from bb_jax.tuning.space import search_space
from bb_jax.tuning.study import StudyMismatchError, open_pbt_study, study_config


def _declared_draw(search, rng) -> float:
    """A redraw as explore made it from the declared `Search` before the ranges were the
    study's distributions (reproduced: uniform in the declared scale)."""
    if search.integer:
        return int(rng.integers(int(search.low), int(search.high) + 1))
    if search.log:
        return float(math.exp(rng.uniform(math.log(search.low), math.log(search.high))))
    return float(rng.uniform(search.low, search.high))


def test_explore_from_the_studys_distributions_repeats_the_declared_ranges_draws():
    space = search_space()
    rule = PBTRule(resample_probability=1.0,
                   ranges={name: space[name] for name in pbt.SEARCHED})
    rng, before = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(50):
        new = pbt.explore(DEFAULT_HYPERPARAMS, rule, rng)
        for name, search in pbt.SEARCHED.items():
            before.random()  # the resample coin explore tosses first
            assert new[name] == _declared_draw(search, before), name
    moves = dataclasses.replace(rule, resample_probability=0.0)
    declared = PBTRule(resample_probability=0.0)  # the declared ranges, as before
    a, b = np.random.default_rng(4), np.random.default_rng(4)
    for _ in range(50):
        assert pbt.explore(DEFAULT_HYPERPARAMS, moves, a) == \
            pbt.explore(DEFAULT_HYPERPARAMS, declared, b)


def test_explore_keeps_to_a_narrowed_range():
    narrow = {"learning_rate": optuna.distributions.FloatDistribution(1e-4, 2e-4, log=True),
              "num_epochs": optuna.distributions.IntDistribution(4, 5)}
    rng = np.random.default_rng(0)
    for probability in (0.0, 0.5, 1.0):
        rule = PBTRule(resample_probability=probability, explored=tuple(narrow),
                       ranges=narrow)
        row = {**DEFAULT_HYPERPARAMS, "learning_rate": 1.5e-4, "num_epochs": 4}
        for _ in range(300):
            row = pbt.explore(row, rule, rng)
            assert 1e-4 <= row["learning_rate"] <= 2e-4 and row["num_epochs"] in (4, 5)


def _argv(tmp_path, *extra) -> list[str]:
    return ["--strategy", "pbt", "--scenario", "easy", "--population-size", "4",
            "--num-steps", "2048", "--pbt-interval", "1024", "--fix", "batch_size=512",
            "--eval-episodes", "4", "--storage", f"sqlite:///{tmp_path}/pbt.db",
            "--study-name", "pbt", "--output-dir", str(tmp_path / "out"), *extra]


def test_check_pbt_explores_within_the_space_its_members_are_drawn_from(tmp_path):
    plan = check_pbt(tune_parser().parse_args(_argv(tmp_path, "--fix",
                                                    "batch_size=512,gamma=0.99")))
    assert "gamma" not in plan["rule"].explored
    for name in plan["rule"].explored:
        assert plan["rule"].ranges[name] == plan["space"][name]


def test_a_pbt_resume_with_other_settings_names_the_fields_that_differ(tmp_path):
    from bb_jax.tuning.storage import make_storage

    plan = check_pbt(tune_parser().parse_args(_argv(tmp_path)))
    storage = make_storage(plan["settings"].storage, heartbeat_interval=None)
    study, saved = open_pbt_study(plan["settings"], storage)
    assert saved is None
    study.set_user_attr("pbt_plan", {"config": study_config(plan["settings"]),
                                     "checkpoints": "x", "trials": []})
    assert open_pbt_study(plan["settings"], storage)[1]["checkpoints"] == "x"
    other = check_pbt(tune_parser().parse_args(_argv(tmp_path, "--pbt-margin", "1",
                                                     "--seed", "5")))
    with pytest.raises(StudyMismatchError, match=r"other settings \(seed, margin\)"):
        open_pbt_study(dataclasses.replace(other["settings"], study_name="pbt"), storage)
