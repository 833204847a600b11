"""`train_main`: scripts/train_simple.py and bb-train (PPO on one scenario, several seeds as one
population, saved runs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bb_jax import devices
from bb_jax.cli.common import (
    OneLineParser,
    UsageError,
    check_writable_dir,
    fail,
    parse_scenarios,
)
from bb_jax.game.opponents import OPPONENT_KINDS
from bb_jax.game.scenarios import list_scenarios
from bb_jax.train.config import ADV_NORMS, CRITICS, HYPERPARAM_NAMES, TUNABLE_FIELDS, PPOConfig


def _train_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="train_simple.py",
        description="Train PPO on Bucket Brigade scenarios (seeds x scenarios in one vmapped "
                    "call).",
    )
    p.add_argument("--scenario", default="default",
                   help="a scenario, a comma-separated list, or 'all': every seed trains on "
                        "each; the final return is their mean (the tuner's objective)")
    p.add_argument("--num-opponents", type=int, default=2,
                   help="heuristic opponents beside the learner, 1..9")
    p.add_argument("--opponents", nargs="+", choices=OPPONENT_KINDS, default=None,
                   help="opponent kinds (default: docs/GAME_RULES.md's list)")
    p.add_argument("--num-steps", type=int, default=500_000, help="env steps per seed")
    p.add_argument("--time-input", action=argparse.BooleanOptionalAction,
                   default=PPOConfig.time_input,
                   help="give the network the episode's progress (step / max steps; default: "
                        "%(default)s)")
    p.add_argument("--critic", choices=CRITICS, default=PPOConfig.critic,
                   help="value head on the policy's torso or on its own (default: %(default)s)")
    p.add_argument("--adv-norm", choices=ADV_NORMS, default=PPOConfig.adv_norm,
                   help="normalise advantages per batch or per minibatch (default: %(default)s)")
    p.add_argument("--init-params", default=None,
                   help="start every seed from these saved parameters (a params_seed*.msgpack "
                        "of a run with the same network)")
    p.add_argument("--num-envs", type=int, default=None,
                   help="environments per seed (default: 16 on a CPU, batch size / 16 on a "
                        "GPU/TPU)")
    for f in TUNABLE_FIELDS:  # the network shape and the traced hyperparameters
        p.add_argument(f.metadata["flag"], dest=f.name, type=type(f.default), default=f.default,
                       help=f"{f.metadata['help']} (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="the run's seed")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="train all these seeds in one vmapped call (overrides --seed)")
    p.add_argument("--eval-episodes", type=int, default=200,
                   help="fresh episodes per seed evaluated after training")
    p.add_argument("--chunk-updates", type=int, default=10, help="updates between progress lines")
    p.add_argument("--run-name", default=None,
                   help="the run's name (default: ppo_SCENARIO_hHIDDEN_sSEED)")
    p.add_argument("--save-path", default=None, help="folder for the run (default: runs/RUN_NAME)")
    p.add_argument("--results-json", default=None, help="also write the summary here")
    p.add_argument("--list-scenarios", action="store_true", help="print the scenarios and stop")
    return p


def train_main(argv: list[str] | None = None) -> int:
    devices.use_host_devices()
    args = _train_parser().parse_args(argv)
    if args.list_scenarios:
        print("\n".join(list_scenarios()))
        return 0
    try:
        return _train(args)
    except (UsageError, ValueError) as err:
        return fail("train_simple.py", str(err))


def _train(args) -> int:
    from bb_jax.train.runs import load_params, save_run, train_seeds

    scenarios = parse_scenarios(args.scenario)
    if args.num_steps <= 0:
        raise UsageError(f"--num-steps must be > 0, got {args.num_steps}")
    if not 1 <= args.num_opponents <= 9:
        raise UsageError(f"--num-opponents must be in 1..9, got {args.num_opponents}")
    config = PPOConfig(
        scenario=scenarios[0], num_opponents=args.num_opponents,
        opponents=tuple(args.opponents) if args.opponents else None,
        hidden_size=args.hidden_size, batch_size=args.batch_size, num_envs=args.num_envs,
        total_steps=args.num_steps, time_input=args.time_input, critic=args.critic,
        adv_norm=args.adv_norm,
    )
    # before anything is written: a checkpoint of another network stops the run here
    init_params = load_params(Path(args.init_params), config) if args.init_params else None
    seeds = args.seeds if args.seeds else [args.seed]
    label = "+".join(scenarios) if args.scenario != "all" else "all"
    run_name = args.run_name or f"ppo_{label}_h{args.hidden_size}_s{seeds[0]}"
    save_dir = check_writable_dir(Path(args.save_path or Path("runs") / run_name))
    if args.results_json:
        check_writable_dir(Path(args.results_json).resolve().parent)
    hyperparams = {name: getattr(args, name) for name in HYPERPARAM_NAMES}
    if not 1 <= args.num_epochs <= config.max_epochs:
        raise UsageError(f"--num-epochs must be in 1..{config.max_epochs}, got {args.num_epochs}")
    print(f"training {run_name}: scenario={','.join(scenarios)} seeds={seeds} "
          f"steps/seed={config.num_updates * config.batch_size:,}", flush=True)
    run = train_seeds(config, hyperparams, seeds, args.chunk_updates, args.eval_episodes,
                      progress=lambda line: print(line, flush=True), scenarios=list(scenarios),
                      init_params=init_params)
    paths = save_run(run, save_dir, run_name)
    summary = {"run_name": run_name, **run.summary(), "hyperparameters": run.hyperparams,
               "save_path": str(save_dir)}
    what = "final return (mean of last 100 episodes"
    if len(scenarios) > 1:
        for name, figure in summary["per_scenario"].items():
            print(f"{what}) on {name}: {figure['mean']:.2f}")
        what += f", mean over {len(scenarios)} scenarios"
    fr = summary["final_return"]
    print(f"{what}): {fr['mean']:.2f} +/- {fr['ci95']:.2f} (95% CI over {len(seeds)} seeds)"
          if len(seeds) > 1 else f"{what}): {fr['mean']:.2f}")
    ev = summary["eval_return_sampled"]
    print(f"fresh-episode return ({args.eval_episodes} episodes per seed, sampled policy): "
          f"{ev['mean']:.2f} +/- {ev['ci95']:.2f} (95% CI over seeds)" if len(seeds) > 1 else
          f"fresh-episode return ({args.eval_episodes} episodes, sampled policy): "
          f"{ev['mean']:.2f}")
    print(f"saved to {save_dir} ({', '.join(p.name for p in paths.values())})")
    if args.results_json:
        Path(args.results_json).write_text(json.dumps(summary, indent=2))
        print(f"results: {args.results_json}")
    return 0
