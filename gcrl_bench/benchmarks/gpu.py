"""Accelerator verification kit: ``python -m gcrl_bench.benchmarks.gpu [--scale full|cpu|tiny] [--json OUT.json]``.

Measures, on the first local device, and prints one table per section:

- ``env``: env steps/s of every chosen task at each environment count: one compiled ``lax.scan`` of
  ``vmap(task.step)`` with random actions (:func:`timing.env_throughput`), with its cold compile time.
- ``learner``: CRL learner throughput against depth: a compiled scan of ``crl.update`` on random batches
  (:func:`timing.compile_crl_learner`), updates/s and matmul GFLOP/s (:func:`timing.crl_update_matmul_flops`),
  beside the device's float32 matmul rate.
- ``train``: end-to-end training env steps/s of the ``paper`` preset's loop (512 envs, 62-step unrolls, 800
  gradient steps of batch 512 per training step) for CRL at each chosen depth, from one compiled epoch
  shortened to a few training steps (every training step does the same work, so the rate is that of a full
  epoch without its evaluation), beside the rate implied by the paper's Table 3: the task's budget
  (``PAPER_BUDGETS``, docs/tasks.md §1.6) over the wall-clock hours of one run (docs/tasks.md §8.3). The
  smaller scales run the ``smoke`` preset's loop instead and leave the paper's rate out ("-").
- ``memory``: the device's peak memory in use after each section (``Device.memory_stats()``; "n/a on this
  platform" where the runtime has none, as on CPU).
- ``learning``: CRL (depth 4, width 64) on the sanity task ``point_u_maze`` with the ``quick`` preset's loop
  (``SANITY_LOOP``: 0.2M env steps, 10 epochs), time at goal of 64 fresh evaluation episodes after each epoch;
  PASS when the mean of the last 3 evaluations is at least ``LEARNING_THRESHOLD`` of 100 steps (a 2-core CPU
  reaches about 65-70, tests/test_learning.py).

Scales: ``full`` (the default on a GPU or TPU) is sized for an H100/H200-class GPU, about 10 minutes in all;
``cpu`` (the default on a CPU; ``--cpu-scale`` is the same) uses 32 and 128 envs, depths 4 and 16 and the
``smoke`` preset's loop for the train section; ``tiny`` is the smallest check that every section runs (the
test suite's), with a 2-epoch learning run that is reported but not judged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gcrl_bench import registry, xla_setup
from gcrl_bench.config import PAPER_BUDGETS, SANITY_LOOP, LoopConfig, derive_plan, get_preset
from gcrl_bench.errors import ConfigError, GcrlBenchError

TABLE3_HOURS: dict[str, dict[int, float]] = {
    "humanoid": {4: 1.48, 8: 2.13, 16: 3.40, 32: 5.92, 64: 10.99},
    "ant_big_maze": {4: 2.12, 8: 2.77, 16: 4.04, 32: 6.57, 64: 11.66},
    "ant_u4_maze": {4: 1.98, 8: 2.54, 16: 3.81, 32: 6.35, 64: 11.43},
    "ant_u5_maze": {4: 9.46, 8: 10.99, 16: 16.09, 32: 31.49, 64: 46.40},
    "ant_hardest_maze": {4: 5.11, 8: 6.39, 16: 8.94, 32: 13.97, 64: 23.96},
    "arm_push_easy": {4: 9.97, 8: 11.02, 16: 12.20, 32: 14.94, 64: 19.52},
    "arm_push_hard": {4: 9.74, 8: 10.55, 16: 11.98, 32: 14.40, 64: 18.53},
    "arm_binpick_hard": {4: 18.41, 8: 17.48, 16: 19.47, 32: 21.91, 64: 29.64},
    "humanoid_u_maze": {4: 8.72, 8: 11.29, 16: 16.36, 32: 26.48, 64: 46.74},
    "humanoid_big_maze": {4: 12.45, 8: 15.02, 16: 20.34, 32: 30.61, 64: 50.33},
}
"""The paper's Table 3 (docs/tasks.md §8.3): wall-clock hours of one CRL run, task -> depth -> hours."""

LEARNING_THRESHOLD = 55.0
"""Least mean time at goal (of 100 steps) over the learning check's last 3 evaluations for a PASS."""

SECTIONS = ("env", "learner", "train", "memory", "learning")


