"""The package's layers import only downward: game <- agent <- runtime <- {tuning, results} <-
cli, and inside a layer each module imports only the modules before it (`ORDER`): data flows
one way, and no import circle can form, lazy imports inside functions included.

`agent` and `runtime` see the game only through its public env API (`PUBLIC_GAME`: the env's
`reset` / `step` / spaces and its wrappers, the scenarios that are its params, the game's
baseline policies, the multi-agent env), never `rules` or `opponents` below it nor the env's
draw-level methods (`BELOW_ENV_API`), so the learner serves any gymnax env; the registry of
envs (`bb_jax.envs`, outside the layers) may build any of them.

`tuning` (the tuner) and `results` (the RESULTS experiment, docs/RESULTS.md) are applications of
the library side by side: each may import game, agent and runtime, neither imports the other,
and only cli imports them. `bb_jax.stats`, `bb_jax.machine`, `bb_jax.devices`,
`bb_jax.interrupts` and `bb_jax.progress` are shared helpers below every layer; they import no
layer. `bb_jax.testing` (oracles and synthetic sweeps for tests and benchmarks) sits outside
the layers: it may import any of the library, and no module of bb_jax outside it imports it,
neither by an import statement nor by a module name handed to importlib.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bb_jax"
# the subpackages each subpackage may import (the shared helpers aside)
MAY_IMPORT = {
    "game": {"game"},
    "agent": {"game", "agent"},
    "runtime": {"game", "agent", "runtime"},
    "tuning": {"game", "agent", "runtime", "tuning"},
    "results": {"game", "agent", "runtime", "results"},
    "cli": {"game", "agent", "runtime", "tuning", "results", "cli"},
}
# inside each layer, from its leaf up: a module imports only the modules before it
ORDER = {
    "game": ("scenarios", "rules", "opponents", "env", "heuristics", "wrappers", "gymnax_view",
             "marl_env", "marl_features"),
    "agent": ("config", "networks", "shapes", "losses", "policies", "ppo", "team",
              "team_eval"),
    "runtime": ("sharding", "schedule", "checkpoints", "members", "programs", "population",
                "driver", "memory", "cost", "sizing", "baselines", "kept_params", "cohorts",
                "runs", "saved_runs", "evaluation", "ensemble"),
    "tuning": ("liveness", "storage", "registry", "callbacks", "pbt", "space", "settings",
               "pruners", "samplers", "warm_start", "study", "outputs", "validation",
               "ensemble", "tuner", "pbt_train"),
    "results": ("verdicts", "learning_speed", "experiment", "plot", "markdown", "outputs"),
    "cli": ("common", "ensemble", "replay_page", "run_logs", "validate", "tune_args",
            "pbt_outputs", "tune_pbt", "tune", "train", "evaluate", "results"),
}
HELPERS = {"stats", "machine", "devices", "interrupts", "progress"}
# the game's modules agent/ and runtime/ may import, and the names below its public env API
PUBLIC_GAME = {"env", "wrappers", "scenarios", "heuristics", "marl_env"}
BELOW_ENV_API = {"step_with_draws", "reset_with_draws", "sample_draws", "sample_reset_draws",
                 "draws_from_block", "num_draws", "num_reset_draws", "ViewDraws", "STEP_DRAWS"}
TESTING = "bb_jax.testing"


def layer_of(module: str) -> str | None:
    """The subpackage (layer) of a dotted module name inside bb_jax (None for the root and the
    helpers)."""
    parts = module.split(".")
    if parts[0] != "bb_jax" or len(parts) < 2 or parts[1] not in MAY_IMPORT:
        return None
    return parts[1]


def imported_modules(source: str, module: str, package: bool = False) -> list[str]:
    """Every bb_jax module a source imports (`import a.b`, `from a.b import c` as a.b and a.b.c).

    package: the source is the package `module`'s __init__.py (its relative imports start from
    `module` itself, not from its parent).
    """
    found = []
    parts = module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the importing module's package
                base = parts[: len(parts) - node.level + int(package)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append(name)
            found += [f"{name}.{alias.name}" for alias in node.names]
    return [name for name in found if name.split(".")[0] == "bb_jax"]


def upward_imports(source: str, module: str, package: bool = False) -> list[str]:
    """Imports of `module` that reach a layer it may not import (a higher one, or its sibling:
    tuning <-> results), or any layer, from a shared helper."""
    parts = module.split(".")
    own = layer_of(module)
    helper = len(parts) == 2 and parts[1] in HELPERS
    bad = []
    for target in imported_modules(source, module, package):
        level = layer_of(target)
        if level is None:
            continue
        if helper or (own is not None and level not in MAY_IMPORT[own]):
            bad.append(target)
    return bad


def in_testing(module: str) -> bool:
    return module == TESTING or module.startswith(TESTING + ".")


def imports_of_testing(source: str, module: str, package: bool = False) -> list[str]:
    """What a module outside bb_jax.testing takes from it: imports, and string constants that
    are exactly a bb_jax.testing module name (`importlib.import_module("bb_jax.testing.x")`; a
    docstring that mentions one is not a module name)."""
    if in_testing(module):
        return []
    found = [name for name in imported_modules(source, module, package) if in_testing(name)]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and re.fullmatch(r"bb_jax\.testing(\.\w+)*", node.value):
            found.append(node.value)
    return found


def package_modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def test_layers_exist():
    names = {name for name, _ in package_modules()}
    for layer in ("game", "agent", "runtime", "tuning", "results"):
        assert f"bb_jax.{layer}" in names
    assert "bb_jax.game.rules" in names and "bb_jax.agent.ppo" in names
    assert "bb_jax.tuning.tuner" in names and "bb_jax.cli" in names
    assert "bb_jax.results.experiment" in names and "bb_jax.cli.results" in names
    assert "bb_jax.testing.reference_game" in names
    assert "bb_jax.testing.synthetic_sweeps" in names


@pytest.mark.parametrize("name,path", package_modules(), ids=lambda v: str(v))
def test_module_imports_only_downward(name, path):
    assert upward_imports(path.read_text(), name, path.name == "__init__.py") == []


@pytest.mark.parametrize("name,path", package_modules(), ids=lambda v: str(v))
def test_library_does_not_import_testing(name, path):
    assert imports_of_testing(path.read_text(), name, path.name == "__init__.py") == []


@pytest.mark.parametrize(
    "module,source,expected",
    [
        ("bb_jax.game.rules", "from bb_jax.agent.ppo import PPO\n", ["bb_jax.agent.ppo",
                                                                    "bb_jax.agent.ppo.PPO"]),
        ("bb_jax.game.env", "from bb_jax.tuning import tuner\n", ["bb_jax.tuning",
                                                                  "bb_jax.tuning.tuner"]),
        ("bb_jax.runtime.population", "import bb_jax.tuning.tuner\n", ["bb_jax.tuning.tuner"]),
        ("bb_jax.agent.ppo", "from bb_jax.runtime import driver\n",
         ["bb_jax.runtime", "bb_jax.runtime.driver"]),
        ("bb_jax.agent.ppo", "from ..tuning import storage\n", ["bb_jax.tuning",
                                                               "bb_jax.tuning.storage"]),
        ("bb_jax.stats", "from bb_jax.game import rules\n", ["bb_jax.game", "bb_jax.game.rules"]),
        ("bb_jax.tuning.tuner", "from bb_jax import cli\n", ["bb_jax.cli"]),
        ("bb_jax.tuning.tuner", "from bb_jax.agent import ppo\nimport bb_jax.stats\n", []),
        ("bb_jax.cli", "from bb_jax.tuning.tuner import Tuner\n", []),
        # results: only cli imports it; it imports game, agent, runtime and the helpers
        ("bb_jax.game.env", "import bb_jax.results.markdown\n", ["bb_jax.results.markdown"]),
        ("bb_jax.runtime.runs", "from bb_jax.results.verdicts import compare\n",
         ["bb_jax.results.verdicts", "bb_jax.results.verdicts.compare"]),
        ("bb_jax.tuning.tuner", "from bb_jax.results import experiment\n",
         ["bb_jax.results", "bb_jax.results.experiment"]),
        ("bb_jax.stats", "from bb_jax.results import verdicts\n",
         ["bb_jax.results", "bb_jax.results.verdicts"]),
        ("bb_jax.results.experiment", "from bb_jax.tuning import tuner\n",
         ["bb_jax.tuning", "bb_jax.tuning.tuner"]),
        ("bb_jax.results.outputs", "from ..cli import results_main\n",
         ["bb_jax.cli", "bb_jax.cli.results_main"]),
        ("bb_jax.results.markdown",
         "from bb_jax.runtime import baselines\nfrom bb_jax.game.rules import REST_REWARD\n"
         "from bb_jax.stats import mean_ci95\nfrom .plot import plot\n", []),
        ("bb_jax.cli.results", "from bb_jax.results.experiment import run_report\n", []),
    ],
)
def test_checker_flags_upward_imports(module, source, expected):
    """The checker itself: it must see an upward import in each of its spellings."""
    assert upward_imports(source, module) == expected


def test_checker_resolves_relative_imports_of_a_package():
    """In a package's __init__.py, `from . import x` is the package's own x."""
    assert imported_modules("from .env import EnvState\n", "bb_jax.game", package=True) == [
        "bb_jax.game.env", "bb_jax.game.env.EnvState"]
    assert imported_modules("from .env import EnvState\n", "bb_jax.game.rules") == [
        "bb_jax.game.env", "bb_jax.game.env.EnvState"]
    assert upward_imports("from ..tuning import tuner\n", "bb_jax.game", package=True) == [
        "bb_jax.tuning", "bb_jax.tuning.tuner"]


@pytest.mark.parametrize(
    "module,package,source,expected",
    [
        ("bb_jax.tuning.tuner", False, "from bb_jax.testing.synthetic_sweeps import sweep\n",
         ["bb_jax.testing.synthetic_sweeps", "bb_jax.testing.synthetic_sweeps.sweep"]),
        ("bb_jax.game.env", False, "import bb_jax.testing.reference_game\n",
         ["bb_jax.testing.reference_game"]),
        ("bb_jax.cli.tune", False, "from bb_jax import testing\n", ["bb_jax.testing"]),
        ("bb_jax.tuning.pruners", False, "from ..testing import synthetic_sweeps\n",
         ["bb_jax.testing", "bb_jax.testing.synthetic_sweeps"]),
        ("bb_jax", True, "from .testing import reference_game\n",
         ["bb_jax.testing", "bb_jax.testing.reference_game"]),
        ("bb_jax.stats", False, "import bb_jax.testing\n", ["bb_jax.testing"]),
        ("bb_jax", True, "_LAZY = {'ReferenceEnv': 'bb_jax.testing.reference_game'}\n",
         ["bb_jax.testing.reference_game"]),
        # a docstring that names the module is no import
        ("bb_jax.tuning.pruners", False, '"""Judged by `bb_jax.testing.synthetic_sweeps`."""\n',
         []),
        ("bb_jax.tuning.tuner", False, "from bb_jax.agent import ppo\nimport bb_jax.stats\n", []),
        # bb_jax.testing itself may import the library and its own modules
        ("bb_jax.testing.synthetic_sweeps", False,
         "from bb_jax.testing import reference_game\nfrom bb_jax.tuning.tuner import make_pruner\n"
         "from bb_jax.game import rules\n", []),
    ],
)
def test_checker_flags_imports_of_testing(module, package, source, expected):
    """The checker itself: it must see the library reaching into bb_jax.testing in each spelling."""
    assert imports_of_testing(source, module, package) == expected


def test_testing_may_import_the_library():
    """bb_jax.testing is outside the layers: no import of it counts as upward."""
    source = "from bb_jax.cli import tune\nfrom bb_jax.game import rules\nimport bb_jax.stats\n"
    assert upward_imports(source, "bb_jax.testing.reference_game") == []


def sideways_imports(source: str, module: str) -> list[str]:
    """Imports of `module` that reach a module of its own layer listed at or after it in
    `ORDER` (its own layer's later modules), wherever the import statement sits."""
    parts = module.split(".")
    if len(parts) != 3 or parts[1] not in ORDER:
        return []
    order = ORDER[parts[1]]
    bad = []
    for target in imported_modules(source, module):
        tparts = target.split(".")
        if len(tparts) >= 3 and tparts[1] == parts[1] and tparts[2] in order \
                and order.index(tparts[2]) >= order.index(parts[2]) and tparts[2] != parts[2]:
            bad.append(target)
    return bad


def test_every_module_has_its_place_in_its_layer():
    for name, _ in package_modules():
        parts = name.split(".")
        if len(parts) == 3 and parts[1] in ORDER:
            assert parts[2] in ORDER[parts[1]], f"{name}: add it to ORDER in its layer's flow"


@pytest.mark.parametrize("name,path", package_modules(), ids=lambda v: str(v))
def test_module_imports_only_earlier_modules_of_its_layer(name, path):
    assert sideways_imports(path.read_text(), name) == []


@pytest.mark.parametrize(
    "module,source,expected",
    [
        ("bb_jax.agent.config", "from bb_jax.agent.ppo import PPO\n",
         ["bb_jax.agent.ppo", "bb_jax.agent.ppo.PPO"]),
        ("bb_jax.runtime.population", "def f():\n    from bb_jax.runtime import cohorts\n",
         ["bb_jax.runtime.cohorts"]),
        ("bb_jax.cli.tune_pbt", "from bb_jax.cli.tune import parse_fixed\n",
         ["bb_jax.cli.tune", "bb_jax.cli.tune.parse_fixed"]),
        ("bb_jax.runtime.cohorts", "from bb_jax.runtime.driver import Driver\n", []),
        ("bb_jax.agent.ppo", "from bb_jax.game.env import make_env\n", []),
    ],
)
def test_checker_flags_imports_of_later_modules(module, source, expected):
    """The checker itself: a module reaching a later one of its own layer, even lazily."""
    assert sideways_imports(source, module) == expected


def below_env_api(source: str, module: str) -> list[str]:
    """What a module of agent/ or runtime/ reaches below the game's public env API: a game
    module outside `PUBLIC_GAME` (imported anywhere, lazily too), or a draw-level name of the
    env (`BELOW_ENV_API`, imported or read as an attribute, as ".name")."""
    if layer_of(module) not in ("agent", "runtime"):
        return []
    bad = [target for target in imported_modules(source, module)
           if layer_of(target) == "game" and len(target.split(".")) > 2
           and target.split(".")[2] not in PUBLIC_GAME]
    bad += [target for target in imported_modules(source, module)
            if target.split(".")[-1] in BELOW_ENV_API]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in BELOW_ENV_API:
            bad.append(f".{node.attr}")
    return bad


@pytest.mark.parametrize("name,path", package_modules(), ids=lambda v: str(v))
def test_learner_sees_only_the_public_env_api(name, path):
    assert below_env_api(path.read_text(), name) == []


@pytest.mark.parametrize(
    "module,source,expected",
    [
        ("bb_jax.agent.ppo", "from bb_jax.game import rules\n", ["bb_jax.game.rules"]),
        ("bb_jax.runtime.evaluation", "from bb_jax.game.opponents import default_opponents\n",
         ["bb_jax.game.opponents", "bb_jax.game.opponents.default_opponents"]),
        ("bb_jax.runtime.baselines", "def f():\n    import bb_jax.game.rules\n",
         ["bb_jax.game.rules"]),
        ("bb_jax.agent.ppo", "from ..game.opponents import act\n",
         ["bb_jax.game.opponents", "bb_jax.game.opponents.act"]),
        ("bb_jax.agent.policies", "step = jax.vmap(env.step_with_draws)\n",
         [".step_with_draws"]),
        ("bb_jax.runtime.ensemble", "blocks = env.sample_draws(key, (8,))\n",
         [".sample_draws"]),
        ("bb_jax.agent.ppo", "from bb_jax.game.env import ViewDraws\n",
         ["bb_jax.game.env.ViewDraws"]),
        # the public API, and modules outside agent/ and runtime/, pass
        ("bb_jax.agent.ppo", "from bb_jax.game.env import make_env\n"
         "from bb_jax.game.wrappers import learner_view\n"
         "from bb_jax.game.scenarios import Scenario\nobs, s = env.step(k, s, a, p)\n", []),
        ("bb_jax.runtime.baselines", "from bb_jax.game.heuristics import mixed_act\n", []),
        ("bb_jax.game.wrappers", "step = env.step_with_draws\n", []),
        ("bb_jax.tuning.space", "from bb_jax.game.rules import NUM_HOUSES\n", []),
        ("bb_jax.envs", "from bb_jax.game.rules import NUM_HOUSES\n", []),
    ],
)
def test_checker_flags_reaching_below_the_env_api(module, source, expected):
    """The checker itself: agent/ and runtime/ reaching below the env's public API, in each
    spelling, and nothing else."""
    assert below_env_api(source, module) == expected
