"""The arm tasks: ``arm_push_easy``, ``arm_push_hard``, ``arm_binpick_hard``.

Facts (kinematics, actuators, contact pairs, scene, observation, action, reset, success) follow
docs/tasks.md §5; the physics runs on MuJoCo MJX (JAX implementation), as the reference did.

Model (our own, simplified geometry)
-----------------------------------
A Panda-like 7-DoF arm built in code with ``mujoco.MjSpec`` from primitive geoms only; no mesh asset.

- Kinematic chain: the Panda's joint frames (link1 at z 0.333, link3 0.316 above link2, the 0.0825 m
  elbow offsets, link5 0.384 along the forearm, the 0.088 m wrist offset, the hand 0.107 m beyond link7
  turned -45 degrees about its axis, the fingers 0.0584 m beyond the hand) and the joint ranges of §5.1.
  The base sits at the world origin on the table plane.
- Links are drawn as capsules whose masses are the Panda's link masses; inertias follow from those
  capsules, so centres of mass and inertias are approximations of the real arm's. Link geoms never collide
  (as in the reference, whose link meshes are visual only).
- Colliding geoms, as in §5.1: the hand capsule (radius 0.04, half-length 0.06, across the gripper), two
  finger boxes (half-size 0.015 x 0.005 x 0.04, friction 10), the 6 cm cube, the table plane (friction 0.2)
  and, for binpick, the 8 bin walls. Every geom has contype = conaffinity = 0; contacts come only from
  the explicit pair list (:func:`contact_pairs`), so MJX runs no broad phase and no unused collider.
- Actuators: the §5.1 table as "general" position servos ``force = gain * ctrl - kp * q - kv * qdot``,
  including the reference's gain != kp on joints 3-7 (the servo's rest angle is ``gain / kp * ctrl``:
  0.571 ctrl on joints 3-4, 0.5 ctrl on joints 5-7). Fingers: gain 0.15686, kp 500, kv 50, ctrl 0..255
  (255 opens each finger to 0.08 m), coupled by a joint equality.
- Options: integrator implicitfast, physics step 0.002 s, 25 substeps per env step (0.05 s), Newton
  solver; binpick sets impratio 10 (see :class:`SolverConfig` for iterations and cone).

Deviations from the reference, all of which leave the observation, action and success test unchanged:

- The goal marker is not a simulated body (the reference carries a free-jointed, gravity-compensated
  marker whose position is overwritten every step): the goal lives in the task state, and the marker
  exists only in the visual model of :meth:`ArmTask.render_model`. This removes 7 qpos / 6 dofs.
- No finger-finger contact pair: the finger boxes sit 1 mm off the hand's mid-plane at a finger
  opening of 0, and the slide range 0..0.08 m never lets them meet, so the pair could never be active.
- The push tasks' start and goal patches are drawn only (visual model); they never touched anything.

Contact friction: an explicit MuJoCo ``<pair>`` does not read its geoms' friction; unless the pair sets
its own, it uses (1, 1, 0.005, 1e-4, 1e-4). docs/tasks.md §5.1 lists the reference's friction only on the
geoms (fingers 10, table 0.2), so here, as in a model with those pairs, every pair has friction 1 and the geom values are kept but
inert. Measured reason not to force the geom values into the pairs: with friction 10 and the pyramidal
cone, the closing fingers sink through the cube (the solver cannot hold the grasp) and a grasped cube
falls; with friction 1 it lifts (tests/test_arm.py).

Everything else (the 20-dim observation, the 5-dim action mapping, reset and goal regions, no
termination, 1000-step episodes, success radius 0.1 m) is the reference's, see :class:`ArmTask`.

Success radius: docs/tasks.md §5.7 lists three radii the reference logs (``success`` 0.1 m, ``success_easy``
0.3 m, ``success_hard`` 0.03 m); the paper's "time at goal" and Table 1 use ``success``, so all three
tasks use 0.1 m. "easy" and "hard" in the task names are about the start and goal regions, not the
radius; the other radii are available as :data:`SUCCESS_RADII` for analysis.

State layout (one environment): :class:`ArmPhysics` keeps MuJoCo's integration state (qpos, qvel, the
solver warm start) and the goal. qpos (16) = cube free joint (0-6), arm joints 1-7 (7-13), fingers
(14-15). Every step rebuilds an MJX Data from it, so the per-environment state that the training loop
copies and selects is a few hundred bytes, not a full Data.

Physics step: :func:`tasks.mjx_step.step`, which is ``mjx.step`` with body-by-body forward kinematics
(MJX's own kinematics compiles to code that takes ~99% of the step time on a CPU, see that module); the
other stages are MJX's. Same results to float32 round-off (tests/test_mjx_step.py).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import jax
import jax.numpy as jp
import mujoco
import numpy as np
from flax import struct
from mujoco import mjx

from gcrl_bench.interface import EnvState, TaskSpec
from gcrl_bench.tasks import mjx_step

Array = jax.Array

PHYSICS_DT = 0.002
"""Physics step in seconds (docs/tasks.md §5.3)."""
N_FRAMES = 25
"""Physics steps per env step: 0.05 s per env step."""
EPISODE_LENGTH = 1000
SUCCESS_RADIUS = 0.1
"""Success radius on the cube's xyz distance to the goal (the reference's ``success`` metric)."""
SUCCESS_RADII = {"easy": 0.3, "default": SUCCESS_RADIUS, "hard": 0.03}
"""The three radii the reference logs (docs/tasks.md §5.7); only ``default`` defines success here."""

TABLE_FRICTION = (0.2, 0.005, 0.0001)
FINGER_FRICTION = (10.0, 0.005, 0.0001)
CUBE_HALF = 0.03
CUBE_START_Z = 0.07
GOAL_Z = 0.03
FINGER_OPEN = 0.08
"""Upper end of each finger's slide range (m)."""

