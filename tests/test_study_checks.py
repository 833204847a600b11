"""Resuming a study with settings that make its trials incomparable is refused: another FLOP
budget, or a learner whose defaults changed since the study recorded them. Quick: the study is
opened on a SQLite file and nothing trains."""

from __future__ import annotations

import optuna
import pytest

from bb_jax.agent.config import PPOConfig
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.study import StudyMismatchError, open_study, settled


def settings(url: str, **changes) -> TuneSettings:
    return TuneSettings(storage=url, study_name="kept", num_steps=4096, seeds_per_trial=2,
                        **changes)


def test_resume_with_another_flop_budget_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'budget.db'}"
    open_study(settings(url, flop_budget=1e11))
    with pytest.raises(StudyMismatchError, match="created with --flop-budget 1e[+]11"):
        open_study(settings(url, flop_budget=2e11))
    same = settings(url, flop_budget=1e11)
    assert settled(same, open_study(same)).flop_budget == 1e11
    unset = settings(url)  # no --flop-budget: the study's own
    assert settled(unset, open_study(unset)).flop_budget == 1e11
    assert unset.flop_budget is None  # the settings asked for stay as they were


def test_resume_with_another_learner_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'learner.db'}"
    study = open_study(settings(url))
    assert study.user_attrs["learner"] == PPOConfig().learner_choices
    open_study(settings(url))  # the same learner resumes
    older = {**PPOConfig().learner_choices, "time_input": not PPOConfig.time_input}
    optuna.load_study(study_name="kept", storage=url).set_user_attr("learner", older)
    with pytest.raises(StudyMismatchError,
                       match=f"trained with the learner .*time_input={not PPOConfig.time_input}"):
        open_study(settings(url))
