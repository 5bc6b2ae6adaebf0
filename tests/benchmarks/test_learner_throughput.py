"""CRL learner throughput against this machine's XLA float32 matmul rate, measured in the same process.

Run with::

    pytest tests/benchmarks/test_learner_throughput.py -m benchmark --benchmark-enable -s

Setting: depth 16, width 256, batch 512, an ant-sized task (state 29, goal 2, action 8). The learner is a
jitted ``lax.scan`` over ``STEPS`` calls of ``crl.update`` on pre-generated batches, so no host work runs
between gradient steps. Its GFLOP/s come from an analytic count of the matmuls one update executes (see
:func:`update_matmul_flops`); the ceiling is the better of the 1024^3 and 4096^3 matmul rates (median of 10
after warm-up), measured before and after the learner. Target: the learner reaches 25% of the ceiling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from gcrl_bench.algorithms import crl
from gcrl_bench.benchmarks import timing
from gcrl_bench.interface import TaskSpec
from gcrl_bench.networks import NetworkConfig

SPEC = TaskSpec(
    name="ant_sized", state_size=29, goal_size=2, goal_indices=(0, 1), action_size=8, success_threshold=0.5,
    episode_length=1000, env_step_seconds=0.05, backend="none", benchmark=False,
)
CONFIG = crl.CRLConfig(network=NetworkConfig(depth=16, width=256))
BATCH = 512
STEPS = 20
ROUNDS = 5
TARGET_FRACTION = 0.25


def update_matmul_flops(config: crl.CRLConfig, spec: TaskSpec, batch: int) -> int:
    """Matmul FLOPs of one ``crl.update`` (:func:`gcrl_bench.benchmarks.timing.crl_update_matmul_flops`)."""
    return timing.crl_update_matmul_flops(config, spec, batch)


_median_seconds = timing.median_seconds
matmul_gflops = timing.matmul_gflops


def _learner():
    """A compiled ``STEPS``-step scan of updates and its arguments."""
    return timing.compile_crl_learner(CONFIG, SPEC, BATCH, STEPS)


@pytest.mark.benchmark
def test_crl_learner_throughput(benchmark):
    flops_per_step = update_matmul_flops(CONFIG, SPEC, BATCH)
    ceiling_before = {n: matmul_gflops(n) for n in (1024, 4096)}

    compiled, state, batches, compile_seconds = _learner()
    key = jax.random.PRNGKey(3)
    jax.block_until_ready(compiled(state, batches, key))  # warm-up
    _, metrics = compiled(state, batches, key)
    assert bool(jnp.all(jnp.isfinite(metrics["critic_loss"])))
    seconds = _median_seconds(lambda: compiled(state, batches, key), ROUNDS)

    ceiling_after = {n: matmul_gflops(n) for n in (1024, 4096)}
    learner = flops_per_step * STEPS / seconds / 1e9
    ceiling = max(*ceiling_before.values(), *ceiling_after.values())
    ratio = learner / ceiling
    print(
        f"\nCRL learner, depth {CONFIG.network.depth}, width {CONFIG.network.width}, batch {BATCH}, "
        f"{STEPS}-step scan (compile {compile_seconds:.1f} s): {seconds / STEPS * 1e3:.1f} ms per update, "
        f"{flops_per_step / 1e9:.2f} GFLOP per update, {learner:.1f} GFLOP/s"
    )
    print(
        "XLA float32 matmul GFLOP/s, before / after: "
        + ", ".join(f"{n}^3 {ceiling_before[n]:.1f} / {ceiling_after[n]:.1f}" for n in (1024, 4096))
    )
    print(f"learner / best matmul rate = {learner:.1f} / {ceiling:.1f} = {ratio:.1%} (target {TARGET_FRACTION:.0%})")

    benchmark.extra_info.update(
        learner_gflops=learner, matmul_gflops=ceiling, ratio=ratio, ms_per_update=seconds / STEPS * 1e3,
        gflop_per_update=flops_per_step / 1e9,
    )
    benchmark.pedantic(lambda: jax.block_until_ready(compiled(state, batches, key)), rounds=3, iterations=1)
    assert ratio >= TARGET_FRACTION, (
        f"learner {learner:.1f} GFLOP/s is {ratio:.1%} of the matmul rate {ceiling:.1f} GFLOP/s, "
        f"below the {TARGET_FRACTION:.0%} target"
    )
