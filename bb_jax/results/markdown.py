"""docs/RESULTS.md: PPO on every scenario next to the uniform-random policy and the heuristic
archetypes in the learner's seat (`scripts/results_report.py`).

All scenarios x seeds train as ONE population (scenario parameters are traced rows, so one
compiled program serves every member), with the default configuration (`PPOConfig`'s shapes,
`DEFAULT_HYPERPARAMS`) unless told otherwise. Each member is then
evaluated on fresh episodes, sampling its policy and acting greedily; its last-100 training
mean is read from the run. The baselines (`bb_jax.train.baselines`) play the same view: random, and
each archetype in seat 0; the best archetype per scenario is the one with the highest mean.
Learning speed (`bb_jax.train.learning_speed`): per seed, the env steps from which its smoothed
training curve (per-chunk returns) stays above each baseline's mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bb_jax import devices
from bb_jax.game.opponents import ARCHETYPES
from bb_jax.game.rules import REST_REWARD
from bb_jax.game.scenarios import get_scenario, list_scenarios, stack_scenarios
from bb_jax.machine import machine_info
from bb_jax.stats import mean_ci95
from bb_jax.train import baselines
from bb_jax.train.config import DEFAULT_HYPERPARAMS, PPOConfig, stack_hyperparams
from bb_jax.train.learning_speed import chunk_means, chunk_totals, learning_speed
from bb_jax.train.population import Population
from bb_jax.train.runs import plan_chunks

Z95 = 1.959964


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    num_steps: int = 500_000  # env steps per member
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    scenarios: tuple[str, ...] = tuple(list_scenarios())
    num_opponents: int = 2
    hidden_size: int = PPOConfig.hidden_size
    batch_size: int = PPOConfig.batch_size
    eval_episodes: int = 1000  # per member and mode
    baseline_episodes: int = 4000  # per scenario, policy and batch (two batches)
    chunk_updates: int = 8
    seed: int = 0  # evaluation keys
    speed_window_steps: int = 20_000  # learning speed: smoothing window, in env steps (at least)

    def config(self) -> PPOConfig:
        return PPOConfig(scenario=self.scenarios[0], num_opponents=self.num_opponents,
                         hidden_size=self.hidden_size, batch_size=self.batch_size,
                         total_steps=self.num_steps)


def _episode_ci(x) -> tuple[float, float]:
    """Mean and 95% half-width over episodes (normal approximation)."""
    x = np.asarray(x, np.float64)
    return float(x.mean()), float(Z95 * x.std(ddof=1) / math.sqrt(x.size))


def _seed_ci(per_seed) -> dict:
    mean, ci = mean_ci95(per_seed)
    return {"mean": mean, "ci95": ci, "per_seed": [float(v) for v in per_seed]}


def _rounded(values) -> list[float]:
    return [round(float(x), 2) for x in values]


def train_all(settings: ReportSettings, progress: Callable[[str], None] | None = print) -> dict:
    """Train every (scenario, seed) as one population; evaluate. Returns per-scenario PPO
    figures, the mean training curve per scenario, each seed's per-chunk training returns
    (episodes finished and their mean return per chunk, `chunk_env_steps` at chunk ends) and
    timings."""
    config = settings.config()
    names = [s for s in settings.scenarios for _ in settings.seeds]
    seeds = [seed for _ in settings.scenarios for seed in settings.seeds]
    # a distinct stream per member: the seed, folded with the scenario's index
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed), list_scenarios().index(n))
                      for n, seed in zip(names, seeds)])
    scenarios = stack_scenarios([get_scenario(n, settings.num_opponents + 1) for n in names])
    size = len(names)
    start = time.perf_counter()
    pop = Population(config, stack_hyperparams([{}] * size), keys, scenarios)
    chunks = []
    plan = plan_chunks(config.num_updates, settings.chunk_updates)
    for length in plan:
        chunks.append({k: np.asarray(v) for k, v in pop.run(length).items()})
        if progress is not None:
            done = int(chunks[-1]["env_steps"][0, -1])
            elapsed = time.perf_counter() - start
            progress(f"train: {done:>9,}/{config.num_updates * config.batch_size:,} steps per "
                     f"member, {size} members, {done * size / elapsed:,.0f} steps/s, "
                     f"{elapsed:.0f} s")
    curves = {k: np.concatenate([c[k] for c in chunks], axis=1) for k in chunks[0]}
    train_s = time.perf_counter() - start
    if not bool(np.all(curves["finite"])):
        raise RuntimeError("non-finite parameters or losses during training")
    start = time.perf_counter()
    eval_key = jax.random.PRNGKey(settings.seed + 1)
    sampled = pop.evaluate(eval_key, settings.eval_episodes, greedy=False)
    greedy = pop.evaluate(eval_key, settings.eval_episodes, greedy=True)
    eval_s = time.perf_counter() - start
    chunk_steps, chunk_episodes, chunk_sums = chunk_totals(curves, plan[0])
    out = {}
    for name in settings.scenarios:
        rows = [i for i, n in enumerate(names) if n == name]
        out[name] = {
            "ppo_sampled": _seed_ci(sampled[rows].mean(axis=1)),
            "ppo_greedy": _seed_ci(greedy[rows].mean(axis=1)),
            "ppo_train_last100": _seed_ci(curves["mean_return"][rows, -1]),
            "train_curve_mean": _rounded(np.nanmean(curves["mean_return"][rows], axis=0)),
            "train_curve_min": _rounded(np.nanmin(curves["mean_return"][rows], axis=0)),
            "train_curve_max": _rounded(np.nanmax(curves["mean_return"][rows], axis=0)),
            "seed_chunk_episodes": chunk_episodes[rows].astype(int).tolist(),
            "seed_chunk_mean_return": [chunk_means(chunk_episodes[i], chunk_sums[i])
                                       for i in rows],
        }
    steps = curves["env_steps"][0].tolist()
    return {"ppo": out, "curve_env_steps": steps, "chunk_env_steps": chunk_steps,
            "members": size, "env_steps_per_member": int(steps[-1]), "train_wall_s": train_s,
            "eval_wall_s": eval_s}


def evaluate_baselines(settings: ReportSettings) -> dict:
    """Random and every archetype per scenario, each over 2 x baseline_episodes fresh
    episodes (two vmapped calls of one compiled program). The best archetype is the one with
    the highest mean: the maximum of five noisy means can only flatter the heuristic (by
    about one standard error), so "PPO beats the best heuristic" is a conservative call."""
    start = time.perf_counter()
    names = list(settings.scenarios)
    keys = jax.random.split(jax.random.PRNGKey(settings.seed + 2))
    batches = [baselines.all_baseline_returns(names, settings.baseline_episodes, k,
                                              settings.num_opponents) for k in keys]
    out = {}
    for name in names:
        figures = {}
        for policy in batches[0][name]:
            mean, ci = _episode_ci(np.concatenate([b[name][policy] for b in batches]))
            figures[policy] = {"mean": mean, "ci95": ci}
        best = max(ARCHETYPES, key=lambda k: figures[k]["mean"])
        out[name] = {"policies": figures, "best_heuristic": best}
    return {"baselines": out, "baseline_wall_s": time.perf_counter() - start}


def compare(a: dict, b: dict) -> str:
    """'better' / 'worse' if a's mean differs from b's by more than the combined 95% CI
    (sqrt of the sum of squared half-widths), else 'tie'."""
    diff = a["mean"] - b["mean"]
    ci_a = a["ci95"] if math.isfinite(a["ci95"]) else 0.0
    half = math.hypot(ci_a, b["ci95"])
    if diff > half:
        return "better"
    if diff < -half:
        return "worse"
    return "tie"


def verdicts(results: dict) -> dict:
    """Per scenario: PPO (sampled and greedy) against random and the best heuristic."""
    out = {}
    for name, ppo in results["ppo"].items():
        base = results["baselines"][name]
        random_fig = base["policies"]["random"]
        heur_fig = base["policies"][base["best_heuristic"]]
        out[name] = {
            f"{mode}_vs_{other}": compare(ppo[f"ppo_{mode}"], fig)
            for mode in ("sampled", "greedy")
            for other, fig in (("random", random_fig), ("heuristic", heur_fig))
        }
    return out


def run_report(settings: ReportSettings, progress: Callable[[str], None] | None = print) -> dict:
    start = time.perf_counter()
    machine = machine_info()
    results = {"settings": {**dataclasses.asdict(settings),
                            "hyperparameters": dict(DEFAULT_HYPERPARAMS),
                            "learner": settings.config().learner_choices},
               "machine": machine}
    results.update(train_all(settings, progress))
    if progress is not None:
        progress(f"trained and evaluated in {time.perf_counter() - start:.0f} s; baselines")
    results.update(evaluate_baselines(settings))
    results["wall_s"] = time.perf_counter() - start
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["verdicts"] = verdicts(results)
    results["learning_speed"] = learning_speed(results, settings.speed_window_steps)
    return results


def _fmt(fig: dict) -> str:
    ci = fig["ci95"]
    return f"{fig['mean']:.1f} ± {ci:.1f}" if math.isfinite(ci) else f"{fig['mean']:.1f}"


_WORD = {"better": "**better**", "worse": "worse", "tie": "tie"}


def markdown(results: dict, plot_names: tuple[str, ...] = ("results.png",)) -> str:
    s = results["settings"]
    m = results["machine"]
    v = results["verdicts"]
    names = list(results["ppo"])
    n_seeds = len(s["seeds"])

    def beaten(other):
        return [n for n in names
                if "better" in (v[n][f"sampled_vs_{other}"], v[n][f"greedy_vs_{other}"])]

    beats_random, beats_heur = beaten("random"), beaten("heuristic")
    below_heur = [n for n in names if v[n]["sampled_vs_heuristic"] == "worse"
                  and v[n]["greedy_vs_heuristic"] == "worse"]
    not_random = [n for n in names if n not in beats_random]
    not_heur = [n for n in names if n not in beats_heur]
    worse_note = (f"; significantly worse than it (sampled and greedy): {', '.join(below_heur)}."
                  if below_heur else ".")
    headline = (
        f"After {results['env_steps_per_member']:,} env steps per run ({n_seeds} seeds, "
        f"hidden {s['hidden_size']}, batch {s['batch_size']}, the hyperparameters under \"How it "
        f"was produced\", {s['num_opponents']} opponents), PPO is significantly better "
        f"than the uniform-random policy on **{len(beats_random)} of {len(names)}** scenarios "
        f"and better than the best heuristic archetype in the learner's seat on "
        f"**{len(beats_heur)} of {len(names)}**."
    )
    rule = (
        '"Better"/"worse" means the difference of means exceeds the combined 95% interval '
        '(square root of the sum of the squared half-widths); otherwise "tie". A scenario '
        "counts as beaten if the sampled or the greedy policy is better."
    )
    lines = [
        "# Results: PPO against random and heuristic play",
        "",
        ("Generated by `scripts/results_report.py` (logic in `bb_jax/train/report.py`); "
         "do not edit by hand. Rerun to refresh."),
        "",
        "## Headline",
        "",
        headline,
        "",
        f"- Beats random: {', '.join(beats_random) or 'none'}.",
        f"- Does not beat random: {', '.join(not_random) or 'none'}.",
        f"- Beats the best heuristic: {', '.join(beats_heur) or 'none'}.",
        f"- **Does not beat the best heuristic: {', '.join(not_heur) or 'none'}**{worse_note}",
        "",
        rule,
        "",
        "## Mean episode return (95% CI)",
        "",
        ("| scenario | uniform random | best heuristic (seat 0) | PPO sampled | PPO greedy "
         "| PPO last-100 train | PPO vs random (s / g) | PPO vs heuristic (s / g) |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        p = results["ppo"][n]
        b = results["baselines"][n]
        best = b["best_heuristic"]
        lines.append(
            f"| {n} | {_fmt(b['policies']['random'])} | {_fmt(b['policies'][best])} ({best}) "
            f"| {_fmt(p['ppo_sampled'])} | {_fmt(p['ppo_greedy'])} "
            f"| {_fmt(p['ppo_train_last100'])} "
            f"| {_WORD[v[n]['sampled_vs_random']]} / {_WORD[v[n]['greedy_vs_random']]} "
            f"| {_WORD[v[n]['sampled_vs_heuristic']]} / {_WORD[v[n]['greedy_vs_heuristic']]} |"
        )
    columns = (
        "PPO columns: mean over seeds of each seed's figure, with a Student-t 95% interval over "
        f"the {n_seeds} seeds (it measures seed-to-seed spread). *Sampled* / *greedy*: "
        f"{s['eval_episodes']} fresh episodes per seed, sampling the policy / taking its most "
        "probable action. *Last-100 train*: the mean of the last 100 episodes completed during "
        "training (sampled policy; the tuner's objective). Baselines: "
        f"{2 * s['baseline_episodes']} fresh episodes per policy, interval over episodes. "
        "*Best heuristic*: the archetype with the highest mean; picking the largest of five "
        "noisy means can only flatter it (by about one standard error), so calling PPO "
        "better than it is conservative."
    )
    lines += ["", columns, ""]
    lines += [f"![results]({name})" for name in plot_names]
    lines += [
        "",
        "## Every heuristic archetype in the learner's seat",
        "",
        "| scenario | " + " | ".join(baselines.BASELINES) + " |",
        "|---|" + "---|" * len(baselines.BASELINES),
    ]
    for n in names:
        pol = results["baselines"][n]["policies"]
        cells = " | ".join(f"{pol[k]['mean']:.1f}" for k in baselines.BASELINES)
        lines.append(f"| {n} | {cells} |")
    hp_text = ", ".join(f"{k} {val}" for k, val in s["hyperparameters"].items())
    rate = results["members"] * results["env_steps_per_member"] / results["train_wall_s"]
    training = (
        f"- Training: {results['members']} PPO runs ({len(names)} scenarios x {n_seeds} seeds "
        f"{tuple(s['seeds'])}) as one population (one compiled program; scenario parameters "
        f"are traced), hidden size {s['hidden_size']}, batch {s['batch_size']} env steps per "
        f"update, {results['env_steps_per_member']:,} env steps each; hyperparameters "
        f"{hp_text}.{_learner_text(s)}"
    )
    opponents_line = (
        f"- Opponents: the default list for {s['num_opponents']} opponents (random, random: "
        "fresh parameters every episode); episodes cut at 50 steps."
    )
    heuristic_line = (
        "- Heuristic in seat 0: docs/GAME_RULES.md's opponent rule with the archetype's "
        "parameters; its own house is house 0 (seat mod 10) and it repeats its own last action."
    )
    machine = (
        f"- Machine: {m['cpu']} ({m['cpu_count']} CPUs), {m['platform']}, JAX "
        f"{m['jax_version']} ({m['jax_backend']}); load average (1/5/15 min) "
        f"{m['load_average_1_5_15min']} at the start and {m.get('load_average_at_end')} at "
        "the end (a shared machine: other jobs ran at the same time)."
    )
    wall = (
        f"- Wall time: {results['wall_s'] / 60:.1f} min in all: training "
        f"{results['train_wall_s'] / 60:.1f} min (compile included, {rate:,.0f} env steps/s "
        f"over the population), PPO evaluation {results['eval_wall_s']:.0f} s, baselines "
        f"{results['baseline_wall_s']:.0f} s."
    )
    lines += _shortfalls(results, not_heur)
    lines += ["", f"Half-widths of these 95% intervals are {_ci_range(results)}."]
    lines += _speed_lines(results)
    lines += [
        "",
        "## How it was produced",
        "",
        training,
        opponents_line,
        heuristic_line,
        machine,
        wall,
        "- Raw figures: `docs/results.json`.",
        "",
    ]
    return "\n".join(lines)


def _learner_text(settings: dict) -> str:
    """The learner's choices (docs/PPO.md) in words; nothing for results saved without them."""
    learner = settings.get("learner")
    if learner is None:
        return ""
    return (f" Learner: time input {'on' if learner['time_input'] else 'off'}, "
            f"{learner['critic']} critic, advantages normalised per {learner['adv_norm']} "
            "(docs/PPO.md).")


