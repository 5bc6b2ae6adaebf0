"""One run data-parallel over two (forced host) CPU devices matches the single-device run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pathlib import Path
from gcrl_bench.errors import ConfigError
from gcrl_bench.runner import ExecutionOptions, execute
from gcrl_bench.sharding import parse_devices

from sweep_helpers import grid, metrics

TWO_DEVICES = """
import json, sys
import jax
jax.config.update("jax_compilation_cache_dir", sys.argv[2])
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from sweep_helpers import grid
from gcrl_bench import runner
assert jax.local_device_count() == 2
run = grid((1,))[0]
runner.execute(run, Path(sys.argv[1]), options=runner.ExecutionOptions(devices=2))
(compiled,) = runner._COMPILED.values()
state = compiled.init(jax.random.PRNGKey(0))
hlo = compiled.epoch.as_text()
print(json.dumps({
    "env_split": [len(x.sharding.device_set) for x in (state.env.obs, state.buffer.obs)],
    "env_shard_shape": state.env.obs.sharding.shard_shape(state.env.obs.shape)[0],
    "params_replicated": all(x.sharding.is_fully_replicated for x in jax.tree.leaves(state.algo)),
    "all_reduce": "all-reduce" in hlo,
}))
"""


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    execute(grid((1,))[0], out)
    return out


def test_two_devices_match_one_device(tmp_path, one_device):
    import jax

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    p = subprocess.run([sys.executable, "-c", TWO_DEVICES, str(tmp_path), jax.config.jax_compilation_cache_dir,
                        os.path.dirname(__file__)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    layout = json.loads(p.stdout.strip().splitlines()[-1])
    assert layout == {"env_split": [2, 2], "env_shard_shape": 4, "params_replicated": True, "all_reduce": True}
    run_id = grid((1,))[0].run_id
    got, want = metrics(tmp_path / "runs" / run_id), metrics(one_device / "runs" / run_id)
    assert [r["env_steps"] for r in got] == [r["env_steps"] for r in want]
    for a, b in zip(got, want):
        np.testing.assert_allclose([a[k] for k in sorted(a)], [b[k] for k in sorted(a)], rtol=1e-4, atol=1e-5)
    config = json.loads((tmp_path / "runs" / run_id / "config.json").read_text())
    assert config["hardware"]["devices_used"] == 2


def test_devices_option():
    assert parse_devices("all") == 0 and parse_devices("2") == 2
    with pytest.raises(ConfigError, match="--devices 'x'"):
        parse_devices("x")
    with pytest.raises(ConfigError, match="this machine has"):
        execute(grid((1,))[0], Path("/nonexistent"), options=ExecutionOptions(devices=64))
