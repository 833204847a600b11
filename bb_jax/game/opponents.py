"""Heuristic opponents (docs/GAME_RULES.md): ten behaviour parameters in [0, 1] per opponent.

Parameter order: honesty, work_tendency, neighbor_help, own_house_priority, risk_aversion,
coordination, exploration, fatigue_memory, rest_bias, altruism (p0..p9).
An opponent's last action is the game's `last_actions[j]`; it "has" one iff night > 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bb_jax.game.rules import BURNING, NUM_HOUSES

NUM_PARAMS = 10
ARCHETYPES: dict[str, tuple[float, ...]] = {
    "firefighter": (1.0, 0.9, 0.5, 0.8, 0.5, 0.7, 0.1, 0.0, 0.0, 0.8),
    "coordinator": (0.9, 0.6, 0.7, 0.6, 0.8, 1.0, 0.05, 0.0, 0.2, 0.6),
    "free_rider": (0.7, 0.2, 0.0, 0.9, 0.0, 0.0, 0.1, 0.0, 0.9, 0.0),
    "liar": (0.1, 0.7, 0.0, 0.9, 0.2, 0.8, 0.3, 0.0, 0.4, 0.2),
    "hero": (1.0, 1.0, 1.0, 0.5, 0.1, 0.5, 0.0, 0.9, 0.0, 1.0),
}
OPPONENT_KINDS = ("random", *ARCHETYPES)
_DEFAULT_CYCLE = ("random", "random", "firefighter", "coordinator")


def default_opponents(num_opponents: int) -> list[str]:
    """random, random, firefighter, coordinator, repeated and cut to `num_opponents`."""
    return [_DEFAULT_CYCLE[i % len(_DEFAULT_CYCLE)] for i in range(num_opponents)]


def check_kinds(kinds: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    for kind in kinds:
        if kind not in OPPONENT_KINDS:
            raise ValueError(
                f"unknown opponent kind {kind!r}; valid kinds: {', '.join(OPPONENT_KINDS)}"
            )
    return tuple(kinds)


@struct.dataclass
class OpponentTable:
    """Static description of the opponent seats, as arrays.

    fixed_params float32[M, 10] (zeros for `random` seats); is_random bool[M]."""

    fixed_params: jnp.ndarray
    is_random: jnp.ndarray


def make_table(kinds: tuple[str, ...]) -> OpponentTable:
    check_kinds(kinds)
    fixed = np.array(
        [ARCHETYPES.get(k, (0.0,) * NUM_PARAMS) for k in kinds], np.float32
    ).reshape(len(kinds), NUM_PARAMS)
    return OpponentTable(
        fixed_params=jnp.asarray(fixed),
        is_random=jnp.asarray(np.array([k == "random" for k in kinds], bool)),
    )


def episode_params(table: OpponentTable, uniforms: jnp.ndarray) -> jnp.ndarray:
    """float32[M, 10]: a `random` seat takes `uniforms[j]` (float32[M, 10]); others are fixed."""
    return jnp.where(table.is_random[:, None], uniforms, table.fixed_params)


@struct.dataclass
class ActDraws:
    """Uniforms for one night of M opponents, each float32[M], in decision order.

    signal: honest iff signal < p0.
    house: house = number of h with cumsum(score)[h] <= house * sum(score) (inverse CDF, sums
        taken sequentially in float32).
    mode: WORK iff mode < p0 (signal set) or mode < intent * p9 (signal unset).
    explore: explore iff explore < p6; then house = floor(10 * explore_house),
        mode = floor(2 * explore_mode).
    repeat: repeat last action iff it has one and repeat < p7.
    """

    signal: jnp.ndarray
    house: jnp.ndarray
    mode: jnp.ndarray
    explore: jnp.ndarray
    explore_house: jnp.ndarray
    explore_mode: jnp.ndarray
    repeat: jnp.ndarray


NUM_ACT_DRAWS = 7


def act_draws_from_block(block: jnp.ndarray) -> ActDraws:
    """Split float32[M, 7] uniforms into ActDraws (columns in field order)."""
    return ActDraws(*(block[:, i] for i in range(NUM_ACT_DRAWS)))


def _sequential_cumsum(x: jnp.ndarray) -> jnp.ndarray:
    out = [x[0]]
    for i in range(1, x.shape[0]):
        out.append(out[-1] + x[i])
    return jnp.stack(out)


def _act_one(
    params, seat, houses, locations, last_action, has_last, u_signal, u_house, u_mode,
    u_explore, u_explore_house, u_explore_mode, u_repeat,
):
    p = params
    own = seat % NUM_HOUSES
    burning = houses == BURNING
    burning_f = burning.astype(jnp.float32)
    frac_burning = jnp.sum(burning_f) / NUM_HOUSES
    own_bonus = jnp.where(burning[own], 0.5 * p[3], 0.0)
    intent = jnp.clip((p[1] + p[4] * frac_burning + own_bonus) * (1.0 - p[8]), 0.0, 1.0)
    honest = u_signal < p[0]
    signal = jnp.where(honest, intent > 0.5, intent <= 0.5)

    h = jnp.arange(NUM_HOUSES)
    gap = jnp.abs(h - own)
    dist = jnp.minimum(gap, NUM_HOUSES - gap).astype(jnp.float32)
    burning_neighbours = jnp.roll(burning_f, 1) + jnp.roll(burning_f, -1)
    crowd = jnp.sum(locations[:, None] == h[None, :], axis=0).astype(jnp.float32)
    score = (
        0.1 / (1.0 + dist)
        + p[3] * (h == own)
        + 0.5 * burning_f
        + 0.3 * p[2] * (burning_neighbours > 0)
        + 0.1 * p[5] * crowd
        - 0.2 * p[4] * burning_neighbours
    )
    score = jnp.maximum(score, 0.01)
    cdf = _sequential_cumsum(score)
    house = jnp.minimum(jnp.sum(cdf <= u_house * cdf[-1]), NUM_HOUSES - 1)
    work = jnp.where(signal, u_mode < p[0], u_mode < intent * p[9])

    explore = u_explore < p[6]
    house = jnp.where(explore, jnp.minimum(jnp.floor(u_explore_house * 10), 9), house)
    work = jnp.where(explore, jnp.floor(u_explore_mode * 2) >= 1, work)

    repeat = has_last & (u_repeat < p[7])
    house = jnp.where(repeat, last_action[0], house)
    mode = jnp.where(repeat, last_action[1], work.astype(jnp.int32))
    return jnp.stack([house.astype(jnp.int32), mode.astype(jnp.int32)])


def act(
    params: jnp.ndarray,
    houses: jnp.ndarray,
    locations: jnp.ndarray,
    last_actions: jnp.ndarray,
    has_last: jnp.ndarray,
    draws: ActDraws,
    seats: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Actions int32[M, 2] of M heuristic agents, by default the opponents at seats 1..M.

    params float32[M, 10]; houses int32[10]; locations int32[N] (all agents, as observed);
    last_actions int32[M, 2] (their own); has_last bool[]; seats int32[M] (default 1..M):
    the agents' indices, whose "own" house is `seat mod 10` (so a heuristic in the learner's
    seat, `seats=[0]`, guards house 0; see `bb_jax.agent.policies`).
    """
    num_opponents = params.shape[0]
    if seats is None:
        seats = jnp.arange(1, num_opponents + 1)
    seats = jnp.broadcast_to(jnp.asarray(seats, jnp.int32), (num_opponents,))
    return jax.vmap(_act_one, in_axes=(0, 0, None, None, 0, None, 0, 0, 0, 0, 0, 0, 0))(
        params, seats, houses, locations, last_actions, has_last,
        draws.signal, draws.house, draws.mode, draws.explore,
        draws.explore_house, draws.explore_mode, draws.repeat,
    )
