"""One run data-parallel over two (forced host) CPU devices matches the single-device run, and which
LoopState leaves are split follows the state's fields, never the text of leaf names."""

import dataclasses
import json
import os
import subprocess
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from jax.sharding import PartitionSpec as P

from pathlib import Path
from gcrl_bench import registry, sharding, state_parts
from gcrl_bench.errors import ConfigError
from gcrl_bench.runner import ExecutionOptions, execute
from gcrl_bench.sharding import parse_devices
from gcrl_bench.training import Trainer

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


# -- which leaves are split, from the state's fields (no training) ---------------------------------------

def _loop_state_shape():
    run = grid((1,))[0]
    trainer = Trainer(registry.get_task(run.task), registry.get_algorithm(run.algo), run.algo_config, run.loop)
    return jax.eval_shape(trainer.init, jax.random.PRNGKey(0))


def _specs(state_shape) -> dict[str, P]:
    shardings = sharding.state_shardings(sharding.make_mesh(1), state_shape)
    names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state_shape)[0]]
    return dict(zip(names, (s.spec for s in jax.tree.leaves(shardings)), strict=True))


def test_buffer_flags_mark_exactly_the_buffer_leaves_of_a_loop_state():
    state = _loop_state_shape()
    flags = state_parts.buffer_flags(state)
    assert type(flags) is type(state)
    assert jax.tree.leaves(flags.buffer) == [True] * 6  # obs, action, traj_id, terminal, position, size
    others = [jax.tree.leaves(getattr(flags, f.name)) for f in dataclasses.fields(state) if f.name != "buffer"]
    assert sum(len(x) for x in others) > 100 and not any(any(x) for x in others)
    assert sum(jax.tree.leaves(flags)) == 6


def test_a_real_loop_state_is_split_as_before():
    specs = _specs(_loop_state_shape())
    split_env = {".env.physics", ".env.obs", ".env.terminated", ".first_env.physics", ".first_env.obs",
                 ".first_env.terminated", ".episode_step", ".traj_id"}
    split_rows = {".buffer.obs", ".buffer.action", ".buffer.traj_id", ".buffer.terminal"}
    assert {n for n, s in specs.items() if s == P("data")} == split_env
    assert {n for n, s in specs.items() if s == P(None, "data")} == split_rows
    replicated = set(specs) - split_env - split_rows
    assert {n for n in replicated if not n.startswith(".algo")} == {".buffer.position", ".buffer.size", ".key",
                                                                    ".env_steps"}
    assert all(specs[n] == P() for n in replicated)


@struct.dataclass
class LookAlikeState:
    """A loop state whose leaf names mislead any rule on key path text.

    ``buffer`` holds leaves named ``rows`` / ``cursor``; ``buffer_stats`` and ``env_noise`` are neither
    buffer nor environment fields although their names begin like those of one."""

    env: Any
    first_env: Any
    episode_step: Any
    traj_id: Any
    buffer: Any
    buffer_stats: Any
    env_noise: Any


def _look_alike(n=4, t=6):
    return LookAlikeState(env={"pos": jnp.zeros((n, 3))}, first_env={"pos": jnp.zeros((n, 3))},
                          episode_step=jnp.zeros((n,), jnp.int32), traj_id=jnp.zeros((n,), jnp.int32),
                          buffer={"rows": jnp.zeros((t, n, 2)), "cursor": jnp.zeros((), jnp.int32)},
                          buffer_stats=jnp.zeros((t, n)), env_noise=jnp.zeros((n,)))


def test_fields_not_names_decide_the_split():
    state = _look_alike()
    flags = state_parts.buffer_flags(state)
    assert flags.buffer == {"rows": True, "cursor": True}
    assert not flags.buffer_stats and not flags.env_noise and not any(jax.tree.leaves(flags.env))
    specs = _specs(state)
    assert specs == {".env['pos']": P("data"), ".first_env['pos']": P("data"), ".episode_step": P("data"),
                     ".traj_id": P("data"), ".buffer['cursor']": P(), ".buffer['rows']": P(None, "data"),
                     ".buffer_stats": P(), ".env_noise": P()}
    # The former rule on key path prefixes gets three of these wrong:
    old_rows = {n for n in specs if n.startswith((".buffer.obs", ".buffer.action", ".buffer.traj_id",
                                                  ".buffer.terminal"))}
    old_env = {n for n in specs if n.startswith((".env", ".first_env", ".episode_step", ".traj_id"))}
    old_buffer = {n for n in specs if n.startswith(".buffer")}
    assert ".buffer['rows']" not in old_rows and ".env_noise" in old_env and ".buffer_stats" in old_buffer


def test_field_flags_needs_the_named_fields():
    with pytest.raises(AttributeError):
        state_parts.field_flags(_look_alike(), "replay")
    with pytest.raises(TypeError, match="give a dataclass pytree"):
        state_parts.buffer_flags([jnp.zeros(3)])
