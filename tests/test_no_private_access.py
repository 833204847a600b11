"""The project uses only the public API of its libraries (Optuna, JAX, Flax, optax, ...):
their private names change without notice between releases.

Flagged in every .py under bb_jax/, scripts/ and benchmarks/:
- an attribute access `x._name` (one leading underscore; dunders are public protocol), unless
  `x` is `self`, `cls`, a class defined in the same file (a class's own state), or a name
  imported from bb_jax (the project's own modules and classes); namedtuples' `_replace`,
  `_asdict`, ... are public API (the underscore only keeps them apart from field names);
- an import of a private module or name of another package: `import a._b`,
  `from a._b import c`, `from a import _c`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("bb_jax", "scripts", "benchmarks")
# documented public methods and attributes of collections.namedtuple / typing.NamedTuple
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_field_defaults", "_make"}
# documented public functions whose names start with an underscore
PUBLIC_UNDERSCORED = {("os", "_exit")}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _own_names(tree: ast.Module) -> set[str]:
    """Names a file binds to the project's own code: its classes, and what it imports from
    bb_jax (absolutely or relatively)."""
    own = {"self", "cls"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").split(".")[0] == "bb_jax"):
            own.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            own.update(alias.asname or alias.name.split(".")[0] for alias in node.names
                       if alias.name.split(".")[0] == "bb_jax")
    return own


def _private_import(node: ast.AST) -> str | None:
    """The text of a private import of another package, else None."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] != "bb_jax" and any(map(_private, parts)):
                return f"import {alias.name}"
    elif isinstance(node, ast.ImportFrom) and not node.level:
        parts = (node.module or "").split(".")
        names = [alias.name for alias in node.names]
        if parts[0] != "bb_jax" and (any(map(_private, parts)) or any(map(_private, names))):
            return f"from {node.module} import {', '.join(names)}"
    return None


def private_accesses(source: str) -> list[tuple[int, str]]:
    """(line, text) of every private access of another package in `source`."""
    tree = ast.parse(source)
    own = _own_names(tree)
    found = []
    for node in ast.walk(tree):
        text = _private_import(node)
        if (isinstance(node, ast.Attribute) and _private(node.attr)
                and node.attr not in NAMEDTUPLE_API
                and not (isinstance(node.value, ast.Name)
                         and (node.value.id, node.attr) in PUBLIC_UNDERSCORED)
                and not (isinstance(node.value, ast.Name) and node.value.id in own)):
            text = ast.unparse(node)
        if text is not None:
            found.append((node.lineno, text))
    return sorted(found)


def test_no_private_access_of_other_packages():
    found = [f"{path.relative_to(ROOT)}:{line}: {text}"
             for folder in FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))
             for line, text in private_accesses(path.read_text())]
    assert not found, "private names of other packages used:\n" + "\n".join(found)


@pytest.mark.parametrize("source,expected", [
    ("storage = study._storage\n", [(1, "study._storage")]),
    ("ids = [t._trial_id for t in trials]\n", [(1, "t._trial_id")]),
    ("s = self.study._storage\n", [(1, "self.study._storage")]),
    ("storage._get_stale_trial_ids(study._study_id)\n",
     [(1, "storage._get_stale_trial_ids"), (1, "study._study_id")]),
    ("from optuna.storages._heartbeat import BaseHeartbeat\n",
     [(1, "from optuna.storages._heartbeat import BaseHeartbeat")]),
    ("import optuna.storages._heartbeat\n", [(1, "import optuna.storages._heartbeat")]),
    ("from optuna.storages import _CachedStorage\n",
     [(1, "from optuna.storages import _CachedStorage")]),
    ("import jax\njax._src.config\n", [(2, "jax._src")]),
    ("from optuna import Study\nStudy._is_multi_objective\n", [(2, "Study._is_multi_objective")]),
    # allowed: the project's own names, namedtuple API, dunders
    ("self._x = cls._y\n", []),
    ("class Clock:\n    def f():\n        return Clock._total\n", []),
    ("from bb_jax.tuning import tuner\ntuner._private\n", []),
    ("from .cohorts import Thing\nThing._x\n", []),
    ("from bb_jax.tuning.storage import _IMMEDIATE\n", []),
    ("batch = batch._replace(a=1)\n", []),
    ("import os\nos._exit(130)\n", []),
    ("from __future__ import annotations\nx.__class__\n", []),
])
def test_checker_flags_private_access(source, expected):
    """The checker itself: each spelling of a private access is flagged, the allowed ones not."""
    assert private_accesses(source) == expected