# Panda joint ranges (rad) and the position servos of docs/tasks.md §5.1: (gain, kp, kv, force limit).
JOINT_RANGES = (
    (-2.8973, 2.8973), (-1.7628, 1.7628), (-2.8973, 2.8973), (-3.0718, -0.0698),
    (-2.8973, 2.8973), (-0.0175, 3.7525), (-2.8973, 2.8973),
)
ARM_SERVOS = (
    (4500.0, 4500.0, 450.0, 87.0), (4500.0, 4500.0, 450.0, 87.0),
    (2000.0, 3500.0, 350.0, 87.0), (2000.0, 3500.0, 350.0, 87.0),
    (1000.0, 2000.0, 200.0, 12.0), (1000.0, 2000.0, 200.0, 12.0), (1000.0, 2000.0, 200.0, 12.0),
)
FINGER_SERVO = (0.15686, 500.0, 50.0, 500.0)
FINGER_CTRL = (0.0, 255.0)
ARMATURE = 0.1
JOINT_DAMPING = 1.0
"""Joint armature and damping: not given by the reference (docs/tasks.md §5.1); the Panda values commonly used in MuJoCo models."""

# Action mapping (docs/tasks.md §5.5): action k drives joint ACTION_JOINTS[k] to mid + a * half-range of
# ACTION_RANGES[k]; the other joints get fixed controls; a4 > 0 closes the gripper.
ACTION_JOINTS = (0, 1, 3, 5)
ACTION_RANGES = ((0.3491, 2.7925), (0.0, 1.48353), (-3.0718, -0.0698), (2.3562, 3.7525))
FIXED_CTRL = {2: 0.0, 4: 0.0, 6: 1.4487}

ARM_INIT_Q = (1.571, 0.742, 0.0, -1.571, 0.0, 3.054, 1.449)
FINGER_INIT_Q = 0.04

