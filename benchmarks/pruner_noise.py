"""Pruners on synthetic sweeps (`bb_jax.testing.synthetic_sweeps`): survival of the truly best 5% of
trials, compute saved, and the prune rate on pure noise (no planted quality), at three noise
models of one reported value: one seed (last 100 episodes: SD ~24 on `default`), 2 seeds with
fresh noise only (interval mean: SD ~8), and 2 seeds with lasting per-seed offsets (SD 8 per
seed, drawn once) plus fresh noise (SD 4), as seeds of a real run behave. 100 trials in
batches of 16, 10 checkpoints, planted quality SD 20. Writes JSON and prints a Markdown table
for docs/HYPERPARAMETER_TUNING.md.

    python benchmarks/pruner_noise.py [--repetitions 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import optuna
from tune_quality import LatestMedianPruner

from bb_jax.testing.synthetic_sweeps import synthetic_sweep
from bb_jax.tuning.settings import TuneSettings
from bb_jax.tuning.study import make_pruner

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "pruner_noise.json"
NUM_STEPS, INTERVAL, QUALITY_SD = 100_000, 10_000, 20.0
# name -> synthetic_sweep noise arguments
NOISES = {"one seed, last 100 (SD 24)": {"noise_sd": 24.0},
          "2 seeds, fresh noise (SD 8)": {"noise_sd": 8.0, "n_seeds": 2},
          "2 seeds, lasting offsets (SD 8) + fresh (SD 4)": {"noise_sd": 4.0, "n_seeds": 2,
                                                             "offset_sd": 8.0}}


def pruners() -> dict:
    def ours(name, **extra):
        settings = TuneSettings(pruner=name, num_steps=NUM_STEPS, eval_interval=INTERVAL,
                                **extra)
        return lambda steps: make_pruner(settings)

    return {
        "previous median (latest value < peers' median)":
            lambda steps: LatestMedianPruner(2 * INTERVAL, INTERVAL + 4096),
        "Optuna MedianPruner (5 startup trials)":
            lambda steps: optuna.pruners.MedianPruner(5, 0),
        "median (evidence, alpha 0.05)": ours("median"),
        "median (evidence, alpha 0.2)": ours("median", prune_alpha=0.2),
        "sha (eta 3, rung at 1/2)": ours("sha"),
        "sha (eta 3, rungs at 1/9, 1/3)": ours("sha", sha_min_fraction=1 / 9),
        "hyperband (eta 3, from 1/9, brackets 2..0)": ours("hyperband"),
        "none": ours("none"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repetitions", type=int, default=20)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args(argv)
    rows = []
    for pruner_name, make in pruners().items():
        for noise_name, noise in NOISES.items():
            planted = synthetic_sweep(make, QUALITY_SD, repetitions=args.repetitions, **noise)
            pure = synthetic_sweep(make, 0.0, repetitions=max(2, args.repetitions // 4),
                                   seed=1, **noise)
            rows.append({"pruner": pruner_name, "noise": noise_name, **noise,
                         **planted.as_dict(), "pruned_on_pure_noise": pure.pruned})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"num_steps": NUM_STEPS, "quality_sd": QUALITY_SD,
                                          "repetitions": args.repetitions, "rows": rows},
                                         indent=2))
    print("| pruner | noise of one value | best 5% kept | compute saved | trials pruned | "
          "pruned on pure noise |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pruner']} | {r['noise']} | {r['top_survival']:.0%} | "
              f"{r['compute_saved']:.0%} | {r['pruned']:.0%} | {r['pruned_on_pure_noise']:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
