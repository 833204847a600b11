"""Checkpoints of a training run (orbax): a run interrupted after some chunks continues from
its checkpoint and ends bit-identical to the run that was never stopped; train_simple.py's
--resume after kill -9; the usage errors around --resume; a finished run read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from reliability_helpers import counting_compiles, kill_9_after_a_checkpoint

import bb_jax
from bb_jax.agent.config import PPOConfig
from bb_jax.cli import train_main
from bb_jax.runtime.checkpoints import Checkpoints
from bb_jax.runtime.runs import train_seeds

ROOT = Path(__file__).resolve().parents[1]
CONFIG = PPOConfig(scenario="easy", hidden_size=16, batch_size=256, total_steps=8 * 256)
SEEDS = [3, 4]


def _params(run):
    return [jax.tree.map(np.asarray, run.population.member_params(i))
            for i in range(len(run.members))]


def _same(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))


class _StopAfter:
    """on_chunk that raises KeyboardInterrupt (as Ctrl-C would) once `n` chunks are done."""

    def __init__(self, n: int):
        self.n, self.seen = n, 0

    def __call__(self, chunk, first_update):
        self.seen += 1
        if self.seen == self.n:
            raise KeyboardInterrupt


def test_an_interrupted_run_continues_bit_identical(tmp_path):
    """Interrupted while the first of 4 chunks is logged (the second already dispatched: a
    chunk is logged while the next one trains; no periodic checkpoint), the run saves its
    state after 2 chunks; a second call continues from it; parameters, curves and evaluations
    equal the uninterrupted run's."""
    full = train_seeds(CONFIG, {}, SEEDS, chunk_updates=2, eval_episodes=4, progress=None)
    checkpoints = Checkpoints(tmp_path / "ck")
    with pytest.raises(KeyboardInterrupt):
        train_seeds(CONFIG, {}, SEEDS, chunk_updates=2, eval_episodes=4, progress=None,
                    checkpoints=checkpoints, on_chunk=_StopAfter(1))
    assert checkpoints.latest() == 4  # updates done when it stopped
    seen = []
    with counting_compiles() as compiled:
        resumed = train_seeds(CONFIG, {}, SEEDS, chunk_updates=2, eval_episodes=4,
                              progress=None, checkpoints=checkpoints,
                              on_chunk=lambda chunk, first: seen.append(
                                  (first, chunk["env_steps"].shape[1])))
    # the restored state is placed like a new one: the compiled programs serve it
    assert not [name for name in compiled if "run_updates" in name or "evaluate" in name], \
        compiled
    assert seen == [(1, 4), (5, 2), (7, 2)]  # the restored curves, then the two chunks left
    assert _same(_params(resumed), _params(full))
    for name in full.curves:
        np.testing.assert_array_equal(resumed.curves[name], full.curves[name], err_msg=name)
    np.testing.assert_array_equal(resumed.eval_sampled, full.eval_sampled)


def test_a_ctrl_c_during_a_periodic_checkpoint_waits_for_it(tmp_path, monkeypatch):
    """A SIGINT that arrives while a periodic checkpoint is being written lands after it:
    the checkpoint is whole, it is written once (no second save of the same step), and the
    run stops with KeyboardInterrupt."""
    import signal

    from bb_jax import interrupts

    checkpoints = Checkpoints(tmp_path / "ck")
    saves = []
    real_save = Checkpoints.save

    def save_with_a_signal(self, updates, *args):
        saves.append(updates)
        if len(saves) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # handled while the save goes on
        real_save(self, updates, *args)

    monkeypatch.setattr(Checkpoints, "save", save_with_a_signal)
    with pytest.raises(KeyboardInterrupt), interrupts.raising():
        train_seeds(CONFIG, {}, SEEDS, chunk_updates=2, eval_episodes=4, progress=None,
                    checkpoints=checkpoints, checkpoint_every=2)
    assert saves == [2]
    assert checkpoints.latest() == 2
    monkeypatch.undo()  # the whole checkpoint resumes into the run that never stopped
    resumed = train_seeds(CONFIG, {}, SEEDS, chunk_updates=2, eval_episodes=4, progress=None,
                          checkpoints=checkpoints)
    full = train_seeds(CONFIG, {}, SEEDS, chunk_updates=2, eval_episodes=4, progress=None)
    assert _same(_params(resumed), _params(full))


def test_periodic_checkpoints_keep_the_latest_two(tmp_path):
    checkpoints = Checkpoints(tmp_path / "ck")
    train_seeds(CONFIG, {}, SEEDS, chunk_updates=2, eval_episodes=4, progress=None,
                checkpoints=checkpoints, checkpoint_every=2)
    assert checkpoints.manager.all_steps() == [6, 8]


