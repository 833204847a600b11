"""One study through the tuner's own command line (`bb_jax.cli.tune_main`: tuning, then the
validation against the defaults on fresh seeds), summarised for the tuner benchmarks
(`tuner_benchmark.py`, `transfer.py`): the best tuning value beside validated figures, since
the best of many noisy values is biased upwards."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import optuna

from bb_jax.cli import tune_main
from bb_jax.stats import paired_difference

CONTROL = "control"
# tune_main's exit codes after Ctrl-C / SIGTERM
INTERRUPTED = (130, 143)


def budget_args(args) -> list[str]:
    """The run length of every study: --flop-budget F, or --num-steps N."""
    if args.flop_budget is not None:
        return ["--flop-budget", f"{args.flop_budget:g}"]
    return ["--num-steps", str(args.steps)]


def common_args(args) -> list[str]:
    """Flags every study of a benchmark shares (so all validate on the same fresh seeds and
    are paired through the control's per-seed values)."""
    out = [*budget_args(args), "--seed", str(args.seed), "--eval-interval",
           str(args.eval_interval), "--validate-top-k", str(args.top_k), "--validate-seeds",
           str(args.validate_seeds), "--eval-episodes", str(args.eval_episodes)]
    return out + (["--space", "small", "--fix", "hidden_size=64"] if args.quick else [])


def run_study(name: str, argv: list[str], workdir: Path, log) -> dict:
    """Tune and validate one study named `name` in workdir's SQLite storage; its summary
    (`summarise`) with the wall time. A failure is a row with "error"."""
    storage = f"sqlite:///{workdir / 'studies.db'}"
    full = [*argv, "--study-name", name, "--storage", storage, "--output-dir", str(workdir)]
    started = time.perf_counter()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = tune_main(full)
    wall = time.perf_counter() - started
    if code in INTERRUPTED:  # the tuner stored what it finished; the benchmark stops too
        raise KeyboardInterrupt(f"{name}: interrupted")
    path = workdir / f"{name}_results.json"
    if code != 0 or not path.exists():
        tail = printed.getvalue().strip().splitlines()[-1:] or ["no output"]
        log(f"{name}: FAILED (exit {code}: {tail[0]})")
        return {"study": name, "argv": argv, "error": tail[0], "wall_s": wall}
    row = {"study": name, "argv": argv, "wall_s": wall,
           **summarise(json.loads(path.read_text()))}
    log(line(row))
    return row


def summarise(results: dict) -> dict:
    """A study's results JSON -> its trial counts, best tuning value, the control's validated
    figure, the best validated candidate and the recommendation (each vs the control)."""
    validation = results.get("validation") or {"rows": [], "seeds": []}
    rows = {str(r["trial"]): r for r in validation["rows"]}
    control = rows.get(CONTROL)
    others = [r for key, r in rows.items() if key != CONTROL]
    best_validated = max(others, key=lambda r: r["mean"], default=None)
    rec = results.get("recommendation")
    return {
        "n_trials": results["n_trials"], "n_complete": results["n_complete"],
        "n_pruned": results["n_pruned"],
        "auto_rule": results.get("auto_rule"),
        "best_tuning_value": results["best_value"], "best_trial": results["best_trial"],
        "validation_seeds": validation.get("seeds", []),
        "control": _figure(control),
        "best_validated": _figure(best_validated),
        "recommended": bool(rec and rec["beats_control"]),
        "recommendation": None if not (rec and rec["beats_control"]) else {
            "trial": rec["trial"], "params": rec["params"],
            "validated_mean": rec["validated_mean"], "validated_ci95": rec["validated_ci95"],
            "vs_control": rec["vs_control"]},
    }


def _figure(row: dict | None) -> dict | None:
    """A validated row: its trial, tuning value, validated mean +/- CI, per-seed values and
    the paired difference to the control."""
    if row is None:
        return None
    return {"trial": row["trial"], "tuning_value": row.get("tuning_value"),
            "mean": row["mean"], "ci95": row["ci95"], "per_seed": row["per_seed"],
            "vs_control": row.get("vs_control")}


def paired_pick(a: dict, b: dict) -> dict | None:
    """Study a's best validated candidate minus study b's, paired on their shared validation
    seeds (None when either has none or the seeds differ)."""
    if a.get("error") or b.get("error") or a["validation_seeds"] != b["validation_seeds"]:
        return None
    pa, pb = a["best_validated"], b["best_validated"]
    if pa is None or pb is None:
        return None
    diff = paired_difference(pa["per_seed"], pb["per_seed"])
    return {"mean": float(diff.mean), "ci95": float(diff.ci95)}


def line(row: dict) -> str:
    """One printed line: counts, best tuning value, validated best and control, the verdict."""
    best, control = row["best_validated"], row["control"]
    text = (f"{row['study']:<40} {row['n_complete']:>3} complete {row['n_pruned']:>3} pruned | "
            f"best tuning {row['best_tuning_value'] or float('nan'):8.1f}")
    if best and control:
        diff = {"mean": float("nan"), "ci95": float("nan"), **(best["vs_control"] or {})}
        text += (f" | best validated {best['mean']:7.1f} +/- {best['ci95']:.1f} vs defaults "
                 f"{control['mean']:7.1f} +/- {control['ci95']:.1f} "
                 f"({diff['mean']:+.1f} +/- {diff['ci95']:.1f})")
    verdict = "recommended" if row["recommended"] else "keep the defaults"
    return f"{text} | {verdict} | {row['wall_s']:.0f} s"


def run_benchmark(name: str, args, key: str, items: list, rows_of) -> int:
    """Run `rows_of(item, args, workdir, log)` for each item and write the results JSON after
    each one (partial results kept), as `{"benchmark": name, ..., key: [rows]}`."""
    from bb_jax.machine import machine_info
    from bb_jax.tuning.outputs import finite_json

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = {"benchmark": name, "quick": args.quick, "machine": machine_info(),
               "settings": {k: v for k, v in vars(args).items() if k not in ("out", "workdir")},
               key: []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for item in items:
            results[key].append(rows_of(item, args, workdir,
                                        lambda text: print(text, flush=True)))
            out.write_text(json.dumps(finite_json(results), indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def add_study_args(ap, default_out: Path) -> None:
    """The flags both tuning benchmarks share: reports, validation, seed and where to write."""
    ap.add_argument("--eval-interval", type=int, default=20_000)
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--validate-seeds", type=int, default=8)
    ap.add_argument("--eval-episodes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--workdir", default=None, help="studies and their outputs (default: temp)")
    ap.add_argument("--out", default=str(default_out))
