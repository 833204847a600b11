"""The records a cohort trainer takes and gives per member (one training run): its spec,
its plan, its intermediate reports and how it ended."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MemberSpec:
    """One training run: hyperparams holds the 8 traced values; seed makes its PRNG key."""

    member_id: int
    hidden_size: int
    batch_size: int
    hyperparams: dict
    scenario: str
    seed: int


@dataclasses.dataclass
class Report:
    """An intermediate value after `env_steps`: the mean return of every episode the member
    finished since its previous report (a few hundred episodes: much less noisy than the last
    100); `final` for the report at the end of training (stopping the member then saves
    nothing)."""

    member_id: int
    env_steps: int
    value: float
    final: bool = False
    flops: float = 0.0  # training FLOPs spent so far (`bb_jax.runtime.cost`)


@dataclasses.dataclass
class MemberResult:
    """How a member ended, and what it cost: `flops` of training (XLA's count), `seconds`
    its share of its program's training wall time (compiles excluded; a stretch's time is
    shared equally among the members it trained)."""

    member_id: int
    state: str  # "complete", "stopped" or "failed"
    value: float | None = None  # final objective (complete) or last value (stopped)
    reason: str = ""
    env_steps: int = 0
    flops: float = 0.0
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class MemberPlan:
    """How long a member trains: `updates` in all, in chunks of `chunk` updates (the last
    one shorter where `chunk` does not divide them: `plan_chunks`), a report every `every`
    chunks and after the last; `update_flops` is one update's cost."""

    updates: int
    chunk: int
    every: int
    update_flops: float

    @property
    def report_updates(self) -> int:
        return self.chunk * self.every
