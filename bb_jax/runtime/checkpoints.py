"""Checkpoints of a training run, and the parameters of a finished run's members, with orbax
(one format: `save_params` writes a network with the handler that stores a checkpoint's state).

A checkpoint holds the whole training state of a population
(parameters, optimizer state, environment states, PRNG keys, update counters, the episode
ring buffers), the curves recorded so far and the run's settings, so that a run stopped by
Ctrl-C, SIGTERM or kill -9 continues where its last checkpoint was and ends bit-identical to
the run that was never stopped (same device count).

A checkpoint is written whole or not at all (orbax finalises a step's folder only when it is
complete), so a process killed while saving leaves the previous checkpoint as the latest. A
latest checkpoint damaged afterwards (a disk error, a file truncated by hand) is dropped and
the run continues from the one before it (`KEEP` are kept), saying so.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

KEEP = 2  # checkpoints kept: the latest and the one before it


@dataclasses.dataclass
class Restored:
    """What `Checkpoints.restore` gives back: the training state (placed like the template),
    the curves of the updates done (arrays [members, updates]) and the saved settings."""

    state: object
    curves: dict[str, np.ndarray]
    settings: dict
    updates: int


class Checkpoints:
    """The checkpoints of one run in `directory` (created when the first one is saved)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory).resolve()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(
                max_to_keep=KEEP, enable_async_checkpointing=True))

    def latest(self) -> int | None:
        """Updates done at the latest complete checkpoint, or None when there is none (a
        checkpoint still being written by this process is waited for first)."""
        self.wait()
        return self.manager.latest_step()

    def save(self, updates: int, state, curves: dict[str, np.ndarray], settings: dict) -> None:
        """Save the state after `updates` updates: returns once the state is copied off the
        device (the next chunk may then consume it); the files are written in the background
        and finalised whole (by the next `save`, `wait` or `close` at the latest)."""
        self.manager.save(updates, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            curves=ocp.args.StandardSave({k: np.asarray(v) for k, v in curves.items()}),
            settings=ocp.args.JsonSave(settings)))

    def wait(self) -> None:
        """Wait until the checkpoint being written (if any) is on disk."""
        self.manager.wait_until_finished()

    def settings(self, updates: int | None = None) -> dict:
        """The settings saved with a checkpoint (default: the latest)."""
        step = self.latest() if updates is None else updates
        return self.manager.restore(step, args=ocp.args.Composite(
            settings=ocp.args.JsonRestore()))["settings"]

    def restore(self, template, log: Callable[[str], None] | None = None) -> Restored:
        """The latest checkpoint that reads back; `template` is a state of the same run's
        population (its shapes, dtypes and device placement are the restored state's). Later
        ones that do not read back while an earlier one does are damaged: they are deleted
        and named through `log` (default: stderr). When none reads back (e.g. another device
        count) nothing is deleted and the latest one's error is raised."""
        log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.wait()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        damaged: list[tuple[int, Exception]] = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                out = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), curves=ocp.args.StandardRestore(),
                    settings=ocp.args.JsonRestore()))
                break
            except Exception as err:  # noqa: BLE001  orbax/tensorstore raise many kinds
                damaged.append((step, err))
        else:
            raise damaged[0][1]
        for bad, err in damaged:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
            log(f"checkpoint at update {bad} is damaged ({first}): removed it; resuming from "
                f"the one at update {step}")
            self.manager.delete(bad)
        curves = {k: np.asarray(v) for k, v in out["curves"].items()}
        # placed exactly like the template: orbax commits every array to its device, and an
        # uncommitted template (one device) would make jit compile the training and
        # evaluation programs again for the restored state
        state = jax.tree.map(lambda leaf, like: jax.device_put(leaf, like.sharding)
                             if like.committed else jax.numpy.asarray(np.asarray(leaf)),
                             out["state"], template)
        return Restored(state, curves, out["settings"], step)

    def close(self) -> None:
        self.manager.close()


def save_params(path: Path, params) -> None:
    """One network's parameters (a pytree of arrays) into the new folder `path`, written whole
    before this returns. They are stored as arrays of the host's CPU device, so that reading
    them back checks every shape against the network (orbax checks the shapes of device
    arrays only) on any machine."""
    cpu = jax.devices("cpu")[0]
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(Path(path).resolve(), jax.device_put(params, cpu))


def stored_params(path: Path):
    """The pytree of (shape, dtype) of the parameters `save_params` wrote into `path`, from
    the folder's metadata (no array is read); ValueError when it has none."""
    with ocp.StandardCheckpointer() as checkpointer:
        metadata = checkpointer.metadata(Path(path).resolve()).item_metadata
    if metadata is None:
        raise ValueError("it holds no parameters saved by orbax")
    tree = metadata.tree
    return jax.tree.map(lambda leaf: (tuple(leaf.shape), np.dtype(leaf.dtype)), tree)


def restore_params(path: Path, template):
    """The parameters `save_params` wrote into `path`, restored onto `template` (a pytree of
    `jax.ShapeDtypeStruct`) and returned as host numpy arrays. orbax raises ValueError when
    the tree structure or a shape differs from the template's; a dtype is cast to it."""
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=cpu),
                          template)
    with ocp.StandardCheckpointer() as checkpointer:
        return jax.device_get(checkpointer.restore(Path(path).resolve(), target))
