"""The 12 Bucket Brigade scenarios (docs/GAME_RULES.md, "Scenarios") as a pytree of float32 scalars.

A `Scenario` is a `flax.struct.dataclass`, so a batch of scenarios (leading axis on every
field) can be `vmap`ped like any array: scenario parameters are traced, never static.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import struct

SCENARIO_FIELDS = (
    "p_spread", "p_ext", "p_fire", "A", "L", "r_own", "r_other",
    "pen_own", "pen_other", "c", "min_nights",
)

# name -> values in SCENARIO_FIELDS order (docs/GAME_RULES.md table).
_TABLE: dict[str, tuple[float, ...]] = {
    "default": (0.25, 0.5, 0.02, 100, 100, 100, 50, 0, 0, 0.5, 12),
    "easy": (0.1, 0.8, 0.01, 100, 100, 100, 50, 0, 0, 0.5, 10),
    "hard": (0.4, 0.3, 0.05, 100, 100, 100, 50, 0, 0, 0.5, 15),
    "trivial_cooperation": (0.15, 0.9, 0.0, 100, 100, 100, 50, 0, 0, 0.5, 12),
    "early_containment": (0.35, 0.6, 0.02, 100, 100, 100, 50, 0, 0, 0.5, 12),
    "greedy_neighbor": (0.15, 0.4, 0.02, 100, 100, 100, 50, 0, 0, 1.0, 12),
    "sparse_heroics": (0.1, 0.5, 0.02, 100, 100, 100, 50, 0, 0, 0.8, 20),
    "rest_trap": (0.05, 0.95, 0.02, 100, 100, 100, 50, 0, 0, 0.2, 12),
    "chain_reaction": (0.45, 0.6, 0.03, 100, 100, 100, 50, 0, 0, 0.7, 15),
    "deceptive_calm": (0.25, 0.6, 0.05, 100, 100, 100, 50, 0, 0, 0.4, 20),
    "overcrowding": (0.2, 0.3, 0.02, 50, 100, 100, 50, 0, 0, 0.6, 12),
    "mixed_motivation": (0.3, 0.5, 0.03, 100, 100, 100, 50, 0, 0, 0.6, 15),
}

MIN_AGENTS, MAX_AGENTS = 2, 10


@struct.dataclass
class Scenario:
    """Scenario parameters, each a float32 scalar (or a batch of them under `vmap`).

    Probabilities are per night; A, L and c are reward units; `min_nights` is a night count;
    `num_agents` is N and only enters the observation (array shapes fix the real N).
    """

    p_spread: jnp.ndarray
    p_ext: jnp.ndarray
    p_fire: jnp.ndarray
    A: jnp.ndarray
    L: jnp.ndarray
    r_own: jnp.ndarray
    r_other: jnp.ndarray
    pen_own: jnp.ndarray
    pen_other: jnp.ndarray
    c: jnp.ndarray
    min_nights: jnp.ndarray
    num_agents: jnp.ndarray

    def info_vector(self) -> jnp.ndarray:
        """float32[12]: the observation's scenario_info block."""
        values = [getattr(self, name) for name in SCENARIO_FIELDS] + [self.num_agents]
        return jnp.stack([jnp.asarray(v, jnp.float32) for v in values], axis=-1)


def list_scenarios() -> list[str]:
    """Names of the built-in scenarios, in docs/GAME_RULES.md order."""
    return list(_TABLE)


def check_num_agents(num_agents: int) -> int:
    """Return `num_agents` as int, or raise ValueError naming the valid range."""
    if isinstance(num_agents, bool) or int(num_agents) != num_agents or not (
        MIN_AGENTS <= num_agents <= MAX_AGENTS
    ):
        raise ValueError(
            f"num_agents must be an integer in {MIN_AGENTS}..{MAX_AGENTS}, got {num_agents!r}"
        )
    return int(num_agents)


def get_scenario(name: str, num_agents: int = 3) -> Scenario:
    """The named scenario for `num_agents` agents; unknown names raise ValueError."""
    if name not in _TABLE:
        raise ValueError(
            f"unknown scenario {name!r}; valid scenarios: {', '.join(_TABLE)}"
        )
    n = check_num_agents(num_agents)
    values = dict(zip(SCENARIO_FIELDS, _TABLE[name]))
    return Scenario(
        **{k: jnp.float32(v) for k, v in values.items()}, num_agents=jnp.float32(n)
    )


def stack_scenarios(scenarios: list[Scenario]) -> Scenario:
    """Stack scenarios along a new leading axis (for `vmap` over scenarios)."""
    return Scenario(
        **{
            f: jnp.asarray(np.stack([np.asarray(getattr(s, f)) for s in scenarios]))
            for f in (*SCENARIO_FIELDS, "num_agents")
        }
    )
