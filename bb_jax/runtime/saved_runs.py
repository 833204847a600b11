"""A finished run on disk: `save_run` writes its config JSON, metrics JSONL, learning-curve PNG
and each member's parameters (an orbax folder per member, the format of the checkpoints);
`load_run` and `load_params` read them back onto the network of the config, and read the
runs saved before (one flax msgpack file per member) as well.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import msgpack
import numpy as np
from flax import serialization

from bb_jax.agent.config import CRITICS, PPOConfig
from bb_jax.agent.ppo import PPO
from bb_jax.runtime.checkpoints import restore_params, save_params, stored_params
from bb_jax.runtime.runs import SeedRun


def config_json(config: PPOConfig, hyperparams: dict) -> dict:
    return {"config": dataclasses.asdict(config), "hyperparameters": hyperparams}


SAVED_FILES = ("config.json", "metrics.jsonl", "learning_curve.png")  # besides the parameters


LEGACY_SUFFIX = ".msgpack"  # a member's parameters as runs saved them before orbax


def params_file(seed: int, scenario: str, scenarios: list[str]) -> str:
    """The name of a member's parameter folder in a run on `scenarios`."""
    return f"params_seed{seed}" + (f"_{scenario}" if len(scenarios) > 1 else "")


def params_path(folder: Path, seed: int, scenario: str, scenarios: list[str]) -> Path:
    """Where a member's parameters are in the run `folder`: its orbax folder, or the msgpack
    file of a run saved before when only that is there."""
    path = Path(folder) / params_file(seed, scenario, scenarios)
    legacy = path.with_name(path.name + LEGACY_SUFFIX)
    return legacy if not path.exists() and legacy.exists() else path


def saved_files(folder: Path) -> list[Path]:
    """The files and parameter folders `save_run` writes (or wrote, in the older format) that
    `folder` holds now."""
    folder = Path(folder)
    params = [path for path in folder.glob("params_seed*")
              if path.is_dir() or path.suffix == LEGACY_SUFFIX]
    return [*(folder / name for name in SAVED_FILES if (folder / name).exists()), *sorted(params)]


def check_finite(params, where: str) -> None:
    """ValueError (one line) when any parameter is NaN or infinite: a diverged run's policy
    is not worth a figure."""
    if not all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params)):
        raise ValueError(f"{where} holds NaN/inf parameters: that run diverged (retrain it, "
                         "e.g. with a smaller --lr)")


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
        path = save_dir / params_file(seed, scenario, run.scenarios)
        save_params(path, run.population.member_params(i))
        paths[path.name] = path
    plot_curves(run, paths["curve"], run_name)
    return paths


def metric_lines(members: list[tuple[int, str]], curves: dict, first_update: int) -> list[str]:
    """metrics.jsonl lines of `curves` ([members, updates] arrays, on the device or the host)
    whose first update is `first_update`: one JSON object per member and update, member-major
    within the block, keys in `curves`' order. The arrays leave the device in one transfer and
    are formatted column by column: each line is what `json.dumps` writes for the row (floats
    exact, NaN and infinities as null)."""
    host = jax.device_get(dict(curves))
    members = list(members)
    updates = np.shape(host["env_steps"])[1]
    line = np.array([f'{{"seed": {json.dumps(seed)}, "scenario": {json.dumps(scenario)}, '
                     for seed, scenario in members], dtype=object)[:, None]
    update = np.array([str(first_update + t) for t in range(updates)], dtype=object)
    line = line + '"update": ' + update[None, :]
    for key in curves:
        line = line + f", {json.dumps(key)}: " + _json_tokens(np.asarray(host[key]))
    return (line + "}\n").ravel().tolist()


def _json_tokens(values: np.ndarray) -> np.ndarray:
    """object[...] of the JSON text of each element of `values` (bool, int or float; a float
    that is not finite is null), as `json.dumps` writes the Python scalar."""
    if values.dtype == np.bool_:
        return np.where(values, "true", "false").astype(object)
    tokens = np.array(list(map(repr, values.ravel().tolist())), dtype=object)
    tokens = tokens.reshape(values.shape)
    if np.issubdtype(values.dtype, np.floating):
        tokens[~np.isfinite(values)] = "null"
    return tokens


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


