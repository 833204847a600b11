"""Populations: P PPO runs (seeds x hyperparameters x scenarios) trained in lockstep.

One compiled program per (static config, population size, chunk length) serves every member;
hyperparameters and scenarios are traced rows. A shape-padded population (`ShapeChoices`) also
takes each member's hidden size and batch size as traced rows: members of different shapes
share one program. Training runs in chunks of updates so the host
can report progress, read intermediate values and drop members (`keep`) between chunks.
Knows nothing about Optuna. With several local devices (on a CPU: one per core,
`bb_jax.devices`) the population axis is sharded across them, members split between devices;
a size that does not divide the device count is padded with copies of the last member, which
the caller never sees (metrics and evaluations cover the real members only).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax.game.scenarios import Scenario, get_scenario
from bb_jax.train.config import PPOConfig, PPOHyperparams
from bb_jax.train.ppo import PPO
from bb_jax.train.shapes import MemberShape, ShapeChoices


@dataclass(frozen=True)
class CompiledPPO:
    """Jitted, vmapped entry points for one static config (cached per config)."""

    ppo: PPO
    init: object
    run_updates: object
    evaluate: object


_FAST_COMPILE = {"xla_backend_optimization_level": 0}


_COMPILED: dict[tuple[PPOConfig, ShapeChoices | None], CompiledPPO] = {}


def compiled_configs() -> list[PPOConfig]:
    """The static configs compiled so far in this process (padded programs' configs have
    their largest shapes)."""
    return [config for config, _ in _COMPILED]


def compiled(config: PPOConfig, shapes: ShapeChoices | None = None) -> CompiledPPO:
    """The jitted entry points of `config` (with `shapes`: the padded program of
    `shapes.config(config)`), created once per process and program: configs that differ only
    in total steps or default scenario share them (populations always pass their scenarios,
    and the number of updates is the host's loop: the shared programs' config has
    total_steps=None, so reading its `num_updates` raises)."""
    config = config.replace(total_steps=None, scenario="default")
    key = (config if shapes is None else shapes.config(config), shapes)
    if key not in _COMPILED:
        _COMPILED[key] = _make_compiled(*key)
    return _COMPILED[key]


def _evaluator(config: PPOConfig):
    """The jitted, vmapped `PPO.evaluate` of `config`. Evaluation plays fresh episodes with
    the network alone, so configs that differ only in batch size share one program (one
    compile per hidden size instead of per shape)."""
    try:
        return _jitted_evaluate(config.replace(batch_size=PPOConfig.batch_size, num_envs=None))
    except ValueError:  # a config whose minibatches do not divide the default batch
        return _jitted_evaluate(config)


@functools.cache
def _jitted_evaluate(config: PPOConfig):
    return jax.jit(jax.vmap(PPO(config).evaluate, in_axes=(0, 0, None, None, 0)),
                   static_argnums=(2, 3))


def _make_compiled(config: PPOConfig, shapes: ShapeChoices | None) -> CompiledPPO:
    ppo = PPO(config, shapes=shapes)
    return CompiledPPO(
        ppo=ppo,
        # Init runs once per population: compile it fast rather than make it fast.
        init=jax.jit(jax.vmap(ppo.init), compiler_options=_FAST_COMPILE),
        # The training state is consumed: its buffers are reused for the next state.
        run_updates=jax.jit(_per_device(jax.vmap(ppo.run_updates, in_axes=(0, 0, None, 0, 0, 0))),
                            static_argnums=2, donate_argnums=0),
        evaluate=_evaluator(config) if shapes is None else jax.jit(
            jax.vmap(ppo.evaluate, in_axes=(0, 0, None, None, 0)), static_argnums=(2, 3)
        ),
    )


def _per_device(run_updates):
    """`run_updates` (vmapped over members) run by each device on its own members, with no
    collective between devices (`jax.shard_map`). Without it the partitioner turns the
    members' epoch loop (a traced trip count, so a while loop over the batch) into one loop
    for all devices whose condition is an all-reduce every epoch: the devices wait for each
    other, and under CPU contention XLA's in-process all-reduce can time out and abort the
    process."""

    def run(state, hyperparams, num_updates, scenarios, shapes, until):
        mesh = population_mesh(int(jnp.shape(state.update)[0]))
        args = (state, hyperparams, scenarios, shapes, until)
        if mesh is None:
            return run_updates(state, hyperparams, num_updates, scenarios, shapes, until)
        members = jax.sharding.PartitionSpec("population")
        local = jax.shard_map(
            lambda *a: run_updates(a[0], a[1], num_updates, *a[2:]), mesh=mesh,
            in_specs=tuple(None if a is None else members for a in args), out_specs=members,
            check_vma=False)  # no collective inside: nothing varies across devices but data
        return local(*args)

    return run


EVALUATION_STREAM = 0x0E7A1  # folded into a run's seed for its evaluation episodes


def evaluation_key(seed: int) -> jax.Array:
    """The PRNG key of a run's fresh evaluation episodes: a function of its seed alone, so
    configurations trained on the same seed are judged on the same episodes (paired)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), EVALUATION_STREAM)


