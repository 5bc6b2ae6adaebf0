"""What the per-epoch diagnostics (gcrl_bench.diagnostics) add to a compiled epoch, side by side.

Run with::

    pytest tests/benchmarks/test_diagnostics_overhead.py -m benchmark -s

Setting: CRL at depth 64, width 256, batch 256 on point_u_maze, one training step of ``UPDATES`` gradient
steps per epoch (environment variable GCRL_BENCH_DIAG_UPDATES, default 100; the paper's loop takes 800 per
training step and many training steps per epoch, so its overhead is smaller still). The same epoch is
compiled with and without diagnostics and timed alternately (median of ``ROUNDS`` after a warm-up), and the
ratio printed. The diagnostics (sampling the probe batch, the gradients of the algorithm's losses, a
forward pass of each network layer by layer, the norms and an SVD) cost about as much as four gradient
steps on a 2-core CPU, so the ratio is about 1 + 4 / UPDATES. Target: at most 1.05.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time

import jax
import pytest

from gcrl_bench import registry
from gcrl_bench.config import LoopConfig
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.training import Trainer, compile_trainer

UPDATES = int(os.environ.get("GCRL_BENCH_DIAG_UPDATES", "100"))
ROUNDS = 3
TARGET_RATIO = 1.05


def _epoch_seconds(trainers: dict[str, Trainer]) -> dict[str, float]:
    """Median seconds of one compiled epoch per trainer, the trainers timed in turn each round."""
    runs = {}
    for name, trainer in trainers.items():
        compiled = compile_trainer(trainer, jax.random.PRNGKey(0))
        state = compiled.prefill(compiled.init(jax.random.PRNGKey(0)))
        state, _ = compiled.epoch(state)  # warm-up
        runs[name] = [compiled, jax.block_until_ready(state)]
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(ROUNDS):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run[1], metrics = run[0].epoch(run[1])
            jax.block_until_ready((run[1], metrics))
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


@pytest.mark.benchmark
def test_diagnostics_add_at_most_five_percent_to_an_epoch_at_depth_64():
    task = registry.get_task("point_u_maze")
    algo = registry.get_algorithm("crl")
    config = algo.config_cls(network=NetworkConfig(depth=64, width=256))
    loop = LoopConfig(total_env_steps=6400 + 640 * (ROUNDS + 2), num_epochs=ROUNDS + 2, num_envs=64,
                      unroll_length=10, batch_size=256, updates_per_step=UPDATES, windows_per_step=1024,
                      min_replay_rows=100, max_replay_rows=1000, num_eval_envs=8)
    on = Trainer(task, algo, config, loop, diagnostics=True)
    seconds = _epoch_seconds({"with": on, "without": dataclasses.replace(on, diagnostics=False)})
    ratio = seconds["with"] / seconds["without"]
    print(f"\ndepth 64 width 256, {UPDATES} gradient steps per epoch: epoch {seconds['without']:.3f} s without "
          f"diagnostics, {seconds['with']:.3f} s with; ratio {ratio:.4f}")
    assert ratio <= TARGET_RATIO, f"diagnostics add {100 * (ratio - 1):.1f}% to an epoch (target <= 5%)"