def _network_template(config: PPOConfig):
    """The network's parameters as `jax.ShapeDtypeStruct`s, from `jax.eval_shape` (no
    initialisation is run, so this costs no compile)."""
    ppo = PPO(config)
    return jax.eval_shape(ppo.network.init, jax.random.PRNGKey(0),
                          jax.ShapeDtypeStruct((ppo.input_size,), np.float32))


def _layout(tree) -> dict[str, tuple]:
    """{parameter path: (shape, dtype)} of a pytree of arrays, `ShapeDtypeStruct`s or
    (shape, dtype) pairs."""
    leaves = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: isinstance(x, tuple) and len(x) == 2
        and isinstance(x[1], np.dtype))[0]
    return {jax.tree_util.keystr(key, simple=True, separator="/"):
            leaf if isinstance(leaf, tuple) else
            (tuple(np.shape(leaf)), np.dtype(getattr(leaf, "dtype", None) or type(leaf)))
            for key, leaf in leaves}


def _differences(found: dict, expected: dict, shown: int = 3) -> str:
    """What differs between two `_layout`s, the first `shown` differences named."""
    lines = [f"{name} is missing" for name in expected if name not in found]
    lines += [f"{name} is not in the network" for name in found if name not in expected]
    lines += [f"{name} is {found[name][0]} {found[name][1]}, the network's "
              f"{expected[name][0]} {expected[name][1]}"
              for name in expected if name in found and found[name] != expected[name]]
    more = f" (and {len(lines) - shown} more)" if len(lines) > shown else ""
    return "; ".join(lines[:shown]) + more


def _mismatch(path: Path, config: PPOConfig, found: dict) -> ValueError:
    """The one-line error for parameters of layout `found` that are not the network of
    `config`: what differs, and the time input and critic they were saved with when only
    those differ."""
    message = f"checkpoint {path} does not match the network of this config " \
              f"(hidden_size={config.hidden_size}, num_opponents={config.num_opponents}, " \
              f"time_input={config.time_input}, critic={config.critic!r}): " \
              + _differences(found, _layout(_network_template(config)))
    for time_input in (config.time_input, not config.time_input):
        for critic in CRITICS:
            other = config.replace(time_input=time_input, critic=critic)
            if other != config and found == _layout(_network_template(other)):
                message += f"; it was saved with time_input={time_input}, critic={critic!r}"
    return ValueError(message)


def load_params(path: Path, config: PPOConfig):
    """A member's parameters (host numpy pytree) from `path`: an orbax folder `save_run`
    wrote, restored onto the network of `config`, or a msgpack file of a run saved before.
    A tree or a shape that is not the network's, or a file that does not read, raises
    ValueError (one line naming `path` and what differs)."""
    path = Path(path)
    if not path.is_dir():
        return _load_msgpack(path, config)
    try:
        found = _layout(stored_params(path))
    except Exception as err:  # noqa: BLE001  orbax/tensorstore raise many kinds
        raise ValueError(f"checkpoint {path} is not a saved parameter folder: "
                         f"{_first_line(err)}") from None
    template = _network_template(config)
    try:
        return restore_params(path, template)
    except Exception as err:  # noqa: BLE001  a mismatch (ValueError) or a damaged file
        if found != _layout(template):
            raise _mismatch(path, config, found) from None
        raise ValueError(f"checkpoint {path} is damaged: {_first_line(err)}") from None


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _load_msgpack(path: Path, config: PPOConfig):
    """Parameters of a run saved before orbax (flax msgpack), checked against the network:
    that format has no reader that checks shapes against a target."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"checkpoint {path} cannot be read: {err.strerror or err}") from None
    try:
        params = serialization.msgpack_restore(data)
    except (ValueError, TypeError, msgpack.UnpackException) as err:  # a damaged file
        raise ValueError(f"checkpoint {path} is not a saved parameter file: {err}") from None
    found = _layout(params)
    if found != _layout(_network_template(config)):
        raise _mismatch(path, config, found)
    return params


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
            path = params_path(folder, seed, scenario, scenarios)
            params[(seed, scenario)] = load_params(path, config)
    return SavedRun(config, saved["hyperparameters"], params)
