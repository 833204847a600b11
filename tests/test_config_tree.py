"""The declared settings tree (`bb_jax.config`): a setting added from outside the package is
one declaration and shows up as a flag whose value reaches the tree, is range-checked with one
line naming the flag, is stored as JSON and read back, and a stored study config diffs against
the current one by the fields that differ. Cheap: parsing only, no training."""

from __future__ import annotations

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import pytest
from flax import struct

from bb_jax.agent.config import PPOConfig, PPOHyperparams, ShapeChoices, resolve, tunable
from bb_jax.cli.tune_args import tune_parser, tune_settings
from bb_jax.config import (
    Search,
    SettingError,
    Valid,
    add_flags,
    declared,
    differences,
    from_flags,
    from_json,
    setting,
    to_json,
)
from bb_jax.tuning.settings import TuneSettings


@dataclasses.dataclass(frozen=True)
class WiderTune(TuneSettings):
    """The tuner's settings and one new static setting, declared outside the package."""

    rollout_cap: int = setting(7, "--rollout-cap", "a new static setting",
                               valid=Valid(1, 10, integer=True), study=True)


@struct.dataclass
class WiderHyperparams(PPOHyperparams):
    """The traced hyperparameters and one new one, declared outside the package."""

    aux_coef: jnp.ndarray = tunable(0.5, "--aux-coef", "a new traced hyperparameter",
                                    Search(low=0.1, high=1.0), valid=Valid(0, 1))


@dataclasses.dataclass(frozen=True)
class WiderConfig(PPOConfig):
    """The run's static settings and one new one, declared outside the package."""

    frame_skip: int = setting(1, "--frame-skip", "a new static setting",
                              valid=Valid(1, 8, integer=True), traced=False)


def _parser(cls) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_flags(parser, cls)
    return parser


def test_a_new_static_setting_is_one_declaration():
    parser = _parser(WiderTune)
    assert "--rollout-cap" in parser.format_help()
    args = parser.parse_args(["--rollout-cap", "3", "--num-opponents", "4"])
    settings = from_flags(WiderTune, args, "cpu", space_rules={})
    assert settings.rollout_cap == 3 and settings.num_opponents == 4
    assert from_flags(WiderTune, parser.parse_args([]), "cpu", space_rules={}).rollout_cap == 7
    with pytest.raises(SettingError, match=r"^--rollout-cap must be in 1\.\.10, got 11$"):
        from_flags(WiderTune, parser.parse_args(["--rollout-cap", "11"]), "cpu")


def test_a_new_static_run_setting_reaches_the_config_as_train_simple_builds_it():
    """train_simple.py's flags for the static config are generated from PPOConfig's declared
    fields and the config is built from them (`from_flags`): a new field is one declaration,
    and being static it keys another compiled program."""
    parser = _parser(WiderConfig)
    assert "--frame-skip" in parser.format_help() and "--critic" in parser.format_help()
    args = parser.parse_args(["--frame-skip", "4", "--critic", "shared"])
    config = from_flags(WiderConfig, args, scenario="easy", num_opponents=2, opponents=None,
                        total_steps=4096)
    assert (config.frame_skip, config.critic, config.scenario) == (4, "shared", "easy")
    assert config != config.replace(frame_skip=2)
    assert hash(config) != hash(config.replace(frame_skip=2))
    with pytest.raises(SettingError, match="--frame-skip must be in 1..8"):
        from_flags(WiderConfig, parser.parse_args(["--frame-skip", "9"]))


def test_a_new_traced_hyperparameter_is_one_declaration():
    parser = _parser(WiderHyperparams)
    assert "--aux-coef" in parser.format_help() and "--lr" in parser.format_help()
    values = vars(parser.parse_args(["--aux-coef", "0.25"]))
    assert values["aux_coef"] == 0.25
    hyperparams = WiderHyperparams(**{k: jnp.float32(v) for k, v in values.items()})
    leaves = jax.tree_util.tree_leaves(hyperparams)  # traced: a pytree leaf like the others
    assert len(leaves) == len(dataclasses.fields(PPOHyperparams)) + 1
    assert float(hyperparams.aux_coef) == 0.25


def test_the_settings_tree_round_trips_through_json():
    settings = tune_settings(tune_parser().parse_args(
        ["--scenario", "easy,hard", "--num-steps", "8192", "--fix", "hidden_size=128",
         "--pbt-margin", "1.5", "--no-validate"]))
    saved = to_json(settings)
    assert saved["scenarios"] == ["easy", "hard"] and saved["pbt"]["margin"] == 1.5
    assert from_json(TuneSettings, saved) == settings


def test_auto_values_are_resolved_once_and_stored_resolved():
    args = tune_parser().parse_args(["--num-steps", "8192"])
    assert args.population_size == "auto" and args.space == "auto"
    on_gpu = from_flags(TuneSettings, args, "gpu", space_rules={})
    on_cpu = from_flags(TuneSettings, args, "cpu", space_rules={})
    assert (on_gpu.population_size, on_gpu.shapes, on_gpu.seeds_per_trial, on_gpu.space) == \
        (16, "padded", 4, "full")
    assert (on_cpu.population_size, on_cpu.shapes, on_cpu.seeds_per_trial, on_cpu.space) == \
        (1, "exact", 2, "small")
    assert to_json(on_gpu)["population_size"] == 16


def test_the_tuner_settings_are_frozen_and_settling_returns_a_new_tree():
    """What a run settles (its study name) comes back as a new tree; the one asked for is
    left as it was."""
    asked = TuneSettings(space_rules={}, space="full", scenario_arg="easy,hard")
    with pytest.raises(dataclasses.FrozenInstanceError):
        asked.study_name = "x"
    named = asked.named()
    assert asked.study_name is None and named.study_name.startswith("bb_easy+hard_")
    assert named.named() is named


