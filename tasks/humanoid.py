"""The humanoid tasks: ``humanoid`` (open floor, radial goals), ``humanoid_u_maze``, ``humanoid_big_maze``, and
``humanoid_paper_dt``, ``humanoid`` at the physics step the paper's code ran (not one of the ten benchmark tasks).

Facts (model, action scaling, observation, goals, termination, layouts) follow docs/tasks.md §3 and §4.

Model
-----
brax's shipped ``envs/assets/humanoid.xml`` with the §3.1 changes applied through ``mujoco.MjSpec``: every
body geom gets ``contype=1`` (it collides with the floor and with walls; ``conaffinity`` stays 0, so there is
no self-collision); a target body at (0, 0, 1.25) with two slide joints (``target_x``, ``target_y``) and a
non-colliding sphere of radius 0.5 and mass 1, appended last; gears [350 x 11, 100 x 6] (abdomen and legs,
then arms). ``humanoid`` has a 40 x 40 m floor and target range +-20 m; the mazes a 100 x 100 m floor, target
range +-100 m, the torso placed over the start cell and, only in the visual model, one 2 x 2 x 1 m wall box
per ``#`` cell at (2i, 2j, 0.5).

Physics step: 0.0015 s x 10 substeps = **0.015 s per env step for all three tasks**. This is the step the
reference intended and the one brax >= 0.10.4 and JaxGCRL run; the paper's own stack ran plain ``humanoid``
at 0.003 s x 10 = 0.03 s because brax 0.10.1's spring pipeline ignored the timestep it set (docs/tasks.md §9.1).
``humanoid_paper_dt`` is ``humanoid`` with that as-run step, 0.003 s (the XML's own ``timestep``) x 10 substeps
= 0.03 s per env step, so a 1000-step episode lasts 30 s of simulated time instead of 15 s; observation, goals,
success, termination and resets are those of ``humanoid``. It is there to compare with the paper's Table 1 row
for ``humanoid`` (docs/tasks.md §3.9) and is registered with ``benchmark=False``.

Action a in [-1, 1]^17 drives the motors with ctrl = 0.4 a (the ctrlrange [-0.4, 0.4] spanned linearly), so
torques reach 140 N m for abdomen and legs and 40 N m for the arms.

Walls
-----
As in the ant mazes (:mod:`tasks.maze_walls`): the wall boxes stay out of the physics model, each substep
computes closed-form contacts of the 17 body geoms (5 spheres, 12 capsules) against nearby wall cells and
resolves them with brax's floor contacts by the same spring impulse model.

Which cells are "nearby" is chosen per geom, not per torso. Cells are 2 m wide, and the humanoid's reach
from the torso origin (by the triangle inequality over the leg chain: 0.26 + 0.165 + 0.108 + 0.403 + 0.35 m
plus the 0.075 m foot radius) is 1.36 m, more than the 1 m (half a cell) that the 2x2 block nearest to the
torso covers; a torso-anchored neighbourhood would need the 3x3 block (9 cells, 261 contact slots). Every
single geom, however, extends at most 0.23 m from its own centre (thigh: half-length 0.17 + radius 0.06), so
the 2x2 block nearest to each geom's centre contains every wall that geom can touch: 4 cells per geom,
4 x (5 + 2 x 12) = 116 contact slots per substep, whatever the maze size. The construction checks the
geom extent against half a cell.

Parity tests (tests/test_humanoid.py): with no wall touched the maze step equals
``brax.spring.pipeline.step``; the closed-form contacts match ``mjx.collision`` on sample poses against a
model that has the wall boxes.

Observation (271 values, docs/tasks.md §3.4): q (26, the target slide joints included), qd (25), per-link
inertia about the whole-body centre of mass (12 links x (3x3 + mass) = 120; under spring the link inertia
is the identity), per-link centre-of-mass velocity (12 x (mass-weighted linear / total mass, angular) = 72),
actuator generalized forces of the current control (25), then the commanded goal (gx, gy, 1.25).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Literal, Sequence

import brax
import jax
import jax.numpy as jp
import mujoco
import numpy as np
from brax import actuator, contact
from brax import math as brax_math
from brax.base import System
from brax.io import mjcf
from brax.spring import pipeline as spring_pipeline
from brax.spring.base import State as SpringState

from gcrl_bench.interface import EnvState, TaskSpec
from gcrl_bench.tasks import ant_maze, maze_walls

Array = jax.Array

PHYSICS_DT = 0.0015
"""Physics step (s); see the module docstring on the 0.015 s env step."""
PAPER_RUN_DT = 0.003
"""Physics step (s) the paper's stack actually ran plain ``humanoid`` at: the ``timestep`` of brax's
``humanoid.xml``, which brax 0.10.1's spring pipeline used instead of the 0.0015 s the reference set
(docs/tasks.md §9.1). Used only by ``humanoid_paper_dt``."""
N_FRAMES = 10
GEARS = (350.0,) * 11 + (100.0,) * 6
"""Motor gears in actuator order: abdomen (3) and legs (8), then arms (6)."""
ACTION_SCALE = 0.4
"""ctrl = ACTION_SCALE * action: the action range [-1, 1] spans the motors' ctrlrange [-0.4, 0.4]."""
GOAL_Z = 1.25
"""Height of the commanded goal; success compares torso (x, y, z) with (gx, gy, GOAL_Z)."""
GOAL_RADIUS = (1.0, 5.0)
"""``humanoid`` goals: radius r ~ U[1, 5] m and angle ~ U[0, 2 pi) around the origin."""
HEALTHY_Z = (1.0, 2.0)
"""Torso heights outside this range terminate the episode."""
CELL_SIZE = 2.0
"""Maze cell edge length in metres (the reference's ``maze_size_scaling`` for the humanoid)."""
WALL_HALF_SIZE = (1.0, 1.0, 0.5)
"""Half-sizes of a wall box: a 2 x 2 m footprint, 1 m tall, resting on the floor."""
WALL_FRICTION = 1.0
"""Sliding friction of a wall box (MuJoCo's default geom friction)."""
TORSO_Z = 1.4