def paper_env_steps_per_second(task: str, depth: int) -> float | None:
    """Env steps/s implied by the paper's Table 3: ``PAPER_BUDGETS[task] / (hours x 3600)``; None when Table 3
    has no entry for the task and depth."""
    hours = TABLE3_HOURS.get(task, {}).get(depth)
    if hours is None or task not in PAPER_BUDGETS:
        return None
    return PAPER_BUDGETS[task] / (hours * 3600.0)


@dataclasses.dataclass(frozen=True)
class Scale:
    """The sizes of one kit run.

    Attributes:
      env_sizes: parallel environment counts of the env section; each is measured with a scan of
        ``env_steps[i]`` steps.
      env_steps: scan length per environment count (same order as ``env_sizes``).
      tasks: tasks of the env section.
      learner_depths: CRL network depths of the learner section.
      learner_width, learner_batch, learner_steps: network width, batch size and updates per compiled scan.
      matmul_n: size n of the (n x n) @ (n x n) float32 matmul whose rate is printed beside the learner's.
      train_task: task of the train section.
      train_depths: CRL depths of the train section.
      train_preset: preset whose loop the train section runs (its per-task entry for ``train_task``).
      train_steps: training steps in the shortened, timed epoch.
      learning_epochs: epochs of the learning check (``SANITY_LOOP`` has 10; fewer shrink its budget in
        proportion and the check is not judged).
      repeats: timed calls per measurement (the best or median is reported).
    """

    env_sizes: tuple[int, ...]
    env_steps: tuple[int, ...]
    tasks: tuple[str, ...]
    learner_depths: tuple[int, ...]
    learner_width: int
    learner_batch: int
    learner_steps: int
    matmul_n: int
    train_task: str
    train_depths: tuple[int, ...]
    train_preset: str
    train_steps: int
    learning_epochs: int
    repeats: int


def _all_tasks() -> tuple[str, ...]:
    return (*registry.benchmark_task_names(), "point_u_maze")


SCALES: dict[str, Scale] = {
    "full": Scale(env_sizes=(512, 2048, 8192), env_steps=(100, 50, 25), tasks=(), learner_depths=(4, 16, 64, 256, 1024),
                  learner_width=256, learner_batch=512, learner_steps=20, matmul_n=4096, train_task="ant_big_maze",
                  train_depths=(4, 64), train_preset="paper", train_steps=4, learning_epochs=10, repeats=3),
    "cpu": Scale(env_sizes=(32, 128), env_steps=(50, 20), tasks=("point_u_maze", "ant_big_maze"),
                 learner_depths=(4, 16), learner_width=256, learner_batch=256, learner_steps=10, matmul_n=1024,
                 train_task="ant_big_maze", train_depths=(4, 16), train_preset="smoke", train_steps=2,
                 learning_epochs=10, repeats=3),
    "tiny": Scale(env_sizes=(32,), env_steps=(10,), tasks=("point_u_maze",), learner_depths=(4,), learner_width=64,
                  learner_batch=64, learner_steps=4, matmul_n=256, train_task="point_u_maze", train_depths=(4,),
                  train_preset="smoke", train_steps=1, learning_epochs=2, repeats=2),
}
"""Named scales; ``full``'s empty ``tasks`` means every benchmark task plus the sanity task."""


@dataclasses.dataclass
class Table:
    """One printed section: a title, column names and rows of values (numbers or short strings)."""

    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)

    def add(self, *row: Any) -> None:
        self.rows.append(row)

    def text(self) -> str:
        cells = [list(self.columns)] + [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = [f"## {self.name}"]
        lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
        return "\n".join(lines)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.3g}" if abs(v) < 10 else f"{v:,.0f}"
    return str(v)


def _peak_bytes() -> float | None:
    """Peak device memory in use so far (bytes), or None where the runtime reports none."""
    import jax

    stats = jax.local_devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return float(stats["peak_bytes_in_use"])


def env_section(scale: Scale, tasks: Sequence[str]) -> Table:
    from gcrl_bench.benchmarks.timing import env_throughput

    table = Table("env", ("task", "envs", "scan_steps", "env_steps_per_s", "compile_s"))
    for name in tasks:
        task = registry.get_task(name)
        for n_envs, n_steps in zip(scale.env_sizes, scale.env_steps):
            sps, compile_s = env_throughput(task, n_envs, n_steps, scale.repeats)
            table.add(name, n_envs, n_steps, sps, compile_s)
            _progress(f"env {name} x{n_envs}: {sps:,.0f} env steps/s")
    return table


