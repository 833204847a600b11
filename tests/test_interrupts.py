"""Every command stops on Ctrl-C with one line, exit 130, keeping what it finished.

- The two waits that would hold a Ctrl-C back (a blocking wait for a compiled program, a
  compile or program run from the main thread) give way to it: checked on a program that
  blocks inside XLA until the test lets it go (quick).
- evaluate.py and results_report.py, interrupted, write nothing and say so (quick, in-process,
  and evaluate.py as a real process sent SIGINT); results_report.py and PBT as real processes
  sent SIGINT mid-training (slow): PBT keeps its finished exploit steps (checkpoint, the
  members' intermediate values).

The other commands' tests: train_simple.py tests/test_tutorial.py, the tuner
tests/test_reliability.py::test_interrupt_stops_cleanly, validate_best.py
tests/test_guards.py::test_validate_best_stops_on_ctrl_c_within_seconds_keeping_the_study.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import optuna
import pytest
from reliability_helpers import REPO, Tuner, wait_for
from test_guards import saved_run

from bb_jax import interrupts
from bb_jax.cli import evaluate_main, results_main

# A stopped command's exit, from its SIGINT: on an idle machine well under 5 s; the bound
# leaves room for a loaded one (2 shared cores) and is far below the interrupted work's length
STOP_S = 30
LONG_ITERATIONS = 100_000  # of a 64 x 64 matrix product: seconds of work on any CPU


@jax.jit
def long_program(x, n):
    """`n` dependent 64 x 64 matrix products: a program that runs for a while in XLA, where a
    blocking wait for it holds Python's signal handlers back."""
    return jax.lax.fori_loop(0, n, lambda i, y: jnp.tanh(y @ y * 0.01), x)


class CtrlC:
    """SIGINT to this process (as a Ctrl-C would) SETTLE_S after a program is dispatched
    (`send_after(out)`): by then the main thread is waiting for it, and it runs for seconds."""

    SETTLE_S = 0.2

    def __init__(self):
        self.out, self.dispatched, self.ready_when_sent = None, threading.Event(), None
        self.thread = threading.Thread(target=self._send)
        self.thread.start()

    def send_after(self, out: jax.Array) -> jax.Array:
        self.out = out
        self.dispatched.set()
        return out

    def _send(self) -> None:
        if self.dispatched.wait(60):
            time.sleep(self.SETTLE_S)
            self.ready_when_sent = self.out.is_ready()
            os.kill(os.getpid(), signal.SIGINT)

    def check(self) -> None:
        """After the interrupt was raised: it did not wait for the program to end."""
        self.thread.join()
        if self.ready_when_sent:
            pytest.skip(f"{LONG_ITERATIONS} products ran in under {self.SETTLE_S} s")
        assert not self.out.is_ready(), "the interrupt waited for the program"
        self.out.block_until_ready()


def test_wait_ready_gives_way_to_ctrl_c_while_a_program_runs():
    x = jnp.eye(64)
    long_program(x, 1).block_until_ready()  # compiled
    ctrl_c = CtrlC()
    with interrupts.raising(), pytest.raises(KeyboardInterrupt):
        interrupts.wait_ready({"out": ctrl_c.send_after(long_program(x, LONG_ITERATIONS))})
    ctrl_c.check()
    out = long_program(x, 2)
    assert interrupts.wait_ready(out) is out and out.is_ready()


def test_in_background_gives_way_to_ctrl_c_and_hands_back_results_and_errors():
    x = jnp.eye(64)
    ctrl_c = CtrlC()
    with interrupts.raising(), pytest.raises(KeyboardInterrupt):
        # compiled and waited for in the work
        interrupts.in_background(
            lambda: np.asarray(ctrl_c.send_after(long_program(x, LONG_ITERATIONS))))
    ctrl_c.check()
    with interrupts.raising():
        assert interrupts.in_background(lambda: 7) == 7
        with pytest.raises(ValueError, match="bad"):
            interrupts.in_background(lambda: int("bad"))


def test_evaluate_interrupted_writes_nothing_and_says_so(tmp_path, capsys, monkeypatch):
    from bb_jax.runtime import evaluation

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # what Ctrl-C raises while the policy plays

    monkeypatch.setattr(evaluation, "evaluate_run", interrupted)
    run = saved_run(tmp_path / "run")
    outputs = [tmp_path / "figures.json", tmp_path / "replay.html"]
    assert evaluate_main([str(run), "--episodes", "4", "--results-json", str(outputs[0]),
                          "--replay", str(outputs[1])]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == "interrupted: nothing written"
    assert captured.out == "" and not any(p.exists() for p in outputs)


def test_results_report_interrupted_leaves_its_outputs_as_they_were(tmp_path, capsys,
                                                                    monkeypatch):
    from bb_jax.cli import results

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "run_report", interrupted)
    out = tmp_path / "RESULTS.md"
    out.write_text("the earlier report\n")
    argv = ["--scenario", "easy", "--seeds", "0", "--out", str(out),
            "--plot", str(tmp_path / "r.png"), "--json", str(tmp_path / "r.json")]
    assert results_main(argv) == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("interrupted: nothing written") and "as they were" in line
    assert out.read_text() == "the earlier report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RESULTS.md"]