# Link bodies: (name, position in parent, quaternion in parent, mass, capsule from-to in the body frame,
# capsule radius). Positions and quaternions are the Panda's joint frames; masses its link masses.
_LINKS = (
    ("link1", (0, 0, 0.333), (1, 0, 0, 0), 4.9707, ((0, 0, -0.19), (0, 0, 0)), 0.06),
    ("link2", (0, 0, 0), (1, -1, 0, 0), 0.6469, ((0, 0, 0), (0, -0.15, 0)), 0.06),
    ("link3", (0, -0.316, 0), (1, 1, 0, 0), 3.2286, ((0, 0, -0.16), (0, 0, 0)), 0.06),
    ("link4", (0.0825, 0, 0), (1, 1, 0, 0), 3.5879, ((0, 0, 0), (-0.0825, 0.1, 0)), 0.055),
    ("link5", (-0.0825, 0.384, 0), (1, -1, 0, 0), 1.2259, ((0, 0, -0.26), (0, 0, -0.02)), 0.05),
    ("link6", (0, 0, 0), (1, 1, 0, 0), 1.6666, ((0, 0, 0), (0.088, 0, 0)), 0.05),
    ("link7", (0.088, 0, 0), (1, 1, 0, 0), 0.7355, ((0, 0, -0.02), (0, 0, 0.08)), 0.04),
)
HAND_POS = (0, 0, 0.107)
HAND_QUAT = (0.9238795, 0, 0, -0.3826834)
HAND_MASS = 0.73
FINGER_POS = (0, 0, 0.0584)
FINGER_MASS = 0.015
FINGER_HALF = (0.015, 0.005, 0.04)
FINGER_GAP = 0.001
"""Distance of each finger pad's inner face from the hand mid-plane at zero opening (m)."""


@dataclasses.dataclass(frozen=True)
class ArmScene:
    """Where the cube starts and where goals lie for one task (docs/tasks.md §5.2, §5.6).

    Attributes:
      start_centre: (x, y) centre of the cube's start region.
      start_half: half-width of the uniform cube start draw around start_centre (m).
      goal_centre: (x, y) centre of the goal region; goals have z = GOAL_Z.
      goal_half: half-width of the uniform goal draw around goal_centre (m).
      region_half: half-size of the drawn start/goal patch (push tasks; visual only).
      bins: True for real bins (4 colliding walls each) at start_centre and goal_centre.
      impratio: MuJoCo's frictional-to-normal impedance ratio (binpick: 10, else MuJoCo's default 1).
    """

    start_centre: tuple[float, float]
    start_half: float
    goal_centre: tuple[float, float]
    goal_half: float
    region_half: float
    bins: bool = False
    impratio: float = 1.0


SCENES: dict[str, ArmScene] = {
    "arm_push_easy": ArmScene((-0.1, 0.6), 0.1, (0.1, 0.6), 0.1, region_half=0.1),
    "arm_push_hard": ArmScene((-0.25, 0.65), 0.25, (0.25, 0.65), 0.25, region_half=0.25),
    "arm_binpick_hard": ArmScene((-0.3, 0.6), 0.15, (0.3, 0.6), 0.15, region_half=0.19, bins=True, impratio=10.0),
}

BIN_WALL_OFFSET = 0.19
BIN_WALL_HALF_THICK = 0.005
BIN_WALL_HALF_HEIGHT = 0.033


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """MuJoCo solver options of the arm tasks.

    Attributes:
      iterations: constraint solver iterations per physics step (reference: 6).
      ls_iterations: line-search iterations per solver iteration (reference: 12).
      solver: ``newton`` (MuJoCo's default, the reference's) or ``cg``.
      cone: friction cone, ``pyramidal`` (MuJoCo's default, the reference's) or ``elliptic``.
    """

    iterations: int = 6
    ls_iterations: int = 12
    solver: Literal["newton", "cg"] = "newton"
    cone: Literal["pyramidal", "elliptic"] = "pyramidal"


# ------------------------------------------------------------------------------------------- the model


def _add_capsule(body, fromto, radius, mass, rgba):
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_CAPSULE, fromto=[*fromto[0], *fromto[1]], size=[radius, 0, 0],
                  mass=mass, contype=0, conaffinity=0, rgba=rgba)