def learner_section(scale: Scale) -> Table:
    import jax

    from gcrl_bench.algorithms import crl
    from gcrl_bench.benchmarks import timing
    from gcrl_bench.networks import NetworkConfig

    spec = registry.task_spec("ant_big_maze")
    ceiling = timing.matmul_gflops(scale.matmul_n)
    table = Table("learner", ("depth", "width", "batch", "updates_per_s", "ms_per_update", "gflop_per_s",
                              f"matmul{scale.matmul_n}_gflop_per_s", "compile_s"))
    for depth in scale.learner_depths:
        config = crl.CRLConfig(network=NetworkConfig(depth=depth, width=scale.learner_width))
        compiled, state, batches, compile_s = timing.compile_crl_learner(config, spec, scale.learner_batch,
                                                                         scale.learner_steps)
        key = jax.random.PRNGKey(3)
        _, metrics = jax.block_until_ready(compiled(state, batches, key))  # warm-up
        if not bool(np.all(np.isfinite(np.asarray(metrics["critic_loss"])))):
            raise FloatingPointError(f"CRL learner at depth {depth}: critic loss is not finite")
        seconds = timing.median_seconds(lambda: compiled(state, batches, key), scale.repeats) / scale.learner_steps
        flops = timing.crl_update_matmul_flops(config, spec, scale.learner_batch)
        table.add(depth, scale.learner_width, scale.learner_batch, 1.0 / seconds, seconds * 1e3, flops / seconds / 1e9,
                  ceiling, compile_s)
        _progress(f"learner depth {depth}: {1.0 / seconds:,.1f} updates/s")
        del compiled, state, batches
    return table


def shortened_loop(loop: LoopConfig, task: str, training_steps: int) -> LoopConfig:
    """``loop`` with one epoch of ``training_steps`` training steps after its prefill; every other field (envs,
    unroll length, batch, gradient steps per training step, replay sizes) is unchanged."""
    plan = derive_plan(loop, registry.task_spec(task))
    total = plan.prefill_env_steps + training_steps * plan.env_steps_per_training_step
    return dataclasses.replace(loop, total_env_steps=total, num_epochs=1)


def train_section(scale: Scale) -> Table:
    import jax

    from gcrl_bench.networks import NetworkConfig
    from gcrl_bench.training import Trainer, all_finite, compile_trainer

    task = registry.get_task(scale.train_task)
    algo = registry.get_algorithm("crl")
    loop = shortened_loop(get_preset(scale.train_preset).loop_for(scale.train_task), scale.train_task,
                          scale.train_steps)
    plan = derive_plan(loop, task.spec)
    table = Table("train", ("task", "preset", "depth", "envs", "grad_steps_per_train_step", "env_steps_per_s",
                            "paper_env_steps_per_s", "ratio", "compile_s"))
    for depth in scale.train_depths:
        config = algo.config_cls(network=NetworkConfig(depth=depth))
        compiled = compile_trainer(Trainer(task, algo, config, loop), jax.random.PRNGKey(0))
        state = compiled.prefill(compiled.init(jax.random.PRNGKey(0)))
        best = float("inf")
        for _ in range(2):  # the second epoch continues the first: both fill the buffer and train the same way
            start = time.perf_counter()
            state, metrics = jax.block_until_ready(compiled.epoch(state))
            best = min(best, time.perf_counter() - start)
        if not bool(all_finite(metrics)):
            raise FloatingPointError(f"train section at depth {depth}: a training metric is not finite")
        sps = plan.env_steps_per_epoch / best
        # the paper's rate is comparable only with the paper's loop (its batch, UTD and env count)
        paper = paper_env_steps_per_second(scale.train_task, depth) if scale.train_preset == "paper" else None
        ratio = sps / paper if paper else "-"
        table.add(scale.train_task, scale.train_preset, depth, loop.num_envs, loop.updates_per_step, sps,
                  paper if paper else "-", ratio, compiled.compile_seconds["total"])
        _progress(f"train depth {depth}: {sps:,.0f} env steps/s")
        del compiled, state
    return table


