"""A stock PPO on a gymnax env, at its published defaults, against the uniform-random policy.

The learner is the PureJaxRL recipe (one `lax.scan` over updates; separate 64-unit tanh actor
and critic, orthogonal init; GAE that treats every episode end as terminal; clipped policy and
value losses; Adam with global-norm clipping and a linearly annealed rate), written here from
the algorithm, at PureJaxRL's CartPole settings (`Settings`). It sees only gymnax's API:
`reset`, `step`, a `Discrete` action space (or a `Tuple` of them, one head each) and a `Box`
observation. Seeds train as one `vmap`; each seed's policy and the uniform-random policy then
play the same fresh episodes (same reset and step keys), and the figure is the paired
difference of their mean returns over seeds with its 95% CI.

The variants are wrapper stacks of the game (`VARIANTS`), one factor at a time from the
view as first published (`FlatActionWrapper(make_env("default"))`) and then combined, so
the figures say which factor made the stock learner lose to random.

    python benchmarks/stock_ppo.py                        # every variant, 8 seeds x 300k steps
    python benchmarks/stock_ppo.py --variants flat recommended --seeds 0 1 2
    python benchmarks/stock_ppo.py --quick                # tiny smoke run (not a result)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState
from gymnax.environments import spaces

from bb_jax.cli.common import enable_compile_cache
from bb_jax.game import gymnax_view
from bb_jax.machine import machine_info
from bb_jax.stats import mean_ci95, paired_difference

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "stock_ppo_cpu.json"
QUICK_OUT = Path(tempfile.gettempdir()) / "stock_ppo_cpu_quick.json"  # not a result
EVAL_KEY = 20_261_208  # fresh episodes: folded with the seed, never a training key


class Settings(NamedTuple):
    """PureJaxRL's published PPO settings for CartPole-v1, with 300k env steps."""

    lr: float = 2.5e-4
    num_envs: int = 4
    num_steps: int = 128
    total_steps: int = 300_000
    update_epochs: int = 4
    num_minibatches: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64
    anneal_lr: bool = True

    @property
    def num_updates(self) -> int:
        return self.total_steps // (self.num_envs * self.num_steps)


# --- the policy: one categorical per action head ------------------------------------------


def action_sizes(space) -> tuple[int, ...]:
    """Category counts of a Discrete space (one head) or a Tuple of Discretes (one each)."""
    if isinstance(space, spaces.Discrete):
        return (int(space.n),)
    if isinstance(space, spaces.Tuple) and all(
            isinstance(s, spaces.Discrete) for s in space.spaces):
        return tuple(int(s.n) for s in space.spaces)
    raise ValueError(f"stock PPO takes a Discrete or a Tuple of Discretes, got {space!r}")


def _heads(logits, sizes):
    return jnp.split(logits, np.cumsum(sizes)[:-1].tolist(), axis=-1)


def sample(key, logits, sizes):
    """int32[..., heads] actions drawn from logits float32[..., sum(sizes)]."""
    keys = jax.random.split(key, len(sizes))
    return jnp.stack([jax.random.categorical(k, h) for k, h in zip(keys, _heads(logits, sizes))],
                     axis=-1)


def log_prob_entropy(logits, actions, sizes):
    """(log-probability, entropy) float32[...] of actions int32[..., heads], summed over heads."""
    log_p, ent = 0.0, 0.0
    for i, head in enumerate(_heads(logits, sizes)):
        logs = jax.nn.log_softmax(head)
        log_p = log_p + jnp.take_along_axis(logs, actions[..., i:i + 1], -1)[..., 0]
        ent = ent - jnp.sum(jnp.exp(logs) * logs, -1)
    return log_p, ent


def env_action(actions, sizes):
    """What `env.step` takes: int32[] for one head, int32[heads] otherwise."""
    return actions[..., 0] if len(sizes) == 1 else actions


class ActorCritic(nn.Module):
    """Separate two-layer tanh torsos; logits float32[sum(sizes)] and a value float32[]."""

    sizes: tuple[int, ...]
    hidden: int = 64

    @nn.compact
    def __call__(self, obs):
        def torso(x, name):
            for i in range(2):
                x = nn.tanh(nn.Dense(self.hidden, kernel_init=nn.initializers.orthogonal(2**0.5),
                                     name=f"{name}_{i}")(x))
            return x

        logits = nn.Dense(sum(self.sizes), kernel_init=nn.initializers.orthogonal(0.01),
                          name="actor_head")(torso(obs, "actor"))
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0),
                         name="critic_head")(torso(obs, "critic"))
        return logits, value[..., 0]


def saturation(params, obs) -> jnp.ndarray:
    """Share of the actor's first-layer units with |tanh| > 0.99 on obs float32[B, D]: a
    saturated unit passes (almost) no gradient and no information about the input."""
    layer = params["params"]["actor_0"]
    return jnp.mean(jnp.abs(jnp.tanh(obs @ layer["kernel"] + layer["bias"])) > 0.99)


