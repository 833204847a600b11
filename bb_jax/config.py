"""Settings declared once. Each field of a settings dataclass carries, in its
`dataclasses.field(metadata=...)` (`setting`), its default, help text, command-line flag, valid
range or choices, and where the tuner searches it, its search range and whether it is static
(a change compiles a new program) or traced (a pytree leaf). From these declarations come the
command lines (`add_flags`, `from_flags`), the range checks, the JSON every run and study
stores (`to_json`) and the comparison of two stored settings (`differences`).

A small generator rather than a library such as tyro: the command lines keep their flag
names, `auto` values and one-line errors (exit 2), and the project adds no dependency. This
module imports nothing of bb_jax: every layer may use it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import NamedTuple


class SettingError(ValueError):
    """A value outside its field's declared range or choices (one line naming the flag)."""


@dataclass(frozen=True)
class Search:
    """How the tuner searches a parameter: one of `choices`, or `low`..`high` (log-uniform
    with `log`; whole numbers with `integer`). `small_choices`: the choices of the small
    search space (`--space small`, a CPU's default; empty: the same as `choices`)."""

    choices: tuple = ()
    small_choices: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class Valid:
    """The values a field may take at all (every entry point refuses others): finite numbers
    from `low` to `high`, an end left out where it is open; whole numbers with `integer`."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def contains(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.integer and not float(value).is_integer():
            return False
        above = self.low < value if self.low_open else self.low <= value
        below = value < self.high if self.high_open else value <= self.high
        return math.isfinite(value) and above and below

    def __str__(self) -> str:
        if self.integer:
            return f"{self.low:g}..{self.high:g}"
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}" \
               f"{')' if self.high_open else ']'}"

    def phrase(self) -> str:
        """The range as an error line says it: "in 1..9", "> 0", ">= 2", "in (0, 1)"."""
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {self}"


def setting(default=MISSING, flag: str | None = None, help: str = "", *,
            default_factory=MISSING, valid: Valid | None = None, choices: tuple = (),
            type: Callable | None = None, flag_default=MISSING, auto: Callable | None = None,
            nargs: str | None = None, metavar: str | None = None, action: str | None = None,
            search: Search | None = None, traced: bool | None = None, study: bool = False,
            show: Callable | None = None, label: str | None = None):
    """A declared field. flag: its command-line option (None: none); flag_default: what the
    flag holds when not given if that differs from the field's default (e.g. "auto");
    auto(backend): the value `auto` stands for on a JAX backend (resolved once, when a run
    starts, and stored resolved); type, nargs, metavar, action: argparse's; valid / choices:
    the values refused otherwise; search: the tuner's range; traced: a pytree leaf (True),
    static (False) or not part of a program (None); study: part of what a study's trials
    mean (a resumed study must match it); show: how a value reads on the command line;
    label: how an error names a field without a flag of its own."""
    metadata = {"flag": flag, "help": help, "valid": valid, "choices": tuple(choices),
                "type": type, "auto": auto, "nargs": nargs, "metavar": metavar,
                "action": action, "search": search, "study": study, "show": show or _shown,
                "label": label or flag}
    if flag_default is not MISSING:
        metadata["flag_default"] = flag_default
    if traced is not None:
        metadata["pytree_node"] = traced  # flax.struct reads this key
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata=metadata)


def nested(cls: type, prefix: str = ""):
    """A field holding a settings tree `cls` (its defaults); its flags' dests take `prefix`."""
    return dataclasses.field(default_factory=cls, metadata={"nested": cls, "prefix": prefix})


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def declared(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    """(argparse dest, field) of every flagged field of the tree `cls`, nested trees
    included, in declaration order (the order of --help and of the checks)."""
    out = []
    for f in dataclasses.fields(cls):
        if "nested" in f.metadata:
            out += declared(f.metadata["nested"], prefix + f.metadata["prefix"])
        elif f.metadata.get("flag"):
            out.append((prefix + f.name, f))
    return out


def _field_default(f: dataclasses.Field):
    if "flag_default" in f.metadata:
        value = f.metadata["flag_default"]
        return value() if callable(value) else value
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per flagged field of the tree `cls` (nested trees included), in
    declaration order; a field without help text is a hidden option."""
    for dest, f in declared(cls):
        m, default = f.metadata, _field_default(f)
        kwargs = {"dest": dest, "default": default,
                  "help": m["help"] if m["help"] else argparse.SUPPRESS}
        if m["action"] == "store_true":
            kwargs["action"] = "store_true"
        elif m["action"] == "boolean":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kind = m["type"] or (type(default) if default is not None else str)
            kwargs.update(type=kind, nargs=m["nargs"])
            if m["choices"]:
                kwargs["choices"] = m["choices"]
            else:  # named after the flag, not the field
                kwargs["metavar"] = m["metavar"] or m["flag"][2:].replace("-", "_").upper()
        parser.add_argument(m["flag"], **kwargs)


def from_flags(cls: type, args: argparse.Namespace, backend: str | None = None,
               prefix: str = "", **given):
    """The tree `cls` from parsed flags: `given` values as they are, the others from
    `args`, each `auto` resolved for `backend` and checked against its declared range
    (SettingError: one line naming the first bad flag)."""
    values = {}
    for f in dataclasses.fields(cls):
        m = f.metadata
        if f.name in given:
            values[f.name] = given[f.name]
        elif "nested" in m:
            values[f.name] = from_flags(m["nested"], args, backend, prefix + m["prefix"])
        elif m.get("flag") and hasattr(args, prefix + f.name):
            values[f.name] = checked(f, getattr(args, prefix + f.name), backend)
    return cls(**values)


def checked(f: dataclasses.Field, value, backend: str | None = None):
    """A flag's value for field `f`: `auto` resolved on `backend`, then checked against the
    field's declared range (None: unset, not checked)."""
    m = f.metadata
    if value == "auto" and m.get("auto") is not None:
        if backend is None:
            raise ValueError(f"{m['flag']} auto needs the JAX backend")
        value = m["auto"](backend)
    valid = m.get("valid")
    if valid is not None and value is not None and not valid.contains(value):
        raise SettingError(f"{m['flag']} must be {valid.phrase()}, got {value}")
    return value


def to_json(tree) -> dict:
    """A settings tree as JSON values (tuples as lists, paths as text), nested trees nested."""
    return {f.name: _json_value(getattr(tree, f.name)) for f in dataclasses.fields(tree)}


def _json_value(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value) if isinstance(value, Path) else value


def from_json(cls: type, saved: dict):
    """The tree `cls` from `to_json`'s dict (a field it lacks keeps its default; lists
    become tuples where the default is a tuple, text a path where it is a path)."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in saved:
            continue
        value = saved[f.name]
        if "nested" in f.metadata:
            value = from_json(f.metadata["nested"], value)
        elif isinstance(f.default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif isinstance(f.default, Path) and isinstance(value, str):
            value = Path(value)
        values[f.name] = value
    return cls(**values)


def study_fields(cls: type) -> dict[str, dataclasses.Field]:
    """{name: field} of the fields declared `study=True`: what a study's trials mean."""
    return {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("study")}


class Difference(NamedTuple):
    """A field whose stored and current values differ, as the command line reads them."""

    name: str
    flag: str
    stored: str
    current: str


def differences(cls: type, stored: dict, current: dict,
                names: tuple[str, ...] | None = None) -> list[Difference]:
    """The fields of `cls` named in `names` (None: those declared `study=True`) whose JSON
    values differ between the stored config `stored` and `current` (a field `stored` lacks
    is not compared: it was recorded before the field existed)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = []
    for name in names or tuple(study_fields(cls)):
        f = fields[name]
        if name not in stored or _json_value(stored[name]) == _json_value(current[name]):
            continue
        show = f.metadata["show"]
        out.append(Difference(name, f.metadata["label"] or name, show(stored[name]),
                              show(current[name])))
    return out
