"""End to end: CRL learns the sanity task within a CPU budget (real training, real evaluation)."""

import dataclasses

import jax
import numpy as np

from gcrl_bench import registry
from gcrl_bench.config import SANITY_LOOP, LoopConfig
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.training import Trainer, compile_trainer

# Measured on a 2-core CPU (width 64, depth 4, 0.2M env steps, 12,000 gradient steps, ~1.5 min):
# time at goal rises from ~0.5 (the untrained deterministic policy)
# to ~65-70 of 100 steps, and success_any from ~0.5 to ~0.8.
MIN_TIME_AT_GOAL = 55.0
MIN_GAIN = 30.0


def test_crl_learns_point_u_maze():
    task = registry.get_task("point_u_maze")
    algo = registry.get_algorithm("crl")
    config = algo.config_cls(network=NetworkConfig(depth=4, width=64))
    loop = LoopConfig(**SANITY_LOOP)
    compiled = compile_trainer(Trainer(task, algo, config, loop), jax.random.PRNGKey(0))
    state = compiled.init(jax.random.PRNGKey(0))
    before = float(np.mean(compiled.evaluate(state.algo, jax.random.PRNGKey(7))["time_at_goal"]))
    state = compiled.prefill(state)
    curve = []
    for _ in range(loop.num_epochs):
        state, metrics = compiled.epoch(state)
        curve.append(float(np.mean(compiled.evaluate(state.algo, jax.random.PRNGKey(7))["time_at_goal"])))
    after = float(np.mean(curve[-3:]))
    print(f"time at goal: untrained {before:.1f}, curve {[round(c, 1) for c in curve]}")
    assert np.isfinite(float(metrics["critic_loss"]))
    assert after >= MIN_TIME_AT_GOAL, curve
    assert after - before >= MIN_GAIN, (before, curve)