def build_spec(scene: ArmScene, visual: bool = False) -> mujoco.MjSpec:
    """The arm, table, cube and bins of one task.

    With ``visual`` the model also has what is only drawn: the push tasks' start and goal patches and
    a goal marker (a non-colliding body on three slide joints, last in qpos). Without it, the two push
    tasks have the same physics model (so their compiled step programs are the same).
    """
    spec = mujoco.MjSpec()
    spec.modelname = "gcrl_bench_arm"
    spec.option.timestep = PHYSICS_DT
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.impratio = scene.impratio
    spec.compiler.autolimits = True
    spec.compiler.degree = False  # joint ranges in radians
    world = spec.worldbody
    white, grey, blue, red = [0.9, 0.9, 0.9, 1], [0.5, 0.5, 0.5, 1], [0.2, 0.3, 0.9, 0.5], [0.9, 0.2, 0.2, 0.5]

    world.add_light(pos=[0, 0.5, 2.0], dir=[0, 0, -1], diffuse=[0.8, 0.8, 0.8])
    table = world.add_body(name="table", pos=[0, 0.2, 0])
    table.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[1.0, 1.0, 0.05], friction=list(TABLE_FRICTION),
                   contype=0, conaffinity=0, rgba=[0.6, 0.55, 0.45, 1])

    for centre, rgba, kind in ((scene.start_centre, blue, "start"), (scene.goal_centre, red, "goal")):
        if scene.bins:
            for k, (dx, dy) in enumerate(((BIN_WALL_OFFSET, 0), (-BIN_WALL_OFFSET, 0), (0, BIN_WALL_OFFSET), (0, -BIN_WALL_OFFSET))):
                along_y = dx != 0
                half = [BIN_WALL_HALF_THICK, BIN_WALL_OFFSET + BIN_WALL_HALF_THICK, BIN_WALL_HALF_HEIGHT]
                if not along_y:
                    half[0], half[1] = half[1], half[0]
                world.add_geom(name=f"{kind}_bin_wall{k}", type=mujoco.mjtGeom.mjGEOM_BOX, size=half,
                               pos=[centre[0] + dx, centre[1] + dy, BIN_WALL_HALF_HEIGHT], contype=0, conaffinity=0,
                               rgba=rgba[:3] + [1.0])
        elif visual:  # the push tasks' regions are drawn patches, not physics
            world.add_geom(name=f"{kind}_region", type=mujoco.mjtGeom.mjGEOM_BOX,
                           size=[scene.region_half, scene.region_half, 0.001], pos=[centre[0], centre[1], 0.001],
                           contype=0, conaffinity=0, rgba=rgba)

    cube = world.add_body(name="cube", pos=[scene.start_centre[0], scene.start_centre[1], CUBE_START_Z])
    cube.add_freejoint(name="cube")
    cube.add_geom(name="cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3, contype=0, conaffinity=0,
                  rgba=[0.9, 0.6, 0.1, 1])

    base = world.add_body(name="link0")
    base.add_geom(type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.07, 0.07, 0], pos=[0, 0, 0.07], contype=0,
                  conaffinity=0, mass=0.63, rgba=grey)
    parent = base
    for k, (name, pos, quat, mass, fromto, radius) in enumerate(_LINKS):
        body = parent.add_body(name=name, pos=list(pos), quat=list(quat))
        body.add_joint(name=f"joint{k + 1}", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1],
                       range=list(JOINT_RANGES[k]), armature=ARMATURE, damping=JOINT_DAMPING)
        _add_capsule(body, fromto, radius, mass, white if k % 2 == 0 else grey)
        parent = body

    hand = parent.add_body(name="hand", pos=list(HAND_POS), quat=list(HAND_QUAT))
    hand.add_geom(name="hand", type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[0.04, 0.06, 0], pos=[0, 0, 0.02],
                  quat=[0.7071068, 0.7071068, 0, 0], mass=HAND_MASS, contype=0, conaffinity=0, rgba=white)
    for side, quat in (("left", [1, 0, 0, 0]), ("right", [0, 0, 0, 1])):
        finger = hand.add_body(name=f"{side}_finger", pos=list(FINGER_POS), quat=quat)
        finger.add_joint(name=f"{side}_finger", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0, 1, 0],
                         range=[0.0, FINGER_OPEN], armature=ARMATURE, damping=JOINT_DAMPING)
        finger.add_geom(name=f"{side}_finger", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(FINGER_HALF),
                        pos=[0, FINGER_GAP + FINGER_HALF[1], FINGER_HALF[2] - 0.01], friction=list(FINGER_FRICTION),
                        mass=FINGER_MASS, contype=0, conaffinity=0, rgba=grey)
    spec.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1="left_finger", name2="right_finger",
                      objtype=mujoco.mjtObj.mjOBJ_JOINT, data=[0, 1, 0, 0, 0] + [0] * 7)

    for k, (gain, kp, kv, force) in enumerate(ARM_SERVOS):
        _add_servo(spec, f"joint{k + 1}", gain, kp, kv, force, JOINT_RANGES[k])
    for side in ("left", "right"):
        _add_servo(spec, f"{side}_finger", *FINGER_SERVO, FINGER_CTRL)

    for g1, g2 in contact_pairs(scene):
        # An explicit pair does not read its geoms' friction: it gets MuJoCo's pair default (1, 1, 0.005,
        # 1e-4, 1e-4), as the reference's pairs did (see the module docstring).
        spec.add_pair(geomname1=g1, geomname2=g2)

    if visual:
        marker = world.add_body(name="goal_marker")
        for axis_name, axis in (("x", [1, 0, 0]), ("y", [0, 1, 0]), ("z", [0, 0, 1])):
            marker.add_joint(name=f"goal_{axis_name}", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=axis)
        marker.add_geom(name="goal_marker", type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3, contype=0,
                        conaffinity=0, mass=0.001, rgba=[0.1, 0.9, 0.1, 0.4])
    return spec


