"""`evaluate_main`: scripts/evaluate.py and bb-evaluate (a saved policy's return against chosen
opponents, beside every heuristic and the random policy in the learner's seat)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bb_jax import interrupts, wall_time
from bb_jax.cli.common import (
    OneLineParser,
    UsageError,
    check_not_inputs,
    check_scenario,
    check_writable_dir,
    enable_compile_cache,
    fail,
)
from bb_jax.cli.ensemble import add_ensemble_report, add_evaluate_ensemble_args
from bb_jax.game.opponents import OPPONENT_KINDS

PROG = "evaluate.py"


def _evaluate_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description="Evaluate a saved run's policy on fresh episodes "
                      "against chosen opponents, beside each heuristic in the learner's seat.")
    p.add_argument("run_dir", help="a folder train_simple.py saved a finished run in")
    p.add_argument("--scenario", default=None,
                   help="the scenario to play (default: the run's first)")
    p.add_argument("--opponents", default=None, metavar="KIND[,KIND...]",
                   help=f"the opponents, as many as the run trained with; kinds: "
                        f"{', '.join(OPPONENT_KINDS)} (default: the run's)")
    p.add_argument("--episodes", type=int, default=1000, help="fresh episodes per policy")
    p.add_argument("--seed", type=int, default=0, help="seeds the evaluation episodes")
    p.add_argument("--greedy", action="store_true",
                   help="the policy plays its most likely action instead of sampling")
    p.add_argument("--results-json", default=None, help="also write the figures here")
    p.add_argument("--replay", default=None, metavar="FILE.html",
                   help="also write a page that replays episode 0 of the first seed night by "
                        "night (self-contained, opens offline)")
    add_evaluate_ensemble_args(p)
    return p


def evaluate_main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 2 bad input (one line naming the valid choices), 130 / 143
    interrupted by Ctrl-C / SIGTERM (one line, nothing written)."""
    wall_time.start()
    args = _evaluate_parser().parse_args(argv)
    try:
        with interrupts.raising():
            run, scenario, kinds = _checked(args)
            print(f"evaluating {args.run_dir} on {scenario} ({args.episodes} episodes); "
                  "Ctrl-C stops it", file=sys.stderr, flush=True)
            # a compile or one long program would hold Ctrl-C back in the main thread
            report, episode = interrupts.in_background(
                lambda: _evaluate(args, run, scenario, kinds))
    except (UsageError, ValueError) as err:
        return fail(PROG, str(err))
    except KeyboardInterrupt as err:
        print("interrupted: nothing written", file=sys.stderr)
        return interrupts.exit_code(err)
    if episode is not None:
        _write_replay(args, report, episode)
    for line in report["lines"]:
        print(line)
    print(wall_time.current().line())
    if args.results_json:
        with open(args.results_json, "w") as f:
            json.dump({**{k: v for k, v in report.items() if k != "lines"},
                       "time": wall_time.current().split()}, f, indent=2)
    return 0


def _checked(args) -> tuple:
    """(the saved run, the scenario, the opponent kinds or None) from checked flags and a
    finite saved run; UsageError (one line) otherwise. Nothing written."""
    from bb_jax.runtime.saved_runs import check_finite, load_run, params_file, saved_files

    if args.episodes < 2:
        raise UsageError(f"--episodes must be >= 2, got {args.episodes}")
    check_not_inputs([("--results-json", args.results_json), ("--replay", args.replay)],
                     [(f"the run {args.run_dir}", path) for path in saved_files(args.run_dir)])
    for output in (args.replay, args.results_json):
        if output:
            check_writable_dir(Path(output).resolve().parent)
    enable_compile_cache()
    run = load_run(args.run_dir)
    scenarios = list(dict.fromkeys(name for _, name in run.params))
    for (seed, name), params in run.params.items():
        check_finite(params, f"{args.run_dir}'s {params_file(seed, name, scenarios)}")
    scenario = check_scenario(args.scenario) if args.scenario else run.config.scenario
    kinds = None
    if args.opponents is not None:
        kinds = tuple(k.strip() for k in args.opponents.split(","))
        unknown = [k for k in kinds if k not in OPPONENT_KINDS]
        if unknown:
            raise UsageError(f"unknown opponent kind {unknown[0]!r}; valid kinds: "
                             f"{', '.join(OPPONENT_KINDS)}")
        if len(kinds) != run.config.num_opponents:
            raise UsageError(f"--opponents needs {run.config.num_opponents} kinds (the run's "
                             f"network sees that many), got {len(kinds)}")
    return run, scenario, kinds


def _evaluate(args, run, scenario: str, kinds) -> tuple[dict, dict | None]:
    """(the report of `evaluate_run`, with the ensemble's when asked; the replayed episode or
    None): computed only, nothing written (it runs in the background, see `evaluate_main`)."""
    from bb_jax.runtime.evaluation import evaluate_run

    report = evaluate_run(run, scenario, kinds, args.episodes, args.seed, args.greedy)
    if args.ensemble_with:
        report = add_ensemble_report(report, run, args, scenario, kinds)
    if not args.replay:
        return report, None
    import jax

    from bb_jax.runtime.evaluation import record_episode

    return report, record_episode(run, scenario, kinds, args.episodes,
                                  jax.random.PRNGKey(args.seed), args.greedy)


def _write_replay(args, report: dict, episode: dict) -> None:
    """The replay page of `episode` at --replay, named in the report and its lines."""
    from bb_jax.cli.replay_page import write_replay

    write_replay(Path(args.replay), episode, f"{report['scenario']} against "
                 f"{', '.join(report['opponents'])}")
    report["replay"] = {"path": args.replay, "seed": episode["seed"],
                        "return": episode["return"]}
    report["lines"].append(f"replay of episode 0 of seed {episode['seed']} (return "
                           f"{episode['return']:.1f}): {args.replay}")
