"""Populations: P PPO runs (seeds x hyperparameters x scenarios) trained in lockstep.

One compiled program (`bb_jax.runtime.programs`) per (static config, population size, chunk
length) serves every member; hyperparameters and scenarios are traced rows. A shape-padded
population (`ShapeChoices`) also takes each member's hidden size and batch size as traced
rows: members of different shapes share one program. Training runs in chunks of updates so
the host can report progress, read intermediate values and drop members (`keep`) between
chunks (`bb_jax.runtime.driver`). Knows nothing about Optuna. With several local devices the
population axis is sharded across them (`bb_jax.runtime.sharding`): a size that does not
divide the device count gets filler rows, copies of the last member, which the caller never
sees (metrics and evaluations cover the real members only).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax import envs, wall_time
from bb_jax.agent.config import MemberShape, PPOConfig, PPOHyperparams, ShapeChoices
from bb_jax.game.scenarios import Scenario
from bb_jax.runtime.programs import compiled
from bb_jax.runtime.sharding import filled_size, population_sharding


def _place(tree, size: int):
    sharding = population_sharding(size)
    return tree if sharding is None else jax.device_put(tree, sharding)


def broadcast_scenario(scenario: Scenario, size: int) -> Scenario:
    return jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (size,)), scenario)


def _fill_positions(size: int) -> list[int]:
    """Row positions of a population with its filler rows: 0..size-1, then the last one
    repeated up to `filled_size(size)`."""
    return list(range(size)) + [size - 1] * (filled_size(size) - size)


def _fill(tree, size: int):
    """A tree with `size` rows and the filler rows after them (`filled_size(size)` rows)."""
    return tree if filled_size(size) == size else take(tree, _fill_positions(size))


def take(tree, positions):
    idx = jnp.asarray(positions)
    return jax.tree.map(lambda x: x[idx], tree)


@functools.partial(jax.jit, static_argnames="environment", donate_argnums=0)
def _copy_rows(state, rows, environment: bool):
    """Row i of the new state is row rows[i] of `state`: parameters and optimizer state, with
    `environment` every field (one gather on the device; the old state is donated)."""
    if environment:
        return take(state, rows)
    return state.replace(params=take(state.params, rows), opt_state=take(state.opt_state, rows))


class Population:
    """P members of one static config training together.

    hyperparams: PPOHyperparams with leading axis P; keys: PRNG keys [P, 2];
    scenarios: Scenario with leading axis P (default: the config's scenario for all).
    `members[i]` is the caller's id of the member at position i (-1 for a repack's filler).
    With `shapes` (the program's ShapeChoices) and `member_shapes` (MemberShape with leading
    axis P), members of different hidden and batch sizes train in one padded program.
    `state`, `hyperparams` and `scenarios` hold `filled_size(P)` rows: the first P are the
    members, the rest copies of the last one that only fill the devices.
    """

    def __init__(self, config: PPOConfig, hyperparams: PPOHyperparams, keys,
                 scenarios: Scenario | None = None, members=None,
                 shapes: ShapeChoices | None = None, member_shapes: MemberShape | None = None):
        if (shapes is None) != (member_shapes is None):
            raise ValueError("a padded population needs both `shapes` and `member_shapes`")
        self.config = config
        self.fns = compiled(config, shapes)
        size = int(jnp.shape(keys)[0])
        if scenarios is None:
            # the config's own params (the compiled program's PPO is the shared one's)
            scenarios = broadcast_scenario(envs.make(config)[1], size)
        self.members = np.arange(size) if members is None else np.asarray(members)
        rows = filled_size(size)
        self.hyperparams = _place(_fill(hyperparams, size), rows)
        self.scenarios = _place(_fill(scenarios, size), rows)
        self.member_shapes = (None if member_shapes is None
                              else _place(_fill(member_shapes, size), rows))
        # Placed again: init leaves that do not depend on the key (zeros) come out
        # replicated, and a first chunk on those shardings would compile a second program.
        self.state = _place(self.fns.init(_place(_fill(jnp.asarray(keys), size), rows),
                                          self.hyperparams, self.scenarios, self.member_shapes),
                            rows)

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def updates_done(self) -> int:
        return int(self.state.update[0])

    def _members_only(self, tree):
        rows = int(jnp.shape(jax.tree.leaves(tree)[0])[0])
        return tree if rows == self.size else _first_rows(tree, self.size)

    @property
    def batch_sizes(self) -> np.ndarray:
        """int[P]: each member's env steps per update."""
        if self.member_shapes is None:
            return np.full(self.size, self.config.batch_size)
        return np.asarray(self.member_shapes.batch_size)[: self.size]

    def run(self, num_updates: int, until=None) -> dict[str, jax.Array]:
        """Train every member `num_updates` more updates (a padded population: each member at
        most up to `until[i]` updates done, int[P]). Metrics [P, num_updates] stay on the
        device (dispatch is asynchronous until the caller reads them). The previous `state` is
        consumed (its buffers donated): copy it first to keep it."""
        if until is not None:
            if self.member_shapes is None:
                raise ValueError("`until` needs a padded population")
            until = _place(_fill(jnp.asarray(until, jnp.int32), self.size), len(self.state.update))
        self.state, metrics = self.fns.run_updates(self.state, self.hyperparams,
                                                   int(num_updates), self.scenarios,
                                                   self.member_shapes, until)
        return self._members_only(metrics)

    def keep(self, positions, size: int | None = None) -> None:
        """Keep only the members at `positions` (in that order), dropping the rest so they
        cost no compute. With `size`, repeat the last kept member up to that size (marked -1
        in `members`) so a few sizes serve every repack."""
        positions = list(positions)
        if not positions:
            raise ValueError("a population must keep at least one member")
        members = list(self.members[positions])
        if size is not None and size > len(positions):
            extra = size - len(positions)
            positions += [positions[-1]] * extra
            members += [-1] * extra
        rows = [positions[i] for i in _fill_positions(len(positions))]
        self.state = _place(take(self.state, rows), len(rows))
        self.hyperparams = _place(take(self.hyperparams, rows), len(rows))
        self.scenarios = _place(take(self.scenarios, rows), len(rows))
        if self.member_shapes is not None:
            self.member_shapes = _place(take(self.member_shapes, rows), len(rows))
        self.members = np.asarray(members)

    def copy_members(self, parents, environment: bool = False) -> None:
        """Population-based training's exploit: member i takes the parameters and optimizer
        state of member parents[i] (int[P]; parents[i] == i keeps its own), on the device. With
        `environment` also its environment states, PRNG key and episode buffers, so that the
        copy goes on exactly as its parent would. The update counters agree already."""
        parents = np.asarray(parents)
        if parents.shape != (self.size,) or not ((parents >= 0) & (parents < self.size)).all():
            raise ValueError(f"parents must be {self.size} member positions, got {parents!r}")
        rows = jnp.asarray([int(parents[p]) for p in _fill_positions(self.size)], jnp.int32)
        self.state = _place(_copy_rows(self.state, rows, bool(environment)), len(rows))

    def set_hyperparams(self, hyperparams: PPOHyperparams) -> None:
        """New traced hyperparameters (leading axis P), as explore sets them between chunks:
        the same shapes and placement, so the compiled programs serve them."""
        self.hyperparams = _place(_fill(hyperparams, self.size), len(self.state.update))

    def evaluate(self, key, num_episodes: int = 100, greedy: bool = False) -> np.ndarray:
        """Returns float32[P, num_episodes] of fresh episodes per member. `key`: one PRNG key
        (split over the members by position) or keys [P, 2], one per member (a member's
        episodes then do not depend on the population it sits in)."""
        keys = jnp.asarray(key)
        if keys.ndim == 1:
            keys = jax.random.split(keys, self.size)
        with wall_time.part("evaluation"):
            returns = self.fns.evaluate(self.state.params, _fill(keys, self.size),
                                        int(num_episodes), bool(greedy), self.scenarios)
            return np.asarray(returns)[: self.size]

    def member_params(self, position: int):
        """The network parameters of the member at `position` (host numpy pytree): each
        array leaves the device whole and is indexed on the host (an index on the device
        would compile a gather per parameter shape)."""
        return jax.tree.map(lambda x: np.asarray(x)[position], self.state.params)


@functools.partial(jax.jit, static_argnums=1)
def _first_rows(tree, rows: int):
    """Every leaf's first `rows` rows, as one dispatched program: slicing leaf by leaf would
    run one eager operation per leaf, each waiting for the chunk that computes it, so the
    host would wait for training inside the call that dispatches it."""
    return jax.tree.map(lambda x: x[:rows], tree)
