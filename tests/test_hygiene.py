"""What the accelerator paths change, checked on the CPU: the static epoch loop with a
per-member mask trains exactly like the traced-count loop; the shared compiled programs cannot
read `num_updates`; num_envs grows with the batch on an accelerator only; `run` donates the
training state."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from bb_jax.agent.config import PPOConfig, default_num_envs, make_hyperparams, stack_hyperparams
from bb_jax.agent.ppo import PPO
from bb_jax.runtime.population import Population
from bb_jax.runtime.programs import compiled

CONFIG = PPOConfig(hidden_size=16, batch_size=128, num_envs=8, num_minibatches=2,
                   max_epochs=5, total_steps=256)


@functools.cache
def _programs(static_epochs: bool):
    ppo = PPO(CONFIG, static_epochs=static_epochs)
    return jax.jit(jax.vmap(ppo.init)), jax.jit(jax.vmap(lambda s, h: ppo.run_updates(s, h, 1)))


def _one_update(static_epochs: bool, num_epochs):
    """Both members' states after one update (vmapped like a population)."""
    init, run = _programs(static_epochs)
    hp = stack_hyperparams([{"num_epochs": n} for n in num_epochs])
    keys = jax.numpy.stack([jax.random.PRNGKey(s) for s in (0, 1)])
    return jax.tree.map(np.asarray, run(init(keys, hp), hp))


def test_static_masked_epochs_equal_the_traced_loop():
    """Members with 1 and 3 of at most 5 epochs: the masked static loop's extra epochs change
    nothing (parameters, optimizer state, key and metrics equal the while loop's)."""
    traced = _one_update(False, (1, 3))
    static = _one_update(True, (1, 3))
    for x, y in zip(jax.tree.leaves(traced), jax.tree.leaves(static), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    # and the epoch count matters: a member with 3 epochs moved further than one with 1
    other = _one_update(True, (3, 3))
    assert not np.allclose(jax.tree.leaves(other[0].params)[0][0],
                           jax.tree.leaves(static[0].params)[0][0])


def test_the_backend_chooses_the_epoch_loop():
    assert PPO(CONFIG).static_epochs is (jax.default_backend() != "cpu")


def test_shared_programs_cannot_read_num_updates():
    fns = compiled(CONFIG)
    assert fns.ppo.config.total_steps is None
    with pytest.raises(ValueError, match="shared compiled program"):
        _ = fns.ppo.config.num_updates
    with pytest.raises(ValueError, match="shared compiled program"):
        fns.ppo.train(jax.random.PRNGKey(0), make_hyperparams())
    assert CONFIG.num_updates == 2


def test_num_envs_grows_with_the_batch_on_accelerators_only():
    assert [default_num_envs(b, "cpu") for b in (512, 4096)] == [16, 16]
    assert [default_num_envs(b, "gpu") for b in (128, 512, 4096)] == [16, 32, 256]
    assert default_num_envs(1000, "gpu") == 16  # not a multiple of the rollout length
    config = PPOConfig(batch_size=512, total_steps=512)
    assert config.num_envs == default_num_envs(512, config.backend)
    assert config.batch_size == config.num_envs * config.rollout_length
    assert PPOConfig(batch_size=512, num_envs=4, total_steps=512).num_envs == 4


def test_run_donates_the_training_state():
    pop = Population(CONFIG, stack_hyperparams([{}]), jax.random.PRNGKey(0)[None])
    before = pop.state
    pop.run(1)
    leaves = jax.tree.leaves(before.params)
    assert all(leaf.is_deleted() for leaf in leaves)
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(pop.state.params))