def _speed_cell(fig: dict) -> str:
    if fig["mean"] is None:
        return "not reached"
    if fig["ci95"] is None:
        return f"{fig['mean']:,.0f}"
    return f"{fig['mean']:,.0f} ± {fig['ci95']:,.0f}"


def _speed_lines(results: dict) -> list[str]:
    """The learning-speed table and its definition (nothing for results saved without it)."""
    speed = results.get("learning_speed")
    if speed is None:
        return []
    lines = ["", "## Learning speed: env steps until PPO beats each baseline", "",
             "| scenario | beats random at | seeds | beats best heuristic at | seeds |",
             "|---|---|---|---|---|"]
    missed = []
    for n, figs in speed["scenarios"].items():
        cells = [f"{_speed_cell(f)} | {f['reached']}/{f['seeds']} seeds"
                 for f in (figs["random"], figs["heuristic"])]
        lines.append(f"| {n} | {cells[0]} | {cells[1]} |")
        missed += [f"{n} vs {label} ({f['reached']}/{f['seeds']} seeds reached it)"
                   for label, f in (("random", figs["random"]),
                                    ("the best heuristic", figs["heuristic"]))
                   if f["reached"] < f["seeds"]]
    return lines + ["", _speed_definition(results), "", _speed_missed(missed)]


