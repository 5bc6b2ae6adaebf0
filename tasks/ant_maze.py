"""The four ant maze tasks: ``ant_u4_maze``, ``ant_u5_maze``, ``ant_big_maze``, ``ant_hardest_maze``.

Facts (model, layouts, reset, observation, termination) follow docs/tasks.md §2.

Model
-----
brax's shipped ``envs/assets/ant.xml`` with the §2.1 changes applied through ``mujoco.MjSpec``: collisions
enabled (``conaffinity=1``) on the torso sphere, the four aux capsules and the four foot spheres; a target
body with two slide joints (``target_x``, ``target_y``) and a non-colliding sphere; a 100 x 100 floor; the
initial pose placed over the start cell; one 4 x 4 x 2 m wall box per ``#`` cell at (4i, 4j, 1). Spring
pipeline, physics step 0.005 s, 10 substeps per env step (0.05 s).

Walls: contacts whose cost does not grow with the maze
------------------------------------------------------
brax's spring pipeline asks ``mjx.collision`` for every geom pair of the model. Sphere-box and capsule-box
pairs go through MJX's general convex collider, so a maze with 38 wall boxes runs over 100x slower than
open floor and takes minutes to compile. Here the wall contacts are computed differently while the
physics stays the reference's:

1. Locality. Every colliding body geom lies within 1.21 m of the torso centre (leg chain 1.13 m plus the
   foot radius), and cells are 4 m wide, so every wall box a geom can touch is one of the four cells of
   the 2x2 block nearest to the torso (:func:`tasks.maze_walls.nearby_cells`). Each substep looks those
   four cells up in the wall grid; a free cell contributes no contact.
2. Closed forms. Sphere-vs-box and capsule-vs-box contacts against axis-aligned boxes are computed in
   closed form (:mod:`tasks.maze_walls`), following MJX's contact convention (one point for a sphere, two
   slots for a capsule, same normals and depths), so the impulse model sees the contacts brax would see.
3. Same impulse model. Floor and self contacts still come from ``brax.contact.get`` on the model without
   walls; they and the wall contacts are resolved together by :func:`resolve_contacts`, a re-statement
   of brax's spring impulse model (velocity-level impulse with Baumgarte term, Coulomb-capped friction
   drag, impulses averaged per link over its active contacts). Wall contacts have the world on one side,
   so they are resolved with one body only (same numbers, half the work). The rest of the substep uses
   brax's own building blocks (actuators, joints, integrator, kinematics).

The same nine geoms (torso sphere, four aux capsules, four feet) collide with every wall box, as in the
reference. Parity tests: with no wall touched the env step equals ``brax.spring.pipeline.step`` (bit for
bit in practice); the closed-form contacts match ``mjx.collision`` on sample poses. Cost: 4 boxes x 9
geoms of closed-form geometry per substep whatever the maze size; on a 2-core CPU the mazes run at
roughly 0.5-0.8x the open-floor ant's env steps/s with a similar compile time (brax with every wall box
in the model: ~0.03x), see ``tests/benchmarks/test_env_throughput.py``.

Limits: walls must be axis-aligned boxes filling whole cells (true for every layout here); a body geom
farther than half a cell (2 m) from the torso centre would miss walls (the ant's reach is 1.21 m);
only sphere and capsule geoms may collide with walls (checked at construction). Capsule-box edge
contacts use exact segment-segment closest points, which can differ from MJX's approximation in
degenerate (near-parallel) configurations; only the depth-carrying (dist < 0) contacts are reproduced,
non-touching pairs report dist = 1 where MJX may report another positive number (the impulse model
ignores both).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Literal, Sequence

import brax
import jax
import jax.numpy as jp
import mujoco
import numpy as np
from brax import contact
from brax.base import System
from brax.io import mjcf
from brax.spring import pipeline as spring_pipeline
from brax.spring.base import State as SpringState

from gcrl_bench.interface import EnvState, TaskSpec
from gcrl_bench.tasks import maze_walls

Array = jax.Array

CELL_SIZE = 4.0
"""Maze cell edge length in metres (the reference's ``maze_size_scaling``)."""
WALL_HALF_SIZE = (2.0, 2.0, 1.0)
"""Half-sizes of a wall box: a 4 x 4 m footprint, 2 m tall, resting on the floor."""
WALL_FRICTION = 1.0
"""Sliding friction of a wall box (the model's default geom friction, 1 0.5 0.5)."""
PHYSICS_DT = 0.005
N_FRAMES = 10
RESET_NOISE = 0.1
"""Half-width of the uniform noise on every q entry at reset; qd gets RESET_NOISE * N(0, 1)."""
HEALTHY_Z = (0.2, 1.0)
"""Torso heights outside this range terminate the episode."""
RENDER_GOAL_RGBA = (0.9, 0.1, 0.1, 0.5)
RENDER_BODY_RGBA = (0.95, 0.75, 0.2, 1.0)
RENDER_WALL_RGBA = (0.45, 0.52, 0.65, 1.0)
"""Colours of the drawn scene (render_model): goal marker (translucent: the ant stays visible inside it), the
ant, wall boxes."""

# Layout legend: '#' wall, '.' free floor, 'R' start, 'G' goal. Row i -> world x = 4 i, column j -> y = 4 j.
LAYOUTS: dict[str, tuple[str, ...]] = {
    "u4_maze": (
        "#####",
        "#GGG#",
        "#R#G#",
        "###G#",
        "#G#G#",
        "#GGG#",
        "#####",
    ),
    "u4_maze_eval": (
        "#####",
        "#...#",
        "#R#.#",
        "###.#",
        "#G#.#",
        "#GGG#",
        "#####",
    ),
    "u5_maze": (
        "########",
        "#GGGGGG#",
        "#R####G#",
        "######G#",
        "#G####G#",
        "#GGGGGG#",
        "########",
    ),
    "u5_maze_eval": (
        "########",
        "#......#",
        "#R####.#",
        "######.#",
        "#G####G#",
        "#GGGGGG#",
        "########",
    ),
    "big_maze": (
        "########",
        "#RG##GG#",
        "#GG#GGG#",
        "##GGG###",
        "#GG#GGG#",
        "#G#GG#G#",
        "#GGG#GG#",
        "########",
    ),
    "big_maze_eval": (
        "########",
        "#R.##GG#",
        "#..#..G#",
        "##...###",
        "#..#...#",
        "#.#G.#G#",
        "#.GG#GG#",
        "########",
    ),
    "hardest_maze": (
        "############",
        "#RGGG#GGGGG#",
        "#G##G#G#G#G#",
        "#GGGGGG#GGG#",
        "#G####G###G#",
        "#GG#G#GGGGG#",
        "##G#G#G#G###",
        "#GG#GGG#GGG#",
        "############",
    ),
}
OPEN_FLOOR: tuple[str, ...] = ("GGG", "GRG", "GGG")
"""Open-floor layout (no wall) used only to measure the cost of the walls."""


def cells(layout: Sequence[str], marks: str) -> list[tuple[int, int]]:
    """(row, col) of every cell whose mark is in ``marks``, row-major."""
    return [(i, j) for i, row in enumerate(layout) for j, mark in enumerate(row) if mark in marks]


def cell_xy(cell: tuple[int, int]) -> tuple[float, float]:
    """World (x, y) of a cell centre: (4 i, 4 j)."""
    return (CELL_SIZE * cell[0], CELL_SIZE * cell[1])


def start_cell(layout: Sequence[str]) -> tuple[int, int]:
    (start,) = cells(layout, "R")
    return start


def goal_cells(layout: Sequence[str]) -> list[tuple[int, int]]:
    return cells(layout, "G")


# --------------------------------------------------------------------------------------------- model


def _brax_ant_xml() -> str:
    return os.path.join(os.path.dirname(brax.__file__), "envs", "assets", "ant.xml")


def build_mj_model(start_xy: tuple[float, float], walls: Sequence[tuple[int, int]] = ()) -> mujoco.MjModel:
    """brax's ant with the maze changes of docs/tasks.md §2.1 and one wall box per cell in ``walls``."""
    spec = mujoco.MjSpec.from_file(_brax_ant_xml())
    spec.compiler.fusestatic = True  # brax merges joint-less bodies into their parent; so do we

    colliding = {"torso_geom", "aux_1_geom", "aux_2_geom", "aux_3_geom", "aux_4_geom"}
    colliding |= {"left_foot_geom", "right_foot_geom", "third_foot_geom", "fourth_foot_geom"}
    for geom in spec.geoms:
        if geom.name in colliding:
            geom.conaffinity = 1
        if geom.name == "floor":
            geom.size = [100.0, 100.0, 40.0]

    init = spec.numeric("init_qpos")
    data = [start_xy[0], start_xy[1], *list(init.data)[2:], 0.0, 0.0]
    init.size = len(data)
    init.data = data

    target = spec.worldbody.add_body(name="target", pos=[0.0, 0.0, 0.01])
    for name, axis in (("target_x", [1.0, 0.0, 0.0]), ("target_y", [0.0, 1.0, 0.0])):
        target.add_joint(
            name=name, type=mujoco.mjtJoint.mjJNT_SLIDE, axis=axis, range=[-100.0, 100.0],
            limited=mujoco.mjtLimited.mjLIMITED_TRUE, armature=0.0, damping=0.0, stiffness=0.0,
        )
    target.add_geom(name="target", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.9, 0.0, 0.0], mass=1.0,
                    contype=0, conaffinity=0)

    for i, j in walls:
        spec.worldbody.add_geom(
            name=f"wall_{i}_{j}", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(WALL_HALF_SIZE),
            pos=[CELL_SIZE * i, CELL_SIZE * j, WALL_HALF_SIZE[2]], contype=1, conaffinity=1,
        )
    return spec.compile()


