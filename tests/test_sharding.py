"""A population shards across local devices (members split between them) with results
identical to one device. Two simulated CPU devices via XLA_FLAGS, in subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPT = """
import json, sys
import jax, jax.numpy as jnp, numpy as np
from bb_jax.train.population import Population
from bb_jax.train.ppo import PPOConfig, stack_hyperparams
config = PPOConfig(hidden_size=32, batch_size=256, num_envs=8, total_steps=512)
hps = stack_hyperparams([{"learning_rate": lr} for lr in (1e-3, 5e-4, 2e-4, 1e-4)])
keys = jnp.stack([jax.random.PRNGKey(s) for s in range(4)])
pop = Population(config, hps, keys)
metrics = pop.run(2)
leaf = jax.tree.leaves(pop.state.params)[0]
print(json.dumps({
    "devices": jax.device_count(),
    "param_devices": len(leaf.sharding.device_set),
    "mean_return": np.asarray(metrics["mean_return"]).tolist(),
    "params": [np.asarray(x).tolist() for x in jax.tree.leaves(pop.state.params)],
}))
"""


def run(devices: int) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_population_shards_over_two_devices_with_identical_results():
    one, two = run(1), run(2)
    assert one["devices"] == 1 and one["param_devices"] == 1
    assert two["devices"] == 2 and two["param_devices"] == 2  # members split between devices
    np.testing.assert_allclose(two["mean_return"], one["mean_return"], rtol=1e-6)
    # every parameter of every member agrees to float32 round-off (XLA may split reductions
    # differently per device)
    assert len(two["params"]) == len(one["params"])
    for a, b in zip(two["params"], one["params"], strict=True):
        assert np.shape(a) == np.shape(b) and np.shape(a)[0] == 4
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
