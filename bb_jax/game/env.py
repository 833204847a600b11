"""The single-learner training view as a gymnax 1.0 `Environment`: agent 0 learns, agents
1..N-1 are heuristic opponents.

    env = make_env("default", num_opponents=2)
    params = env.default_params              # the scenario is gymnax's EnvParams
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

`params` (a `Scenario`, every field traced) may be left out, meaning the env's own scenario;
a batch of scenarios `vmap`s like any array, one compiled program for all of them. The action
is int32[2] (house 0..9, mode REST=0 / WORK=1), or the (house, mode) pair that
`action_space(params)` samples; `bb_jax.game.wrappers.FlatActionWrapper` makes it one
`Discrete(20)`.

Randomness: each step consumes one flat block of `num_draws` float32 uniforms
(`draws_from_block` names its parts, docs/GAME_RULES.md "the draw layout"); its tail holds the
draws of the reset that follows if the step ends the episode. So a batch of environments draws
all its randomness with one key (`sample_draws(key, batch_shape)`) and the plain-Python
reference replays a trajectory from its blocks exactly.

Decision: `step` is this module's override, not gymnax's generic one. gymnax 1.0's
`Environment.step` splits its key into a step key and a reset key and draws the reset from the
second, so the reset draws could not be the tail of the step's block (`step(key)` would no
longer be `step_with_draws(state, action, sample_draws(key))`). The override auto-resets the way
gymnax's does (the same select of reset over stepped state; `info` holds "terminated",
"truncated" and "final_observation", the observation of the step's result) from the one block.
`step_env` / `reset_env` have gymnax's signatures and meaning: `step_env(key, ...)` is the step
without auto-reset on the same block, so on a step that does not end the episode it equals
`step(key, ...)`; `reset_env` draws a reset block from its key; `reset` is gymnax's (jitted
with the env static; a reset does no arithmetic on the scenario, so whether it is a constant
or an argument changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import chex
import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from bb_jax.game import opponents, rules
from bb_jax.game.opponents import check_kinds, default_opponents
from bb_jax.game.scenarios import Scenario, get_scenario

STEP_DRAWS = 4 * rules.NUM_HOUSES
NUM_MODES = 2


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


# eq=False: gymnax jits `reset` / `step` with the env as a static argument, so it must hash;
# its scenario holds arrays, so it hashes (and compares) by identity, as gymnax's envs do.
@dataclass(frozen=True, eq=False)
class BucketBrigadeEnv(environment.Environment[EnvState, Scenario]):
    """Static configuration of the view; `scenario` is the default `EnvParams`."""

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
        return (rules.NUM_HOUSES, NUM_MODES)

    # --- gymnax's interface ------------------------------------------------------------------

    @property
    def default_params(self) -> Scenario:
        return self.scenario

    @property
    def name(self) -> str:
        return "BucketBrigade-v1"

    @property
    def num_actions(self) -> int:
        """20 distinct actions: 10 houses x (REST, WORK)."""
        return rules.NUM_HOUSES * NUM_MODES

    def action_space(self, params: Scenario) -> spaces.Tuple:
        """(house Discrete(10), mode Discrete(2)); `contains` also takes the int32[2] action."""
        del params
        return spaces.Tuple([spaces.Discrete(rules.NUM_HOUSES), spaces.Discrete(NUM_MODES)])

    def observation_space(self, params: Scenario) -> spaces.Box:
        """float32[22 + 4N] between 0 and the game features' largest values (house states 2,
        signals and modes 1, locations 9); the scenario block is exactly `params`' values."""
        info = params.info_vector()
        game_high = rules.observation_high(self.num_agents)[: self.observation_size - info.size]
        return spaces.Box(
            low=jnp.concatenate([jnp.zeros_like(game_high), info]),
            high=jnp.concatenate([game_high, info]),
            shape=(self.observation_size,),
            dtype=jnp.float32,
        )

    def is_truncated(self, state: EnvState, params: Scenario) -> jnp.ndarray:
        """bool[]: the episode has reached `max_steps` steps."""
        del params
        return state.step_count >= self.max_steps

    def reset_env(self, key: chex.PRNGKey, params: Scenario):
        """Returns (obs float32[22 + 4N], EnvState) of a fresh episode drawn from `key`."""
        return self.reset_with_draws(self.sample_reset_draws(key), params)

    def step_env(self, key: chex.PRNGKey, state: EnvState, action, params: Scenario):
        """One night without auto-reset, on the block `step(key, ...)` would draw.

        Returns (obs, state, reward float32[], terminated bool[], info) with
        info["episode_return"] / ["episode_length"] the episode's figures so far."""
        obs, state, reward, terminated = self._night(
            state, action, self.draws_from_block(self.sample_draws(key)), params
        )
        return obs, state, reward, terminated, _episode_info(state)

    def step(self, key: chex.PRNGKey, state: EnvState, action, params: Scenario | None = None):
        """`step_with_draws` on the block drawn from `key` (see the module docstring).

        Not jitted here, unlike gymnax's (jit it from outside): jitted with the env static, the
        default scenario's values would be compile-time constants, and XLA's folding of them
        moves rewards by an ulp from the same scenario passed as an argument."""
        return self.step_with_draws(state, action, self.sample_draws(key), params)

    # --- the draw layout ---------------------------------------------------------------------

    @property
    def num_draws(self) -> int:
        """Uniforms consumed per step: 40 + 7M (night, opponents) + 10 + 10M (reset)."""
        m = self.num_opponents
        per_step = STEP_DRAWS + opponents.NUM_ACT_DRAWS * m
        return per_step + rules.NUM_HOUSES + opponents.NUM_PARAMS * m

    @property
    def num_reset_draws(self) -> int:
        return rules.NUM_HOUSES + opponents.NUM_PARAMS * self.num_opponents

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

    def reset_with_draws(self, block: jnp.ndarray, params: Scenario | None = None):
        """block float32[num_reset_draws]: ignite(10) then opponent parameters (M x 10).
        Returns (obs float32[22 + 4N], EnvState); params None: the env's scenario."""
        params = self.default_params if params is None else params
        h = rules.NUM_HOUSES
        return self._reset(
            rules.ResetDraws(ignite=block[:h]),
            block[h:].reshape(self.num_opponents, opponents.NUM_PARAMS),
            params,
        )

    def step_with_draws(self, state: EnvState, action, block: jnp.ndarray,
                        params: Scenario | None = None):
        """action int32[2] (house, mode); block float32[num_draws]; params None: the env's
        scenario.

        Returns (obs, state, reward float32[], terminated bool[], truncated bool[], info);
        after a terminated or truncated step, obs and state are those of a fresh episode drawn
        from the block's tail and info["final_observation"] is the observation of the step's
        result. info["episode_return"] / ["episode_length"] hold the step's episode's figures.
        """
        params = self.default_params if params is None else params
        draws = self.draws_from_block(block)
        obs_st, state_st, reward, terminated = self._night(state, action, draws, params)
        truncated = self.is_truncated(state_st, params)
        done = terminated | truncated
        obs_re, state_re = self._reset(draws.reset, draws.reset_params, params)
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), state_re, state_st)
        obs = jnp.where(done, obs_re, obs_st)
        info = {
            **_episode_info(state_st),
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": obs_st,
        }
        return obs, state, reward, terminated, truncated, info

    def _reset(self, draws: rules.ResetDraws, param_uniforms: jnp.ndarray, params: Scenario):
        state = EnvState(
            game=rules.reset_with_draws(draws, params, self.num_agents),
            opponent_params=opponents.episode_params(
                opponents.make_table(self.opponent_kinds), param_uniforms
            ),
            step_count=jnp.int32(0),
            episode_return=jnp.float32(0.0),
        )
        return rules.observation(state.game, params), state

    def _night(self, state: EnvState, action, draws: ViewDraws, params: Scenario):
        """The opponents act on the observation before the night, then the night is played.
        Returns (obs, state, agent 0's reward float32[], terminated bool[])."""
        action = jnp.asarray(action, jnp.int32)
        chex.assert_shape(action, (2,))
        g = state.game
        opponent_actions = opponents.act(
            state.opponent_params, g.houses, g.locations, g.last_actions[1:], g.night > 0,
            draws.act,
        )
        actions = jnp.concatenate([action[None], opponent_actions])
        game, rewards, terminated = rules.step_with_draws(g, actions, draws.step, params)
        state = EnvState(
            game=game,
            opponent_params=state.opponent_params,
            step_count=state.step_count + 1,
            episode_return=state.episode_return + rewards[0],
        )
        return rules.observation(game, params), state, rewards[0], terminated


def _episode_info(state: EnvState) -> dict:
    return {"episode_return": state.episode_return, "episode_length": state.step_count}


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
