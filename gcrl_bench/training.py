"""The one online training loop shared by every algorithm, and the evaluator.

Structure (docs/tasks.md §6.2)::

    prefill:  collect prefill_steps x unroll_length rows with the initial stochastic policy
    epoch:    lax.scan over training_steps_per_epoch of
                collect unroll_length rows (lax.scan over rollout.auto_reset_step)  -> insert into the buffer
                sample one window per environment -> relabel -> shuffle -> lax.scan of gradient steps
    evaluate: fresh starts and goals, deterministic policy, one full episode (rollout.evaluate_policy)

Each of prefill, epoch and evaluate is one compiled program (compiled once, ahead of time, so compile
time is measured separately from run time); the host only runs between epochs (logging, evaluation
metrics, checkpoints). Everything that changes during a run lives in one :class:`LoopState` pytree.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import struct

from gcrl_bench import buffer as replay
from gcrl_bench import diagnostics
from gcrl_bench import rollout
from gcrl_bench import sharding
from gcrl_bench.config import LoopConfig, LoopPlan, derive_plan
from gcrl_bench.interface import Algorithm, EnvState, Task, TaskSpec, Transition
from gcrl_bench.relabel import relabel_window


# Folded into the loop's key for the diagnostics' probe batch (Trainer.diagnose); any fixed number would do.
PROBE_STREAM = 0x0D1A6


@struct.dataclass
class LoopState:
    """Everything that changes during a run.

    Attributes:
      algo: the algorithm's state pytree (parameters, optimiser states, temperatures, ...).
      env: (num_envs, ...) batched environment states.
      first_env: (num_envs, ...) each environment's first reset (restored after an episode ends when
        reset_mode is ``first``).
      episode_step: (num_envs,) int32 steps taken in the current episode.
      traj_id: (num_envs,) int32 id of the current episode of each environment.
      buffer: the replay buffer.
      key: PRNG key of the loop's random stream.
      env_steps: () int32 environment steps collected so far.
    """

    algo: Any
    env: EnvState
    first_env: EnvState
    episode_step: jax.Array
    traj_id: jax.Array
    buffer: replay.BufferState
    key: jax.Array
    env_steps: jax.Array


@dataclasses.dataclass(frozen=True)
class Trainer:
    """Builds the compiled programs of one run configuration.

    Attributes:
      task, algorithm, algo_config, loop: what to run.
      mesh: a one-axis device mesh (:mod:`gcrl_bench.sharding`) to run data-parallel on several devices;
        None (the default) builds the single-device programs, unchanged.
      diagnostics: compute the algorithm's per-layer diagnostics (:mod:`gcrl_bench.diagnostics`) at the end
        of every epoch on one probe batch, returned with the epoch's metrics as ``diag/...`` entries; they
        leave the run's results unchanged. Ignored for an algorithm without a ``diagnostics`` function.
    """

    task: Task
    algorithm: Algorithm
    algo_config: Any
    loop: LoopConfig
    mesh: Any = None
    diagnostics: bool = True

    @property
    def spec(self) -> TaskSpec:
        return self.task.spec

    @property
    def plan(self) -> LoopPlan:
        return derive_plan(self.loop, self.spec)

    # -- pure functions (traced) ------------------------------------------------------------------------

    def init(self, key: jax.Array) -> LoopState:
        k_algo, k_env, k_loop = jax.random.split(key, 3)
        n = self.loop.num_envs
        env = rollout.reset_batch(self.task, k_env, n, False)
        capacity = self.loop.max_replay_rows
        return LoopState(
            algo=self.algorithm.init(self.algo_config, self.spec, k_algo),
            env=env,
            first_env=env,
            episode_step=jnp.zeros((n,), jnp.int32),
            traj_id=jnp.zeros((n,), jnp.int32),
            buffer=replay.init(capacity, n, self.spec.observation_size, self.spec.action_size),
            key=k_loop,
            env_steps=jnp.zeros((), jnp.int32),
        )

    def _collect(self, state: LoopState) -> LoopState:
        """Collects unroll_length steps in every environment (:func:`gcrl_bench.rollout.auto_reset_step`,
        stochastic policy) and inserts them into the buffer."""
        loop = self.loop

        def env_step(carry: LoopState, key):
            policy = lambda obs, k: self.algorithm.act(self.algo_config, carry.algo, obs, k, False)  # noqa: E731
            (env, episode_step, traj_id), record = rollout.auto_reset_step(
                self.task, policy, key, carry.env, carry.episode_step, carry.traj_id, loop.reset_mode,
                carry.first_env)
            return carry.replace(env=env, episode_step=episode_step, traj_id=traj_id), record.row

        key, k_steps = jax.random.split(state.key)
        state = state.replace(key=key)
        state, rows = jax.lax.scan(env_step, state, jax.random.split(k_steps, loop.unroll_length))
        return state.replace(
            buffer=replay.insert(state.buffer, *rows),
            env_steps=state.env_steps + loop.num_envs * loop.unroll_length,
        )

    def _relabelled_tuples(self, buffer: replay.BufferState, k_sample: jax.Array, k_relabel: jax.Array) -> Transition:
        """One window per sampled environment, relabelled: a Transition of (windows_per_step, window_length, ...)."""
        plan = self.plan
        windows = replay.sample_windows(buffer, k_sample, plan.windows_per_step, plan.window_length)
        relabel = self.algo_config.relabel
        return jax.vmap(lambda k, o, a, t, e: relabel_window(k, o, a, t, e, self.spec, relabel))(
            jax.random.split(k_relabel, plan.windows_per_step), *windows
        )

    def _train_step(self, state: LoopState, _=None):
        """One training step: collect, sample windows, relabel, shuffle, scan of gradient steps."""
        loop, plan = self.loop, self.plan
        state = self._collect(state)
        key, k_sample, k_relabel, k_perm, k_update = jax.random.split(state.key, 5)
        state = state.replace(key=key)
        tuples = self._relabelled_tuples(state.buffer, k_sample, k_relabel)
        n_used = loop.updates_per_step * loop.batch_size
        pick = jax.random.permutation(k_perm, plan.tuples_per_step)[:n_used]
        batches = jax.tree.map(
            lambda x: x.reshape((-1,) + x.shape[2:])[pick].reshape((loop.updates_per_step, loop.batch_size) + x.shape[2:]),
            tuples,
        )
        if self.mesh is not None:  # each device takes its slice of every batch; XLA averages the gradients
            batches = jax.tree.map(
                lambda x: jax.lax.with_sharding_constraint(x, sharding.split_axis(self.mesh, 1, x.ndim)), batches)

        def grad_step(algo, inputs):
            batch, k = inputs
            return self.algorithm.update(self.algo_config, algo, batch, k)

        algo, metrics = jax.lax.scan(
            grad_step, state.algo, (batches, jax.random.split(k_update, loop.updates_per_step))
        )
        metrics = {k: jnp.mean(v) for k, v in metrics.items()}
        return state.replace(algo=algo), metrics

    def prefill(self, state: LoopState) -> LoopState:
        return jax.lax.fori_loop(0, self.plan.prefill_steps, lambda _, s: self._collect(s), state)

    def epoch(self, state: LoopState):
        """training_steps_per_epoch training steps; returns the state and the epoch's mean train metrics,
        with :meth:`diagnose`'s ``diag/...`` entries when ``diagnostics`` is on."""
        previous = state.algo
        state, metrics = jax.lax.scan(self._train_step, state, None, length=self.plan.training_steps_per_epoch)
        metrics = {k: jnp.mean(v) for k, v in metrics.items()}
        if self.diagnostics and self.algorithm.diagnostics is not None:
            metrics.update(self.diagnose(previous, state))
        return state, metrics

    def diagnose(self, previous_algo, state: LoopState) -> dict[str, jax.Array]:
        """The algorithm's diagnostics on one probe batch of ``batch_size`` relabelled tuples, as
        ``{"diag/<network>/<group>/<statistic>": array}`` (per-block statistics stacked, (num_blocks,)).

        The probe's keys are folded out of ``state.key`` (PROBE_STREAM), which stays as it is: the loop's
        random stream, and so the run, is the same with or without diagnostics.
        """
        base = jax.random.fold_in(state.key, PROBE_STREAM)
        k_sample, k_relabel, k_pick, k_algo = jax.random.split(base, 4)
        tuples = self._relabelled_tuples(state.buffer, k_sample, k_relabel)
        pick = jax.random.permutation(k_pick, self.plan.tuples_per_step)[: self.loop.batch_size]
        batch = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:])[pick], tuples)
        stats = self.algorithm.diagnostics(self.algo_config, previous_algo, state.algo, batch, k_algo)
        return {f"{diagnostics.PREFIX}{k}": v for k, v in stats.items()}

    def evaluate(self, algo_state, key: jax.Array) -> Mapping[str, jax.Array]:
        """One full episode in num_eval_envs fresh environments with the deterministic policy
        (:func:`gcrl_bench.rollout.evaluate_policy`).

        Metrics accumulate while the episode is alive: the step on which the physics terminates an
        episode still counts, the steps after it do not, as in the reference's evaluation.

        Returns:
          per-episode arrays (num_eval_envs,): time_at_goal (steps with success, 0..episode_length),
          success_any, success_at_end (success at the episode's last counted step), final_distance.
        """
        policy = lambda obs, k: self.algorithm.act(self.algo_config, algo_state, obs, k, True)  # noqa: E731
        return rollout.evaluate_policy(self.task, policy, key, self.loop.num_eval_envs).metrics()


