"""Env throughput of the ant mazes against the same ant on open floor.

Run: ``pytest tests/benchmarks -m benchmark --benchmark-enable -s -k env_throughput``.

Each task: 256 environments, one jitted program running a 100-step ``lax.scan`` of ``vmap(step)`` with
uniform random actions. Reported: env steps per second (best of 3 runs after compilation) and the
compile time of that program (cold: the program is made unique so the persistent cache cannot serve it).
A final table prints every maze beside the open-floor ant with the ratios maze / open floor; the
target is a ratio >= 0.5 for throughput and <= 2 for compile time. One extra row measures brax's own
pipeline with every wall box in the model (big maze, 10-step scan, since it is slow).
"""

import time

import jax
import pytest

from gcrl_bench.tasks import ant_maze

N_ENVS = 256
N_STEPS = 100
MAZES = ["ant_u4_maze", "ant_u5_maze", "ant_big_maze", "ant_hardest_maze"]
_RESULTS: dict[str, tuple[float, float]] = {}


def measure(task, n_envs: int = N_ENVS, n_steps: int = N_STEPS, repeats: int = 3) -> tuple[float, float]:
    """(env steps per second, compile seconds) of a jitted n_steps scan over vmap(step), n_envs envs."""
    keys = jax.random.split(jax.random.PRNGKey(0), n_envs)
    states = jax.jit(jax.vmap(task.reset))(keys)

    # A constant unique to this call makes the program new to JAX's persistent compilation cache, so the
    # compile time below is a cold one (the flag that disables the cache is read once per process).
    salt = 2.0 + time.time_ns() % 1_000_003

    def run(states, key):
        def body(s, k):
            actions = jax.random.uniform(k, (n_envs, task.spec.action_size), minval=-1.0, maxval=1.0)
            actions = jax.numpy.where(actions > salt, 0.0, actions)  # never true: |actions| <= 1 < salt
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


@pytest.fixture(scope="module")
def table():
    yield _RESULTS
    if "ant" not in _RESULTS:
        return
    base_sps, base_compile = _RESULTS["ant"]
    print(f"\n{'task':28s} {'env steps/s':>12s} {'compile s':>10s} {'steps/s ratio':>14s} {'compile ratio':>14s}")
    for name, (sps, compile_s) in _RESULTS.items():
        print(f"{name:28s} {sps:12.0f} {compile_s:10.1f} {sps / base_sps:14.2f} {compile_s / base_compile:14.2f}")


@pytest.mark.benchmark
@pytest.mark.parametrize("name", ["ant", *MAZES])
def test_env_throughput(benchmark, table, name):
    task = ant_maze.make_open_floor_ant() if name == "ant" else ant_maze.make_ant_maze(name)
    sps, compile_s = benchmark.pedantic(measure, args=(task,), rounds=1, iterations=1)
    benchmark.extra_info.update(env_steps_per_s=sps, compile_s=compile_s, n_envs=N_ENVS, n_steps=N_STEPS)
    table[name] = (sps, compile_s)


@pytest.mark.benchmark
def test_env_throughput_brax_all_walls(benchmark, table):
    """brax's own pipeline with all 38 wall boxes of the big maze in the model (the slow path)."""
    task = ant_maze.make_ant_maze("ant_big_maze", collision="brax")
    sps, compile_s = benchmark.pedantic(measure, args=(task,), kwargs=dict(n_steps=10, repeats=1), rounds=1,
                                        iterations=1)
    benchmark.extra_info.update(env_steps_per_s=sps, compile_s=compile_s, n_envs=N_ENVS, n_steps=10)
    table["ant_big_maze (brax, all walls)"] = (sps, compile_s)
