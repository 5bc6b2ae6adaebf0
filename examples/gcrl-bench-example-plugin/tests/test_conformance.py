"""The plugin's task and algorithm pass gcrl-bench's conformance kit, and the algorithm learns."""

import jax
import jax.numpy as jnp
import numpy as np

from gcrl_bench.testing import check_algorithm, check_task
from gcrl_bench_example_plugin import hindsight_bc, reacher


def test_point_reach_conforms():
    report = check_task(reacher.PointReach(), num_envs=64, num_steps=1000)
    assert report.episodes == 64 * 1000 // reacher.SPEC.episode_length


def test_hindsight_bc_conforms():
    check_algorithm(hindsight_bc.ALGORITHM, task=reacher.PointReach())


def test_bc_loss_by_hand():
    predicted = jnp.array([[0.5, -0.5], [0.0, 1.0]])
    taken = jnp.array([[0.0, 0.0], [0.0, 0.0]])
    # row 0: 0.25 + 0.25 = 0.5; row 1: 1.0; mean 0.75
    np.testing.assert_allclose(hindsight_bc.bc_loss(predicted, taken), 0.75)


def test_step_stops_at_the_arena_edge():
    task = reacher.PointReach()
    state = task.reset(jax.random.PRNGKey(0))
    for _ in range(30):
        state = task.step(state, jnp.array([1.0, 1.0]))
    np.testing.assert_allclose(state.obs[:2], [1.0, 1.0])
    np.testing.assert_allclose(state.obs[2:4], [0.0, 0.0])
