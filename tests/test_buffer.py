"""Replay buffer: insert wrap-around, FIFO, and windows that wrap the ring."""

import jax
import jax.numpy as jnp
import numpy as np

from gcrl_bench import buffer


def _rows(start, n, envs=2):
    t = jnp.arange(start, start + n, dtype=jnp.float32)
    obs = jnp.broadcast_to(t[:, None, None], (n, envs, 3)) + jnp.arange(envs)[None, :, None] * 1000
    return obs, jnp.zeros((n, envs, 1)), jnp.broadcast_to(t[:, None].astype(jnp.int32), (n, envs)), jnp.zeros((n, envs))


def test_insert_wraps_and_keeps_the_newest_rows():
    b = buffer.init(capacity=10, num_envs=2, observation_size=3, action_size=1)
    b = buffer.insert(b, *_rows(0, 7))
    assert int(b.size) == 7 and int(b.position) == 7
    b = buffer.insert(b, *_rows(7, 7))  # 14 rows into 10: rows 4..13 survive
    assert int(b.size) == 10 and int(b.position) == 4
    assert sorted(np.asarray(b.obs[:, 0, 0]).astype(int).tolist()) == list(range(4, 14))


def test_windows_are_consecutive_even_across_the_physical_end():
    b = buffer.init(capacity=10, num_envs=2, observation_size=3, action_size=1)
    for start in range(0, 23, 5):
        b = buffer.insert(b, *_rows(start, 5))  # 25 rows: stored 15..24, oldest at physical row 5
    obs, _, traj, _ = buffer.sample_windows(b, jax.random.PRNGKey(0), 200, 6)
    t = np.asarray(obs[..., 0])
    env = (t[:, :1] // 1000)
    t = t - env * 1000
    assert np.all(np.diff(t, axis=1) == 1), "window rows must be consecutive in time"
    assert t.min() >= 15 and t.max() <= 24, "windows stay inside the stored rows"
    assert set(np.unique(t[:, 0]).astype(int)) == set(range(15, 20)), "every admissible start is drawn"
    np.testing.assert_array_equal(np.asarray(traj), t.astype(int))


def test_one_window_per_env_is_a_permutation():
    b = buffer.init(capacity=8, num_envs=5, observation_size=3, action_size=1)
    b = buffer.insert(b, *_rows(0, 8, envs=5))
    obs, *_ = buffer.sample_windows(b, jax.random.PRNGKey(3), 5, 4)
    envs = sorted((np.asarray(obs[:, 0, 0]) // 1000).astype(int).tolist())
    assert envs == [0, 1, 2, 3, 4]
