"""Contract tests over every registered task and algorithm, through the conformance kit that plugin
authors use (gcrl_bench.testing).

Tasks: pure-JAX tasks run the full check (1000 random-action steps in 64 environments). Physics tasks
(brax spring, mjx) are dominated by compilation and, on a CPU, by stepping: the default run checks them
on a short horizon (50 steps in 4 environments: spec, shapes, dtypes, goal slice, finiteness,
termination flags, reproducibility); the full 1000 x 64 NaN check runs under ``-m slow``. By default one
task per spring family is checked (ant_u4_maze, humanoid_u_maze; the other layouts run the same code and
have their own tests in test_ant_maze.py / test_humanoid.py); MJX tasks (the arm family) compile for
half a minute or more per program on a CPU, so their check runs under ``-m slow`` (the full horizon in a
subprocess with the XLA flag of gcrl_bench.xla_setup) and tests/test_arm.py covers their spec, resets
and models in the default run. Evaluation goal
sets share their task's physics and are checked by the same call (``reset(key, evaluation=True)``).

Algorithms: every algorithm takes 8 updates on batches that the real relabeller built from point_u_maze
data, with depth-4, width-32 networks.
"""

import os
import subprocess
import sys

import jax
import pytest

from gcrl_bench import registry, xla_setup
from gcrl_bench.testing import ConformanceError, check_algorithm, check_task, documented_fields

TASKS = sorted(registry.task_entries())
ALGORITHMS = sorted(registry.algorithm_entries())
CHEAP_BACKENDS = ("jax",)  # pure-JAX tasks: the full check costs seconds


def _is_cheap(name: str) -> bool:
    return registry.task_spec(name).backend in CHEAP_BACKENDS


SLOW_BACKENDS = ("mjx",)  # half a minute or more of XLA compile per task on a CPU
# Tasks of one family share their code and differ in layout; the default run checks one per spring family
# (every spring task under -m slow), the families' own test files cover each layout.
DEFAULT_SPRING = ("ant_u4_maze", "humanoid_u_maze")


def _task_param(name: str):
    backend = registry.task_spec(name).backend
    slow = backend in SLOW_BACKENDS or (backend == "spring" and name not in DEFAULT_SPRING)
    return pytest.param(name, marks=pytest.mark.slow) if slow else name


@pytest.mark.parametrize("name", [_task_param(n) for n in TASKS])
def test_task_contract(name):
    if _is_cheap(name):
        report = check_task(name, num_envs=64, num_steps=1000, key=jax.random.PRNGKey(1))
    else:
        report = check_task(name, num_envs=4, num_steps=50, key=jax.random.PRNGKey(1))
    assert report.name == name


_CHECK_IN_SUBPROCESS = """
import sys, jax
from gcrl_bench.testing import check_task
check_task(sys.argv[1], num_envs=int(sys.argv[2]), num_steps=int(sys.argv[3]), key=jax.random.PRNGKey(int(sys.argv[4])))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in TASKS if not _is_cheap(n)])
def test_task_contract_full_horizon(name):
    if registry.task_spec(name).backend != "mjx":
        check_task(name, num_envs=64, num_steps=1000, key=jax.random.PRNGKey(2))
        return
    # MJX at 64 envs in a nested scan wants the XLA flag of gcrl_bench.xla_setup, which XLA reads once per
    # process: run the same check in a fresh interpreter that has it.
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {xla_setup.MJX_CPU_FLAG}".strip()
    done = subprocess.run([sys.executable, "-c", _CHECK_IN_SUBPROCESS, name, "64", "1000", "2"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("name", ALGORITHMS)
def test_algorithm_contract(name):
    report = check_algorithm(name, task="point_u_maze", num_updates=8, key=jax.random.PRNGKey(3))
    assert report.num_updates == 8 and report.metrics


# -- the kit itself catches what it claims to catch -----------------------------------------------------


def test_kit_reports_a_task_that_mutates_itself():
    from gcrl_bench.tasks.point_maze import PointUMaze

    class Counting(PointUMaze):
        def step(self, state, action):
            self.calls = getattr(self, "calls", 0) + 1  # Python state: runs once, at trace time
            return super().step(state, action)

    with pytest.raises(ConformanceError, match=r"changed the task object's attribute\(s\) \['calls'\]"):
        check_task(Counting(), num_envs=4, num_steps=20)


def test_kit_reports_a_goal_that_drifts():
    from gcrl_bench.tasks.point_maze import PointUMaze

    class Drifting(PointUMaze):
        def step(self, state, action):
            nxt = super().step(state, action)
            return nxt.replace(obs=nxt.obs.at[-1].add(0.01))

    with pytest.raises(ConformanceError, match=r"changed the commanded goal .* at step 0 of env 0"):
        check_task(Drifting(), num_envs=4, num_steps=20)


def test_kit_reports_nan_with_step_and_env():
    import jax.numpy as jnp
    from gcrl_bench.tasks.point_maze import PointUMaze

    class Exploding(PointUMaze):
        def step(self, state, action):
            nxt = super().step(state, action)
            bad = (nxt.obs[0] > 0) & (action[0] > 0.9)  # some env, some step
            return nxt.replace(physics=jnp.where(bad, jnp.nan, nxt.physics))

    with pytest.raises(ConformanceError, match=r"NaN or Inf in the state at step \d+ of env \d+"):
        check_task(Exploding(), num_envs=8, num_steps=200)


def test_documented_fields_parses_google_style():
    class Config:
        """Summary.

        Attributes:
          alpha: first line
            continued: not a field
          beta, gamma: two at once
        Returns:
          nothing: not a field either
        """

    assert documented_fields(Config) == {"alpha", "beta", "gamma"}


def test_kit_reports_an_undocumented_field():
    import dataclasses

    from gcrl_bench.networks import NetworkConfig

    crl = registry.get_algorithm("crl")

    @dataclasses.dataclass(frozen=True)
    class Undocumented(crl.config_cls):
        """CRL with one more field.

        Attributes:
          network: as CRL.
        """

        extra: float = 1.0

    algorithm = dataclasses.replace(crl, name="crl_undocumented", config_cls=Undocumented)
    with pytest.raises(ConformanceError, match=r"does not document field\(s\) \['repr_dim'"):
        check_algorithm(algorithm, network=NetworkConfig(depth=4, width=16))
