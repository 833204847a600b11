"""What `--strategy pbt` leaves behind: each member's trial with its lineage (`record_run`),
the best schedule validated from scratch on fresh seeds against the defaults and, with
`--pbt-versus`, a TPE study's best (`validate_schedule`), the winner's command, and the
lineage plot."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from bb_jax.agent.config import HYPERPARAM_NAMES


def record_run(study, trials, run, config, args, plan, seconds: float) -> None:
    """Each member's trial: its lineage and final value (its intermediate values were
    reported live); the study's PBT settings."""
    batch = config.batch_size
    study.set_user_attr("strategy", "pbt")
    study.set_user_attr("scenarios", [config.scenario])
    study.set_user_attr("num_opponents", config.num_opponents)
    study.set_user_attr("num_steps", config.total_steps)
    study.set_user_attr("pbt", {
        "population_size": plan["size"], "interval_env_steps": args.pbt_interval,
        "quantile": plan["rule"].quantile, "margin": plan["rule"].margin,
        "eval_episodes": args.eval_episodes, "hidden_size": config.hidden_size,
        "batch_size": batch, "exploit_env_steps": [u * batch for u in run.exploit_updates],
        "wall_time_s": round(seconds, 2)})
    for trial, lineage, final in zip(trials, run.lineages, run.final_returns, strict=True):
        trial.set_user_attr("seed", lineage.seed)
        trial.set_user_attr("root", trials[lineage.root].number)
        trial.set_user_attr("schedule", lineage.schedule.as_env_steps(batch))
        trial.set_user_attr("copies", [{"env_steps": u * batch, "parent": trials[p].number}
                                       for u, p in lineage.copies])
        study.tell(trial, float(np.mean(final)))


