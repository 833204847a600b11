"""Keeping the final network parameters of the members a `CohortTrainer` trains, for callers
that need the trained policies themselves (an ensemble of validated configurations), not
only their figures.

Training code never holds on to parameters: a population's state is consumed chunk by chunk
and its members' values are all a caller gets back. Within `keep_final_params()`, every
member that completes in this context also leaves its spec, the config of the program it
trained in and its final parameters (host numpy) in the yielded dict, by member id, so a
caller of a closed routine (`bb_jax.tuning.validation.validate_study`) can collect them
without that routine knowing. Outside the context nothing is copied.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses

from bb_jax.agent.config import PPOConfig
from bb_jax.runtime.members import MemberSpec

_SINK: contextvars.ContextVar[dict | None] = contextvars.ContextVar("kept_params",
                                                                   default=None)


@dataclasses.dataclass(frozen=True)
class KeptMember:
    """A completed member: its spec, its program's config (a shape-padded program's params
    are zero-padded to that config's hidden size: the same function) and its parameters."""

    spec: MemberSpec
    config: PPOConfig
    params: object


@contextlib.contextmanager
def keep_final_params():
    """`with keep_final_params() as kept:` -> kept {member id: KeptMember}, filled by every
    cohort trained inside (a later member of the same id replaces an earlier one)."""
    sink: dict[int, KeptMember] = {}
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)


def wanted() -> bool:
    """Whether a caller keeps parameters in this context (so the trainer copies them)."""
    return _SINK.get() is not None


def keep(spec: MemberSpec, config: PPOConfig, params) -> None:
    sink = _SINK.get()
    if sink is not None:
        sink[spec.member_id] = KeptMember(spec, config, params)


def find(kept: dict, spec: MemberSpec) -> KeptMember | None:
    """The kept member trained as `spec` (every field but the member id equal), or None."""
    for member in kept.values():
        if dataclasses.replace(member.spec, member_id=spec.member_id) == spec:
            return member
    return None
