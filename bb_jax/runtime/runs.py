"""Train one configuration over several seeds in one population call, and save the run:
parameters (flax serialization), config JSON, metrics JSONL, learning-curve PNG, results JSON."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import jax
import msgpack
import numpy as np
from flax import serialization

from bb_jax import interrupts
from bb_jax.game.scenarios import get_scenario, stack_scenarios
from bb_jax.stats import mean_ci95
from bb_jax.train.checkpoints import Checkpoints
from bb_jax.train.config import CRITICS, DEFAULT_HYPERPARAMS, PPOConfig, stack_hyperparams
from bb_jax.train.population import Population, evaluation_key
from bb_jax.train.ppo import PPO
from bb_jax.train.schedule import Schedule


def plan_chunks(num_updates: int, target: int) -> list[int]:
    """Chunk lengths (updates) summing to num_updates: the largest divisor of num_updates
    that is <= target, so one compiled chunk serves the whole run; when that divisor is below
    target / 2 (97 updates, a prime, would run as 97 one-update calls, ~15% slower on a
    CPU), chunks of `target` and one shorter last chunk: two compiled lengths."""
    target = max(1, min(int(target), num_updates))
    length = next(n for n in range(target, 0, -1) if num_updates % n == 0)
    if 2 * length >= target:
        return [length] * (num_updates // length)
    rest = num_updates % target
    return [target] * (num_updates // target) + ([rest] if rest else [])


def joined(chunks: list[dict]) -> dict[str, np.ndarray]:
    """The curves of consecutive chunks ([members, updates] arrays each) as one run's."""
    return {k: np.concatenate([np.asarray(c[k]) for c in chunks], axis=1) for k in chunks[0]}


@dataclasses.dataclass
class SeedRun:
    """Result of `train_seeds`: one member per (seed, scenario), seed-major (member
    i * K + k is seed i on scenario k of K); curves [S * K, num_updates] and final figures."""

    config: PPOConfig
    hyperparams: dict
    seeds: list[int]
    curves: dict[str, np.ndarray]
    eval_sampled: np.ndarray  # float32[S * K, M]
    eval_greedy: np.ndarray
    wall_time_s: float
    population: Population
    scenarios: list[str] = dataclasses.field(default_factory=list)  # default: the config's
    schedule: list[dict] | None = None  # changes of the hyperparameters (schedule-file form)

    def __post_init__(self):
        self.scenarios = list(self.scenarios) or [self.config.scenario]

    @property
    def members(self) -> list[tuple[int, str]]:
        """(seed, scenario) of each member, in population order."""
        return [(seed, name) for seed in self.seeds for name in self.scenarios]

    @property
    def final_returns(self) -> np.ndarray:
        """float[S, K]: each member's mean of its last 100 training episodes."""
        return self.curves["mean_return"][:, -1].reshape(len(self.seeds), len(self.scenarios))

    def summary(self) -> dict:
        """Final figures; with several scenarios `final_return` and the evaluations are the
        per-seed means over scenarios (the tuner's objective) and `per_scenario` gives each
        scenario's own."""
        finals = self.final_returns
        mean, ci = mean_ci95(finals.mean(axis=1))
        shape = (len(self.seeds), len(self.scenarios), -1)
        s_mean, s_ci = mean_ci95(self.eval_sampled.reshape(shape).mean(axis=(1, 2)))
        g_mean, g_ci = mean_ci95(self.eval_greedy.reshape(shape).mean(axis=(1, 2)))
        steps = int(self.curves["env_steps"][0, -1]) * len(self.members)
        per_scenario = {}
        for k, name in enumerate(self.scenarios):
            k_mean, k_ci = mean_ci95(finals[:, k])
            per_scenario[name] = {"mean": k_mean, "ci95": k_ci, "per_seed": finals[:, k].tolist()}
        return {
            "scenario": ",".join(self.scenarios),
            "scenarios": self.scenarios,
            "num_opponents": self.config.num_opponents,
            "seeds": self.seeds,
            "final_return": {"mean": mean, "ci95": ci,
                             "per_seed": finals.mean(axis=1).tolist()},
            "per_scenario": per_scenario,
            "eval_return_sampled": {"mean": s_mean, "ci95": s_ci},
            "eval_return_greedy": {"mean": g_mean, "ci95": g_ci},
            "env_steps_total": steps,
            "wall_time_s": self.wall_time_s,
            "env_steps_per_s": steps / self.wall_time_s if self.wall_time_s > 0 else None,
        }


