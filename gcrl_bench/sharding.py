"""Data parallelism of one run over local devices with ``jax.sharding`` (one program, XLA partitions it).

The mesh has one axis, ``data``. Split along it: the training environments (axis 0 of every environment
leaf and of the episode counters), the replay buffer's environment axis (axis 1: rows are time x env) and
the batch axis of the gradient steps. Replicated: the algorithm state, the PRNG key, the counters and the
buffer's write position. Because the parameters are replicated and the batch is split, XLA inserts the
all-reduce that averages the gradients; no pmap, no hand-written collectives. JAX's partitionable
threefry makes random draws independent of the sharding, so N devices compute what one device computes,
up to the order of floating-point sums.
"""

from __future__ import annotations

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gcrl_bench import state_parts
from gcrl_bench.errors import ConfigError

AXIS = "data"
# LoopState fields whose leaves have the training environments on axis 0 (a 0-d leaf among them is replicated).
ENV_FIELDS = ("env", "first_env", "episode_step", "traj_id")


def parse_devices(value: str) -> int:
    """``--devices`` value: ``all`` (0) or a positive count; checked against the machine at run time."""
    if value == "all":
        return 0
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"--devices {value!r}: give a positive number of devices or 'all'")
    return n


def resolve_devices(requested: int) -> int:
    """The number of local devices a run uses: ``requested``, or all of them for 0."""
    available = jax.local_device_count()
    if requested == 0:
        return available
    if requested > available:
        raise ConfigError(f"--devices {requested}: this machine has {available} local {jax.default_backend()} "
                          f"device(s); use --devices 1..{available} or 'all'")
    return requested


def make_mesh(num_devices: int) -> Mesh:
    return Mesh(jax.local_devices()[:num_devices], (AXIS,))


def check_divisible(mesh: Mesh, **sizes: int) -> None:
    n = mesh.devices.size
    for name, size in sizes.items():
        if size % n:
            raise ConfigError(f"{name} ({size}) is not divisible by the {n} devices of the run; "
                              f"use a multiple of {n} or fewer --devices")


def state_shardings(mesh: Mesh, state_shape):
    """NamedSharding per LoopState leaf (see the module docstring for what is split).

    Args:
      state_shape: a LoopState (arrays or ``jax.ShapeDtypeStruct`` leaves).
    Returns:
      The LoopState's structure with a NamedSharding at every leaf: ``P(data)`` for the leaves of
      :data:`ENV_FIELDS` with at least one axis, ``P(None, data)`` for the replay buffer's
      (capacity, num_envs, ...) leaves (the 0-d write position and size are replicated), ``P()`` for the
      rest. Fields are told apart by :mod:`gcrl_bench.state_parts` flags trees, never by leaf names.
    """
    env = state_parts.field_flags(state_shape, *ENV_FIELDS)
    buffer = state_parts.buffer_flags(state_shape)

    def spec(leaf, in_env, in_buffer):
        if in_buffer and leaf.ndim >= 2:
            return NamedSharding(mesh, P(None, AXIS))
        if in_env and leaf.ndim >= 1:
            return NamedSharding(mesh, P(AXIS))
        return NamedSharding(mesh, P())

    return jax.tree.map(spec, state_shape, env, buffer)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def split_axis(mesh: Mesh, axis: int, ndim: int) -> NamedSharding:
    return NamedSharding(mesh, P(*([None] * axis + [AXIS] + [None] * (ndim - axis - 1))))
