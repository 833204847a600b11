"""The game as a JaxMARL `MultiAgentEnv`: any mix of learning and heuristic seats.

    env = make_marl_env("default", num_agents=3, learners="all")
    obs, state = env.reset(key)                       # obs: {"agent_0": float32[34], ...}
    actions = {a: env.action_space(a).sample(k) for a, k in zip(env.agents, keys)}
    obs, state, rewards, dones, infos = env.step(key, state, actions)

`agents` names the learning seats by seat ("agent_0", "agent_2", ...); the other seats play the
single-learner view's heuristics (`bb_jax.game.opponents`) inside the env. Every learner
observes the same global observation (the game is fully observable; the single-learner view's
observation); a learner that shares parameters across seats adds the seat's id itself.
`world_state(state)` is the centralised critic's input: the observation, the episode's
progress and the heuristic seats' hidden per-episode parameters. An action is the (house, mode)
pair int32[2] (`MultiDiscrete([10, 2])`) or, with `flat_actions=True`, one `Discrete(20)`.
`dones` holds every learner's done and `"__all__"`; `infos` holds arrays with one row per
learner, in `agents` order.

Randomness: a step consumes one block of uniforms laid out exactly as the single-learner
view's with its opponents being the heuristic seats (docs/GAME_RULES.md "the draw layout"), so
with seat 0 learning and seats 1.. scripted, the same key plays the same episode in both envs.

Decision: `step` overrides JaxMARL's base `step`, which splits its key and resets from the
second half; here the reset is drawn from the step's block tail (as the single-learner view
does, for the parity above). The auto-reset is the base class's: the same select of the reset
over the stepped state and observations on `dones["__all__"]`, and the same optional
`reset_state`. Neither `reset` nor `step` is jitted here (jit them from outside), so the
scenario is not folded into compile-time constants differently from the single-learner view.
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp
from flax import struct
from jaxmarl.environments import spaces
from jaxmarl.environments.multi_agent_env import MultiAgentEnv

from bb_jax.game import opponents, rules
from bb_jax.game.env import NUM_MODES, BucketBrigadeEnv, ViewDraws
from bb_jax.game.opponents import check_kinds, default_opponents
from bb_jax.game.scenarios import Scenario, check_num_agents, get_scenario
from bb_jax.game.wrappers import unflatten_action


@struct.dataclass
class MarlState:
    """game: the town and every seat; heuristic_params float32[M, 10] (this episode's, one row
    per heuristic seat); step_count int32; episode_returns float32[A] (each learner's so far)."""

    game: rules.GameState
    heuristic_params: jnp.ndarray
    step_count: jnp.ndarray
    episode_returns: jnp.ndarray


class BucketBrigadeMARL(MultiAgentEnv):
    """Static configuration: scenario, which seats learn, the heuristic seats' kinds."""

    def __init__(self, scenario: Scenario, num_seats: int, learners: tuple[int, ...],
                 heuristics: tuple[str, ...], max_steps: int = 50,
                 flat_actions: bool = False) -> None:
        super().__init__(num_agents=len(learners))
        self.scenario = scenario
        self.num_seats = num_seats
        self.learners = learners
        self.heuristic_seats = tuple(s for s in range(num_seats) if s not in learners)
        self.heuristics = heuristics
        self.max_steps = max_steps
        self.flat_actions = flat_actions
        self.agents = [f"agent_{s}" for s in learners]
        # The single-learner view with the heuristic seats as its opponents: its draw layout
        # (block sizes and parts) is this env's.
        self.layout = BucketBrigadeEnv(scenario, heuristics, max_steps)
        obs_space = _observation_space(scenario, num_seats)
        act_space = (spaces.Discrete(rules.NUM_HOUSES * NUM_MODES) if flat_actions
                     else spaces.MultiDiscrete([rules.NUM_HOUSES, NUM_MODES]))
        self.observation_spaces = dict.fromkeys(self.agents, obs_space)
        self.action_spaces = dict.fromkeys(self.agents, act_space)

    @property
    def name(self) -> str:
        return "BucketBrigadeMARL-v1"

    @property
    def agent_classes(self) -> dict:
        return {"learner": list(self.agents)}

    @property
    def world_state_size(self) -> int:
        heuristic_params = opponents.NUM_PARAMS * len(self.heuristics)
        return rules.observation_size(self.num_seats) + 1 + heuristic_params

    def reset(self, key: chex.PRNGKey):
        """({agent: obs float32[22 + 4N]}, MarlState) of a fresh episode drawn from `key`."""
        block = self.layout.sample_reset_draws(key)
        h = rules.NUM_HOUSES
        return self._reset(rules.ResetDraws(ignite=block[:h]),
                           block[h:].reshape(len(self.heuristics), opponents.NUM_PARAMS))

    def step(self, key: chex.PRNGKey, state: MarlState, actions: dict,
             reset_state: MarlState | None = None):
        """`step_with_draws` on the block drawn from `key` (see the module docstring)."""
        return self.step_with_draws(state, actions, self.layout.sample_draws(key), reset_state)

    def step_env(self, key: chex.PRNGKey, state: MarlState, actions: dict):
        """One night without auto-reset, on the block `step(key, ...)` would draw."""
        draws = self.layout.draws_from_block(self.layout.sample_draws(key))
        return self._night(state, actions, draws)

    def step_with_draws(self, state: MarlState, actions: dict, block: jnp.ndarray,
                        reset_state: MarlState | None = None):
        """actions {agent: int32[2] or int32[] flat}; block float32[layout.num_draws].

        Returns (obs, state, rewards, dones, infos); after a step that ends the episode, obs
        and state are those of a fresh episode (from the block's tail, or `reset_state`) and
        infos["final_observation"] float32[A, 22 + 4N] is the step's result."""
        draws = self.layout.draws_from_block(block)
        obs_st, state_st, rewards, dones, infos = self._night(state, actions, draws)
        if reset_state is None:
            obs_re, state_re = self._reset(draws.reset, draws.reset_params)
        else:
            state_re, obs_re = reset_state, self.get_obs(reset_state)
        done = dones["__all__"]
        state = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), state_re, state_st)
        obs = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), obs_re, obs_st)
        return obs, state, rewards, dones, infos

    def get_obs(self, state: MarlState) -> dict:
        """{agent: float32[22 + 4N]}: the global observation, the same for every learner."""
        obs = rules.observation(state.game, self.scenario)
        return dict.fromkeys(self.agents, obs)

    def world_state(self, state: MarlState) -> jnp.ndarray:
        """float32[world_state_size]: observation, progress in [0, 1], heuristic parameters."""
        return jnp.concatenate([
            rules.time_input(rules.observation(state.game, self.scenario), state.step_count,
                             self.max_steps),
            state.heuristic_params.reshape(-1),
        ])

    def get_avail_actions(self, state: MarlState) -> dict:
        """{agent: bool[n]}: every action is always available (n = 20 flat, else the pair's
        10 houses then 2 modes)."""
        del state
        n = rules.NUM_HOUSES * NUM_MODES if self.flat_actions else rules.NUM_HOUSES + NUM_MODES
        return {a: jnp.ones((n,), bool) for a in self.agents}

    def _reset(self, draws: rules.ResetDraws, param_uniforms: jnp.ndarray):
        table = opponents.make_table(self.heuristics)
        state = MarlState(
            game=rules.reset_with_draws(draws, self.scenario, self.num_seats),
            heuristic_params=opponents.episode_params(table, param_uniforms),
            step_count=jnp.int32(0),
            episode_returns=jnp.zeros((self.num_agents,), jnp.float32),
        )
        return self.get_obs(state), state

    def _joint_actions(self, state: MarlState, actions: dict, draws: ViewDraws) -> jnp.ndarray:
        """int32[N, 2]: the learners' actions and the heuristic seats' on the observation
        before the night."""
        learned = jnp.stack([jnp.asarray(actions[a], jnp.int32) for a in self.agents])
        if self.flat_actions:
            learned = unflatten_action(learned)
        chex.assert_shape(learned, (self.num_agents, 2))
        joint = jnp.zeros((self.num_seats, 2), jnp.int32).at[jnp.array(self.learners)].set(
            learned)
        if not self.heuristic_seats:
            return joint
        g, seats = state.game, jnp.array(self.heuristic_seats)
        scripted = opponents.act(state.heuristic_params, g.houses, g.locations,
                                 g.last_actions[seats], g.night > 0, draws.act, seats=seats)
        return joint.at[seats].set(scripted)

    def _night(self, state: MarlState, actions: dict, draws: ViewDraws):
        joint = self._joint_actions(state, actions, draws)
        game, seat_rewards, terminated = rules.step_with_draws(
            state.game, joint, draws.step, self.scenario)
        rewards = seat_rewards[jnp.array(self.learners)]
        state = MarlState(game=game, heuristic_params=state.heuristic_params,
                          step_count=state.step_count + 1,
                          episode_returns=state.episode_returns + rewards)
        truncated = state.step_count >= self.max_steps
        done = terminated | truncated
        obs = self.get_obs(state)
        dones = {**dict.fromkeys(self.agents, done), "__all__": done}
        per_agent = (self.num_agents,)
        infos = {
            "terminated": jnp.broadcast_to(terminated, per_agent),
            "truncated": jnp.broadcast_to(truncated, per_agent),
            "episode_return": state.episode_returns,
            "episode_length": jnp.broadcast_to(state.step_count, per_agent),
            "final_observation": jnp.stack([obs[a] for a in self.agents]),
        }
        return obs, state, {a: rewards[i] for i, a in enumerate(self.agents)}, dones, infos