def shard_count(size: int) -> int:
    """Devices a population of `size` members is split over: every local device, or one per
    member when there are fewer members than devices."""
    return max(1, min(size, jax.local_device_count()))


def padded_size(size: int) -> int:
    """`size` rounded up to a multiple of `shard_count(size)` (padding < the device count)."""
    shards = shard_count(size)
    return -(-size // shards) * shards


def population_sharding(size: int):
    """NamedSharding of a leading population axis of `padded_size` members over
    `shard_count` local devices, or None on one device."""
    mesh = population_mesh(size)
    return None if mesh is None else jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec("population"))


def population_mesh(size: int) -> jax.sharding.Mesh | None:
    """The 1-D mesh ("population") of `shard_count(size)` local devices that `size` rows are
    split over, or None on one device (or a size the devices do not divide)."""
    shards = shard_count(size)
    if shards < 2 or size % shards:
        return None
    return jax.sharding.Mesh(np.array(jax.local_devices()[:shards]), ("population",))


def _place(tree, size: int):
    sharding = population_sharding(size)
    return tree if sharding is None else jax.device_put(tree, sharding)


def broadcast_scenario(scenario: Scenario, size: int) -> Scenario:
    return jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x), (size,)), scenario)


def _pad_positions(size: int) -> list[int]:
    """Row positions of a padded population: 0..size-1, then the last one repeated."""
    return list(range(size)) + [size - 1] * (padded_size(size) - size)


