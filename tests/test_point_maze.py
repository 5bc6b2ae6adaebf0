"""The sanity task: spec, determinism, and solid walls."""

import jax
import jax.numpy as jnp
import numpy as np

from gcrl_bench import registry
from gcrl_bench.tasks.point_maze import CELL, RADIUS, PointUMaze


def test_registered_and_marked_as_not_a_benchmark_task():
    spec = registry.task_spec("point_u_maze")
    assert not spec.benchmark and "not one of the ten" in spec.description
    assert "point_u_maze" not in registry.benchmark_task_names()
    assert spec.observation_size == 6 and spec.goal_indices == (0, 1)


def test_reset_is_deterministic_and_goals_come_from_the_goal_sets():
    task = PointUMaze(eval_goals="far")
    a, b = task.reset(jax.random.PRNGKey(0)), task.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(a.obs, b.obs)
    goals = jax.vmap(lambda k: task.reset(k, True).obs[4:])(jax.random.split(jax.random.PRNGKey(1), 64))
    np.testing.assert_array_equal(np.unique(np.asarray(goals), axis=0), np.asarray(task.eval_goals))
    train = jax.vmap(lambda k: task.reset(k).obs[4:])(jax.random.split(jax.random.PRNGKey(2), 512))
    assert len(np.unique(np.asarray(train), axis=0)) == len(task.train_goals) == 6


def test_walls_stop_the_point_mass():
    task = PointUMaze()
    state = task.reset(jax.random.PRNGKey(0))
    step = jax.jit(task.step)
    for _ in range(100):  # push right (+y) from the start: the wall column j=2 is in the way
        state = step(state, jnp.array([0.0, 1.0]))
    y = float(state.obs[1])
    assert y < 1.5 * CELL - RADIUS + 1e-6, y  # stopped at the wall face
    assert y > 1.5 * CELL - RADIUS - 0.25     # and it did reach it
    assert float(state.obs[3]) == 0.0          # inelastic stop
