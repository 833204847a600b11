"""What a measurement ran on: machine, Python, CPU, JAX backend and devices, load."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import jax


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """A JSON-ready description of this machine and JAX's view of it."""
    device = jax.devices()[0]
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "jax_version": jax.__version__,
        "jax_backend": jax.default_backend(),
        "device": f"{device.platform}:{getattr(device, 'device_kind', str(device))}",
        "num_devices": jax.device_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],
    }
