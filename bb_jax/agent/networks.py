"""The actor-critic network: two ReLU layers (shared by actor and critic, or one torso each),
a categorical head per action dimension (house: 10, mode: 2) and a value head."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from bb_jax.agent.config import CRITICS


def _scaled(gain: float):
    # QR-free stand-in for orthogonal(gain): same variance, no LAPACK call (docs/PPO.md).
    return nn.initializers.variance_scaling(gain**2, "fan_avg", "uniform")


class ActorCritic(nn.Module):
    """x float32[..., D (+1)] -> (house logits [..., 10], mode logits [..., 2], value [...]).

    x is the game observation (D features), followed with `time_input` by the episode's
    progress in [0, 1] (`bb_jax.agent.ppo.PPO.inputs`). The 10 house states enter one-hot
    (SAFE/BURNING/RUINED); `obs_high` float32[D] scales the other features to about [0, 1].
    critic "shared": one torso feeds all heads; "separate": the value head has its own torso
    (same sizes), so value gradients do not reach the policy's features."""

    hidden_size: int
    obs_high: Sequence[float]
    action_dims: tuple[int, int] = (10, 2)
    time_input: bool = False
    critic: str = "shared"

    def _torso(self, x, names):
        for name in names:
            x = nn.relu(nn.Dense(self.hidden_size, kernel_init=_scaled(2**0.5), name=name)(x))
        return x

    @nn.compact
    def __call__(self, x: jnp.ndarray):
        if self.critic not in CRITICS:
            raise ValueError(f"unknown critic {self.critic!r}; valid: {', '.join(CRITICS)}")
        num_houses = self.action_dims[0]
        num_obs = len(self.obs_high)
        obs = x[..., :num_obs]
        houses = jax.nn.one_hot(obs[..., :num_houses].astype(jnp.int32), 3)
        rest = obs[..., num_houses:] / jnp.asarray(self.obs_high[num_houses:], jnp.float32)
        features = [houses.reshape(*obs.shape[:-1], 3 * num_houses), rest]
        if self.time_input:
            features.append(x[..., num_obs:num_obs + 1])
        x = jnp.concatenate(features, axis=-1)
        # the policy's torso keeps flax's automatic names (Dense_0, Dense_1): checkpoints saved
        # before the critic choice load unchanged with critic="shared"
        actor = self._torso(x, (None, None))
        critic = actor if self.critic == "shared" else self._torso(x, ("critic_0", "critic_1"))
        house_logits = nn.Dense(self.action_dims[0], kernel_init=_scaled(0.01))(actor)
        mode_logits = nn.Dense(self.action_dims[1], kernel_init=_scaled(0.01))(actor)
        value = nn.Dense(1, kernel_init=_scaled(1.0))(critic)[..., 0]
        return house_logits, mode_logits, value


def log_prob(house_logits, mode_logits, actions: jnp.ndarray) -> jnp.ndarray:
    """Sum of the two heads' log-probabilities; actions int32[..., 2] -> float32[...]."""
    lp_house = jax.nn.log_softmax(house_logits)
    lp_mode = jax.nn.log_softmax(mode_logits)
    return (
        jnp.take_along_axis(lp_house, actions[..., :1], axis=-1)[..., 0]
        + jnp.take_along_axis(lp_mode, actions[..., 1:], axis=-1)[..., 0]
    )


def entropy(house_logits, mode_logits) -> jnp.ndarray:
    """Sum of the two heads' entropies, float32[...]."""

    def one(logits):
        lp = jax.nn.log_softmax(logits)
        return -jnp.sum(jnp.exp(lp) * lp, axis=-1)

    return one(house_logits) + one(mode_logits)


def sample(key, house_logits, mode_logits) -> jnp.ndarray:
    """Sample actions int32[..., 2]."""
    k_house, k_mode = jax.random.split(key)
    return jnp.stack(
        [
            jax.random.categorical(k_house, house_logits),
            jax.random.categorical(k_mode, mode_logits),
        ],
        axis=-1,
    ).astype(jnp.int32)


def greedy(house_logits, mode_logits) -> jnp.ndarray:
    return jnp.stack(
        [jnp.argmax(house_logits, -1), jnp.argmax(mode_logits, -1)], axis=-1
    ).astype(jnp.int32)


def pad_params(params, like):
    """`params` zero-padded at the end of every axis to the shapes of `like` (a pytree of
    arrays or ShapeDtypeStructs): a smaller network embedded in a larger one, whose extra
    hidden units have zero weights in and out, so it computes the same function."""
    return jax.tree.map(
        lambda p, t: jnp.pad(p, [(0, int(n) - int(m)) for m, n in zip(p.shape, t.shape)]),
        params, like)
