"""An independent, plain-Python reference of Bucket Brigade (docs/GAME_RULES.md, "rules v1").

Written from the rules text for clarity, not speed: explicit loops over houses and agents,
NumPy float32 scalars for every piece of arithmetic. It shares nothing with the JAX code in
`bb_jax.game.rules` / `bb_jax.game.opponents` / `bb_jax.game.env` except the *layout of the
random draws* (which uniform drives which decision), so that both can be fed the same uniforms
and must then produce identical trajectories. See docs/GAME_RULES.md, section "Randomness: the
draw layout".

Used only by tests and benchmarks; nothing else in `bb_jax` imports it.

Two ways to drive it:

* replay mode: `env.reset_with_draws(block)` / `env.step_with_draws(action, block)` consume
  float32 uniforms in the documented layout (`env.num_reset_draws`, `env.num_draws`);
* own-RNG mode: `env.reset(rng)` / `env.step(rng, action)` with a `numpy.random.Generator`
  (the CPU baseline loop for benchmarks).

Numeric conventions (shared with the JAX implementation so that results agree bit for bit):
float32 everywhere; `q**k` for extinguishing by `k` sequential float32 products; the heuristic
opponent's house is drawn by inverse CDF over a sequential float32 cumulative sum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

F32 = np.float32

SAFE, BURNING, RUINED = 0, 1, 2
REST, WORK = 0, 1
NUM_HOUSES = 10
MIN_AGENTS, MAX_AGENTS = 2, 10

# ---------------------------------------------------------------------------------------------
# Scenarios (docs/GAME_RULES.md, "Scenarios"), kept here independently of bb_jax.game.scenarios.
# ---------------------------------------------------------------------------------------------

SCENARIO_FIELDS = (
    "p_spread", "p_ext", "p_fire", "A", "L", "r_own", "r_other",
    "pen_own", "pen_other", "c", "min_nights",
)

SCENARIO_TABLE: dict[str, tuple[float, ...]] = {
    #                      p_spread p_ext p_fire  A    L   r_own r_oth pen_o pen_x  c  min_n
    "default":             (0.25, 0.5,  0.02, 100, 100, 100, 50, 0, 0, 0.5, 12),
    "easy":                (0.1,  0.8,  0.01, 100, 100, 100, 50, 0, 0, 0.5, 10),
    "hard":                (0.4,  0.3,  0.05, 100, 100, 100, 50, 0, 0, 0.5, 15),
    "trivial_cooperation": (0.15, 0.9,  0.0,  100, 100, 100, 50, 0, 0, 0.5, 12),
    "early_containment":   (0.35, 0.6,  0.02, 100, 100, 100, 50, 0, 0, 0.5, 12),
    "greedy_neighbor":     (0.15, 0.4,  0.02, 100, 100, 100, 50, 0, 0, 1.0, 12),
    "sparse_heroics":      (0.1,  0.5,  0.02, 100, 100, 100, 50, 0, 0, 0.8, 20),
    "rest_trap":           (0.05, 0.95, 0.02, 100, 100, 100, 50, 0, 0, 0.2, 12),
    "chain_reaction":      (0.45, 0.6,  0.03, 100, 100, 100, 50, 0, 0, 0.7, 15),
    "deceptive_calm":      (0.25, 0.6,  0.05, 100, 100, 100, 50, 0, 0, 0.4, 20),
    "overcrowding":        (0.2,  0.3,  0.02, 50,  100, 100, 50, 0, 0, 0.6, 12),
    "mixed_motivation":    (0.3,  0.5,  0.03, 100, 100, 100, 50, 0, 0, 0.6, 15),
}


def scenario_values(scenario: str | Mapping[str, float]) -> dict[str, np.float32]:
    """Scenario parameters as float32 scalars.

    `scenario` is a name from SCENARIO_TABLE or a mapping with every field of SCENARIO_FIELDS
    (e.g. a named scenario with one value changed).
    """
    if isinstance(scenario, str):
        if scenario not in SCENARIO_TABLE:
            raise ValueError(
                f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIO_TABLE)}"
            )
        raw = dict(zip(SCENARIO_FIELDS, SCENARIO_TABLE[scenario]))
    else:
        raw = {name: scenario[name] for name in SCENARIO_FIELDS}
    return {name: F32(value) for name, value in raw.items()}


# ---------------------------------------------------------------------------------------------
# Heuristic opponents (docs/GAME_RULES.md, "Heuristic opponents").
# ---------------------------------------------------------------------------------------------

# p0 honesty, p1 work_tendency, p2 neighbor_help, p3 own_house_priority, p4 risk_aversion,
# p5 coordination, p6 exploration, p7 fatigue_memory, p8 rest_bias, p9 altruism
FIXED_KINDS: dict[str, tuple[float, ...]] = {
    "firefighter": (1.0, 0.9, 0.5, 0.8, 0.5, 0.7, 0.1, 0.0, 0.0, 0.8),
    "coordinator": (0.9, 0.6, 0.7, 0.6, 0.8, 1.0, 0.05, 0.0, 0.2, 0.6),
    "free_rider": (0.7, 0.2, 0.0, 0.9, 0.0, 0.0, 0.1, 0.0, 0.9, 0.0),
    "liar": (0.1, 0.7, 0.0, 0.9, 0.2, 0.8, 0.3, 0.0, 0.4, 0.2),
    "hero": (1.0, 1.0, 1.0, 0.5, 0.1, 0.5, 0.0, 0.9, 0.0, 1.0),
}
KINDS = ("random", *FIXED_KINDS)


def default_opponent_kinds(num_opponents: int) -> list[str]:
    """random, random, firefighter, coordinator, repeated and cut to `num_opponents`."""
    cycle = ["random", "random", "firefighter", "coordinator"]
    return [cycle[j % 4] for j in range(num_opponents)]


def ring_distance(a: int, b: int) -> int:
    gap = abs(a - b) % NUM_HOUSES
    return min(gap, NUM_HOUSES - gap)


# float32 constants of the opponent's formulas
_ZERO, _ONE, _HALF, _TENTH = F32(0.0), F32(1.0), F32(0.5), F32(0.1)
_W_NEIGHBOUR, _W_COORD, _W_RISK, _MIN_SCORE = F32(0.3), F32(0.1), F32(0.2), F32(0.01)
# 0.1 / (1 + d) for ring distance d = 0..5
_DISTANCE_SCORE = [F32(_TENTH / F32(1 + d)) for d in range(NUM_HOUSES // 2 + 1)]


def _intent(p1, p3, p4, p8, houses: Sequence[int], own: int) -> np.float32:
    """The opponent's drive to work, clipped to [0, 1] (float32, in the rules' order)."""
    num_burning = sum(1 for h in range(NUM_HOUSES) if houses[h] == BURNING)
    frac_burning = F32(num_burning) / F32(NUM_HOUSES)
    drive = p1 + p4 * frac_burning
    if houses[own] == BURNING:
        drive = drive + _HALF * p3
    intent = drive * (_ONE - p8)
    return min(max(intent, _ZERO), _ONE)


def _house_scores(p2, p3, p4, p5, houses: Sequence[int], locations: Sequence[int],
                  own: int) -> list[np.float32]:
    """Each house's score (terms in the order of the rules; a zero term is not added)."""
    neighbour_help = _W_NEIGHBOUR * p2
    coordination = _W_COORD * p5
    risk = _W_RISK * p4
    scores = []
    for h in range(NUM_HOUSES):
        left, right = (h - 1) % NUM_HOUSES, (h + 1) % NUM_HOUSES
        burning_neighbours = int(houses[left] == BURNING) + int(houses[right] == BURNING)
        agents_here = sum(1 for loc in locations if loc == h)
        score = _DISTANCE_SCORE[ring_distance(h, own)]
        if h == own:
            score = score + p3
        if houses[h] == BURNING:
            score = score + _HALF
        if burning_neighbours > 0:
            score = score + neighbour_help
        if agents_here > 0:
            score = score + coordination * F32(agents_here)
        if burning_neighbours > 0:
            score = score - risk * F32(burning_neighbours)
        scores.append(max(score, _MIN_SCORE))
    return scores


