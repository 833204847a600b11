"""scripts/evaluate.py on a tiny saved run: the policy's figure with its interval beside every
baseline in the learner's seat, reproducible from its key (slow: it trains the run); an
untrained saved network read back and evaluated; usage errors in one line."""

from __future__ import annotations

import json

import pytest

from bb_jax.cli import evaluate_main, train_main
from bb_jax.train.baselines import BASELINES


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory):
    """A saved run's files for an initialised, untrained network (no training compiles)."""
    import jax
    from flax import serialization

    from bb_jax.train.config import DEFAULT_HYPERPARAMS, PPOConfig
    from bb_jax.train.ppo import PPO
    from bb_jax.train.runs import config_json

    folder = tmp_path_factory.mktemp("untrained")
    config = PPOConfig(scenario="easy", hidden_size=32, batch_size=512, total_steps=4096)
    ppo = PPO(config)
    (folder / "config.json").write_text(json.dumps(
        {"seeds": [1, 2], "scenarios": ["easy"], **config_json(config, DEFAULT_HYPERPARAMS)}))
    for seed in (1, 2):
        params = ppo.network.init(jax.random.PRNGKey(seed),
                                  jax.numpy.zeros((ppo.input_size,)))
        (folder / f"params_seed{seed}.msgpack").write_bytes(serialization.to_bytes(params))
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate") / "run"
    assert train_main(["--scenario", "easy", "--num-steps", "4096", "--batch-size", "512",
                       "--hidden-size", "32", "--seeds", "1", "2", "--eval-episodes", "8",
                       "--save-path", str(folder)]) == 0
    return folder


@pytest.mark.slow
def test_the_policy_beside_every_baseline(run_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert evaluate_main([str(run_dir), "--opponents", "hero,liar", "--episodes", "64",
                          "--results-json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("easy against hero, liar (64 fresh episodes")
    assert "policy (sampled)" in lines[1] and "95% CI over 2 seeds" in lines[1]
    assert sorted(line.split()[0] for line in lines[2:]) == sorted(BASELINES)
    figures = json.loads(out.read_text())
    assert figures["opponents"] == ["hero", "liar"]
    assert set(figures["policy"]["per_seed"]) == {"1", "2"}
    assert 0 < figures["policy"]["ci95"] < 500
    # the same key gives the same figures; another key other episodes
    assert evaluate_main([str(run_dir), "--opponents", "hero,liar", "--episodes", "64",
                          "--results-json", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text()) == figures
    assert evaluate_main([str(run_dir), "--opponents", "hero,liar", "--episodes", "64",
                          "--seed", "1", "--results-json", str(tmp_path / "other.json")]) == 0
    assert json.loads((tmp_path / "other.json").read_text())["policy"] != figures["policy"]


@pytest.mark.parametrize("argv,message", [
    (["{run}", "--opponents", "hero,ghost"], "unknown opponent kind 'ghost'; valid kinds:"),
    (["{run}", "--opponents", "hero"], "--opponents needs 2 kinds"),
    (["{run}", "--scenario", "nowhere"], "unknown scenario 'nowhere'; valid scenarios:"),
    (["{tmp}"], "holds no finished run"),
    (["{run}", "--episodes", "1"], "--episodes must be >= 2"),
])
def test_usage_errors(untrained_run, tmp_path, capsys, argv, message):
    code = evaluate_main([a.format(run=untrained_run, tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_an_untrained_run_reads_back_and_plays(untrained_run, capsys):
    assert evaluate_main([str(untrained_run), "--episodes", "16", "--greedy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "policy (greedy)" in lines[1] and len(lines) == 2 + len(BASELINES)
