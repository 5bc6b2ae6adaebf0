"""Runs one grid point (algorithm x task x depth x width x seed) to a complete run folder, resuming it
from its last checkpoint when an earlier attempt was interrupted, and recording failures."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from gcrl_bench import checkpoint, registry, results, sharding
from gcrl_bench.checkpoint import CheckpointConfig
from gcrl_bench.config import LoopConfig, derive_plan
from gcrl_bench.errors import GcrlBenchError
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.training import Compiled, Trainer, compile_trainer


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One fully specified run.

    Attributes:
      algo, task: registry names.
      seed: root PRNG seed.
      algo_config: the algorithm's frozen config (its ``network`` field holds depth/width/switches).
      loop: the loop configuration.
      preset: the preset the loop came from (recorded, not used).
    """

    algo: str
    task: str
    seed: int
    algo_config: Any
    loop: LoopConfig
    preset: str

    @property
    def network(self) -> NetworkConfig:
        return self.algo_config.network

    def identity(self) -> dict:
        """Everything that determines the run's results (its id is a hash of this)."""
        return {
            "format_version": results.FORMAT_VERSION,
            "algo": self.algo,
            "task": self.task,
            "seed": self.seed,
            "algo_config": results._jsonable(self.algo_config),
            "loop_config": results._jsonable(self.loop),
        }

    @property
    def run_id(self) -> str:
        n = self.network
        return results.run_id(self.algo, self.task, n.depth, n.width, self.seed, self.identity())


@dataclasses.dataclass
class EpochReport:
    """What the progress display is told after each epoch."""

    epoch: int
    num_epochs: int
    env_steps: int
    total_env_steps: int
    steps_per_second: float
    time_at_goal: float
    elapsed_s: float


@dataclasses.dataclass(frozen=True)
class ExecutionOptions:
    """How a run is executed; none of it changes the run's results (so none of it is in the run id).

    Attributes:
      checkpoint: when and what to checkpoint.
      devices: local devices one run uses, data-parallel (1: the single-device program; 0: all).
    """

    checkpoint: CheckpointConfig = CheckpointConfig()
    devices: int = 1


class RunInterrupted(GcrlBenchError):
    """SIGTERM or SIGINT stopped a run at an epoch boundary after its checkpoint was written."""


class RunDiverged(FloatingPointError):
    """A training metric or a parameter became NaN or infinite.

    Attributes:
      epoch: the epoch whose result was not finite.
      row: that epoch's metrics row (not recorded in metrics.jsonl).
    """

    def __init__(self, message: str, epoch: int, row: dict):
        super().__init__(message)
        self.epoch, self.row = epoch, row


class StopOnSignal:
    """Turns the first SIGTERM/SIGINT into a request to stop at the next epoch boundary (or before the
    next run of a sweep); a second one abandons the current epoch at once (KeyboardInterrupt; the last
    periodic checkpoint remains). Nested uses share the outermost handler. Only the main thread can
    install handlers; elsewhere (thread pools) signals keep their defaults.

    Attributes:
      signum: the first signal received, or None.
    """

    _active: "StopOnSignal | None" = None

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}
        self._outer: StopOnSignal | None = None

    def _handle(self, signum, _frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "StopOnSignal":
        if StopOnSignal._active is not None:
            self._outer = StopOnSignal._active
            return self._outer
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGINT):
                self._old[s] = signal.signal(s, self._handle)
            StopOnSignal._active = self
        return self

    def __exit__(self, *exc):
        if self._outer is not None:
            return
        for s, h in self._old.items():
            signal.signal(s, h)
        if StopOnSignal._active is self:
            StopOnSignal._active = None

    def check(self, where: str) -> None:
        """Raises RunInterrupted if a signal arrived (``where``: what was stopped, for the message)."""
        if self.signum is not None:
            raise RunInterrupted(f"{signal.Signals(self.signum).name}: {where}; rerun the same command to resume")


_COMPILED: dict[Trainer, Compiled] = {}
_KEEP_COMPILED = 2


def _compiled(trainer: Trainer, key) -> tuple[Compiled, float]:
    """The trainer's programs and the seconds spent compiling them now. The programs do not depend on the
    seed, so the runs of a sweep that differ only in seed compile once per process (0 s after the first)."""
    if trainer in _COMPILED:
        return _COMPILED[trainer], 0.0
    compiled = compile_trainer(trainer, key)
    while len(_COMPILED) >= _KEEP_COMPILED:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[trainer] = compiled
    return compiled, compiled.compile_seconds["total"]


