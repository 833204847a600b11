"""Command lines: `train_main` (scripts/train_simple.py, bb-train) and `tune_main`
(scripts/tune_hyperparameters.py, bb-tune). Usage errors print one line and exit with 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bb_jax.opponents import OPPONENT_KINDS
from bb_jax.ppo import DEFAULT_HYPERPARAMS
from bb_jax.scenarios import list_scenarios

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit code 2."""


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def check_scenario(name: str) -> str:
    if name not in list_scenarios():
        raise UsageError(f"unknown scenario {name!r}; valid scenarios: {', '.join(list_scenarios())}")
    return name


def check_writable_dir(path: Path) -> Path:
    """Create `path` if needed and make sure files can be written there."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".bb_jax_write_probe"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"output folder {path} is not writable: {err.strerror or err}")
    return path


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train_simple.py",
        description="Train PPO on one Bucket Brigade scenario (several seeds in one vmapped call).",
    )
    p.add_argument("--scenario", default="default")
    p.add_argument("--num-opponents", type=int, default=2)
    p.add_argument("--opponents", nargs="+", choices=OPPONENT_KINDS, default=None,
                   help="opponent kinds (default: GAME_SPEC.md's list)")
    p.add_argument("--num-steps", type=int, default=500_000, help="env steps per seed")
    p.add_argument("--batch-size", type=int, default=2048, help="env steps per update")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--lr", type=float, default=DEFAULT_HYPERPARAMS["learning_rate"])
    p.add_argument("--num-epochs", type=int, default=DEFAULT_HYPERPARAMS["num_epochs"])
    p.add_argument("--clip-epsilon", type=float, default=DEFAULT_HYPERPARAMS["clip_epsilon"])
    p.add_argument("--entropy-coef", type=float, default=DEFAULT_HYPERPARAMS["entropy_coef"])
    p.add_argument("--value-coef", type=float, default=DEFAULT_HYPERPARAMS["value_coef"])
    p.add_argument("--gamma", type=float, default=DEFAULT_HYPERPARAMS["gamma"])
    p.add_argument("--gae-lambda", type=float, default=DEFAULT_HYPERPARAMS["gae_lambda"])
    p.add_argument("--max-grad-norm", type=float, default=DEFAULT_HYPERPARAMS["max_grad_norm"])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="train all these seeds in one vmapped call (overrides --seed)")
    p.add_argument("--eval-episodes", type=int, default=200)
    p.add_argument("--chunk-updates", type=int, default=10, help="updates between progress lines")
    p.add_argument("--run-name", default=None)
    p.add_argument("--save-path", default=None, help="folder for the run (default runs/RUN_NAME)")
    p.add_argument("--results-json", default=None)
    p.add_argument("--list-scenarios", action="store_true")
    return p


def train_main(argv: list[str] | None = None) -> int:
    args = _train_parser().parse_args(argv)
    if args.list_scenarios:
        print("\n".join(list_scenarios()))
        return 0
    try:
        return _train(args)
    except (UsageError, ValueError) as err:
        return _fail("train_simple.py", str(err))


def _train(args) -> int:
    from bb_jax.ppo import PPOConfig
    from bb_jax.runs import save_run, train_seeds

    check_scenario(args.scenario)
    if args.num_steps <= 0:
        raise UsageError(f"--num-steps must be > 0, got {args.num_steps}")
    if not 1 <= args.num_opponents <= 9:
        raise UsageError(f"--num-opponents must be in 1..9, got {args.num_opponents}")
    seeds = args.seeds if args.seeds else [args.seed]
    run_name = args.run_name or f"ppo_{args.scenario}_h{args.hidden_size}_s{seeds[0]}"
    save_dir = check_writable_dir(Path(args.save_path or Path("runs") / run_name))
    if args.results_json:
        check_writable_dir(Path(args.results_json).resolve().parent)
    config = PPOConfig(
        scenario=args.scenario, num_opponents=args.num_opponents,
        opponents=tuple(args.opponents) if args.opponents else None,
        hidden_size=args.hidden_size, batch_size=args.batch_size, num_envs=args.num_envs,
        total_steps=args.num_steps,
    )
    hyperparams = {
        "learning_rate": args.lr, "clip_epsilon": args.clip_epsilon,
        "entropy_coef": args.entropy_coef, "value_coef": args.value_coef, "gamma": args.gamma,
        "gae_lambda": args.gae_lambda, "max_grad_norm": args.max_grad_norm,
        "num_epochs": args.num_epochs,
    }
    if not 1 <= args.num_epochs <= config.max_epochs:
        raise UsageError(f"--num-epochs must be in 1..{config.max_epochs}, got {args.num_epochs}")
    print(f"training {run_name}: scenario={args.scenario} seeds={seeds} "
          f"steps/seed={config.num_updates * config.batch_size:,}", flush=True)
    run = train_seeds(config, hyperparams, seeds, args.chunk_updates, args.eval_episodes,
                      progress=lambda line: print(line, flush=True))
    paths = save_run(run, save_dir, run_name)
    summary = {"run_name": run_name, **run.summary(), "hyperparameters": run.hyperparams,
               "save_path": str(save_dir)}
    fr = summary["final_return"]
    print(f"final return (mean of last 100 episodes): {fr['mean']:.2f} +/- {fr['ci95']:.2f} "
          f"(95% CI over {len(seeds)} seeds)" if len(seeds) > 1 else
          f"final return (mean of last 100 episodes): {fr['mean']:.2f}")
    print(f"saved to {save_dir} ({', '.join(p.name for p in paths.values())})")
    if args.results_json:
        Path(args.results_json).write_text(json.dumps(summary, indent=2))
        print(f"results: {args.results_json}")
    return 0