def test_a_config_built_without_resolve_does_not_read_the_backend(monkeypatch):
    """Configs and settings make a CPU's choices until `resolve` names the run's backend:
    building them never asks JAX, so the same config is the same program anywhere."""
    def no_backend():
        raise AssertionError("a config read the JAX backend")

    monkeypatch.setattr(jax, "default_backend", no_backend)
    config = PPOConfig(batch_size=1024)
    assert (config.backend, config.num_envs, config.static_epochs) == ("cpu", 16, False)
    assert ShapeChoices((64, 128), (512, 2048)).config(config).num_envs == 16
    assert TuneSettings(space_rules={}).space == "small"


def test_resolve_stores_the_backend_choices_in_the_config():
    on_gpu = resolve(PPOConfig(batch_size=1024), "gpu")
    assert (on_gpu.backend, on_gpu.num_envs, on_gpu.static_epochs) == ("gpu", 64, True)
    assert ShapeChoices((64,), (512, 2048)).config(on_gpu).num_envs == 128
    assert resolve(PPOConfig(batch_size=1024), "gpu", num_envs=32).num_envs == 32
    assert resolve(on_gpu, "cpu") == PPOConfig(batch_size=1024)
    stored = to_json(on_gpu)
    assert (stored["backend"], stored["num_envs"]) == ("gpu", 64)
    assert from_json(PPOConfig, stored) == on_gpu


def test_a_study_mismatch_is_a_diff_naming_every_field_that_differs():
    base = to_json(WiderTune(space_rules={}, space="full"))
    other = to_json(WiderTune(space_rules={}, space="full", num_opponents=3, rollout_cap=2,
                              n_trials=5))
    assert [d[1:] for d in differences(WiderTune, base, other)] == [
        ("--num-opponents", "2", "3"), ("--rollout-cap", "7", "2")]
    assert differences(WiderTune, {"num_opponents": 2}, other) == [
        ("num_opponents", "--num-opponents", "2", "3")]


def test_every_flag_of_the_tuner_is_a_declared_field():
    """One declaration per flag: the tuner's parser has exactly the tree's flags."""
    flags = {option for action in tune_parser().options for option in action.option_strings}
    assert flags - {"-h", "--help"} == {f.metadata["flag"] for _, f in declared(TuneSettings)}


def test_resume_reads_the_stored_config_back_with_num_envs_resolved(tmp_path):
    """train_simple.py stores its settings as JSON (num_envs resolved for the backend it
    started on) and --resume reads them back instead of replaying a command line; a run
    stored before that (its argv) still resumes."""
    import json

    from bb_jax.cli.train import RUN_FILE, _train_parser, resumed_args, run_settings

    parser = _train_parser()
    given = parser.parse_args(["--scenario", "easy", "--lr", "1e-4", "--seeds", "3", "4",
                               "--no-time-input", "--overwrite"])
    (tmp_path / RUN_FILE).write_text(json.dumps(run_settings(given, num_envs=32)))
    resumed = resumed_args(parser, parser.parse_args(["--resume", str(tmp_path)]))
    assert resumed.num_envs == 32 and resumed.learning_rate == 1e-4
    assert resumed.seeds == [3, 4] and resumed.time_input is False
    assert not resumed.overwrite and resumed.save_path == str(tmp_path)
    assert {k: v for k, v in vars(resumed).items() if k not in ("num_envs", "resume",
            "save_path", "overwrite")} == \
        {k: v for k, v in vars(given).items() if k not in ("num_envs", "resume", "save_path",
                                                            "overwrite")}
    (tmp_path / RUN_FILE).write_text(json.dumps({"argv": ["--scenario", "hard"]}))
    assert resumed_args(parser, parser.parse_args(["--resume", str(tmp_path)])).scenario == \
        "hard"


def test_the_generated_command_line_gives_what_the_hand_written_copy_gave(tmp_path):
    """Same flags, same settings (so the same study, seeds and trials): TuneSettings as the
    hand-written parser and its field-by-field copy built it before (reproduced here on a
    CPU: auto = one trial per batch, exact shapes, 2 seeds per trial, the small space)."""
    from bb_jax.tuning.space import load_space

    if jax.default_backend() != "cpu":
        pytest.skip("the reproduced settings are a CPU's auto choices")
    argv = ["--scenario", "easy,hard", "--num-opponents", "3", "--num-steps", "8192",
            "--n-trials", "7", "--seed", "5", "--eval-interval", "4096", "--pruner", "sha",
            "--eta", "4", "--min-fraction", "0.2", "--sampler", "random", "--fix",
            "hidden_size=128", "--output-dir", str(tmp_path), "--objective", "eval_return"]
    new = tune_settings(tune_parser().parse_args(argv))
    space = load_space("small", ("easy", "hard")).fixed({"hidden_size": 128})
    old = TuneSettings(
        scenarios=("easy", "hard"), num_opponents=3, num_steps=8192, n_trials=7, seed=5,
        eval_interval=4096, pruner="sha", study_name=None, storage=None, population_size=1,
        objective="eval_return", eval_episodes=200, enqueue=(), output_dir=tmp_path,
        scenario_arg="easy,hard", max_population=1024, worker_index=0, seeds_per_trial=2,
        sampler="random", strategy="tpe", auto_rule=None, timeout=None, prune_alpha=0.05,
        warmup_fraction=0.25, sha_eta=4, sha_min_fraction=0.2, shapes="exact",
        flop_budget=None, time_budget=None, objectives=("return",),
        fixed={"hidden_size": 128}, space="small", space_rules=space.rules,
        incumbent=space.walk({}, fit=True)[0], warm_start_from=None, callbacks=(),
        mlflow_uri=None)
    assert new == old
