"""bb_jax.devices: every usable core becomes a host device before JAX starts, a count the user
set is left alone, and --n-jobs processes split the cores between them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bb_jax import devices

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import json
from bb_jax import devices
asked = devices.use_host_devices()
import jax
jax.numpy.zeros(1).block_until_ready()
late = devices.use_host_devices([0])  # the backend exists now: nothing changes
print(json.dumps({"asked": asked, "late": late, "devices": jax.device_count()}))
"""


def probe(**env_changes) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", devices.CORES_ENV)}
    env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", **env_changes)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_usable_core_becomes_a_host_device():
    cores = len(os.sched_getaffinity(0))
    assert probe() == {"asked": cores, "late": 0, "devices": cores}
    assert probe(**{devices.CORES_ENV: "0,1,2"}) == {"asked": 3, "late": 0, "devices": 3}


def test_a_count_the_user_set_is_kept():
    flags = "--xla_force_host_platform_device_count=3"
    assert probe(XLA_FLAGS=flags) == {"asked": 0, "late": 0, "devices": 3}
    assert probe(JAX_NUM_CPU_DEVICES="5") == {"asked": 0, "late": 0, "devices": 5}


ENTRY_POINTS = """
import json, sys
import bb_jax.cli, bb_jax.cli.results
from bb_jax import devices
print(json.dumps({"asked": devices.use_host_devices([0, 1]), "gymnax": "gymnax" in sys.modules}))
"""


def test_entry_points_import_without_starting_jax():
    """gymnax's import makes a JAX array (starting the backend), so the env loads on first use:
    the command lines and the report still choose the device count after their imports."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", devices.CORES_ENV)}
    env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", ENTRY_POINTS], env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"asked": 2, "gymnax": False}


def test_jobs_split_the_cores(monkeypatch):
    monkeypatch.setenv(devices.CORES_ENV, "4,5,6,7,8")
    assert devices.usable_cores() == [4, 5, 6, 7, 8]
    assert devices.job_cores(0, 1) == [4, 5, 6, 7, 8]
    assert [devices.job_cores(i, 2) for i in range(2)] == [[4, 5], [6, 7, 8]]
    shares = [devices.job_cores(i, 3) for i in range(3)]
    assert sorted(sum(shares, [])) == [4, 5, 6, 7, 8] and all(shares)
    assert [devices.job_cores(i, 7) for i in range(7)] == [[4], [5], [6], [7], [8], [4], [5]]


@pytest.mark.parametrize("text", ["a,b", "-1", " , "])
def test_bad_core_list(monkeypatch, text):
    monkeypatch.setenv(devices.CORES_ENV, text)
    with pytest.raises(ValueError, match=devices.CORES_ENV):
        devices.usable_cores()


def test_tuner_workers_are_given_their_share(tmp_path, monkeypatch):
    from bb_jax.cli.tune import _jobs, worker_command
    from bb_jax.cli.tune_args import tune_parser
    from bb_jax.tuning.settings import TuneSettings

    monkeypatch.setenv(devices.CORES_ENV, "0,1,2,3")
    assert (_jobs(-1, 100), _jobs(2, 100), _jobs(8, 3)) == (4, 2, 3)
    settings = TuneSettings(storage="sqlite:///x.db", study_name="s", output_dir=tmp_path)
    _, env = worker_command(tune_parser().parse_args([]), settings, 1, 3,
                            devices.job_cores(1, 2))
    assert env[devices.CORES_ENV] == "2,3"
    monkeypatch.setenv(devices.CORES_ENV, env[devices.CORES_ENV])  # inside the worker
    assert devices.job_cores(0, _jobs(1, 3)) == [2, 3]


STUDY = """
import json, sys
import jax
from bb_jax.cli import tune_main
for name in ("first", "again"):
    assert tune_main(["--n-trials", "3", "--population-size", "3", "--num-steps", "4096",
                      "--eval-interval", "4096", "--seed", "5", "--study-name", name,
                      "--enqueue", sys.argv[2], "--no-validate", "--no-incumbent",
                      "--output-dir", sys.argv[1]]) == 0
print(jax.device_count())
"""
# one shape for the three trials: one cohort, one training program of one update (the rest
# is sampled)
ONE_SHAPE = [{"hidden_size": 64, "batch_size": 4096}] * 3


@pytest.mark.slow  # cheaper siblings: test_sharding.py (sharded = unsharded), test_cost.py
def test_same_seed_same_study_on_two_host_devices(tmp_path):
    """A command-line sweep on two host devices (3 trials: padded to 4 members, split in two)
    gives the same study again from the same seed."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", devices.CORES_ENV)}
    env.update(PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="2")
    enqueue = tmp_path / "enqueue.json"
    enqueue.write_text(json.dumps(ONE_SHAPE))
    proc = subprocess.run([sys.executable, "-c", STUDY, str(tmp_path), str(enqueue)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == "2"

    def trials(name):
        results = json.loads((tmp_path / f"{name}_results.json").read_text())
        return [(t["number"], t["state"], t["value"], t["params"], t["intermediate_values"])
                for t in results["trials"]]

    first = trials("first")
    assert len(first) == 3 and first == trials("again")