def validate_schedule(study, run, config, args, plan, schedule_path: Path,
                      versus: dict | None) -> None:
    """The best member's schedule from scratch against the defaults on fresh seeds (the same
    seeds for both: paired), at the study's env steps, and with `versus` also a TPE study's
    best static configuration; the outcome in the study and the command of the winner."""
    from bb_jax.agent.config import DEFAULT_HYPERPARAMS
    from bb_jax.runtime.runs import train_seeds
    from bb_jax.stats import paired_difference
    from bb_jax.tuning.space import validation_seeds

    lineage = run.lineages[run.best]
    seeds = validation_seeds(args.seed, args.validate_seeds)
    chunk = plan["interval_updates"]

    def values(result) -> np.ndarray:
        if args.objective == "eval_return":
            return result.eval_sampled.mean(axis=1)
        return result.final_returns[:, 0]

    scheduled = values(train_seeds(config, lineage.history[0][1], seeds, chunk,
                                   args.eval_episodes, schedule=lineage.schedule))
    control = values(train_seeds(config, dict(DEFAULT_HYPERPARAMS), seeds, chunk,
                                 args.eval_episodes))
    diff = paired_difference(scheduled, control)
    outcome = {"seeds": seeds, "schedule": scheduled.tolist(), "control": control.tolist(),
               "difference": diff.as_dict(), "objective": args.objective}
    print(f"validation on {len(seeds)} fresh seeds ({args.objective}): schedule "
          f"{np.mean(scheduled):.2f}, defaults {np.mean(control):.2f}, difference "
          f"{diff.mean:+.2f} +/- {diff.ci95:.2f} (paired 95% CI)")
    candidates = {"schedule": (scheduled, diff)}
    if versus is not None:
        shape = {k: int(versus["params"][k]) for k in ("hidden_size", "batch_size")}
        static = values(train_seeds(
            config.replace(**shape, num_envs=None), {k: v for k, v in versus["params"].items()
                                      if k in HYPERPARAM_NAMES},
            seeds, max(1, chunk * config.batch_size // shape["batch_size"]),
            args.eval_episodes))
        static_diff, against = (paired_difference(static, control),
                                paired_difference(scheduled, static))
        outcome["versus"] = {**versus, "values": static.tolist(),
                             "vs_control": static_diff.as_dict(),
                             "schedule_vs_static": against.as_dict()}
        print(f"  TPE study {versus['study']!r} trial {versus['trial']} (its "
              f"{versus['study_env_steps']:,} env steps against this run's "
              f"{plan['size'] * config.total_steps:,}): {np.mean(static):.2f}; schedule - "
              f"static {against.mean:+.2f} +/- {against.ci95:.2f} (paired 95% CI)")
        candidates["static"] = (static, static_diff)
    outcome["winner"] = winner = _winner(candidates)
    study.set_user_attr("pbt_validation", outcome)
    print({"schedule": "the schedule wins: it beats the defaults",
           "static": "the TPE study's configuration wins: it beats the defaults",
           "defaults": "keep the defaults: nothing beat them"}[winner])
    command = _train_command("schedule", config, chunk, schedule_path, seeds, versus)
    print(f"train the schedule: {shlex.join(command)}")
    if versus is not None:
        command = _train_command("static", config, chunk, schedule_path, seeds, versus)
        print(f"train the TPE study's configuration: {shlex.join(command)}")


def _winner(candidates: dict) -> str:
    """The validated winner: of the candidates {name: (values per seed, paired difference to
    the defaults)} that beat the defaults (95% CI above zero), the one of the highest mean;
    else "defaults"."""
    beat = {name: values for name, (values, diff) in candidates.items()
            if diff.significant and diff.mean > 0}
    return max(beat, key=lambda name: float(np.mean(beat[name]))) if beat else "defaults"


def _train_command(which: str, config, chunk: int, schedule_path: Path, seeds, versus):
    """The train_simple.py command line of the "schedule" or the "static" configuration on
    the validation seeds."""
    from bb_jax.tuning.outputs import python_command
    from bb_jax.tuning.space import TRAIN_FLAGS

    command = [python_command(), "scripts/train_simple.py", "--scenario", config.scenario,
               "--num-opponents", str(config.num_opponents), "--num-steps",
               str(config.total_steps)]
    if which == "static":
        command += [item for name, value in versus["params"].items()
                    for item in (TRAIN_FLAGS[name], str(value))]
    else:
        command += ["--hidden-size", str(config.hidden_size), "--batch-size",
                    str(config.batch_size), "--chunk-updates", str(chunk), "--schedule",
                    str(schedule_path)]
    return [*command, "--seeds", *map(str, seeds)]


def lineage_plot(run, batch_size: int, path: Path) -> None:
    """Every member's schedule of each searched hyperparameter over env steps (the values
    its final weights trained under) and its fresh-episode means at the exploit steps,
    coloured by the lineage (root member) its final weights came from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bb_jax.tuning.pbt import SEARCHED

    names = list(SEARCHED)
    columns = 2
    panels = len(names) + 1
    fig, axes = plt.subplots((panels + columns - 1) // columns, columns,
                             figsize=(11, 2.4 * ((panels + 1) // columns)), sharex=True,
                             squeeze=False)
    axes = axes.ravel()
    colours = plt.get_cmap("tab20")
    end = len(next(iter(run.curves.values()))[0]) * batch_size
    for i, lineage in enumerate(run.lineages):
        colour = colours(lineage.root % 20)
        steps = [u * batch_size for u, _ in lineage.history] + [end]
        for ax, name in zip(axes, names, strict=False):
            values = [row[name] for _, row in lineage.history]
            ax.step(steps, [*values, values[-1]], where="post", color=colour, alpha=0.8)
        axes[len(names)].plot([u * batch_size for u in run.exploit_updates],
                              lineage.evaluations, marker="o", color=colour, alpha=0.8,
                              label=f"member {i}")
    for ax, name in zip(axes, names, strict=False):
        ax.set_ylabel(name.replace("_", " "), fontsize=8)
        if SEARCHED[name].log:
            ax.set_yscale("log")
    axes[len(names)].set_ylabel("fresh-episode mean", fontsize=8)
    for ax in axes[panels:]:
        ax.set_visible(False)
    for ax in axes[panels - columns:panels]:
        ax.set_xlabel("env steps per member")
        ax.xaxis.set_tick_params(labelbottom=True)
    fig.suptitle("PBT lineages (colour: the member a lineage began with)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
