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


# ------------------------------------------------------------------- HER strategies, TD rewards and masks


def _line_window(ids, terminal=None):
    """A window whose state x is the row index (goal x = the row a goal came from)."""
    T = len(ids)
    obs = jnp.asarray(np.stack([np.arange(T), np.zeros(T), np.zeros(T), np.full(T, 99.0), np.zeros(T)], 1), jnp.float32)
    term = jnp.zeros(T) if terminal is None else jnp.asarray(terminal, jnp.float32)
    return obs, jnp.zeros((T, 1)), jnp.asarray(ids, jnp.int32), term


def test_final_uses_the_last_state_of_each_episode_in_the_window():
    # episodes 3 (rows 0-3), 4 (rows 4-5), 5 (rows 6-9, continuing past the window)
    obs, act, ids, term = _line_window([3, 3, 3, 3, 4, 4, 5, 5, 5, 5])
    tr = relabel_window(jax.random.PRNGKey(0), obs, act, ids, term, SPEC, RelabelConfig("final"))
    np.testing.assert_array_equal(np.asarray(tr.goal[:, 0]), [3, 3, 3, 3, 5, 5, 9, 9, 9])
    np.testing.assert_array_equal(np.asarray(tr.future_state[:, 0]), [3, 3, 3, 3, 5, 5, 9, 9, 9])


def test_future_is_uniform_over_the_rest_of_the_episode():
    n, m = 100_000, 7
    k = np.asarray(goal_offsets(jax.random.PRNGKey(3), jnp.full((n,), m, jnp.int32), RelabelConfig("future")))
    assert k.min() == 1 and k.max() == m
    freq = np.bincount(k, minlength=m + 1)[1:] / n
    np.testing.assert_array_less(np.abs(freq - 1 / m), 5 * np.sqrt((1 / m) * (1 - 1 / m) / n))


@pytest.mark.parametrize("strategy", ["final", "future"])
def test_her_fraction_keeps_the_commanded_goal_for_the_rest(strategy):
    T = 2001
    obs, act, ids, term = _line_window(np.zeros(T, int))
    tr = relabel_window(jax.random.PRNGKey(1), obs, act, ids, term, SPEC, RelabelConfig(strategy, 0.99, 0.8))
    commanded = np.asarray(tr.goal[:, 0]) == 99.0
    assert abs(commanded.mean() - 0.2) < 0.03
    # the relabelled ones come from the same episode, later in it
    src = np.asarray(tr.goal[~commanded, 0]).astype(int)
    assert np.all(src > np.arange(T - 1)[~commanded])


def test_rewards_are_one_exactly_within_the_threshold():
    # x moves 0.2 per row; goals are commanded at x = 1.0 (threshold 0.5, strict)
    T = 12
    x = 0.2 * np.arange(T)
    obs = jnp.asarray(np.stack([x, np.zeros(T), np.zeros(T), np.full(T, 1.0), np.zeros(T)], 1), jnp.float32)
    tr = relabel_window(jax.random.PRNGKey(0), obs, jnp.zeros((T, 1)), jnp.zeros(T, jnp.int32), jnp.zeros(T), SPEC,
                        RelabelConfig("none"))
    np.testing.assert_array_equal(np.asarray(tr.reward), (np.abs(x[:-1] - 1.0) < 0.5).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(tr.next_reward), (np.abs(x[1:] - 1.0) < 0.5).astype(np.float32))
    for strategy in ("final", "future", "geometric"):
        tr = relabel_window(jax.random.PRNGKey(4), obs, jnp.zeros((T, 1)), jnp.zeros(T, jnp.int32), jnp.zeros(T), SPEC,
                            RelabelConfig(strategy, 0.7))
        g = np.asarray(tr.goal)
        s, s_next = np.asarray(tr.state[:, :2]), np.asarray(tr.next_state[:, :2])
        np.testing.assert_array_equal(np.asarray(tr.reward), (np.linalg.norm(s - g, axis=1) < 0.5).astype(np.float32))
        np.testing.assert_array_equal(np.asarray(tr.next_reward), (np.linalg.norm(s_next - g, axis=1) < 0.5).astype(np.float32))


def test_mask_is_zero_exactly_on_time_limit_cuts():
    # episodes: 0 rows 0-2 cut by the time limit; 1 rows 3-4 terminated at row 4; 2 rows 5-7 cut; 3 rows 8-9
    ids = [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    terminal = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    obs, act, ids_, term = _line_window(ids, terminal)
    tr = relabel_window(jax.random.PRNGKey(0), obs, act, ids_, term, SPEC, RelabelConfig("future"))
    np.testing.assert_array_equal(np.asarray(tr.mask), [1, 1, 0, 1, 1, 1, 1, 0, 1])
    np.testing.assert_array_equal(np.asarray(tr.discount), [1, 1, 1, 1, 0, 1, 1, 1, 1])
    # the terminated tuple, whose terminal state is not stored, takes the success of s_t as its reward
    assert float(tr.next_reward[4]) == float(tr.reward[4])
    # random windows: mask == 0 iff the next row starts a new episode that did not follow a termination
    rng = np.random.default_rng(1)
    T = 400
    ids = np.cumsum(rng.random(T) < 0.05).astype(np.int32)
    boundary = np.concatenate([ids[1:] != ids[:-1], [False]])
    terminal = (boundary & (rng.random(T) < 0.5)).astype(np.float32)
    tr = relabel_window(jax.random.PRNGKey(2), jnp.zeros((T, 5)), jnp.zeros((T, 1)), jnp.asarray(ids), jnp.asarray(terminal),
                        SPEC, RelabelConfig("geometric", 0.9))
    np.testing.assert_array_equal(np.asarray(tr.mask) == 0, boundary[:-1] & (terminal[:-1] == 0))
