"""A tiny point_u_maze grid shared by the checkpoint, executor and sharding tests (one compiled program)."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from gcrl_bench import registry
from gcrl_bench.config import get_preset
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.runspec import RunSpec

SETS = dict(num_envs=8, unroll_length=10, batch_size=32, updates_per_step=2, min_replay_rows=20,
            max_replay_rows=60, window_length=20, windows_per_step=8, num_eval_envs=8)
EPOCHS, ENV_STEPS, DEPTH, WIDTH = 3, 640, 4, 16
TIMING_KEYS = ("wall_time_s", "train_time_s", "train/env_steps_per_s")


def cli_args(out: Path, seeds: str = "0,1", *extra: str) -> list[str]:
    sets = [a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]
    return ["run", "--algos", "crl", "--tasks", "point_u_maze", "--depths", str(DEPTH), "--widths", str(WIDTH),
            "--seeds", seeds, "--preset", "smoke", "--env-steps", str(ENV_STEPS), "--epochs", str(EPOCHS), *sets,
            "--no-report", "--out", str(out), *extra]


def grid(seeds=(0, 1)) -> list[RunSpec]:
    """The RunSpecs ``cli_args`` describes (same run ids)."""
    loop = dataclasses.replace(get_preset("smoke").loop_for("point_u_maze"), total_env_steps=ENV_STEPS,
                               num_epochs=EPOCHS, **SETS)
    config = registry.get_algorithm("crl").config_cls(network=NetworkConfig(depth=DEPTH, width=WIDTH))
    return [RunSpec("crl", "point_u_maze", s, config, loop, "smoke") for s in seeds]


def run_cli(*argv: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """``gcrl-bench`` in a fresh process, sharing this process's compilation cache."""
    import jax

    full_env = {**os.environ, "GCRL_BENCH_JAX_CACHE": jax.config.jax_compilation_cache_dir, **(env or {})}
    return subprocess.run([sys.executable, "-m", "gcrl_bench.cli", *argv], env=full_env, capture_output=True,
                          text=True, timeout=600, **kw)


def metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the timing columns (which differ between any two executions)."""
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def scores(out: Path) -> list[list[str]]:
    return list(csv.reader((out / "scores.csv").open()))
