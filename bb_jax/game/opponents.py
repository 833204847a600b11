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


def _house_choice(p, own, burning_f, crowd, u_house) -> jnp.ndarray:
    """int32[]: the house drawn from the scores by inverse CDF (cumulative sums taken
    sequentially in float32), one house at a time (see `_act_one`)."""
    cdf = []
    for h in range(NUM_HOUSES):
        gap = jnp.abs(h - own)
        dist = jnp.minimum(gap, NUM_HOUSES - gap).astype(jnp.float32)
        neighbours = burning_f[h - 1] + burning_f[(h + 1) % NUM_HOUSES]
        score = (
            0.1 / (1.0 + dist)
            + p[3] * (h == own)
            + 0.5 * burning_f[h]
            + 0.3 * p[2] * (neighbours > 0)
            + 0.1 * p[5] * crowd[h]
            - 0.2 * p[4] * neighbours
        )
        score = jnp.maximum(score, 0.01)
        cdf.append(score if h == 0 else cdf[-1] + score)
    threshold = u_house * cdf[-1]
    below = jnp.int32(0)
    for c in cdf:
        below = below + (c <= threshold).astype(jnp.int32)
    return jnp.minimum(below, NUM_HOUSES - 1)


def _act_one(p, seat, burning_f, crowd, last_action, has_last, u):
    """(house, mode) int32[] of one heuristic: params p float32[10], seat int32[],
    burning_f / crowd lists of 10 float32[], last_action int32[2], u its ActDraws entries.

    Works on one house (scalar) at a time, so that under `vmap` over environments every
    operation is elementwise over the batch. The int32[10] / float32[10] array form cost
    a quarter more per env step at batch 16384 on CPU: XLA fused it into the actions'
    concatenation and, element by element, recomputed the scores behind each entry of the
    sequential cumulative sum. Every float32 operation and its order are as in the rules, so
    the results are bit for bit those of the array form."""
    own = seat % NUM_HOUSES
    frac_burning = burning_f[0]
    for b in burning_f[1:]:
        frac_burning = frac_burning + b
    frac_burning = frac_burning / NUM_HOUSES
    burning_own = burning_f[0] > 0
    for h in range(1, NUM_HOUSES):
        burning_own = jnp.where(own == h, burning_f[h] > 0, burning_own)
    own_bonus = jnp.where(burning_own, 0.5 * p[3], 0.0)
    intent = jnp.clip((p[1] + p[4] * frac_burning + own_bonus) * (1.0 - p[8]), 0.0, 1.0)
    honest = u.signal < p[0]
    signal = jnp.where(honest, intent > 0.5, intent <= 0.5)

    house = _house_choice(p, own, burning_f, crowd, u.house)
    work = jnp.where(signal, u.mode < p[0], u.mode < intent * p[9])

    explore = u.explore < p[6]
    house = jnp.where(explore, jnp.minimum(jnp.floor(u.explore_house * 10), 9), house)
    work = jnp.where(explore, jnp.floor(u.explore_mode * 2) >= 1, work)

    repeat = has_last & (u.repeat < p[7])
    house = jnp.where(repeat, last_action[0], house)
    mode = jnp.where(repeat, last_action[1], work.astype(jnp.int32))
    return house.astype(jnp.int32), mode.astype(jnp.int32)


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
    burning_f = [(houses[h] == BURNING).astype(jnp.float32) for h in range(NUM_HOUSES)]
    crowd = [
        sum((locations[i] == h).astype(jnp.int32) for i in range(locations.shape[0]))
        .astype(jnp.float32)
        for h in range(NUM_HOUSES)
    ]
    return _stored(jnp.stack([
        jnp.stack(_act_one(params[j], seats[j], burning_f, crowd, last_actions[j], has_last,
                           jax.tree.map(lambda d, j=j: d[j], draws)))
        for j in range(num_opponents)
    ]))


def _stored(x: jnp.ndarray) -> jnp.ndarray:
    """x itself (int32), as the sum of x and 0 over a new axis of two.

    Why: XLA on CPU stores the result of a reduction, where it fuses an elementwise chain (the
    heuristics) into each consumer of the actions; left that way it evaluated the decisions
    inside the actions' concatenation, branching on every element (docs/PERFORMANCE.md).
    Integers, so the values are exact."""
    return jnp.sum(jnp.stack([x, jnp.zeros_like(x)], axis=-1), axis=-1)