def _sample_house(scores: Sequence[np.float32], u_house: np.float32) -> int:
    """The inverse CDF of the scores at u_house, with a sequential float32 sum."""
    cumsum = []
    running = _ZERO
    for s in scores:
        running = running + s
        cumsum.append(running)
    threshold = u_house * cumsum[-1]
    house = sum(1 for c in cumsum if c <= threshold)
    return min(house, NUM_HOUSES - 1)


def opponent_act(
    params: Sequence[np.float32],
    agent_id: int,
    houses: Sequence[int],
    locations: Sequence[int],
    last_action: tuple[int, int] | None,
    u: Sequence[np.float32],
) -> tuple[int, int]:
    """One night's (house, mode) of the heuristic opponent with id `agent_id` (1..N-1).

    params: its ten parameters p0..p9 (float32). houses: the observed houses; locations: the
    observed locations of all N agents. last_action: its previous (house, mode), or None at
    the start of an episode. u: seven uniforms, in this order:
    signal, house, mode, explore, explore_house, explore_mode, repeat.
    """
    p0, p1, p2, p3, p4, p5, p6, p7, p8, p9 = (F32(x) for x in params)
    u_signal, u_house, u_mode, u_explore, u_explore_house, u_explore_mode, u_repeat = (
        F32(x) for x in u
    )
    own = agent_id % NUM_HOUSES  # (quirk) not the reward ownership h mod N

    # 1. intent
    intent = _intent(p1, p3, p4, p8, houses, own)

    # 2. signal (internal; only steers the mode)
    signal = bool(intent > _HALF)
    honest = bool(u_signal < p0)
    if not honest:
        signal = not signal

    # 3. house, by score
    house = _sample_house(_house_scores(p2, p3, p4, p5, houses, locations, own), u_house)

    # 4. mode
    if signal:
        work = bool(u_mode < p0)
    else:
        work = bool(u_mode < F32(intent * p9))
    mode = WORK if work else REST

    # 5. exploration
    if u_explore < p6:
        house = min(int(np.floor(F32(10.0) * u_explore_house)), NUM_HOUSES - 1)
        mode = min(int(np.floor(F32(2.0) * u_explore_mode)), 1)

    # 6. repetition
    if last_action is not None and u_repeat < p7:
        house, mode = last_action

    return int(house), int(mode)