def _train(*args) -> list[str]:
    """train_simple.py's arguments for CONFIG's run (so it shares CONFIG's compiled programs)."""
    return ["--scenario", "easy", "--num-steps", str(CONFIG.total_steps), "--batch-size",
            str(CONFIG.batch_size), "--hidden-size", str(CONFIG.hidden_size), "--seeds",
            *map(str, SEEDS), "--eval-episodes", "4", "--chunk-updates", "2", *map(str, args)]


@pytest.mark.parametrize("argv,message", [
    (["--resume", "{tmp}/none"], "no run of train_simple.py there"),
    (["--resume", "{tmp}/none", "--lr", "0.001"], "drop --lr 0.001"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be > 0"),
])
def test_resume_usage_errors(tmp_path, capsys, argv, message):
    code = train_main([a.format(tmp=tmp_path) for a in argv]
                      + ["--save-path", str(tmp_path / "run")] * (argv[0] != "--resume"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_a_new_run_does_not_overwrite_an_unfinished_one(tmp_path, capsys):
    folder = tmp_path / "run"
    (folder / "checkpoints" / "4").mkdir(parents=True)
    assert train_main(_train("--save-path", folder)) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_then_resume_ends_like_the_run_never_stopped(tmp_path):
    """train_simple.py killed with SIGKILL after its first checkpoint, then --resume: every
    parameter of both seeds equals an uninterrupted run's; the finished run reads back with
    bb_jax.load_run and its checkpoints are gone; its MLflow run goes on in the same run."""
    from mlflow import MlflowClient

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = [sys.executable, str(ROOT / "scripts" / "train_simple.py")]
    argv = ["--scenario", "easy", "--num-steps", "40960", "--batch-size", "512",
            "--hidden-size", "32", "--seeds", "3", "4", "--eval-episodes", "8",
            "--chunk-updates", "4", "--checkpoint-every", "2048", "--log", "mlflow"]
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    done = subprocess.run([*script, *argv, "--save-path", str(whole)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    proc = subprocess.Popen([*script, *argv, "--save-path", str(stopped)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    steps = stopped / "checkpoints"
    kill_9_after_a_checkpoint(proc, steps)
    assert not (stopped / "config.json").exists()  # it did not finish
    resumed = subprocess.run([*script, "--resume", str(stopped)], env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = bb_jax.load_run(whole), bb_jax.load_run(stopped)
    assert a.config == b.config and a.hyperparams == b.hyperparams
    assert sorted(a.params) == sorted(b.params) == [(3, "easy"), (4, "easy")]
    assert all(_same(a.params[k], b.params[k]) for k in a.params)
    assert not (stopped / "checkpoints").exists()
    lines = (stopped / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["update"] for x in lines] == \
        [json.loads(x)["update"] for x in (whole / "metrics.jsonl").read_text().splitlines()]
    # the resumed run logged into the MLflow run it had started: every step, the same values
    histories = []
    for folder in (whole, stopped):
        known = json.loads((folder / "mlflow_run.json").read_text())
        client = MlflowClient(known["tracking_uri"])
        assert client.get_run(known["run_id"]).info.status == "FINISHED"
        histories.append({(m.step, m.value) for m in client.get_metric_history(
            known["run_id"], "seed4/value_loss")})
    assert histories[0] == histories[1] and len(histories[0]) == 40960 // 512


def test_live_metrics_read_back_by_tensorboard_and_mlflow(tmp_path):
    """--log tensorboard,mlflow: every seed's return and diagnostics per update, at its env
    steps, as TensorBoard's EventAccumulator and MLflow's client read them; they equal
    metrics.jsonl's. The MLflow run holds the run's hyperparameters and is finished."""
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = tmp_path / "run"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert train_main(_train("--save-path", folder, "--log", "tensorboard,mlflow",
                             "--mlflow-uri", uri, "--lr", "0.0007", "--run-name", "r1")) == 0
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"seed3/mean_return", "seed4/mean_return", "seed3/approx_kl",
            "seed4/explained_variance"} <= tags
    client = MlflowClient(uri)
    run = client.get_run(json.loads((folder / "mlflow_run.json").read_text())["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "r1"
    assert run.data.params["learning_rate"] == "0.0007"
    assert run.data.params["hidden_size"] == str(CONFIG.hidden_size)
    assert tags == set(run.data.metrics)
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    for seed in (3, 4):
        mine = [r for r in rows if r["seed"] == seed]
        read = events.Scalars(f"seed{seed}/value_loss")
        logged = sorted(client.get_metric_history(run.info.run_id, f"seed{seed}/value_loss"),
                        key=lambda m: m.step)
        assert [e.step for e in read] == [m.step for m in logged] == \
            [r["update"] * CONFIG.batch_size for r in mine]
        assert [e.value for e in read] == pytest.approx([r["value_loss"] for r in mine])
        assert [m.value for m in logged] == pytest.approx([r["value_loss"] for r in mine])


def test_an_unknown_logger_is_refused(tmp_path, capsys):
    assert train_main(_train("--save-path", tmp_path / "run", "--log", "wandb")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "valid loggers are tensorboard, mlflow" in err[0]
