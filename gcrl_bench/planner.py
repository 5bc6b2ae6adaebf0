"""The launch planner: what each run of a sweep will cost, worked out before anything compiles.

For one run (an algorithm config, a task, a loop config) :func:`plan_run` gives the parameters of every
network, the FLOPs of one gradient step, an estimate of the device memory the run needs and the env and
gradient steps it plans. Everything is read from ``jax.eval_shape`` of ``Trainer.init`` (shapes only:
nothing is compiled or allocated) and from the configs.

Networks. A network is a :class:`gcrl_bench.networks.ResidualMLP` parameter tree (a dict with ``input``,
``blocks`` and ``output``) inside one of the algorithm state's entries whose name ends in ``params``
(:func:`params_entries`, the rule the reports use to count a saved run's parameters). It is named after
its entry without the ``_params`` suffix, plus its key inside the entry: ``actor``, ``critic.sa_encoder``,
``target_critic``. Networks stacked along leading axes (SAC's two critics) have a multiplicity (``x2``).
Entries whose name starts with ``target_`` are Polyak averages: evaluated forward only, never trained.

FLOPs of one gradient step (per network, then summed)::

    forward  = 2 x batch x (in x w + depth x w x w + w x out)       (networks.matmul_flops: Dense layers only)
    trained  = 3 x forward x multiplicity                             (backward ~ 2 x forward)
    target   = 1 x forward x multiplicity

LayerNorm, activations, losses and the optimiser are left out (they are O(batch x width) per layer, against
O(batch x width^2) for a Dense layer). Worked example: CRL on point_u_maze (state 4, goal 2, action 2,
observation 6), depth 4, width 8, repr_dim 64, batch 128::

    actor        in 6, out 4:   forward 2 x 128 x (6x8 + 4x8x8 + 8x4)  = 2 x 128 x 336 = 86,016
    sa_encoder   in 6, out 64:  forward 2 x 128 x (6x8 + 256 + 8x64)   = 2 x 128 x 816 = 208,896
    goal_encoder in 2, out 64:  forward 2 x 128 x (2x8 + 256 + 8x64)   = 2 x 128 x 784 = 200,704
    one gradient step: 3 x (86,016 + 208,896 + 200,704) = 1,486,848 FLOPs

Memory estimate (bytes per device; the largest term is named when a run does not fit):

    parameters    every ``*params`` leaf of the algorithm state (exact, from eval_shape)
    optimiser     every ``*opt_state`` leaf (Adam moments, exact) + one gradient per trained parameter
    activations   per trained network: batch x width x (depth + 2) x 4 bytes x ACTIVATION_FACTOR x multiplicity
    replay buffer the leaves of ``LoopState.buffer`` (:func:`gcrl_bench.checkpoint.buffer_bytes`, exact)
    environments  ENV_FACTOR x the other LoopState leaves (env and first_env states, counters) plus the
                  evaluation environments (num_eval_envs of them, at the training envs' per-env size)
    samples       one training step's data: the collected rows (unroll_length x num_envs) and the sampled
                  windows (windows_per_step x window_length rows), each twice (sampled and relabelled)

With several data-parallel devices the parameters and optimiser are replicated and the other terms split.
The estimate leaves out what XLA and the runtime themselves use (the compiler's working memory, compiled
code, temporaries of fused loops): on a CPU host compiling a run takes some hundreds of MB of its own, which
dominates the peak of small runs; the estimate is meant for runs whose arrays are what fills the device.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import jax
import numpy as np

from gcrl_bench.errors import ConfigError

# What autodiff keeps of one batch, in (batch, width) arrays per Dense layer of a trained network: the
# residual blocks keep five of them per block of four layers (networks.ResidualMLP's remat policy), the
# input unit three, and the backward pass holds about as much again in cotangents while it runs.
ACTIVATION_FACTOR = 2.0
# The environment states in flight while a batch of environments steps (the state before, the state
# after and the physics' temporaries) relative to one copy of the state.
ENV_FACTOR = 2.0
# Overrides the device memory (bytes) the planner compares against.
DEVICE_MEMORY_ENV = "GCRL_BENCH_DEVICE_MEMORY"

_F32 = 4
TERMS = ("parameters", "optimiser", "activations", "replay buffer", "environments", "samples")
_FIXES = {
    "parameters": "use a smaller width (--widths) or depth (--depths)",
    "optimiser": "use a smaller width (--widths) or depth (--depths)",
    "activations": "use a smaller batch (--set batch_size=...) or width (--widths)",
    "replay buffer": "use a smaller buffer (--set max_replay_rows=...) or fewer envs (--set num_envs=...)",
    "environments": "use fewer envs (--set num_envs=...) or eval envs (--set num_eval_envs=...)",
    "samples": "use fewer envs (--set num_envs=...) or a shorter unroll (--set unroll_length=...)",
}


def is_params_entry(name: object) -> bool:
    """Whether a top-level entry of an algorithm state holds network parameters: its name ends in
    ``params`` (``actor_params``, ``critic_params``, ``target_critic_params``), which leaves out optimiser
    states and scalars such as the entropy temperature."""
    return str(name).endswith("params")


def params_entries(state: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of a state dictionary (flax ``to_state_dict`` of an algorithm state, or a restored
    params.msgpack) that hold network parameters (:func:`is_params_entry`), by name."""
    return {str(name): value for name, value in state.items() if is_params_entry(name)}


