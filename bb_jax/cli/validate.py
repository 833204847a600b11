"""`validate_main`: scripts/validate_best.py and bb-validate (a study's top-k configurations and
the default configuration retrained on fresh seeds, compared pair-wise)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from bb_jax import devices, interrupts, wall_time
from bb_jax.agent.config import MAX_TOTAL_STEPS
from bb_jax.cli.common import (
    STORAGE_ENV,
    OneLineParser,
    UsageError,
    check_not_inputs,
    check_study_name,
    check_writable_dir,
    enable_compile_cache,
    fail,
)
from bb_jax.cli.ensemble import (
    add_ensemble_args,
    check_ensemble,
    ensemble_lines,
    keeping,
    run_ensemble,
)


def print_validation(outcome: dict) -> None:
    """A legend, then one line per validated configuration: validated mean +/- 95% CI, the
    tuning value, the paired difference to the control with its raw 95% CI, its Bonferroni
    simultaneous CI and Holm-adjusted p-value, and failed seeds."""
    family = outcome.get("correction", {}).get("family", len(outcome["rows"]) - 1)
    level = next((r["vs_control"].get("simultaneous_level") for r in outcome["rows"]
                  if "vs_control" in r), None)
    print(f"  mean return on fresh episodes +/- 95% CI; vs control: paired difference "
          f"+/- 95% CI [+/- {_percent(level)} simultaneous CI over {family} candidate(s), "
          "Bonferroni], Holm-adjusted p; * = beats the control (Holm p <= 0.05, gain > 0)")
    for row in outcome["rows"]:
        name = "control (defaults)" if row["trial"] == "control" else f"trial {row['trial']}"
        line = f"  {name:>18}: validated {row['mean']:.2f} +/- {row['ci95']:.2f}"
        if row.get("tuning_value") is not None:
            line += f" (tuning value {row['tuning_value']:.2f})"
        if "vs_control" in row:
            d = row["vs_control"]
            line += (f", vs control {d['mean']:+.2f} +/- {d['ci95']:.2f} "
                     f"[+/- {_number(d.get('ci_simultaneous'))}], "
                     f"Holm p {_number(d.get('p_holm'), '.3g')}")
            line += " *" if d.get("beats_control") else ""
        if row["n_failed"]:
            line += f", {row['n_failed']} failed seed(s)"
        print(line)


def adjusted_text(diff: dict) -> str:
    """How a recommended candidate's paired difference to the control was judged, e.g.
    "paired 95% CI; +/- 6.10 at 98.75% simultaneous, Bonferroni; Holm-adjusted p 0.012"."""
    if "p_holm" not in diff:  # validated before the multiplicity correction
        return "paired 95% CI, not adjusted for multiplicity"
    return (f"paired 95% CI; +/- {_number(diff['ci_simultaneous'])} at "
            f"{_percent(diff['simultaneous_level'])} simultaneous, Bonferroni; "
            f"Holm-adjusted p {_number(diff['p_holm'], '.3g')}")


def print_cheapest(cheap: dict | None) -> None:
    """The cheapest validated configuration within the equivalence margin of the best, with
    the rule that chose it and its command."""
    if cheap is None:
        return
    name = "the defaults" if cheap["trial"] == "control" else f"trial {cheap['trial']}"
    vs = cheap.get("vs_best") or {}
    against = ("the best itself" if vs.get("best") == cheap["trial"] else
               f"{_number(vs.get('mean'), '+.2f')} +/- {_number(vs.get('ci95'))} vs the best")
    margin = _number(cheap.get("equivalence_margin"))
    print(f"cheapest within {margin} of the best validated (training TFLOP per run; margin: "
          f"{cheap.get('margin_rule')}; paired 95% CI against the best above -{margin}): "
          f"{name}, {cheap['validated_mean']:.2f} +/- {cheap['validated_ci95']:.2f}, "
          f"{against}, {cheap['tflops_per_run']:.3g} TFLOP per run; train it with:")
    print(f"  {cheap['train_command']}")


def add_margin_arg(p: argparse.ArgumentParser) -> None:
    """--equivalence-margin, shared by the tuner and validate_best.py."""
    p.add_argument("--equivalence-margin", type=float, default=None,
                   help="return units: the cheapest configuration named is one whose paired "
                        "95%% CI against the best validated one lies above minus this "
                        "(default: half the control's across-seed SD)")


def check_margin(margin: float | None) -> None:
    if margin is not None and not margin >= 0:
        raise UsageError(f"--equivalence-margin must be >= 0 (return units), got {margin}")


def _percent(level: float | None) -> str:
    return "?" if level is None else f"{100 * level:.4g}%"


def _number(value: float | None, spec: str = ".2f") -> str:
    """A figure of the JSON (None where it was not finite) as text."""
    return "n/a" if value is None or value != value else format(value, spec)


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
    add_margin_arg(p)
    p.add_argument("--results-json", default=None, help="also write the outcome here")
    add_ensemble_args(p)
    return p


def validate_main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 1 the figures were printed (and written) but not stored in the
    study, 2 bad input or a storage that cannot be read or written (nothing trained)."""
    wall_time.start()
    devices.use_host_devices()
    args = _validate_parser().parse_args(argv)
    prog = "validate_best.py"
    from optuna.exceptions import StorageInternalError

    from bb_jax.tuning.storage import (
        StorageError,
        check_writable,
        describe_error,
        holds_nothing,
        make_storage,
        redact,
        storage_file,
        validate_url,
    )

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
        if args.num_steps is not None and not 0 < args.num_steps <= MAX_TOTAL_STEPS:
            raise UsageError(f"--num-steps must be in 1..{MAX_TOTAL_STEPS}, got "
                             f"{args.num_steps}")
        if args.eval_episodes < 1:
            raise UsageError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
        check_margin(args.equivalence_margin)
        check_study_name(args.study_name)
        validate_url(args.storage)
        check_not_inputs([("--results-json", args.results_json)],
                         [("--storage", storage_file(args.storage))])
        if holds_nothing(args.storage):  # opening a missing file would create an empty one
            raise UsageError(f"--storage: no study database at {storage_file(args.storage)} "
                             "(nothing created)")
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
        if "pbt_plan" in study.user_attrs:
            raise UsageError(f"study {args.study_name!r} is a PBT run: its best schedule is "
                             f"validated by tune_hyperparameters.py --strategy pbt itself "
                             f"(without --no-validate), not by retraining static trials")
        check_writable(storage, args.storage)  # before training, not when storing
        from bb_jax.tuning.validation import top_candidates, validate_study

        if "validation" in study.user_attrs:
            print(f"{args.study_name} already holds a validation (seeds "
                  f"{study.user_attrs['validation'].get('seeds')}): this one replaces it",
                  flush=True)
        if args.ensemble is not None:
            check_ensemble(args.ensemble, len(top_candidates(study, args.top_k)) - 1)
        enable_compile_cache()
        with interrupts.raising(), keeping(args.ensemble) as kept:
            outcome = validate_study(study, args.top_k, n_seeds, args.num_steps,
                                     args.eval_episodes, args.seeds[0] if args.seeds else None,
                                     log=lambda line: print(line, flush=True),
                                     margin=args.equivalence_margin, store=False)
            if args.ensemble:
                outcome["ensemble"] = run_ensemble(study, outcome, kept, args.ensemble,
                                                   args.ensemble_rule)
    except (UsageError, StorageError, ValueError) as err:
        return fail(prog, redact(str(err)))
    except StorageInternalError as err:  # a damaged or full database met while reading
        return fail(prog, f"cannot use storage {redact(args.storage)}: {describe_error(err)}")
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the outcome is stored whole or not
        print("interrupted: no validation stored (the study keeps any earlier one)",
              file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(err, interrupts.Terminated)
                      else signal.SIGINT)
    report(study, args.study_name, outcome, args.results_json)
    return store(study, prog, outcome)


