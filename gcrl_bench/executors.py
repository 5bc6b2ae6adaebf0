"""Where the runs of a grid execute: in this process, in local worker processes, on Ray, or on SLURM.

Every executor calls the same :func:`gcrl_bench.runner.run_isolated` once per run, with the results
directory as the only channel: each run writes its own folder (atomically), so the layout, the skipping
of completed runs, resuming from checkpoints and the report are the same whichever executor ran it. Remote
executors (Ray, SLURM) need the results directory on a filesystem all nodes share.

- ``local`` with 1 worker (the default): runs one after another in this process, with the live progress
  display.
- ``local`` with N workers: N spawned processes (JAX is not fork-safe). On a machine with GPUs, worker i
  sees GPU ``i mod G`` only (``CUDA_VISIBLE_DEVICES``); with more workers than GPUs each process gets an
  equal share of its GPU's memory (``XLA_PYTHON_CLIENT_MEM_FRACTION``). On a CPU-only machine one worker
  is the default: XLA already uses every core for one run, so more workers mostly add compile work.
- ``ray``: one Ray task per run on a running cluster (``address``) or on a local instance started here.
- ``slurm``: one SLURM job per run through submitit (``cluster="local"`` runs the same jobs as local
  subprocesses, for testing without SLURM).

Ray and submitit are imported only when chosen (the ``ray`` and ``slurm`` extras install them).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Literal

from gcrl_bench import budgets, results
from gcrl_bench.errors import ConfigError, import_extra
from gcrl_bench.runner import (EpochReport, ExecutionOptions, RunInterrupted, RunOutcome, RunOutOfTime, record_failure,
                               run_isolated)
from gcrl_bench.runspec import RunSpec


# executor kind -> (module, extra that installs it, option that needs it)
_BACKENDS = {"ray": ("ray", "ray", "--executor ray"), "slurm": ("submitit", "slurm", "--executor slurm")}


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
    """How the runs of a grid are spread over processes and machines.

    Attributes:
      kind: ``local``, ``ray`` or ``slurm`` (see the module docstring).
      workers: parallel runs of the ``local`` executor; 0 picks the default (one per GPU, else 1).
      ray_address: address of a running Ray cluster (``ray start --head`` prints it); None starts a
        local Ray instance for this command.
      ray_num_cpus: CPUs of the local Ray instance started here; None lets Ray count them.
      cpus_per_run: CPUs each run reserves on Ray and SLURM.
      gpus_per_run: GPUs each run reserves on Ray (fractions share a GPU) and SLURM (whole GPUs); None:
        1 when the cluster has GPUs, else 0.
      slurm_partition, slurm_time_min, slurm_mem_gb, slurm_account, slurm_qos, slurm_constraint: the SLURM
        job's partition, time limit (minutes), memory per job (GB; 0: the partition's default), account,
        QOS and node constraint (empty: the cluster's default).
      slurm_cluster: submitit's executor: ``slurm`` for a real cluster, ``local`` to run the same jobs as
        local subprocesses (tests, debugging).
      log_dir: where job logs go; None: ``<results>/logs/<kind>``.
    """

    kind: Literal["local", "ray", "slurm"] = "local"
    workers: int = 0
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    cpus_per_run: int = 1
    gpus_per_run: float | None = None
    slurm_partition: str = ""
    slurm_time_min: int = 24 * 60
    slurm_mem_gb: int = 0
    slurm_account: str = ""
    slurm_qos: str = ""
    slurm_constraint: str = ""
    slurm_cluster: Literal["slurm", "local"] = "slurm"
    log_dir: str | None = None

    def __post_init__(self):
        if self.kind not in ("local", "ray", "slurm"):
            raise ConfigError(f"--executor {self.kind!r}: choose local, ray or slurm")
        if self.workers < 0:
            raise ConfigError(f"--workers {self.workers}: give a positive number (or 0 for the default)")
        if self.gpus_per_run is not None and self.gpus_per_run < 0:
            raise ConfigError(f"--gpus-per-run {self.gpus_per_run}: must be >= 0")
        if self.cpus_per_run < 1:
            raise ConfigError(f"--cpus-per-run {self.cpus_per_run}: must be >= 1")
        if self.kind in _BACKENDS:  # before any run starts: one line naming the extra that installs it
            import_extra(*_BACKENDS[self.kind])


def visible_gpus() -> list[str]:
    """GPU ids this process may use, found without initialising JAX (which would claim GPU memory)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in listing.splitlines() if l.startswith("GPU "))]


def default_workers() -> int:
    return max(1, len(visible_gpus()))