def _speed_definition(results: dict) -> str:
    speed = results["learning_speed"]
    chunk, window = speed["chunk_env_steps"], speed["window_chunks"]
    return (
        f"Env steps per run. Each seed's training curve is read at every chunk end (every "
        f"{chunk:,} env steps) and smoothed as the mean return of all training episodes "
        f"(sampled policy) finished in the trailing {window} chunk{'s' * (window > 1)}, "
        f"{speed['window_env_steps']:,} env steps (fewer at the start of the run). A seed "
        "beats a baseline at the first chunk end from which its smoothed curve stays strictly "
        "above that baseline's mean (the random and best-heuristic means of the first table) "
        "at every later chunk end to the end of the run; a seed that crosses and dips back "
        "counts from its last crossing. *Seeds*: how many seeds got there. A seed whose "
        "smoothed curve is not above the baseline at the end of the run "
        f"({results['env_steps_per_member']:,} env steps) has not reached it and is left out "
        "of the mean (not counted as a number), so the mean is over the seeds that got there "
        "and flatters a scenario where few did. Mean with a Student-t 95% interval over those "
        "seeds; a single value without interval where only one got there; \"not reached\" "
        "where none did. A point comparison: the baselines' own intervals are not used."
    )


def _speed_missed(missed: list[str]) -> str:
    if not missed:
        return "Every seed reached both baselines within the run."
    return "Not reached by every seed within the run: " + "; ".join(missed) + "."