def _add_servo(spec, joint, gain, kp, kv, force, ctrlrange):
    spec.add_actuator(
        name=joint, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT,
        gaintype=mujoco.mjtGain.mjGAIN_FIXED, biastype=mujoco.mjtBias.mjBIAS_AFFINE,
        gainprm=[gain] + [0] * 9, biasprm=[0, -kp, -kv] + [0] * 7,
        ctrlrange=list(ctrlrange), forcerange=[-force, force],
    )


def contact_pairs(scene: ArmScene) -> list[tuple[str, str]]:
    """The explicit contact pairs (docs/tasks.md §5.1 minus finger-finger, see the module docstring)."""
    gripper = ("hand", "left_finger", "right_finger")
    pairs = [("table", "cube")] + [("cube", g) for g in gripper] + [("table", g) for g in gripper]
    if scene.bins:
        walls = [f"{kind}_bin_wall{k}" for kind in ("start", "goal") for k in range(4)]
        pairs += [("cube", w) for w in walls] + [(g, w) for g in gripper for w in walls]
    return pairs


def build_mj_model(scene: ArmScene, solver: SolverConfig = SolverConfig(), visual: bool = False) -> mujoco.MjModel:
    """The compiled model with the solver options applied (``visual``: see :func:`build_spec`)."""
    model = build_spec(scene, visual).compile()
    model.opt.iterations = solver.iterations
    model.opt.ls_iterations = solver.ls_iterations
    model.opt.solver = {"newton": mujoco.mjtSolver.mjSOL_NEWTON, "cg": mujoco.mjtSolver.mjSOL_CG}[solver.solver]
    model.opt.cone = {"pyramidal": mujoco.mjtCone.mjCONE_PYRAMIDAL, "elliptic": mujoco.mjtCone.mjCONE_ELLIPTIC}[solver.cone]
    return model


# -------------------------------------------------------------------------------------------- the task


@struct.dataclass
class ArmPhysics:
    """MuJoCo's integration state of one environment plus the commanded goal.

    Attributes:
      qpos: (16,) cube free joint, arm joints 1-7, fingers.
      qvel: (15,).
      qacc_warmstart: (15,) the constraint solver's warm start.
      goal: (3,) commanded cube position.
    """

    qpos: Array
    qvel: Array
    qacc_warmstart: Array
    goal: Array


