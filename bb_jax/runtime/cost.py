"""What a training run costs: FLOPs from XLA's cost analysis, seconds from JAX's own compile
events.

XLA's `cost_analysis()` counts the body of a `while`/`scan` loop once, not times its trip
count, so the FLOPs of one PPO update are put together from its loop bodies, each lowered on
its own (lowering only: nothing is compiled) and multiplied by its real trips:

    update = rollout_length x (one env step of num_envs envs, network forward included)
             + advantages (the value of every step's result, GAE)
             + num_epochs x num_minibatches x (one minibatch's forward, backward and Adam step)

The epoch count is a traced hyperparameter, so a member's cost follows its own epochs.
`CompileClock` reads the seconds JAX spends tracing, lowering and compiling (its public
`jax.monitoring` events), so a trainer can tell compile time from training time.
"""

from __future__ import annotations

import functools
import threading
import time

import jax
import jax.numpy as jnp

from bb_jax.agent.config import DEFAULT_HYPERPARAMS, PPOConfig, make_hyperparams, stack_hyperparams
from bb_jax.agent.losses import Batch
from bb_jax.agent.ppo import PPO, init_optimizer
from bb_jax.runtime.driver import Driver, training_keys
from bb_jax.runtime.population import Population

# JAX's duration events for turning a Python function into an executable
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


def _flops(fn, *args) -> float:
    return float(jax.jit(fn).lower(*args).cost_analysis()["flops"])


@functools.cache
def _body_flops(config: PPOConfig) -> tuple[float, float, float]:
    """(one rollout step, advantages, one minibatch step) FLOPs of one member of `config`."""
    ppo = PPO(config.replace(total_steps=None), static_epochs=False)
    c = ppo.config
    hp = make_hyperparams()
    key = jax.random.PRNGKey(0)
    state = jax.eval_shape(ppo.init, key, hp)
    rollout = _flops(lambda s, k: ppo.rollout(s.params, s.env_state, s.obs, k,
                                              ppo.default_scenario), state, key)
    traj = jax.eval_shape(lambda s, k: ppo.rollout(s.params, s.env_state, s.obs, k,
                                                   ppo.default_scenario)[2], state, key)
    advantages = _flops(lambda p, t: ppo.advantages(p, t, hp), state.params, traj)
    size = c.batch_size // c.num_minibatches
    minibatch = Batch(
        obs=jax.ShapeDtypeStruct((size, ppo.input_size), jnp.float32),
        action=jax.ShapeDtypeStruct((size, 2), jnp.int32),
        log_prob=jax.ShapeDtypeStruct((size,), jnp.float32),
        advantage=jax.ShapeDtypeStruct((size,), jnp.float32),
        target=jax.ShapeDtypeStruct((size,), jnp.float32),
    )
    opt_state = jax.eval_shape(lambda p: init_optimizer(p, hp), state.params)
    step = _flops(lambda p, o, b: ppo.minibatch_update(p, o, b, None, hp), state.params,
                  opt_state, minibatch)
    return rollout, advantages, step


def update_flops(config: PPOConfig, num_epochs: int) -> float:
    """FLOPs of one PPO update of one member of `config` that runs `num_epochs` epochs
    (clipped to 1..max_epochs, as training does)."""
    rollout, advantages, step = _body_flops(config.replace(total_steps=None,
                                                           scenario="default"))
    epochs = min(max(int(num_epochs), 1), config.max_epochs)
    return (config.rollout_length * rollout + advantages
            + epochs * config.num_minibatches * step)


def flops_per_env_step(config: PPOConfig, num_epochs: int) -> float:
    """FLOPs one member spends per env step it trains."""
    return update_flops(config, num_epochs) / config.batch_size


class CompileClock:
    """Seconds JAX has spent compiling in this process since it was created (tracing,
    lowering, XLA compile; a persistent-cache hit counts only what it still does)."""

    _lock = threading.Lock()
    _total = 0.0
    _registered = False

    def __init__(self):
        with self._lock:
            if not CompileClock._registered:
                jax.monitoring.register_event_duration_secs_listener(CompileClock._listen)
                CompileClock._registered = True
        self.start = CompileClock._total

    @staticmethod
    def _listen(event: str, duration: float, **_) -> None:
        if event in COMPILE_EVENTS:
            with CompileClock._lock:
                CompileClock._total += duration

    def seconds(self) -> float:
        """Compile seconds since this clock was made."""
        return CompileClock._total - self.start


def timed_chunks(population: Population, chunk: int, seconds: float) -> tuple[int, float]:
    """(updates, wall seconds) of `population` training chunks of `chunk` updates for at least
    `seconds`, after a first chunk that compiles and warms up (not timed)."""
    driver = Driver(population, record=False)
    jax.block_until_ready(driver.chunk(chunk))
    start, updates = time.perf_counter(), 0
    while updates == 0 or time.perf_counter() - start < seconds:
        jax.block_until_ready(driver.chunk(chunk))
        updates += chunk
    return updates, time.perf_counter() - start


def calibrate(config: PPOConfig, members: int, chunk: int, seconds: float = 3.0) -> dict:
    """Measure the training FLOPs one member gets per second of its share of the device:
    `members` copies of `config` (default hyperparameters) train as one population, as a
    trial's runs do (the same size, filler rows included), a first chunk of `chunk` updates
    compiles and warms up, then chunks run until `seconds` passed. Returns
    {"flops_per_second", "seconds", "updates", "members", "hidden_size", "batch_size",
    "compile_seconds"}: what converts a time budget into a FLOP budget."""
    clock = CompileClock()
    population = Population(config, stack_hyperparams([{}] * members),
                            training_keys(range(members)))
    updates, elapsed = timed_chunks(population, chunk, seconds)
    flops = updates * update_flops(config, DEFAULT_HYPERPARAMS["num_epochs"])
    # a member's seconds are its share of the wall time: `members` ran side by side
    return {"flops_per_second": flops * members / elapsed, "seconds": elapsed,
            "updates": updates, "members": members, "hidden_size": config.hidden_size,
            "batch_size": config.batch_size, "compile_seconds": clock.seconds()}
