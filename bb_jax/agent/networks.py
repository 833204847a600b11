"""The actor-critic network: a plain MLP over a flat observation vector (two ReLU layers,
shared by actor and critic, or one torso each), a categorical head per action dimension and a
value head. The game's feature encoding (house states one-hot, the time input) is the env's
wrapper (`bb_jax.game.wrappers.FeatureWrapper`), not the network's."""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from bb_jax.agent.config import CRITICS


def _scaled(gain: float):
    # QR-free stand-in for orthogonal(gain): same variance, no LAPACK call (docs/PPO.md).
    return nn.initializers.variance_scaling(gain**2, "fan_avg", "uniform")


class ActorCritic(nn.Module):
    """x float32[..., I] -> (logits [..., action_dims[0]], ..., logits [..., action_dims[-1]],
    value [...]): one categorical head per action dimension (the game: house 10, mode 2).

    critic "shared": one torso feeds all heads; "separate": the value head has its own torso
    (same sizes), so value gradients do not reach the policy's features."""

    hidden_size: int
    action_dims: tuple[int, ...] = (10, 2)
    critic: str = "shared"

    def _torso(self, x, names):
        for name in names:
            x = nn.relu(nn.Dense(self.hidden_size, kernel_init=_scaled(2**0.5), name=name)(x))
        return x

    @nn.compact
    def __call__(self, x: jnp.ndarray):
        if self.critic not in CRITICS:
            raise ValueError(f"unknown critic {self.critic!r}; valid: {', '.join(CRITICS)}")
        # the policy's torso keeps flax's automatic names (Dense_0, Dense_1), then one Dense per
        # head and the value's: runs saved before the critic choice load with critic="shared"
        actor = self._torso(x, (None, None))
        critic = actor if self.critic == "shared" else self._torso(x, ("critic_0", "critic_1"))
        logits = [nn.Dense(n, kernel_init=_scaled(0.01))(actor) for n in self.action_dims]
        value = nn.Dense(1, kernel_init=_scaled(1.0))(critic)[..., 0]
        return (*logits, value)


def log_prob(logits: Sequence[jnp.ndarray], actions: jnp.ndarray) -> jnp.ndarray:
    """Sum of the heads' log-probabilities; actions int32[..., K] -> float32[...]."""
    return functools.reduce(operator.add, [
        jnp.take_along_axis(jax.nn.log_softmax(head), actions[..., k:k + 1], axis=-1)[..., 0]
        for k, head in enumerate(logits)])


def entropy(logits: Sequence[jnp.ndarray]) -> jnp.ndarray:
    """Sum of the heads' entropies, float32[...]."""

    def one(head):
        lp = jax.nn.log_softmax(head)
        return -jnp.sum(jnp.exp(lp) * lp, axis=-1)

    return functools.reduce(operator.add, [one(head) for head in logits])


def sample(key, logits: Sequence[jnp.ndarray]) -> jnp.ndarray:
    """Sample actions int32[..., K], one key per head (split from `key`)."""
    keys = jax.random.split(key, len(logits))
    return jnp.stack([jax.random.categorical(k, head) for k, head in zip(keys, logits)],
                     axis=-1).astype(jnp.int32)


def greedy(logits: Sequence[jnp.ndarray]) -> jnp.ndarray:
    """Each head's most likely action, int32[..., K]."""
    return jnp.stack([jnp.argmax(head, -1) for head in logits], axis=-1).astype(jnp.int32)


def pad_params(params, like):
    """`params` zero-padded at the end of every axis to the shapes of `like` (a pytree of
    arrays or ShapeDtypeStructs): a smaller network embedded in a larger one, whose extra
    hidden units have zero weights in and out, so it computes the same function."""
    return jax.tree.map(
        lambda p, t: jnp.pad(p, [(0, int(n) - int(m)) for m, n in zip(p.shape, t.shape)]),
        params, like)
