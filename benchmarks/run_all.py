"""The whole benchmark suite in one command: env, training, the per-step baseline and tuning,
combined into one JSON (machine, versions, device, every figure with min/median/max, compile
times apart, speed-up ratios taken side by side) and PNG plots.

    python benchmarks/run_all.py --quick --out results.json     # CI-sized smoke run
    python benchmarks/run_all.py --full --out benchmarks/results/cpu_full.json
    python benchmarks/run_all.py --full --gpu --out OUT/results.json --plots-dir OUT

Each benchmark runs in its own process (clean compile state, its own JSON); a benchmark that
fails (e.g. optuna missing on a GPU image) is recorded with its error and the rest still run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bb_jax.machine import machine_info

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PACKAGES = ("jax", "jaxlib", "flax", "optax", "chex", "optuna", "numpy")
# Seconds each GPU benchmark may take (330 s in all): past it, it is recorded as failed.
GPU_BUDGET_S = {"env": 60, "train": 120, "baseline": 30, "tune": 120}


def plan(quick: bool, gpu: bool) -> dict[str, list[str]]:
    """Benchmark script -> its arguments for this suite."""
    if quick:
        return {
            "env": ["env_throughput.py", "--quick", "--batches", "1,256", "--steps", "32"],
            "train": ["train_throughput.py", "--quick"],
            "baseline": ["baseline_trainer.py", "--quick"],
            "tune": ["tune_throughput.py", "--quick"],
            "overhead": ["overhead.py", "--quick"],
        }
    if gpu:  # within GPU_BUDGET_S (benchmarks/gpu_run.sh fits 8 minutes in all)
        return {
            "env": ["env_throughput.py", "--batches", "1,256,4096,16384,65536,262144"],
            "train": ["train_throughput.py", "--hidden", "64", "128", "256", "512",
                      "--populations", "1", "2", "4", "8", "32", "128", "512", "1024",
                      "--repeats", "2", "--target-s", "1"],
            "baseline": ["baseline_trainer.py"],
            # what `--population-size auto` picks on a GPU, one program per shape against
            # one padded program per batch (what `--shapes auto` picks there)
            "tune": ["tune_throughput.py", "--sweeps", "quick", "--population-size", "16",
                     "--shapes", "exact", "padded"],
        }
    return {
        "env": ["env_throughput.py"],
        "train": ["train_throughput.py"],
        "baseline": ["baseline_trainer.py"],
        "tune": ["tune_throughput.py", "--n-jobs", "2"],
        "tune_1job": ["tune_throughput.py", "--sweeps", "quick"],
        "tune_one_by_one": ["tune_throughput.py", "--sweeps", "quick", "--population-size", "1"],
        # what `--population-size auto` picks on a CPU
        "tune_population_1": ["tune_throughput.py", "--sweeps", "standard", "--n-jobs", "2",
                              "--population-size", "1"],
        # step budget vs compute budget vs multi-objective vs random, validated at equal compute
        "tune_cost": ["tune_cost.py"],
        # population-based training's exploit/explore steps against the same plain training
        "pbt_overhead": ["pbt_overhead.py"],
        # PBT's replayed schedule vs TPE and random search at equal env steps, fresh seeds
        "pbt_quality": ["pbt_quality.py"],
        # the default strategy and the other samplers on six scenarios the defaults were not
        # chosen on, validated against the defaults; a 4x rerun where nothing was found
        "tuner_benchmark": ["tuner_benchmark.py"],
        # scenario A's study warm-starting B's, against B cold and a study of both
        "transfer": ["transfer.py"],
        # a time-budget study over easy/default/hard against the previous defaults
        "defaults_per_second": ["defaults_per_second.py"],
        # the README's training command: its wall split, and the share in compiled training
        "overhead": ["overhead.py"],
    }


def run_benchmark(name: str, args: list[str], workdir: Path,
                  timeout_s: float | None = None) -> dict:
    out = workdir / f"{name}.json"
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, str(HERE / args[0]), *args[1:], "--out", str(out)],
            cwd=REPO, capture_output=True, text=True, timeout=timeout_s,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)})
    except subprocess.TimeoutExpired:
        print(f"{name}: FAILED (over its {timeout_s:.0f} s budget)", flush=True)
        return {"error": f"over its {timeout_s:.0f} s budget", "wall_s": timeout_s}
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"{name}: FAILED ({tail[0]})", flush=True)
        return {"error": tail[0], "wall_s": wall}
    print(f"{name}: done in {wall:.0f} s", flush=True)
    return {**json.loads(out.read_text()), "wall_s": wall}


def median(stat) -> float | None:
    return stat.get("median") if isinstance(stat, dict) else stat


def ratios(results: dict) -> dict:
    """Speed-ups measured in this run, each as (bb-jax figure) / (baseline figure)."""
    out = {}
    env = results.get("env", {})
    if "jax" in env and "reference" in env:
        ref = median(env["reference"]["env_steps_per_s"])
        largest = max(env["jax"], key=lambda r: r["batch"])
        out["env_jax_largest_batch_vs_reference_loop"] = median(largest["env_steps_per_s"]) / ref
    train, base = results.get("train", {}), results.get("baseline", {})
    if "hidden_sweep" in train and "baseline_trainer" in base:
        b = base["baseline_trainer"]
        same = [r for r in train["hidden_sweep"] if r["hidden_size"] == b["hidden_size"]]
        if same:
            out["ppo_jitted_vs_per_step_trainer"] = (
                median(same[0]["env_steps_per_s"]) / median(b["env_steps_per_s"]))
        tune = results.get("tune", {})
        for sweep in tune.get("sweeps", []):
            per_step_wall = sweep["n_trials"] * sweep["num_steps"] / median(b["env_steps_per_s"])
            out[f"tuner_{sweep['sweep']}_vs_per_step_trials_one_by_one_estimate"] = (
                per_step_wall / sweep["wall_s"])
    pairs = (("tune_1job", "tune_one_by_one"), ("tune", "tune_population_1"))
    for populated, single in pairs:  # same sweep, same process count: population 16 vs 1
        one = {s["sweep"]: s for s in results.get(single, {}).get("sweeps", [])}
        for sweep in results.get(populated, {}).get("sweeps", []):
            if sweep["sweep"] in one:
                out[f"tuner_{sweep['sweep']}_{sweep['n_jobs']}job_population_16_vs_1"] = (
                    one[sweep["sweep"]]["wall_s"] / sweep["wall_s"])
    return out


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def plot(results: dict, plots_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []

    def save(fig, name):
        path = plots_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(path)

    env = results.get("env", {})
    if "jax" in env:
        rows = sorted(env["jax"], key=lambda r: r["batch"])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["batch"] for r in rows], [median(r["env_steps_per_s"]) for r in rows], "o-",
                label="bb-jax view (lax.scan, vmap)")
        ax.axhline(median(env["reference"]["env_steps_per_s"]), color="gray", ls="--",
                   label="plain-Python reference loop")
        ax.set(xscale="log", yscale="log", xlabel="batch size (environments)",
               ylabel="env-steps/s", title="Environment throughput")
        ax.legend()
        save(fig, "env_steps_vs_batch.png")
    train = results.get("train", {})
    if train.get("hidden_sweep"):
        rows = sorted(train["hidden_sweep"], key=lambda r: r["hidden_size"])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["hidden_size"] for r in rows], [median(r["env_steps_per_s"]) for r in rows],
                "o-")
        ax.set(xscale="log", yscale="log", xlabel="hidden size", ylabel="env-steps/s",
               title="PPO training throughput (one member)")
        save(fig, "train_steps_vs_hidden.png")
    if train.get("population_sweep"):
        rows = sorted(train["population_sweep"], key=lambda r: r["population"])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["population"] for r in rows], [median(r["env_steps_per_s"]) for r in rows],
                "o-", label="aggregate")
        ax.plot([r["population"] for r in rows], [r["env_steps_per_s_per_member"] for r in rows],
                "s--", label="per member")
        ax.set(xscale="log", yscale="log", xlabel="population size", ylabel="env-steps/s",
               title="PPO training throughput vs population")
        ax.legend()
        save(fig, "train_steps_vs_population.png")
    sweeps = [s for name in ("tune", "tune_population_1", "tune_1job", "tune_one_by_one")
              for s in results.get(name, {}).get("sweeps", [])]
    if sweeps:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [f"{s['sweep']} {s['n_trials']}x{s['num_steps'] // 1000}k\n"
                  f"pop {s['population_size']}, {s['n_jobs']} job(s)" for s in sweeps]
        ax.bar(labels, [s["wall_s"] for s in sweeps], label="wall")
        ax.bar(labels, [s["compile_s"] or 0 for s in sweeps],
               label="of which compile (measured with 1 job)")
        ax.tick_params(axis="x", labelsize=8)
        ax.set(ylabel="seconds", title="Tuning sweep wall time (cold compile cache)")
        ax.legend()
        save(fig, "sweep_wall_time.png")
    return made


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="GPU sizes (large batches/populations)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plots-dir", type=Path, default=None, help="default: beside --out")
    parser.add_argument("--only", nargs="+", default=None, help="run only these benchmarks")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bb_bench_") as tmp:
        for name, bench_args in plan(args.quick, args.gpu).items():
            if args.only and name not in args.only:
                continue
            budget = GPU_BUDGET_S.get(name) if args.gpu and not args.quick else None
            results[name] = run_benchmark(name, bench_args, Path(tmp), budget)
    summary = {
        "suite": "quick" if args.quick else "full",
        "machine": machine_info(),
        "versions": versions(),
        "ratios": ratios(results),
        "benchmarks": results,
        "wall_s": time.perf_counter() - started,
    }
    plots_dir = args.plots_dir or args.out.parent
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plots_dir.mkdir(parents=True, exist_ok=True)
    summary["plots"] = [str(p) for p in plot(results, plots_dir)]
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["ratios"], indent=2))
    print(f"wrote {args.out} and {len(summary['plots'])} plots in {summary['wall_s']:.0f} s")
    failed = [name for name, r in results.items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