def build_system(mj_model: mujoco.MjModel) -> System:
    """The brax system with the physics step of §2.3 (spring reads ``opt.timestep``)."""
    sys = mjcf.load_model(mj_model)
    return sys.tree_replace({"opt.timestep": PHYSICS_DT})


# ------------------------------------------------------------------------------------- wall contacts

# The contact model and the spring substep are shared with the humanoid mazes (tasks/maze_walls.py).
SpringContact = maze_walls.SpringContact
resolve_contacts = maze_walls.resolve_contacts
spring_substep = maze_walls.spring_substep


def wall_contacts(sys: System, geoms: maze_walls.BodyGeoms, wall_grid: Array, x) -> SpringContact:
    """Contacts of the wall-colliding geoms with the walls of the 2x2 cells nearest to the torso.

    Returns:
      SpringContact with 4 * (spheres + 2 * capsules) contacts, box-major; cells without a wall report
      dist = 1 (see :func:`tasks.maze_walls.wall_contacts`).
    """
    return maze_walls.wall_contacts(sys, geoms, wall_grid, x, CELL_SIZE, WALL_HALF_SIZE, anchor="torso")


# ------------------------------------------------------------------------------------------- the task

Collision = Literal["nearby", "brax"]


class AntMaze:
    """An ant maze task (docs/tasks.md §2); see the module docstring for the wall contacts.

    Args:
      spec: the task's static spec.
      layout: training layout (walls, start, goals); eval_layout: the ``evaluation=True`` goal set
        (same walls), or None to evaluate on the training goals.
      collision: ``"nearby"`` (default) computes wall contacts in closed form for the cells around the
        torso; ``"brax"`` puts every wall box into the brax model and steps ``brax.spring.pipeline``
        (slow, kept for comparison and tests).
    """

    def __init__(self, spec: TaskSpec, layout: Sequence[str], eval_layout: Sequence[str] | None = None,
                 collision: Collision = "nearby"):
        if collision not in ("nearby", "brax"):
            raise ValueError(f"collision must be 'nearby' or 'brax', got {collision!r}")
        eval_layout = layout if eval_layout is None else eval_layout
        if cells(eval_layout, "#") != cells(layout, "#") or start_cell(eval_layout) != start_cell(layout):
            raise ValueError(f"task {spec.name!r}: the evaluation layout must have the training layout's walls and start")
        self.spec = spec
        self.layout = tuple(layout)
        self.eval_layout = tuple(eval_layout)
        self.collision = collision
        self.walls = cells(layout, "#")
        self.start_xy = cell_xy(start_cell(layout))
        self.mj_model = build_mj_model(self.start_xy, self.walls if collision == "brax" else ())
        self.sys = build_system(self.mj_model)
        self.train_goals = jp.array([cell_xy(c) for c in goal_cells(layout)], dtype=jp.float32)
        self.eval_goals = jp.array([cell_xy(c) for c in goal_cells(eval_layout)], dtype=jp.float32)
        self.wall_grid = jp.asarray(maze_walls.wall_grid(layout))
        self._geoms = maze_walls.body_geoms(self.mj_model, self.sys, WALL_FRICTION)
        self._use_nearby = collision == "nearby" and bool(self.walls)

    # -- physics
    def contacts(self, x) -> tuple[SpringContact, SpringContact]:
        """Contacts of one substep: brax's own (floor, self) and those with the nearby walls."""
        return (SpringContact.from_brax(contact.get(self.sys, x)),
                wall_contacts(self.sys, self._geoms, self.wall_grid, x))

    def physics_step(self, state: SpringState, action: Array) -> SpringState:
        """One env step: N_FRAMES physics substeps with the action as motor control."""
        if self._use_nearby:
            substep = functools.partial(spring_substep, self.sys, contacts=self.contacts)
        else:
            substep = functools.partial(spring_pipeline.step, self.sys)

        def body(s, _):
            return substep(s, action), None

        state, _ = jax.lax.scan(body, state, None, length=N_FRAMES)
        return state

    # -- task contract
    def reset(self, key: Array, evaluation: bool = False) -> EnvState:
        """Start at the R cell with U(-0.1, 0.1) noise on every q (quaternion included, not renormalised),
        qd = 0.1 N(0, 1); the goal is a uniformly drawn goal cell centre (eval goal set if evaluation)."""
        k_q, k_qd, k_goal = jax.random.split(key, 3)
        goals = self.eval_goals if evaluation else self.train_goals
        goal = goals[jax.random.randint(k_goal, (), 0, goals.shape[0])]
        init_q = jp.asarray(self.sys.init_q, dtype=jp.float32)
        q = init_q + jax.random.uniform(k_q, init_q.shape, minval=-RESET_NOISE, maxval=RESET_NOISE)
        qd = RESET_NOISE * jax.random.normal(k_qd, (self.sys.qd_size(),))
        q = q.at[-2:].set(goal)
        qd = qd.at[-2:].set(0.0)
        physics = spring_pipeline.init(self.sys, q, qd)
        return self._env_state(physics)

    def step(self, state: EnvState, action: Array) -> EnvState:
        return self._env_state(self.physics_step(state.physics, action))

    def _env_state(self, physics: SpringState) -> EnvState:
        return EnvState(physics=physics, obs=observation(physics), terminated=terminated(physics))

    # -- drawing (gcrl_bench.interface.RenderableTask; host side, never traced)
    def render_model(self) -> mujoco.MjModel:
        """The visual scene: this maze's wall boxes (which the physics model leaves out), the ant in
        gold, the goal marker (the model's ``target`` sphere) in red, walls in slate blue."""
        if getattr(self, "_render_model", None) is None:
            model = build_mj_model(self.start_xy, self.walls)
            for g in range(model.ngeom):
                name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
                if name == "target":
                    model.geom_rgba[g] = RENDER_GOAL_RGBA
                elif name.startswith("wall_"):
                    model.geom_rgba[g] = RENDER_WALL_RGBA
                elif model.geom_bodyid[g] > 0:
                    model.geom_rgba[g] = RENDER_BODY_RGBA
                    model.geom_matid[g] = -1
            # The floor's checker (black / 80% white, mirror-like) overpowers the maze from above: soften it
            # to two light greys without reflections; the squares still give the scale.
            tex = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_TEXTURE, "texplane")
            start = model.tex_adr[tex]
            stop = start + model.tex_height[tex] * model.tex_width[tex] * model.tex_nchannel[tex]
            model.tex_data[start:stop] = np.where(model.tex_data[start:stop] < 128, 165, 190)
            model.mat_reflectance[:] = 0.0
            # brax's full-strength light plus MuJoCo's headlight wash the scene out when seen from above.
            model.light_diffuse[:] = 0.5
            model.vis.headlight.diffuse[:] = 0.35
            model.vis.headlight.ambient[:] = 0.25
            self._render_model = model
        return self._render_model

    def render_qpos(self, state: EnvState) -> np.ndarray:
        """(17,) the ant's q (free joint and 8 hinges) then the target's slide joints, which hold the goal."""
        return np.asarray(state.physics.q, dtype=np.float64)


