"""Runs one grid point (algorithm x task x depth x width x seed) from start to a complete run folder."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from flax import serialization

from gcrl_bench import registry, results
from gcrl_bench.config import LoopConfig, derive_plan
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.training import Trainer, compile_trainer


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


def execute(run: RunSpec, out: Path, on_epoch: Callable[[EpochReport], None] | None = None,
            on_phase: Callable[[str], None] | None = None) -> dict:
    """Trains one run and writes its folder; returns the summary. Skips nothing: the caller decides."""
    task = registry.get_task(run.task)
    algorithm = registry.get_algorithm(run.algo)
    plan = derive_plan(run.loop, task.spec)
    folder = results.RunDir(out / "runs" / run.run_id)
    n = run.network
    config = {
        **run.identity(),
        "run_id": run.run_id,
        "depth": n.depth,
        "width": n.width,
        "preset": run.preset,
        "env_steps_planned": plan.total_env_steps,
        "episode_length": task.spec.episode_length,
        "plan": results._jsonable(plan),
        "task_spec": results._jsonable(task.spec),
        "versions": results.package_versions(),
        "code_version": results.code_version(),
        "hardware": results.hardware(),
    }
    folder.path.mkdir(parents=True, exist_ok=True)
    for stale in (folder.metrics, folder.params):  # an interrupted earlier attempt starts over
        if stale.exists():
            stale.unlink()
    results.atomic_write_text(folder.config, results.to_json(config))

    key = jax.random.PRNGKey(run.seed)
    k_run, k_eval = jax.random.split(key)
    trainer = Trainer(task=task, algorithm=algorithm, algo_config=run.algo_config, loop=run.loop)
    if on_phase:
        on_phase("compiling")
    compiled = compile_trainer(trainer, k_run)
    compile_s = compiled.compile_seconds["total"]
    t_start = time.perf_counter()
    state = compiled.init(k_run)
    if on_phase:
        on_phase("prefilling the buffer")
    state = compiled.prefill(state)
    jax.block_until_ready(state)
    rows: list[dict] = []
    for epoch in range(1, run.loop.num_epochs + 1):
        t0 = time.perf_counter()
        state, train_metrics = compiled.epoch(state)
        train_metrics = jax.device_get(train_metrics)
        t_train = time.perf_counter() - t0
        k_eval, k = jax.random.split(k_eval)
        episodes = jax.device_get(compiled.evaluate(state.algo, k))
        env_steps = int(state.env_steps)
        row = {
            "epoch": epoch,
            "env_steps": env_steps,
            "wall_time_s": time.perf_counter() - t_start,
            "train_time_s": t_train,
            "train/env_steps_per_s": plan.env_steps_per_epoch / t_train,
            **{f"eval/{k}": float(np.mean(v)) for k, v in episodes.items()},
            **{f"train/{k}": float(v) for k, v in train_metrics.items()},
        }
        bad = [k for k, v in row.items() if isinstance(v, float) and not np.isfinite(v)]
        rows.append(row)
        results.append_metrics(folder, rows)
        if on_epoch:
            on_epoch(EpochReport(epoch, run.loop.num_epochs, env_steps, plan.total_env_steps,
                                 row["train/env_steps_per_s"], row["eval/time_at_goal"], row["wall_time_s"]))
        if any(k.startswith("train/") for k in bad):
            raise FloatingPointError(f"run {run.run_id} diverged at epoch {epoch}: non-finite {', '.join(bad)}")
    score = results.run_score(rows)
    results.atomic_write_bytes(folder.params, serialization.to_bytes(jax.device_get(state.algo)))
    summary = {
        "status": "complete",
        "score": score,
        "score_normalized": score / task.spec.episode_length,
        "env_steps": int(state.env_steps),
        "wall_time_s": time.perf_counter() - t_start,
        "compile_time_s": compile_s,
        "compile_seconds": compiled.compile_seconds,
        "episode_length": task.spec.episode_length,
        "num_evaluations": len(rows),
        "final": {k: rows[-1][k] for k in rows[-1] if k.startswith("eval/")},
    }
    results.atomic_write_text(folder.summary, results.to_json(summary))
    return summary