def train_seeds(
    config: PPOConfig,
    hyperparams: dict,
    seeds: list[int],
    chunk_updates: int = 10,
    eval_episodes: int = 200,
    progress: Callable[[int, str], None] | None = None,
    scenarios: list[str] | None = None,
    init_params=None,
    checkpoints: Checkpoints | None = None,
    checkpoint_every: int = 0,
    on_chunk: Callable[[dict, int], None] | None = None,
    schedule: Schedule | None = None,
) -> SeedRun:
    """Train every seed of one configuration on every scenario (default: the config's) as one
    vmapped population of seeds x scenarios, in chunks. A seed's PRNG key is the same on every
    scenario, as in the tuner's trials.

    init_params: network parameters (`load_params`) every member starts from instead of its
    own initialisation (the optimizer state starts fresh). checkpoints: the run continues
    from their latest checkpoint if there is one, saves one every `checkpoint_every` updates
    (rounded up to whole chunks; 0: none) and one when interrupted (KeyboardInterrupt, which
    is raised again). on_chunk(metrics, first_update): each chunk's metrics ([members,
    updates] arrays) as soon as it is done, for live logs. progress(env steps per seed done,
    text): after each chunk (`bb_jax.progress.Progress.update`). schedule: hyperparameters
    that change between chunks (each change on a chunk boundary), over `hyperparams`."""
    scenarios = list(scenarios or [config.scenario])
    hp_row = {**DEFAULT_HYPERPARAMS, **hyperparams}
    members = [(seed, name) for seed in seeds for name in scenarios]
    keys = jax.numpy.stack([jax.random.PRNGKey(seed) for seed, _ in members])
    tables = stack_scenarios([get_scenario(name, config.num_opponents + 1)
                              for _, name in members])
    start = time.perf_counter()
    population = Population(config, stack_hyperparams([hp_row] * len(members)), keys, tables)
    if init_params is not None:
        population.state = population.state.replace(params=jax.tree.map(
            lambda row, x: jax.device_put(np.broadcast_to(x, row.shape).astype(row.dtype),
                                          row.sharding),
            population.state.params, init_params))
    plan = plan_chunks(config.num_updates, chunk_updates)
    if schedule is not None:
        schedule.check_boundaries(plan[0])
    chunks, done, earlier_s = [], 0, 0.0
    if checkpoints is not None and checkpoints.latest() is not None:
        restored = checkpoints.restore(population.state)
        population.state, done = restored.state, restored.updates
        chunks, earlier_s = [restored.curves], restored.settings["elapsed_s"]
        if on_chunk is not None:
            on_chunk(restored.curves, 1)
    loop = _ChunkLoop(population, config, len(members), checkpoints, checkpoint_every,
                      progress, on_chunk, start - earlier_s, schedule, hp_row)
    loop.run(plan, chunks, done)
    curves = joined(chunks)
    eval_keys = jax.numpy.stack([evaluation_key(int(seed)) for seed, _ in members])
    eval_sampled = population.evaluate(eval_keys, eval_episodes, greedy=False)
    eval_greedy = population.evaluate(eval_keys, eval_episodes, greedy=True)
    return SeedRun(config, hp_row, list(seeds), curves, eval_sampled, eval_greedy,
                   time.perf_counter() - start + earlier_s, population, scenarios,
                   None if schedule is None else schedule.as_env_steps(config.batch_size))


