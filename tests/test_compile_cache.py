"""The persistent compilation cache in the command lines: a second identical train command
reads its training and evaluation programs from the cache instead of compiling them (counted
with `bb_jax.compile_cache.CompileLog`, JAX's public monitoring events)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ("jit(run_updates)", "jit(evaluate)")  # the training and evaluation programs

# train_main under a CompileLog, printing its summary as the last line
_RUN = ("import json, sys; from bb_jax import compile_cache; log = compile_cache.shared(); "
        "from bb_jax.cli import train_main; rc = train_main(sys.argv[1:]); "
        "print(json.dumps(log.summary())); sys.exit(rc)")


def _train(cache: Path, save: Path) -> dict:
    env = {**os.environ, "BB_JAX_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, "--scenario", "easy", "--num-steps", "512",
         "--batch-size", "128", "--hidden-size", "8", "--seeds", "0", "--eval-episodes", "2",
         "--chunk-updates", "2", "--save-path", str(save)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_second_train_run_compiles_no_training_or_evaluation_program(tmp_path):
    cache = tmp_path / "xla"
    first = _train(cache, tmp_path / "first")
    for name in PROGRAMS:
        assert name in first["compiled"]
    assert {p.name.split("-")[0] for p in cache.iterdir()} >= {"jit_run_updates", "jit_evaluate"}
    second = _train(cache, tmp_path / "second")
    assert not [n for n in second["compiled"] if n in PROGRAMS], second
    assert second["cache_hits"] >= len(PROGRAMS)


def test_reading_a_members_parameters_compiles_nothing():
    """save_run reads every member's parameters: on the host, not by a gather per shape."""
    import jax
    import numpy as np

    from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig, stack_hyperparams
    from bb_jax.compile_cache import CompileLog
    from bb_jax.runtime.driver import training_keys
    from bb_jax.runtime.population import Population

    population = Population(PPOConfig(scenario="easy", hidden_size=8, batch_size=128),
                            stack_hyperparams([DEFAULT_HYPERPARAMS] * 3), training_keys([0, 1, 2]))
    log = CompileLog().start()
    params = [population.member_params(i) for i in range(3)]
    log.stop()
    assert log.compiles == []
    for i, member in enumerate(params):
        jax.tree.map(lambda x, y, i=i: np.testing.assert_array_equal(x, np.asarray(y)[i]),
                     member, population.state.params)