# Legend: '#' wall, '.' free floor, 'R' start, 'G' goal. Row i -> world x = 2 i, column j -> y = 2 j.
LAYOUTS: dict[str, tuple[str, ...]] = {
    "u_maze": (
        "#####",
        "#RGG#",
        "###G#",
        "#GGG#",
        "#####",
    ),
    "big_maze": ant_maze.LAYOUTS["big_maze"],  # the ant's big maze grid, drawn at 2 m cells
}


def cells(layout: Sequence[str], marks: str) -> list[tuple[int, int]]:
    """(row, col) of every cell whose mark is in ``marks``, row-major."""
    return [(i, j) for i, row in enumerate(layout) for j, mark in enumerate(row) if mark in marks]


def cell_xy(cell: tuple[int, int]) -> tuple[float, float]:
    """World (x, y) of a cell centre: (2 i, 2 j)."""
    return (CELL_SIZE * cell[0], CELL_SIZE * cell[1])


# --------------------------------------------------------------------------------------------- model


def _brax_humanoid_xml() -> str:
    return os.path.join(os.path.dirname(brax.__file__), "envs", "assets", "humanoid.xml")


def build_mj_model(
    start_xy: tuple[float, float] = (0.0, 0.0),
    walls: Sequence[tuple[int, int]] = (),
    floor_half_size: float = 20.0,
    target_range: float = 20.0,
) -> mujoco.MjModel:
    """brax's humanoid with the changes of docs/tasks.md §3.1, the torso over ``start_xy`` and one wall box per
    cell in ``walls`` (the physics model has none; the visual model has them all)."""
    spec = mujoco.MjSpec.from_file(_brax_humanoid_xml())
    spec.compiler.fusestatic = True  # brax merges joint-less bodies (the feet) into their parent; so do we
    for geom in spec.geoms:
        geom.contype = 1
        if geom.name == "floor":
            geom.size = [floor_half_size, floor_half_size, geom.size[2]]
    spec.body("torso").pos = [start_xy[0], start_xy[1], TORSO_Z]
    for motor, gear in zip(spec.actuators, GEARS, strict=True):
        motor.gear = [gear, 0.0, 0.0, 0.0, 0.0, 0.0]

    target = spec.worldbody.add_body(name="target", pos=[0.0, 0.0, GOAL_Z])
    for name, axis in (("target_x", [1.0, 0.0, 0.0]), ("target_y", [0.0, 1.0, 0.0])):
        target.add_joint(
            name=name, type=mujoco.mjtJoint.mjJNT_SLIDE, axis=axis, range=[-target_range, target_range],
            limited=mujoco.mjtLimited.mjLIMITED_TRUE, armature=0.0, damping=0.0, stiffness=0.0,
        )
    target.add_geom(name="target", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.5, 0.0, 0.0], mass=1.0,
                    contype=0, conaffinity=0, rgba=[0.9, 0.2, 0.2, 0.5])

    for i, j in walls:
        spec.worldbody.add_geom(
            name=f"wall_{i}_{j}", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(WALL_HALF_SIZE),
            pos=[CELL_SIZE * i, CELL_SIZE * j, WALL_HALF_SIZE[2]], contype=1, conaffinity=1,
            rgba=[0.7, 0.5, 0.3, 1.0],
        )
    return spec.compile()


