"""Runs one grid point (algorithm x task x depth x width x seed) to a complete run folder, resuming it
from its last checkpoint when an earlier attempt was interrupted, and recording failures."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from gcrl_bench import budgets, checkpoint, diagnostics, registry, results, sharding, trackers
from gcrl_bench.checkpoint import CheckpointConfig
from gcrl_bench.config import derive_plan
from gcrl_bench.errors import GcrlBenchError
from gcrl_bench.runspec import RunSpec
from gcrl_bench.training import Compiled, Trainer, compile_trainer


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
    """How a run is executed; none of it changes the run's results (so none of it is in the run id),
    except that ``stop_if_stalled`` may end a run before its last planned epoch (its summary.json says so).

    Attributes:
      checkpoint: when and what to checkpoint.
      devices: local devices one run uses, data-parallel (1: the single-device program; 0: all).
      logger: experiment tracker that mirrors each run's metrics rows, made in the process that executes
        the run: ``tensorboard`` or ``wandb`` (see :mod:`gcrl_bench.trackers`); None: none.
      diagnostics: record per-layer and representation diagnostics (``diag/...`` in metrics.jsonl, warnings
        in summary.json; :mod:`gcrl_bench.diagnostics`) every epoch. They do not change the run's results.
      deadline: the sweep's time budget as an absolute ``time.time()`` (see :mod:`gcrl_bench.budgets`):
        once passed, no run starts and a running one checkpoints and stops at its next epoch boundary
        (:class:`RunOutOfTime`); None: no budget.
      stop_if_stalled: end a run (complete, ``"stopped": "stalled"`` in summary.json) once its
        eval/time_at_goal has not improved on its best for this many consecutive evaluations
        (:func:`gcrl_bench.budgets.stalled_at`); 0: off.
    """

    checkpoint: CheckpointConfig = CheckpointConfig()
    devices: int = 1
    logger: str | None = None
    diagnostics: bool = True
    deadline: float | None = None
    stop_if_stalled: int = 0

    def __post_init__(self):
        if self.stop_if_stalled:
            budgets.check_patience(self.stop_if_stalled)
        trackers.make_tracker(self.logger)  # an unknown tracker or a missing package: refused before any run


class RunInterrupted(GcrlBenchError):
    """SIGTERM or SIGINT stopped a run at an epoch boundary after its checkpoint was written."""


class RunOutOfTime(RunInterrupted):
    """The sweep's time budget (``ExecutionOptions.deadline``) stopped a run at an epoch boundary after its
    checkpoint was written."""


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
        "batch_size": run.loop.batch_size,
        "preset": run.preset,
        "env_steps_planned": plan.total_env_steps,
        "episode_length": spec.episode_length,
        "plan": results.jsonable(plan),
        "task_spec": results.jsonable(spec),
        "versions": results.package_versions(),
        "code_version": results.code_version(),
        "hardware": {**results.hardware(), "devices_used": devices},
    }


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What became of one run of a sweep: plain data, so that it crosses process boundaries (worker
    processes, Ray tasks, SLURM jobs).

    Attributes:
      run_id: the run's id (its folder under ``results/runs/``).
      status: ``complete`` (summary.json written), ``failed`` (failure.json written), ``interrupted``
        (SIGTERM/SIGINT or the time budget stopped it at an epoch boundary after its checkpoint was written)
        or ``not_started`` (the time budget had passed before it started).
      score: the run's score (mean time at goal over its last evaluations, summary.json); NaN unless complete.
      env_steps: environment steps trained: the final count when complete, else the count at the last
        recorded evaluation (0 when it recorded none).
      wall_time_s: seconds of training over all attempts: the summary's when complete, else the last
        recorded evaluation's (NaN when it recorded none).
      compile_time_s: seconds this attempt spent compiling (0 when the programs were reused in-process);
        NaN unless complete.
      error: one line saying what went wrong (failed, interrupted); "" when complete.
      warnings: the diagnostics warnings of the run's last epoch (summary.json ``warnings``); () unless
        complete, or when a summary predates them.
    """

    run_id: str
    status: Literal["complete", "failed", "interrupted", "not_started"]
    score: float = float("nan")
    env_steps: int = 0
    wall_time_s: float = float("nan")
    compile_time_s: float = float("nan")
    error: str = ""
    warnings: tuple[str, ...] = ()

    @classmethod
    def complete(cls, run_id: str, summary: dict) -> "RunOutcome":
        """The outcome of a run that finished, from its summary (as :func:`execute` returns it)."""
        return cls(run_id, "complete", score=float(summary["score"]), env_steps=int(summary["env_steps"]),
                   wall_time_s=float(summary["wall_time_s"]), compile_time_s=float(summary["compile_time_s"]),
                   warnings=tuple(str(w) for w in summary.get("warnings") or ()))

    @classmethod
    def unfinished(cls, run_id: str, status: Literal["failed", "interrupted"], error: str,
                   rows: list[dict]) -> "RunOutcome":
        """The outcome of a run that stopped early; ``rows``: its recorded metrics rows (metrics.jsonl)."""
        last = rows[-1] if rows else {}
        return cls(run_id, status, env_steps=int(last.get("env_steps", 0)),
                   wall_time_s=float(last.get("wall_time_s", float("nan"))), error=error)


