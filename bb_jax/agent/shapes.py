"""Where a member's shape enters PPO: the one seam between exact programs, whose members all
have the program's shape, and shape-padded ones (`ShapeChoices`), whose members of smaller
hidden and batch sizes train inside the program of the largest (docs/PERFORMANCE.md, "One
program per batch").

`PPO` asks its layout (`shape_layout`) seven things (the initial parameters, the environment
count whose draws the member's environments take, whether a rollout step is the member's,
which steps of a rollout are, its shuffled minibatches, its env steps per update, and when it
stops) and never looks at the member's shape itself. `ExactShapes` answers them for a member
of the program's own shape, without masks; `PaddedShapes` with masks:

- a padded member's network is its own embedded in the largest one: the extra hidden units
  have zero weights in and out (`pad_params`), so it computes the same function and their
  gradients and Adam moments stay zero;
- its batch is its own rollout (`default_num_envs` of its batch: the environments and
  rollout length its exact program has) in the corner of the program's: its first environments
  for its first steps. Steps past its own length leave the environments as they are; entries
  outside the corner count in no mean (a 0/1 weight per entry).

Both paths are kept: at one shape the masked path costs about the run-to-run spread, but with
several members on a device its masked means sum in another order, so it is not bit-identical
to the exact path and every run's figures would change (docs/PERFORMANCE.md, "One masked path
or two").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bb_jax.agent.config import MemberShape, PPOConfig, ShapeChoices, default_num_envs
from bb_jax.agent.networks import ActorCritic, pad_params


class ExactShapes:
    """Every member has the program's shape: nothing is masked (`shape` is None throughout)."""

    def __init__(self, config: PPOConfig, network: ActorCritic, input_size: int):
        self.config, self.network, self.input_size = config, network, input_size

    def init_params(self, key, shape: MemberShape | None):
        return self.network.init(key, jnp.zeros((self.input_size,)))

    row_counts: tuple[int, ...] = ()  # the environment counts `rows` may answer

    def rows(self, shape: MemberShape | None):
        """The member's own environment count, whose batch its environments draw as (the
        view's `rows`), or None: the program's own."""
        return None

    def keep_step(self, new, old, t, shape: MemberShape | None):
        """The rollout's carry after step t: the new one (every step is the member's)."""
        return new

    def valid_steps(self, shape: MemberShape | None):
        """bool[T, E] of the member's own rollout steps, or None: all of them."""
        return None

    def minibatches(self, batch, key, shape: MemberShape | None):
        """The epoch's shuffled minibatches [num_minibatches, B / num_minibatches, ...] and
        their 0/1 weights (None: every entry counts)."""
        c = self.config
        perm = jax.random.permutation(key, c.batch_size)
        return jax.tree.map(
            lambda x: x[perm].reshape(c.num_minibatches, -1, *x.shape[1:]), batch), None

    def batch_size(self, shape: MemberShape | None):
        """The member's env steps per update."""
        return self.config.batch_size

    def stop(self, old, new, metrics: dict, until, shape: MemberShape | None):
        """(state, metrics) after an update: the new ones (an exact member never stops
        early)."""
        return new, metrics


