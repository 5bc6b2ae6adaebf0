"""``point_big_maze``: a control task for depth scaling, NOT one of the ten benchmark tasks.

A point mass with momentum in a large maze, simulated directly in JAX like ``point_u_maze`` (it shares
that task's wall test, drawing and constants). It is built as a candidate *positive control* for the
depth-scaling report: a task small enough to train on a CPU in minutes, harder than ``point_u_maze`` in
both control (momentum) and structure (long corridors), so that a deeper CRL network can beat depth 4
(the ``control`` preset in :mod:`gcrl_bench.config`; ``tests/test_depth_control.py``). Measured so far:
at the control preset's budget (17,400 gradient steps, width 64) depth 16 is not separated from depth 4;
the numbers are in :mod:`gcrl_bench.config` beside ``CONTROL_LOOP``.

Physics (dt = 0.1 s per env step): the action a in [-1, 1]^2 is a thrust. The point is lightly damped,
``v' = (1 - DAMPING) v + THRUST a`` per axis, so it keeps most of its speed from one step to the next
(top speed THRUST / DAMPING per axis) and must brake before a corner, where ``point_u_maze`` (``v' = 0.5 v
+ a``) stops almost at once. Position ``p' = p + v' dt``. Walls are solid as in ``point_u_maze``: the
motion is resolved one axis at a time, and an axis whose move would bring the disc (radius 0.1 m) into a
wall cell is not moved and has its velocity zeroed. A step moves at most sqrt(2) x top speed x dt
(0.28 m with the defaults) < the 1 m cell, so the disc cannot tunnel through a wall.

Observation (6): [x, y, vx, vy, goal x, goal y]; the goal slice of the state is 0:2; success radius
0.3 m; no termination. Layout (1 m cells; row i = world x, column j = world y, as for the ant mazes)::

    # # # # # # # # #            corridor distance from the start R, in cells
    # R . . # . . . #            (interior cells, walls as #):
    # . # . # . # . #
    # . # . . . # . #               0  1  2  #  8  9 10
    # . # # # # # . #               1  #  3  #  7  # 11
    # . . . # . . . #               2  #  4  5  6  # 12
    # # # . # . # # #               3  #  #  #  #  # 13
    # . . . . . . . #               4  5  6  # 12 13 14
    # # # # # # # # #               #  #  7  # 11  #  #
                                   10  9  8  9 10 11 12

31 goal cells, two routes around the central wall, paths of up to 14 cells (point_u_maze: 6 goals, 4 cells);
episodes last 200 steps (a 14-cell path takes about 90 steps at the top speed, with its braking).

Goals: training goals are the centres of every free cell but the start's; evaluation goals are the free
cells at least EVAL_MIN_CELLS steps from the start along the maze's corridors (:func:`path_lengths`), so
the score measures the long paths that need the maze's structure to be learnt.
"""

from __future__ import annotations

import collections
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from gcrl_bench.interface import TaskSpec
from gcrl_bench.tasks.point_maze import CELL, DT, RADIUS, PointUMaze  # noqa: F401 (RADIUS: shared)

LAYOUT = (
    "#########",
    "#R..#...#",
    "#.#.#.#.#",
    "#.#...#.#",
    "#.#####.#",
    "#...#...#",
    "###.#.###",
    "#.......#",
    "#########",
)
DAMPING = 0.05
"""Fraction of the velocity lost per env step (point_u_maze: 0.5)."""
THRUST = 0.1
"""Velocity change (m/s) per env step at full action; top speed THRUST / DAMPING = 2 m/s per axis."""
EPISODE_LENGTH = 200
EVAL_MIN_CELLS = 4
"""Evaluation goals are the free cells at least this many cells from the start along the corridors."""


def path_lengths(layout: Sequence[str]) -> dict[tuple[int, int], int]:
    """Shortest path, in cells (4-neighbour moves), from the start cell ``R`` to every reachable free cell."""
    (start,) = [(i, j) for i, row in enumerate(layout) for j, c in enumerate(row) if c == "R"]
    dist = {start: 0}
    queue = collections.deque([start])
    while queue:
        i, j = queue.popleft()
        for cell in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
            if cell not in dist and layout[cell[0]][cell[1]] != "#":
                dist[cell] = dist[(i, j)] + 1
                queue.append(cell)
    return dist


def make_spec(name: str = "point_big_maze", episode_length: int = EPISODE_LENGTH) -> TaskSpec:
    return TaskSpec(
        name=name,
        state_size=4,
        goal_size=2,
        goal_indices=(0, 1),
        action_size=2,
        success_threshold=0.3,
        episode_length=episode_length,
        env_step_seconds=DT,
        backend="jax",
        eval_goal_set="far",
        benchmark=False,
        description=(
            "control task (not one of the ten): lightly damped point mass in a 9 x 9 maze, goals 4-14 cells away; "
            "depth-scaling positive control on a CPU"
        ),
    )


SPEC = make_spec()


class PointMomentumMaze(PointUMaze):
    """The task object (see module docstring); the arguments exist to build variants of the control."""

    def __init__(self, spec: TaskSpec = SPEC, layout: Sequence[str] = LAYOUT, damping: float = DAMPING,
                 thrust: float = THRUST, eval_min_cells: int = EVAL_MIN_CELLS):
        if not 0 < damping <= 1 or thrust <= 0 or np.sqrt(2) * thrust / damping * DT >= CELL:
            raise ValueError(f"damping {damping} / thrust {thrust}: need 0 < damping <= 1 and a step below one cell")
        self.spec = spec
        self.layout = tuple(layout)
        self.damping, self.thrust = float(damping), float(thrust)
        dist = path_lengths(self.layout)
        xy = lambda cells: jnp.asarray(np.array([(i * CELL, j * CELL) for i, j in cells], dtype=np.float32))
        self.walls = xy([(i, j) for i, row in enumerate(self.layout) for j, c in enumerate(row) if c == "#"])
        self.start = xy([c for c, d in dist.items() if d == 0])[0]
        self.train_goals = xy(sorted(c for c, d in dist.items() if d > 0))
        far = sorted(c for c, d in dist.items() if d >= eval_min_cells)
        if not far:
            raise ValueError(f"no free cell is {eval_min_cells} cells from the start")
        self.eval_goals = xy(far)


def register_all() -> None:
    from gcrl_bench.registry import register_task

    register_task(SPEC, PointMomentumMaze)