@dataclasses.dataclass
class _ChunkLoop:
    """The chunks of `train_seeds` after the `done` updates already trained: progress lines,
    live metrics and checkpoints (periodic, and on an interrupt)."""

    population: Population
    config: PPOConfig
    num_members: int
    checkpoints: Checkpoints | None
    checkpoint_every: int
    progress: Callable[[int, str], None] | None
    on_chunk: Callable[[dict, int], None] | None
    started: float  # perf_counter of the run's start, earlier sessions' time included
    schedule: Schedule | None = None
    base: dict | None = None  # the hyperparameters the schedule changes

    def run(self, plan: list[int], chunks: list[dict], done: int) -> None:
        saved, in_force = done, self.base  # the population starts with `base`
        try:
            for length in plan[done // plan[0]:]:
                row = self.schedule.at(done, self.base) if self.schedule else self.base
                if row != in_force:  # set only when a change starts (no recompile either way)
                    self.population.set_hyperparams(stack_hyperparams([row] * self.num_members))
                    in_force = row
                with interrupts.deferred():  # the state, its curves and `done` agree
                    chunks.append(self.population.run(length))  # on the device until read
                    done += length
                interrupts.raise_pending()  # a signal whose exception JAX swallowed
                if self.on_chunk is not None:
                    self.on_chunk(chunks[-1], done - length + 1)
                if self.progress is not None:  # the one value read per chunk (it waits)
                    ret = np.nanmean(np.asarray(chunks[-1]["mean_return"][:, -1]))
                    steps = done * self.config.batch_size
                    rate = steps * self.num_members / (time.perf_counter() - self.started)
                    self.progress(steps, f"{rate:>9,.0f} steps/s  return {ret:8.2f}")
                if self.checkpoint_every and done - saved >= self.checkpoint_every:
                    self._save(done, chunks)
                    saved = done
        except KeyboardInterrupt:
            if done > saved:
                with interrupts.deferred():  # a second Ctrl-C waits for the checkpoint
                    self._save(done, chunks)
            raise

    def _save(self, done: int, chunks: list[dict]) -> None:
        if self.checkpoints is None:
            return
        curves = joined(chunks)
        self.checkpoints.save(done, self.population.state, curves,
                              {"elapsed_s": time.perf_counter() - self.started})


def config_json(config: PPOConfig, hyperparams: dict) -> dict:
    return {"config": dataclasses.asdict(config), "hyperparameters": hyperparams}


def save_run(run: SeedRun, save_dir: Path, run_name: str) -> dict[str, Path]:
    """Write the run's artifacts into `save_dir`; returns their paths by kind."""
    save_dir.mkdir(parents=True, exist_ok=True)
    paths = {"config": save_dir / "config.json", "metrics": save_dir / "metrics.jsonl",
             "curve": save_dir / "learning_curve.png"}
    paths["config"].write_text(json.dumps(
        {"run_name": run_name, "seeds": run.seeds, "scenarios": run.scenarios,
         **config_json(run.config, run.hyperparams),
         **({"schedule": run.schedule} if run.schedule is not None else {})},
        indent=2))
    with paths["metrics"].open("w") as f:
        f.writelines(metric_lines(run.members, run.curves, 1))
    for i, (seed, scenario) in enumerate(run.members):
        name = f"params_seed{seed}" + (f"_{scenario}" if len(run.scenarios) > 1 else "")
        path = save_dir / f"{name}.msgpack"
        path.write_bytes(serialization.to_bytes(run.population.member_params(i)))
        paths[name] = path
    plot_curves(run, paths["curve"], run_name)
    return paths


def metric_lines(members: list[tuple[int, str]], curves: dict, first_update: int) -> list[str]:
    """metrics.jsonl lines of `curves` ([members, updates] arrays) whose first update is
    `first_update`: one JSON object per member and update, member-major within the block."""
    lines = []
    for i, (seed, scenario) in enumerate(members):
        for t in range(np.shape(curves["env_steps"])[1]):
            row = {"seed": seed, "scenario": scenario, "update": first_update + t}
            row.update({k: _json_number(np.asarray(v[i, t])) for k, v in curves.items()})
            lines.append(json.dumps(row) + "\n")
    return lines


def _json_number(x):
    x = x.item()
    return None if isinstance(x, float) and not np.isfinite(x) else x


DIAGNOSTICS = ("approx_kl", "clip_fraction", "entropy", "explained_variance", "value_loss")


def plot_curves(run: SeedRun, path: Path, title: str) -> None:
    """The learning curve (mean of the last 100 returns per member and their mean) above a
    panel of PPO's diagnostics per update, mean over members: KL, clip fraction, entropy,
    explained variance and value loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = run.curves["env_steps"][0]
    fig = plt.figure(figsize=(10, 6.5))
    grid = fig.add_gridspec(2, len(DIAGNOSTICS), height_ratios=(2, 1))
    ax = fig.add_subplot(grid[0, :])
    for i, (seed, scenario) in enumerate(run.members):
        label = f"seed {seed}" + (f" {scenario}" if len(run.scenarios) > 1 else "")
        ax.plot(steps, run.curves["mean_return"][i], alpha=0.4, label=label)
    ax.plot(steps, np.nanmean(run.curves["mean_return"], axis=0), color="black", label="mean")
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("mean of last 100 episode returns")
    ax.set_title(title)
    ax.legend(fontsize="small")
    for k, name in enumerate(DIAGNOSTICS):
        panel = fig.add_subplot(grid[1, k])
        panel.plot(steps, np.nanmean(run.curves[name], axis=0), color="C3")
        panel.set_title(name.replace("_", " "), fontsize="small")
        panel.tick_params(labelsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _param_shapes(config: PPOConfig):
    """The network's parameter structure, shapes and dtypes, from `jax.eval_shape` (no
    initialisation is run, so this costs no compile)."""
    ppo = PPO(config)
    template = jax.eval_shape(ppo.network.init, jax.random.PRNGKey(0),
                              jax.ShapeDtypeStruct((ppo.input_size,), np.float32))
    return jax.tree.map(lambda s: (tuple(s.shape), np.dtype(s.dtype)), template)


def _network_fields(config: PPOConfig) -> str:
    return (f"hidden_size={config.hidden_size}, num_opponents={config.num_opponents}, "
            f"time_input={config.time_input}, critic={config.critic!r}")


def load_params(path: Path, config: PPOConfig):
    """Parameters saved by `save_run`, checked against the network of `config`: any difference
    in structure, shape or dtype raises ValueError (one line; it names the time input and
    critic the checkpoint was saved with when only those differ)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ValueError(f"checkpoint {path} cannot be read: {err.strerror or err}") from None
    try:
        params = serialization.msgpack_restore(data)
    except (ValueError, TypeError, msgpack.UnpackException) as err:  # a damaged file
        raise ValueError(f"checkpoint {path} is not a saved parameter file: {err}") from None
    found = jax.tree.map(lambda x: (np.shape(x), np.asarray(x).dtype), params)
    if found == _param_shapes(config):
        return params
    message = f"checkpoint {path} does not match the network of this config " \
              f"({_network_fields(config)})"
    for time_input in (config.time_input, not config.time_input):
        for critic in CRITICS:
            other = config.replace(time_input=time_input, critic=critic)
            if other != config and found == _param_shapes(other):
                message += f": it was saved with time_input={time_input}, critic={critic!r}"
    raise ValueError(message)


@dataclasses.dataclass
class SavedRun:
    """A finished run read back (`load_run`): its config, hyperparameters, and each member's
    network parameters by (seed, scenario)."""

    config: PPOConfig
    hyperparams: dict
    params: dict[tuple[int, str], dict]


def load_run(folder: Path) -> SavedRun:
    """The run `save_run` wrote into `folder` (ValueError, one line, when it is not one)."""
    folder = Path(folder)
    try:
        saved = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{folder} holds no finished run (config.json: {err})") from None
    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    config = PPOConfig(**{k: v for k, v in saved["config"].items() if k in fields})
    scenarios = saved.get("scenarios") or [config.scenario]
    params = {}
    for seed in saved["seeds"]:
        for scenario in scenarios:
            name = f"params_seed{seed}" + (f"_{scenario}" if len(scenarios) > 1 else "")
            params[(seed, scenario)] = load_params(folder / f"{name}.msgpack", config)
    return SavedRun(config, saved["hyperparameters"], params)