def build_system(mj_model: mujoco.MjModel, physics_dt: float = PHYSICS_DT) -> System:
    """The brax system with a ``physics_dt`` physics step (default 0.0015 s; spring reads ``opt.timestep``)."""
    return mjcf.load_model(mj_model).tree_replace({"opt.timestep": physics_dt})


# ------------------------------------------------------------------------------------- observation


def observation(sys: System, physics: SpringState, ctrl: Array, goal_xy: Array) -> Array:
    """(271,) docs/tasks.md §3.4: q, qd, inertia and velocity of every link about the centre of mass, actuator
    forces of ``ctrl``, commanded goal (``goal_xy``, GOAL_Z)."""
    inertia = sys.link.inertia
    mass = inertia.mass ** (1 - sys.spring_mass_scale)  # (L,)
    diag = jax.vmap(jp.diagonal)(inertia.i) ** (1 - sys.spring_inertia_scale)  # (L, 3)
    com_pos, com_rot = physics.x_i.pos, physics.x_i.rot  # link centres of mass (world)
    centre = jp.sum(mass[:, None] * com_pos, axis=0) / jp.sum(mass)
    # Inertia about the whole-body centre (parallel axis theorem): R diag R^T + m (|p|^2 1 - p p^T).
    rot = jax.vmap(brax_math.quat_to_3x3)(com_rot)
    p = com_pos - centre
    own = jp.einsum("lij,lj,lkj->lik", rot, diag, rot)
    shift = mass[:, None, None] * (jp.sum(p * p, axis=1)[:, None, None] * jp.eye(3) - p[:, :, None] * p[:, None, :])
    com_inertia = jp.concatenate([(own + shift).reshape(-1, 9), mass[:, None]], axis=1)
    # Velocity of each link's centre of mass, weighted by its share of the total mass, and its spin.
    ang = physics.xd.ang
    vel = physics.xd.vel + jp.cross(ang, com_pos - physics.x.pos)
    com_velocity = jp.concatenate([mass[:, None] * vel / jp.sum(mass), ang], axis=1)
    qfrc = actuator.to_tau(sys, ctrl, physics.q, physics.qd)
    goal = jp.concatenate([goal_xy, jp.array([GOAL_Z])])
    return jp.concatenate([physics.q, physics.qd, com_inertia.ravel(), com_velocity.ravel(), qfrc, goal])


def terminated(physics: SpringState) -> Array:
    z = physics.q[2]
    return jp.where((z < HEALTHY_Z[0]) | (z > HEALTHY_Z[1]), 1.0, 0.0)


# ------------------------------------------------------------------------------------------- the task

Collision = Literal["nearby", "brax"]