def worker_environments(workers: int, gpus: list[str]) -> list[dict[str, str]]:
    """Environment variables of each local worker: its GPU and, when GPUs are shared, its memory share."""
    if not gpus:
        return [{"JAX_PLATFORMS": "cpu"} if os.environ.get("JAX_PLATFORMS") == "cpu" else {} for _ in range(workers)]
    per_gpu = -(-workers // len(gpus))
    envs = []
    for i in range(workers):
        env = {"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]}
        if per_gpu > 1:
            env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / per_gpu:.2f}"
        envs.append(env)
    return envs


def _log_callbacks(label: str):
    """Plain one-line log events for runs that execute away from the progress display."""

    def on_phase(phase: str):
        print(f"{label}: {phase}", file=sys.stderr, flush=True)

    def on_epoch(r: EpochReport):
        print(f"{label}: epoch {r.epoch}/{r.num_epochs}, {r.env_steps:,}/{r.total_env_steps:,} env steps, "
              f"{r.steps_per_second:,.0f} steps/s, time at goal {r.time_at_goal:.1f}, {r.elapsed_s:.0f}s",
              file=sys.stderr, flush=True)

    return on_phase, on_epoch


def _remote_run(run: RunSpec, out: str, options: ExecutionOptions, cache: dict) -> RunOutcome:
    """The body of a run in a worker process, a Ray task or a SLURM job; ``not_started`` once the time
    budget has passed, ``interrupted`` when it stopped the run (both plain outcomes, not exceptions)."""
    if budgets.reached(options.deadline):
        return RunOutcome(run.run_id, "not_started")
    import jax

    from gcrl_bench import registry, xla_setup

    # a fresh worker has not started JAX yet: give an MJX task its XLA flag (a reused Ray worker warns instead)
    xla_setup.configure_for([registry.task_spec(run.task)])
    for name, value in cache.items():
        jax.config.update(name, value)
    on_phase, on_epoch = _log_callbacks(run.label)
    try:
        return run_isolated(run, Path(out), on_epoch=on_epoch, on_phase=on_phase, options=options)
    except RunOutOfTime as exc:
        return RunOutcome.unfinished(run.run_id, "interrupted", str(exc),
                                     results.read_metrics(results.RunDir.of(Path(out), run.run_id).metrics))


def _compilation_cache_settings() -> dict:
    """This process's persistent compilation cache settings, handed to every worker."""
    import jax

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    return {n: getattr(jax.config, n) for n in names if getattr(jax.config, n, None) is not None}


def _record_lost(run: RunSpec, out: Path, exc: BaseException) -> list[str]:
    """A run whose process died (killed, out of memory, node lost) left no outcome: records it in its
    failure.json unless it completed; returns its failure line (or nothing)."""
    if results.RunDir.of(out, run.run_id).is_complete():
        return []
    return [f"{run.run_id}: {record_failure(run, out, exc).error}"]


_STATUS_WORDS = {"complete": "done", "interrupted": "stopped by the time budget (checkpoint written)",
                 "not_started": "not started (time budget reached)"}


def _collect(outcomes: dict[str, RunOutcome], runs: list[RunSpec], lost: list[str]) -> list[str]:
    """Prints each run's outcome; returns one line per failed run (``lost``'s first: runs whose process died).

    Raises:
      budgets.TimeBudgetReached: the time budget left runs not started or stopped (carries the failures).
    """
    failures = list(lost)
    for run in runs:
        o = outcomes.get(run.run_id)
        if o is not None and o.status == "failed":
            failures.append(f"{run.run_id}: {o.error}")
        print(f"{run.label}: {_STATUS_WORDS.get(o.status if o else '', 'FAILED')}", file=sys.stderr, flush=True)
    not_started = sum(o.status == "not_started" for o in outcomes.values())
    stopped = sum(o.status == "interrupted" for o in outcomes.values())
    if not_started or stopped:
        raise budgets.TimeBudgetReached(not_started, stopped, failures)
    return failures


def _init_worker(slots) -> None:
    os.environ.update(slots.get())


def _run_local_pool(runs: list[RunSpec], out: Path, options: ExecutionOptions, workers: int) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    slots = ctx.Queue()
    for env in worker_environments(workers, visible_gpus()):
        slots.put(env)
    cache = _compilation_cache_settings()
    failures: list[str] = []
    outcomes: dict[str, RunOutcome] = {}
    interrupted: list[RunOutcome] = []
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                                initargs=(slots,)) as pool:
        # SIGTERM to this process goes on to the workers, which checkpoint and stop at an epoch boundary.
        def forward(signum, _frame):
            for p in list(getattr(pool, "_processes", {}).values()):
                if p.is_alive():
                    os.kill(p.pid, signum)

        old = signal.signal(signal.SIGTERM, forward)
        try:
            futures = {pool.submit(_remote_run, run, str(out), options, cache): run for run in runs}
            for fut in concurrent.futures.as_completed(futures):
                run = futures[fut]
                try:
                    outcomes[run.run_id] = fut.result()
                except RunInterrupted as exc:
                    interrupted.append(RunOutcome(run.run_id, "interrupted", error=str(exc)))
                except concurrent.futures.process.BrokenProcessPool as exc:
                    failures += _record_lost(run, out, exc)
        finally:
            signal.signal(signal.SIGTERM, old)
    if interrupted:
        raise RunInterrupted(f"{len(interrupted)} run(s) interrupted, checkpoints written; "
                             "rerun the same command to resume them")
    return _collect(outcomes, [r for r in runs if r.run_id in outcomes], failures)


