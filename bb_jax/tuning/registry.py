"""Named choices of the tuner's command line: a `Registry` maps each name a flag accepts
(`--pruner median`, `--sampler tpe`) to a factory, and `MODULE:NAME` names an object outside
the package instead (`--pruner mypackage.rules:MyPruner`, `--callback mypackage.hooks:notify`),
imported by `import_named`, the one resolver of such names. `--n-jobs` workers get the
tuner's command line, so a name resolves the same way in every process."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable, Iterator


class ChoiceError(ValueError):
    """A named choice that cannot be used (one line for the command line)."""


def import_named(spec: str, flag: str, example: str) -> Callable:
    """The callable that "package.module:name" names; `flag` and `example` (a valid spec)
    word the errors."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ChoiceError(f"{flag} {spec!r}: give MODULE:NAME, e.g. {example}")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ChoiceError(f"{flag} {spec!r}: cannot import it ({err})") from None
    if not callable(found):
        raise ChoiceError(f"{flag} {spec!r} is not callable")
    return found


@dataclasses.dataclass(frozen=True)
class Entry:
    factory: Callable
    package: str | None  # the module it needs beyond Optuna's own dependencies, if any


class Registry:
    """The choices of one flag: name -> factory, listed in alphabetical order (whatever order
    their modules were imported in).

    flag: the command-line flag, e.g. "--pruner"; kind: the plural its errors name the choices
    by, e.g. "pruners"; example: a MODULE:NAME spec for the errors; adapt: turns the object a
    MODULE:NAME spec imports into a factory with the registered factories' signature (and
    raises ChoiceError when the object cannot serve)."""

    def __init__(self, flag: str, kind: str, example: str,
                 adapt: Callable[[str, object], Callable]):
        self.flag, self.kind, self.example, self.adapt = flag, kind, example, adapt
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, package: str | None = None) -> Callable[[Callable], Callable]:
        """Decorator: `factory` is what `name` builds; `package`, a module it needs."""
        if ":" in name:
            raise ValueError(f"{self.flag} name {name!r}: a registered name has no ':'")

        def decorate(factory: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.flag} {name!r} is registered twice")
            self._entries[name] = Entry(factory, package)
            return factory

        return decorate

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def usable(self) -> list[str]:
        """The registered names whose package is installed."""
        return [name for name in self if _installed(self._entries[name].package)]

    def resolve(self, spec: str) -> Callable:
        """The factory `spec` names: a registered name (refused when its package is missing)
        or MODULE:NAME (the imported object, adapted); raises ChoiceError."""
        if ":" in spec:
            return self.adapt(spec, import_named(spec, self.flag, self.example))
        entry = self._entries.get(spec)
        if entry is None:
            raise ChoiceError(f"{self.flag} {spec!r}: valid {self.kind} are "
                              f"{', '.join(self)}, or MODULE:CLASS (e.g. {self.example})")
        if not _installed(entry.package):
            raise ChoiceError(f"{self.flag} {spec} needs the {entry.package} package (pip "
                              f"install {entry.package}); valid {self.kind} here: "
                              f"{', '.join(self.usable())}")
        return entry.factory


def _installed(package: str | None) -> bool:
    return package is None or importlib.util.find_spec(package) is not None
