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
    study.set_user_attr("env", config.env)
    study.set_user_attr("num_steps", config.total_steps)
    study.set_user_attr("pbt", {
        "population_size": plan["size"], "interval_env_steps": args.pbt_interval,
        "quantile": plan["rule"].quantile, "margin": plan["rule"].margin,
        "eval_episodes": args.eval_episodes, "hidden_size": config.hidden_size,
        "batch_size": batch, "exploit_env_steps": [u * batch for u in run.exploit_updates],
        "wall_time_s": round(seconds, 2)})
    for trial, lineage, final in zip(trials, run.lineages, run.final_returns, strict=True):
        trial.set_user_attr("seed", lineage.seed)
        trial.set_user_attr("weights_from", [
            {"env_steps": u * batch, "trial": trials[m].number, "seed": run.lineages[m].seed}
            for u, m in lineage.weights_from])
        trial.set_user_attr("root", trials[lineage.root].number)
        trial.set_user_attr("schedule", lineage.schedule.as_env_steps(batch))
        trial.set_user_attr("copies", [{"env_steps": u * batch, "parent": trials[p].number}
                                       for u, p in lineage.copies])
        study.tell(trial, float(np.mean(final)))


def validate_schedule(study, run, config, args, plan, schedule_path: Path,
                      versus: dict | None) -> None:
    """The best member's schedule from scratch against the defaults on fresh seeds (the same
    seeds for both: paired), at the study's env steps, and with `versus` also a TPE study's
    best static configuration; the outcome in the study and the command of the winner. Each
    run is scored as the TPE validation scores it: the mean return of `--eval-episodes` fresh
    episodes from its seed's evaluation key (the same episodes for every configuration)."""
    from bb_jax.stats import paired_difference
    from bb_jax.tuning.space import validation_seeds

    seeds = validation_seeds(args.seed, args.validate_seeds)
    chunk = plan["interval_updates"]
    candidates, control = _train_candidates(run.lineages[run.best], config, seeds, chunk,
                                            args.eval_episodes, versus)
    verdicts = versus_control(candidates, control)
    scheduled, diff = candidates["schedule"], verdicts["schedule"]
    outcome = {"seeds": seeds, "schedule": scheduled.tolist(), "control": control.tolist(),
               "difference": diff, "measure": f"mean return of {args.eval_episodes} fresh "
               f"episodes per seed", "correction": correction(len(candidates))}
    print(f"validation on {len(seeds)} fresh seeds ({outcome['measure']}; "
          f"{outcome['correction']}): schedule {np.mean(scheduled):.2f}, defaults "
          f"{np.mean(control):.2f}, difference {_line(diff)}")
    if versus is not None:
        static = candidates["static"]
        against = paired_difference(scheduled, static)
        outcome["versus"] = {**versus, "values": static.tolist(),
                             "vs_control": verdicts["static"],
                             "schedule_vs_static": against.as_dict()}
        print(f"  TPE study {versus['study']!r} trial {versus['trial']} (its "
              f"{versus['study_env_steps']:,} env steps against this run's "
              f"{plan['size'] * config.total_steps:,}): {np.mean(static):.2f}, vs defaults "
              f"{_line(verdicts['static'])}; schedule - static {against.mean:+.2f} +/- "
              f"{against.ci95:.2f} (paired 95% CI)")
    outcome["winner"] = winner = _winner(candidates, verdicts)
    study.set_user_attr("pbt_validation", outcome)
    print({"schedule": "the schedule wins: it beats the defaults",
           "static": "the TPE study's configuration wins: it beats the defaults",
           "defaults": "keep the defaults: nothing beat them"}[winner])
    command = _train_command("schedule", config, chunk, schedule_path, seeds, versus)
    print(f"train the schedule: {shlex.join(command)}")
    if versus is not None:
        command = _train_command("static", config, chunk, schedule_path, seeds, versus)
        print(f"train the TPE study's configuration: {shlex.join(command)}")


def _train_candidates(lineage, config, seeds: list[int], chunk: int, episodes: int,
                      versus: dict | None) -> tuple[dict, np.ndarray]:
    """({"schedule": values[, "static": values]}, the defaults' values): each trained from
    scratch on `seeds`, a value per seed its mean return over `episodes` fresh episodes."""
    from bb_jax.agent.config import DEFAULT_HYPERPARAMS
    from bb_jax.runtime.runs import train_seeds

    def values(hyperparams, run_config=config, updates=chunk, schedule=None) -> np.ndarray:
        result = train_seeds(run_config, hyperparams, seeds, updates, episodes,
                             schedule=schedule)
        return result.eval_sampled.mean(axis=1)

    candidates = {"schedule": values(lineage.history[0][1], schedule=lineage.schedule)}
    control = values(dict(DEFAULT_HYPERPARAMS))
    if versus is not None:
        shape = {k: int(versus["params"][k]) for k in ("hidden_size", "batch_size")}
        candidates["static"] = values(
            {k: v for k, v in versus["params"].items() if k in HYPERPARAM_NAMES},
            config.replace(**shape, num_envs=None),
            max(1, chunk * config.batch_size // shape["batch_size"]))
    return candidates, control


def correction(count: int) -> str:
    """The multiplicity correction of `count` comparisons with the defaults, in words."""
    return f"Holm over {count} comparison{'s' * (count > 1)} with the defaults, alpha 0.05"


def versus_control(candidates: dict, control: np.ndarray, alpha: float = 0.05) -> dict:
    """Each candidate's paired difference to the defaults {name: values per seed} as a dict
    with `p_holm` (Holm-adjusted over this family of comparisons) and `beats_defaults`
    (mean above zero and p_holm <= alpha): the family-wise chance of calling a candidate
    without a real gain a winner stays at most alpha however many are compared."""
    from bb_jax.stats import holm, paired_difference

    diffs = {name: paired_difference(values, control) for name, values in candidates.items()}
    adjusted = holm([d.p_value for d in diffs.values()])
    return {name: {**d.as_dict(), "p_holm": float(p), "beats_defaults":
                   bool(d.mean > 0 and np.isfinite(p) and p <= alpha)}
            for (name, d), p in zip(diffs.items(), adjusted, strict=True)}


def _line(diff: dict) -> str:
    verdict = "beats the defaults" if diff["beats_defaults"] else "not shown better"
    return (f"{diff['mean']:+.2f} +/- {diff['ci95']:.2f} (paired 95% CI, Holm p "
            f"{diff['p_holm']:.3g}: {verdict})")


def _winner(candidates: dict, verdicts: dict) -> str:
    """The validated winner: of the candidates {name: values per seed} that beat the
    defaults (`versus_control`, Holm-adjusted), the one of the highest mean; else
    "defaults"."""
    beat = [name for name in candidates if verdicts[name]["beats_defaults"]]
    return max(beat, key=lambda name: float(np.mean(candidates[name]))) if beat else "defaults"


def _train_command(which: str, config, chunk: int, schedule_path: Path, seeds, versus):
    """The train_simple.py command line of the "schedule" or the "static" configuration on
    the validation seeds."""
    from bb_jax.tuning.outputs import python_command
    from bb_jax.tuning.space import TRAIN_FLAGS

    command = [*python_command(), "scripts/train_simple.py", "--scenario", config.scenario,
               "--num-opponents", str(config.num_opponents), "--num-steps",
               str(config.total_steps), *(["--env", config.env] if config.env != "bucket_brigade"
                                          else [])]
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
