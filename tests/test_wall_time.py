"""Every command says where its wall time went (`bb_jax.wall_time`): a tiny training run's
closing summary and results JSON hold the split, and its parts add up to at most the wall."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from bb_jax import wall_time
from bb_jax.cli import train_main
from bb_jax.runtime.driver import Driver

TINY = ["--scenario", "easy", "--num-steps", "1024", "--batch-size", "256", "--hidden-size", "16",
        "--eval-episodes", "2", "--chunk-updates", "2", "--seed", "3"]


def test_a_train_run_splits_its_wall_time(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert train_main([*TINY, "--save-path", str(tmp_path / "run"),
                       "--results-json", str(out)]) == 0
    split = json.loads(out.read_text())["time"]
    parts = (split["startup_s"] + split["compile"]["seconds"] + split["training_s"]
             + split["evaluation_s"] + split["host_s"])
    assert parts <= split["wall_s"] + 1e-2
    assert split["training_s"] > 0 and split["evaluation_s"] > 0
    assert split["compile"]["count"] >= split["compile"]["cache_hits"] >= 0
    assert any(line.startswith(f"wall {split['wall_s']:.1f} s: start-up")
               for line in capsys.readouterr().out.splitlines())


def test_a_nested_part_counts_once():
    clock = wall_time.WallTime()
    with clock.part("training"), clock.part("evaluation"):
        time.sleep(0.02)
    assert clock.seconds["evaluation"] == 0.0 and clock.seconds["training"] >= 0.02


class _SlowPopulation:
    """A population whose dispatch waits, as a CPU dispatch waits for the chunk before it."""

    def run(self, length, until=None):
        time.sleep(0.05)
        return {"env_steps": np.zeros((1, length))}


@pytest.mark.parametrize("timed", [True, False])
def test_a_chunk_dispatch_that_waits_counts_as_training_once(monkeypatch, timed):
    """train_simple's driver counts a dispatch that waits as training (it used to land in
    host work, showing 0.0 s of training); the tuner's cohorts time their stretches
    themselves, so their driver (timed=False) adds nothing."""
    clock = wall_time.WallTime()
    monkeypatch.setattr(wall_time, "_clock", clock)
    Driver(_SlowPopulation(), record=False, timed=timed).chunk(2)
    assert (clock.seconds["training"] >= 0.05) is timed