def execute(run: RunSpec, out: Path, on_epoch: Callable[[EpochReport], None] | None = None,
            on_phase: Callable[[str], None] | None = None, options: ExecutionOptions = ExecutionOptions(),
            on_metrics: Callable[[dict], None] | None = None) -> dict:
    """Trains one run, resuming from its newest valid checkpoint if there is one; returns the summary.

    Args:
      on_epoch: told each epoch's progress (:class:`EpochReport`), after its metrics are recorded.
      on_phase: told what the run is doing before the epochs ("compiling", "prefilling the buffer", ...).
      on_metrics: given a copy of each epoch's metrics row, as written to metrics.jsonl (epoch,
        env_steps, wall_time_s, train_time_s, eval/..., train/...), right after it is recorded (and
        after ``options.logger``'s tracker has mirrored it). Not called for the rows a resumed run restores.

    Raises:
      RunInterrupted: after SIGTERM/SIGINT, once the checkpoint of the last finished epoch is written.
      RunDiverged: a train metric or parameter is not finite (the bad epoch's row is not recorded).
    """
    task = registry.get_task(run.task)
    algorithm = registry.get_algorithm(run.algo)
    plan = derive_plan(run.loop, task.spec)
    folder = results.RunDir.of(out, run.run_id)
    devices = sharding.resolve_devices(options.devices)
    folder.path.mkdir(parents=True, exist_ok=True)
    if folder.failure.exists():  # a retry: the new attempt's outcome replaces the old one
        folder.failure.unlink()
    results.atomic_write_text(folder.config, results.to_json(_config_record(run, plan, task.spec, devices)))

    with StopOnSignal() as stop, trackers.mirrored(options.logger, run.run_id, folder.path, on_metrics) as on_metrics:
        return _train(run, options, task, algorithm, plan, folder, devices, stop,
                      _Callbacks(on_epoch, on_phase, on_metrics))


@dataclasses.dataclass(frozen=True)
class _Callbacks:
    """The observers of one run (see :func:`execute`); each may be None."""

    on_epoch: Callable[[EpochReport], None] | None = None
    on_phase: Callable[[str], None] | None = None
    on_metrics: Callable[[dict], None] | None = None

    def phase(self, text: str) -> None:
        if self.on_phase:
            self.on_phase(text)


@dataclasses.dataclass
class _Training:
    """The state of one attempt at a run between epochs (host side).

    Attributes:
      state: the LoopState (device arrays).
      eval_key: PRNG key of the evaluations; split once per epoch.
      rows: the metrics rows recorded so far (metrics.jsonl), including a resumed run's earlier ones.
      first_epoch: the first epoch this attempt trains (1, or the checkpoint's epoch + 1).
      wall_before: training seconds of the earlier attempts (0 for a fresh run).
      t_start: ``time.perf_counter()`` when this attempt started.
      refill_env_steps: environment steps spent refilling a buffer the checkpoint did not hold.
      resumed: whether this attempt continues a checkpoint.
      stopped_epoch: the epoch after which the stall rule ended the run (``ExecutionOptions.stop_if_stalled``),
        or None.
    """

    state: Any
    eval_key: Any
    rows: list[dict]
    first_epoch: int
    wall_before: float
    t_start: float
    refill_env_steps: int
    resumed: bool
    stopped_epoch: int | None = None

    def wall_time(self) -> float:
        """Training seconds over all attempts, up to now."""
        return self.wall_before + time.perf_counter() - self.t_start

    def host_state(self) -> dict:
        """The host-side part of a checkpoint (see :func:`checkpoint.save`)."""
        return {"eval_key": np.asarray(jax.device_get(self.eval_key)).tolist(), "rows": self.rows,
                "wall_time_s": self.wall_time(), "refill_env_steps": self.refill_env_steps}


