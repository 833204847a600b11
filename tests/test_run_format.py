"""A finished run's format: `save_run` writes each member's parameters as an orbax folder (the
checkpoints' format) that `load_run` restores bit-identical; a run saved before, in flax msgpack
by the writer reproduced here, loads with the same parameters and plays the same episodes; a
network that does not match is one line naming the run's file and what differs."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import serialization

from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig
from bb_jax.agent.ppo import PPO
from bb_jax.runtime.checkpoints import save_params
from bb_jax.runtime.runs import SeedRun
from bb_jax.runtime.saved_runs import (
    DIAGNOSTICS,
    config_json,
    load_params,
    load_run,
    save_run,
    saved_files,
)

CONFIG = PPOConfig(scenario="easy", hidden_size=8, batch_size=256, total_steps=512)
SEEDS = (3, 4)
SCENARIOS = ["easy", "default"]


def _networks(config: PPOConfig = CONFIG) -> list[dict]:
    """Initialised parameters (host numpy) of one member per (seed, scenario), seed-major."""
    ppo = PPO(config)
    return [jax.device_get(ppo.network.init(jax.random.PRNGKey(10 * seed + k),
                                            np.zeros(ppo.input_size, np.float32)))
            for seed in SEEDS for k in range(len(SCENARIOS))]


class _Members:
    """The one thing `save_run` asks of a population: each member's parameters."""

    def __init__(self, networks):
        self.networks = networks

    def member_params(self, i: int):
        return self.networks[i]


def _seed_run(networks) -> SeedRun:
    curves = {key: np.linspace(0.0, 1.0, 2 * len(networks), dtype=np.float32).reshape(-1, 2)
              for key in ("env_steps", "mean_return", *DIAGNOSTICS)}
    return SeedRun(CONFIG, dict(DEFAULT_HYPERPARAMS), list(SEEDS), curves,
                   np.zeros((len(networks), 2)), np.zeros((len(networks), 2)), 0.0,
                   _Members(networks), SCENARIOS)


def _write_msgpack_run(folder, networks) -> None:
    """A finished run as `save_run` wrote it before orbax: config.json beside one flax msgpack
    file of each member's parameters."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(
        {"run_name": "old", "seeds": list(SEEDS), "scenarios": SCENARIOS,
         **config_json(CONFIG, DEFAULT_HYPERPARAMS)}, indent=2))
    members = [(seed, name) for seed in SEEDS for name in SCENARIOS]
    for (seed, name), params in zip(members, networks, strict=True):
        (folder / f"params_seed{seed}_{name}.msgpack").write_bytes(
            serialization.to_bytes(params))


def _assert_identical(run, networks) -> None:
    members = [(seed, name) for seed in SEEDS for name in SCENARIOS]
    assert list(run.params) == members
    for member, params in zip(members, networks, strict=True):
        loaded = run.params[member]
        assert jax.tree.structure(loaded) == jax.tree.structure(params)
        for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params), strict=True):
            assert isinstance(a, np.ndarray) and a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_a_saved_run_is_orbax_folders_restored_bit_identical(tmp_path):
    networks = _networks()
    paths = save_run(_seed_run(networks), tmp_path / "run", "new")
    folders = sorted(p for p in (tmp_path / "run").iterdir() if p.name.startswith("params"))
    assert [p.name for p in folders] == ["params_seed3_default", "params_seed3_easy",
                                         "params_seed4_default", "params_seed4_easy"]
    assert all(p.is_dir() and (p / "_CHECKPOINT_METADATA").exists() for p in folders)
    assert set(paths.values()) == set(saved_files(tmp_path / "run"))
    run = load_run(tmp_path / "run")
    assert run.config == CONFIG and run.hyperparams == DEFAULT_HYPERPARAMS
    _assert_identical(run, networks)


def test_a_run_saved_before_orbax_loads_bit_identical(tmp_path):
    networks = _networks()
    _write_msgpack_run(tmp_path / "old", networks)
    (tmp_path / "old" / "notes.txt").write_text("mine")
    run = load_run(tmp_path / "old")
    assert run.config == CONFIG
    _assert_identical(run, networks)
    assert sorted(p.name for p in saved_files(tmp_path / "old")) == [
        "config.json", *sorted(f"params_seed{s}_{n}.msgpack" for s in SEEDS for n in SCENARIOS)]


@pytest.mark.slow
def test_old_and_new_runs_play_the_same_episodes(tmp_path):
    from bb_jax.runtime.evaluation import policy_returns

    networks = _networks()
    _write_msgpack_run(tmp_path / "old", networks)
    save_run(_seed_run(networks), tmp_path / "new", "new")
    old, new = (policy_returns(load_run(tmp_path / name), "default", None, 4,
                               jax.random.PRNGKey(5)) for name in ("old", "new"))
    assert list(old) == list(new) == list(SEEDS)
    for seed in SEEDS:
        np.testing.assert_array_equal(old[seed], new[seed])


@pytest.mark.parametrize("other, named", [
    (CONFIG.replace(hidden_size=16), "params/Dense_0/bias is (8,) float32, the network's (16,)"),
    (CONFIG.replace(time_input=not CONFIG.time_input),
     f"it was saved with time_input={CONFIG.time_input}, critic={CONFIG.critic!r}"),
    (CONFIG.replace(critic="shared" if CONFIG.critic == "separate" else "separate"),
     "is not in the network"),
])
def test_a_network_that_does_not_match_is_one_line_naming_what_differs(tmp_path, other, named):
    path = tmp_path / "run" / "params_seed3_easy"
    save_params(path, _networks()[0])
    with pytest.raises(ValueError, match="does not match the network") as err:
        load_params(path, other)
    assert str(path) in str(err.value) and named in str(err.value)
    assert "\n" not in str(err.value)


def test_a_damaged_parameter_folder_is_one_line(tmp_path):
    path = tmp_path / "run" / "params_seed3_easy"
    save_params(path, _networks()[0])
    for data in path.rglob("*"):
        if data.is_file() and "ocdbt.process" in str(data):
            data.write_bytes(data.read_bytes()[:20])
    with pytest.raises(ValueError, match="is damaged") as err:
        load_params(path, CONFIG)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a saved parameter folder"):
        load_params(tmp_path / "empty", CONFIG)
