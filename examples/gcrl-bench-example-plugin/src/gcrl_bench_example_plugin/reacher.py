"""``point_reach``: a point mass reaching a goal in an open 2 m x 2 m square arena, in pure JAX.

Physics (dt = 0.1 s per env step): the action a in [-1, 1]^2 is a commanded velocity change,
``v' = 0.5 v + a``, ``p' = clip(p + v' dt, -1, 1)``; a coordinate that hits the arena's edge stops there and
loses its velocity. Start: uniform in the arena; goal: uniform in the arena. Observation (6):
[x, y, vx, vy, goal x, goal y]; the goal is compared with the position (state indices 0, 1); success
radius 0.1 m; 50-step episodes; no termination.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gcrl_bench.interface import EnvState, TaskSpec
from gcrl_bench.registry import register_task

DT = 0.1
HALF_SIZE = 1.0

SPEC = TaskSpec(
    name="point_reach",
    state_size=4,
    goal_size=2,
    goal_indices=(0, 1),
    action_size=2,
    success_threshold=0.1,
    episode_length=50,
    env_step_seconds=DT,
    backend="jax",
    benchmark=False,  # only the paper's ten tasks are benchmark tasks
    description="example plugin: point mass reaching a goal in an open 2 m square",
)


class PointReach:
    """The task object: a spec and pure reset/step functions (gcrl_bench.interface.Task)."""

    spec = SPEC

    def reset(self, key: jax.Array, evaluation: bool = False) -> EnvState:
        k_pos, k_goal = jax.random.split(key)
        pos = jax.random.uniform(k_pos, (2,), minval=-HALF_SIZE, maxval=HALF_SIZE)
        goal = jax.random.uniform(k_goal, (2,), minval=-HALF_SIZE, maxval=HALF_SIZE)
        physics = jnp.concatenate([pos, jnp.zeros(2)])
        return EnvState(physics=physics, obs=jnp.concatenate([physics, goal]), terminated=jnp.zeros(()))

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        pos, vel = state.physics[:2], state.physics[2:]
        vel = 0.5 * vel + jnp.clip(action, -1.0, 1.0)
        moved = pos + vel * DT
        pos = jnp.clip(moved, -HALF_SIZE, HALF_SIZE)
        vel = jnp.where(pos == moved, vel, 0.0)
        physics = jnp.concatenate([pos, vel])
        goal = state.obs[SPEC.state_size :]
        return EnvState(physics=physics, obs=jnp.concatenate([physics, goal]), terminated=jnp.zeros(()))

    def contains_goal(self, goal: jax.Array, evaluation: bool) -> jax.Array:
        """Optional conformance-kit protocol: goals of both goal sets lie in the arena."""
        return jnp.all(jnp.abs(goal) <= HALF_SIZE)


def register() -> None:
    """Entry point (group ``gcrl_bench.tasks``)."""
    register_task(SPEC, PointReach)
