"""The RESULTS report's three files: docs/results.json (the raw figures), docs/results.png and
docs/RESULTS.md."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bb_jax.results.markdown import markdown
from bb_jax.results.plot import plot


def write_outputs(results: dict, md_path: Path, png_path: Path, json_path: Path) -> None:
    for p in (md_path, png_path, json_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    plot(results, png_path)
    rel = os.path.relpath(png_path, md_path.parent)
    md_path.write_text(markdown(results, (rel,)))


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(type(x))
