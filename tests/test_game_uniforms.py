"""`rules.uniforms` draws its own threefry hash; its streams must be JAX's, bit for bit.

Every figure of the project (studies, training runs, the golden env hashes) is built on the
streams of `jax.random.uniform` under threefry's non-partitionable form, so the unrolled hash
is checked against it on even, odd and empty shapes, typed and raw keys, jitted and vmapped.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bb_jax.game import rules


def _jax_uniforms(key, shape):
    with jax.threefry_partitionable(False):
        return jax.random.uniform(key, shape)


KEYS = {
    "typed": lambda: jax.random.key(123),
    "raw": lambda: jax.random.PRNGKey(5),
    "split": lambda: jax.random.split(jax.random.key(9))[1],
}


@pytest.mark.parametrize("shape", [(1,), (3,), (84,), (7, 5, 3), (64, 84), (0,)])
@pytest.mark.parametrize("key_kind", list(KEYS))
def test_uniforms_are_jax_streams(shape, key_kind):
    key = KEYS[key_kind]()
    want = np.asarray(_jax_uniforms(key, shape))
    got = np.asarray(jax.jit(rules.uniforms, static_argnums=1)(key, shape))
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_uniforms_vmapped_over_keys():
    keys = jax.random.split(jax.random.key(3), 5)
    got = jax.vmap(lambda k: rules.uniforms(k, (6, 3)))(keys)
    want = jax.vmap(lambda k: _jax_uniforms(k, (6, 3)))(keys)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_other_prng_implementations_fall_back_to_jax():
    key = jax.random.key(4, impl="rbg")
    np.testing.assert_array_equal(
        np.asarray(rules.uniforms(key, (4, 3))), np.asarray(_jax_uniforms(key, (4, 3)))
    )
