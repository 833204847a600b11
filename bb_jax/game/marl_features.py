"""The game's multi-agent observation as a team learner's input: the ten house states one-hot
(SAFE / BURNING / RUINED, the gymnax view's `one_hot_houses`) and every other feature divided
by the observation space's `high`.

Why: "house h is burning" is then one input, so "go to house h and work" is one weight away;
on the linear house codes (0, 1/2, 1) an IPPO team on `default` learned far slower
(docs/MULTI_AGENT.md, "Teams").

    train = make_train(env, one_hot_houses(env))   # bb_jax.agent.team
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from bb_jax.game import gymnax_view
from bb_jax.game.rules import NUM_HOUSES


def one_hot_houses(env) -> Callable:
    """obs float32[..., D] -> float32[..., D + 2 x 10] for the game's multi-agent env `env`
    (any learner's observation space: every learner sees the same observation)."""
    high = np.asarray(env.observation_space(env.agents[0]).high, np.float32)[NUM_HOUSES:]
    scale = jnp.asarray(1.0 / np.where(high > 0, high, 1.0))

    houses = NUM_HOUSES * gymnax_view.NUM_HOUSE_STATES

    def features(obs):
        hot = gymnax_view.one_hot_houses(obs)
        return jnp.concatenate([hot[..., :houses], obs[..., NUM_HOUSES:] * scale], -1)

    return features
