"""What a study gives its user: the results JSON, Optuna's HTML plots, the recommendation
(validated against the control, `bb_jax.tuning.validation`) and the train_simple.py command
that reproduces it. Files are replaced atomically; several workers may write them at once."""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from bb_jax.tuning.space import CONTROL, TRAIN_FLAGS
from bb_jax.tuning.storage import redact
from bb_jax.tuning.warm_start import copied


def python_command() -> list[str]:
    """The launcher to print, as argv words: `uv run python` under `uv run` (uv sets `UV` to
    its own path in what it starts), else this interpreter, relative, when it lives under the
    working folder (e.g. the quick start's .venv/bin/python), else plain `python`."""
    if os.environ.get("UV"):
        return ["uv", "run", "python"]
    relative = os.path.relpath(sys.executable)
    return ["python" if relative.startswith("..") else relative]


def train_command(study: optuna.Study, params: dict, seeds: list[int], num_steps: int,
                  run_name: str, eval_episodes: int = 200) -> str:
    """A ready-to-run scripts/train_simple.py command: every tuned hyperparameter of `params`,
    the study's scenarios and opponents, these seeds and steps."""
    attrs = study.user_attrs
    scenarios = attrs.get("scenarios", ["default"])
    args = [*python_command(), "scripts/train_simple.py", "--scenario", ",".join(scenarios),
            "--num-opponents", str(attrs.get("num_opponents", 2)),
            "--num-steps", str(num_steps)]
    if attrs.get("env", "bucket_brigade") != "bucket_brigade":  # the game: printed as before
        args += ["--env", attrs["env"]]
    for name, flag in TRAIN_FLAGS.items():
        value = params[name]
        args += [flag, repr(float(value)) if isinstance(value, float) else str(value)]
    args += ["--seeds", *map(str, seeds), "--eval-episodes", str(eval_episodes),
             "--run-name", run_name]
    return shlex.join(args)


def recommendation(study: optuna.Study, outcome: dict | None = None) -> dict | None:
    """What the study recommends: the best validated configuration that beat the control
    (`outcome`, by default the `validation` user attribute), or a statement that none did;
    None before validation."""
    outcome = outcome if outcome is not None else study.user_attrs.get("validation")
    if not outcome:
        return None
    rows = {str(r["trial"]): r for r in outcome["rows"]}
    chosen = outcome.get("recommended")
    row = rows[str(chosen if chosen is not None else CONTROL)]
    beat = chosen is not None
    cheapest = outcome.get("cheapest")
    return {
        "cheapest": None if cheapest is None else _cheapest(study, rows[str(cheapest)], outcome),
        **_recommended(study, row, beat, outcome)}


def _run_steps(row: dict, outcome: dict) -> int:
    """Env steps per run of a validated row: its own under a FLOP budget."""
    return int(row.get("num_steps") or outcome["num_steps"])


def _cheapest(study: optuna.Study, row: dict, outcome: dict) -> dict:
    """The cheapest validated candidate (training FLOPs per run) not worse than the best one
    by more than the equivalence margin."""
    return {"trial": row["trial"], "params": row["params"], "validated_mean": row["mean"],
            "validated_ci95": row["ci95"], "vs_best": row.get("vs_best"),
            "equivalence_margin": outcome.get("equivalence_margin"),
            "margin_rule": outcome.get("margin_rule"),
            "train_seconds_per_run": row.get("train_seconds_per_run"),
            "tflops_per_run": row.get("tflops_per_run"),
            "train_command": train_command(study, row["params"], outcome["seeds"],
                                           _run_steps(row, outcome),
                                           f"{study.study_name}_cheapest",
                                           outcome.get("eval_episodes", 200))}