# --- training: one scan over updates ----------------------------------------------------------


class Transition(NamedTuple):
    obs: jnp.ndarray
    action: jnp.ndarray
    log_prob: jnp.ndarray
    value: jnp.ndarray
    reward: jnp.ndarray
    done: jnp.ndarray


def make_train(env, env_params, s: Settings):
    """train(key, initial network params) -> (network params, per-update diagnostics dict
    of float32[num_updates])."""
    sizes = action_sizes(env.action_space(env_params))
    network = ActorCritic(sizes, s.hidden)
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    steps_per_update = s.update_epochs * s.num_minibatches

    def schedule(count):
        done = count // steps_per_update
        return s.lr * (1.0 - done / s.num_updates) if s.anneal_lr else s.lr

    def rollout(runner, _):
        state, env_state, obs, key = runner
        key, k_act, k_step = jax.random.split(key, 3)
        logits, value = network.apply(state.params, obs)
        actions = sample(k_act, logits, sizes)
        log_p, _ = log_prob_entropy(logits, actions, sizes)
        next_obs, env_state, reward, term, trunc, _ = step(
            jax.random.split(k_step, s.num_envs), env_state, env_action(actions, sizes),
            env_params)
        done = term | trunc  # PureJaxRL's `done`: a truncation bootstraps as an end
        return (state, env_state, next_obs, key), Transition(obs, actions, log_p, value,
                                                             reward, done)

    def update(runner, _):
        runner, traj = jax.lax.scan(rollout, runner, None, s.num_steps)
        state, env_state, obs, key = runner
        advantages, targets = gae(traj, network.apply(state.params, obs)[1], s)
        key, k_epochs = jax.random.split(key)
        (state, _), stats = jax.lax.scan(
            lambda c, _: epoch(network, sizes, s, c, (traj, advantages, targets)),
            (state, k_epochs), None, s.update_epochs)
        stats = jax.tree.map(jnp.mean, stats)
        stats["saturation"] = saturation(state.params, traj.obs.reshape(-1, obs.shape[-1]))
        return (state, env_state, obs, key), stats

    def train(key, net_params):
        key, k_reset = jax.random.split(key)
        obs, env_state = reset(jax.random.split(k_reset, s.num_envs), env_params)
        tx = optax.chain(optax.clip_by_global_norm(s.max_grad_norm),
                         optax.adam(learning_rate=schedule, eps=1e-5))
        state = TrainState.create(apply_fn=network.apply, params=net_params, tx=tx)
        runner, stats = jax.lax.scan(update, (state, env_state, obs, key), None, s.num_updates)
        return runner[0].params, stats

    return train


def gae(traj: Transition, last_value, s: Settings):
    """(advantages, value targets) float32[num_steps, num_envs], a done ending the trace."""
    def back(carry, t):
        adv, next_value = carry
        delta = t.reward + s.gamma * next_value * (1 - t.done) - t.value
        adv = delta + s.gamma * s.gae_lambda * (1 - t.done) * adv
        return (adv, t.value), adv

    _, adv = jax.lax.scan(back, (jnp.zeros_like(last_value), last_value), traj, reverse=True)
    return adv, adv + traj.value


def epoch(network, sizes, s: Settings, carry, batch):
    """One pass over the rollout in shuffled minibatches; stats of each minibatch."""
    state, key = carry
    key, k_perm = jax.random.split(key)
    n = s.num_envs * s.num_steps
    perm = jax.random.permutation(k_perm, n)
    flat = jax.tree.map(lambda x: x.reshape(n, *x.shape[2:])[perm], batch)
    minibatches = jax.tree.map(lambda x: x.reshape(s.num_minibatches, -1, *x.shape[1:]), flat)

    def one(state, mb):
        grads, stats = jax.grad(lambda p: loss(network, sizes, s, p, mb), has_aux=True)(
            state.params)
        stats["grad_norm"] = optax.tree.norm(grads)  # before clipping
        # what global-norm clipping leaves of every gradient, the actor's included
        stats["grad_scale"] = jnp.minimum(1.0, s.max_grad_norm / stats["grad_norm"])
        stats["actor_grad_norm"] = optax.tree.norm(
            {k: v for k, v in grads["params"].items() if k.startswith("actor")})
        return state.apply_gradients(grads=grads), stats

    state, stats = jax.lax.scan(one, state, minibatches)
    return (state, key), stats


