"""`validate_main`: scripts/validate_best.py and bb-validate (a study's top-k configurations and
the default configuration retrained on fresh seeds, compared pair-wise)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bb_jax import devices
from bb_jax.cli.common import (
    STORAGE_ENV,
    OneLineParser,
    UsageError,
    check_writable_dir,
    enable_compile_cache,
    fail,
)
from bb_jax.cli.ensemble import add_ensemble_args, check_ensemble, keeping, run_ensemble


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
                    "print each one's mean +/- 95% CI, the paired difference to the control "
                    "and the recommendation.",
    )
    p.add_argument("--study-name", required=True)
    p.add_argument("--storage", default=os.environ.get(STORAGE_ENV) or None,
                   help=f"the study's storage URL (default: ${STORAGE_ENV}; the variable keeps "
                        "a password off the command line)")
    p.add_argument("--top-k", type=int, default=3,
                   help="best complete trials to validate (default: %(default)s)")
    p.add_argument("--n-seeds", type=int, default=8,
                   help="fresh seeds per configuration, >= 2 (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="the fresh seeds themselves, as in train_simple.py (default: "
                        "--n-seeds seeds derived from the study's seed)")
    p.add_argument("--num-steps", type=int, default=None,
                   help="env steps per run (default: the study's length or FLOP budget)")
    p.add_argument("--eval-episodes", type=int, default=200,
                   help="fresh episodes per seed (default: %(default)s)")
    p.add_argument("--results-json", default=None, help="also write the outcome here")
    add_ensemble_args(p)
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
        if args.storage is None:
            raise UsageError(f"give the study's storage: --storage URL or ${STORAGE_ENV}")
        n_seeds = args.n_seeds if args.seeds is None else len(args.seeds)
        if n_seeds < 2:
            flag = "--n-seeds" if args.seeds is None else "--seeds"
            raise UsageError(f"{flag}: a confidence interval needs at least 2 seeds, got "
                             f"{n_seeds}")
        if args.seeds is not None and args.seeds != list(range(args.seeds[0],
                                                              args.seeds[0] + n_seeds)):
            raise UsageError("--seeds must be consecutive (e.g. 900 901 902): validation "
                             "seeds are a first seed and a count")
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
        from bb_jax.tuning.validation import top_candidates, validate_study

        check_ensemble(args.ensemble, len(top_candidates(study, args.top_k)) - 1)
        enable_compile_cache()
        with keeping(args.ensemble) as kept:
            outcome = validate_study(study, args.top_k, n_seeds, args.num_steps,
                                     args.eval_episodes, args.seeds[0] if args.seeds else None,
                                     log=lambda line: print(line, flush=True))
    except (UsageError, StorageError, ValueError) as err:
        return fail(prog, redact(str(err)))
    print(f"validation of {args.study_name} on {len(outcome['seeds'])} fresh seeds (mean "
          "return on fresh episodes, 95% CI; * = beats the control, paired):")
    print_validation(outcome)
    rec = recommendation(study)
    print(f"recommendation: {rec['summary']}")
    print(f"  {rec['train_command']}")
    if args.ensemble:
        outcome["ensemble"] = run_ensemble(study, outcome, kept, args.ensemble,
                                           args.ensemble_rule)
    if args.results_json:
        Path(args.results_json).write_text(json.dumps(finite_json(
            {"study_name": args.study_name, **outcome, "recommendation": rec}), indent=2))
    return 0