def action_to_ctrl(action: Array) -> Array:
    """(5,) action in [-1, 1] -> (9,) servo controls (docs/tasks.md §5.5).

    Joints 1, 2, 4, 6 get ``mid + a * half-range`` of their action ranges, joints 3 and 5 get 0, joint 7
    gets 1.4487; both fingers get 0 (close) if a4 > 0 else 255 (open).
    """
    action = jp.clip(action, -1.0, 1.0)
    ranges = jp.asarray(ACTION_RANGES)
    targets = (ranges[:, 0] + ranges[:, 1]) / 2 + action[:4] * (ranges[:, 1] - ranges[:, 0]) / 2
    ctrl = jp.zeros(9)
    ctrl = ctrl.at[jp.asarray(ACTION_JOINTS)].set(targets)
    for joint, value in FIXED_CTRL.items():
        ctrl = ctrl.at[joint].set(value)
    finger = jp.where(action[4] > 0.0, FINGER_CTRL[0], FINGER_CTRL[1])
    return ctrl.at[7:].set(finger)


class ArmTask:
    """One arm task (see the module docstring).

    Observation (20): cube xyz (0-2, the goal slice), arm joint angles (3-9), end-effector position =
    link7 origin (10-12), its linear velocity (13-15), distance between the finger bodies (16), goal
    xyz (17-19).

    Reset: cube at (start region centre + half * U(-1, 1)^2, z 0.07) with identity orientation (it drops
    onto the table in the first substeps), arm at ARM_INIT_Q, fingers at 0.04, zero velocities; goal at
    goal centre + half * U(-1, 1)^2 with z 0.03. Evaluation samples from the same distribution. No
    termination.

    Args:
      spec: the task's spec. scene: its start/goal regions and bins. solver: MuJoCo solver options.
    """

    def __init__(self, spec: TaskSpec, scene: ArmScene, solver: SolverConfig = SolverConfig()):
        self.spec = spec
        self.scene = scene
        self.solver = solver
        self.mj_model = build_mj_model(scene, solver)
        mjx_step.check_supported(self.mj_model)
        self.mjx_model = mjx.put_model(self.mj_model, impl="jax")
        self._data0 = mjx.make_data(self.mjx_model)
        body = functools.partial(mujoco.mj_name2id, self.mj_model, mujoco.mjtObj.mjOBJ_BODY)
        self._ee, self._left, self._right = body("link7"), body("left_finger"), body("right_finger")
        init_q = np.zeros(self.mj_model.nq, np.float32)
        init_q[3] = 1.0
        init_q[7:14] = ARM_INIT_Q
        init_q[14:16] = FINGER_INIT_Q
        self._init_q = init_q

    # -- physics
    def _data(self, physics: ArmPhysics, ctrl: Array | None = None) -> mjx.Data:
        data = self._data0.replace(qpos=physics.qpos, qvel=physics.qvel, qacc_warmstart=physics.qacc_warmstart)
        return data if ctrl is None else data.replace(ctrl=ctrl)

    def physics_step(self, physics: ArmPhysics, ctrl: Array) -> ArmPhysics:
        """N_FRAMES MJX steps with a constant control."""

        def substep(data, _):
            return mjx_step.step(self.mj_model, self.mjx_model, data), None

        data, _ = jax.lax.scan(substep, self._data(physics, ctrl), None, length=N_FRAMES)
        return physics.replace(qpos=data.qpos, qvel=data.qvel, qacc_warmstart=data.qacc_warmstart)

    def observation(self, physics: ArmPhysics) -> Array:
        """(20,) observation (class docstring), from forward kinematics of the current qpos/qvel."""
        data = self._data(physics)
        data = mjx_step.kinematics(self.mj_model, data)
        data = mjx.com_pos(self.mjx_model, data)
        data = mjx.com_vel(self.mjx_model, data)
        ee_pos = data.xpos[self._ee]
        # cvel is (angular, linear) about the subtree centre of mass of the body's root; move it to the
        # link7 origin: v(p) = v(c) + w x (p - c).
        root = int(self.mj_model.body_rootid[self._ee])
        ang, lin = data.cvel[self._ee, :3], data.cvel[self._ee, 3:]
        ee_vel = lin + jp.cross(ang, ee_pos - data.subtree_com[root])
        fingers = jp.linalg.norm(data.xpos[self._right] - data.xpos[self._left])
        q = physics.qpos
        return jp.concatenate([q[0:3], q[7:14], ee_pos, ee_vel, fingers[None], physics.goal]).astype(jp.float32)

    # -- task contract
    def reset(self, key: Array, evaluation: bool = False) -> EnvState:
        """Fresh cube start and goal (class docstring); ``evaluation`` draws from the same distribution."""
        del evaluation
        k_cube, k_goal = jax.random.split(key)
        s = self.scene
        cube_xy = jp.asarray(s.start_centre) + s.start_half * jax.random.uniform(k_cube, (2,), minval=-1.0, maxval=1.0)
        goal_xy = jp.asarray(s.goal_centre) + s.goal_half * jax.random.uniform(k_goal, (2,), minval=-1.0, maxval=1.0)
        qpos = jp.asarray(self._init_q).at[0:3].set(jp.concatenate([cube_xy, jp.array([CUBE_START_Z])]))
        nv = self.mj_model.nv
        physics = ArmPhysics(qpos=qpos, qvel=jp.zeros(nv), qacc_warmstart=jp.zeros(nv),
                             goal=jp.concatenate([goal_xy, jp.array([GOAL_Z])]))
        return self._env_state(physics)

    def contains_goal(self, goal: Array, evaluation: bool = False) -> Array:
        """() bool: ``goal`` (3,) lies in the task's goal region (training and evaluation share it)."""
        del evaluation
        s = self.scene
        offset = jp.abs(goal[:2] - jp.asarray(s.goal_centre))
        return jp.all(offset <= s.goal_half + 1e-6) & (jp.abs(goal[2] - GOAL_Z) < 1e-6)

    def step(self, state: EnvState, action: Array) -> EnvState:
        physics = self.physics_step(state.physics, action_to_ctrl(action))
        # carry the commanded goal over from the observation bit for bit (XLA may round the reset's goal
        # arithmetic differently where it fuses it into the observation)
        return self._env_state(physics.replace(goal=state.obs[self.spec.state_size:]))

    def _env_state(self, physics: ArmPhysics) -> EnvState:
        return EnvState(physics=physics, obs=self.observation(physics), terminated=jp.zeros((), jp.float32))

    # -- rendering
    def render_model(self) -> mujoco.MjModel:
        """The visual scene: arm, table, cube, regions or bins, and a goal marker (three slide joints,
        last in qpos, non-colliding)."""
        return build_mj_model(self.scene, self.solver, visual=True)

    def render_qpos(self, state: EnvState) -> np.ndarray:
        """qpos of :meth:`render_model` for one unbatched environment: physics qpos, then the goal."""
        return np.concatenate([np.asarray(state.physics.qpos), np.asarray(state.physics.goal)]).astype(np.float64)


