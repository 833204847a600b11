"""Teams of PPO learners on any JaxMARL `MultiAgentEnv`, the whole run one `lax.scan`.

    env = make_marl_env("default", num_agents=3, learners="all")
    train = make_train(env, one_hot_houses(env))           # train(config, key) -> TeamRun
    run = jax.jit(train)(TeamConfig(learner="ippo"), jax.random.key(0))
    runs = jax.jit(jax.vmap(train))(configs, keys)         # configs: traced fields with axis P

The learner sees the env only through JaxMARL's interface: `agents`, `reset(key)`,
`step(key, state, actions)` with dicts keyed by agent (`"__all__"` ends an episode; the env
auto-resets), `observation_space(agent)` (a Box: by default inputs are divided by its `high`;
`make_train(env, features)` takes the env's own encoding, e.g. the game's
`marl_features.one_hot_houses`),
`action_space(agent)` (`MultiDiscrete` of two dimensions, one categorical head each, as
`bb_jax.agent.networks`) and, for MAPPO, `world_state(state)`. Where the step's `infos` carry
`terminated` and `final_observation` (one row per agent, this package's env does), an
observation critic bootstraps a truncated episode from its final observation; otherwise every
episode end counts as terminal.

Learners (`LEARNERS`), each with a separate actor and critic torso:
- "ippo": one network shared by every seat; its input is the observation and the one-hot seat.
- "mappo": the same shared actor; the critic sees the actor's input and the world state
  (symlog-scaled).
  Every episode end is terminal for it: the world state must carry the episode's progress (the
  game's does), so that the end at the step limit is part of the state.
- "independent": one network per seat (stacked on a leading seat axis), observation only.

Parameters live in `G` groups (1 shared, or one per seat); the update is vmapped over groups, so
independent seats get their own Adam state and gradient clip, and a shared network trains on
every seat's samples. Advantages are GAE (`losses.compute_gae`) normalised per minibatch; the
loss is `losses.ppo_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from bb_jax.agent import networks
from bb_jax.agent.losses import Batch, compute_gae, normalise, ppo_loss

LEARNERS = ("ippo", "mappo", "independent")


def _static(default):
    return struct.field(pytree_node=False, default=default)


@struct.dataclass
class TeamConfig:
    """One team run. Static fields (shapes, loop lengths, the learner) compile a new program;
    the traced ones are float32 scalars, or arrays with a leading population axis under vmap.

    num_envs x rollout_length env steps per update (each with one sample per seat);
    total_steps: env steps of the run (rounded down to whole updates); reward_scale multiplies
    the rewards the learner sees."""

    learner: str = _static("ippo")
    hidden_size: int = _static(64)
    num_envs: int = _static(16)
    rollout_length: int = _static(32)
    total_steps: int = _static(100_000)
    num_epochs: int = _static(4)
    num_minibatches: int = _static(4)
    learning_rate: jnp.ndarray = 5e-4
    clip_epsilon: jnp.ndarray = 0.2
    entropy_coef: jnp.ndarray = 0.01
    value_coef: jnp.ndarray = 0.5
    gamma: jnp.ndarray = 0.99
    gae_lambda: jnp.ndarray = 0.95
    max_grad_norm: jnp.ndarray = 0.5
    reward_scale: jnp.ndarray = 0.01

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.rollout_length

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.steps_per_update

    def check(self, num_agents: int) -> None:
        """ValueError (one line naming the valid choices) for a config that cannot run."""
        if self.learner not in LEARNERS:
            raise ValueError(f"unknown team learner {self.learner!r}; valid: {', '.join(LEARNERS)}")
        for name in ("hidden_size", "num_envs", "rollout_length", "num_epochs",
                     "num_minibatches"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.num_updates < 1:
            raise ValueError(f"total_steps ({self.total_steps}) is smaller than one update "
                             f"({self.steps_per_update} env steps)")
        per_group = self.steps_per_update * (num_agents if self.shared else 1)
        if per_group % self.num_minibatches:
            raise ValueError(f"{per_group} samples per update and network do not split into "
                             f"{self.num_minibatches} minibatches")

    @property
    def shared(self) -> bool:
        """True where every seat uses one network (IPPO, MAPPO)."""
        return self.learner != "independent"


class TeamRun(NamedTuple):
    """params: the network's, with a leading group axis G (1 shared, else one per seat);
    metrics: {name: float32[num_updates]}, `episode_return` the mean over seats and the
    rollout's finished episodes (NaN where none finished)."""

    params: dict
    metrics: dict


class TeamNetwork(nn.Module):
    """(actor input [..., Da], critic input [..., Dc]) -> (logits [..., n0], logits [..., n1],
    value [...]): one ReLU torso each for actor and critic, as `networks.ActorCritic`."""

    hidden_size: int
    action_dims: tuple[int, int]

    def _torso(self, x, name):
        init = nn.initializers.variance_scaling(2.0, "fan_avg", "uniform")
        for i in range(2):
            x = nn.relu(nn.Dense(self.hidden_size, kernel_init=init, name=f"{name}_{i}")(x))
        return x

    @nn.compact
    def __call__(self, inputs):
        actor_x, critic_x = inputs
        actor = self._torso(actor_x, "actor")
        head = nn.initializers.variance_scaling(1e-4, "fan_avg", "uniform")
        logits = [nn.Dense(n, kernel_init=head)(actor) for n in self.action_dims]
        value = nn.Dense(1, kernel_init=nn.initializers.variance_scaling(
            1.0, "fan_avg", "uniform"))(self._torso(critic_x, "critic"))[..., 0]
        return logits[0], logits[1], value