class Humanoid:
    """A humanoid task (docs/tasks.md §3, §4); see the module docstring.

    Args:
      spec: the task's static spec.
      layout: a maze layout (walls, start, goal cells), or None for open floor with radial goals.
      collision: for a maze, ``"nearby"`` (default) computes wall contacts in closed form for the cells
        around each geom; ``"brax"`` puts every wall box into the brax model and steps
        ``brax.spring.pipeline`` (slow; kept for comparison and tests).
      physics_dt: the physics step in seconds (PHYSICS_DT, or PAPER_RUN_DT for ``humanoid_paper_dt``); one env
        step is N_FRAMES substeps of it and must equal ``spec.env_step_seconds``.
    """

    def __init__(self, spec: TaskSpec, layout: Sequence[str] | None = None, collision: Collision = "nearby",
                 physics_dt: float = PHYSICS_DT):
        if collision not in ("nearby", "brax"):
            raise ValueError(f"collision must be 'nearby' or 'brax', got {collision!r}")
        if not math.isclose(physics_dt * N_FRAMES, spec.env_step_seconds, rel_tol=1e-9):
            raise ValueError(
                f"physics_dt {physics_dt} s x {N_FRAMES} substeps = {physics_dt * N_FRAMES:g} s per env step, but "
                f"task {spec.name!r} declares env_step_seconds={spec.env_step_seconds:g}; make them agree"
            )
        self.physics_dt = physics_dt
        self.spec = spec
        self.layout = None if layout is None else tuple(layout)
        self.collision = collision
        if self.layout is None:
            self.walls: list[tuple[int, int]] = []
            self.start_xy = (0.0, 0.0)
            model_args = dict(floor_half_size=20.0, target_range=20.0)
            self.goals = None
        else:
            self.walls = cells(self.layout, "#")
            (start,) = cells(self.layout, "R")
            self.start_xy = cell_xy(start)
            model_args = dict(floor_half_size=50.0, target_range=100.0)
            self.goals = jp.array([cell_xy(c) for c in cells(self.layout, "G")], dtype=jp.float32)
        self._model_args = model_args
        self.mj_model = build_mj_model(self.start_xy, self.walls if collision == "brax" else (), **model_args)
        self.sys = build_system(self.mj_model, physics_dt)
        self.wall_grid = jp.asarray(maze_walls.wall_grid(self.layout or ()))
        self._geoms = maze_walls.body_geoms(self.mj_model, self.sys, WALL_FRICTION)
        if self._geoms.extent >= CELL_SIZE / 2:
            raise ValueError(
                f"a wall-colliding geom extends {self._geoms.extent:.2f} m from its centre, not less than half a "
                f"cell ({CELL_SIZE / 2} m): the 2x2 cells nearest to its centre would not cover its walls"
            )
        self._use_nearby = collision == "nearby" and bool(self.walls)
        self._render_model: mujoco.MjModel | None = None

    # -- physics
    def contacts(self, x) -> tuple[maze_walls.SpringContact, maze_walls.SpringContact]:
        """Contacts of one substep: brax's own (floor) and those with the walls near each geom."""
        return (maze_walls.SpringContact.from_brax(contact.get(self.sys, x)),
                maze_walls.wall_contacts(self.sys, self._geoms, self.wall_grid, x, CELL_SIZE, WALL_HALF_SIZE,
                                         anchor="geom"))

    def physics_step(self, state: SpringState, ctrl: Array) -> SpringState:
        """One env step: N_FRAMES physics substeps with ``ctrl`` as motor control."""
        if self._use_nearby:
            substep = functools.partial(maze_walls.spring_substep, self.sys, contacts=self.contacts)
        else:
            substep = functools.partial(spring_pipeline.step, self.sys)

        def body(s, _):
            return substep(s, ctrl), None

        state, _ = jax.lax.scan(body, state, None, length=N_FRAMES)
        return state

    # -- task contract
    def sample_goal(self, key: Array) -> Array:
        """(2,) goal xy: radial (r ~ U[1, 5], angle ~ U[0, 2 pi)) on open floor, else a uniform goal cell centre."""
        if self.goals is None:
            k_r, k_angle = jax.random.split(key)
            r = jax.random.uniform(k_r, (), minval=GOAL_RADIUS[0], maxval=GOAL_RADIUS[1])
            angle = jax.random.uniform(k_angle, (), minval=0.0, maxval=2.0 * math.pi)
            return jp.stack([r * jp.cos(angle), r * jp.sin(angle)])
        return self.goals[jax.random.randint(key, (), 0, self.goals.shape[0])]

    def reset(self, key: Array, evaluation: bool = False) -> EnvState:
        """Standing at the start (origin, or the R cell) without noise, at rest; a freshly sampled goal.

        Evaluation uses the training goal distribution (the paper evaluated these tasks on their training env).
        """
        del evaluation
        goal = self.sample_goal(key)
        q = jp.asarray(self.sys.init_q, dtype=jp.float32).at[-2:].set(goal)
        physics = spring_pipeline.init(self.sys, q, jp.zeros(self.sys.qd_size()))
        return self._env_state(physics, jp.zeros(self.sys.act_size()), goal)

    def contains_goal(self, goal: Array, evaluation: bool = False) -> Array:
        """() bool: ``goal`` (3,) is in the goal set: radius in [1, 5] m on open floor, a goal cell centre
        in a maze, at height GOAL_Z. Evaluation uses the training goals."""
        del evaluation
        at_height = jp.abs(goal[2] - GOAL_Z) < 1e-6
        if self.goals is None:
            r = jp.linalg.norm(goal[:2])
            return at_height & (r >= GOAL_RADIUS[0] - 1e-5) & (r <= GOAL_RADIUS[1] + 1e-5)
        return at_height & jp.any(jp.all(jp.abs(self.goals - goal[:2]) < 1e-5, axis=1))

    def step(self, state: EnvState, action: Array) -> EnvState:
        ctrl = ACTION_SCALE * action
        # The commanded goal is carried from the last observation, not read back from the target's slide
        # joints: the spring step recovers joint coordinates from world transforms, which moves an
        # arbitrary float goal (a radial one) by rounding.
        goal = state.obs[-3:-1]
        return self._env_state(self.physics_step(state.physics, ctrl), ctrl, goal)

    def _env_state(self, physics: SpringState, ctrl: Array, goal_xy: Array) -> EnvState:
        obs = observation(self.sys, physics, ctrl, goal_xy)
        return EnvState(physics=physics, obs=obs, terminated=terminated(physics))

    # -- rendering
    def render_model(self) -> mujoco.MjModel:
        """The visual scene: the humanoid, the goal marker (target sphere, red) and every wall box."""
        if self._render_model is None:
            self._render_model = build_mj_model(self.start_xy, self.walls, **self._model_args)
        return self._render_model

    def render_qpos(self, state: EnvState) -> np.ndarray:
        """qpos of one (unbatched) env for :meth:`render_model`: the physics q (goal in the target joints)."""
        return np.asarray(jax.device_get(state.physics.q), dtype=np.float64)


