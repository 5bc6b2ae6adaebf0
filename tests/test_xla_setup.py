"""gcrl_bench/xla_setup.py: the XLA flag for MJX tasks is set before JAX starts, and only for MJX tasks.

Each case runs in a fresh interpreter: XLA reads its flags once per process.
"""

import json
import os
import subprocess
import sys

import pytest

from gcrl_bench import xla_setup

SCRIPT = """
import json, os, sys
from gcrl_bench import registry, xla_setup
specs = [registry.task_spec(name) for name in sys.argv[1:]]
active = xla_setup.configure_for(specs)
import jax
jax.numpy.zeros(1).block_until_ready()  # the backend starts after the flag is set
print(json.dumps({"active": active, "flags": os.environ.get("XLA_FLAGS", "")}))
"""


def _run(tasks, flags=None):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if flags is not None:
        env["XLA_FLAGS"] = flags
    out = subprocess.run([sys.executable, "-c", SCRIPT, *tasks], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_mjx_task_sets_the_flag_and_keeps_other_flags():
    result = _run(["ant_u4_maze", "arm_push_easy"], flags="--xla_cpu_enable_fast_math=false")
    assert result["active"]
    assert result["flags"].split() == ["--xla_cpu_enable_fast_math=false", xla_setup.MJX_CPU_FLAG]


def test_spring_tasks_leave_flags_alone():
    assert _run(["ant_u4_maze", "humanoid"]) == {"active": False, "flags": ""}


@pytest.mark.parametrize("value", ["true", "false"])
def test_user_setting_wins(value):
    flag = f"--xla_cpu_enable_concurrency_optimized_scheduler={value}"
    result = _run(["arm_binpick_hard"], flags=flag)
    assert result == {"active": value == "false", "flags": flag}


def test_backend_already_started_warns(capsys):
    import jax

    jax.numpy.zeros(1).block_until_ready()
    saved = os.environ.get("XLA_FLAGS")
    try:
        os.environ.pop("XLA_FLAGS", None)
        from gcrl_bench import registry

        assert not xla_setup.configure_for([registry.task_spec("arm_push_easy")])
        assert "XLA_FLAGS" not in os.environ
    finally:
        if saved is not None:
            os.environ["XLA_FLAGS"] = saved
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and xla_setup.MJX_CPU_FLAG in err