def _config_record(run: RunSpec, plan, spec, devices: int) -> dict:
    n = run.network
    return {
        **run.identity(),
        "run_id": run.run_id,
        "depth": n.depth,
        "width": n.width,
        "preset": run.preset,
        "env_steps_planned": plan.total_env_steps,
        "episode_length": spec.episode_length,
        "plan": results._jsonable(plan),
        "task_spec": results._jsonable(spec),
        "versions": results.package_versions(),
        "code_version": results.code_version(),
        "hardware": {**results.hardware(), "devices_used": devices},
    }


def execute(run: RunSpec, out: Path, on_epoch: Callable[[EpochReport], None] | None = None,
            on_phase: Callable[[str], None] | None = None, options: ExecutionOptions = ExecutionOptions()) -> dict:
    """Trains one run, resuming from its newest valid checkpoint if there is one; returns the summary.

    Raises:
      RunInterrupted: after SIGTERM/SIGINT, once the checkpoint of the last finished epoch is written.
      RunDiverged: a train metric or parameter is not finite (the bad epoch's row is not recorded).
    """
    task = registry.get_task(run.task)
    algorithm = registry.get_algorithm(run.algo)
    plan = derive_plan(run.loop, task.spec)
    folder = results.RunDir(out / "runs" / run.run_id)
    devices = sharding.resolve_devices(options.devices)
    folder.path.mkdir(parents=True, exist_ok=True)
    if folder.failure.exists():  # a retry: the new attempt's outcome replaces the old one
        folder.failure.unlink()
    results.atomic_write_text(folder.config, results.to_json(_config_record(run, plan, task.spec, devices)))

    with StopOnSignal() as stop:
        return _train(run, out, options, task, algorithm, plan, folder, devices, stop, on_epoch, on_phase)