# ----------------------------------------------------------------------------------------- registration

TASK_LAYOUTS: dict[str, str | None] = {
    "humanoid": None,
    "humanoid_u_maze": "u_maze",
    "humanoid_big_maze": "big_maze",
    "humanoid_paper_dt": None,
}
PHYSICS_DTS: dict[str, float] = {name: PHYSICS_DT for name in TASK_LAYOUTS} | {"humanoid_paper_dt": PAPER_RUN_DT}
"""Physics step (s) per task: 0.0015 s, except ``humanoid_paper_dt`` at the paper's as-run 0.003 s."""
BENCHMARK_TASKS = ("humanoid", "humanoid_u_maze", "humanoid_big_maze")
"""The humanoid tasks among the paper's ten; ``humanoid_paper_dt`` is a comparison variant."""
_DESCRIPTIONS = {
    "humanoid": "humanoid on open floor; goals 1-5 m away in any direction at torso height",
    "humanoid_u_maze": "humanoid in a U-shaped maze (5x5 cells of 2 m), 6 goal cells",
    "humanoid_big_maze": "humanoid in an 8x8-cell maze (2 m cells), 25 goal cells",
    "humanoid_paper_dt": (
        "humanoid as the paper's code ran it (0.03 s per env step), for comparison with its Table 1; "
        "not one of the ten"
    ),
}


def task_spec(name: str) -> TaskSpec:
    """The TaskSpec of a humanoid task: the same sizes, goal slice, threshold and episode length for all four;
    env step PHYSICS_DTS[name] x N_FRAMES; ``benchmark`` only for BENCHMARK_TASKS."""
    return TaskSpec(
        name=name,
        state_size=268,
        goal_size=3,
        goal_indices=(0, 1, 2),
        action_size=17,
        success_threshold=0.5,
        episode_length=1000,
        env_step_seconds=PHYSICS_DTS[name] * N_FRAMES,
        backend="spring",
        eval_goal_set="train",
        benchmark=name in BENCHMARK_TASKS,
        description=_DESCRIPTIONS[name],
    )


SPECS: dict[str, TaskSpec] = {name: task_spec(name) for name in TASK_LAYOUTS}


def make_humanoid(name: str, collision: Collision = "nearby") -> Humanoid:
    """Builds one of the humanoid tasks (TASK_LAYOUTS) by registry name."""
    if name not in TASK_LAYOUTS:
        raise ValueError(f"unknown humanoid task {name!r}; known: {', '.join(TASK_LAYOUTS)}")
    layout = TASK_LAYOUTS[name]
    return Humanoid(SPECS[name], LAYOUTS[layout] if layout else None, collision=collision,
                    physics_dt=PHYSICS_DTS[name])


def register_all() -> None:
    """Registers the three benchmark humanoid tasks and ``humanoid_paper_dt`` (built lazily on first use)."""
    from gcrl_bench.registry import register_task

    for name, spec in SPECS.items():
        register_task(spec, functools.partial(make_humanoid, name))