def report(study, name: str, outcome: dict, results_json: str | None) -> None:
    """Print the outcome and write it to `results_json`, before it is stored in the study (a
    failed store then loses no figures)."""
    from bb_jax.tuning.outputs import finite_json, recommendation

    rec = recommendation(study, finite_json(outcome))
    print(f"validation of {name} on {len(outcome['seeds'])} fresh seeds:")
    print_validation(outcome)
    print(f"recommendation: {rec['summary']}")
    print(f"  {rec['train_command']}")
    print_cheapest(rec["cheapest"])
    if "ensemble" in outcome:
        for line in ensemble_lines(outcome["ensemble"]):
            print(line)
    print(wall_time.current().line())
    if results_json:
        Path(results_json).write_text(json.dumps(finite_json(
            {"study_name": name, **outcome, "recommendation": rec,
             "time": wall_time.current().split()}), indent=2))
    sys.stdout.flush()


def store(study, prog: str, outcome: dict) -> int:
    """Store the outcome in the study: 0, or 1 with one line naming the cause."""
    from bb_jax.tuning.storage import describe_error
    from bb_jax.tuning.validation import store_validation

    try:
        with interrupts.deferred():  # stored whole or not at all
            store_validation(study, outcome)
    except Exception as err:  # the database's own error, whatever its driver
        print(f"{prog}: error: the validation above was not stored in study "
              f"{study.study_name!r}: {describe_error(err)}", file=sys.stderr)
        return 1
    return 0
