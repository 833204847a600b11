"""How a population's rows split over the local devices (on a CPU one per core,
`bb_jax.devices`): every device takes an equal share, and a population whose size the
devices do not divide gets filler rows, copies of its last member that the caller never sees.
"""

from __future__ import annotations

import jax
import numpy as np


def shard_count(size: int) -> int:
    """Devices a population of `size` members is split over: every local device, or one per
    member when there are fewer members than devices."""
    return max(1, min(size, jax.local_device_count()))


def filled_size(size: int) -> int:
    """`size` rounded up to a multiple of `shard_count(size)`: the members and the filler rows
    (fewer than the device count) that make every device's share equal."""
    shards = shard_count(size)
    return -(-size // shards) * shards


def population_sharding(size: int):
    """NamedSharding of a leading population axis of `filled_size` members over
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
