"""The relabeller: truncated geometric law, episode boundaries, the other strategies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcrl_bench.interface import RelabelConfig, TaskSpec
from gcrl_bench.relabel import episode_end_offsets, goal_offsets, relabel_window

SPEC = TaskSpec(name="t", state_size=3, goal_size=2, goal_indices=(0, 1), action_size=1, success_threshold=0.5,
                episode_length=10, env_step_seconds=0.1, backend="jax", benchmark=False)


def test_episode_end_offsets_by_hand():
    ids = jnp.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    np.testing.assert_array_equal(episode_end_offsets(ids), [2, 1, 0, 1, 0, 0, 3, 2, 1, 0])


@pytest.mark.parametrize("gamma,m", [(0.5, 5), (0.9, 3), (0.99, 40)])
def test_geometric_offsets_follow_truncated_law(gamma, m):
    n = 200_000
    k = np.asarray(goal_offsets(jax.random.PRNGKey(0), jnp.full((n,), m, jnp.int32), RelabelConfig("geometric", gamma)))
    assert k.min() >= 1 and k.max() <= m
    p = gamma ** np.arange(1, m + 1)
    p /= p.sum()
    freq = np.bincount(k, minlength=m + 1)[1:] / n
    # 5 standard errors of a binomial proportion
    np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / n) + 1e-4)


def test_untruncated_geometric_mean_is_about_100_steps():
    # gamma = 0.99: mean offset of the geometric law on k >= 1 is 1 / (1 - gamma) = 100
    k = goal_offsets(jax.random.PRNGKey(1), jnp.full((100_000,), 100_000, jnp.int32), RelabelConfig("geometric", 0.99))
    assert abs(float(jnp.mean(k)) - 100.0) < 1.5


def test_goals_never_cross_a_trajectory_boundary():
    T = 300
    rng = np.random.default_rng(0)
    ids = np.cumsum(rng.random(T) < 0.05).astype(np.int32)  # random episode boundaries
    obs = jnp.asarray(np.stack([np.arange(T), ids, np.zeros(T), np.zeros(T), np.zeros(T)], 1), jnp.float32)
    for strategy in ("geometric", "future", "final"):
        for seed in range(5):
            tr = relabel_window(jax.random.PRNGKey(seed), obs, jnp.zeros((T, 1)), jnp.asarray(ids), jnp.zeros(T), SPEC,
                                RelabelConfig(strategy, 0.9))
            src = np.asarray(tr.goal[:, 0]).astype(int)  # goal x = index of the step it came from
            i = np.arange(T - 1)
            assert np.all(ids[src] == ids[i]), strategy
            has_future = np.asarray(episode_end_offsets(jnp.asarray(ids)))[:-1] > 0
            assert np.all(src[has_future] > i[has_future]), strategy
            assert np.all(src[~has_future] == i[~has_future]), strategy
    final = relabel_window(jax.random.PRNGKey(0), obs, jnp.zeros((T, 1)), jnp.asarray(ids), jnp.zeros(T), SPEC,
                           RelabelConfig("final"))
    last = np.arange(T) + np.asarray(episode_end_offsets(jnp.asarray(ids)))
    np.testing.assert_array_equal(np.asarray(final.goal[:, 0]).astype(int), last[:-1])


def test_reward_fraction_and_none():
    T = 50
    obs = jnp.concatenate([jnp.arange(T, dtype=jnp.float32)[:, None] * 0.1, jnp.zeros((T, 2)),
                           jnp.full((T, 2), 7.0)], axis=1)
    ids = jnp.zeros(T, jnp.int32)
    none = relabel_window(jax.random.PRNGKey(0), obs, jnp.zeros((T, 1)), ids, jnp.zeros(T), SPEC, RelabelConfig("none"))
    np.testing.assert_array_equal(none.goal, np.full((T - 1, 2), 7.0))
    assert float(none.reward.sum()) == 0.0
    geo = relabel_window(jax.random.PRNGKey(0), obs, jnp.zeros((T, 1)), ids, jnp.zeros(T), SPEC, RelabelConfig("geometric", 0.5))
    dist = np.linalg.norm(np.asarray(geo.state[:, :2] - geo.goal), axis=1)
    np.testing.assert_array_equal(np.asarray(geo.reward), (dist < 0.5).astype(np.float32))
    half = relabel_window(jax.random.PRNGKey(0), jnp.tile(obs, (40, 1)), jnp.zeros((40 * T, 1)), jnp.zeros(40 * T, jnp.int32),
                          jnp.zeros(40 * T), SPEC, RelabelConfig("geometric", 0.5, fraction=0.25))
    kept = float(jnp.mean(jnp.all(half.goal == 7.0, axis=1)))
    assert abs(kept - 0.75) < 0.03
