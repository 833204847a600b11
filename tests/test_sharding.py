"""A population shards across local devices (members split between them) with results
identical to one device; a size that does not divide the device count is padded, invisibly to
the caller; the same seeds give the same results again. Simulated CPU devices
($JAX_NUM_CPU_DEVICES), in subprocesses."""

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
from bb_jax.runtime.population import Population
from bb_jax.agent.config import PPOConfig, stack_hyperparams
config = PPOConfig(hidden_size=32, batch_size=256, num_envs=8, total_steps=512)
rows = [{"learning_rate": lr} for lr in (1e-3, 5e-4, 2e-4, 1e-4)]
keys = jnp.stack([jax.random.PRNGKey(s) for s in range(4)])

def trained(size):
    pop = Population(config, stack_hyperparams(rows[:size]), keys[:size])
    return pop, pop.run(2)

def summary(pop, metrics):
    return {"mean_return": np.asarray(metrics["mean_return"]).tolist(),
            "params": [np.asarray(x)[:pop.size].tolist()
                       for x in jax.tree.leaves(pop.state.params)],
            "eval": pop.evaluate(jax.random.PRNGKey(7), 8).tolist()}

four, three, again = trained(4), trained(3), trained(3)
leaf = lambda pop: jax.tree.leaves(pop.state.params)[0]
out = {"devices": jax.device_count(), "param_devices": len(leaf(four[0]).sharding.device_set),
       "three_devices": len(leaf(three[0]).sharding.device_set),
       "three_rows": int(leaf(three[0]).shape[0]), "three_size": three[0].size,
       "three_metric_rows": int(three[1]["mean_return"].shape[0]),
       "four": summary(*four), "three": summary(*three), "again": summary(*again)}
pop = four[0]
program = pop.fns.run_updates.lower(pop.state, pop.hyperparams, 2, pop.scenarios, None,
                                    None).compile().as_text()
out["collectives"] = sum(program.count(op) for op in
                         ("all-reduce", "all-gather", "collective-permute", "all-to-all"))
pop.keep([0, 2, 3])
out["kept"] = summary(pop, pop.run(1))
print(json.dumps(out))
"""


def run(devices: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update({"JAX_NUM_CPU_DEVICES": str(devices), "PYTHONPATH": str(REPO),
                "JAX_PLATFORMS": "cpu"})
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_close(a: dict, b: dict):
    np.testing.assert_allclose(a["mean_return"], b["mean_return"], rtol=1e-6)
    # parameters agree to float32 round-off (XLA may split reductions differently per device)
    for x, y in zip(a["params"], b["params"], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a["eval"], b["eval"], rtol=1e-6)


def test_population_shards_and_pads_over_two_devices_with_identical_results():
    one, two = run(1), run(2)
    assert one["devices"] == 1 and one["param_devices"] == 1
    assert two["devices"] == 2 and two["param_devices"] == 2  # members split between devices
    # three members on two devices: padded to four rows, split, and the padding hidden
    assert (two["three_devices"], two["three_rows"]) == (2, 4)
    assert (one["three_devices"], one["three_rows"]) == (1, 3)
    assert two["three_size"] == two["three_metric_rows"] == 3
    # each device trains its own members: no collective in the program (the members' epoch
    # loop would otherwise synchronise the devices every epoch)
    assert two["collectives"] == 0
    for name in ("four", "three", "kept"):
        assert_close(two[name], one[name])
    # a member trains the same whether its population was padded or not
    for key in ("mean_return", "eval"):
        np.testing.assert_allclose(two["three"][key], one["four"][key][:3], rtol=1e-6)
    # same seeds, same device count: the same results, bit for bit
    for result in (one, two):
        assert result["again"] == result["three"]
