"""Shapes of a training run: how a batch splits into environments x rollout steps, and
shape-padded programs, in which members of different hidden sizes and batch sizes train
together in the program of the largest ones (docs/PERFORMANCE.md, "One program per batch").

A padded member's network is its own embedded in the largest one: the extra hidden units have
zero weights in and out (`pad_params`), so it computes the same function and their gradients
and Adam moments stay zero. Its batch is the first `batch_size` steps of the program's longest
rollout over the same environments; `bb_jax.train.ppo.PPO` masks the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct

from bb_jax.train.config import PPOConfig, default_num_envs


@struct.dataclass
class MemberShape:
    """A member's own shape inside a shape-padded program (int32 scalars; a leading population
    axis in a population): the hidden units it uses and its env steps per update."""

    hidden_size: jnp.ndarray
    batch_size: jnp.ndarray


@dataclass(frozen=True)
class ShapeChoices:
    """The shapes one padded program serves (`PPO.shapes`): members with any of these hidden
    sizes and batch sizes train together in a program of the largest ones (docs/PERFORMANCE.md,
    "One program per batch")."""

    hidden_sizes: tuple[int, ...]
    batch_sizes: tuple[int, ...]

    def config(self, base: PPOConfig) -> PPOConfig:
        """The padded program's static config: the largest shapes, and the environments of
        the smallest batch for every member (a member's batch then differs only in its
        rollout length, which the program masks)."""
        return base.replace(hidden_size=max(self.hidden_sizes), batch_size=max(self.batch_sizes),
                            num_envs=default_num_envs(min(self.batch_sizes)))

    def member(self, hidden_size: int, batch_size: int) -> MemberShape:
        if hidden_size not in self.hidden_sizes or batch_size not in self.batch_sizes:
            raise ValueError(f"shape (hidden {hidden_size}, batch {batch_size}) is not among "
                             f"hidden {self.hidden_sizes} x batch {self.batch_sizes}")
        return MemberShape(jnp.int32(hidden_size), jnp.int32(batch_size))


def pad_params(params, like):
    """`params` zero-padded at the end of every axis to the shapes of `like` (a pytree of
    arrays or ShapeDtypeStructs): a smaller network embedded in a larger one, whose extra
    hidden units have zero weights in and out, so it computes the same function."""
    return jax.tree.map(
        lambda p, t: jnp.pad(p, [(0, int(n) - int(m)) for m, n in zip(p.shape, t.shape)]),
        params, like)