def _shortfalls(results: dict, names: list[str]) -> list[str]:
    """A paragraph per scenario where PPO does not beat the best heuristic: per-seed figures,
    and the ceiling where no fire can start."""
    if not names:
        return []
    num_agents = results["settings"]["num_opponents"] + 1
    lines = ["", "## Where PPO does not beat the best heuristic", ""]
    for n in names:
        p, b = results["ppo"][n], results["baselines"][n]
        best = b["best_heuristic"]
        greedy = p["ppo_greedy"]["per_seed"]
        text = (f"- **{n}**: PPO greedy per seed {_list(greedy)}, sampled per seed "
                f"{_list(p['ppo_sampled']['per_seed'])}; best heuristic ({best}) "
                f"{_fmt(b['policies'][best])}, random {_fmt(b['policies']['random'])}.")
        sc = get_scenario(n, num_agents)
        if float(sc.p_fire) == 0.0:
            ceiling = (float(sc.min_nights) + 1) * (float(sc.A) + REST_REWARD)
            at_ceiling = sum(g >= ceiling - 0.5 for g in greedy)
            text += (f" No house can catch fire here (p_fire = 0): every episode lasts "
                     f"min_nights + 1 = {int(sc.min_nights) + 1} nights and always resting "
                     f"earns the ceiling {ceiling:.1f}, which nothing can beat; {at_ceiling} of "
                     f"{len(greedy)} PPO seeds reach it when acting greedily.")
        lines.append(text)
    return lines


