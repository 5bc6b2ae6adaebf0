"""The sanity-task learning run shared by the CRL and baseline learning tests."""

import jax
import numpy as np

from gcrl_bench import registry
from gcrl_bench.config import SANITY_LOOP, LoopConfig
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.training import Trainer, compile_trainer


def learning_curve(name: str) -> tuple[float, list[float], dict]:
    """Trains ``name`` on point_u_maze (depth 4, width 64, SANITY_LOOP, seed 0).

    Returns the untrained policy's time at goal, the time at goal after each epoch (deterministic policy,
    the same evaluation key every time) and the last epoch's train metrics (all checked finite).
    """
    task = registry.get_task("point_u_maze")
    algo = registry.get_algorithm(name)
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
    metrics = {k: float(v) for k, v in metrics.items() if not k.startswith("diag/")}  # diag/: per-block arrays
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    print(f"{name} time at goal: untrained {before:.1f}, curve {[round(c, 1) for c in curve]}")
    return before, curve, metrics
