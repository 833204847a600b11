"""metrics.jsonl lines (`saved_runs.metric_lines`): each line is exactly what `json.dumps`
writes for its row (keys in order, floats exact, non-finite values as null), and the columns
are formatted whole (one transfer from the device), never element by element."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np

from bb_jax.runtime.saved_runs import metric_lines

MEMBERS = [(3, "easy"), (7, "hard")]


def _curves(updates: int = 5) -> dict:
    """[2, updates] metrics of every dtype a chunk has, with NaN, infinities and -0.0, in an
    order that is not sorted."""
    rng = np.random.default_rng(0)
    mean_return = rng.normal(900.0, 50.0, (2, updates)).astype(np.float32)
    mean_return[0, 0], mean_return[1, 1], mean_return[1, 2] = np.nan, np.inf, -np.inf
    loss = rng.normal(0.0, 1e-3, (2, updates)).astype(np.float32)
    loss[0, 1] = -0.0
    return {"mean_return": mean_return, "env_steps": np.tile(np.arange(1, updates + 1), (2, 1)),
            "finite": np.array([[True] * updates, [False] + [True] * (updates - 1)]),
            "approx_kl": loss, "episodes": np.arange(2 * updates, dtype=np.int32).reshape(2, -1)}


def _expected(curves: dict, first_update: int) -> list[str]:
    """json.dumps of each row, its values the Python scalars of the arrays."""
    lines = []
    for i, (seed, scenario) in enumerate(MEMBERS):
        for t in range(np.shape(curves["env_steps"])[1]):
            row = {"seed": seed, "scenario": scenario, "update": first_update + t}
            for key, values in curves.items():
                x = np.asarray(values)[i, t].item()
                row[key] = None if isinstance(x, float) and not np.isfinite(x) else x
            lines.append(json.dumps(row) + "\n")
    return lines


def test_lines_are_json_dumps_of_each_row():
    curves = _curves()
    lines = metric_lines(MEMBERS, curves, 11)
    assert lines == _expected(curves, 11)
    first = json.loads(lines[0])
    assert list(first) == ["seed", "scenario", "update", *curves]
    assert first["mean_return"] is None and first["finite"] is True
    assert json.loads(lines[6])["mean_return"] is None  # +inf
    assert float(json.loads(lines[1])["approx_kl"]) == 0.0 and "-0.0" in lines[1]
    assert json.loads(lines[7])["mean_return"] is None  # -inf


class _Counted(np.ndarray):
    """An array that counts the reads of its elements by indexing."""

    reads = 0

    def __getitem__(self, index):
        _Counted.reads += 1
        return super().__getitem__(index)


def test_columns_are_formatted_whole_not_element_by_element():
    """No element is read by indexing (the old writer read each value of each member and
    update on its own, one device read each); the lines stay the same."""
    curves = _curves()
    counted = {k: np.asarray(v).view(_Counted) for k, v in curves.items()}
    _Counted.reads = 0
    lines = metric_lines(MEMBERS, counted, 1)
    assert _Counted.reads == 0
    assert lines == _expected(curves, 1)


def test_device_metrics_give_the_same_lines():
    curves = _curves()
    on_device = {k: jnp.asarray(v) for k, v in curves.items()}
    assert metric_lines(MEMBERS, on_device, 1) == metric_lines(MEMBERS, curves, 1)