# ---------------------------------------------------------------------------------------------
# The game for N agents.
# ---------------------------------------------------------------------------------------------


@dataclass
class GameState:
    """houses[10] in {SAFE, BURNING, RUINED}; night = 0-based index of the next night."""

    houses: list[int]
    night: int
    signals: list[int]
    locations: list[int]
    last_actions: list[tuple[int, int]]


def game_reset(scn: Mapping[str, np.float32], num_agents: int, ignite: Sequence) -> GameState:
    """Fresh town (all SAFE, fix); house h starts BURNING iff ignite[h] < p_fire."""
    houses = [SAFE] * NUM_HOUSES
    for h in range(NUM_HOUSES):
        if F32(ignite[h]) < scn["p_fire"]:
            houses[h] = BURNING
    return GameState(
        houses=houses,
        night=0,
        signals=[0] * num_agents,
        locations=[0] * num_agents,
        last_actions=[(0, 0)] * num_agents,
    )


def game_step(
    state: GameState,
    scn: Mapping[str, np.float32],
    actions: Sequence[tuple[int, int]],
    u_extinguish: Sequence,
    u_spread: Sequence[Sequence],
    u_ignite: Sequence,
) -> tuple[GameState, list[np.float32], bool]:
    """One night. Returns (next state, rewards of every agent (float32), done).

    u_extinguish[h], u_spread[h][0 / 1] (towards h-1 / h+1), u_ignite[h]: uniforms.
    """
    n = len(actions)
    prev = list(state.houses)
    houses = list(state.houses)

    # 1. signals, locations, last actions
    signals = [int(mode) for (_, mode) in actions]
    locations = [int(house) for (house, _) in actions]
    last_actions = [(int(house), int(mode)) for (house, mode) in actions]

    # 2. extinguish
    q = F32(1.0) - scn["p_ext"]
    for h in range(NUM_HOUSES):
        if prev[h] != BURNING:
            continue
        workers = sum(1 for (house, mode) in actions if house == h and mode == WORK)
        q_pow = F32(1.0)
        for _ in range(workers):
            q_pow = F32(q_pow * q)
        p_put_out = F32(F32(1.0) - q_pow)
        if F32(u_extinguish[h]) < p_put_out:
            houses[h] = SAFE

    # 3. burn-out
    for h in range(NUM_HOUSES):
        if houses[h] == BURNING:
            houses[h] = RUINED

    # 4. spread (quirk: after burn-out nothing is BURNING, so this never fires)
    burning_now = [houses[h] == BURNING for h in range(NUM_HOUSES)]
    for h in range(NUM_HOUSES):
        if not burning_now[h]:
            continue
        for col, neighbour in ((0, (h - 1) % NUM_HOUSES), (1, (h + 1) % NUM_HOUSES)):
            if houses[neighbour] == SAFE and F32(u_spread[h][col]) < scn["p_spread"]:
                houses[neighbour] = BURNING

    # 5. spontaneous ignition
    for h in range(NUM_HOUSES):
        if houses[h] == SAFE and F32(u_ignite[h]) < scn["p_fire"]:
            houses[h] = BURNING

    # 6. rewards
    num_safe = sum(1 for h in range(NUM_HOUSES) if houses[h] == SAFE)
    num_ruined = sum(1 for h in range(NUM_HOUSES) if houses[h] == RUINED)
    team_gain = F32(scn["A"] * F32(num_safe) / F32(10.0))
    team_loss = F32(scn["L"] * F32(num_ruined) / F32(10.0))
    rewards = []
    for i in range(n):
        owned = [h for h in range(NUM_HOUSES) if h % n == i]
        saved = sum(1 for h in owned if prev[h] != SAFE and houses[h] == SAFE)
        ruined = sum(1 for h in owned if houses[h] == RUINED)
        r = -scn["c"] if actions[i][1] == WORK else F32(0.5)
        r = F32(r + F32(1.0) * F32(saved))
        r = F32(r - F32(2.0) * F32(ruined))
        r = F32(r + team_gain)
        r = F32(r - team_loss)
        rewards.append(r)

    # 7. termination, 8. next night
    done = state.night >= int(scn["min_nights"]) and not any(h == BURNING for h in houses)
    new_state = GameState(
        houses=houses,
        night=state.night + 1,
        signals=signals,
        locations=locations,
        last_actions=last_actions,
    )
    return new_state, rewards, bool(done)