def script(name: str, *args: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / name), *args]


def stop(proc: Tuner) -> int:
    """SIGINT to `proc`; its exit status (the test fails if it is not gone within STOP_S)."""
    proc.proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=STOP_S)


def assert_one_line(proc: Tuner, start: str) -> None:
    assert proc.stderr.strip().splitlines()[-1].startswith(start), proc.output()
    assert "Traceback" not in proc.stderr, proc.output()


def test_evaluate_stops_on_ctrl_c_while_it_compiles_and_plays(tmp_path):
    """evaluate.py sent SIGINT once it has started evaluating (compiling, then playing far
    more episodes than it could in STOP_S): exit 130 with one line, no output written."""
    run = saved_run(tmp_path / "run", seeds=(1, 2))
    out = tmp_path / "figures.json"
    proc = Tuner(script("evaluate.py", str(run), "--episodes", "200000",
                        "--results-json", str(out)), tmp_path / "logs", "evaluate")
    wait_for(lambda: "Ctrl-C stops it" in proc.stderr, proc, what="the evaluation's start")
    assert stop(proc) == 130, proc.output()
    assert_one_line(proc, "interrupted: nothing written")
    assert proc.stdout == "" and not out.exists()


@pytest.mark.slow
def test_results_report_stops_on_ctrl_c_mid_training(tmp_path):
    """results_report.py sent SIGINT after its first chunk of a long training: exit 130, one
    line, the progress it printed, and its earlier outputs untouched."""
    out = tmp_path / "RESULTS.md"
    out.write_text("the earlier report\n")
    proc = Tuner(script("results_report.py", "--scenario", "easy", "--seeds", "0",
                        "--num-steps", str(10_000_000), "--hidden-size", "16",
                        "--eval-episodes", "2", "--baseline-episodes", "2", "--out", str(out),
                        "--plot", str(tmp_path / "r.png"), "--json", str(tmp_path / "r.json")),
                 tmp_path / "logs", "results")
    wait_for(lambda: "train:" in proc.stdout, proc, what="the first chunk")
    assert stop(proc) == 130, proc.output()
    assert_one_line(proc, "interrupted: nothing written")
    assert out.read_text() == "the earlier report\n"
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_pbt_stops_on_ctrl_c_mid_interval_keeping_its_exploit_steps(tmp_path):
    """PBT sent SIGINT while its second interval trains (400 updates per member, a minute on
    a 2-core CPU): exit 130 within STOP_S, one line; the first exploit step's checkpoint and
    the members' intermediate values are kept, the members still running (the same command
    continues them)."""
    url = f"sqlite:///{tmp_path / 'pbt.db'}"
    interval = 512 * 400
    out = tmp_path / "out"
    proc = Tuner(script("tune_hyperparameters.py", "--strategy", "pbt", "--scenario", "easy",
                        "--population-size", "4", "--fix", "hidden_size=64,batch_size=512",
                        "--num-steps", str(3 * interval), "--pbt-interval", str(interval),
                        "--eval-episodes", "4", "--no-validate", "--storage", url,
                        "--study-name", "pbt", "--output-dir", str(out)),
                 tmp_path / "logs", "pbt")
    checkpoints = out / "pbt_checkpoints"
    # the first exploit step's progress line, then its checkpoint, then the second interval
    wait_for(lambda: len(proc.stdout.splitlines()) >= 2, proc, what="its progress line")
    wait_for(lambda: checkpoints.is_dir() and any(p.name.isdigit()
                                                  for p in checkpoints.iterdir()),
             proc, what="the first exploit step's checkpoint")
    time.sleep(2)  # the second interval dispatched and waited for (it trains far longer)
    assert stop(proc) == 130, proc.output()
    assert_one_line(proc, "interrupted: the same command continues study 'pbt'")
    assert [p.name for p in checkpoints.iterdir() if p.name.isdigit()] == ["400"]
    trials = optuna.load_study(study_name="pbt", storage=url).trials
    assert len(trials) == 4
    assert all(t.state.name == "RUNNING" and list(t.intermediate_values) == [interval]
               for t in trials)