def _recommended(study: optuna.Study, row: dict, beat: bool, outcome: dict) -> dict:
    family = outcome.get("correction", {}).get("family", len(outcome["rows"]) - 1)
    return {
        "beats_control": beat,
        "trial": row["trial"],
        "params": row["params"],
        "validated_mean": row["mean"],
        "validated_ci95": row["ci95"],
        "tuning_value": row.get("tuning_value"),
        "vs_control": row.get("vs_control"),
        "correction": outcome.get("correction"),
        "seeds": outcome["seeds"],
        "train_seconds_per_run": row.get("train_seconds_per_run"),
        "tflops_per_run": row.get("tflops_per_run"),
        "train_command": train_command(
            study, row["params"], outcome["seeds"], _run_steps(row, outcome),
            f"{study.study_name}_{'recommended' if beat else 'control'}",
            outcome.get("eval_episodes", 200)),
        "summary": (f"trial {row['trial']} beat the default configuration on "
                    f"{len(outcome['seeds'])} fresh seeds" if beat else
                    "no configuration beat the default configuration on fresh seeds "
                    f"({len(outcome['seeds'])} seeds, paired t-tests, Holm-adjusted over "
                    f"{family} candidate(s)): keep the defaults"),
    }


def trial_record(trial: FrozenTrial) -> dict:
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.values[0] if trial.values else None,
        "values": trial.values,
        "params": trial.params,
        "intermediate_values": {str(k): v for k, v in sorted(trial.intermediate_values.items())},
        "user_attrs": trial.user_attrs,
        "duration_s": trial.duration.total_seconds() if trial.duration else None,
    }


def results_dict(study: optuna.Study, storage_url: str | None) -> dict:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and not copied(t)]
    best = max(complete, key=lambda t: t.values[0]) if complete else None
    attrs = study.user_attrs
    multi = len(study.directions) > 1
    return {
        "study_name": study.study_name,
        "scenario": attrs.get("scenario"),
        "scenarios": attrs.get("scenarios"),
        "num_opponents": attrs.get("num_opponents"),
        "num_steps": attrs.get("num_steps"),
        "objective": attrs.get("objective"),
        "storage": redact(storage_url) if storage_url else "in-memory",
        "seeds_per_trial": attrs.get("seeds_per_trial", 1),
        "tuning_seeds": attrs.get("tuning_seeds"),
        "fixed": attrs.get("fixed", {}),
        "space": attrs.get("space", "full"),
        "objectives": attrs.get("objectives", ["return"]),
        "flop_budget": attrs.get("flop_budget"),
        "time_budget": attrs.get("time_budget"),
        "calibration": attrs.get("calibration"),
        "device": attrs.get("device"),
        "pareto_front": [t.number for t in study.best_trials] if multi else None,
        "time": attrs.get("time"),  # where the tuning command's wall time went
        "compiled_programs": sum(v.get("compiled_programs", 0) for k, v in attrs.items()
                                 if k.startswith("programs_worker")),
        "compile_seconds": sum(v.get("compile_seconds", 0.0) for k, v in attrs.items()
                               if k.startswith("programs_worker")),
        # the highest tuning value: selected as the best of many noisy values, so biased
        # upwards; "recommendation" holds the figure validated on fresh seeds
        "best_value": best.values[0] if best else None,
        "best_params": best.params if best else None,
        "best_trial": best.number if best else None,
        "validation": attrs.get("validation"),
        "recommendation": recommendation(study),
        # --strategy pbt: its settings and exploit steps, and its schedule's validation
        "strategy": attrs.get("strategy", "tpe"),
        "auto_rule": attrs.get("auto_rule"),  # --strategy auto: the sampler it picked, and why
        "pbt": attrs.get("pbt"),
        "pbt_validation": attrs.get("pbt_validation"),
        "n_trials": len(trials),
        "n_complete": len(complete),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "n_failed": sum(t.state == TrialState.FAIL for t in trials),
        "trials": [trial_record(t) for t in trials],
    }


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader (or another worker writing the same
    outputs at the same moment) never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


PLOTLY_JS = "plotly.min.js"