def _run_ray(runs: list[RunSpec], out: Path, options: ExecutionOptions, config: ExecutorConfig) -> list[str]:
    ray = import_extra(*_BACKENDS["ray"])

    started = not ray.is_initialized()
    if started:
        ray.init(address=config.ray_address, num_cpus=None if config.ray_address else config.ray_num_cpus,
                 include_dashboard=False, log_to_driver=True)
    try:
        gpus = config.gpus_per_run
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        task = ray.remote(num_cpus=config.cpus_per_run, num_gpus=gpus, max_retries=0)(_remote_run)
        cache = _compilation_cache_settings()
        refs = {task.remote(run, str(out.resolve()), options, cache): run for run in runs}
        outcomes, failures, pending = {}, [], list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            run = refs[done[0]]
            try:
                outcomes[run.run_id] = ray.get(done[0])
            except Exception as exc:  # the task's process died or raised past run_isolated
                failures += _record_lost(run, out, exc)
        return _collect(outcomes, [r for r in runs if r.run_id in outcomes], failures)
    finally:
        if started:
            ray.shutdown()


def _run_slurm(runs: list[RunSpec], out: Path, options: ExecutionOptions, config: ExecutorConfig) -> list[str]:
    submitit = import_extra(*_BACKENDS["slurm"])

    log_dir = Path(config.log_dir) if config.log_dir else out / "logs" / "slurm"
    executor = submitit.AutoExecutor(folder=str(log_dir / "%j"), cluster=config.slurm_cluster)
    gpus = int(config.gpus_per_run if config.gpus_per_run is not None else len(visible_gpus()) > 0)
    params = dict(timeout_min=config.slurm_time_min, cpus_per_task=config.cpus_per_run, gpus_per_node=gpus,
                  tasks_per_node=1, nodes=1, name="gcrl-bench")
    if config.slurm_mem_gb:
        params["mem_gb"] = config.slurm_mem_gb
    extra = {"partition": config.slurm_partition, "account": config.slurm_account, "qos": config.slurm_qos,
             "constraint": config.slurm_constraint}
    params.update({f"slurm_{k}": v for k, v in extra.items() if v})
    executor.update_parameters(**params)
    cache = _compilation_cache_settings()
    jobs = [(executor.submit(_remote_run, run, str(out.resolve()), options, cache), run) for run in runs]
    for job, run in jobs:
        print(f"{run.label}: submitted as job {job.job_id}", file=sys.stderr, flush=True)
    outcomes, failures = {}, []
    for job, run in jobs:
        try:
            outcomes[run.run_id] = job.result()
        except Exception as exc:  # job failed, cancelled, timed out or its node was lost
            failures += _record_lost(run, out, exc)
    return _collect(outcomes, [r for r in runs if r.run_id in outcomes], failures)


def run_all(runs: list[RunSpec], out: Path, options: ExecutionOptions = ExecutionOptions(),
            executor: ExecutorConfig = ExecutorConfig()) -> list[str]:
    """Executes ``runs`` with the chosen executor; returns one line per failed run.

    Raises:
      RunInterrupted: SIGTERM/SIGINT stopped runs (their checkpoints are written).
      budgets.TimeBudgetReached: ``options.deadline`` passed: no run started after it, the running ones
        stopped at their next epoch boundary with a checkpoint (the exception counts both).
    """
    if not runs:
        return []
    if budgets.reached(options.deadline):
        raise budgets.TimeBudgetReached(len(runs))
    if executor.kind == "ray":
        return _run_ray(runs, out, options, executor)
    if executor.kind == "slurm":
        return _run_slurm(runs, out, options, executor)
    workers = min(executor.workers or default_workers(), len(runs))
    if workers == 1:
        from gcrl_bench.progress import run_grid

        return run_grid(runs, out, options)
    return _run_local_pool(runs, out, options, workers)
