"""Host work off the critical path: a chunk's live metrics are logged after the next chunk is
dispatched (it trains meanwhile), and a checkpoint is written while training goes on."""

from __future__ import annotations

import jax
import numpy as np

from bb_jax.agent.config import PPOConfig
from bb_jax.runtime.checkpoints import Checkpoints
from bb_jax.runtime.population import Population
from bb_jax.runtime.runs import train_seeds

CONFIG = PPOConfig(scenario="easy", hidden_size=16, batch_size=256, total_steps=3 * 256)


def test_a_chunk_is_logged_after_the_next_one_is_dispatched(monkeypatch):
    events = []
    real_run = Population.run

    def run(self, num_updates, until=None):
        events.append("dispatch")
        return real_run(self, num_updates, until)

    monkeypatch.setattr(Population, "run", run)
    train_seeds(CONFIG, {}, [0], chunk_updates=1, eval_episodes=2,
                on_chunk=lambda metrics, first: events.append(f"log {first}"))
    assert events == ["dispatch", "dispatch", "log 1", "dispatch", "log 2", "log 3"]


def test_the_checkpoint_written_in_the_background_is_the_state_it_was_given(tmp_path,
                                                                           monkeypatch):
    """The chunk after a checkpoint consumes (donates) the state it was copied from while the
    files are still being written: what reads back is the state as it was given."""
    given = []
    real_save = Checkpoints.save

    def save(self, updates, state, *args):
        given.append(jax.tree.map(np.array, state))  # a host copy, before the save
        real_save(self, updates, state, *args)

    monkeypatch.setattr(Checkpoints, "save", save)
    checkpoints = Checkpoints(tmp_path / "ck")
    run = train_seeds(CONFIG, {}, [0], chunk_updates=1, eval_episodes=2,
                      checkpoints=checkpoints, checkpoint_every=2)
    restored = checkpoints.restore(run.population.state)
    assert restored.updates == 2 and len(given) == 1
    same = jax.tree.map(np.array_equal, jax.tree.map(np.asarray, restored.state), given[0])
    assert all(jax.tree.leaves(same))
