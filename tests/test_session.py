"""The test session itself: compiled programs go to a cache folder of this session only."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bb_jax.cli import enable_compile_cache


def test_compile_cache_is_private_to_the_session():
    path = enable_compile_cache()
    assert path != Path.home() / ".cache" / "bb_jax" / "xla"
    assert path.parent == Path(tempfile.gettempdir()) and path.name.startswith("bb_jax_test_xla_")
