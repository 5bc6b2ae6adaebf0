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

import statistics
import time

import jax
import jax.numpy as jnp
import pytest

from gcrl_bench.algorithms import crl
from gcrl_bench.interface import TaskSpec, Transition
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


def _dense_flops(batch: int, dims: list[tuple[int, int]]) -> int:
    return sum(2 * batch * m * n for m, n in dims)


def update_matmul_flops(config: crl.CRLConfig, spec: TaskSpec, batch: int) -> int:
    """Matmul FLOPs (2 per multiply-add) of one ``crl.update``, counting what it executes.

    A Dense layer (batch x m) @ (m x n) costs F = 2 batch m n forward; its backward costs F for the weight
    gradient and F for the input gradient. Per update:

    - actor on [s, g]: forward, weight and input gradients (no input gradient into the data): 3F - first layer;
    - phi(s, a~) in the actor loss: forward and input gradients only (the critic is fixed; the gradient
      reaches a~): 2F;
    - phi(s, a) and psi(g) in the critic loss: 3F - first layer each (psi(g) is reused by the actor loss);
    - the L2 energy's gradient: two (B x B) @ (B x R) matmuls.
    """
    w, depth = config.network.width, config.network.depth

    def layers(in_dim: int, out_dim: int) -> list[tuple[int, int]]:
        return [(in_dim, w)] + [(w, w)] * depth + [(w, out_dim)]

    actor = layers(spec.observation_size, 2 * spec.action_size)
    phi = layers(spec.state_size + spec.action_size, config.repr_dim)
    psi = layers(spec.goal_size, config.repr_dim)

    def trained(dims):  # forward + weight gradients + input gradients of every layer but the first
        return 3 * _dense_flops(batch, dims) - _dense_flops(batch, dims[:1])

    fixed_phi = 2 * _dense_flops(batch, phi)
    energy_backward = 2 * 2 * batch * batch * config.repr_dim
    return trained(actor) + fixed_phi + trained(phi) + trained(psi) + energy_backward


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(n: int) -> float:
    """Median GFLOP/s of a jitted float32 (n x n) @ (n x n) over 10 calls after 3 warm-up calls."""
    ka, kb = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    b = jax.random.normal(kb, (n, n), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y)
    for _ in range(3):
        jax.block_until_ready(matmul(a, b))
    return 2 * n**3 / _median_seconds(lambda: matmul(a, b), 10) / 1e9


def _learner():
    """A compiled ``STEPS``-step scan of updates and its arguments."""
    state = crl.init(CONFIG, SPEC, jax.random.PRNGKey(0))
    ks = jax.random.split(jax.random.PRNGKey(1), 3)
    shape = (STEPS, BATCH)
    zeros = jnp.zeros(shape + (SPEC.state_size,))
    batches = Transition(
        state=jax.random.normal(ks[0], shape + (SPEC.state_size,)),
        action=jax.random.uniform(ks[1], shape + (SPEC.action_size,), minval=-1, maxval=1),
        goal=jax.random.normal(ks[2], shape + (SPEC.goal_size,)),
        next_state=zeros, future_state=zeros, reward=jnp.zeros(shape), discount=jnp.ones(shape),
    )

    @jax.jit
    def train(state, batches, key):
        def step(state, inputs):
            batch, step_key = inputs
            return crl.update(CONFIG, state, batch, step_key)

        return jax.lax.scan(step, state, (batches, jax.random.split(key, STEPS)))

    start = time.perf_counter()
    compiled = train.lower(state, batches, jax.random.PRNGKey(2)).compile()
    compile_seconds = time.perf_counter() - start
    return compiled, state, batches, compile_seconds


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
