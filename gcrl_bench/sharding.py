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

from gcrl_bench.errors import ConfigError

AXIS = "data"
_ENV_AXIS0 = (".env", ".first_env", ".episode_step", ".traj_id")
_BUFFER_ENV_AXIS1 = (".buffer.obs", ".buffer.action", ".buffer.traj_id", ".buffer.terminal")


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
    """NamedSharding per LoopState leaf (see the module docstring for what is split)."""

    def spec(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.startswith(_BUFFER_ENV_AXIS1):
            return NamedSharding(mesh, P(None, AXIS))
        if name.startswith(_ENV_AXIS0) and leaf.ndim >= 1:
            return NamedSharding(mesh, P(AXIS))
        return NamedSharding(mesh, P())

    return jax.tree_util.tree_map_with_path(spec, state_shape)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def split_axis(mesh: Mesh, axis: int, ndim: int) -> NamedSharding:
    return NamedSharding(mesh, P(*([None] * axis + [AXIS] + [None] * (ndim - axis - 1))))
