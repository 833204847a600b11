"""The non-learning baselines' returns: `random` and each heuristic archetype in the learner's
seat (`bb_jax.game.heuristics`), on fresh episodes, compiled once per view and episode count
and vmapped over (policy, scenario, key) rows.

    returns = baseline_returns("firefighter", "easy", num_episodes=2000)
    table = all_baseline_returns(list_scenarios(), num_episodes=2000)   # one compile
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax.agent.policies import evaluate_policy
from bb_jax.game.heuristics import BASELINES, mixed_act, policy_params
from bb_jax.game.scenarios import Scenario, get_scenario, stack_scenarios


@functools.cache
def _compiled(num_opponents: int, opponent_kinds: tuple[str, ...] | None, max_steps: int,
              num_episodes: int):
    """Jitted evaluation vmapped over (keys, scenarios, policies): one compile per view
    config and episode count, whatever the policies and scenarios."""
    from bb_jax.game.env import make_env
    from bb_jax.game.wrappers import BatchEnv

    env = BatchEnv(make_env("default", num_opponents, opponent_kinds, max_steps), num_episodes)

    def run(key, scenario, is_random, params):
        return evaluate_policy(env, mixed_act, key, scenario, (is_random, params))

    return jax.jit(jax.vmap(run))


def batch_returns(policies: list[str], scenarios: list[str | Scenario], num_episodes: int,
                  key, num_opponents: int = 2, opponent_kinds=None,
                  max_steps: int = 50) -> np.ndarray:
    """float32[len(policies), num_episodes]: row i plays `policies[i]` (see BASELINES) in
    seat 0 on `scenarios[i]`, each row with its own key, all rows in one vmapped call."""
    if len(policies) != len(scenarios):
        raise ValueError("policies and scenarios must have the same length")
    params = np.stack([policy_params(p) for p in policies])  # validates names
    kinds = tuple(opponent_kinds) if opponent_kinds is not None else None
    num_agents = num_opponents + 1
    rows = [get_scenario(s, num_agents) if isinstance(s, str) else s for s in scenarios]
    fn = _compiled(int(num_opponents), kinds, int(max_steps), int(num_episodes))
    out = fn(jax.random.split(key, len(policies)), stack_scenarios(rows),
             jnp.asarray([p == "random" for p in policies]), jnp.asarray(params))
    return np.asarray(out)


def baseline_returns(policy: str, scenario: str | Scenario = "default", num_episodes: int = 1000,
                     key=None, num_opponents: int = 2, opponent_kinds=None,
                     max_steps: int = 50) -> np.ndarray:
    """float32[num_episodes]: returns of `policy` (see BASELINES) in seat 0."""
    key = jax.random.PRNGKey(0) if key is None else key
    return batch_returns([policy], [scenario], num_episodes, key, num_opponents,
                         opponent_kinds, max_steps)[0]


def all_baseline_returns(scenarios: list[str], num_episodes: int = 1000, key=None,
                         num_opponents: int = 2, opponent_kinds=None, max_steps: int = 50,
                         policies: tuple[str, ...] = BASELINES) -> dict[str, dict[str, np.ndarray]]:
    """{scenario: {policy: float32[num_episodes]}} for every pair, in one vmapped call."""
    key = jax.random.PRNGKey(0) if key is None else key
    pairs = [(s, p) for s in scenarios for p in policies]
    returns = batch_returns([p for _, p in pairs], [s for s, _ in pairs], num_episodes, key,
                            num_opponents, opponent_kinds, max_steps)
    table: dict[str, dict[str, np.ndarray]] = {s: {} for s in scenarios}
    for (s, p), row in zip(pairs, returns):
        table[s][p] = row
    return table