def _pad(tree, size: int):
    """A tree with `size` rows padded to `padded_size(size)` rows."""
    return tree if padded_size(size) == size else take(tree, _pad_positions(size))


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
    `members[i]` is the caller's id of the member at position i (-1 for padding).
    With `shapes` (the program's ShapeChoices) and `member_shapes` (MemberShape with leading
    axis P), members of different hidden and batch sizes train in one padded program.
    `state`, `hyperparams` and `scenarios` hold `padded_size(P)` rows: the first P are the
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
            scenario = get_scenario(config.scenario, config.num_opponents + 1)
            scenarios = broadcast_scenario(scenario, size)
        self.members = np.arange(size) if members is None else np.asarray(members)
        rows = padded_size(size)
        self.hyperparams = _place(_pad(hyperparams, size), rows)
        self.scenarios = _place(_pad(scenarios, size), rows)
        self.shapes = None if member_shapes is None else _place(_pad(member_shapes, size), rows)
        # Placed again: init leaves that do not depend on the key (zeros) come out
        # replicated, and a first chunk on those shardings would compile a second program.
        self.state = _place(self.fns.init(_place(_pad(jnp.asarray(keys), size), rows),
                                          self.hyperparams, self.scenarios, self.shapes),
                            rows)

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def updates_done(self) -> int:
        return int(self.state.update[0])

    def _unpad(self, tree):
        rows = int(jnp.shape(jax.tree.leaves(tree)[0])[0])
        return tree if rows == self.size else jax.tree.map(lambda x: x[: self.size], tree)

    @property
    def batch_sizes(self) -> np.ndarray:
        """int[P]: each member's env steps per update."""
        if self.shapes is None:
            return np.full(self.size, self.config.batch_size)
        return np.asarray(self.shapes.batch_size)[: self.size]

    def run(self, num_updates: int, until=None) -> dict[str, jax.Array]:
        """Train every member `num_updates` more updates (a padded population: each member at
        most up to `until[i]` updates done, int[P]). Metrics [P, num_updates] stay on the
        device (dispatch is asynchronous until the caller reads them). The previous `state` is
        consumed (its buffers donated): copy it first to keep it."""
        if until is not None:
            if self.shapes is None:
                raise ValueError("`until` needs a padded population")
            until = _place(_pad(jnp.asarray(until, jnp.int32), self.size), len(self.state.update))
        self.state, metrics = self.fns.run_updates(
            self.state, self.hyperparams, int(num_updates), self.scenarios, self.shapes, until
        )
        return self._unpad(metrics)

    def keep(self, positions, pad_to: int | None = None) -> None:
        """Keep only the members at `positions` (in that order), dropping the rest so they
        cost no compute. With `pad_to`, repeat the last kept member up to that size (marked -1
        in `members`) so a few sizes serve every repack."""
        positions = list(positions)
        if not positions:
            raise ValueError("a population must keep at least one member")
        members = list(self.members[positions])
        if pad_to is not None and pad_to > len(positions):
            extra = pad_to - len(positions)
            positions += [positions[-1]] * extra
            members += [-1] * extra
        rows = [positions[i] for i in _pad_positions(len(positions))]
        self.state = _place(take(self.state, rows), len(rows))
        self.hyperparams = _place(take(self.hyperparams, rows), len(rows))
        self.scenarios = _place(take(self.scenarios, rows), len(rows))
        if self.shapes is not None:
            self.shapes = _place(take(self.shapes, rows), len(rows))
        self.members = np.asarray(members)

    def copy_members(self, parents, environment: bool = False) -> None:
        """Population-based training's exploit: member i takes the parameters and optimizer
        state of member parents[i] (int[P]; parents[i] == i keeps its own), on the device. With
        `environment` also its environment states, PRNG key and episode buffers, so that the
        copy goes on exactly as its parent would. The update counters agree already."""
        parents = np.asarray(parents)
        if parents.shape != (self.size,) or not ((parents >= 0) & (parents < self.size)).all():
            raise ValueError(f"parents must be {self.size} member positions, got {parents!r}")
        rows = jnp.asarray([int(parents[p]) for p in _pad_positions(self.size)], jnp.int32)
        self.state = _place(_copy_rows(self.state, rows, bool(environment)), len(rows))

    def set_hyperparams(self, hyperparams: PPOHyperparams) -> None:
        """New traced hyperparameters (leading axis P), as explore sets them between chunks:
        the same shapes and placement, so the compiled programs serve them."""
        self.hyperparams = _place(_pad(hyperparams, self.size), len(self.state.update))

    def evaluate(self, key, num_episodes: int = 100, greedy: bool = False) -> np.ndarray:
        """Returns float32[P, num_episodes] of fresh episodes per member. `key`: one PRNG key
        (split over the members by position) or keys [P, 2], one per member (a member's
        episodes then do not depend on the population it sits in)."""
        keys = jnp.asarray(key)
        if keys.ndim == 1:
            keys = jax.random.split(keys, self.size)
        returns = self.fns.evaluate(self.state.params, _pad(keys, self.size), int(num_episodes),
                                    bool(greedy), self.scenarios)
        return np.asarray(returns)[: self.size]

    def member_params(self, position: int):
        """The network parameters of the member at `position` (host numpy pytree)."""
        return jax.tree.map(lambda x: np.asarray(x[position]), self.state.params)
