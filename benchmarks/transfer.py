"""Transfer between scenarios: does a study of scenario A make tuning scenario B cheaper?

Per pair A:B, through the tuner's own command line (`bb_jax.cli.tune_main`; every study
validated against the defaults on the same fresh seeds, paired), at one budget:
  - A tuned cold (on --seed + 1: its start-up draws are not B cold's);
  - B cold (the default strategy), B warm from A (--warm-start-from A: A's best validated
    configurations and best trials first, A's finished trials given to the sampler) at the
    same budget, and B warm at half the trials;
  - one study over A and B together (--scenario A,B: each trial's value is the mean over both;
    its validation too, so its figures are not paired with B's).
A pair "transfers" where B warm's best validated pick is not significantly below B cold's
(paired on the validation seeds, 95% CI) at the same budget and B warm recommends a
configuration wherever B cold does; the half-budget row says whether it also saves compute.
Rows give the best tuning value beside validated figures.

    python benchmarks/transfer.py                        # chain_reaction:deceptive_calm, 16 x 100k
    python benchmarks/transfer.py --quick --out /tmp/x.json   # smoke (test suite)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tuner_runs import add_study_args, common_args, paired_pick, run_benchmark, run_study

from bb_jax.cli.common import UsageError, parse_scenarios

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "transfer_cpu.json"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 pair, 6 trials x 8,192 steps, 2 validation seeds")
    ap.add_argument("--pairs", default="chain_reaction:deceptive_calm",
                    help="comma-separated A:B scenario pairs")
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100_000, help="env steps per training run")
    ap.add_argument("--flop-budget", type=float, default=None,
                    help="training FLOPs per run instead of --steps")
    add_study_args(ap, DEFAULT_OUT)
    return ap


def check_args(args) -> list[tuple[str, str]]:
    """The A:B pairs (raises UsageError naming the bad one); --quick's sizes applied."""
    if args.quick:
        args.pairs, args.trials, args.steps, args.eval_interval = (
            "chain_reaction:deceptive_calm", 6, 8192, 4096)
        args.top_k, args.validate_seeds, args.eval_episodes, args.flop_budget = 1, 2, 16, None
    pairs = []
    for item in args.pairs.split(","):
        a, sep, b = item.partition(":")
        if not sep or a == b:
            raise UsageError(f"--pairs {item!r}: give A:B with two different scenarios")
        pairs.append(tuple(parse_scenarios(f"{a},{b}")))
    if args.trials < 2:
        raise UsageError(f"--trials must be >= 2 (B warm runs half), got {args.trials}")
    return pairs


def pair_rows(a: str, b: str, args, workdir: Path, log) -> dict:
    """The five studies of one pair and the verdicts."""
    shared = common_args(args)
    n, half = str(args.trials), str(args.trials // 2)
    source = f"{a}_source"
    # A on the next sampler seed: on --seed's own, A's random start-up draws would be B cold's
    # too, and a warm start would re-try what B cold tries anyway (B's studies keep --seed, so
    # they validate on the same fresh seeds, paired)
    rows = {"a": run_study(source, ["--scenario", a, *shared, "--n-trials", n, "--seed",
                                    str(args.seed + 1)], workdir, log)}
    rows["b_cold"] = run_study(f"{b}_cold", ["--scenario", b, *shared, "--n-trials", n],
                               workdir, log)
    for key, trials in (("b_warm", n), ("b_warm_half", half)):
        rows[key] = run_study(f"{b}_{key}_from_{a}",
                              ["--scenario", b, *shared, "--n-trials", trials,
                               "--warm-start-from", source], workdir, log)
    rows["joint"] = run_study(f"{a}+{b}_joint", ["--scenario", f"{a},{b}", *shared,
                                                 "--n-trials", n], workdir, log)
    warm, half_warm = (paired_pick(rows[k], rows["b_cold"]) for k in ("b_warm", "b_warm_half"))
    return {"a": a, "b": b, "studies": rows, "b_warm_minus_cold": warm,
            "b_warm_half_minus_cold": half_warm,
            "transfers": None if warm is None else warm["mean"] + warm["ci95"] >= 0
            and rows["b_warm"]["recommended"] >= rows["b_cold"]["recommended"]}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        pairs = check_args(args)
    except UsageError as err:
        print(f"transfer.py: error: {err}", file=sys.stderr)
        return 2
    return run_benchmark("transfer", args, "pairs", pairs,
                         lambda pair, *rest: pair_rows(*pair, *rest))


if __name__ == "__main__":
    sys.exit(main())