class Team(NamedTuple):
    """What the learner reads off the env once: agent names, input features, network, groups."""

    env: object
    config: TeamConfig
    network: TeamNetwork
    features: Callable  # observations float32[..., D] -> network inputs float32[..., F]
    groups: int


def scaled_by_high(env) -> Callable:
    """The default features: each observation feature divided by the observation space's
    `high` (features whose high is not above 0 unchanged)."""
    high = np.asarray(env.observation_space(env.agents[0]).high, np.float32)
    scale = jnp.asarray(1.0 / np.where(high > 0, high, 1.0))
    return lambda x: x * scale


def make_team(env, config: TeamConfig, features: Callable | None = None) -> Team:
    """Check the config against the env's spaces and build the network; `features` maps an
    observation to the network's input (None: `scaled_by_high`)."""
    config.check(env.num_agents)
    first = env.agents[0]
    dims = tuple(np.asarray(getattr(env.action_space(first), "num_categories", ())).tolist())
    if len(dims) != 2:
        raise ValueError("team learners need a MultiDiscrete action space of two dimensions, "
                         f"got {env.action_space(first)!r}")
    groups = 1 if config.shared else env.num_agents
    return Team(env, config, TeamNetwork(config.hidden_size, dims),
                scaled_by_high(env) if features is None else features, groups)


def symlog(x):
    """sign(x) log(1 + |x|): scales an input of unknown range (the world state) to about [-5, 5]."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def team_inputs(team: Team, obs: dict, env_state):
    """(actor input float32[A, E, Da], critic input float32[A, E, Dc]) of observations {agent:
    float32[E, D]} and env states with leading axis E (read for the world state)."""
    x = team.features(jnp.stack([obs[a] for a in team.env.agents]))
    if team.config.learner == "independent":
        return x, x
    num_agents, num_envs = x.shape[:2]
    seat = jnp.broadcast_to(jnp.eye(num_agents)[:, None], (num_agents, num_envs, num_agents))
    actor = jnp.concatenate([x, seat], -1)
    if team.config.learner == "ippo":
        return actor, actor
    world = symlog(jax.vmap(team.env.world_state)(env_state))
    world = jnp.broadcast_to(world, (num_agents, *world.shape))
    return actor, jnp.concatenate([actor, world], -1)


def to_groups(team: Team, x):
    """[A, ...] -> [G, A / G * first dim of ..., rest]: each group's samples on one axis."""
    return x.reshape(team.groups, -1, *x.shape[2:])


def apply_team(team: Team, params, inputs):
    """The network on every seat: inputs [A, E, D] each -> (logits [A, E, n0], [A, E, n1],
    values [A, E]), each seat through its group's parameters."""
    num_agents, num_envs = inputs[0].shape[:2]
    grouped = jax.tree.map(lambda x: to_groups(team, x), inputs)
    out = jax.vmap(team.network.apply)(params, grouped)
    return jax.tree.map(lambda y: y.reshape(num_agents, num_envs, *y.shape[2:]), out)


def init_params(team: Team, key, inputs):
    """Network parameters with a leading group axis G (each group from its own key); `inputs`
    (actor, critic) float32[A, E, D] as `team_inputs` gives (only their widths matter)."""
    return jax.vmap(team.network.init, in_axes=(0, None))(
        jax.random.split(key, team.groups), (inputs[0][0], inputs[1][0]))


class Transition(NamedTuple):
    """One step of E envs for every seat (a leading time axis T in a rollout): float32[A, E]
    unless noted; rewards unscaled, `episode_return` valid where `done`."""

    actor_in: jnp.ndarray  # float32[A, E, Da]
    critic_in: jnp.ndarray  # float32[A, E, Dc]
    action: jnp.ndarray  # int32[A, E, 2]
    log_prob: jnp.ndarray
    value: jnp.ndarray
    next_value: jnp.ndarray  # the critic on the step's result (before an auto-reset)
    reward: jnp.ndarray
    terminated: jnp.ndarray  # bool
    done: jnp.ndarray  # bool
    episode_return: jnp.ndarray


def _step_result(team: Team, obs: dict, env_state, infos: dict, done):
    """(terminated bool[A, E], critic inputs of the step's result before an auto-reset)."""
    bootstraps = (team.config.learner != "mappo" and "terminated" in infos
                  and "final_observation" in infos)
    if not bootstraps:
        return done, team_inputs(team, obs, env_state)
    final = {a: infos["final_observation"][:, i] for i, a in enumerate(team.env.agents)}
    return infos["terminated"].T, team_inputs(team, final, env_state)


