"""`validate_main`: scripts/validate_best.py and bb-validate (a study's top-k configurations and
the default configuration retrained on fresh seeds, compared pair-wise)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bb_jax import devices
from bb_jax.cli.common import (
    OneLineParser,
    UsageError,
    check_writable_dir,
    enable_compile_cache,
    fail,
)


def print_validation(outcome: dict) -> None:
    """One line per validated configuration: tuning value, validated mean +/- 95% CI, the
    paired difference to the control and failed seeds."""
    for row in outcome["rows"]:
        name = "control (defaults)" if row["trial"] == "control" else f"trial {row['trial']}"
        line = f"  {name:>18}: validated {row['mean']:.2f} +/- {row['ci95']:.2f}"
        if row.get("tuning_value") is not None:
            line += f" (tuning value {row['tuning_value']:.2f})"
        if "vs_control" in row:
            d = row["vs_control"]
            line += f", vs control {d['mean']:+.2f} +/- {d['ci95']:.2f}"
            line += " *" if d["significant"] else ""
        if row["n_failed"]:
            line += f", {row['n_failed']} failed seed(s)"
        print(line)


def _validate_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="validate_best.py",
        description="Retrain the top-k configurations of a study and the default "
                    "configuration (control) on fresh seeds in one population call per shape; "
                    "print each one's mean +/- 95%% CI, the paired difference to the control "
                    "and the recommendation.",
    )
    p.add_argument("--study-name", required=True)
    p.add_argument("--storage", required=True, help="the study's storage URL")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--seeds", type=int, default=8, help="fresh seeds per configuration (>= 2)")
    p.add_argument("--seed", type=int, default=None,
                   help="first seed (default: fresh seeds derived from the study's seed)")
    p.add_argument("--num-steps", type=int, default=None, help="default: the study's")
    p.add_argument("--eval-episodes", type=int, default=200)
    p.add_argument("--results-json", default=None)
    return p


def validate_main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 2 bad input (nothing written)."""
    devices.use_host_devices()
    args = _validate_parser().parse_args(argv)
    prog = "validate_best.py"
    from bb_jax.tuning.storage import StorageError, make_storage, redact

    try:
        if args.top_k < 1:
            raise UsageError(f"--top-k must be >= 1, got {args.top_k}")
        if args.seeds < 2:
            raise UsageError(f"--seeds must be >= 2 (a confidence interval needs two), got "
                             f"{args.seeds}")
        if args.num_steps is not None and args.num_steps < 1:
            raise UsageError(f"--num-steps must be > 0, got {args.num_steps}")
        if args.eval_episodes < 1:
            raise UsageError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
        if args.results_json:
            check_writable_dir(Path(args.results_json).resolve().parent, keep=False)
        import optuna

        storage = make_storage(args.storage)
        try:
            study = optuna.load_study(study_name=args.study_name, storage=storage)
        except KeyError:
            names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
            raise UsageError(f"no study {args.study_name!r} in this storage; studies: "
                             f"{', '.join(names) or 'none'}") from None
        from bb_jax.tuning.outputs import finite_json, recommendation
        from bb_jax.tuning.validation import validate_study

        enable_compile_cache()
        outcome = validate_study(study, args.top_k, args.seeds, args.num_steps,
                                 args.eval_episodes, args.seed,
                                 log=lambda line: print(line, flush=True))
    except (UsageError, StorageError, ValueError) as err:
        return fail(prog, redact(str(err)))
    print(f"validation of {args.study_name} on {len(outcome['seeds'])} fresh seeds (mean "
          "return on fresh episodes, 95% CI; * = beats the control, paired):")
    print_validation(outcome)
    rec = recommendation(study)
    print(f"recommendation: {rec['summary']}")
    print(f"  {rec['train_command']}")
    if args.results_json:
        Path(args.results_json).write_text(json.dumps(finite_json(
            {"study_name": args.study_name, **outcome, "recommendation": rec}), indent=2))
    return 0
