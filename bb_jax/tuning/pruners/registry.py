"""`--pruner NAME` or `--pruner MODULE:CLASS`: the registry of the tuner's pruners. Each
built-in rule registers a factory `(TuneSettings) -> optuna.pruners.BasePruner` in its own
module (`@PRUNERS.register("sha")`); a class named MODULE:CLASS is built by
`Class.from_settings(settings)` when it defines that classmethod, else by `Class()`."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from bb_jax.tuning.registry import ChoiceError, Registry
from bb_jax.tuning.settings import TuneSettings


def pruner_factory(spec: str, found: object) -> Callable[[TuneSettings], optuna.pruners.BasePruner]:
    """A user's pruner class (an optuna BasePruner subclass) as a factory of the registry."""
    if not (isinstance(found, type) and issubclass(found, optuna.pruners.BasePruner)):
        raise ChoiceError(f"--pruner {spec!r} is not a subclass of optuna.pruners.BasePruner")
    if hasattr(found, "from_settings"):
        return found.from_settings
    return lambda settings: found()


PRUNERS = Registry("--pruner", "pruners", "mypackage.rules:MyPruner", pruner_factory)


@PRUNERS.register("none")
def no_pruning(settings: TuneSettings) -> optuna.pruners.BasePruner:
    """`--pruner none`: every trial trains to the end."""
    return optuna.pruners.NopPruner()
