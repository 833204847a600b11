"""Running under `uv run`: uv.lock (what `uv run` installs) and constraints.txt (what make and
CI install with pip -c) hold the same versions, and both cover every runtime dependency of
pyproject.toml; uv.lock records pyproject.toml's requirements as they stand, so `uv run` on a
fresh clone installs the lock instead of resolving again (offline: the files are read, nothing
is installed). Printed commands start with the launcher the user ran."""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from pathlib import Path

import optuna
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from bb_jax.tuning.outputs import python_command, train_command
from bb_jax.tuning.space import TRAIN_FLAGS

ROOT = Path(__file__).resolve().parents[1]


def _name(raw: str) -> str:
    """A distribution name in its normalized form (PEP 503): `PyYAML` -> `pyyaml`."""
    return re.sub(r"[-_.]+", "-", raw).lower()


def locked_versions(lock: dict) -> dict[str, set[str]]:
    """Every package of a parsed uv.lock -> its versions (several only where uv forks by
    platform or Python version)."""
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        versions.setdefault(_name(package["name"]), set()).add(package["version"])
    return versions


def pinned_versions(text: str) -> dict[str, set[str]]:
    """Every `name==version` line of a constraints file -> its versions."""
    versions: dict[str, set[str]] = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            versions.setdefault(_name(requirement.name), set()).add(spec.version)
    return versions


def disagreements(locked: dict[str, set[str]], pinned: dict[str, set[str]],
                  runtime: list[str]) -> list[str]:
    """One line per package whose versions differ between the two files, and per runtime
    dependency missing from either."""
    lines = [f"{name}: uv.lock {sorted(locked[name])}, constraints.txt {sorted(pinned[name])}"
             for name in sorted(locked.keys() & pinned.keys()) if locked[name] != pinned[name]]
    lines += [f"{name}: missing from {where}" for name in runtime
              for where, versions in (("uv.lock", locked), ("constraints.txt", pinned))
              if name not in versions]
    return lines


def _runtime() -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [Requirement(line) for line in pyproject["project"]["dependencies"]]


def _lock() -> dict:
    return tomllib.loads((ROOT / "uv.lock").read_text())


def test_uv_lock_and_constraints_hold_the_same_versions():
    runtime = [_name(r.name) for r in _runtime()]
    pinned = pinned_versions((ROOT / "constraints.txt").read_text())
    assert disagreements(locked_versions(_lock()), pinned, runtime) == []


def test_the_check_names_a_changed_version_and_a_missing_dependency():
    lock = _lock()
    pinned = locked_versions(lock)
    assert disagreements(locked_versions(lock), pinned, ["jax", "optuna", "scipy"]) == []
    pinned["jax"] = {"0.0.1"}
    del pinned["optuna"]
    lock["package"] = [p for p in lock["package"] if _name(p["name"]) != "scipy"]
    found = disagreements(locked_versions(lock), pinned, ["jax", "optuna", "scipy"])
    assert found == [f"jax: uv.lock {sorted(locked_versions(lock)['jax'])}, "
                     "constraints.txt ['0.0.1']",
                     "optuna: missing from constraints.txt", "scipy: missing from uv.lock"]


def test_uv_lock_records_pyproject_requirements_as_they_stand():
    """A lock whose record of the runtime requirements differs from pyproject.toml is stale:
    `uv run` would resolve again instead of installing it."""
    (project,) = [p for p in _lock()["package"] if p["name"] == "bb-jax"]
    recorded = {(_name(r["name"]), SpecifierSet(r.get("specifier", "")))
                for r in project["metadata"]["requires-dist"] if "marker" not in r}
    assert recorded == {(_name(r.name), r.specifier) for r in _runtime()}


def _printed_command() -> list[str]:
    study = optuna.create_study()
    return shlex.split(train_command(study, dict.fromkeys(TRAIN_FLAGS, 1), [7], 4096, "again"))


def test_under_uv_run_commands_start_with_uv_run(monkeypatch):
    monkeypatch.setenv("UV", "/home/user/.local/bin/uv")  # what `uv run` sets for its children
    assert python_command() == ["uv", "run", "python"]
    assert _printed_command()[:4] == ["uv", "run", "python", "scripts/train_simple.py"]


def test_otherwise_commands_name_this_interpreter(monkeypatch, tmp_path):
    monkeypatch.delenv("UV", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    assert _printed_command()[:2] == [".venv/bin/python", "scripts/train_simple.py"]
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
    assert python_command() == ["python"]
