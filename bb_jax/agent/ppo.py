"""End-to-end jitted PPO for the single-learner view (PureJaxRL's shape, rejax's split).

Static config (`PPOConfig`: shapes and loop lengths) decides what is compiled; traced
hyperparameters (`PPOHyperparams`, one row per population member) do not, so trials that differ
only in them share one compile (both in `bb_jax.agent.config`). All functions here are pure
and un-jitted; `bb_jax.runtime.programs` jits and vmaps them.

    ppo = PPO(PPOConfig(scenario="easy", total_steps=100_000))
    state, metrics = jax.jit(ppo.train)(jax.random.PRNGKey(0), make_hyperparams())

`PPO.train` is the whole run as one `lax.scan` (PureJaxRL's `train`, vmapped over seeds by
the caller); `bb_jax.runtime` runs the same updates in host chunks where a tuner must read
intermediate values and stop members between them.

The learner sees the env only through its public API: a batch of `num_envs` environments
(`PPO.view`: `reset(key, params)` / `step(key, state, action, params)` on a leading axis E,
the observation and action spaces, and the info dict's "final_observation",
"episode_return" and "episode_length"); the scenario is the env's params. The observation it
gets is already the network's flat input (the game's feature encoding is the view's wrapper).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from bb_jax import envs
from bb_jax.agent import networks
from bb_jax.agent.config import MemberShape, PPOConfig, PPOHyperparams, ShapeChoices
from bb_jax.agent.losses import (
    RETURN_WINDOW,
    Batch,
    compute_gae,
    explained_variance,
    mean_recent_return,
    normalise,
    ppo_loss,
    record_returns,
)
from bb_jax.agent.policies import evaluate_policy
from bb_jax.agent.shapes import ExactShapes, shape_layout
from bb_jax.game.scenarios import Scenario

if TYPE_CHECKING:  # the env (gymnax) loads on first use: see bb_jax/__init__.py
    from bb_jax.game.wrappers import FeatureWrapper


class Transition(NamedTuple):
    """One rollout step of E envs (a leading time axis T in a rollout)."""

    obs: jnp.ndarray  # float32[E, I], the view's observation (the network's input)
    action: jnp.ndarray  # int32[E, K], one entry per action dimension
    log_prob: jnp.ndarray  # float32[E]
    value: jnp.ndarray  # float32[E]
    reward: jnp.ndarray  # float32[E], unscaled
    terminated: jnp.ndarray  # bool[E]
    done: jnp.ndarray  # bool[E]: terminated or truncated
    final_obs: jnp.ndarray  # float32[E, I], the input of the step's result before auto-reset
    episode_return: jnp.ndarray  # float32[E], valid where done


@struct.dataclass
class TrainState:
    """Everything a run carries between updates and between chunks."""

    params: dict
    opt_state: optax.OptState
    env_state: object  # EnvState with leading axis num_envs
    obs: jnp.ndarray  # float32[num_envs, I], the view's observation
    key: jnp.ndarray
    update: jnp.ndarray  # int32, updates done
    recent_returns: jnp.ndarray  # float32[100], ring buffer of completed episode returns
    num_episodes: jnp.ndarray  # int32, episodes completed


def _clipped_adam(learning_rate, max_grad_norm) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(max_grad_norm),
                       optax.adam(learning_rate, eps=1e-5))


# built once; its two hyperparameters live in the optimizer state (traced, one per member)
OPTIMIZER = optax.inject_hyperparams(_clipped_adam)(learning_rate=0.0, max_grad_norm=0.0)


def with_hyperparams(opt_state: optax.OptState, hp: PPOHyperparams) -> optax.OptState:
    """The optimizer state with the member's learning rate and gradient-norm clip: the row of
    traced hyperparameters stays their one source (PBT's explore changes it between chunks)."""
    return opt_state._replace(hyperparams={"learning_rate": hp.learning_rate,
                                           "max_grad_norm": hp.max_grad_norm})


def init_optimizer(params, hp: PPOHyperparams) -> optax.OptState:
    return with_hyperparams(OPTIMIZER.init(params), hp)


@dataclass(frozen=True)
class PPO:
    """The algorithm for one static config. Methods are pure; jit/vmap them from outside."""

    config: PPOConfig
    # the epoch loop (`_learn`): static with a mask (True), traced count (False), or by the
    # backend (None: static on an accelerator)
    static_epochs: bool | None = None
    # a shape-padded program (`ShapeChoices.config` gives its config): every method then
    # takes the member's own `MemberShape` and trains exactly that smaller run
    shapes: ShapeChoices | None = None
    env: object = field(init=False)  # the config's gymnax env (`bb_jax.envs.make`)
    env_params: object = field(init=False)  # its params (the game's: a Scenario)
    network: networks.ActorCritic = field(init=False)

    layout: ExactShapes = field(init=False)

    def __post_init__(self):
        c = self.config
        env, params = envs.make(c)
        object.__setattr__(self, "env", env)
        object.__setattr__(self, "env_params", params)
        if self.static_epochs is None:
            object.__setattr__(self, "static_epochs", jax.default_backend() != "cpu")
        dims = action_dims(env.action_space(params))
        object.__setattr__(self, "network",
                           networks.ActorCritic(c.hidden_size, dims, critic=c.critic))
        object.__setattr__(self, "layout",
                           shape_layout(c, self.network, self.input_size, self.shapes))

    def view(self, num_envs: int, row_counts: tuple[int, ...] = ()) -> FeatureWrapper:
        """What the learner steps (`bb_jax.envs.learner_view`): `num_envs` environments whose
        observations are the network's input (with the config's time input); `row_counts`:
        the environment counts a padded program's members draw as (`ExactShapes.row_counts`)."""
        c = self.config
        return envs.learner_view(c.env, self.env, self.env_params, num_envs, c.time_input,
                                 row_counts)

    @property
    def input_size(self) -> int:
        """Width I of the network's input: the view's flat observation."""
        return self.view(1).observation_space(self.default_scenario).shape[0]

    @property
    def default_scenario(self) -> Scenario:
        """The env's params (the game's: the config's scenario)."""
        return self.env_params

    def init(self, key, hp: PPOHyperparams, scenario: Scenario | None = None,
             shape: MemberShape | None = None) -> TrainState:
        scenario = self.default_scenario if scenario is None else scenario
        k_params, k_env, k_run = jax.random.split(key, 3)
        params = self.layout.init_params(k_params, shape)
        obs, env_state = self._rollout_view.reset(k_env, scenario,
                                                  rows=self.layout.rows(shape))
        return TrainState(
            params=params,
            opt_state=init_optimizer(params, hp),
            env_state=env_state,
            obs=obs,
            key=k_run,
            update=jnp.int32(0),
            recent_returns=jnp.zeros((RETURN_WINDOW,), jnp.float32),
            num_episodes=jnp.int32(0),
        )

    def rollout(self, params, env_state, obs, key, scenario: Scenario,
                shape: MemberShape | None = None):
        """Step num_envs envs for rollout_length steps. Returns (env_state, obs, Transition[T]).
        With `shape`, steps past the member's own rollout length leave the envs as they are
        (their transitions are masked by `learn`)."""
        view, rows = self._rollout_view, self.layout.rows(shape)

        def one_step(carry, xs):
            step_key, t = xs
            env_state, obs = carry
            k_act, k_env = jax.random.split(step_key)
            *logits, value = self.network.apply(params, obs)
            action = networks.sample(k_act, logits)
            next_obs, env_state, reward, terminated, truncated, info = view.step(
                k_env, env_state, action, scenario, rows=rows)
            transition = Transition(
                obs=obs,
                action=action,
                log_prob=networks.log_prob(logits, action),
                value=value,
                reward=reward,
                terminated=terminated,
                done=terminated | truncated,
                final_obs=info["final_observation"],
                episode_return=info["episode_return"],
            )
            return self.layout.keep_step((env_state, next_obs), carry, t, shape), transition

        # split(key, T)[t] does not depend on T: a member's keys are those of its own rollout
        keys = jax.random.split(key, self.config.rollout_length)
        steps = jnp.arange(self.config.rollout_length)
        (env_state, obs), traj = jax.lax.scan(one_step, (env_state, obs), (keys, steps))
        return env_state, obs, traj

    def minibatch_update(self, params, opt_state, minibatch: Batch, weight,
                         hp: PPOHyperparams):
        """One gradient step on a minibatch (with `weight`: 0/1 per entry, or None).
        Returns (params, opt_state, metrics)."""
        if self.config.adv_norm == "minibatch":
            minibatch = minibatch._replace(advantage=normalise(minibatch.advantage, weight))
        grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)
        (_, metrics), grads = grad_fn(params, self.network.apply, minibatch, hp, weight)
        updates, opt_state = OPTIMIZER.update(grads, with_hyperparams(opt_state, hp), params)
        return optax.apply_updates(params, updates), opt_state, metrics

    def _learn(self, params, opt_state, batch: Batch, key, hp: PPOHyperparams,
               shape: MemberShape | None = None):
        """hp.num_epochs (clipped to 1..max_epochs) passes of shuffled minibatch updates.

        On a CPU a loop with a traced count (a while loop: vmapped, it runs the population's
        largest count, checked once per epoch); on an accelerator a static loop of max_epochs
        epochs in which a member's epochs past its own count leave everything unchanged (no
        per-iteration predicate for the host to read). Both give the same results."""
        c = self.config

        def minibatch_step(carry, xs):
            params, opt_state, metrics = self.minibatch_update(*carry, *xs, hp)
            return (params, opt_state), metrics

        def epoch(carry):
            params, opt_state, key, _ = carry
            key, k_perm = jax.random.split(key)
            (params, opt_state), metrics = jax.lax.scan(
                minibatch_step, (params, opt_state), self.layout.minibatches(batch, k_perm, shape)
            )
            return params, opt_state, key, jax.tree.map(jnp.mean, metrics)

        zero_metrics = {k: jnp.float32(0.0) for k in
                        ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")}
        carry = (params, opt_state, key, zero_metrics)
        num_epochs = jnp.clip(hp.num_epochs, 1, c.max_epochs)
        if self.static_epochs:
            def masked_epoch(carry, i):
                new = epoch(carry)
                return jax.tree.map(lambda n, o: jnp.where(i < num_epochs, n, o), new, carry), None

            carry, _ = jax.lax.scan(masked_epoch, carry, jnp.arange(c.max_epochs))
        else:
            carry = jax.lax.fori_loop(0, num_epochs, lambda _, carry: epoch(carry), carry)
        params, opt_state, _, metrics = carry
        return params, opt_state, metrics

    def advantages(self, params, traj: Transition, hp: PPOHyperparams, valid=None):
        """GAE of a time-major rollout [T, E]: (advantages, value targets), float32[T, E].

        Every step bootstraps from the value of its result's input (`final_obs`, with the time
        input the progress after the step) unless it ended its episode for real: terminated,
        or with the time input also at max_steps (the progress is part of the state, and
        nothing after the end counts)."""
        next_value = self.network.apply(params, traj.final_obs)[-1]
        ends = traj.done if self.config.time_input else traj.terminated
        return compute_gae(
            traj.reward * self.config.reward_scale, traj.value, next_value,
            ends.astype(jnp.float32), traj.done, hp.gamma, hp.gae_lambda, valid,
        )

    def learn(self, params, opt_state, traj: Transition, key, hp: PPOHyperparams,
              shape: MemberShape | None = None):
        """Learn from a time-major rollout [T, E] (T x E = batch_size): `advantages`, their
        normalisation (per batch here, or per minibatch in `_learn`), hp.num_epochs epochs.
        With `shape`, only the member's own steps count (the first of the flat batch: the
        rollout is time-major). Returns (params, opt_state, metrics)."""
        c = self.config
        valid = self.layout.valid_steps(shape)
        weight = None if valid is None else valid.reshape(-1).astype(jnp.float32)
        advantages, targets = self.advantages(params, traj, hp, valid)
        flat = jax.tree.map(lambda x: x.reshape(c.batch_size, *x.shape[2:]),
                            (traj.obs, traj.action, traj.log_prob, advantages, targets))
        adv = normalise(flat[3], weight) if c.adv_norm == "batch" else flat[3]
        batch = Batch(flat[0], flat[1], flat[2], adv, flat[4])
        params, opt_state, metrics = self._learn(params, opt_state, batch, key, hp, shape)
        metrics["explained_variance"] = explained_variance(
            traj.value.reshape(-1), targets.reshape(-1), weight)
        return params, opt_state, metrics

    def update(self, state: TrainState, hp: PPOHyperparams, scenario: Scenario,
               shape: MemberShape | None = None):
        """One PPO update: rollout, then `learn`. Returns (state, metrics of float32 scalars)."""
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        env_state, obs, traj = self.rollout(state.params, state.env_state, state.obs, k_roll,
                                            scenario, shape)
        params, opt_state, metrics = self.learn(state.params, state.opt_state, traj, k_learn, hp,
                                                shape)
        valid = self.layout.valid_steps(shape)
        if valid is not None:
            traj = traj._replace(done=traj.done & valid)
        recent, num_episodes = record_returns(
            state.recent_returns, state.num_episodes, traj.episode_return, traj.done
        )
        finite = jnp.all(jnp.stack(
            [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)]
            + [jnp.isfinite(metrics["policy_loss"]), jnp.isfinite(metrics["value_loss"])]
        ))
        finished = traj.done.astype(jnp.float32)
        metrics = {
            **metrics,
            "mean_return": mean_recent_return(recent, num_episodes),
            # this update's finished episodes: their count and the sum of their returns, so a
            # caller can average over any interval of updates (the tuner's low-noise value)
            "episodes_finished": jnp.sum(finished),
            "return_sum": jnp.sum(jnp.where(traj.done, traj.episode_return, 0.0)),
            "episodes": num_episodes,
            "env_steps": (state.update + 1) * self.layout.batch_size(shape),
            "finite": finite,
        }
        new_state = TrainState(
            params=params, opt_state=opt_state, env_state=env_state, obs=obs, key=key,
            update=state.update + 1, recent_returns=recent, num_episodes=num_episodes,
        )
        return new_state, metrics

    def run_updates(self, state: TrainState, hp: PPOHyperparams, num_updates: int,
                    scenario: Scenario | None = None, shape: MemberShape | None = None,
                    until=None):
        """`num_updates` (static) updates in one lax.scan. Metrics have a leading axis.

        `until` (int32, with `shape`): the member stops at that many updates done; later
        iterations leave its state as it is and report no episodes (members with larger
        batches need fewer updates for the same env steps)."""
        scenario = self.default_scenario if scenario is None else scenario

        def step(state, _):
            new, metrics = self.update(state, hp, scenario, shape)
            return self.layout.stop(state, new, metrics, until, shape)

        return jax.lax.scan(step, state, None, length=num_updates)

    def train(self, key, hp: PPOHyperparams, scenario: Scenario | None = None):
        """The whole run: init, then config.num_updates updates. Returns (state, metrics)."""
        state = self.init(key, hp, scenario)
        return self.run_updates(state, hp, self.config.num_updates, scenario)

    @property
    def _rollout_view(self) -> FeatureWrapper:
        return self.view(self.config.num_envs, self.layout.row_counts)

    def policy_act(self, greedy: bool = False):
        """The network as a policies.ActFn: act(key, obs, env_state, params) -> int32[M, K],
        sampled from the policy or (greedy) each head's most likely action. `greedy` may be
        traced: one compiled evaluation then serves both."""

        def act(key, obs, env_state, params):
            *logits, _ = self.network.apply(params, obs)
            return jnp.where(greedy, networks.greedy(logits), networks.sample(key, logits))

        return act

    def evaluate(self, params, key, num_episodes: int = 100, greedy: bool = False,
                 scenario: Scenario | None = None, record: bool = False):
        """float32[num_episodes]: returns of fresh episodes played in parallel (the
        baselines' evaluation scan, with the network in the learner's seat); with `record`,
        also the episodes' trace (`baselines.evaluate_policy`)."""
        scenario = self.default_scenario if scenario is None else scenario
        return evaluate_policy(self.view(num_episodes), self.policy_act(greedy), key, scenario,
                               params, record)


def action_dims(space) -> tuple[int, ...]:
    """The sizes of an action space's categorical dimensions: (n,) for a gymnax
    `Discrete(n)`, one entry per part of a `Tuple` of them (the game: house 10, mode 2)."""
    parts = getattr(space, "spaces", None)
    if parts is None:
        return (int(space.n),)
    return tuple(int(part.n) for part in (parts.values() if isinstance(parts, dict) else parts))