def observation(physics: SpringState) -> Array:
    """(31,) docs/tasks.md §2.4: q without the target joints (15), qd without them (14), target body xy (2)."""
    return jp.concatenate([physics.q[:-2], physics.qd[:-2], physics.x.pos[-1, :2]])


def terminated(physics: SpringState) -> Array:
    z = physics.q[2]
    return jp.where((z < HEALTHY_Z[0]) | (z > HEALTHY_Z[1]), 1.0, 0.0)


# ----------------------------------------------------------------------------------------- registration

TASK_LAYOUTS: dict[str, tuple[str, str | None]] = {
    "ant_u4_maze": ("u4_maze", "u4_maze_eval"),
    "ant_u5_maze": ("u5_maze", "u5_maze_eval"),
    "ant_big_maze": ("big_maze", "big_maze_eval"),
    "ant_hardest_maze": ("hardest_maze", None),
}
_DESCRIPTIONS = {
    "ant_u4_maze": "ant in a U-shaped maze (7x5 cells); evaluated on the far goal cells",
    "ant_u5_maze": "ant in a long U-shaped maze (7x8 cells); evaluated on the far goal cells",
    "ant_big_maze": "ant in an 8x8-cell maze; evaluated on the far goal cells",
    "ant_hardest_maze": "ant in a 9x12-cell maze, 45 goal cells",
}


