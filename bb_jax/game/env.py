"""The single-learner training view: agent 0 learns, agents 1..N-1 are heuristic opponents.

gymnax-style API with auto-reset:

    env = make_env("default", num_opponents=2)
    obs, state = env.reset(key)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action)

Each step consumes one flat block of `env.num_draws` uniforms (`env.draws_from_block` names its
parts), so a batch of environments can draw all its randomness with one key
(`env.sample_draws(key, batch)`), and the reference implementation can replay it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import chex
import jax
import jax.numpy as jnp
from flax import struct

from bb_jax.game import opponents, rules
from bb_jax.game.opponents import check_kinds, default_opponents
from bb_jax.game.scenarios import Scenario, get_scenario

STEP_DRAWS = 4 * rules.NUM_HOUSES


@struct.dataclass
class EnvState:
    """game: the town and agents; opponent_params float32[M, 10] (this episode's);
    step_count int32 (steps taken in this episode); episode_return float32 (agent 0's so far)."""

    game: rules.GameState
    opponent_params: jnp.ndarray
    step_count: jnp.ndarray
    episode_return: jnp.ndarray


@struct.dataclass
class ViewDraws:
    """One step's uniforms: the night (StepDraws), the opponents' decisions (ActDraws), and a
    full reset (ResetDraws + opponent parameters float32[M, 10]) used if the episode ends."""

    step: rules.StepDraws
    act: opponents.ActDraws
    reset: rules.ResetDraws
    reset_params: jnp.ndarray


@dataclass(frozen=True)
class BucketBrigadeEnv:
    """Static configuration of the view; the scenario (traced) can be passed per call."""

    scenario: Scenario
    opponent_kinds: tuple[str, ...]
    max_steps: int = 50

    @property
    def num_opponents(self) -> int:
        return len(self.opponent_kinds)

    @property
    def num_agents(self) -> int:
        return self.num_opponents + 1

    @property
    def observation_size(self) -> int:
        return rules.observation_size(self.num_agents)

    @property
    def action_dims(self) -> tuple[int, int]:
        return (rules.NUM_HOUSES, 2)

    @property
    def num_draws(self) -> int:
        """Uniforms consumed per step: 40 + 7M (night, opponents) + 10 + 10M (reset)."""
        m = self.num_opponents
        per_step = STEP_DRAWS + opponents.NUM_ACT_DRAWS * m
        return per_step + rules.NUM_HOUSES + opponents.NUM_PARAMS * m

    @property
    def num_reset_draws(self) -> int:
        return rules.NUM_HOUSES + opponents.NUM_PARAMS * self.num_opponents

    def _table(self) -> opponents.OpponentTable:
        return opponents.make_table(self.opponent_kinds)

    def draws_from_block(self, block: jnp.ndarray) -> ViewDraws:
        """Name the parts of float32[num_draws]: night | opponents | reset ignite | reset params."""
        m, h = self.num_opponents, rules.NUM_HOUSES
        step = block[:STEP_DRAWS]
        i = STEP_DRAWS + opponents.NUM_ACT_DRAWS * m
        return ViewDraws(
            step=rules.StepDraws(
                extinguish=step[:h], spread=step[h : 3 * h].reshape(h, 2), ignite=step[3 * h :]
            ),
            act=opponents.act_draws_from_block(
                block[STEP_DRAWS:i].reshape(m, opponents.NUM_ACT_DRAWS)
            ),
            reset=rules.ResetDraws(ignite=block[i : i + h]),
            reset_params=block[i + h :].reshape(m, opponents.NUM_PARAMS),
        )

    def sample_draws(self, key: chex.PRNGKey, batch_shape: tuple[int, ...] = ()) -> jnp.ndarray:
        """float32[*batch_shape, num_draws] step uniforms from one key."""
        return rules.uniforms(key, (*batch_shape, self.num_draws))

    def sample_reset_draws(self, key: chex.PRNGKey,
                           batch_shape: tuple[int, ...] = ()) -> jnp.ndarray:
        """float32[*batch_shape, num_reset_draws] reset uniforms from one key."""
        return rules.uniforms(key, (*batch_shape, self.num_reset_draws))

    def reset_with_draws(self, block: jnp.ndarray, scenario: Scenario | None = None):
        """block float32[num_reset_draws]: ignite(10) then opponent parameters (M x 10)."""
        scenario = self.scenario if scenario is None else scenario
        h = rules.NUM_HOUSES
        return self._reset(
            rules.ResetDraws(ignite=block[:h]),
            block[h:].reshape(self.num_opponents, opponents.NUM_PARAMS),
            scenario,
        )

    def _reset(self, draws: rules.ResetDraws, param_uniforms: jnp.ndarray, scenario: Scenario):
        state = EnvState(
            game=rules.reset_with_draws(draws, scenario, self.num_agents),
            opponent_params=opponents.episode_params(self._table(), param_uniforms),
            step_count=jnp.int32(0),
            episode_return=jnp.float32(0.0),
        )
        return rules.observation(state.game, scenario), state

    def reset(self, key: chex.PRNGKey, scenario: Scenario | None = None):
        """Returns (obs float32[22 + 4N], EnvState)."""
        return self.reset_with_draws(
            self.sample_reset_draws(key), scenario
        )

    def step_with_draws(
        self, state: EnvState, action: jnp.ndarray, block: jnp.ndarray,
        scenario: Scenario | None = None,
    ):
        """action int32[2] (house, mode); block float32[num_draws].

        Returns (obs, state, reward float32[], terminated bool[], truncated bool[], info);
        after a terminated or truncated step, obs and state are those of a fresh episode and
        info["final_observation"] is the observation of the step's result.
        info["episode_return"] / ["episode_length"] hold the finished episode's figures.
        """
        scenario = self.scenario if scenario is None else scenario
        chex.assert_shape(action, (2,))
        draws = self.draws_from_block(block)
        g = state.game
        opponent_actions = opponents.act(
            state.opponent_params, g.houses, g.locations, g.last_actions[1:], g.night > 0,
            draws.act,
        )
        actions = jnp.concatenate([action.astype(jnp.int32)[None], opponent_actions])
        next_game, rewards, terminated = rules.step_with_draws(g, actions, draws.step, scenario)
        reward = rewards[0]
        step_count = state.step_count + 1
        truncated = step_count >= self.max_steps
        stepped = EnvState(
            game=next_game,
            opponent_params=state.opponent_params,
            step_count=step_count,
            episode_return=state.episode_return + reward,
        )
        final_obs = rules.observation(next_game, scenario)
        reset_obs, reset_state = self._reset(draws.reset, draws.reset_params, scenario)
        done = terminated | truncated
        next_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, stepped)
        obs = jnp.where(done, reset_obs, final_obs)
        info = {
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": final_obs,
            "episode_return": stepped.episode_return,
            "episode_length": step_count,
        }
        return obs, next_state, reward, terminated, truncated, info

    def step(self, key: chex.PRNGKey, state: EnvState, action: jnp.ndarray,
             scenario: Scenario | None = None):
        """Like `step_with_draws`, with the block drawn from `key`."""
        return self.step_with_draws(state, action, self.sample_draws(key), scenario)


def check_num_opponents(num_opponents: int) -> int:
    if isinstance(num_opponents, bool) or int(num_opponents) != num_opponents or not (
        1 <= num_opponents <= 9
    ):
        raise ValueError(f"num_opponents must be an integer in 1..9, got {num_opponents!r}")
    return int(num_opponents)


def make_env(
    scenario: str | Scenario = "default",
    num_opponents: int = 2,
    opponents: list[str] | tuple[str, ...] | None = None,
    max_steps: int = 50,
) -> BucketBrigadeEnv:
    """The single-learner view. `opponents`: list of kinds (default per docs/GAME_RULES.md)."""
    m = check_num_opponents(num_opponents)
    kinds = default_opponents(m) if opponents is None else tuple(opponents)
    if len(kinds) != m:
        raise ValueError(f"got {len(kinds)} opponent kinds for num_opponents={m}")
    check_kinds(kinds)
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps!r}")
    if isinstance(scenario, str):
        scenario = get_scenario(scenario, m + 1)
    return BucketBrigadeEnv(
        scenario=scenario, opponent_kinds=tuple(kinds), max_steps=int(max_steps)
    )