def _train(run: RunSpec, options: ExecutionOptions, task, algorithm, plan, folder: results.RunDir, devices: int,
           stop: "StopOnSignal", callbacks: _Callbacks) -> dict:
    """The body of :func:`execute`, with SIGTERM/SIGINT turned into ``stop``: resume or initialise, train
    the remaining epochs (checkpointing between them), write the summary."""
    mesh = sharding.make_mesh(devices) if devices > 1 else None
    k_run, k_eval = jax.random.split(jax.random.PRNGKey(run.seed))
    trainer = Trainer(task=task, algorithm=algorithm, algo_config=run.algo_config, loop=run.loop, mesh=mesh,
                      diagnostics=options.diagnostics)
    callbacks.phase("compiling")
    compiled, compile_s = _compiled(trainer, k_run)
    ckpt = options.checkpoint
    save_buffer = 0 < checkpoint.buffer_bytes(compiled.state_shape) <= ckpt.buffer_max_bytes

    training = _resume_or_init(run, compiled, folder, k_run, k_eval, callbacks)
    stop.check(f"run {run.run_id} stopped before epoch {training.first_epoch}, nothing new to save")
    for epoch in range(training.first_epoch, run.loop.num_epochs + 1):
        _epoch(run, compiled, plan, folder, training, epoch, callbacks)
        last = epoch == run.loop.num_epochs
        if not last and options.stop_if_stalled and budgets.stalled_at(
                [r["eval/time_at_goal"] for r in training.rows], options.stop_if_stalled) is not None:
            training.stopped_epoch = epoch
            break
        periodic = ckpt.every_epochs and epoch % ckpt.every_epochs == 0
        out_of_time = not last and budgets.reached(options.deadline)
        if not last and (periodic or stop.signum is not None or out_of_time):
            checkpoint.save(folder.path, run.run_id, epoch, training.state, training.host_state(), save_buffer)
        if not last:
            where = f"run {run.run_id} stopped after epoch {epoch}/{run.loop.num_epochs}, checkpoint written"
            stop.check(where)
            if out_of_time:
                raise RunOutOfTime(f"time budget reached: {where}; rerun the same command to resume")
    return _finish(compiled, compile_s, task, folder, training)


def _resume_or_init(run: RunSpec, compiled: Compiled, folder: results.RunDir, k_run, k_eval,
                    callbacks: _Callbacks) -> _Training:
    """Restores the newest valid checkpoint (dropping metrics rows and checkpoints written after it), or
    starts afresh (init + prefill) when there is none; returns the state ready for the next epoch."""
    restored = checkpoint.load_latest(folder.path, run.run_id, compiled.state_shape)
    t_start = time.perf_counter()
    refill_env_steps = 0
    checkpoint.discard_after(folder.path, restored.epoch if restored else 0)
    if restored is None:
        for stale in (folder.metrics, folder.params):  # an earlier attempt without a checkpoint starts over
            if stale.exists():
                stale.unlink()
        state = compiled.init(k_run)
        callbacks.phase("prefilling the buffer")
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
        callbacks.phase(f"resumed after epoch {restored.epoch}/{run.loop.num_epochs}")
        if not restored.has_buffer:
            warnings.warn(f"run {run.run_id}: the checkpoint has no replay buffer; refilling it with the restored "
                          "policy (the resumed run is not identical to an uninterrupted one)", RuntimeWarning)
            env_steps = int(state.env_steps)
            state = compiled.prefill(state)
            refill_env_steps += int(state.env_steps) - env_steps
            state = compiled.place(state.replace(env_steps=np.int32(env_steps)))  # refill steps are not budget
    jax.block_until_ready(state)
    return _Training(state=state, eval_key=k_eval, rows=rows, first_epoch=first_epoch, wall_before=wall_before,
                     t_start=t_start, refill_env_steps=refill_env_steps, resumed=restored is not None)


