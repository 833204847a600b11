"""Session set-up shared by every test module.

- JAX's persistent compilation cache goes to a temporary folder made for this session
  (BB_JAX_CACHE_DIR, inherited by the tuner and script processes the tests start), never to the
  user's ~/.cache/bb_jax/xla: a test session neither reads nor leaves behind compiled programs.
- In-process tests run on one host device whatever their order: otherwise the first command
  line called in-process before any other JAX computation (`bb_jax.devices.use_host_devices`)
  would choose the device count of the whole pytest process. Subprocess tests get the real
  default (every core), unless they set it themselves.
- `UV` (which `uv run` sets) is dropped, so printed commands name this interpreter as the tests
  that rerun them expect, however pytest was launched (tests/test_uv.py sets it itself).
- Long tests carry the `slow` marker (registered in pyproject.toml): `make test` (CI) runs
  `-m "not slow"`, where each slow test has a cheaper sibling; `make test-all` runs both.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import jax

from bb_jax import devices

_CACHE_ENV = "BB_JAX_CACHE_DIR"
_session_cache: str | None = None

if not devices.user_set_count():
    jax.config.update("jax_num_cpu_devices", 1)
os.environ.pop("UV", None)


def pytest_configure(config):
    global _session_cache
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get(_CACHE_ENV):
        return  # a pytest-xdist worker shares the cache its controller made
    _session_cache = tempfile.mkdtemp(prefix="bb_jax_test_xla_")
    os.environ[_CACHE_ENV] = _session_cache


def pytest_unconfigure(config):
    if _session_cache is not None:
        shutil.rmtree(_session_cache, ignore_errors=True)
