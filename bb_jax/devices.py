"""Host devices: one process uses every CPU core it may run on.

On a CPU backend XLA runs a program on one device, and a vmapped population on one device
gains little from a second core. `use_host_devices` exposes the usable cores as that many
host devices before JAX creates its backend, so `bb_jax.runtime.population` can shard the
members over them. On an accelerator it changes nothing that runs (JAX's CPU devices go
unused there). It leaves alone a device count the user set
(`--xla_force_host_platform_device_count` in $XLA_FLAGS, or $JAX_NUM_CPU_DEVICES). Worker
processes of `--n-jobs` each get their own share of the cores ($BB_JAX_CORES, set by the
process that starts them).
"""

from __future__ import annotations

import os

import jax

CORES_ENV = "BB_JAX_CORES"
_XLA_COUNT_FLAG = "--xla_force_host_platform_device_count"


def usable_cores() -> list[int]:
    """The CPU cores this process may use: $BB_JAX_CORES (comma-separated ids) if set, else
    its scheduler affinity (all cores where the platform has none)."""
    given = os.environ.get(CORES_ENV, "").strip()
    if given:
        try:
            cores = sorted({int(c) for c in given.split(",")})
        except ValueError:
            raise ValueError(f"{CORES_ENV}={given!r} is not a comma-separated list of core "
                             "ids like 0,1") from None
        if cores and min(cores) >= 0:
            return cores
        raise ValueError(f"{CORES_ENV}={given!r} is not a list of core ids like 0,1")
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def job_cores(index: int, jobs: int) -> list[int]:
    """The cores of process `index` of `jobs` sharing this machine's usable cores: contiguous
    groups of nearly equal size, or one core each (reused in turn) when jobs exceed cores."""
    cores = usable_cores()
    if jobs <= 1:
        return cores
    if jobs >= len(cores):
        return [cores[index % len(cores)]]
    start = index * len(cores) // jobs
    return cores[start:(index + 1) * len(cores) // jobs]


def user_set_count() -> bool:
    """Whether the user chose the number of host devices ($XLA_FLAGS or $JAX_NUM_CPU_DEVICES)."""
    return (_XLA_COUNT_FLAG in os.environ.get("XLA_FLAGS", "")
            or jax.config.jax_num_cpu_devices >= 0)


def use_host_devices(cores: list[int] | None = None) -> int:
    """Expose `cores` (default: `usable_cores()`) as that many JAX host devices, unless the
    user set the count or JAX's backend already exists. Call before any JAX computation.
    Returns the number of host devices asked for (0 when it left the setting alone)."""
    if user_set_count():
        return 0
    count = len(usable_cores() if cores is None else cores)
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # the backend exists already: its devices stay as they are
        return 0
    return count


def pin(cores: list[int]) -> None:
    """Keep this process on `cores` (where the platform supports it)."""
    if hasattr(os, "sched_setaffinity") and set(cores) != os.sched_getaffinity(0):
        os.sched_setaffinity(0, set(cores))