def loss(network, sizes, s: Settings, params, minibatch):
    """PPO's clipped surrogate + clipped value loss - entropy bonus; returns (loss, stats)."""
    traj, adv, targets = minibatch
    logits, value = network.apply(params, traj.obs)
    log_p, entropy = log_prob_entropy(logits, traj.action, sizes)
    v_clipped = traj.value + jnp.clip(value - traj.value, -s.clip_eps, s.clip_eps)
    value_loss = 0.5 * jnp.mean(jnp.maximum((value - targets) ** 2, (v_clipped - targets) ** 2))
    ratio = jnp.exp(log_p - traj.log_prob)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy_loss = -jnp.mean(jnp.minimum(ratio * adv,
                                        jnp.clip(ratio, 1 - s.clip_eps, 1 + s.clip_eps) * adv))
    total = policy_loss + s.vf_coef * value_loss - s.ent_coef * entropy.mean()
    return total, {"value_loss": value_loss, "entropy": entropy.mean(),
                   "clip_fraction": jnp.mean(jnp.abs(ratio - 1) > s.clip_eps)}


# --- evaluation on fresh episodes -------------------------------------------------------------


def episode_horizon(env, env_params) -> int:
    """Steps within which every episode ends: gymnax's `max_steps_in_episode`, or the
    `max_steps` of the innermost env that has one (the game)."""
    if hasattr(env_params, "max_steps_in_episode"):
        return int(env_params.max_steps_in_episode)
    while not hasattr(env, "max_steps"):
        env = env.env
    return int(env.max_steps)


def evaluate(env, env_params, hidden: int, net_params, uniform, key, num_episodes: int):
    """float32[num_episodes]: the return of each fresh episode's first episode, played by
    the policy `net_params` or, where `uniform` (bool[]), by the uniform-random policy (zero
    logits). The same key gives both the same resets, step keys and action keys. The return
    is the env's own info["episode_return"] where it reports one (the game's, whatever
    rewards a wrapper trains on), else the summed reward; NaN if the episode did not end."""
    sizes = action_sizes(env.action_space(env_params))
    network = ActorCritic(sizes, hidden)
    k_reset, k_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(k_reset, num_episodes), env_params)

    def one(carry, key):
        state, obs, alive, total = carry
        k_act, k_step = jax.random.split(key)
        logits = jnp.where(uniform, 0.0, network.apply(net_params, obs)[0])
        actions = env_action(sample(k_act, logits, sizes), sizes)
        obs, state, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_step, num_episodes), state, actions, env_params)
        done = term | trunc
        if "episode_return" in info:
            total = jnp.where(alive & done, info["episode_return"], total)
        else:
            total = total + jnp.where(alive, reward, 0.0)
        return (state, obs, alive & ~done, total), None

    init = (state, obs, jnp.ones(num_episodes, bool), jnp.zeros(num_episodes))
    (_, _, alive, total), _ = jax.lax.scan(
        one, init, jax.random.split(k_run, episode_horizon(env, env_params)))
    return jnp.where(alive, jnp.nan, total)


def init_networks(env, s: Settings, seeds: list[int]):
    """The seeds' initial network params, stacked (leading axis S), each from the first half
    of its seed's key. One seed at a time, outside the training program: vmapped there, the
    orthogonal init's batched QR (a LAPACK call that splits its batch over XLA's CPU thread
    pool) hung a 300k-step program on a 2-core CPU, every thread waiting."""
    params = env.default_params
    network = ActorCritic(action_sizes(env.action_space(params)), s.hidden)
    obs = jnp.zeros(env.observation_space(params).shape)
    init = jax.jit(network.init)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *(
        init(jax.random.split(jax.random.key(seed))[0], obs) for seed in seeds))


def make_experiment(env, s: Settings, eval_episodes: int):
    """experiment(seeds list[int]) -> (trained, uniform float32[S, eval_episodes], stats):
    every seed trains (one vmap), then its policy and the uniform-random policy play the same
    fresh episodes (`EVAL_KEY` folded with the seed). One program, so one compile."""
    params = env.default_params
    train = make_train(env, params, s)

    def one_seed(seed, net_params):
        net_params, stats = train(jax.random.split(jax.random.key(seed))[1], net_params)
        key = jax.random.fold_in(jax.random.key(EVAL_KEY), seed)
        both = jax.vmap(lambda u: evaluate(env, params, s.hidden, net_params, u, key,
                                           eval_episodes))(jnp.array([False, True]))
        return both[0], both[1], stats

    program = jax.jit(jax.vmap(one_seed))
    return lambda seeds: program(jnp.asarray(seeds), init_networks(env, s, seeds))


def run(env, seeds: list[int], s: Settings, eval_episodes: int) -> dict:
    """Per-seed mean returns (numpy) of the trained and uniform policies, the learner's
    diagnostics float[S, num_updates] and the wall time (compile included)."""
    start = time.perf_counter()
    trained, uniform, stats = make_experiment(env, s, eval_episodes)(seeds)
    trained, uniform = np.asarray(trained), np.asarray(uniform)
    return {"trained": np.nanmean(trained, axis=1), "uniform": np.nanmean(uniform, axis=1),
            "unfinished_episodes": int(np.isnan(trained).sum() + np.isnan(uniform).sum()),
            "stats": jax.tree.map(np.asarray, stats), "wall_s": time.perf_counter() - start}


