"""``point_u_maze``: a sanity task, NOT one of the ten benchmark tasks.

A point mass (radius 0.1 m) in a small U-shaped maze with 1 m cells, simulated directly in JAX: it
compiles in a second and steps millions of times per second on a CPU, so an algorithm can learn it in a
minute or two. It exists for the test suite, the quick start and for debugging new algorithms.

Physics (dt = 0.1 s per env step): the action a in [-1, 1]^2 is a commanded velocity change; velocity
``v' = 0.5 v + a`` (so speed stays below 2 m/s) and position ``p' = p + v' dt``. Walls are solid: the
motion is resolved one axis at a time, and an axis whose move would bring the disc into a wall cell is
not moved and has its velocity zeroed (an inelastic stop). A step moves at most 0.2 m < the 1 m cell,
so the disc cannot tunnel through a wall.

Observation (6): [x, y, vx, vy, goal x, goal y]; the goal slice of the state is 0:2; success radius 0.3 m;
episodes last 100 steps; no termination. Layout (row i = world x, column j = world y, as for the ant mazes)::

    # # # # #
    # G G G #
    # G # G #
    # R # E #
    # # # # #

Goals: the centres of every G and E cell, for training and for evaluation alike, so the score rises as
soon as nearby goals are reached and keeps rising as the far cell E (reached only by going around the
wall) is learnt. The evaluation goal set ``far`` (E only) is available as ``reset(key, evaluation=True)``
of :class:`PointUMaze` built with ``eval_goals="far"``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gcrl_bench.interface import EnvState, TaskSpec

LAYOUT = (
    "#####",
    "#GGG#",
    "#G#G#",
    "#R#E#",
    "#####",
)
CELL = 1.0
RADIUS = 0.1
DT = 0.1
WALL_HEIGHT = 0.4
"""Height of the drawn wall boxes (drawing only; the physics is planar)."""
GOAL_MARKER_RADIUS = 0.15
"""Radius of the drawn goal disc on the floor (drawing only; the point mass stays visible on it)."""

SPEC = TaskSpec(
    name="point_u_maze",
    state_size=4,
    goal_size=2,
    goal_indices=(0, 1),
    action_size=2,
    success_threshold=0.3,
    episode_length=100,
    env_step_seconds=DT,
    backend="jax",
    eval_goal_set="train",
    benchmark=False,
    description="sanity task (not one of the ten): point mass in a 1 m U-maze, learnable in minutes on a CPU",
)


def _cells(chars: str) -> np.ndarray:
    return np.array(
        [(i * CELL, j * CELL) for i, row in enumerate(LAYOUT) for j, c in enumerate(row) if c in chars],
        dtype=np.float32,
    )


class PointUMaze:
    """The task object (see module docstring)."""

    spec = SPEC
    layout = LAYOUT
    damping = 0.5
    """Fraction of the velocity lost per env step (v' = (1 - damping) v + thrust a)."""
    thrust = 1.0
    """Velocity change (m/s) per env step at full action."""

    def __init__(self, eval_goals: str = "train"):
        self.walls = jnp.asarray(_cells("#"))  # (W, 2) wall cell centres
        self.start = jnp.asarray(_cells("R")[0])
        self.train_goals = jnp.asarray(_cells("GE"))
        self.eval_goals = jnp.asarray(_cells("E")) if eval_goals == "far" else self.train_goals

    def _blocked(self, p: jax.Array) -> jax.Array:
        """True if a disc at p overlaps any wall cell."""
        half = CELL / 2
        closest = jnp.clip(p, self.walls - half, self.walls + half)
        return jnp.any(jnp.sum((closest - p) ** 2, axis=-1) < RADIUS**2)

    def reset(self, key: jax.Array, evaluation: bool = False) -> EnvState:
        k_pos, k_goal = jax.random.split(key)
        goals = self.eval_goals if evaluation else self.train_goals
        goal = goals[jax.random.randint(k_goal, (), 0, goals.shape[0])]
        pos = self.start + jax.random.uniform(k_pos, (2,), minval=-0.1, maxval=0.1)
        physics = jnp.concatenate([pos, jnp.zeros(2)])
        return EnvState(physics=physics, obs=jnp.concatenate([physics, goal]), terminated=jnp.zeros(()))

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        pos, vel = state.physics[:2], state.physics[2:]
        vel = (1.0 - self.damping) * vel + self.thrust * jnp.clip(action, -1.0, 1.0)
        for axis in range(2):  # resolve x, then y
            moved = pos.at[axis].add(vel[axis] * DT)
            hit = self._blocked(moved)
            pos = jnp.where(hit, pos, moved)
            vel = vel.at[axis].set(jnp.where(hit, 0.0, vel[axis]))
        physics = jnp.concatenate([pos, vel])
        goal = state.obs[self.spec.state_size :]
        return EnvState(physics=physics, obs=jnp.concatenate([physics, goal]), terminated=jnp.zeros(()))
    # -- drawing (gcrl_bench.interface.RenderableTask; host side, never traced)
    def render_model(self):
        """A MuJoCo scene of the maze for drawing only (the physics above is pure JAX): a floor, one
        1 x 1 x 0.4 m box per wall cell, the point mass (gold sphere of radius RADIUS) and the goal (flat red
        disc), each on two slide joints, so qpos = [x, y, goal x, goal y]."""
        import mujoco  # drawing only: the task itself never needs MuJoCo

        walls = "\n".join(
            f'<geom type="box" size="{CELL / 2} {CELL / 2} {WALL_HEIGHT / 2}" pos="{x} {y} {WALL_HEIGHT / 2}" '
            f'rgba="0.45 0.52 0.65 1"/>'
            for x, y in np.asarray(self.walls)
        )
        centre = np.asarray(self.walls).mean(axis=0)
        size = max(len(self.layout), len(self.layout[0])) * CELL
        xml = f"""
<mujoco model="{self.spec.name}">
  <statistic center="{centre[0]} {centre[1]} 0" extent="{size}"/>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.82 0.82 0.8" rgb2="0.74 0.74 0.72" width="64" height="64"/>
    <material name="floor" texture="grid" texrepeat="{len(self.layout)} {len(self.layout[0])}"/>
  </asset>
  <worldbody>
    <light directional="true" pos="0 0 10" dir="0.2 0.3 -1" diffuse="0.6 0.6 0.6" castshadow="false"/>
    <geom type="plane" size="{size} {size} 0.1" pos="{centre[0]} {centre[1]} 0" material="floor"/>
    {walls}
    <body name="point" pos="0 0 {RADIUS}">
      <joint name="x" type="slide" axis="1 0 0"/>
      <joint name="y" type="slide" axis="0 1 0"/>
      <geom type="sphere" size="{RADIUS}" rgba="0.95 0.75 0.2 1"/>
    </body>
    <body name="goal" pos="0 0 0.01">
      <joint name="goal_x" type="slide" axis="1 0 0"/>
      <joint name="goal_y" type="slide" axis="0 1 0"/>
      <geom type="cylinder" size="{GOAL_MARKER_RADIUS} 0.01" rgba="0.9 0.1 0.1 1" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
</mujoco>"""
        return mujoco.MjModel.from_xml_string(xml)

    def render_qpos(self, state: EnvState) -> np.ndarray:
        """(4,) [x, y, goal x, goal y] for the model of :meth:`render_model`."""
        obs = np.asarray(state.obs, dtype=np.float64)
        return np.concatenate([obs[:2], obs[SPEC.state_size :]])


def register_all() -> None:
    from gcrl_bench.registry import register_task

    register_task(SPEC, PointUMaze)
