"""One evaluation program per network shape: sampled and greedy play are a traced flag of the
same compiled program, and give exactly the returns of the two programs they replace."""

from __future__ import annotations

import jax
import numpy as np

from bb_jax.agent import networks
from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig, stack_hyperparams
from bb_jax.agent.policies import evaluate_policy
from bb_jax.compile_cache import CompileLog
from bb_jax.runtime.driver import evaluation_keys, training_keys
from bb_jax.runtime.population import Population

CONFIG = PPOConfig(scenario="easy", hidden_size=12, batch_size=128)  # a shape of its own
SEEDS, EPISODES = [0, 1], 6


def _static_returns(population: Population, greedy: bool) -> np.ndarray:
    """The returns of a program compiled for one mode (a Python `if`, as before)."""
    ppo = population.fns.ppo

    def act(key, obs, env_state, params):
        *logits, _ = ppo.network.apply(params, obs)
        return networks.greedy(logits) if greedy else networks.sample(key, logits)

    view = ppo.view(EPISODES)
    play = jax.jit(jax.vmap(lambda p, k, s: evaluate_policy(view, act, k, s, p)))
    return np.asarray(play(population.state.params, evaluation_keys(SEEDS),
                           population.scenarios))


def test_sampled_and_greedy_share_one_program_and_keep_their_returns():
    population = Population(CONFIG, stack_hyperparams([DEFAULT_HYPERPARAMS] * len(SEEDS)),
                            training_keys(SEEDS))
    log = CompileLog().start()
    sampled = population.evaluate(evaluation_keys(SEEDS), EPISODES, greedy=False)
    greedy = population.evaluate(evaluation_keys(SEEDS), EPISODES, greedy=True)
    log.stop()
    assert [c.name for c in log.compiles].count("jit(evaluate)") == 1
    np.testing.assert_array_equal(sampled, _static_returns(population, False))
    np.testing.assert_array_equal(greedy, _static_returns(population, True))
    assert not np.array_equal(sampled, greedy)