# --- the ablation -----------------------------------------------------------------------------

OFF = {"time_input": False, "one_hot": False, "scale_observation": False, "reward_scale": None}
VARIANTS = {  # name -> make_gymnax_env keywords; the first is the view as first published
    "flat": OFF,
    "obs_scaled": {**OFF, "scale_observation": True},
    "reward_scaled": {**OFF, "reward_scale": gymnax_view.REWARD_SCALE},
    "clock": {**OFF, "time_input": True},
    "factored": {**OFF, "flat_action": False},
    "recommended": {},
    "recommended_no_one_hot": {"one_hot": False},
    "recommended_no_clock": {"time_input": False},
    "recommended_factored": {"flat_action": False},
}
FIRST = "flat"  # the reference of every variant's gain


def summarise(res: dict, s: Settings) -> dict:
    """Means with 95% CIs over seeds, trained minus uniform (paired by seed), the learner's
    diagnostics early and late, and when and under what load the variant finished."""
    trained, uniform = res["trained"], res["uniform"]
    tenth = max(1, s.num_updates // 10)
    diagnostics = {name: {"first_10pct": float(v[:, :tenth].mean()),
                          "last_10pct": float(v[:, -tenth:].mean())}
                   for name, v in res["stats"].items()}
    return {"trained": dict(zip(("mean", "ci95"), mean_ci95(trained))),
            "uniform": dict(zip(("mean", "ci95"), mean_ci95(uniform))),
            "trained_minus_uniform": paired_difference(trained, uniform).as_dict(),
            "per_seed": {"trained": trained.tolist(), "uniform": uniform.tolist()},
            "unfinished_episodes": res["unfinished_episodes"], "diagnostics": diagnostics,
            "wall_s": res["wall_s"],
            "finished": {"utc": datetime.now(UTC).isoformat(timespec="seconds"),
                         "load_average_1_5_15min": list(os.getloadavg())}}


def with_gains(variants: dict) -> dict:
    """Each variant's summary plus its gain over `FIRST` (the paired difference of their
    trained-minus-uniform figures by seed), where `FIRST` has run."""
    if FIRST not in variants:
        return variants
    def margin(v):
        return np.subtract(v["per_seed"]["trained"], v["per_seed"]["uniform"])
    return {name: {**v, f"gain_vs_{FIRST}": paired_difference(
                margin(v), margin(variants[FIRST])).as_dict()} if name != FIRST else v
            for name, v in variants.items()}


def kept_variants(out: Path, settings: dict) -> dict:
    """The variants `out` already holds for the same settings (for --resume), else none."""
    if not out.exists():
        return {}
    old = json.loads(out.read_text())
    if {k: old["settings"].get(k) for k in settings} != settings:
        return {}
    when = {"started_utc": old.get("started_utc"), "load_average_before":
            old.get("load_average_before")}  # what a file without per-variant times holds
    return {k: {"finished": when, **v} for k, v in old["variants"].items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="default")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    p.add_argument("--num-steps", type=int, default=Settings().total_steps,
                   help="env steps per seed (default: 300000)")
    p.add_argument("--eval-episodes", type=int, default=512)
    p.add_argument("--resume", action="store_true",
                   help="keep the variants --out already holds for the same settings")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (written to /tmp)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    enable_compile_cache()
    s = Settings(total_steps=args.num_steps)
    if args.quick:
        s = Settings(total_steps=4 * 512)
        args.seeds, args.eval_episodes = args.seeds[:2], 8
    out = Path(args.out or (QUICK_OUT if args.quick else DEFAULT_OUT))
    settings = {"scenario": args.scenario, "seeds": args.seeds,
                "eval_episodes": args.eval_episodes, "ppo": s._asdict()}
    summaries = kept_variants(out, settings) if args.resume else {}
    for name in [v for v in args.variants if v not in summaries]:  # rewritten after each
        env = gymnax_view.make_gymnax_env(args.scenario, **VARIANTS[name])
        summaries[name] = summarise(run(env, args.seeds, s, args.eval_episodes), s)
        diff = summaries[name]["trained_minus_uniform"]
        print(f"{name}: {summaries[name]['wall_s']:.0f} s, trained - uniform "
              f"{diff['mean']:+.1f} +- {diff['ci95']:.1f}", flush=True)
        write(out, {"benchmark": "stock_ppo", "machine": machine_info(),
                    "settings": {**settings, "variants": {k: VARIANTS[k] for k in summaries}},
                    "variants": with_gains(summaries)})
    print(f"wrote {out}")
    return 0


def write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
