"""Population sizes that keep compiles few: each (shape, population size) is one compiled
program, so `CompileAwareSizing` weighs a compile (measured) against training in rounds of a
size already compiled or with filler members (measured seconds per member-env-step).
"""

from __future__ import annotations

import dataclasses
import math

from bb_jax.runtime.sharding import filled_size


def next_power_of_two(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, n))))


@dataclasses.dataclass
class CompileAwareSizing:
    """Chooses population sizes so a study compiles few programs.

    Each (shape, population size) is one compile (~5-20 s on a 2-core CPU). For a cohort of n
    members it compares: compiling a population of exactly n (rounded up to a multiple of the
    device count), or running in rounds of a size already compiled for that shape (padding the
    last round). Costs use measured seconds per member-env-step of the shape and a measured
    compile time; before any measurement it compiles. Padding costs what it trains: a 3-scenario
    trial of 2 seeds (6 members) padded to 8 spent a third more than its own runs.

    The same rule decides whether to repack survivors after pruning; a repack compiles the next
    power of two >= the survivors, so pruning costs at most log2(P) compiles per cohort."""

    compile_s: float = 15.0
    step_cost: dict = dataclasses.field(default_factory=dict)  # shape -> s per member-step
    sizes: dict = dataclasses.field(default_factory=dict)  # shape -> compiled sizes

    def known(self, shape) -> set[int]:
        return self.sizes.setdefault(shape, set())

    def choose(self, shape, n: int, steps: int, limit: int, rounds: bool = True) -> int:
        """Population size (<= limit) for n members that still need `steps` env steps each;
        with rounds=False (members mid-training) the size must hold all n."""
        fresh = min(filled_size(n) if rounds else next_power_of_two(n), max(1, limit))
        options = {fresh: self.cost(shape, n, fresh, steps, new=fresh not in self.known(shape))}
        for size in self.known(shape):
            if size <= limit and (rounds or size >= n):
                options[size] = self.cost(shape, n, size, steps, new=False)
        return min(options, key=lambda size: (options[size], -size))

    def cost(self, shape, n: int, size: int, steps: int, new: bool) -> float:
        per_step = self.step_cost.get(shape)
        rounds = -(-n // size)
        run = 0.0 if per_step is None else rounds * size * steps * per_step
        return run + (self.compile_s if new else 0.0)

    def observe(self, shape, size: int, seconds: float, member_steps: int, new: bool,
                compile_seconds: float = 0.0) -> None:
        """A timed stretch of training: `seconds` of wall time, `compile_seconds` of them
        compiling (JAX's own compile events; a new program's first stretch compiles)."""
        if new:
            self.compile_s = 0.5 * self.compile_s + 0.5 * compile_seconds
            self.known(shape).add(size)
        training = seconds - compile_seconds
        if training > 0:
            per_step = self.step_cost.get(shape)
            measured = training / max(1, member_steps)
            self.step_cost[shape] = measured if per_step is None else 0.5 * (per_step + measured)
