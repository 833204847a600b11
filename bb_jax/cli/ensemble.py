"""`--ensemble K` of validate_best.py and `--ensemble-with` of evaluate.py: the flags, their
checks and the lines they print (`bb_jax.tuning.ensemble`, `bb_jax.runtime.ensemble`)."""

from __future__ import annotations

import argparse
import contextlib

import numpy as np

from bb_jax.cli.common import UsageError
from bb_jax.stats import mean_ci95, paired_difference

RULES = ("probs", "logits")  # bb_jax.runtime.ensemble.RULES, without loading the networks


def add_ensemble_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ensemble", type=int, default=None, metavar="K",
                   help="also combine the top-K validated configurations' policies per seed "
                        "into one and compare it with the best single one, paired on the same "
                        "episodes (K >= 2, at most --top-k)")
    p.add_argument("--ensemble-rule", choices=RULES, default="probs",
                   help="how the members' action distributions combine: the mean of their "
                        "probabilities or of their log-probabilities (default: %(default)s)")


def check_ensemble(k: int | None, n_candidates: int) -> None:
    """UsageError unless K is None or 2 <= K <= the candidates validation will train."""
    if k is None:
        return
    if k < 2:
        raise UsageError(f"--ensemble must be >= 2 (one configuration is the best single), "
                         f"got {k}")
    if k > n_candidates:
        raise UsageError(f"--ensemble {k} needs {k} validated configurations; this validation "
                         f"trains {n_candidates} (valid: 2..{n_candidates}, or raise --top-k)")


def keeping(k: int | None):
    """The context validation runs in: keeping the trained parameters when an ensemble is
    asked for (yields their dict), else nothing kept (yields None)."""
    from bb_jax.runtime.kept_params import keep_final_params

    return contextlib.nullcontext() if k is None else keep_final_params()


def run_ensemble(study, outcome: dict, kept: dict, k: int, rule: str) -> dict:
    """The ensemble's validation (`validate_ensemble`) on the study's scenarios; the caller
    prints it (`ensemble_lines`) and stores it in the study's `validation` with the rest."""
    from bb_jax.tuning.ensemble import validate_ensemble

    return validate_ensemble(outcome, kept, k, list(study.user_attrs.get(
        "scenarios", ["default"])), rule)


def ensemble_lines(result: dict) -> list[str]:
    """The verdict: the ensemble's mean, its paired difference to the best single, the cost."""
    head = f"ensemble of {result['k']} ({result['rule']} rule)"
    if "skipped" in result:
        return [f"{head}: not formed: {result['skipped']}"]
    d, cost = result["vs_best"], result["cost"]
    worse = d["mean"] + d["ci95"] < 0  # the whole paired CI below zero
    verdict = ("beats the best single configuration" if d["significant"] else
               "worse than the best single configuration" if worse else
               "within the noise of the best single configuration")
    members = ", ".join(f"trial {t}" for t in result["members"])
    return [f"{head} of {members}: {result['mean']:.2f} +/- {result['ci95']:.2f}, vs best "
            f"single (trial {result['best']}) {d['mean']:+.2f} +/- {d['ci95']:.2f} (paired, "
            f"{d['n']} seeds): {verdict}",
            f"  cost: {cost['train_tflops_per_seed']:.3g} TFLOP of training per seed (best "
            f"single {cost['best_tflops_per_seed']:.3g}), {cost['forward_passes_per_action']} "
            "forward passes per action"]


def add_evaluate_ensemble_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ensemble-with", nargs="+", default=None, metavar="RUN_DIR",
                   help="also play the ensemble of run_dir and these runs: per seed they "
                        "share, their policies combined into one, on the same episodes")
    p.add_argument("--ensemble-rule", choices=RULES, default="probs",
                   help="how the members' action distributions combine (default: "
                        "%(default)s)")


def add_ensemble_report(report: dict, run, args, scenario: str, kinds) -> dict:
    """`report` (`evaluate_run`'s) with the ensemble of `run` and `args.ensemble_with`: per
    seed the runs share, their networks combined, on the episodes every policy played there;
    its mean over seeds and its paired difference to the best run alone (UsageError for runs
    that share no seed or play another game)."""
    import jax
    import jax.numpy as jnp

    from bb_jax.runtime.ensemble import ensemble_returns
    from bb_jax.runtime.evaluation import _member_params, _policy, policy_returns
    from bb_jax.runtime.saved_runs import load_run

    runs = [run] + [load_run(d) for d in args.ensemble_with]
    if len({(r.config.num_opponents, r.config.max_steps) for r in runs}) > 1:
        raise UsageError("--ensemble-with: the runs must play the same game (opponents, "
                         "nights per episode)")
    members = [_member_params(r, scenario) for r in runs]
    seeds = sorted(set.intersection(*[set(m) for m in members]))
    if not seeds:
        raise UsageError("--ensemble-with: the runs share no training seed; seeds: "
                         + "; ".join(",".join(map(str, m)) for m in members))
    key = jax.random.PRNGKey(args.seed)
    params = [jax.tree.map(lambda *x: np.stack(x), *[m[s] for s in seeds]) for m in members]
    configs = [_policy(r, scenario, kinds).config for r in runs]
    combined = ensemble_returns(configs, params, jnp.stack([key] * len(seeds)), args.episodes,
                                scenario, args.ensemble_rule, args.greedy).mean(axis=1)
    alone = [policy_returns(r, scenario, kinds, args.episodes, key, args.greedy) for r in runs]
    alone = np.array([[a[s].mean() for s in seeds] for a in alone])
    best = int(np.argmax(alone.mean(axis=1)))
    mean, ci = mean_ci95(combined)
    diff = paired_difference(combined, alone[best])
    report["ensemble"] = {"runs": [str(args.run_dir), *args.ensemble_with],
                          "rule": args.ensemble_rule, "seeds": seeds, "mean": mean,
                          "ci95": ci, "per_seed": combined.tolist(),
                          "vs_best_run": {"run": best, **diff.as_dict()}}
    report["lines"].append(
        f"  ensemble of {len(runs)} runs ({args.ensemble_rule} rule): {mean:8.2f} +/- "
        f"{ci:.2f} over {len(seeds)} shared seed(s); vs the best run alone {diff.mean:+.2f} "
        f"+/- {diff.ci95:.2f} (paired)")
    return report
