"""The rules of Bucket Brigade for N agents (docs/GAME_RULES.md, "rules v1"), as pure JAX functions.

Randomness is explicit: every random decision consumes one float32 uniform in [0, 1) from a
fixed-shape block (`ResetDraws`, `StepDraws`), so the plain-Python reference can replay a JAX
trajectory exactly by consuming the same block. `reset_with_draws` / `step_with_draws` take
the block ready-made; the env (`bb_jax.game.env`) draws it from a key.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from bb_jax.game.scenarios import Scenario

NUM_HOUSES = 10
SAFE, BURNING, RUINED = 0, 1, 2
REST, WORK = 0, 1
REST_REWARD = 0.5
EXTINGUISH_BONUS = 1.0
RUINED_OWN_PENALTY = 2.0


@struct.dataclass
class GameState:
    """houses int32[10] in {SAFE, BURNING, RUINED}; night int32 (0-based index of the next
    night); signals, locations int32[N]; last_actions int32[N, 2] as (house, mode)."""

    houses: jnp.ndarray
    night: jnp.ndarray
    signals: jnp.ndarray
    locations: jnp.ndarray
    last_actions: jnp.ndarray


@struct.dataclass
class ResetDraws:
    """ignite float32[10]: house h starts BURNING iff ignite[h] < p_fire."""

    ignite: jnp.ndarray


@struct.dataclass
class StepDraws:
    """Uniforms for one night, consumed in phase order.

    extinguish float32[10]: burning house h with k workers becomes SAFE iff
        extinguish[h] < 1 - (1 - p_ext)^k.
    spread float32[10, 2]: burning house h sets SAFE neighbour h-1 (column 0) / h+1
        (column 1) BURNING iff spread[h, col] < p_spread.
    ignite float32[10]: SAFE house h becomes BURNING iff ignite[h] < p_fire.
    """

    extinguish: jnp.ndarray
    spread: jnp.ndarray
    ignite: jnp.ndarray


_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_THREEFRY_PARITY = 0x1BD11BDA


def _rotate_left(x: jnp.ndarray, bits: int) -> jnp.ndarray:
    return (x << np.uint32(bits)) | (x >> np.uint32(32 - bits))


def _threefry2x32(key: jnp.ndarray, x0: jnp.ndarray, x1: jnp.ndarray):
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011, the hash behind JAX's default PRNG)
    of counter words x0, x1 uint32[n] under key uint32[2]; returns both output words.

    Unrolled, so XLA fuses it into one elementwise loop: JAX's own lowering on CPU runs the
    five key injections as a rolled loop, each round a pass over memory."""
    ks = (key[0], key[1], key[0] ^ key[1] ^ np.uint32(_THREEFRY_PARITY))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for bits in _THREEFRY_ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotate_left(x1, bits) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _threefry_key_data(key: chex.PRNGKey) -> jnp.ndarray | None:
    """uint32[2] of a single threefry key (typed or raw); None for any other key."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape or "threefry" not in str(jax.random.key_impl(key)):
            return None
        return jax.random.key_data(key)
    if key.shape != (2,) or key.dtype != jnp.uint32:
        return None
    if "threefry" not in str(jax.config.jax_default_prng_impl):
        return None
    return key


def uniforms(key: chex.PRNGKey, shape: tuple[int, ...]) -> jnp.ndarray:
    """float32[*shape] uniforms in [0, 1): every random number of the game comes from here.

    Bit for bit `jax.random.uniform(key, shape)` under threefry's non-partitionable form: counter
    i < n/2 pairs with i + n/2 (n the element count, padded to even with a zero counter), the
    first output words fill the first half and the second words the rest; each 32-bit word
    keeps its top 23 bits as the mantissa of a float in [1, 2), minus 1. On CPU that form draws
    faster than the partitionable one (JAX's default), and this unrolled hash faster again than
    JAX's rolled loop (docs/PERFORMANCE.md). The user's own jax.random streams keep JAX's
    setting. Keys of another PRNG implementation, or more than 2^32 - 1 words, go through
    jax.random itself."""
    data = _threefry_key_data(key)
    n = math.prod(shape)
    if data is None or n >= np.iinfo(np.uint32).max:
        with jax.threefry_partitionable(False):
            return jax.random.uniform(key, shape)
    half = (n + 1) // 2
    counts = jax.lax.iota(jnp.uint32, half)
    second = counts + np.uint32(half)
    if n % 2:
        second = jnp.where(second < n, second, np.uint32(0))
    words = jnp.concatenate(_threefry2x32(data, counts, second))[:n]
    mantissa = (words >> np.uint32(9)) | np.uint32(0x3F800000)
    return (jax.lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0).reshape(shape)


def reset_with_draws(draws: ResetDraws, scenario: Scenario, num_agents: int) -> GameState:
    """A fresh town (all SAFE, fix), each house then BURNING with probability p_fire."""
    houses = jnp.where(draws.ignite < scenario.p_fire, BURNING, SAFE).astype(jnp.int32)
    zeros = jnp.zeros((num_agents,), jnp.int32)
    return GameState(
        houses=houses,
        night=jnp.int32(0),
        signals=zeros,
        locations=zeros,
        last_actions=jnp.zeros((num_agents, 2), jnp.int32),
    )


def ownership(num_agents: int) -> jnp.ndarray:
    """bool[N, 10]: agent i owns house h iff h mod N == i."""
    return (jnp.arange(NUM_HOUSES) % num_agents)[None, :] == jnp.arange(num_agents)[:, None]


_ALL_HOUSES = (1 << NUM_HOUSES) - 1


def _house_bits() -> np.ndarray:
    """int32[10]: house h's bit, 1 << h."""
    return (1 << np.arange(NUM_HOUSES)).astype(np.int32)


def _pack(*flags: jnp.ndarray) -> jnp.ndarray:
    """int32[]: up to three bool[10] house flags as bits 10k + h (flag k, house h).

    One sum over the houses, on purpose: XLA on CPU stores a reduction's result once, where it
    copies an elementwise chain (the night's town) into each of its consumers (rewards,
    termination, next state, observation) and computes it there again."""
    bits = jnp.int32(0)
    for k, flag in enumerate(flags):
        bits = bits | (flag.astype(jnp.int32) << (NUM_HOUSES * k + jnp.arange(NUM_HOUSES)))
    return jnp.sum(bits)


def _unpack(word: jnp.ndarray, k: int) -> jnp.ndarray:
    """int32[]: the 10-bit house mask of flag k in a `_pack` word."""
    return (word >> (NUM_HOUSES * k)) & _ALL_HOUSES


def _from_right(mask: jnp.ndarray) -> jnp.ndarray:
    """Bit h set iff bit h + 1 (mod 10) is: what houses receive from their right neighbour."""
    return (mask >> 1) | ((mask & 1) << (NUM_HOUSES - 1))


def _from_left(mask: jnp.ndarray) -> jnp.ndarray:
    """Bit h set iff bit h - 1 (mod 10) is: what houses receive from their left neighbour."""
    return ((mask << 1) & _ALL_HOUSES) | (mask >> (NUM_HOUSES - 1))


def _still_burning(house_of, mode_of, p_ext) -> jnp.ndarray:
    """float32[10]: (1 - p_ext)^k for the k workers at each house, as k sequential float32
    products in agent order (the values the reference's power table holds, and no gather)."""
    keep = 1.0 - p_ext
    stay = jnp.ones((NUM_HOUSES,), jnp.float32)
    houses = jnp.arange(NUM_HOUSES)
    for i in range(house_of.shape[0]):
        stay = jnp.where((house_of[i] == houses) & (mode_of[i] == WORK), stay * keep, stay)
    return stay


def _night_town(prev: jnp.ndarray, house_of, mode_of, draws: StepDraws, scenario: Scenario):
    """Phases 2-5 on 10-bit house masks. Returns int32 masks (burning, ruined, safe, saved):
    the town after phase 5, and the houses that were not SAFE before the night but are now."""
    was_burning = prev == BURNING
    p_out = 1.0 - _still_burning(house_of, mode_of, scenario.p_ext)
    before = _pack(was_burning, prev == RUINED, was_burning & (draws.extinguish < p_out))
    chances = _pack(
        draws.spread[:, 0] < scenario.p_spread,
        draws.spread[:, 1] < scenario.p_spread,
        draws.ignite < scenario.p_fire,
    )
    # 2. Extinguish: k workers on a burning house put it out with prob 1 - (1 - p_ext)^k.
    burning = _unpack(before, 0) & ~_unpack(before, 2)
    ruined = _unpack(before, 1)
    # 3. Burn-out: whatever still burns is ruined.
    ruined = ruined | burning
    burning = jnp.zeros_like(burning)
    # 4. Spread (quirk: nothing burns after burn-out, so this never changes the town).
    safe = _ALL_HOUSES & ~(burning | ruined)
    caught = _from_right(burning & _unpack(chances, 0)) | _from_left(burning & _unpack(chances, 1))
    burning = burning | (safe & caught)
    # 5. Spontaneous ignition of SAFE houses.
    safe = _ALL_HOUSES & ~(burning | ruined)
    burning = burning | (safe & _unpack(chances, 2))
    safe = _ALL_HOUSES & ~(burning | ruined)
    return burning, ruined, safe, (_unpack(before, 0) | _unpack(before, 1)) & safe


def step_with_draws(
    state: GameState, actions: jnp.ndarray, draws: StepDraws, scenario: Scenario
) -> tuple[GameState, jnp.ndarray, jnp.ndarray]:
    """One night. actions int32[N, 2] as (house 0..9, mode REST/WORK).

    Returns (next state, rewards float32[N], done bool[]).
    """
    num_agents = state.signals.shape[0]
    chex.assert_shape(actions, (num_agents, 2))
    actions = actions.astype(jnp.int32)
    house_of, mode_of = actions[:, 0], actions[:, 1]
    # 1. Signals are the modes; locations and last actions are this night's action.
    burning, ruined, safe, saved = _night_town(state.houses, house_of, mode_of, draws, scenario)
    bits = _house_bits()
    houses = jnp.where(ruined & bits, RUINED, jnp.where(burning & bits, BURNING, SAFE))

    # 6. Rewards on the town after phase 5.
    owned = jnp.sum(jnp.where(ownership(num_agents), bits, 0), axis=1)
    saved = jax.lax.population_count(owned & saved)
    ruined_own = jax.lax.population_count(owned & ruined)
    num_safe = jax.lax.population_count(safe).astype(jnp.float32)
    num_ruined = jax.lax.population_count(ruined).astype(jnp.float32)
    rewards = (
        jnp.where(mode_of == WORK, -scenario.c, REST_REWARD)
        + EXTINGUISH_BONUS * saved
        - RUINED_OWN_PENALTY * ruined_own
        + scenario.A * num_safe / NUM_HOUSES
        - scenario.L * num_ruined / NUM_HOUSES
    ).astype(jnp.float32)

    # 7. Termination, 8. next night.
    done = (state.night.astype(jnp.float32) >= scenario.min_nights) & (burning == 0)
    next_state = GameState(
        houses=houses.astype(jnp.int32),
        night=state.night + 1,
        signals=mode_of,
        locations=house_of,
        last_actions=actions,
    )
    return next_state, rewards, done


def observation(state: GameState, scenario: Scenario) -> jnp.ndarray:
    """float32[22 + 4N]: houses, signals, locations, last actions (h0, m0, h1, m1, ...),
    scenario info; the same for every agent."""
    return jnp.concatenate(
        [
            state.houses.astype(jnp.float32),
            state.signals.astype(jnp.float32),
            state.locations.astype(jnp.float32),
            state.last_actions.reshape(-1).astype(jnp.float32),
            scenario.info_vector(),
        ]
    )


def observation_size(num_agents: int) -> int:
    return 22 + 4 * num_agents


def observation_high(num_agents: int) -> jnp.ndarray:
    """float32[22 + 4N]: a typical upper bound of each observation feature (for scaling
    inputs to about [0, 1]; not a hard limit of the scenario block)."""
    n = num_agents
    info = [1.0, 1.0, 1.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 1.0, 20.0, 10.0]
    return jnp.asarray(
        [2.0] * NUM_HOUSES + [1.0] * n + [9.0] * n + [9.0, 1.0] * n + info, jnp.float32
    )


def time_input(obs: jnp.ndarray, step_count: jnp.ndarray, max_steps: int) -> jnp.ndarray:
    """float32[..., D + 1]: observations float32[..., D] followed by the episode's progress
    step_count / max_steps in [0, 1] (with it, the end of an episode at max_steps is part of
    the state, not a surprise)."""
    progress = jnp.asarray(step_count).astype(jnp.float32) / max_steps
    return jnp.concatenate([obs, progress[..., None]], axis=-1)
