"""make_gymnax_env: the recommended stack of the game for stock gymnax learners.

CI tier: the stack's spaces and shapes, and that it plays the game's episodes bit for bit (the
same keys and actions give the same returns, ends and unscaled observations as the raw view);
the stock network's first layer is no longer saturated at init. Slow tier: a stock PPO at
PureJaxRL's published settings beats the uniform-random policy on `default` in 300k steps.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from benchmark_helpers import load_benchmark
from gymnax.environments import environment, spaces

from bb_jax.game.env import make_env
from bb_jax.game.gymnax_view import REWARD_SCALE, make_gymnax_env, one_hot_houses
from bb_jax.game.rules import observation_high, time_input
from bb_jax.game.wrappers import FlatActionWrapper
from bb_jax.stats import paired_difference

STEPS = 40  # three episodes of `default` (13 nights each) under random actions


def play(env, seed: int, steps: int = STEPS):
    """`steps` steps of random flat actions (0..19) from reset, jitted: per-step outputs."""
    params = env.default_params

    def one(state, key):
        k_act, k_step = jax.random.split(key)
        action = jax.random.randint(k_act, (), 0, 20)
        obs, state, reward, term, trunc, info = env.step(k_step, state, action, params)
        return state, (obs, reward, term, trunc, info)

    @jax.jit
    def run():
        obs0, state = env.reset(jax.random.key(seed), params)
        return obs0, jax.lax.scan(one, state, jax.random.split(jax.random.key(seed + 1),
                                                               steps))[1]

    return run()


@pytest.fixture(scope="module")
def raw():
    """The raw view's play (as first published: one Discrete(20) action, nothing else)."""
    return play(FlatActionWrapper(make_env("default")), 3)


@pytest.fixture(scope="module")
def stacked():
    """The recommended stack's play, from the same keys and actions as `raw`."""
    return play(make_gymnax_env("default"), 3)


@pytest.fixture(scope="module")
def stock():
    return load_benchmark("stock_ppo")


def test_the_stack_is_a_gymnax_env_with_scaled_observations_and_a_clock(stacked):
    env = make_gymnax_env("default")
    params = env.default_params
    assert isinstance(env, environment.Environment)
    assert isinstance(env.action_space(params), spaces.Discrete)
    assert env.action_space(params).n == 20
    space = env.observation_space(params)
    assert isinstance(space, spaces.Box) and space.shape == (22 + 4 * 3 + 20 + 1,)
    obs0, (obs, *_rest, info) = stacked
    assert bool(space.contains(obs0)) and bool(jnp.all(jax.vmap(space.contains)(obs)))
    assert float(obs0[-1]) == 0.0  # the clock starts at 0
    assert float(jnp.max(jnp.abs(obs))) <= 1.0  # every feature scaled into [0, 1]
    np.testing.assert_allclose(np.asarray(info["final_observation"][:, -1]) * 50,
                               np.asarray(info["episode_length"]), rtol=1e-6)
    factored = make_gymnax_env("default", flat_action=False)
    assert isinstance(factored.action_space(params), spaces.Tuple)


def test_the_stack_plays_the_games_episodes_bit_for_bit(raw, stacked):
    """Same keys and actions: the stack's returns, ends and episode figures are the raw
    view's; its rewards are the raw rewards times REWARD_SCALE and its observations (final
    ones included) the raw ones with the clock appended and the house states one-hot,
    divided by the game's bounds."""
    raw0, (raw_obs, raw_reward, raw_term, raw_trunc, raw_info) = raw
    obs0, (obs, reward, term, trunc, info) = stacked
    assert bool(jnp.any(term))  # the run crosses episode ends
    for a, b in ((term, raw_term), (trunc, raw_trunc),
                 (info["episode_return"], raw_info["episode_return"]),
                 (info["episode_length"], raw_info["episode_length"]),
                 (reward, raw_reward * jnp.float32(REWARD_SCALE))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    high = jnp.concatenate([jnp.ones(30), observation_high(3)[10:], jnp.ones(1)])
    count = np.asarray(info["episode_length"])  # nights into the episode after each step
    after = np.where(np.asarray(term | trunc), 0, count)

    def expected(raw_obs, nights):
        return one_hot_houses(time_input(raw_obs, nights, 50)) / high

    np.testing.assert_array_equal(obs0, expected(raw0, 0))
    np.testing.assert_array_equal(obs, expected(raw_obs, after))
    np.testing.assert_array_equal(info["final_observation"],
                                  expected(raw_info["final_observation"], count))
    burning = np.asarray(raw_obs[:, :10] == 1)  # one indicator per house, at its state
    np.testing.assert_array_equal(np.asarray(obs[:, 1:30:3]) == 1.0, burning)
    np.testing.assert_array_equal(np.asarray(obs[:, :30]).reshape(-1, 10, 3).sum(-1), 1.0)


def test_every_keyword_off_is_the_raw_view(raw):
    """Every wrapper but the flat action off: exactly FlatActionWrapper(make_env)."""
    bare = play(make_gymnax_env("default", time_input=False, one_hot=False,
                                scale_observation=False, reward_scale=None), 3)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 bare, raw)


