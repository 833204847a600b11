"""The search space and what a trial's parameters mean: the members it trains (seeds,
scenarios) and the seeds a study tunes and validates on.

A search space is data (`SearchSpace`): per parameter a range (low/high, log or linear), a
list of choices or a fixed value, optionally conditioned on parameters sampled before it or on
the study's scenarios (docs/HYPERPARAMETER_TUNING.md, "Search spaces as data"). The built-in
spaces "full" and "small" are files of this package (space_files/*.yaml); `--space FILE`
reads a user's. Every trial carries every parameter: one the space leaves out, or whose
condition fails, is held at its default value.

A study of `--seed` S tunes every trial on the seeds S*1000 + 0..K-1 (common random numbers:
differences between trials are paired) and validates on S*1000 + 500 + i, which no tuning seed
of that study meets.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
from pathlib import Path

import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from bb_jax.agent.config import DEFAULT_HYPERPARAMS, TUNABLE_FIELDS, PPOConfig
from bb_jax.game.scenarios import SCENARIO_FIELDS, get_scenario, list_scenarios
from bb_jax.runtime.members import MemberSpec

SPACE_DIR = Path(__file__).parent / "space_files"
SPACES = ("full", "small")  # the built-in spaces: SPACE_DIR/NAME.yaml
_SEARCHED = {f.name: f for f in TUNABLE_FIELDS if f.metadata["search"] is not None}
# the parameters a space may name, in the order the built-in spaces sample them (the order
# decides which of the sampler's random draws each parameter gets: the same --seed gives the
# same study)
SAMPLING_ORDER = ("hidden_size", "learning_rate", "batch_size", "num_epochs", "clip_epsilon",
                  "entropy_coef", "value_coef", "gamma", "gae_lambda")
# the network shapes: a space offers them as choices (each is a compiled program), from the
# full space's, whose largest sizes the memory checks and the run lengths rely on
SHAPES = ("hidden_size", "batch_size")
INTEGERS = ("hidden_size", "batch_size", "num_epochs")
# condition operators: `when: {num_epochs: {ge: 8}}`; a bare value is eq, a list is in
TESTS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
         "gt": operator.gt, "ge": operator.ge, "in": lambda value, choices: value in choices}
_RANGE_KEYS = ("low", "high", "log")


class SpaceError(ValueError):
    """A search-space file that cannot be used: the message names the key and the problem."""


def control_params() -> dict:
    """The default configuration (PPOConfig's shapes, DEFAULT_HYPERPARAMS) in the search
    space's parameter names: the control every recommendation must beat."""
    defaults = {"hidden_size": PPOConfig.hidden_size, "batch_size": PPOConfig.batch_size,
                **DEFAULT_HYPERPARAMS}
    return {name: defaults[name] for name in SAMPLING_ORDER}


def is_control(params: dict) -> bool:
    """Whether `params` are the control's configuration (a parameter left out holds its
    default): the incumbent trial of a study started from the defaults, which validation and
    a warm start would otherwise train a second time."""
    return all(math.isclose(float(params.get(name, value)), float(value), rel_tol=1e-9)
               for name, value in control_params().items())


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A resolved search space: `rules` maps each parameter, in sampling order, to its rule
    (JSON-able, what a study stores): {"choices": [...]}, {"low", "high", "log"} or
    {"value": v}, with an optional "when" (the parameter is searched only where it holds,
    else held at its default) and "cases" (a list of {"when", ...}: the first that holds
    overrides the rule's range or choices). Conditions name parameters sampled before."""

    label: str
    rules: dict

    @property
    def conditional(self) -> bool:
        return any("when" in rule or "cases" in rule for rule in self.rules.values())

    def distribution(self, name: str, params: dict):
        """The distribution of `name` for a trial whose earlier parameters are `params`."""
        rule = self.rules[name]
        if "when" in rule and not holds(rule["when"], params):
            return _held(name, rule)
        for case in rule.get("cases", ()):
            if holds(case["when"], params):
                return _distribution(name, _overridden(rule, case))
        return _distribution(name, rule)

    def suggest(self, trial) -> dict:
        """Sample every parameter of an Optuna trial in order (define-by-run: a condition
        sees the values sampled before it); returns the trial's parameters. On an
        unconditional space this samples exactly what `study.ask(distributions)` would."""
        params: dict = {}
        for name in self.rules:
            dist = self.distribution(name, params)
            if isinstance(dist, CategoricalDistribution):
                params[name] = trial.suggest_categorical(name, dist.choices)
            elif isinstance(dist, IntDistribution):
                params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
            else:
                params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        return params

    def envelope(self, name: str):
        """One distribution holding every value `name` may take in any trial (the union of
        its cases and of its default where a condition can fail): for checks and shapes."""
        rule = self.rules[name]
        parts = [_distribution(name, rule)]
        parts += [_distribution(name, _overridden(rule, c)) for c in rule.get("cases", ())]
        if "when" in rule:
            parts.append(_held(name, rule))
        if all(isinstance(d, CategoricalDistribution) for d in parts):
            values = [v for d in parts for v in d.choices]
            return CategoricalDistribution(sorted(set(values), key=values.index))
        low = min(min(_values(d)) for d in parts)
        high = max(max(_values(d)) for d in parts)
        if name in INTEGERS:
            return IntDistribution(int(low), int(high), log=_dist_log(parts))
        return FloatDistribution(low, high, log=_dist_log(parts))

    def distributions(self) -> dict:
        """{name: envelope}: the whole space as flat distributions (exact when it has no
        conditions)."""
        return {name: self.envelope(name) for name in self.rules}

    def walk(self, params: dict, fit: bool):
        """(params, problem): each parameter of `params` (missing ones: the defaults) in
        sampling order, checked against its distribution given the ones before it. fit: a
        value outside is moved to the nearest one inside, and problem is None; else the first
        value outside stops the walk with a problem naming it."""
        out = {}
        for name in self.rules:
            value = params.get(name, control_params()[name])
            dist = self.distribution(name, out)
            if not contains(dist, value):
                if not fit:
                    return out, f"{name}={value!r} is outside the search space ({describe(dist)})"
                value = nearest(dist, value)
            out[name] = value
        return out, None

    def problem(self, row: dict) -> str | None:
        """The first value of a (possibly partial) row of parameters that no trial of this
        space could take, or None: a value is checked given the row's earlier values, or
        against its envelope where a condition names a parameter the row leaves out."""
        for name in self.rules:
            if name not in row:
                continue
            rule = self.rules[name]
            named = {key for when in (rule.get("when", {}), *(c["when"] for c in
                                                              rule.get("cases", ())))
                     for key in when}
            dist = self.distribution(name, row) if named <= set(row) else self.envelope(name)
            if not contains(dist, row[name]):
                return f"{name}={row[name]!r} is outside the search space ({describe(dist)})"
        return None

    def fixed(self, values: dict) -> SearchSpace:
        """This space with each parameter of `values` held at its value (--fix)."""
        unknown = sorted(set(values) - set(self.rules))
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; valid: {', '.join(self.rules)}")
        for name, value in values.items():
            if not contains(self.envelope(name), value):
                here, full = describe(self.envelope(name)), describe(SEARCH_SPACE[name])
                hint = f"; --space full: {full}" if full != here else ""
                raise ValueError(f"{name}={value!r} is outside the {self.label} search space "
                                 f"({here}{hint})")
        rules = {name: {"value": values[name]} if name in values else rule
                 for name, rule in self.rules.items()}
        return SearchSpace(self.label, rules)


def _overridden(rule: dict, case: dict) -> dict:
    """A rule with a case's range or choices in place of its own."""
    override = {k: v for k, v in case.items() if k != "when"}
    if "choices" in override or "value" in override or "low" not in rule:
        return override  # another kind of rule: it replaces the rule whole
    return {**{k: rule[k] for k in _RANGE_KEYS if k in rule}, **override}


def _distribution(name: str, rule: dict):
    """The Optuna distribution of a parameter's rule (ignoring its conditions)."""
    if "value" in rule:
        return CategoricalDistribution([rule["value"]])
    if "choices" in rule:
        return CategoricalDistribution(list(rule["choices"]))
    if name in INTEGERS:
        return IntDistribution(int(rule["low"]), int(rule["high"]), log=rule.get("log", False))
    return FloatDistribution(rule["low"], rule["high"], log=rule.get("log", False))


def _held(name: str, rule: dict):
    """The default of `name` as a distribution of the rule's kind (Optuna keeps one kind per
    parameter in a study): where the rule's condition fails."""
    value = control_params()[name]
    if "low" not in rule:
        return CategoricalDistribution([value])
    kind = IntDistribution if name in INTEGERS else FloatDistribution
    return kind(value, value, log=rule.get("log", False))


def _values(dist) -> list:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high]


def _dist_log(parts) -> bool:
    return any(getattr(d, "log", False) for d in parts)


def holds(when: dict, params: dict) -> bool:
    """Whether every test of a condition {name: {op: operand}} holds for `params`."""
    return all(TESTS[op](params[name], operand)
               for name, tests in when.items() for op, operand in tests.items())


def nearest(dist, value):
    """The value of `dist` nearest to `value` (in log space where the values are positive)."""
    if isinstance(dist, CategoricalDistribution):
        numbers = [c for c in dist.choices if isinstance(c, (int, float))]
        if not numbers:
            return dist.choices[0]
        scale = math.log if value > 0 and min(numbers) > 0 else float
        return min(numbers, key=lambda c: abs(scale(c) - scale(value)))
    clipped = min(max(value, dist.low), dist.high)
    return int(round(clipped)) if isinstance(dist, IntDistribution) else float(clipped)


def load_space(source: str = "full", scenarios=None) -> SearchSpace:
    """The search space `source` ("full", "small" or a YAML/JSON file) resolved for the
    study's scenarios (a scenario condition holds when it holds for every one of them; a space
    with such conditions needs them). Raises SpaceError naming the key and the problem."""
    path = SPACE_DIR / f"{source}.yaml" if source in SPACES else Path(source)
    label = space_label(source)
    try:
        text = path.read_text()
    except OSError as err:
        raise SpaceError(f"cannot read {source}: {err.strerror or err}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise SpaceError(f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                         f"{str(err).splitlines()[0]}") from None
    if not isinstance(data, dict) or set(data) != {"parameters"}:
        raise SpaceError("the file must hold one mapping, 'parameters:', of parameter rules")
    names = data["parameters"]
    if not isinstance(names, dict) or not names:
        raise SpaceError("parameters: a mapping of parameter names to rules")
    rules = {}
    for name, rule in names.items():
        where = f"parameters.{name}"
        if name not in SAMPLING_ORDER:
            raise SpaceError(f"{where}: unknown parameter; valid: {', '.join(SAMPLING_ORDER)}")
        rule = _parse_rule(where, name, rule, list(rules))
        rules[name] = _resolve_scenarios(where, name, rule, scenarios)
    for name in SAMPLING_ORDER:  # the ones the file leaves out: held at their defaults
        rules.setdefault(name, {"value": control_params()[name]})
    return SearchSpace(label, rules)


def space_label(source: str) -> str:
    """A space's name: "full", "small", or a file's name (not its folder, so a study resumed
    from elsewhere keeps it)."""
    return source if source in SPACES else Path(source).name


def _parse_rule(where: str, name: str, rule, earlier: list[str]) -> dict:
    """A parameter's rule, checked and normalised (numbers as numbers, conditions as
    {name: {op: operand}})."""
    if not isinstance(rule, dict):
        rule = {"value": rule}
    out = _parse_kind(where, name, rule, required=True)
    if "when" in rule:
        out["when"] = _parse_when(f"{where}.when", rule["when"], earlier)
    if "cases" in rule:
        cases = rule["cases"]
        if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
            raise SpaceError(f"{where}.cases: a list of mappings, each with when:")
        out["cases"] = []
        for i, case in enumerate(cases):
            at = f"{where}.cases[{i}]"
            if "when" not in case:
                raise SpaceError(f"{at}: needs when:")
            parsed = _parse_kind(at, name, case, required=False)
            if ("low" in out) != ("choices" not in parsed and "value" not in parsed):
                raise SpaceError(f"{at}: a case keeps its rule's kind "
                                 f"({'a range' if 'low' in out else 'choices or a value'})")
            if parsed.get("log", out.get("log", False)) != out.get("log", False):
                raise SpaceError(f"{at}.log: a case keeps its rule's log scale")
            out["cases"].append({"when": _parse_when(f"{at}.when", case["when"], earlier),
                                 **parsed})
            _check_range(at, name, _overridden(out, out["cases"][-1]))
    return out


def _parse_kind(where: str, name: str, rule: dict, required: bool) -> dict:
    """The range, choices or value of a rule (or case), each checked."""
    unknown = sorted(set(rule) - {"choices", "value", "when", "cases", *_RANGE_KEYS})
    if unknown:
        raise SpaceError(f"{where}.{unknown[0]}: unknown key; valid: choices, low, high, log, "
                         "value, when, cases")
    kinds = [k for k in ("choices", "value") if k in rule] + (
        ["range"] if "low" in rule or "high" in rule else [])
    if len(kinds) > 1 or (required and not kinds):
        raise SpaceError(f"{where}: give one of a range (low, high), choices or a value")
    out: dict = {}
    if "value" in rule:
        out["value"] = _number(f"{where}.value", name, rule["value"])
    elif "choices" in rule:
        choices = rule["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}.choices: a non-empty list")
        out["choices"] = [_number(f"{where}.choices", name, c) for c in choices]
    else:
        for key in ("low", "high"):
            if key in rule:
                out[key] = _number(f"{where}.{key}", name, rule[key])
        if "log" in rule:
            if not isinstance(rule["log"], bool):
                raise SpaceError(f"{where}.log: true or false, got {rule['log']!r}")
            out["log"] = rule["log"]
    if required:
        _check_range(where, name, out)
    return out


def _check_range(where: str, name: str, rule: dict) -> None:
    """A complete rule's values: shapes among the full space's, ranges ordered and positive
    where log-scaled."""
    if name in SHAPES:
        allowed = _FULL_SHAPES[name]
        values = rule.get("choices", [rule.get("value")])
        if "low" in rule or any(v not in allowed for v in values):
            raise SpaceError(f"{where}: a network shape takes choices or a value among "
                             f"{', '.join(map(str, allowed))}")
        return
    if "low" in rule or "high" in rule:
        if "low" not in rule or "high" not in rule:
            raise SpaceError(f"{where}: a range needs low and high")
        if not rule["low"] < rule["high"]:
            raise SpaceError(f"{where}: low must be below high, got {rule['low']} .. "
                             f"{rule['high']}")
        if rule.get("log") and rule["low"] <= 0:
            raise SpaceError(f"{where}: a log range needs low > 0, got {rule['low']}")


def _number(where: str, name: str, value):
    """A number of parameter `name` (YAML reads 1e-5 as text: such text is taken too)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise SpaceError(f"{where}: a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpaceError(f"{where}: a number, got {value!r}")
    if name in INTEGERS:
        if not float(value).is_integer():
            raise SpaceError(f"{where}: {name} takes whole numbers, got {value!r}")
        return int(value)
    return float(value)


def _parse_when(where: str, when, earlier: list[str]) -> dict:
    """A condition: {name: test}, name a parameter sampled before, "scenario" or a scenario
    parameter (SCENARIO_FIELDS); a test is a value (eq), a list (in) or {op: operand}."""
    if not isinstance(when, dict) or not when:
        raise SpaceError(f"{where}: a mapping of names to tests, e.g. {{num_epochs: {{ge: 8}}}}")
    out = {}
    for key, test in when.items():
        if key not in (*earlier, "scenario", *SCENARIO_FIELDS):
            raise SpaceError(f"{where}.{key}: a condition names a parameter sampled before "
                             f"({', '.join(earlier) or 'none'}), scenario or one of "
                             f"{', '.join(SCENARIO_FIELDS)}")
        if not isinstance(test, dict):
            test = {"in": test} if isinstance(test, list) else {"eq": test}
        bad = sorted(set(test) - set(TESTS))
        if bad or not test:
            raise SpaceError(f"{where}.{key}: tests are {', '.join(TESTS)}")
        for op, operand in test.items():
            if (op == "in") != isinstance(operand, list):
                raise SpaceError(f"{where}.{key}.{op}: "
                                 f"{'a list' if op == 'in' else 'one value, not a list'}")
            for value in operand if op == "in" else [operand]:
                _check_operand(f"{where}.{key}", key, value)
        out[key] = test
    return out


def _check_operand(where: str, key: str, value) -> None:
    """A condition's operand: a scenario's name for "scenario", else a number."""
    if key == "scenario":
        if value not in list_scenarios():
            raise SpaceError(f"{where}: unknown scenario {value!r}; valid: "
                             f"{', '.join(list_scenarios())}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpaceError(f"{where}: compares numbers, got {value!r}")


def _resolve_scenarios(where: str, name: str, rule: dict, scenarios) -> dict:
    """The rule with its scenario tests decided for `scenarios` (each must pass for all):
    a failing "when" holds the parameter at its default, a failing case is dropped, passing
    tests are removed (what remains tests parameters only)."""
    def decide(when: dict, at: str) -> tuple[bool, dict]:
        kept = {k: t for k, t in when.items() if k != "scenario" and k not in SCENARIO_FIELDS}
        if len(kept) == len(when):
            return True, kept
        if not scenarios:
            raise SpaceError(f"{at}: a scenario condition needs the study's scenarios")
        values = [{"scenario": s, **{f: float(getattr(get_scenario(s), f))
                                     for f in SCENARIO_FIELDS}} for s in scenarios]
        tests = {k: t for k, t in when.items() if k not in kept}
        return all(holds(tests, v) for v in values), kept

    out = {k: v for k, v in rule.items() if k not in ("when", "cases")}
    if "when" in rule:
        passes, kept = decide(rule["when"], f"{where}.when")
        if not passes:
            return {"value": control_params()[name]}
        if kept:
            out["when"] = kept
    cases = []
    for i, case in enumerate(rule.get("cases", ())):
        passes, kept = decide(case["when"], f"{where}.cases[{i}].when")
        if passes and not kept:  # holds in every trial: it is the rule
            out = {**_overridden(out, case), **({"when": out["when"]} if "when" in out else {})}
            break
        if passes:
            cases.append({**case, "when": kept})
    if cases:
        out["cases"] = cases
    return out


# the shapes any space may offer (PPOConfig's declared choices), and the built-in spaces as
# flat distributions
_FULL_SHAPES = {name: list(_SEARCHED[name].metadata["search"].choices) for name in SHAPES}
SEARCH_SPACES = {space: load_space(space).distributions() for space in SPACES}
SEARCH_SPACE = SEARCH_SPACES["full"]
LARGEST_BATCH = max(SEARCH_SPACE["batch_size"].choices)
CONTROL = "control"  # the default configuration's name beside trial numbers
FRESH_SEED_OFFSET = 500  # validation seeds start at seed * 1000 + this
MAX_SEEDS_PER_TRIAL = FRESH_SEED_OFFSET  # tuning seeds stay below the validation seeds
# train_simple.py flag for each tuned parameter
TRAIN_FLAGS = {name: _SEARCHED[name].metadata["flag"] for name in SAMPLING_ORDER}


def contains(distribution, value) -> bool:
    """Whether `value` is one of `distribution`'s values (a choice, or inside its range; an
    integer distribution takes integers only, and no distribution takes a bool)."""
    if isinstance(value, bool):
        return False
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(distribution, IntDistribution) and not float(value).is_integer():
        return False
    return isinstance(value, (int, float)) and distribution.low <= value <= distribution.high


def default_space(backend: str) -> str:
    """`--space auto` on a JAX backend: "small" (hidden 64 or 128) on a CPU, "full" on an
    accelerator. On a CPU a member's cost grows with its hidden size (hidden 512 trains
    several times slower than 128), a step-budget study drifts to the networks that learn
    most per step, which are the slow ones, and larger networks lose at equal wall time
    (docs/PERFORMANCE.md, "Search space per backend"; docs/PPO.md, "Defaults per second").
    On an accelerator a network of 512 costs little more than one of 128."""
    return "small" if backend == "cpu" else "full"


def search_space(fixed: dict | None = None, space: str = "full") -> dict:
    """The built-in search space `space` ("full" or "small") as flat distributions, with each
    parameter of `fixed` held at its value (a one-choice distribution: every trial still
    carries all parameters, and a study records one space). Fixing the network shape makes
    every trial one compiled program."""
    if space not in SPACES:
        raise ValueError(f"unknown search space {space!r}; valid: {', '.join(SPACES)}")
    return load_space(space).fixed(fixed or {}).distributions()


def takes_integers(name: str) -> bool:
    """Whether parameter `name` is an integer (a shape or a count)."""
    return name in INTEGERS


def describe(distribution) -> str:
    """The values of a distribution, for error messages."""
    if isinstance(distribution, CategoricalDistribution):
        return "one of " + ", ".join(map(str, distribution.choices))
    return f"{distribution.low} .. {distribution.high}"


def member_spec(member_id: int, params: dict, scenario: str, seed: int) -> MemberSpec:
    """The training run of a trial's parameters (static shape + traced hyperparameters)."""
    return MemberSpec(
        member_id=member_id,
        hidden_size=int(params["hidden_size"]),
        batch_size=int(params["batch_size"]),
        hyperparams={k: params.get(k, DEFAULT_HYPERPARAMS[k]) for k in DEFAULT_HYPERPARAMS},
        scenario=scenario,
        seed=seed,
    )


def tuning_seeds(seed: int, k: int) -> list[int]:
    """The K training seeds every trial of a study shares: seed * 1000 + 0..K-1."""
    if not 1 <= k <= MAX_SEEDS_PER_TRIAL:
        raise ValueError(f"seeds per trial must be in 1..{MAX_SEEDS_PER_TRIAL}, got {k}")
    return [seed * 1000 + j for j in range(k)]


def validation_seeds(seed: int, n: int, first: int | None = None) -> list[int]:
    """n fresh seeds: from `first` when given, else seed * 1000 + 500 + 0..n-1, where no
    tuning seed of a study with this --seed lies."""
    start = seed * 1000 + FRESH_SEED_OFFSET if first is None else first
    return [start + i for i in range(n)]
