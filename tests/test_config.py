"""Each tunable setting is declared once, on its field (`bb_jax.agent.config`): its default,
flag and search range reach the defaults dict, the search space and train_simple.py's flags."""

from __future__ import annotations

import dataclasses

from optuna.distributions import CategoricalDistribution

from bb_jax.agent.config import (
    DEFAULT_HYPERPARAMS,
    TUNABLE_FIELDS,
    PPOConfig,
    PPOHyperparams,
    make_hyperparams,
)
from bb_jax.cli.train import _train_parser
from bb_jax.tuning.space import SAMPLING_ORDER, SEARCH_SPACE, TRAIN_FLAGS, control_params


def test_every_searched_field_is_sampled_once_and_every_hyperparameter_has_a_default():
    searched = [f.name for f in TUNABLE_FIELDS if f.metadata["search"] is not None]
    assert sorted(SAMPLING_ORDER) == sorted(searched) == sorted(SEARCH_SPACE)
    assert list(DEFAULT_HYPERPARAMS) == [f.name for f in dataclasses.fields(PPOHyperparams)]
    assert make_hyperparams().num_epochs.dtype.name == "int32"
    assert make_hyperparams().learning_rate.dtype.name == "float32"


def test_the_control_is_inside_the_search_space():
    for name, value in control_params().items():
        distribution = SEARCH_SPACE[name]
        if isinstance(distribution, CategoricalDistribution):
            assert value in distribution.choices, name
        else:
            assert distribution.low <= value <= distribution.high, name


def test_train_flags_carry_every_searched_value_and_default():
    """train_simple.py parses each searched parameter's flag (the one printed commands use)
    into that parameter, and its default is the field's."""
    parser = _train_parser()
    defaults = parser.parse_args([])
    for f in TUNABLE_FIELDS:
        assert getattr(defaults, f.name) == f.default, f.name
    assert (defaults.hidden_size, defaults.batch_size) == (PPOConfig.hidden_size,
                                                           PPOConfig.batch_size)
    values = {}
    for name, distribution in SEARCH_SPACE.items():
        if isinstance(distribution, CategoricalDistribution):
            values[name] = distribution.choices[-1]
        else:
            values[name] = distribution.high
    argv = [token for name, value in values.items() for token in (TRAIN_FLAGS[name], str(value))]
    parsed = parser.parse_args(argv)
    assert {name: getattr(parsed, name) for name in values} == values


def test_every_option_of_the_three_command_lines_shows_its_default():
    """--help of train_simple.py, tune_hyperparameters.py and validate_best.py: every option
    (but --help) says its default, and no help text shows a doubled percent sign."""
    import argparse
    import re

    from bb_jax.cli.tune_args import tune_parser
    from bb_jax.cli.validate import _validate_parser

    for parser in (_train_parser(), tune_parser(), _validate_parser()):
        text = parser.format_help()
        assert "%%" not in text
        options = text.split("options:", 1)[1]
        blocks = re.split(r"\n(?=  -)", options.strip("\n"))
        shown = [b for b in blocks if not b.lstrip().startswith("-h, --help")]
        assert len(shown) == len([a for a in parser.options if a.dest != "help"
                                  and a.help != argparse.SUPPRESS])
        for block in shown:
            assert "default" in block, block


def test_a_train_command_line_parses_back_to_the_same_settings():
    """What --resume relies on: train_simple.py's settings written back as a command line
    (lists, --no-time-input, floats) parse into the same settings."""
    from bb_jax.cli.common import command_line

    parser = _train_parser()
    argv = ["--scenario", "easy,hard", "--seeds", "3", "4", "--no-time-input", "--lr", "1e-4",
            "--critic", "shared", "--opponents", "hero", "liar", "--num-steps", "4096"]
    parsed = parser.parse_args(argv)
    assert parser.parse_args(command_line(parser, parsed)) == parsed
