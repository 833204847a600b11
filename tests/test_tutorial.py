"""docs/TUTORIAL.md's commands, as written, in a fresh folder: train (stopped by SIGINT once
its first checkpoint is saved, as Ctrl-C would), watch the live metrics, resume, evaluate
with a replay."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[list[str]]:
    text = (ROOT / "docs" / "TUTORIAL.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    return [shlex.split(block.replace("\\\n", " ")) for block in blocks]


def _python(argv: list[str]) -> list[str]:
    assert argv[0] == ".venv/bin/python"
    return [sys.executable, str(ROOT / argv[1]), *argv[2:]]


@pytest.mark.slow
def test_the_tutorial_runs_as_written(tmp_path):
    train, tail, resume, evaluate = _commands()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = tmp_path / "runs" / "tutorial"
    proc = subprocess.Popen(_python(train), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not ((run / "checkpoints").is_dir()
               and any(p.name.isdigit() for p in (run / "checkpoints").iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "--resume" in err
    watched = subprocess.run(tail, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert len(watched.stdout.splitlines()) == 2 and '"mean_return"' in watched.stdout
    resumed = subprocess.run(_python(resume), cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "params_seed1").exists() and not (run / "checkpoints").exists()
    shown = subprocess.run(_python(evaluate), cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
    assert shown.returncode == 0, shown.stderr
    assert "policy (sampled)" in shown.stdout and (run / "replay.html").exists()