def _observation_space(scenario: Scenario, num_seats: int) -> spaces.Box:
    """float32[22 + 4N] between 0 and the game features' largest values; the scenario block
    is exactly the scenario's values (as the single-learner view's space)."""
    info = scenario.info_vector()
    size = rules.observation_size(num_seats)
    game_high = rules.observation_high(num_seats)[: size - info.size]
    return spaces.Box(jnp.concatenate([jnp.zeros_like(game_high), info]),
                      jnp.concatenate([game_high, info]), (size,), jnp.float32)


def parse_learners(learners: str | int | Sequence[int], num_seats: int) -> tuple[int, ...]:
    """"all" | K (seats 0..K-1) | seats -> sorted seat indices; ValueError names the choices."""
    if isinstance(learners, str) and learners != "all":
        raise ValueError(f"learners must be 'all', a count or seats, got {learners!r}")
    if learners == "all":
        return tuple(range(num_seats))
    if isinstance(learners, int) and not isinstance(learners, bool):
        if not 1 <= learners <= num_seats:
            raise ValueError(f"learners count must be in 1..{num_seats}, got {learners}")
        return tuple(range(learners))
    seats = tuple(sorted(int(s) for s in learners))
    if not seats or len(set(seats)) != len(seats) or not all(0 <= s < num_seats for s in seats):
        raise ValueError(
            f"learner seats must be distinct seats in 0..{num_seats - 1}, got {list(learners)}")
    return seats


def make_marl_env(scenario: str | Scenario = "default", num_agents: int = 3,
                  learners: str | int | Sequence[int] = "all",
                  heuristics: Sequence[str] | None = None, max_steps: int = 50,
                  flat_actions: bool = False) -> BucketBrigadeMARL:
    """`num_agents` seats; `learners` which learn; `heuristics` the other seats' kinds in
    seat order (default: the single-learner view's default opponents)."""
    n = check_num_agents(num_agents)
    seats = parse_learners(learners, n)
    m = n - len(seats)
    kinds = tuple(default_opponents(m)) if heuristics is None else check_kinds(heuristics)
    if len(kinds) != m:
        raise ValueError(f"got {len(kinds)} heuristic kinds for {m} heuristic seats")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps!r}")
    if isinstance(scenario, str):
        scenario = get_scenario(scenario, n)
    return BucketBrigadeMARL(scenario, n, seats, kinds, int(max_steps), bool(flat_actions))