def _env_step(team: Team, params, carry, key):
    """One step of every env: the team acts on the observations, the env steps (vmapped)."""
    env_state, obs, returns = carry
    k_act, k_env = jax.random.split(key)
    inputs = team_inputs(team, obs, env_state)
    logits0, logits1, value = apply_team(team, params, inputs)
    action = networks.sample(k_act, (logits0, logits1))
    actions = {a: action[i] for i, a in enumerate(team.env.agents)}
    keys = jax.random.split(k_env, value.shape[1])
    obs, env_state, rewards, dones, infos = jax.vmap(team.env.step)(keys, env_state, actions)
    reward = jnp.stack([rewards[a] for a in team.env.agents])
    done = jnp.broadcast_to(dones["__all__"], reward.shape)
    terminated, next_inputs = _step_result(team, obs, env_state, infos, done)
    returns = returns + reward
    step = Transition(*inputs, action, networks.log_prob((logits0, logits1), action), value,
                      apply_team(team, params, next_inputs)[2], reward, terminated, done,
                      returns)
    return (env_state, obs, jnp.where(done, 0.0, returns)), step


def _batch(team: Team, traj: Transition) -> Batch:
    """The rollout [T, A, E, ...] as one batch per group [G, N, ...] with GAE advantages."""
    config = team.config
    advantage, target = compute_gae(
        traj.reward * config.reward_scale, traj.value, traj.next_value,
        traj.terminated.astype(jnp.float32), traj.done, config.gamma, config.gae_lambda)
    batch = Batch((traj.actor_in, traj.critic_in), traj.action, traj.log_prob, advantage, target)

    def grouped(x):
        x = jnp.swapaxes(x, 0, 1)
        return to_groups(team, x.reshape(x.shape[0], -1, *x.shape[3:]))

    return jax.tree.map(grouped, batch)


def optimizer(config: TeamConfig) -> optax.GradientTransformation:
    """Adam after a global gradient-norm clip (per group: independent seats clip alone)."""
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                       optax.adam(config.learning_rate, eps=1e-5))


def _update_group(team: Team, params, opt_state, batch: Batch, key):
    """num_epochs passes of shuffled minibatches over one group's batch [N, ...]."""
    config, tx = team.config, optimizer(team.config)
    n = batch.action.shape[0]
    size = n // config.num_minibatches

    def minibatch(carry, mb: Batch):
        params, opt_state = carry
        mb = mb._replace(advantage=normalise(mb.advantage))
        grads, metrics = jax.grad(ppo_loss, has_aux=True)(params, team.network.apply, mb, config)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), metrics

    def epoch(carry, k):
        perm = jax.random.permutation(k, n)[: size * config.num_minibatches]
        mbs = jax.tree.map(lambda x: x[perm].reshape(config.num_minibatches, size, *x.shape[1:]),
                           batch)
        return jax.lax.scan(minibatch, carry, mbs)

    (params, opt_state), metrics = jax.lax.scan(
        epoch, (params, opt_state), jax.random.split(key, config.num_epochs))
    return params, opt_state, jax.tree.map(jnp.mean, metrics)


def _update(team: Team, carry, key):
    """One rollout and one PPO update of every group; metrics of this update."""
    params, opt_state, env_carry = carry
    k_roll, k_upd = jax.random.split(key)
    env_carry, traj = jax.lax.scan(lambda c, k: _env_step(team, params, c, k), env_carry,
                                   jax.random.split(k_roll, team.config.rollout_length))
    params, opt_state, metrics = jax.vmap(lambda p, o, b, k: _update_group(team, p, o, b, k))(
        params, opt_state, _batch(team, traj), jax.random.split(k_upd, team.groups))
    finished = jnp.sum(traj.done)
    metrics = {k: jnp.mean(v) for k, v in metrics.items()}
    metrics["episode_return"] = jnp.where(
        finished > 0, jnp.sum(jnp.where(traj.done, traj.episode_return, 0.0))
        / jnp.maximum(finished, 1), jnp.nan)
    return (params, opt_state, env_carry), metrics


def make_train(env, features: Callable | None = None):
    """train(config: TeamConfig, key) -> TeamRun: the whole run, pure and un-jitted (jit and
    vmap it from outside; vmap over `stack_configs(...)` and keys for a population).
    `features`: as `make_team`."""

    def train(config: TeamConfig, key) -> TeamRun:
        team = make_team(env, config, features)
        k_init, k_env, k_run = jax.random.split(key, 3)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_env, config.num_envs))
        params = init_params(team, k_init, team_inputs(team, obs, env_state))
        opt_state = jax.vmap(optimizer(config).init)(params)
        returns = jnp.zeros((env.num_agents, config.num_envs), jnp.float32)
        (params, _, _), metrics = jax.lax.scan(
            lambda c, k: _update(team, c, k), (params, opt_state, (env_state, obs, returns)),
            jax.random.split(k_run, config.num_updates))
        return TeamRun(params, metrics)

    return train


def stack_configs(configs) -> TeamConfig:
    """One TeamConfig whose traced fields have a leading population axis (the static fields
    must agree: one program)."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, jnp.float32) for x in xs]),
                        *configs)
