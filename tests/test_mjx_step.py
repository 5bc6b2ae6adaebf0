"""tasks/mjx_step.py: the arm's MJX step with body-by-body kinematics equals MJX's own.

Both sides run on the binpick model (the arm, cube and all eight bin walls, so every contact pair type of
the arm tasks is present) from states with the cube resting on the table and the arm moving.
"""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from gcrl_bench.tasks import arm, mjx_step

KINEMATIC_FIELDS = ("qpos", "xanchor", "xaxis", "xpos", "xquat", "xmat", "xipos", "ximat", "geom_xpos", "geom_xmat")


@pytest.fixture(scope="module")
def moving():
    """(task, batched mjx.Data of 2 envs a few env steps after reset, with a control)."""
    task = arm.make_arm_task("arm_binpick_hard")
    state = jax.vmap(task.reset)(jax.random.split(jax.random.key(0), 2))
    actions = jax.random.uniform(jax.random.key(1), (2, 5), minval=-1.0, maxval=1.0)
    state = jax.jit(jax.vmap(task.step))(state, actions)
    data = jax.vmap(task._data)(state.physics, jax.vmap(arm.action_to_ctrl)(actions))
    # a tilted cube exercises the free joint's quaternion normalization
    tilt = jnp.array([0.95, 0.2, -0.1, 0.05])
    return task, data.replace(qpos=data.qpos.at[1, 3:7].set(tilt))


def test_kinematics_matches_mjx(moving):
    task, data = moving
    ours = jax.jit(jax.vmap(lambda d: mjx_step.kinematics(task.mj_model, d)))(data)
    theirs = jax.jit(jax.vmap(lambda d: mjx.kinematics(task.mjx_model, d)))(data)
    for field in KINEMATIC_FIELDS:
        np.testing.assert_allclose(np.asarray(getattr(ours, field)), np.asarray(getattr(theirs, field)), atol=2e-6,
                                   err_msg=field)
    assert np.linalg.norm(np.asarray(ours.qpos[1, 3:7])) == pytest.approx(1.0, abs=1e-6)


def test_step_matches_mjx_step(moving):
    """Ten substeps of both steps stay within float32 round-off of each other."""
    task, data = moving
    ours = jax.jit(jax.vmap(lambda d: mjx_step.step(task.mj_model, task.mjx_model, d)))
    theirs = jax.jit(jax.vmap(lambda d: mjx.step(task.mjx_model, d)))
    a = b = data
    for _ in range(10):
        a, b = ours(a), theirs(b)
    assert np.all(np.isfinite(np.asarray(a.qpos)))
    np.testing.assert_allclose(np.asarray(a.qpos), np.asarray(b.qpos), atol=1e-5)
    np.testing.assert_allclose(np.asarray(a.qvel), np.asarray(b.qvel), atol=1e-3)
    assert not np.allclose(np.asarray(a.qpos), np.asarray(data.qpos))  # the arm did move


def test_check_supported_names_the_feature():
    spec = mujoco.MjSpec()
    body = spec.worldbody.add_body(name="b")
    body.add_freejoint()
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.1, 0, 0])
    body.add_site(name="s")
    with pytest.raises(ValueError, match="1 sites"):
        mjx_step.check_supported(spec.compile())
