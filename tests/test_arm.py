"""Arm tasks (tasks/arm.py): spec, reset regions, observation, action mapping, servo accuracy, grasping,
determinism, rendering.

MJX programs take 20-30 s each to compile on 2 cores, so the physics tests share two compiled rollouts,
one for the push tasks (arm_push_easy and arm_push_hard have the same physics model) and one for binpick,
and are marked slow; the default run checks spec, models, action mapping, resets,
observations against MuJoCo's kinematics and the render protocol.
"""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from gcrl_bench import registry
from gcrl_bench.tasks import arm

CHUNK = 20
"""Env steps per call of the compiled rollout."""
GRAVITY = 9.81


def _rollout_fn(task):
    """jit: (batched state, actions (CHUNK, n, 5)) -> (state, obs (CHUNK, n, 20))."""

    def rollout(state, actions):
        def body(s, a):
            s = jax.vmap(task.step)(s, a)
            return s, s.obs

        return jax.lax.scan(body, state, actions)

    return jax.jit(rollout)


@pytest.fixture(scope="module")
def push():
    task = registry.get_task("arm_push_easy")
    return task, _rollout_fn(task), jax.jit(jax.vmap(task.reset))


@pytest.fixture(scope="module")
def binpick():
    task = registry.get_task("arm_binpick_hard")
    return task, _rollout_fn(task), jax.jit(jax.vmap(task.reset))


def _hold(rollout, state, action, chunks):
    """Applies one (n, 5) action for chunks x CHUNK env steps."""
    actions = jnp.broadcast_to(action, (CHUNK,) + action.shape)
    for _ in range(chunks):
        state, obs = rollout(state, actions)
    return state, obs


def _mj_data(task, qpos, qvel=None):
    data = mujoco.MjData(task.mj_model)
    data.qpos[:] = np.asarray(qpos, np.float64)
    if qvel is not None:
        data.qvel[:] = np.asarray(qvel, np.float64)
    mujoco.mj_forward(task.mj_model, data)
    return data


# --------------------------------------------------------------------------------------------- static


@pytest.mark.parametrize("name", list(arm.SCENES))
def test_spec(name):
    spec = registry.task_spec(name)
    assert (spec.state_size, spec.goal_size, spec.goal_indices, spec.action_size) == (17, 3, (0, 1, 2), 5)
    assert spec.observation_size == 20 and spec.episode_length == 1000
    assert spec.success_threshold == 0.1 and spec.backend == "mjx" and spec.benchmark
    assert spec.env_step_seconds == pytest.approx(0.002 * 25)


def test_models():
    easy, hard, binpick = (arm.build_mj_model(arm.SCENES[n]) for n in arm.SCENES)
    for m in (easy, binpick):
        assert (m.nq, m.nv, m.nu) == (16, 15, 9)
        assert m.opt.timestep == 0.002 and m.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        assert np.all(m.geom_contype == 0) and np.all(m.geom_conaffinity == 0)  # explicit pairs only
        assert m.body("link1").pos[2] == pytest.approx(0.333)
        np.testing.assert_allclose(m.jnt_range[m.joint("joint4").id], [-3.0718, -0.0698])
        np.testing.assert_allclose(m.jnt_range[m.joint("joint6").id], [-0.0175, 3.7525])
        assert m.nmesh == 0
    assert (easy.npair, binpick.npair) == (7, 7 + 8 + 24)
    assert binpick.opt.impratio == 10.0 and easy.opt.impratio == 1.0
    # the push tasks share one physics model: only start/goal draws and drawn patches differ
    assert mujoco.mj_sizeModel(easy) == mujoco.mj_sizeModel(hard)
    np.testing.assert_array_equal(easy.geom_size, hard.geom_size)


def test_action_mapping():
    ctrl = np.asarray(arm.action_to_ctrl(jnp.array([0.0, 0.0, 0.0, 0.0, -1.0])))
    np.testing.assert_allclose(ctrl, [1.5708, 0.741765, 0, -1.5708, 0, 3.05435, 1.4487, 255, 255], atol=1e-4)
    ctrl = np.asarray(arm.action_to_ctrl(jnp.array([1.0, -1.0, 1.0, -1.0, 0.5])))
    np.testing.assert_allclose(ctrl, [2.7925, 0.0, 0, -0.0698, 0, 2.3562, 1.4487, 0, 0], atol=1e-4)
    # out-of-range actions are clipped; a4 = 0 opens
    np.testing.assert_allclose(arm.action_to_ctrl(jnp.array([5.0, 0, 0, 0, 0.0])), arm.action_to_ctrl(jnp.array([1.0, 0, 0, 0, 0.0])))
    assert float(arm.action_to_ctrl(jnp.zeros(5))[7]) == 255.0


