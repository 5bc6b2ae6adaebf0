"""Env throughput of every benchmark task, beside JaxGCRL's figures on the same kind of machine.

Run: ``pytest tests/benchmarks -m benchmark --benchmark-enable -s -k env_throughput``.

Each task: one jitted program running a ``lax.scan`` of ``vmap(step)`` with uniform random actions, at 256
environments (100 steps) and at 1024 environments (20 steps, to stay cheap). Reported: env steps per second
(best of 3 runs after a warm-up call) and the compile time of that program (cold: the program is made
unique so the persistent cache cannot serve it). The final table prints every task beside JaxGCRL's
numbers (JaxGCRL 0.2.8 on brax 0.12.1, measured on a 2-vCPU machine like the one these figures come from) as
ratios ours / JaxGCRL, and each maze beside its open-floor body (ant, humanoid): the target for a maze is
at least half the open floor's env steps/s. Machines are shared and noisy: compare ratios measured side by
side, not absolute numbers across runs. MJX (arm) tasks run in a fresh interpreter with the XLA flag that
gcrl_bench.xla_setup gives MJX runs (it would slow the spring tasks measured in this process), one timed
run each. One extra row measures brax's own pipeline with every wall box in
the model (ant big maze, 10-step scan, since it is slow).
"""

import json
import os
import subprocess
import sys

import pytest

from gcrl_bench import registry, xla_setup
from gcrl_bench.benchmarks.timing import env_throughput as measure  # (env steps/s, cold compile s)
from gcrl_bench.tasks import ant_maze

SIZES = {256: 100, 1024: 20}
"""Parallel envs -> scan length of the measured program."""

# JaxGCRL env steps/s at 256 and 1024 envs and compile seconds (None: not measured / too slow to measure).
JAXGCRL: dict[str, tuple[float | None, float | None, float | None]] = {
    "ant": (13_312, 14_350, 10),
    "ant_big_maze": (218, None, 16),
    "humanoid": (4_411, 4_762, 25),
    "humanoid_u_maze": (231, None, 58),
    "arm_push_easy": (246, None, 69),
    "arm_binpick_hard": (53, None, None),
}
OPEN_FLOOR = {"ant": "ant", "humanoid": "humanoid"}
"""Body family prefix -> the open-floor task its mazes are compared with."""

_RESULTS: dict[tuple[str, int], tuple[float, float]] = {}


def _fmt(x, spec):
    return format(x, spec) if x is not None else "-".rjust(int(spec.split(".")[0] or 0))


def _ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


@pytest.fixture(scope="module")
def table():
    yield _RESULTS
    if not _RESULTS:
        return
    print(f"\n{'task':32s} {'envs':>5s} {'ours/s':>9s} {'JaxGCRL/s':>10s} {'ratio':>6s} "
          f"{'compile s':>10s} {'JaxGCRL s':>10s} {'vs open floor':>14s}")
    for (name, n_envs), (sps, compile_s) in _RESULTS.items():
        theirs = JAXGCRL.get(name, (None, None, None))
        their_sps = theirs[0] if n_envs == 256 else theirs[1]
        family = name.split("_")[0]
        base = _RESULTS.get((OPEN_FLOOR.get(family, ""), n_envs))
        vs_open = _ratio(sps, base[0]) if base and OPEN_FLOOR.get(family) != name else "-"
        print(f"{name:32s} {n_envs:5d} {sps:9.0f} {_fmt(their_sps, '10.0f')} {_ratio(sps, their_sps):>6s} "
              f"{compile_s:10.1f} {_fmt(theirs[2] if n_envs == 256 else None, '10.0f')} {vs_open:>14s}")


def _task_names() -> list[str]:
    return ["ant", *registry.benchmark_task_names()]


def _make(name: str):
    return ant_maze.make_open_floor_ant() if name == "ant" else registry.get_task(name)


_SUBPROCESS = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("env_throughput", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(module.measure(module._make(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
"""


def measure_isolated(name: str, n_envs: int, n_steps: int, repeats: int = 3) -> tuple[float, float]:
    """:func:`measure` in a fresh interpreter configured for the task by ``xla_setup`` (MJX tasks need an XLA
    flag that would slow the spring tasks measured in this process, and XLA reads flags once per process)."""
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    if registry.task_spec(name).backend == "mjx":
        env["XLA_FLAGS"] = xla_setup.MJX_CPU_FLAG
    out = subprocess.run([sys.executable, "-c", _SUBPROCESS, __file__, name, str(n_envs), str(n_steps), str(repeats)],
                         env=env, capture_output=True, text=True, check=True)
    sps, compile_s = json.loads(out.stdout.strip().splitlines()[-1])
    return sps, compile_s


@pytest.mark.benchmark
@pytest.mark.parametrize("n_envs", list(SIZES))
@pytest.mark.parametrize("name", _task_names())
def test_env_throughput(benchmark, table, name, n_envs):
    n_steps = SIZES[n_envs]
    if name != "ant" and registry.task_spec(name).backend == "mjx":
        sps, compile_s = benchmark.pedantic(measure_isolated, args=(name, n_envs, n_steps, 1), rounds=1, iterations=1)
    else:
        sps, compile_s = benchmark.pedantic(measure, args=(_make(name), n_envs, n_steps), rounds=1, iterations=1)
    benchmark.extra_info.update(env_steps_per_s=sps, compile_s=compile_s, n_envs=n_envs, n_steps=n_steps)
    table[(name, n_envs)] = (sps, compile_s)


@pytest.mark.benchmark
def test_env_throughput_brax_all_walls(benchmark, table):
    """brax's own pipeline with all 38 wall boxes of the big maze in the model (the slow path)."""
    task = ant_maze.make_ant_maze("ant_big_maze", collision="brax")
    sps, compile_s = benchmark.pedantic(measure, args=(task, 256, 10), kwargs=dict(repeats=1), rounds=1,
                                        iterations=1)
    benchmark.extra_info.update(env_steps_per_s=sps, compile_s=compile_s, n_envs=256, n_steps=10)
    table[("ant_big_maze (brax, all walls)", 256)] = (sps, compile_s)