def _train(run, out, options, task, algorithm, plan, folder, devices, stop, on_epoch, on_phase) -> dict:
    """The body of :func:`execute`, with SIGTERM/SIGINT turned into ``stop``."""
    mesh = sharding.make_mesh(devices) if devices > 1 else None
    key = jax.random.PRNGKey(run.seed)
    k_run, k_eval = jax.random.split(key)
    trainer = Trainer(task=task, algorithm=algorithm, algo_config=run.algo_config, loop=run.loop, mesh=mesh)
    if on_phase:
        on_phase("compiling")
    compiled, compile_s = _compiled(trainer, k_run)
    ckpt = options.checkpoint
    save_buffer = 0 < checkpoint.buffer_bytes(compiled.state_shape) <= ckpt.buffer_max_bytes

    restored = checkpoint.load_latest(folder.path, run.run_id, compiled.state_shape)
    t_start = time.perf_counter()
    refill_env_steps = 0
    checkpoint.discard_after(folder.path, restored.epoch if restored else 0)
    if restored is None:
        for stale in (folder.metrics, folder.params):  # an earlier attempt without a checkpoint starts over
            if stale.exists():
                stale.unlink()
        state = compiled.init(k_run)
        if on_phase:
            on_phase("prefilling the buffer")
        state = compiled.prefill(state)
        rows: list[dict] = []
        first_epoch, wall_before = 1, 0.0
    else:
        host = restored.host
        rows = host["rows"]
        k_eval = jnp.asarray(np.asarray(host["eval_key"], np.uint32))
        first_epoch, wall_before = restored.epoch + 1, float(host["wall_time_s"])
        refill_env_steps = int(host.get("refill_env_steps", 0))
        fresh = None if restored.has_buffer else compiled.init(k_run)
        state = compiled.place(checkpoint.restore_state(restored, compiled.state_shape, fresh))
        results.append_metrics(folder, rows)  # drop rows written after the checkpoint: they are redone
        if on_phase:
            on_phase(f"resumed after epoch {restored.epoch}/{run.loop.num_epochs}")
        if not restored.has_buffer:
            warnings.warn(f"run {run.run_id}: the checkpoint has no replay buffer; refilling it with the restored "
                          "policy (the resumed run is not identical to an uninterrupted one)", RuntimeWarning)
            env_steps = int(state.env_steps)
            state = compiled.prefill(state)
            refill_env_steps += int(state.env_steps) - env_steps
            state = compiled.place(state.replace(env_steps=np.int32(env_steps)))  # refill steps are not budget
    jax.block_until_ready(state)
    stop.check(f"run {run.run_id} stopped before epoch {first_epoch}, nothing new to save")

    def host_state():
        return {"eval_key": np.asarray(jax.device_get(k_eval)).tolist(), "rows": rows,
                "wall_time_s": wall_before + time.perf_counter() - t_start, "refill_env_steps": refill_env_steps}

    for epoch in range(first_epoch, run.loop.num_epochs + 1):
        t0 = time.perf_counter()
        state, train_metrics = compiled.epoch(state)
        train_metrics = jax.device_get(train_metrics)
        t_train = time.perf_counter() - t0
        k_eval, k = jax.random.split(k_eval)
        episodes = jax.device_get(compiled.evaluate(state.algo, k))
        row = {
            "epoch": epoch,
            "env_steps": int(state.env_steps),
            "wall_time_s": wall_before + time.perf_counter() - t_start,
            "train_time_s": t_train,
            "train/env_steps_per_s": plan.env_steps_per_epoch / t_train,
            **{f"eval/{k}": float(np.mean(v)) for k, v in episodes.items()},
            **{f"train/{k}": float(v) for k, v in train_metrics.items()},
        }
        bad = sorted(k for k, v in row.items() if k.startswith("train/") and not np.isfinite(v))
        if not bool(compiled.all_finite(state.algo)):
            bad.append("parameters")
        if bad:
            raise RunDiverged(f"diverged at epoch {epoch}: non-finite {', '.join(bad)}", epoch, row)
        rows.append(row)
        results.append_metrics(folder, rows)
        if on_epoch:
            on_epoch(EpochReport(epoch, run.loop.num_epochs, row["env_steps"], plan.total_env_steps,
                                 row["train/env_steps_per_s"], row["eval/time_at_goal"], row["wall_time_s"]))
        last = epoch == run.loop.num_epochs
        periodic = ckpt.every_epochs and epoch % ckpt.every_epochs == 0
        if not last and (periodic or stop.signum is not None):
            checkpoint.save(folder.path, run.run_id, epoch, state, host_state(), save_buffer)
        if not last:
            stop.check(f"run {run.run_id} stopped after epoch {epoch}/{run.loop.num_epochs}, checkpoint written")

    score = results.run_score(rows)
    results.atomic_write_bytes(folder.params, serialization.to_bytes(jax.device_get(state.algo)))
    summary = {
        "status": "complete",
        "score": score,
        "score_normalized": score / task.spec.episode_length,
        "env_steps": int(state.env_steps),
        "refill_env_steps": refill_env_steps,
        "resumed": restored is not None,
        "wall_time_s": wall_before + time.perf_counter() - t_start,
        "compile_time_s": compile_s,
        "compile_seconds": compiled.compile_seconds if compile_s else {},  # empty: programs reused in-process
        "episode_length": task.spec.episode_length,
        "num_evaluations": len(rows),
        "final": {k: rows[-1][k] for k in rows[-1] if k.startswith("eval/")},
    }
    results.atomic_write_text(folder.summary, results.to_json(summary))
    checkpoint.remove(folder.path)
    return summary


def run_isolated(run: RunSpec, out: Path, on_epoch: Callable[[EpochReport], None] | None = None,
                 on_phase: Callable[[str], None] | None = None,
                 options: ExecutionOptions = ExecutionOptions()) -> dict:
    """Runs :func:`execute`; any failure except an interruption is recorded in the run's failure.json
    (see :func:`results.failure_record`) instead of raised, so that a sweep goes on.

    Returns:
      an outcome (plain data, so that it can cross process boundaries): run_id, status ``complete``
      with ``summary``, or ``failed`` with ``error``.
    """
    try:
        return {"run_id": run.run_id, "status": "complete",
                "summary": execute(run, out, on_epoch=on_epoch, on_phase=on_phase, options=options)}
    except (RunInterrupted, KeyboardInterrupt):
        raise
    except Exception as exc:
        folder = results.RunDir(out / "runs" / run.run_id)
        record = results.failure_record(run_id=run.run_id, algo=run.algo, task=run.task, depth=run.network.depth,
                                        width=run.network.width, seed=run.seed, exc=exc,
                                        rows=results.read_metrics(folder.metrics) if folder.metrics.exists() else [])
        results.atomic_write_text(folder.failure, results.to_json(record))
        return {"run_id": run.run_id, "status": "failed", "error": record["error"]}