@pytest.mark.parametrize("name", list(arm.SCENES))
def test_reset_regions_and_observation(name):
    task = registry.get_task(name)
    scene = arm.SCENES[name]
    n = 256
    states = jax.jit(jax.vmap(task.reset))(jax.random.split(jax.random.key(0), n))
    obs = np.asarray(states.obs)
    assert obs.shape == (n, 20) and np.all(np.isfinite(obs))
    cube, goal = obs[:, 0:3], obs[:, 17:20]
    for xy, centre, half in ((cube[:, :2], scene.start_centre, scene.start_half), (goal[:, :2], scene.goal_centre, scene.goal_half)):
        offset = xy - np.asarray(centre)
        assert np.all(np.abs(offset) <= half + 1e-6)
        assert np.all(offset.max(0) > 0.8 * half) and np.all(offset.min(0) < -0.8 * half)  # fills the region
    np.testing.assert_allclose(cube[:, 2], arm.CUBE_START_Z)
    np.testing.assert_allclose(goal[:, 2], arm.GOAL_Z)
    if scene.bins:  # the whole cube starts inside bin A; goals lie inside bin B
        inner = arm.BIN_WALL_OFFSET - arm.BIN_WALL_HALF_THICK
        assert np.all(np.abs(cube[:, :2] - scene.start_centre) + arm.CUBE_HALF < inner)
        assert np.all(np.abs(goal[:, :2] - scene.goal_centre) < inner)
    np.testing.assert_allclose(obs[:, 3:10], np.broadcast_to(arm.ARM_INIT_Q, (n, 7)), atol=1e-6)
    np.testing.assert_allclose(obs[:, 13:16], 0.0)
    np.testing.assert_allclose(obs[:, 16], 2 * (arm.FINGER_INIT_Q), atol=1e-6)
    # end effector = link7 origin, by MuJoCo's own forward kinematics
    data = _mj_data(task, states.physics.qpos[0])
    np.testing.assert_allclose(obs[0, 10:13], data.xpos[task.mj_model.body("link7").id], atol=1e-5)
    # keys matter and are reproducible
    again = jax.jit(jax.vmap(task.reset))(jax.random.split(jax.random.key(0), n))
    np.testing.assert_array_equal(np.asarray(again.obs), obs)
    assert len(np.unique(goal[:, 0])) > 0.9 * n


# ------------------------------------------------------------------------------------------- dynamics

# Arm poses with the hand well above the table (gripper open), whose servo rest angles lie inside the
# joint ranges.
HOLD_ACTIONS = np.array([
    [0.0, -0.5, 0.0, 0.0, -1.0],
    [0.5, -0.3, 0.3, 0.5, -1.0],
    [-0.5, -0.8, -0.3, -0.5, -1.0],
    [0.3, 0.0, 0.5, -0.8, -1.0],
], np.float32)


@pytest.mark.slow  # compiles and runs MJX rollouts: about a minute on a 2-core CPU
def test_arm_reaches_servo_targets(push):
    """After 3 s of a constant action every arm joint rests at the servo's rest angle gain * ctrl / kp,
    up to the static error gravity leaves.

    Bound: at rest, gain * ctrl - kp * q + tau_g = 0, so |q - gain * ctrl / kp| = |tau_g| / kp. The
    gravity torque about joint i is tau_g = axis . ((c_i - p_i) x M_i g) for the subtree of mass M_i
    (the link masses beyond joint i) with centre of mass c_i and the joint anchor p_i, so
    |tau_g| <= M_i g |c_i - p_i|, and the static error is at most M_i g |c_i - p_i| / kp_i
    (for example joint 2: 11.9 kg x 9.81 x ~0.3 m / 4500 ~ 0.008 rad).
    """
    task, rollout, reset = push
    state = reset(jax.random.split(jax.random.key(1), len(HOLD_ACTIONS)))
    state, _ = _hold(rollout, state, jnp.asarray(HOLD_ACTIONS), chunks=3)
    m = task.mj_model
    kp = np.array([s[1] for s in arm.ARM_SERVOS])
    gain = np.array([s[0] for s in arm.ARM_SERVOS])
    for k, action in enumerate(HOLD_ACTIONS):
        q = np.asarray(state.physics.qpos[k])
        assert np.all(np.isfinite(q))
        rest = gain * np.asarray(arm.action_to_ctrl(jnp.asarray(action)))[:7] / kp
        data = _mj_data(task, q)
        fingers = [m.geom(g).id for g in ("left_finger", "right_finger", "hand")]
        assert data.geom_xpos[fingers, 2].min() > 0.1, "the test poses must keep the gripper off the table"
        bound = np.empty(7)
        for j in range(7):
            jid = m.joint(f"joint{j + 1}").id
            body = m.jnt_bodyid[jid]
            lever = np.linalg.norm(data.subtree_com[body] - data.xanchor[jid])
            bound[j] = m.body_subtreemass[body] * GRAVITY * lever / kp[j]
        error = np.abs(q[7:14] - rest)
        assert np.all(error <= bound + 1e-3), (k, error, bound)
        assert np.all(bound < 0.02)  # the bound itself is small: the servos are stiff
        np.testing.assert_allclose(q[14:16], arm.FINGER_OPEN, atol=2e-3)  # ctrl 255 opens each finger fully