def game_observation(state: GameState, scn: Mapping[str, np.float32]) -> np.ndarray:
    """float32[22 + 4N]: houses, signals, locations, last actions (h0, m0, ...), scenario info."""
    n = len(state.signals)
    values: list[float] = []
    values += [float(x) for x in state.houses]
    values += [float(x) for x in state.signals]
    values += [float(x) for x in state.locations]
    for house, mode in state.last_actions:
        values += [float(house), float(mode)]
    values += [float(scn[name]) for name in SCENARIO_FIELDS]
    values.append(float(n))
    return np.asarray(values, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# The single-learner view.
# ---------------------------------------------------------------------------------------------


@dataclass
class StepDrawsView:
    """Named parts of one step's block of uniforms (see ReferenceEnv.split_block)."""

    extinguish: np.ndarray  # [10]
    spread: np.ndarray  # [10, 2]
    ignite: np.ndarray  # [10]
    act: np.ndarray  # [M, 7]
    reset: np.ndarray  # [10 + 10 M]


@dataclass
class ReferenceEnv:
    """Single-learner Bucket Brigade: agent 0 is the learner, agents 1..N-1 heuristic opponents.

    scenario: a name or a mapping of every SCENARIO_FIELDS value. opponents: list of kinds
    (default: `default_opponent_kinds(num_opponents)`).
    """

    scenario: str | Mapping[str, float] = "default"
    num_opponents: int = 2
    opponents: Sequence[str] | None = None
    max_steps: int = 50
    # episode state
    game: GameState | None = field(default=None, init=False)
    opponent_params: list[list[np.float32]] = field(default_factory=list, init=False)
    step_count: int = field(default=0, init=False)
    episode_return: np.float32 = field(default=F32(0.0), init=False)

    def __post_init__(self):
        self.scn = scenario_values(self.scenario)
        if isinstance(self.num_opponents, bool) or int(self.num_opponents) != self.num_opponents \
                or not 1 <= self.num_opponents <= MAX_AGENTS - 1:
            raise ValueError(f"num_opponents must be in 1..{MAX_AGENTS - 1}")
        kinds = (
            default_opponent_kinds(self.num_opponents)
            if self.opponents is None else list(self.opponents)
        )
        if len(kinds) != self.num_opponents:
            raise ValueError("len(opponents) must equal num_opponents")
        for kind in kinds:
            if kind not in KINDS:
                raise ValueError(f"unknown opponent kind {kind!r}; valid: {', '.join(KINDS)}")
        self.kinds = kinds

    # sizes -------------------------------------------------------------------------------
    @property
    def num_agents(self) -> int:
        return self.num_opponents + 1

    @property
    def observation_size(self) -> int:
        return 22 + 4 * self.num_agents

    @property
    def num_reset_draws(self) -> int:
        """ignite (10), then opponent parameters (M x 10, row-major)."""
        return NUM_HOUSES + 10 * self.num_opponents

    @property
    def num_draws(self) -> int:
        """extinguish (10) | spread (10 x 2) | ignite (10) | opponents (M x 7) | reset block."""
        return 40 + 7 * self.num_opponents + self.num_reset_draws

    def split_block(self, block) -> StepDrawsView:
        block = np.asarray(block, dtype=np.float32)
        if block.shape != (self.num_draws,):
            raise ValueError(f"block must have shape ({self.num_draws},), got {block.shape}")
        m = self.num_opponents
        return StepDrawsView(
            extinguish=block[0:10],
            spread=block[10:30].reshape(10, 2),
            ignite=block[30:40],
            act=block[40:40 + 7 * m].reshape(m, 7),
            reset=block[40 + 7 * m:],
        )

    # episode -----------------------------------------------------------------------------
    def observation(self) -> np.ndarray:
        return game_observation(self.game, self.scn)

    def reset_with_draws(self, block) -> np.ndarray:
        """Start an episode from a float32[num_reset_draws] block; returns the observation."""
        block = np.asarray(block, dtype=np.float32)
        if block.shape != (self.num_reset_draws,):
            raise ValueError(
                f"reset block must have shape ({self.num_reset_draws},), got {block.shape}"
            )
        self.game = game_reset(self.scn, self.num_agents, block[:NUM_HOUSES])
        param_uniforms = block[NUM_HOUSES:].reshape(self.num_opponents, 10)
        self.opponent_params = []
        for j, kind in enumerate(self.kinds):
            if kind == "random":
                self.opponent_params.append([F32(x) for x in param_uniforms[j]])
            else:
                self.opponent_params.append([F32(x) for x in FIXED_KINDS[kind]])
        self.step_count = 0
        self.episode_return = F32(0.0)
        return self.observation()

    def opponent_actions(self, act_uniforms) -> list[tuple[int, int]]:
        """Actions of agents 1..N-1, chosen from the current (pre-step) observation."""
        g = self.game
        actions = []
        for j in range(self.num_opponents):
            agent_id = j + 1
            last = g.last_actions[agent_id] if g.night > 0 else None
            actions.append(
                opponent_act(
                    self.opponent_params[j], agent_id, g.houses, g.locations, last,
                    act_uniforms[j],
                )
            )
        return actions

    def step_with_draws(self, action, block):
        """Agent 0 plays `action` = (house, mode); `block` float32[num_draws].

        Returns (obs, reward, terminated, truncated, info). If the episode ended, obs is the
        first observation of a fresh episode (auto-reset with the block's reset part) and
        info["final_observation"] the observation of the step's result (always present).
        info also holds "actions" (every agent's action), "rewards" (every agent's reward),
        "episode_return" and "episode_length".
        """
        if self.game is None:
            raise RuntimeError("call reset first")
        draws = self.split_block(block)
        learner = (int(action[0]), int(action[1]))
        actions = [learner] + self.opponent_actions(draws.act)
        self.game, rewards, done = game_step(
            self.game, self.scn, actions, draws.extinguish, draws.spread, draws.ignite
        )
        reward = rewards[0]
        self.step_count += 1
        self.episode_return = F32(self.episode_return + reward)
        terminated = done
        truncated = self.step_count >= self.max_steps
        final_obs = self.observation()
        info = {
            "final_observation": final_obs,
            "actions": actions,
            "rewards": rewards,
            "episode_return": self.episode_return,
            "episode_length": self.step_count,
        }
        if terminated or truncated:
            obs = self.reset_with_draws(draws.reset)
        else:
            obs = final_obs
        return obs, reward, terminated, truncated, info

    # own-RNG mode -------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator) -> np.ndarray:
        return self.reset_with_draws(rng.random(self.num_reset_draws, dtype=np.float32))

    def step(self, rng: np.random.Generator, action):
        return self.step_with_draws(action, rng.random(self.num_draws, dtype=np.float32))
