"""Session set-up shared by every test module.

- JAX's persistent compilation cache goes to a temporary folder made for this session
  (BB_JAX_CACHE_DIR, inherited by the tuner and script processes the tests start), never to the
  user's ~/.cache/bb_jax/xla: a test session neither reads nor leaves behind compiled programs.
- Long tests carry the `slow` marker (registered in pyproject.toml): `pytest -m "not slow"` is
  the quick loop, `make test` (CI) runs everything.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_CACHE_ENV = "BB_JAX_CACHE_DIR"
_session_cache: str | None = None


def pytest_configure(config):
    global _session_cache
    _session_cache = tempfile.mkdtemp(prefix="bb_jax_test_xla_")
    os.environ[_CACHE_ENV] = _session_cache


def pytest_unconfigure(config):
    if _session_cache is not None:
        shutil.rmtree(_session_cache, ignore_errors=True)