class PaddedShapes(ExactShapes):
    """Members of any of `choices`' shapes in the program of the largest ones."""

    def __init__(self, config: PPOConfig, network: ActorCritic, input_size: int,
                 choices: ShapeChoices):
        super().__init__(config, network, input_size)
        if config != choices.config(config):
            raise ValueError("a padded program's config must be ShapeChoices.config(...)")
        self.choices = choices

    def init_params(self, key, shape: MemberShape):
        """The parameters the exact network of the member's hidden size initialises from
        `key`, zero-padded to the program's network (one branch per hidden size served)."""
        x = jnp.zeros((self.input_size,))
        like = jax.eval_shape(self.network.init, key, x)
        params = jax.tree.map(lambda t: jnp.zeros(t.shape, t.dtype), like)
        for size in self.choices.hidden_sizes:
            own = pad_params(self.network.clone(hidden_size=size).init(key, x), like)
            chosen = shape.hidden_size == size
            params = jax.tree.map(lambda o, p, c=chosen: jnp.where(c, o, p), own, params)
        return params

    @property
    def row_counts(self) -> tuple[int, ...]:
        """Every environment count the program's members have (one on a CPU)."""
        backend = self.config.backend
        return tuple(sorted({default_num_envs(size, backend)
                             for size in self.choices.batch_sizes}))

    def rows(self, shape: MemberShape):
        """int32: the member's own environments, which draw as its exact program's do (the
        game draws with threefry's non-partitionable form, whose first rows depend on the row
        count); the program's other environments are masked out."""
        return self._num_envs(shape)

    def keep_step(self, new, old, t, shape: MemberShape):
        """Steps past the member's own rollout length leave its environments as they are."""
        length = shape.batch_size // self._num_envs(shape)
        return jax.tree.map(lambda n, o: jnp.where(t < length, n, o), new, old)

    def valid_steps(self, shape: MemberShape):
        """bool[T, E]: the member's own steps of its own environments."""
        c = self.config
        envs = self._num_envs(shape)
        steps = jnp.arange(c.rollout_length)[:, None] < shape.batch_size // envs
        return steps & (jnp.arange(c.num_envs)[None, :] < envs)

    def minibatches(self, batch, key, shape: MemberShape):
        """A member's minibatch m holds entries m * b .. (m + 1) * b - 1 of its own
        permutation (b: its batch / num_minibatches), followed by masked slots; entry i of its
        own time-major batch [T_m, E_m] sits at (i // E_m) * E + i % E_m of the program's."""
        c = self.config
        slots = jnp.arange(c.batch_size // c.num_minibatches)
        own = shape.batch_size // c.num_minibatches
        weight = jnp.broadcast_to(slots < own, (c.num_minibatches, slots.size))
        positions = jnp.arange(c.num_minibatches)[:, None] * own + slots
        entry = self._permutation(key, shape.batch_size)[jnp.where(weight, positions, 0)]
        envs = self._num_envs(shape)
        index = entry // envs * c.num_envs + entry % envs
        return jax.tree.map(lambda x: x[index], batch), weight.astype(jnp.float32)

    def batch_size(self, shape: MemberShape):
        return shape.batch_size

    def stop(self, old, new, metrics: dict, until, shape: MemberShape):
        """The member stops at `until` updates done: later iterations leave its state as it
        is and report no episodes (members with larger batches need fewer updates for the
        same env steps)."""
        active = old.update < until
        new = jax.tree.map(lambda n, o: jnp.where(active, n, o), new, old)
        return new, {**metrics,
                     "episodes_finished": jnp.where(active, metrics["episodes_finished"], 0.0),
                     "return_sum": jnp.where(active, metrics["return_sum"], 0.0),
                     "finite": jnp.where(active, metrics["finite"], True),
                     "env_steps": new.update * shape.batch_size}

    def _num_envs(self, shape: MemberShape):
        """int32: the member's own environments (`default_num_envs` of its batch size)."""
        envs = jnp.int32(self.config.num_envs)
        for size in self.choices.batch_sizes:
            envs = jnp.where(shape.batch_size == size,
                             default_num_envs(size, self.config.backend), envs)
        return envs

    def _permutation(self, key, batch_size):
        """int32[B]: jax.random.permutation(key, batch_size) followed by zeros, computed for
        every batch size the program serves and chosen by the member's."""
        full = self.config.batch_size
        perm = jnp.zeros((full,), jnp.int32)
        for size in self.choices.batch_sizes:
            own = jnp.pad(jax.random.permutation(key, size).astype(jnp.int32), (0, full - size))
            perm = jnp.where(batch_size == size, own, perm)
        return perm


def shape_layout(config: PPOConfig, network: ActorCritic, input_size: int,
                 choices: ShapeChoices | None) -> ExactShapes:
    """The layout of an exact program (`choices` None) or of a padded one."""
    if choices is None:
        return ExactShapes(config, network, input_size)
    return PaddedShapes(config, network, input_size, choices)