def tree_bytes(tree: Any) -> int:
    """Bytes of every array leaf of ``tree`` (arrays or ``jax.ShapeDtypeStruct``)."""
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def tree_size(tree: Any) -> int:
    """Number of elements of every array leaf of ``tree``."""
    return sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(tree))


@dataclasses.dataclass(frozen=True)
class NetworkPlan:
    """One network of an algorithm state.

    Attributes:
      name: entry name without ``_params``, plus the key inside the entry (``critic.sa_encoder``).
      params: parameters of all its copies (exact, from the state's shapes).
      in_dim, out_dim: input and output sizes (read from its ``input`` and ``output`` kernels).
      copies: how many networks are stacked along leading axes (2 for SAC's twin critics).
      trained: False for ``target_*`` networks (Polyak averages, forward only).
      flops: FLOPs of one gradient step for this network (module docstring).
    """

    name: str
    params: int
    in_dim: int
    out_dim: int
    copies: int
    trained: bool
    flops: int


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What one run will cost.

    Attributes:
      run_id: the run.
      networks: every network of the algorithm state.
      flops_per_grad_step: sum of the networks' FLOPs.
      memory: bytes per device of each term of :data:`TERMS`.
      env_steps, grad_steps: what the run plans (``LoopPlan.total_env_steps``, ``grad_steps_total``).
    """

    run_id: str
    networks: tuple[NetworkPlan, ...]
    flops_per_grad_step: int
    memory: dict[str, int]
    env_steps: int
    grad_steps: int

    @property
    def memory_total(self) -> int:
        return sum(self.memory.values())

    @property
    def largest_term(self) -> str:
        return max(self.memory, key=self.memory.get)


def _is_network(tree: Any) -> bool:
    return isinstance(tree, Mapping) and {"input", "blocks", "output"} <= set(tree)


def _find_networks(tree: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Mapping]]:
    """(key path, ResidualMLP parameter dict) of every network inside ``tree`` (flax's ``params``
    collection level is not part of the path)."""
    if _is_network(tree):
        return [(path, tree)]
    if not isinstance(tree, Mapping):
        return []
    out = []
    for key, value in tree.items():
        out.extend(_find_networks(value, path if key == "params" else path + (str(key),)))
    return out


def networks_of(algo_state_dict: Mapping[str, Any], network, batch: int) -> list[NetworkPlan]:
    """The networks of an algorithm state dictionary (see the module docstring).

    Args:
      algo_state_dict: ``flax.serialization.to_state_dict`` of the algorithm state (leaves: arrays or
        ``jax.ShapeDtypeStruct``).
      network: the run's :class:`gcrl_bench.networks.NetworkConfig` (depth and width of every network).
      batch: the batch size of a gradient step.
    """
    from gcrl_bench.networks import matmul_flops

    out = []
    for entry, value in params_entries(algo_state_dict).items():
        base = entry[: -len("_params")] if entry.endswith("_params") else entry
        for path, net in _find_networks(value):
            kernel_in = net["input"]["Dense_0"]["kernel"].shape      # (*copies, in_dim, width)
            kernel_out = net["output"]["kernel"].shape                # (*copies, width, out_dim)
            copies = int(np.prod(kernel_in[:-2]))
            trained = not entry.startswith("target_")
            forward = matmul_flops(network, kernel_in[-2], kernel_out[-1], batch)
            out.append(NetworkPlan(
                name=".".join((base,) + path), params=tree_size(net), in_dim=int(kernel_in[-2]),
                out_dim=int(kernel_out[-1]), copies=copies, trained=trained,
                flops=(3 if trained else 1) * forward * copies,
            ))
    return out


def activation_bytes(network, batch: int, copies: int = 1) -> int:
    """What autodiff keeps of one batch for one trained network: batch x width x (depth + 2) x 4 bytes x
    ACTIVATION_FACTOR x copies (depth + 2: the input unit, the residual layers and the output layer)."""
    return int(batch * network.width * (network.depth + 2) * _F32 * ACTIVATION_FACTOR * copies)


def memory_terms(state_shape, networks: list[NetworkPlan], network, loop, loop_plan, devices: int = 1) -> dict[str, int]:
    """Bytes per device of each term of :data:`TERMS` (module docstring) for a LoopState's shapes."""
    from flax import serialization

    from gcrl_bench.checkpoint import buffer_bytes

    algo = serialization.to_state_dict(state_shape.algo)
    params = tree_bytes(params_entries(algo))
    opt = tree_bytes({k: v for k, v in algo.items() if str(k).endswith("opt_state")})
    grads = sum(n.params for n in networks if n.trained) * _F32
    activations = sum(activation_bytes(network, loop.batch_size, n.copies) for n in networks if n.trained)
    buffer = buffer_bytes(state_shape)
    env_state = tree_bytes(state_shape.env)
    env_other = tree_bytes((state_shape.env, state_shape.first_env, state_shape.episode_step, state_shape.traj_id))
    environments = int(ENV_FACTOR * (env_other + env_state * loop.num_eval_envs / loop.num_envs))
    row = buffer / max(1, loop.max_replay_rows * loop.num_envs)  # bytes of one stored step of one env
    samples = int(2 * row * (loop.unroll_length * loop.num_envs + loop_plan.windows_per_step * loop_plan.window_length))
    split = max(1, devices)
    return {"parameters": params, "optimiser": opt + grads, "activations": activations // split,
            "replay buffer": buffer // split, "environments": environments // split, "samples": samples // split}


def plan_run(run, task, algorithm, devices: int = 1) -> RunPlan:
    """The plan of one run from shapes alone (``jax.eval_shape`` of ``Trainer.init``; nothing compiles).

    Args:
      run: a :class:`gcrl_bench.runspec.RunSpec`.
      task, algorithm: the run's task and algorithm objects (registry.get_task / get_algorithm).
      devices: data-parallel devices of the run.
    """
    from flax import serialization

    from gcrl_bench.config import derive_plan
    from gcrl_bench.training import Trainer

    trainer = Trainer(task=task, algorithm=algorithm, algo_config=run.algo_config, loop=run.loop)
    state_shape = jax.eval_shape(trainer.init, jax.ShapeDtypeStruct((2,), np.uint32))
    network = run.algo_config.network
    loop_plan = derive_plan(run.loop, task.spec)
    nets = networks_of(serialization.to_state_dict(state_shape.algo), network, run.loop.batch_size)
    return RunPlan(
        run_id=run.run_id, networks=tuple(nets), flops_per_grad_step=sum(n.flops for n in nets),
        memory=memory_terms(state_shape, nets, network, run.loop, loop_plan, devices),
        env_steps=loop_plan.total_env_steps, grad_steps=loop_plan.grad_steps_total,
    )


def _backend_started() -> bool:
    from gcrl_bench.xla_setup import _backend_started as started

    return started()


def _gpu_memory_bytes() -> int | None:
    """What JAX would give this process on its first visible GPU, found without initialising JAX (which
    would claim GPU memory that spawned runs need): ``nvidia-smi``'s total memory times
    ``$XLA_PYTHON_CLIENT_MEM_FRACTION`` (JAX's default 0.75). None when it cannot be read."""
    import subprocess

    from gcrl_bench.executors import visible_gpus

    gpus = visible_gpus()
    if not gpus:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", gpus[0]],
                             capture_output=True, text=True, timeout=10).stdout
        mib = int(out.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return int(mib * (1 << 20) * float(os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.75")))


def device_memory_bytes() -> int:
    """Memory of one device: ``$GCRL_BENCH_DEVICE_MEMORY`` (bytes) if set; else, once JAX has started, the
    first device's ``memory_stats()["bytes_limit"]`` where it reports one (GPUs); else a visible GPU's share
    (:func:`_gpu_memory_bytes`, without starting JAX); else the host's physical memory."""
    override = os.environ.get(DEVICE_MEMORY_ENV)
    if override:
        try:
            value = int(float(override))
        except ValueError:
            value = 0
        if value <= 0:
            raise ConfigError(f"{DEVICE_MEMORY_ENV}={override!r}: must be a positive number of bytes, e.g. 8e9")
        return value
    if _backend_started():
        try:
            stats = jax.devices()[0].memory_stats() or {}
        except Exception:  # backends without memory statistics
            stats = {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"])
    else:
        gpu = _gpu_memory_bytes()
        if gpu:
            return gpu
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def fmt_bytes(n: float) -> str:
    """``1.5 GB``-style (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def fmt_count(n: float) -> str:
    """``1.2M``-style (powers of 1000)."""
    for unit in ("", "k", "M", "G", "T", "P"):
        if abs(n) < 1000 or unit == "P":
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    raise AssertionError("unreachable")


def check_fits(plan: RunPlan, device_bytes: int) -> None:
    """Raises ConfigError (one line: the run, the estimate, the device memory, the largest term and a fix)
    when the run's estimate exceeds ``device_bytes``."""
    total = plan.memory_total
    if total <= device_bytes:
        return
    term = plan.largest_term
    raise ConfigError(
        f"run {plan.run_id} needs an estimated {fmt_bytes(total)} of device memory, more than the "
        f"{fmt_bytes(device_bytes)} available; the largest term is {term} ({fmt_bytes(plan.memory[term])}): "
        f"{_FIXES[term]}"
    )


def table_lines(plans: list[RunPlan], device_bytes: int) -> list[str]:
    """The dry-run table: one row per run, then the totals."""
    rows = [("run", "params per network", "GFLOP/grad step", "memory (largest term)", "env steps", "grad steps")]
    for p in plans:
        nets = ", ".join(f"{n.name} {fmt_count(n.params)}" + (f" (x{n.copies})" if n.copies > 1 else "")
                         for n in p.networks)
        rows.append((p.run_id, nets, f"{p.flops_per_grad_step / 1e9:.3g}",
                     f"{fmt_bytes(p.memory_total)} ({p.largest_term})", f"{p.env_steps:,}", f"{p.grad_steps:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    total_flops = sum(p.flops_per_grad_step * p.grad_steps for p in plans)
    peak = max((p.memory_total for p in plans), default=0)
    lines.append(f"total: {len(plans)} runs, {sum(p.env_steps for p in plans):,} env steps, "
                 f"{sum(p.grad_steps for p in plans):,} gradient steps, {total_flops / 1e15:.3g} PFLOP of gradient "
                 f"steps; largest memory estimate {fmt_bytes(peak)} of {fmt_bytes(device_bytes)} per device")
    return lines


def _plan_on_cpu(runs, devices: int) -> list[RunPlan]:
    return plan_runs(runs, devices, isolated=False)


def _cpu_only() -> None:
    os.environ["JAX_PLATFORMS"] = "cpu"


def plan_runs(runs, devices: int = 1, isolated: bool | None = None) -> list[RunPlan]:
    """:func:`plan_run` for every run; runs that differ only in their seed share one plan's numbers.

    Building a task and tracing its init start a JAX backend. ``isolated`` does the work in a spawned
    process limited to the CPU, so that this process never claims GPU memory its runs' worker processes
    need; None (the default) isolates when JAX has not started here and a GPU is visible.
    """
    if isolated is None:
        from gcrl_bench.executors import visible_gpus

        isolated = not _backend_started() and bool(visible_gpus())
    if isolated:
        import concurrent.futures
        import multiprocessing

        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=_cpu_only) as pool:
            return pool.submit(_plan_on_cpu, list(runs), devices).result()
    from gcrl_bench import registry

    cache: dict[tuple, RunPlan] = {}
    tasks: dict[str, Any] = {}
    out = []
    for run in runs:
        key = (run.algo, run.task, repr(run.algo_config), repr(run.loop))
        if key not in cache:
            if run.task not in tasks:
                tasks[run.task] = registry.get_task(run.task)
            cache[key] = plan_run(run, tasks[run.task], registry.get_algorithm(run.algo), devices)
        out.append(dataclasses.replace(cache[key], run_id=run.run_id))
    return out


__all__ = ["ACTIVATION_FACTOR", "ENV_FACTOR", "TERMS", "NetworkPlan", "RunPlan", "activation_bytes", "check_fits",
           "device_memory_bytes", "is_params_entry", "memory_terms", "networks_of", "params_entries", "plan_run",
           "plan_runs", "table_lines", "tree_bytes"]
