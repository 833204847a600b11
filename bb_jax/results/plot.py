"""docs/results.png: the RESULTS report's figure."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def plot(results: dict, path: Path) -> None:
    """Two panels: returns minus uniform random per scenario (best heuristic, PPO sampled,
    PPO greedy, with 95% intervals), and the training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["ppo"])
    x = np.arange(len(names))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(12, 9), gridspec_kw={"height_ratios": [1, 1]})
    series = [
        ("best heuristic", lambda n: results["baselines"][n]["policies"][
            results["baselines"][n]["best_heuristic"]], "tab:gray"),
        ("PPO sampled", lambda n: results["ppo"][n]["ppo_sampled"], "tab:blue"),
        ("PPO greedy", lambda n: results["ppo"][n]["ppo_greedy"], "tab:orange"),
    ]
    width = 0.27
    for j, (label, get, color) in enumerate(series):
        rand = [results["baselines"][n]["policies"]["random"]["mean"] for n in names]
        means = [get(n)["mean"] - r for n, r in zip(names, rand)]
        errs = [get(n)["ci95"] if math.isfinite(get(n)["ci95"]) else 0.0 for n in names]
        ax.bar(x + (j - 1) * width, means, width, yerr=errs, label=label, color=color,
               capsize=2)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("mean return minus uniform random")
    ax.set_title(f"PPO after {results['env_steps_per_member']:,} steps "
                 f"({len(results['settings']['seeds'])} seeds) vs baselines, 95% CI")
    ax.legend(fontsize="small")

    steps = np.asarray(results["curve_env_steps"])
    colors = plt.get_cmap("tab20")
    for i, n in enumerate(names):
        rand = results["baselines"][n]["policies"]["random"]["mean"]
        curve = np.asarray(results["ppo"][n]["train_curve_mean"]) - rand
        ax2.plot(steps, curve, label=n, color=colors(i % 20), ls="-" if i < 10 else "--")
    ax2.axhline(0, color="black", lw=0.8)
    ax2.set_xlabel("env steps per run")
    ax2.set_ylabel("last-100 training mean minus random")
    ax2.set_title("training curves (mean over seeds)")
    ax2.legend(fontsize="x-small", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
