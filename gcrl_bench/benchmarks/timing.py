"""Timing primitives: env stepping, the CRL learner, matmul rates, compiled-program timing.

Every measurement times a compiled program after a warm-up call (so it excludes compilation, which is
reported on its own) and waits for the device with ``jax.block_until_ready``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from gcrl_bench.interface import Task, TaskSpec, Transition


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of ``repeats`` calls of ``fn`` (each waited for with ``block_until_ready``)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def env_throughput(task: Task, n_envs: int, n_steps: int, repeats: int = 3) -> tuple[float, float]:
    """(env steps per second, compile seconds) of one jitted program: a ``lax.scan`` of ``n_steps`` calls of
    ``vmap(task.step)`` over ``n_envs`` environments with uniform random actions in [-1, 1].

    The rate is n_envs x n_steps over the best of ``repeats`` timed calls after one warm-up call. The compile
    time is a cold one: a constant unique to this call makes the program new to JAX's persistent cache.
    """
    keys = jax.random.split(jax.random.PRNGKey(0), n_envs)
    states = jax.jit(jax.vmap(task.reset))(keys)
    salt = 2.0 + time.time_ns() % 1_000_003

    def run(states, key):
        def body(s, k):
            actions = jax.random.uniform(k, (n_envs, task.spec.action_size), minval=-1.0, maxval=1.0)
            actions = jnp.where(actions > salt, 0.0, actions)  # never true: |actions| <= 1 < salt
            return jax.vmap(task.step)(s, actions), None

        return jax.lax.scan(body, states, jax.random.split(key, n_steps))[0]

    start = time.perf_counter()
    compiled = jax.jit(run).lower(states, jax.random.PRNGKey(1)).compile()
    compile_s = time.perf_counter() - start
    states = jax.block_until_ready(compiled(states, jax.random.PRNGKey(1)))
    best = float("inf")
    for r in range(repeats):
        start = time.perf_counter()
        states = jax.block_until_ready(compiled(states, jax.random.PRNGKey(2 + r)))
        best = min(best, time.perf_counter() - start)
    return n_envs * n_steps / best, compile_s


def matmul_gflops(n: int, repeats: int = 10) -> float:
    """Median GFLOP/s (2 n^3 per call) of a jitted float32 (n x n) @ (n x n), after 3 warm-up calls."""
    ka, kb = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    b = jax.random.normal(kb, (n, n), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y)
    for _ in range(3):
        jax.block_until_ready(matmul(a, b))
    return 2 * n**3 / median_seconds(lambda: matmul(a, b), repeats) / 1e9


def _dense_flops(batch: int, dims: list[tuple[int, int]]) -> int:
    return sum(2 * batch * m * n for m, n in dims)


def crl_update_matmul_flops(config, spec: TaskSpec, batch: int) -> int:
    """Matmul FLOPs (2 per multiply-add) of one ``crl.update`` (a CRLConfig ``config``), counting what it executes.

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


def random_batches(spec: TaskSpec, steps: int, batch: int, key: jax.Array) -> Transition:
    """(steps, batch, ...) Transitions of random states, actions in [-1, 1] and goals (learner input only)."""
    ks = jax.random.split(key, 3)
    shape = (steps, batch)
    zeros = jnp.zeros(shape + (spec.state_size,))
    return Transition(
        state=jax.random.normal(ks[0], shape + (spec.state_size,)),
        action=jax.random.uniform(ks[1], shape + (spec.action_size,), minval=-1, maxval=1),
        goal=jax.random.normal(ks[2], shape + (spec.goal_size,)),
        next_state=zeros, future_state=zeros, reward=jnp.zeros(shape), discount=jnp.ones(shape),
    )


def compile_crl_learner(config, spec: TaskSpec, batch: int, steps: int):
    """A compiled ``lax.scan`` of ``steps`` calls of ``crl.update`` on pre-generated batches (no host work
    between gradient steps).

    Returns:
      (compiled, state, batches, compile_seconds): ``compiled(state, batches, key)`` returns the final state
      and the (steps,) metrics.
    """
    from gcrl_bench.algorithms import crl

    state = crl.init(config, spec, jax.random.PRNGKey(0))
    batches = random_batches(spec, steps, batch, jax.random.PRNGKey(1))

    @jax.jit
    def train(state, batches, key):
        def step(state, inputs):
            b, step_key = inputs
            return crl.update(config, state, b, step_key)

        return jax.lax.scan(step, state, (batches, jax.random.split(key, steps)))

    start = time.perf_counter()
    compiled = train.lower(state, batches, jax.random.PRNGKey(2)).compile()
    return compiled, state, batches, time.perf_counter() - start
