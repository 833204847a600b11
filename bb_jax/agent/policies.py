"""Non-learning policies in the learner's seat (agent 0), evaluated in pure JAX.

Baselines for PPO: `random` (house uniform in 0..9, mode uniform in {REST, WORK}) and each
heuristic archetype of docs/GAME_RULES.md (firefighter, coordinator, free_rider, liar, hero) playing
agent 0 with the opponents' decision rule. As for every heuristic, its "own" house is its seat
mod 10, so in seat 0 it guards house 0 (and, like an opponent, repeats its own last action).
Episodes are fresh and played in parallel exactly like `PPO.evaluate` (same view, same
opponents, same truncation), so the figures compare directly with a trained policy's.

    returns = baseline_returns("firefighter", "easy", num_episodes=2000)
    table = all_baseline_returns(list_scenarios(), num_episodes=2000)   # one compile
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax.game import opponents, rules
from bb_jax.game.scenarios import Scenario, get_scenario, stack_scenarios

if TYPE_CHECKING:  # the env (gymnax) loads on first use: see bb_jax/__init__.py
    from bb_jax.game.env import BucketBrigadeEnv, EnvState

BASELINES = ("random", *opponents.ARCHETYPES)
LEARNER_SEAT = 0

# act(key, obs float32[M, D], state EnvState[M], policy) -> int32[M, 2]
ActFn = Callable[[jax.Array, jnp.ndarray, "EnvState", jnp.ndarray], jnp.ndarray]


def uniform_random_act(key, obs, state: EnvState, policy_params=None) -> jnp.ndarray:
    """House uniform in 0..9 and mode uniform in {0, 1}, independently per episode."""
    del state, policy_params
    return jax.random.randint(key, (obs.shape[0], 2), 0, jnp.array([10, 2])).astype(jnp.int32)


def heuristic_act(key, obs, state: EnvState, policy_params: jnp.ndarray) -> jnp.ndarray:
    """A heuristic with parameters float32[10] in seat 0: docs/GAME_RULES.md's opponent rule with
    own house 0, its last action the game's last_actions[0] (it has one iff night > 0)."""
    del obs
    num_episodes = state.step_count.shape[0]
    blocks = rules.uniforms(key, (num_episodes, 1, opponents.NUM_ACT_DRAWS))

    def one(game_state, block):
        return opponents.act(
            policy_params[None], game_state.houses, game_state.locations,
            game_state.last_actions[LEARNER_SEAT:LEARNER_SEAT + 1], game_state.night > 0,
            opponents.act_draws_from_block(block), seats=jnp.array([LEARNER_SEAT]),
        )[0]

    return jax.vmap(one)(state.game, blocks)


def evaluate_policy(env: BucketBrigadeEnv, act: ActFn, key, num_episodes: int,
                    scenario: Scenario | None = None, policy_params=None,
                    record: bool = False):
    """float32[num_episodes]: agent 0's undiscounted returns over fresh episodes (pure; jit
    and vmap it from outside; num_episodes is static; scenario None: the env's). With
    `record`, (returns, trace): trace["first_obs"] float32[E, D] (after the reset),
    trace["obs"] float32[T, E, D] (each night's result, before any auto-reset),
    trace["reward"] and trace["alive"] [T, E] (alive: the night belongs to the episode)."""
    k_reset, k_run = jax.random.split(key)
    blocks = env.sample_reset_draws(k_reset, (num_episodes,))
    obs, env_state = jax.vmap(env.reset_with_draws, in_axes=(0, None))(blocks, scenario)
    step_envs = jax.vmap(env.step_with_draws, in_axes=(0, 0, 0, None))

    def one_step(carry, step_key):
        env_state, obs, alive, total = carry
        k_act, k_env = jax.random.split(step_key)
        action = act(k_act, obs, env_state, policy_params)
        obs, env_state, reward, terminated, truncated, info = step_envs(
            env_state, action, env.sample_draws(k_env, (num_episodes,)), scenario
        )
        total = total + jnp.where(alive, reward, 0.0)
        trace = (info["final_observation"], reward, alive) if record else None
        return (env_state, obs, alive & ~(terminated | truncated), total), trace

    init = (env_state, obs, jnp.ones((num_episodes,), bool), jnp.zeros((num_episodes,)))
    (_, _, _, total), trace = jax.lax.scan(one_step, init,
                                           jax.random.split(k_run, env.max_steps))
    if not record:
        return total
    return total, {"first_obs": obs, "obs": trace[0], "reward": trace[1], "alive": trace[2]}


def mixed_act(key, obs, state: EnvState, policy) -> jnp.ndarray:
    """policy = (is_random bool[], params float32[10]): uniform random or a heuristic, chosen
    per row, so that a batch mixing both kinds compiles once."""
    is_random, params = policy
    k_random, k_heuristic = jax.random.split(key)
    return jnp.where(is_random, uniform_random_act(k_random, obs, state),
                     heuristic_act(k_heuristic, obs, state, params))


@functools.cache
def _compiled(num_opponents: int, opponent_kinds: tuple[str, ...] | None, max_steps: int,
              num_episodes: int):
    """Jitted evaluation vmapped over (keys, scenarios, policies): one compile per view
    config and episode count, whatever the policies and scenarios."""
    from bb_jax.game.env import make_env

    env = make_env("default", num_opponents, opponent_kinds, max_steps)

    def run(key, scenario, is_random, params):
        return evaluate_policy(env, mixed_act, key, num_episodes, scenario, (is_random, params))

    return jax.jit(jax.vmap(run))


def _policy_params(policy: str) -> np.ndarray:
    if policy == "random":
        return np.zeros(opponents.NUM_PARAMS, np.float32)
    if policy not in opponents.ARCHETYPES:
        raise ValueError(f"unknown baseline {policy!r}; valid baselines: {', '.join(BASELINES)}")
    return np.asarray(opponents.ARCHETYPES[policy], np.float32)


def batch_returns(policies: list[str], scenarios: list[str | Scenario], num_episodes: int,
                  key, num_opponents: int = 2, opponent_kinds=None,
                  max_steps: int = 50) -> np.ndarray:
    """float32[len(policies), num_episodes]: row i plays `policies[i]` (see BASELINES) in
    seat 0 on `scenarios[i]`, each row with its own key, all rows in one vmapped call."""
    if len(policies) != len(scenarios):
        raise ValueError("policies and scenarios must have the same length")
    params = np.stack([_policy_params(p) for p in policies])  # validates names
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
