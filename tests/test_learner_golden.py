"""The learner's figures are pinned bit for bit across the move to the env's public API.

A few tiny training runs (exact and shape-padded programs, with and without the time input),
their evaluation (sampled, greedy, one recorded episode), the baselines' returns, and the
trials of a tiny study and a tiny PBT run are hashed leaf by leaf. The hashes in
tests/data/learner_golden.json were computed by the learner of 2026-12-07 that stepped the game
through its draw-level functions; the learner that sees only `reset` / `step` / the spaces must
reproduce them. Regenerate only for a change meant to alter
the figures (and say why in docs/PPO.md):

    PYTHONPATH=$PWD python tests/test_learner_golden.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import jax
import pytest
from test_env_golden import fingerprint

from bb_jax.agent import config as config_module
from bb_jax.agent import shapes as shapes_module
from bb_jax.agent.config import PPOConfig, ShapeChoices, make_hyperparams
from bb_jax.agent.ppo import PPO
from bb_jax.runtime.baselines import batch_returns
from bb_jax.runtime.evaluation import record_episode

GOLDEN = Path(__file__).resolve().parent / "data" / "learner_golden.json"
UPDATES, EPISODES = 2, 8
TINY = dict(hidden_size=16, batch_size=64, num_envs=16, num_minibatches=2, total_steps=128)
# name -> the run's config; "padded": a member of hidden 8, batch 128 in a program of hidden 16,
# batch 256 whose members have their own environment counts (as on an accelerator)
CONFIGS = {
    "easy_time_separate": PPOConfig(scenario="easy", **TINY),
    "default_plain_shared": PPOConfig(scenario="default", time_input=False, critic="shared",
                                      adv_norm="minibatch", **TINY),
}
SHAPES = ShapeChoices(hidden_sizes=(8, 16), batch_sizes=(128, 256))


def _accelerator_envs(batch_size, backend=None):
    """default_num_envs as on an accelerator: 16-step rollouts, batch / 16 environments."""
    return max(config_module.CPU_NUM_ENVS, batch_size // config_module.ACCELERATOR_ROLLOUT)


def _train_and_evaluate(ppo: PPO, shape=None, until=None):
    hp = make_hyperparams()
    state = jax.jit(ppo.init)(jax.random.PRNGKey(3), hp, None, shape)
    state, metrics = jax.jit(ppo.run_updates, static_argnums=2)(state, hp, UPDATES, None, shape,
                                                               until)
    key = jax.random.PRNGKey(5)
    sampled = jax.jit(ppo.evaluate, static_argnums=(2, 3))(state.params, key, EPISODES, False)
    greedy = jax.jit(ppo.evaluate, static_argnums=(2, 3))(state.params, key, EPISODES, True)
    # state.obs is left out: it holds the view's features, a representation, not a figure
    return {"params": state.params, "opt_state": state.opt_state, "metrics": metrics,
            "sampled": sampled, "greedy": greedy}


def _exact(name: str):
    config = CONFIGS[name]
    out = _train_and_evaluate(PPO(config))
    run = SimpleNamespace(config=config, params={(0, config.scenario): out["params"]})
    episode = record_episode(run, config.scenario, None, EPISODES, jax.random.PRNGKey(9))
    return {**out, "episode": {k: v for k, v in episode.items() if k != "seed"}}


def _padded(monkeypatch):
    monkeypatch.setattr(config_module, "default_num_envs", _accelerator_envs)
    monkeypatch.setattr(shapes_module, "default_num_envs", _accelerator_envs)
    base = PPOConfig(scenario="hard", num_minibatches=2, total_steps=None)
    ppo = PPO(SHAPES.config(base), static_epochs=True, shapes=SHAPES)
    return _train_and_evaluate(ppo, SHAPES.member(8, 128), jax.numpy.int32(UPDATES))


def _baselines():
    return batch_returns(["random", "firefighter", "liar"], ["easy", "hard", "default"],
                         EPISODES, jax.random.PRNGKey(2))


# a tiny study and a tiny PBT run on `easy`: their trials' values, intermediate values and
# parameters are what a study's figures are made of
STUDY = ["--scenario", "easy", "--n-trials", "2", "--population-size", "2", "--num-steps",
         "4096", "--eval-interval", "1024", "--seed", "5", "--seeds-per-trial", "2", "--pruner",
         "none", "--eval-episodes", "4", "--fix", "hidden_size=64,batch_size=512",
         "--no-validate", "--no-incumbent"]
PBT = ["--strategy", "pbt", "--scenario", "easy", "--population-size", "4", "--fix",
       "hidden_size=64,batch_size=512", "--num-steps", "3072", "--pbt-interval", "1024",
       "--eval-episodes", "8", "--seed", "3", "--no-validate"]


def _trials(argv: list[str], folder: Path) -> list:
    """[value, intermediate values, params] of each trial of a tune_main run in `folder`."""
    from bb_jax.cli import tune_main

    assert tune_main([*argv, "--study-name", "g", "--output-dir", str(folder / "out"),
                      "--storage", f"sqlite:///{folder / 'g.db'}"]) == 0
    results = json.loads((folder / "out" / "g_results.json").read_text())
    return [[t["value"], t["intermediate_values"], t["params"]] for t in results["trials"]]


def compute(name: str, monkeypatch, folder: Path | None = None) -> dict[str, str]:
    if name in ("study", "pbt"):
        return fingerprint(json.dumps(_trials(STUDY if name == "study" else PBT, folder)))
    if name == "padded":
        return fingerprint(_padded(monkeypatch))
    if name == "baselines":
        return fingerprint(_baselines())
    return fingerprint(_exact(name))


def _compute_as_users_compile(name: str, folder: Path) -> dict[str, str]:
    """`compute` in a process at XLA's default optimisation level: the quick tier compiles at
    a lower one (Makefile), where training's floats round otherwise, and the golden hashes
    are the figures users' commands compute."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    code = ("import json, sys, pytest; from pathlib import Path; import test_learner_golden as g; "
            f"print(json.dumps(g.compute({name!r}, pytest.MonkeyPatch(), Path({str(folder)!r}))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


NAMES = [*CONFIGS, "padded", "baselines", "study", "pbt"]


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow)
    if n in ("default_plain_shared", "padded", "study", "pbt") else n for n in NAMES])
def test_learner_figures_bit_identical_to_golden(name, monkeypatch, tmp_path):
    golden = json.loads(GOLDEN.read_text())[name]
    if "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", ""):
        got = _compute_as_users_compile(name, tmp_path)
    else:
        got = compute(name, monkeypatch, tmp_path)
    assert got.keys() == golden.keys()
    moved = [leaf for leaf in golden if got[leaf] != golden[leaf]]
    assert not moved, f"{name}: figures changed in {moved}"


if __name__ == "__main__":
    patch = pytest.MonkeyPatch()
    result = {}
    for n in NAMES:
        with tempfile.TemporaryDirectory() as folder:
            result[n] = compute(n, patch, Path(folder))
        patch.undo()
    GOLDEN.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