def task_spec(name: str, benchmark: bool = True, eval_goal_set: str = "eval") -> TaskSpec:
    return TaskSpec(
        name=name,
        state_size=29,
        goal_size=2,
        goal_indices=(0, 1),
        action_size=8,
        success_threshold=0.5,
        episode_length=1000,
        env_step_seconds=PHYSICS_DT * N_FRAMES,
        backend="spring",
        eval_goal_set=eval_goal_set,
        benchmark=benchmark,
        description=_DESCRIPTIONS.get(name, ""),
    )


SPECS: dict[str, TaskSpec] = {
    name: task_spec(name, eval_goal_set="eval" if eval_name else "train")
    for name, (_, eval_name) in TASK_LAYOUTS.items()
}


def make_ant_maze(name: str, collision: Collision = "nearby") -> AntMaze:
    """Builds one of the four ant maze tasks by registry name."""
    if name not in TASK_LAYOUTS:
        raise ValueError(f"unknown ant maze {name!r}; known: {', '.join(TASK_LAYOUTS)}")
    train, evaluation = TASK_LAYOUTS[name]
    return AntMaze(SPECS[name], LAYOUTS[train], LAYOUTS[evaluation] if evaluation else None, collision=collision)


def make_open_floor_ant() -> AntMaze:
    """The same ant on open floor (no wall), for throughput comparisons only; not a registered task."""
    spec = dataclasses.replace(task_spec("ant", benchmark=False, eval_goal_set="train"),
                               description="ant on open floor (throughput reference)")
    return AntMaze(spec, OPEN_FLOOR)


def register_all() -> None:
    """Registers the four ant mazes (built lazily on first use)."""
    from gcrl_bench.registry import register_task

    for name, spec in SPECS.items():
        register_task(spec, functools.partial(make_ant_maze, name))