def all_finite(tree) -> jax.Array:
    """() bool: every floating-point leaf of ``tree`` is finite (the loop's divergence check)."""
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


@dataclasses.dataclass
class Compiled:
    """The run's compiled programs and how long each took to compile (seconds).

    Attributes:
      init, prefill, epoch, evaluate: the loop's programs (see :class:`Trainer`).
      all_finite: ``all_finite(algo_state)`` compiled.
      state_shape: the LoopState's shapes and dtypes (the template a checkpoint is checked against).
      state_sharding: per-leaf shardings of the LoopState, or None on one device.
      compile_seconds: each program's compile time and the ``total`` wall time.
    """

    init: Any
    prefill: Any
    epoch: Any
    evaluate: Any
    all_finite: Any
    state_shape: Any
    state_sharding: Any
    compile_seconds: dict[str, float]

    def place(self, state):
        """Puts a host LoopState (a restored checkpoint) on the run's devices with the programs' layout."""
        if self.state_sharding is None:
            return jax.device_put(state)
        return jax.device_put(state, self.state_sharding)


def compile_trainer(trainer: Trainer, key: jax.Array, threads: int | None = None) -> Compiled:
    """Compiles init, prefill, epoch and evaluate ahead of time (one jit boundary, built here).

    The programs are traced one after another and compiled concurrently (XLA compiles outside the
    GIL), which roughly halves compile wall time on a 2-core machine. ``compile_seconds`` holds each
    program's own compile time and ``total`` the wall time of the whole step. With ``trainer.mesh`` the
    programs take and return the LoopState split as :func:`sharding.state_shardings` describes.
    """
    t_start = time.perf_counter()
    state_shape = jax.eval_shape(trainer.init, key)
    mesh = trainer.mesh
    if mesh is None:
        state_sh = None
        jit = {name: {} for name in ("init", "loop", "epoch", "evaluate", "check")}
    else:
        loop = trainer.loop
        sharding.check_divisible(mesh, num_envs=loop.num_envs, batch_size=loop.batch_size)
        state_sh = sharding.state_shardings(mesh, state_shape)
        rep = sharding.replicated(mesh)
        jit = {
            "init": dict(out_shardings=state_sh),
            "loop": dict(in_shardings=(state_sh,), out_shardings=state_sh),
            "epoch": dict(in_shardings=(state_sh,), out_shardings=(state_sh, rep)),
            "evaluate": dict(in_shardings=(state_sh.algo, rep), out_shardings=rep),
            "check": dict(in_shardings=(state_sh.algo,), out_shardings=rep),
        }
    lowered = {
        "init": jax.jit(trainer.init, **jit["init"]).lower(key),
        "prefill": jax.jit(trainer.prefill, donate_argnums=(0,), **jit["loop"]).lower(state_shape),
        "epoch": jax.jit(trainer.epoch, donate_argnums=(0,), **jit["epoch"]).lower(state_shape),
        "evaluate": jax.jit(trainer.evaluate, **jit["evaluate"]).lower(state_shape.algo, key),
        "all_finite": jax.jit(all_finite, **jit["check"]).lower(state_shape.algo),
    }
    times: dict[str, float] = {}

    def compile_one(name):
        t0 = time.perf_counter()
        out = lowered[name].compile()
        times[name] = time.perf_counter() - t0
        return name, out

    workers = threads or min(len(lowered), max(1, os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        compiled = dict(pool.map(compile_one, lowered))
    times["total"] = time.perf_counter() - t_start
    return Compiled(**compiled, state_shape=state_shape, state_sharding=state_sh, compile_seconds=times)