def _list(values) -> str:
    return "[" + ", ".join(f"{x:.1f}" for x in values) + "]"


def _ci_range(results: dict) -> str:
    cis = [f["ci95"] for b in results["baselines"].values() for f in b["policies"].values()]
    return f"{min(cis):.1f} to {max(cis):.1f}"


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


def write_outputs(results: dict, md_path: Path, png_path: Path, json_path: Path) -> None:
    for p in (md_path, png_path, json_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    plot(results, png_path)
    rel = os.path.relpath(png_path, md_path.parent)
    md_path.write_text(markdown(results, (rel,)))


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(type(x))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="results_report.py", description=__doc__.split("\n")[0])
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
    args = ap.parse_args(argv)
    if args.from_json is not None:
        results = json.loads(args.from_json.read_text())
        write_outputs(results, args.out, args.plot, args.json)
        print(f"wrote {args.out}, {args.plot}, {args.json} from {args.from_json}")
        return 0
    names = list_scenarios() if args.scenario == "all" else [
        name.strip() for name in args.scenario.split(",") if name.strip()]
    unknown = [name for name in names if name not in list_scenarios()]
    if unknown or not names:
        ap.error(f"--scenario {args.scenario!r}: valid scenarios are "
                 f"{', '.join(list_scenarios())} (comma-separated) or all")
    devices.use_host_devices()  # the population shards over every core
    settings = ReportSettings(
        num_steps=args.num_steps, seeds=tuple(args.seeds),
        scenarios=tuple(dict.fromkeys(names)), hidden_size=args.hidden_size,
        eval_episodes=args.eval_episodes, baseline_episodes=args.baseline_episodes,
    )
    if args.quick:
        settings = dataclasses.replace(settings, num_steps=8192, seeds=(0, 1), hidden_size=32,
                                       eval_episodes=50, baseline_episodes=200)
        default = ap.parse_args([])
        quick_dir = Path("/tmp") / "bb_jax_results_quick"
        for name, file in (("out", "RESULTS.md"), ("plot", "results.png"),
                           ("json", "results.json")):
            if getattr(args, name) == getattr(default, name):
                setattr(args, name, quick_dir / file)
    results = run_report(settings, progress=lambda line: print(line, flush=True))
    write_outputs(results, args.out, args.plot, args.json)
    print(f"wrote {args.out}, {args.plot}, {args.json} in {results['wall_s']:.0f} s")
    return 0