def _write_plot(make_figure, path: Path) -> None:
    """One HTML page per plot; they share the plotly.min.js written beside them, so they
    open without a network."""
    try:
        html = make_figure().to_html(include_plotlyjs=PLOTLY_JS)
    except (ValueError, RuntimeError, ZeroDivisionError) as err:
        html = f"<html><body><p>plot not available: {err}</p></body></html>\n"
    _write_atomic(path, html)


def write_outputs(study: optuna.Study, storage_url: str | None, output_dir: Path) -> dict:
    """Write {study}_results.json and four HTML plots; returns their paths. Each file is
    replaced atomically; several workers of one study may write them concurrently."""
    from optuna import visualization
    from plotly.offline import get_plotlyjs

    output_dir.mkdir(parents=True, exist_ok=True)
    name = study.study_name
    paths = {
        "results": output_dir / f"{name}_results.json",
        "history": output_dir / f"{name}_history.html",
        "importances": output_dir / f"{name}_importances.html",
        "parallel": output_dir / f"{name}_parallel.html",
        "intermediate": output_dir / f"{name}_intermediate.html",
        "cost": output_dir / f"{name}_cost.html",
    }
    multi = len(study.directions) > 1
    if multi:
        paths["pareto"] = output_dir / f"{name}_pareto.html"
    _write_atomic(paths["results"], json.dumps(finite_json(results_dict(study, storage_url)),
                                               indent=2, default=_json_default, allow_nan=False))
    if not (output_dir / PLOTLY_JS).exists():
        _write_atomic(output_dir / PLOTLY_JS, get_plotlyjs())
    # a multi-objective study's plots show its first objective, the return
    target = {"target": (lambda t: t.values[0]), "target_name": "return"} if multi else {}
    _write_plot(lambda: visualization.plot_optimization_history(study, **target),
                paths["history"])
    # the importance evaluator ranks parameters for a low custom target (and warns that it
    # does whenever a target is given): negate the return
    low = {"target": (lambda t: -t.values[0]), "target_name": "return"} if multi else {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
        _write_plot(lambda: visualization.plot_param_importances(study, **low),
                    paths["importances"])
    _write_plot(lambda: visualization.plot_parallel_coordinate(study, **target),
                paths["parallel"])
    _write_plot(lambda: visualization.plot_intermediate_values(study), paths["intermediate"])
    _write_plot(lambda: cost_figure(study), paths["cost"])
    if multi:
        _write_plot(lambda: visualization.plot_pareto_front(
            study, target_names=["return", "training TFLOP per run"]), paths["pareto"])
    return paths


def cost_figure(study: optuna.Study):
    """Every complete trial's tuning return against its training seconds per run (compiles
    excluded), hover: trial number, TFLOPs and env steps per run."""
    import plotly.graph_objects as go

    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.user_attrs.get("train_seconds")]
    runs = [max(1, len(t.user_attrs.get("per_seed_values", [0]))
                * len(study.user_attrs.get("scenarios", [0]))) for t in trials]
    figure = go.Figure(go.Scatter(
        x=[t.user_attrs["train_seconds"] / n for t, n in zip(trials, runs)],
        y=[t.values[0] for t in trials], mode="markers",
        text=[f"trial {t.number}: {t.user_attrs.get('tflops_per_run', 0):.3g} TFLOP, "
              f"{t.user_attrs.get('env_steps', 0) // n:,} env steps per run"
              for t, n in zip(trials, runs)]))
    figure.update_layout(title="Return against cost", xaxis_title="training seconds per run",
                         yaxis_title="tuning return")
    return figure


def finite_json(x):
    """Non-finite floats become None (JSON has no NaN or infinity)."""
    if isinstance(x, dict):
        return {k: finite_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_json(v) for v in x]
    if isinstance(x, (float, np.floating)) and not math.isfinite(x):
        return None
    return x


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