# ----------------------------------------------------------------------------------------- registration

_DESCRIPTIONS = {
    "arm_push_easy": "7-DoF arm pushes a cube between two 0.2 m squares (mjx)",
    "arm_push_hard": "7-DoF arm pushes a cube between two 0.5 m squares (mjx)",
    "arm_binpick_hard": "7-DoF arm carries a cube from one bin into another (mjx)",
}

SPECS: dict[str, TaskSpec] = {
    name: TaskSpec(
        name=name,
        state_size=17,
        goal_size=3,
        goal_indices=(0, 1, 2),
        action_size=5,
        success_threshold=SUCCESS_RADIUS,
        episode_length=EPISODE_LENGTH,
        env_step_seconds=PHYSICS_DT * N_FRAMES,
        backend="mjx",
        eval_goal_set="train",
        benchmark=True,
        description=_DESCRIPTIONS[name],
    )
    for name in SCENES
}


def make_arm_task(name: str, solver: SolverConfig = SolverConfig()) -> ArmTask:
    """Builds one of the arm tasks by registry name."""
    if name not in SCENES:
        raise ValueError(f"unknown arm task {name!r}; known: {', '.join(SCENES)}")
    return ArmTask(SPECS[name], SCENES[name], solver)


def register_all() -> None:
    """Registers the three arm tasks (built lazily on first use)."""
    from gcrl_bench.registry import register_task

    for name, spec in SPECS.items():
        register_task(spec, functools.partial(make_arm_task, name))
