"""`results_main`: scripts/results_report.py (docs/RESULTS.md, docs/results.png and
docs/results.json: the RESULTS experiment, or a re-render of a saved results JSON)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from bb_jax import devices, interrupts
from bb_jax.cli.common import enable_compile_cache
from bb_jax.game.scenarios import list_scenarios
from bb_jax.results.experiment import ReportSettings, run_report
from bb_jax.results.outputs import write_outputs

DESCRIPTION = ("docs/RESULTS.md: PPO on every scenario next to the uniform-random policy and the "
               "heuristic")  # the old module docstring's first line, kept for --help
QUICK_DIR = Path("/tmp") / "bb_jax_results_quick"  # --quick writes here unless told otherwise


def _results_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="results_report.py", description=DESCRIPTION)
    ap.add_argument("--num-steps", type=int, default=ReportSettings.num_steps)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(ReportSettings.seeds))
    ap.add_argument("--scenario", default="all",
                    help="a scenario, a comma-separated list, or 'all' (default: all)")
    ap.add_argument("--hidden-size", type=int, default=ReportSettings.hidden_size)
    ap.add_argument("--eval-episodes", type=int, default=ReportSettings.eval_episodes)
    ap.add_argument("--baseline-episodes", type=int, default=ReportSettings.baseline_episodes)
    ap.add_argument("--out", type=Path, default=Path("docs") / "RESULTS.md")
    ap.add_argument("--plot", type=Path, default=Path("docs") / "results.png")
    ap.add_argument("--json", type=Path, default=Path("docs") / "results.json")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="re-render the Markdown and the plot from a saved results JSON "
                         "(no training)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 2 seeds, 8192 steps, few episodes (writes under /tmp "
                         "unless --out/--plot/--json are given)")
    return ap


def _scenario_names(ap: argparse.ArgumentParser, text: str) -> list[str]:
    """--scenario: one name, a comma-separated list or 'all'; a usage error names the valid."""
    names = list_scenarios() if text == "all" else [
        name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in list_scenarios()]
    if unknown or not names:
        ap.error(f"--scenario {text!r}: valid scenarios are "
                 f"{', '.join(list_scenarios())} (comma-separated) or all")
    return names


def _settings(ap: argparse.ArgumentParser, args: argparse.Namespace,
              names: list[str]) -> ReportSettings:
    """The run's settings from the flags; --quick shrinks them and moves the outputs that were
    left at their defaults to QUICK_DIR (in `args`)."""
    settings = ReportSettings(
        num_steps=args.num_steps, seeds=tuple(args.seeds),
        scenarios=tuple(dict.fromkeys(names)), hidden_size=args.hidden_size,
        eval_episodes=args.eval_episodes, baseline_episodes=args.baseline_episodes,
    )
    if args.quick:
        settings = dataclasses.replace(settings, num_steps=8192, seeds=(0, 1), hidden_size=32,
                                       eval_episodes=50, baseline_episodes=200)
        default = ap.parse_args([])
        for name, file in (("out", "RESULTS.md"), ("plot", "results.png"),
                           ("json", "results.json")):
            if getattr(args, name) == getattr(default, name):
                setattr(args, name, QUICK_DIR / file)
    return settings


def results_main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 2 bad input, 130 / 143 interrupted by Ctrl-C / SIGTERM (one line;
    the outputs as they were)."""
    ap = _results_parser()
    args = ap.parse_args(argv)
    if args.from_json is not None:
        results = json.loads(args.from_json.read_text())
        write_outputs(results, args.out, args.plot, args.json)
        print(f"wrote {args.out}, {args.plot}, {args.json} from {args.from_json}")
        return 0
    names = _scenario_names(ap, args.scenario)
    devices.use_host_devices()  # the population shards over every core
    enable_compile_cache()
    settings = _settings(ap, args, names)
    try:
        with interrupts.raising():  # a compile or one long program would hold Ctrl-C back
            results = interrupts.in_background(
                lambda: run_report(settings, progress=lambda line: print(line, flush=True)))
    except KeyboardInterrupt as err:
        print(f"interrupted: nothing written ({args.out}, {args.plot} and {args.json} are "
              "as they were)", file=sys.stderr)
        return interrupts.exit_code(err)
    write_outputs(results, args.out, args.plot, args.json)
    print(f"wrote {args.out}, {args.plot}, {args.json} in {results['wall_s']:.0f} s")
    return 0