def learning_section(scale: Scale) -> Table:
    import jax

    from gcrl_bench.networks import NetworkConfig
    from gcrl_bench.training import Trainer, compile_trainer

    base = LoopConfig(**SANITY_LOOP)
    loop = base
    if scale.learning_epochs != base.num_epochs:
        plan = derive_plan(base, registry.task_spec("point_u_maze"))
        loop = dataclasses.replace(base, num_epochs=scale.learning_epochs, total_env_steps=plan.prefill_env_steps
                                   + scale.learning_epochs * plan.env_steps_per_epoch)
    task = registry.get_task("point_u_maze")
    algo = registry.get_algorithm("crl")
    config = algo.config_cls(network=NetworkConfig(depth=4, width=64))
    start = time.perf_counter()
    compiled = compile_trainer(Trainer(task, algo, config, loop), jax.random.PRNGKey(0))
    state = compiled.prefill(compiled.init(jax.random.PRNGKey(0)))
    curve = []
    for _ in range(loop.num_epochs):
        state, _ = compiled.epoch(state)
        curve.append(float(np.mean(compiled.evaluate(state.algo, jax.random.PRNGKey(7))["time_at_goal"])))
    seconds = time.perf_counter() - start
    score = float(np.mean(curve[-3:]))
    judged = loop == base
    verdict = ("PASS" if score >= LEARNING_THRESHOLD else "FAIL") if judged else "not judged (shortened run)"
    table = Table("learning", ("task", "algo", "env_steps", "first_eval", "last3_mean", "threshold", "verdict",
                               "wall_s"))
    table.add("point_u_maze", "crl d4 w64", derive_plan(loop, task.spec).total_env_steps, curve[0], score,
              LEARNING_THRESHOLD, verdict, seconds)
    _progress(f"learning: time at goal per epoch {[round(c, 1) for c in curve]}")
    return table


def _progress(line: str) -> None:
    print(f"# {line}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gcrl_bench.benchmarks.gpu", description=(
        "Accelerator verification kit: env, learner and training throughput, peak memory and a short learning "
        "check on the first local device, one table per section."))
    parser.add_argument("--scale", choices=tuple(SCALES), default=None,
                        help="sizes: full (default on GPU/TPU), cpu (default on CPU), tiny (smallest check)")
    parser.add_argument("--cpu-scale", action="store_true", help="same as --scale cpu")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks of the env section (default: the scale's)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--json", type=Path, default=None, help="also write every table to this JSON file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the chosen sections, prints their tables on stdout and returns them (also written to ``--json``)."""
    args = parse_args(argv)
    if args.cpu_scale:
        if args.scale not in (None, "cpu"):
            raise ConfigError(f"--cpu-scale contradicts --scale {args.scale}; give one of them")
        args.scale = "cpu"
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    explicit = tuple(t.strip() for t in args.tasks.split(",")) if args.tasks else None
    for name in explicit or ():
        registry.task_spec(name)  # an unknown name: one line with the known ones
    # XLA reads its flags when the backend starts: an MJX task on a CPU needs its flag before that.
    xla_setup.configure_for(registry.task_spec(t) for t in (explicit or (_all_tasks() if args.scale == "full" else ())))

    import jax

    platform = jax.default_backend()
    scale_name = args.scale or ("cpu" if platform == "cpu" else "full")
    scale = SCALES[scale_name]
    tasks = explicit or scale.tasks or _all_tasks()
    device = jax.local_devices()[0]
    header = (f"gcrl-bench accelerator kit: scale {scale_name}, platform {platform}, device {device.device_kind}, "
              f"jax {jax.__version__}")
    print(header, flush=True)
    t0 = time.perf_counter()
    tables: list[Table] = []
    memory = Table("memory", ("after_section", "peak_bytes_in_use", "peak_gib"))
    runners = {"env": lambda: env_section(scale, tasks), "learner": lambda: learner_section(scale),
               "train": lambda: train_section(scale), "learning": lambda: learning_section(scale)}
    for name in sections:
        if name == "memory":
            continue
        start = time.perf_counter()
        table = runners[name]()
        tables.append(table)
        print(f"\n{table.text()}\n(section {name}: {time.perf_counter() - start:.1f} s)", flush=True)
        peak = _peak_bytes()
        memory.add(name, peak if peak is not None else "n/a on this platform",
                   peak / 2**30 if peak is not None else "n/a")
    if "memory" in sections:
        tables.append(memory)
        print(f"\n{memory.text()}", flush=True)
    total = time.perf_counter() - t0
    print(f"\ntotal: {total:.1f} s", flush=True)
    out = {"header": header, "scale": scale_name, "platform": platform, "device": device.device_kind,
           "total_s": total, "sections": {t.name: t.records() for t in tables}}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    try:
        main()
    except GcrlBenchError as exc:
        sys.exit(f"error: {exc}")