def test_the_stock_network_sees_the_town_only_through_the_stack(raw, stacked, stock):
    """The measured cause: at PureJaxRL's init, most first-layer tanh units of the stock
    network are saturated on the raw view's observations (the scenario's 100s), few on the
    stack's."""
    raw_obs, obs = raw[1][0], stacked[1][0]
    net = stock.ActorCritic((20,), 64)
    assert float(stock.saturation(net.init(jax.random.key(0), raw_obs[0]), raw_obs)) > 0.5
    assert float(stock.saturation(net.init(jax.random.key(0), obs[0]), obs)) < 0.1


def test_stock_ppo_heads_are_one_categorical_per_action_part(stock):
    """A flat Discrete(20) has one head, the (house, mode) Tuple two; uniform logits give
    log-probability -log 20 and entropy log 20 either way; a Box is refused."""
    assert stock.action_sizes(spaces.Discrete(20)) == (20,)
    assert stock.action_sizes(make_env("default").action_space(None)) == (10, 2)
    for sizes, action in (((20,), jnp.array([[7]])), ((10, 2), jnp.array([[3, 1]]))):
        log_p, ent = stock.log_prob_entropy(jnp.zeros((1, sum(sizes))), action, sizes)
        np.testing.assert_allclose(log_p, [-np.log(20)], rtol=1e-6)
        np.testing.assert_allclose(ent, [np.log(20)], rtol=1e-6)
    with pytest.raises(ValueError, match="Discrete"):
        stock.action_sizes(spaces.Box(0.0, 1.0, (3,), jnp.float32))


@pytest.mark.slow  # cheaper siblings: the tests above
def test_stock_ppo_at_published_defaults_beats_random_on_default(stock):
    """PureJaxRL's CartPole settings, 300k env steps, fresh seeds (the benchmark's are 0..7):
    on the same fresh episodes, trained minus uniform-random is positive with its whole
    95% CI over seeds above zero."""
    seeds = list(range(100, 108))
    experiment = stock.make_experiment(make_gymnax_env("default"), stock.Settings(), 512)
    trained, uniform, _ = experiment(seeds)
    assert not np.isnan(np.asarray(trained)).any()
    diff = paired_difference(np.asarray(trained).mean(axis=1),
                             np.asarray(uniform).mean(axis=1))
    assert diff.significant, diff


@pytest.mark.slow  # one tiny training compile; cheaper siblings: the heads and saturation tests
def test_stock_ppo_benchmark_writes_its_figures_and_resumes(stock, tmp_path):
    """--quick writes the variant's paired figures per seed; --resume with the same settings
    keeps them and trains nothing (the file is unchanged); other settings start afresh."""
    out = tmp_path / "stock.json"
    assert stock.main(["--quick", "--variants", "flat", "--out", str(out)]) == 0
    first = json.loads(out.read_text())
    flat = first["variants"]["flat"]
    assert len(flat["per_seed"]["trained"]) == len(first["settings"]["seeds"]) == 2
    assert flat["unfinished_episodes"] == 0 and "saturation" in flat["diagnostics"]
    assert stock.main(["--quick", "--variants", "flat", "--resume", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["variants"] == first["variants"]
    assert stock.kept_variants(out, {**first["settings"], "seeds": [5, 6]}) == {}