def _epoch(run: RunSpec, compiled: Compiled, plan, folder: results.RunDir, training: _Training, epoch: int,
           callbacks: _Callbacks) -> None:
    """One epoch: trains, evaluates, checks that the metrics and parameters are finite, then records the
    metrics row (``training.rows`` and metrics.jsonl) and tells the callbacks.

    Raises:
      RunDiverged: a train metric or a parameter is not finite (nothing is recorded).
    """
    t0 = time.perf_counter()
    state, train_metrics = compiled.epoch(training.state)
    train_metrics = jax.device_get(train_metrics)
    t_train = time.perf_counter() - t0
    training.eval_key, k = jax.random.split(training.eval_key)
    episodes = jax.device_get(compiled.evaluate(state.algo, k))
    training.state = state
    row = {
        "epoch": epoch,
        "env_steps": int(state.env_steps),
        "wall_time_s": training.wall_time(),
        "train_time_s": t_train,
        "train/env_steps_per_s": plan.env_steps_per_epoch / t_train,
        **{f"eval/{k}": float(np.mean(v)) for k, v in episodes.items()},
        **{f"train/{k}": float(v) for k, v in train_metrics.items() if not k.startswith(diagnostics.PREFIX)},
        **diagnostics.flatten(train_metrics),
    }
    bad = sorted(k for k, v in row.items() if k.startswith("train/") and not np.isfinite(v))
    if not bool(compiled.all_finite(state.algo)):
        bad.append("parameters")
    if bad:
        raise RunDiverged(f"diverged at epoch {epoch}: non-finite {', '.join(bad)}", epoch, row)
    training.rows.append(row)
    results.append_metrics(folder, training.rows)
    if callbacks.on_metrics:  # hook point for an experiment tracker (one call per recorded row)
        callbacks.on_metrics(dict(row))
    if callbacks.on_epoch:
        callbacks.on_epoch(EpochReport(epoch, run.loop.num_epochs, row["env_steps"], plan.total_env_steps,
                                       row["train/env_steps_per_s"], row["eval/time_at_goal"], row["wall_time_s"]))


def _finish(compiled: Compiled, compile_s: float, task, folder: results.RunDir, training: _Training) -> dict:
    """Writes the final parameters and summary.json (which marks the run complete), removes the
    checkpoints, and returns the summary."""
    rows, state = training.rows, training.state
    score = results.run_score(rows)
    results.atomic_write_bytes(folder.params, serialization.to_bytes(jax.device_get(state.algo)))
    summary = {
        "status": "complete",
        "score": score,
        "score_normalized": score / task.spec.episode_length,
        "env_steps": int(state.env_steps),
        "refill_env_steps": training.refill_env_steps,
        "resumed": training.resumed,
        "wall_time_s": training.wall_time(),
        "compile_time_s": compile_s,
        "compile_seconds": compiled.compile_seconds if compile_s else {},  # empty: programs reused in-process
        "episode_length": task.spec.episode_length,
        "num_evaluations": len(rows),
        "final": {k: rows[-1][k] for k in rows[-1] if k.startswith("eval/")},
        "warnings": diagnostics.run_warnings(rows[-1]),
        "stopped": None if training.stopped_epoch is None else "stalled",  # see gcrl_bench.budgets
        "stopped_epoch": training.stopped_epoch,
    }
    results.atomic_write_text(folder.summary, results.to_json(summary))
    checkpoint.remove(folder.path)
    return summary


def record_failure(run: RunSpec, out: Path, exc: BaseException) -> RunOutcome:
    """Writes the run's failure.json for ``exc`` (see :func:`results.failure_record`) with the metrics
    rows it recorded, and returns its ``failed`` outcome."""
    folder = results.RunDir.of(out, run.run_id)
    rows = results.read_metrics(folder.metrics)
    record = results.failure_record(run_id=run.run_id, algo=run.algo, task=run.task, depth=run.network.depth,
                                    width=run.network.width, seed=run.seed, exc=exc, rows=rows)
    results.atomic_write_text(folder.failure, results.to_json(record))
    return RunOutcome.unfinished(run.run_id, "failed", record["error"], rows)


def run_isolated(run: RunSpec, out: Path, on_epoch: Callable[[EpochReport], None] | None = None,
                 on_phase: Callable[[str], None] | None = None,
                 options: ExecutionOptions = ExecutionOptions(),
                 on_metrics: Callable[[dict], None] | None = None) -> RunOutcome:
    """Runs :func:`execute`; any failure except an interruption is recorded in the run's failure.json
    (see :func:`record_failure`) instead of raised, so that a sweep goes on.

    Returns:
      the run's outcome, ``complete`` or ``failed``.
    Raises:
      RunInterrupted, KeyboardInterrupt: as :func:`execute`.
    """
    try:
        summary = execute(run, out, on_epoch=on_epoch, on_phase=on_phase, options=options, on_metrics=on_metrics)
    except (RunInterrupted, KeyboardInterrupt):
        raise
    except Exception as exc:
        return record_failure(run, out, exc)
    return RunOutcome.complete(run.run_id, summary)
