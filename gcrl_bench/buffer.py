"""Trajectory replay buffer: a ring of time rows x environments (docs/tasks.md §7.1).

Rows are stored in a fixed array of ``capacity`` time rows per environment and written at a moving
insert position (FIFO once full); nothing is copied or rolled on insert. Sampling draws, per window, an
environment and a start among the windows that lie entirely inside the stored rows, oldest to newest,
and gathers ``window_length`` consecutive rows modulo the capacity, so windows may wrap around the
physical end of the array.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class BufferState:
    """Attributes:
      obs: (capacity, num_envs, observation_size) float32.
      action: (capacity, num_envs, action_size) float32.
      traj_id: (capacity, num_envs) int32 episode ids (unique per environment column).
      terminal: (capacity, num_envs) float32, 1 where the step ended its episode by termination.
      position: () int32, the next physical row to write.
      size: () int32, rows stored (<= capacity).
    """

    obs: jax.Array
    action: jax.Array
    traj_id: jax.Array
    terminal: jax.Array
    position: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        return self.obs.shape[0]


def init(capacity: int, num_envs: int, observation_size: int, action_size: int) -> BufferState:
    return BufferState(
        obs=jnp.zeros((capacity, num_envs, observation_size), jnp.float32),
        action=jnp.zeros((capacity, num_envs, action_size), jnp.float32),
        traj_id=jnp.zeros((capacity, num_envs), jnp.int32),
        terminal=jnp.zeros((capacity, num_envs), jnp.float32),
        position=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def insert(buf: BufferState, obs, action, traj_id, terminal) -> BufferState:
    """Appends U time rows (leading axis U, then num_envs), overwriting the oldest rows when full."""
    U = obs.shape[0]
    rows = (buf.position + jnp.arange(U)) % buf.capacity
    return buf.replace(
        obs=buf.obs.at[rows].set(obs),
        action=buf.action.at[rows].set(action),
        traj_id=buf.traj_id.at[rows].set(traj_id),
        terminal=buf.terminal.at[rows].set(terminal),
        position=(buf.position + U) % buf.capacity,
        size=jnp.minimum(buf.size + U, buf.capacity),
    )


def sample_windows(buf: BufferState, key: jax.Array, num_windows: int, window_length: int):
    """Samples ``num_windows`` windows of consecutive rows.

    Environments: a random permutation of all environment columns when ``num_windows`` equals the
    number of environments (the reference), otherwise uniform with replacement. Starts: uniform over
    the ``size - window_length + 1`` windows inside the stored rows (requires size >= window_length).

    Returns:
      (obs, action, traj_id, terminal), each with leading axes (num_windows, window_length).
    """
    num_envs = buf.obs.shape[1]
    k_env, k_start = jax.random.split(key)
    if num_windows == num_envs:
        envs = jax.random.permutation(k_env, num_envs)
    else:
        envs = jax.random.randint(k_env, (num_windows,), 0, num_envs)
    oldest = (buf.position - buf.size) % buf.capacity
    starts = jax.random.randint(k_start, (num_windows,), 0, buf.size - window_length + 1)
    rows = (oldest + starts[:, None] + jnp.arange(window_length)[None, :]) % buf.capacity  # (W, T)
    cols = envs[:, None]
    return buf.obs[rows, cols], buf.action[rows, cols], buf.traj_id[rows, cols], buf.terminal[rows, cols]