@pytest.mark.slow  # compiles and runs MJX rollouts: about a minute on a 2-core CPU
def test_rollout_deterministic_finite_and_physical(push):
    task, rollout, reset = push
    n = len(HOLD_ACTIONS)
    state0 = reset(jax.random.split(jax.random.key(2), n))
    actions = jax.random.uniform(jax.random.key(3), (CHUNK, n, 5), minval=-1.0, maxval=1.0)
    s1, obs1 = rollout(state0, actions)
    s2, obs2 = rollout(state0, actions)
    np.testing.assert_array_equal(np.asarray(obs1), np.asarray(obs2))
    obs1 = np.asarray(obs1)
    assert np.all(np.isfinite(obs1))
    assert np.all(obs1[..., 2] > arm.CUBE_HALF - 0.01)  # the cube rests on (not in) the table
    assert np.all(obs1[-1, :, 2] < arm.CUBE_START_Z)  # ... after falling from its start height
    np.testing.assert_array_equal(obs1[..., 17:], np.broadcast_to(np.asarray(state0.obs)[:, 17:], obs1[..., 17:].shape))
    other, _ = rollout(state0, actions[:, ::-1])
    assert not np.allclose(np.asarray(other.obs), np.asarray(s1.obs))
    # end-effector velocity (obs 13:16) is the link7 frame origin's world velocity (XBODY: origin, not com)
    data = _mj_data(task, s1.physics.qpos[0], s1.physics.qvel[0])
    vel = np.zeros(6)
    mujoco.mj_objectVelocity(task.mj_model, data, mujoco.mjtObj.mjOBJ_XBODY, task.mj_model.body("link7").id, vel, 0)
    np.testing.assert_allclose(np.asarray(s1.obs[0, 13:16]), vel[3:], atol=1e-4)


def test_render_protocol(push):
    task, rollout, reset = push
    state = reset(jax.random.split(jax.random.key(4), 1))
    single = jax.tree.map(lambda x: x[0], state)
    model = task.render_model()
    qpos = task.render_qpos(single)
    assert qpos.shape == (model.nq,)
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(data.xpos[model.body("cube").id], np.asarray(single.obs[0:3]), atol=1e-6)
    np.testing.assert_allclose(data.xpos[model.body("goal_marker").id], np.asarray(single.obs[17:20]), atol=1e-6)
    marker = model.geom("goal_marker").id
    assert model.geom_contype[marker] == 0 and model.geom_conaffinity[marker] == 0
    assert model.ngeom > task.mj_model.ngeom  # drawn regions and marker are in the visual model only


@pytest.mark.slow  # compiles and runs MJX rollouts: about a minute on a 2-core CPU
def test_binpick_grasp_lifts_cube(binpick):
    """The hand is lowered over the table beside the bins with the gripper open, the cube is placed
    between the finger pads, the gripper closes and the arm rises: the cube rises with it."""
    task, rollout, reset = binpick
    m = task.mj_model
    state = reset(jax.random.split(jax.random.key(5), 1))
    lower = jnp.array([[0.0, 0.9, 0.5, 1.0, -1.0]])
    state, _ = _hold(rollout, state, lower, chunks=2)
    data = _mj_data(task, state.physics.qpos[0])
    pads = data.geom_xpos[[m.geom("left_finger").id, m.geom("right_finger").id]]
    mid = pads.mean(0)
    assert abs(mid[2] - arm.CUBE_HALF) < 0.04, "the pads must straddle a cube resting on the table"
    qpos = state.physics.qpos.at[0, 0:3].set(jnp.array([mid[0], mid[1], arm.CUBE_HALF]))
    qpos = qpos.at[0, 3:7].set(jnp.array([1.0, 0.0, 0.0, 0.0]))
    state = state.replace(physics=state.physics.replace(qpos=qpos, qvel=state.physics.qvel.at[0, 0:6].set(0.0)))

    close = lower.at[0, 4].set(1.0)
    state, _ = _hold(rollout, state, close, chunks=1)
    grip = float(state.obs[0, 16])
    assert grip == pytest.approx(2 * (arm.CUBE_HALF - arm.FINGER_GAP), abs=0.005)  # pads on the cube's faces

    lift = jnp.array([[0.0, 0.2, 0.5, 1.0, 1.0]])
    state, obs = _hold(rollout, state, lift, chunks=2)
    cube = np.asarray(state.obs[0, 0:3])
    assert np.all(np.isfinite(np.asarray(obs)))
    assert cube[2] > 0.3, f"cube at {cube} did not rise with the hand"
    data = _mj_data(task, state.physics.qpos[0])
    mid = data.geom_xpos[[m.geom("left_finger").id, m.geom("right_finger").id]].mean(0)
    assert np.linalg.norm(cube - mid) < 0.05  # still held between the pads
