"""Checkpoints: safe format, atomic writes, fallback to the previous good one, and a sweep killed twice
(SIGKILL mid-run and mid-checkpoint-write) that resumes to exactly the results of an uninterrupted one."""

import dataclasses
import hashlib
import json
import os
import signal
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax import serialization, struct

from gcrl_bench import checkpoint, registry, results
from gcrl_bench.checkpoint import CheckpointConfig
from gcrl_bench.errors import ConfigError
from gcrl_bench.executors import run_all
from gcrl_bench.config import derive_plan
from gcrl_bench.runner import ExecutionOptions, RunInterrupted, execute
from gcrl_bench.training import Trainer

from sweep_helpers import cli_args, grid, metrics, run_cli, scores

EVERY_EPOCH = ExecutionOptions(checkpoint=CheckpointConfig(every_epochs=1))


# -- the file format (no training) ------------------------------------------------------------------------

TEMPLATE = {"algo": {"w": jax.ShapeDtypeStruct((3, 2), jnp.float32)}, "key": jax.ShapeDtypeStruct((2,), jnp.uint32),
            "buffer": {"obs": jax.ShapeDtypeStruct((4, 2), jnp.float32)}}


def _state(value: float):
    return {"algo": {"w": jnp.full((3, 2), value)}, "key": jnp.array([1, 2], jnp.uint32),
            "buffer": {"obs": jnp.full((4, 2), value + 1)}}


def test_round_trip_keeps_the_newest_two(tmp_path):
    for epoch in (1, 2, 3):
        checkpoint.save(tmp_path, "run", epoch, _state(float(epoch)), {"rows": [{"epoch": epoch}]}, True)
    assert sorted(p.name for p in checkpoint.folder(tmp_path).iterdir()) == ["epoch-000002.ckpt", "epoch-000003.ckpt"]
    got = checkpoint.load_latest(tmp_path, "run", TEMPLATE)
    assert got.epoch == 3 and got.has_buffer and got.host == {"rows": [{"epoch": 3}]}
    state = checkpoint.restore_state(got, TEMPLATE)
    np.testing.assert_array_equal(state["algo"]["w"], np.full((3, 2), 3.0, np.float32))
    np.testing.assert_array_equal(state["buffer"]["obs"], np.full((4, 2), 4.0, np.float32))
    assert state["key"].dtype == np.uint32


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_newest_falls_back_to_previous(tmp_path, damage):
    checkpoint.save(tmp_path, "run", 1, _state(1.0), {}, True)
    newest = checkpoint.save(tmp_path, "run", 2, _state(2.0), {}, True)
    data = newest.read_bytes()
    newest.write_bytes({"truncate": data[: len(data) // 2], "flip": data[:-5] + bytes([data[-5] ^ 1]) + data[-4:],
                        "garbage": b"\x80\x04 not a checkpoint"}[damage])
    with pytest.warns(RuntimeWarning, match="skipping checkpoint .*epoch-000002"):
        got = checkpoint.load_latest(tmp_path, "run", TEMPLATE)
    assert got.epoch == 1
    checkpoint.discard_after(tmp_path, got.epoch)  # what a resumed run does: the damaged file goes
    assert sorted(p.name for p in checkpoint.folder(tmp_path).iterdir()) == ["epoch-000001.ckpt"]
    (checkpoint.folder(tmp_path) / "epoch-000001.ckpt").write_bytes(b"")
    with pytest.warns(RuntimeWarning):
        assert checkpoint.load_latest(tmp_path, "run", TEMPLATE) is None  # a fresh start


def test_other_runs_and_other_shapes_are_rejected(tmp_path):
    checkpoint.save(tmp_path, "run", 1, _state(1.0), {}, True)
    with pytest.warns(RuntimeWarning, match="not this run's"):
        assert checkpoint.load_latest(tmp_path, "other-run", TEMPLATE) is None
    wider = {**TEMPLATE, "algo": {"w": jax.ShapeDtypeStruct((3, 4), jnp.float32)}}
    with pytest.warns(RuntimeWarning, match=r"leaf \['algo'\]\['w'\]"):
        assert checkpoint.load_latest(tmp_path, "run", wider) is None


# -- which leaves are the replay buffer: the state's ``buffer`` field, whatever the leaves are called ------

BUFFER_KEYS = {".buffer.obs", ".buffer.action", ".buffer.traj_id", ".buffer.terminal", ".buffer.position",
               ".buffer.size"}


def _loop_state_shape():
    run = grid((1,))[0]
    trainer = Trainer(registry.get_task(run.task), registry.get_algorithm(run.algo), run.algo_config, run.loop)
    return jax.eval_shape(trainer.init, jax.random.PRNGKey(0))


def _filled(shape_tree, value):
    return jax.tree.map(lambda s: np.full(s.shape, value, s.dtype), shape_tree)


def _write_by_hand(path, run_id, epoch, leaves, has_buffer):
    """A checkpoint file assembled from the format description (not by checkpoint.save)."""
    meta = {"format": 1, "run_id": run_id, "epoch": epoch, "has_buffer": has_buffer, "host": {}}
    payload = serialization.msgpack_serialize({"meta": json.dumps(meta), "leaves": leaves})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GCRL-CKPT\n" + hashlib.sha256(payload).digest() + payload)


def test_buffer_bytes_of_a_real_loop_state():
    spec = registry.task_spec("point_u_maze")
    rows = 60 * 8  # max_replay_rows x num_envs of the tiny grid
    per_row = 4 * (spec.observation_size + spec.action_size) + 4 + 4  # float32 obs, action; int32 id; float32 end
    assert spec.observation_size == 6 and spec.action_size == 2
    assert checkpoint.buffer_bytes(_loop_state_shape()) == rows * per_row + 4 + 4  # + position, size


def test_a_loop_state_checkpoint_written_in_this_format_still_loads(tmp_path):
    """Key paths in the file are jax.tree_util.keystr of the LoopState; a file without the buffer is
    restored with the buffer taken from a fresh state."""
    template = _loop_state_shape()
    names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(template)[0]]
    assert BUFFER_KEYS <= set(names) and ".env_steps" in names
    stored = _filled(template, 3)
    leaves = {n: np.asarray(x) for n, x in zip(names, jax.tree.leaves(stored)) if n not in BUFFER_KEYS}
    _write_by_hand(checkpoint.folder(tmp_path) / "epoch-000004.ckpt", "run", 4, leaves, False)

    got = checkpoint.load_latest(tmp_path, "run", template)
    assert got.epoch == 4 and not got.has_buffer
    state = checkpoint.restore_state(got, template, fresh_buffer=_filled(template, 7))
    assert jax.tree.leaves(jax.tree.map(lambda x: int(np.max(x)), state.buffer)) == [7] * 6
    assert int(state.env_steps) == 3 and np.all(state.episode_step == 3) and np.all(state.env.obs == 3)

    checkpoint.save(tmp_path, "run", 5, stored, {}, True)  # save writes the same names, buffer included
    written = (checkpoint.folder(tmp_path) / "epoch-000005.ckpt").read_bytes()
    content = serialization.msgpack_restore(written[len(checkpoint.MAGIC) + 32:])
    assert sorted(content["leaves"]) == sorted(names)


@struct.dataclass
class LookAlikeState:
    """``buffer`` holds a leaf named ``rows``; ``buffer_stats`` is not part of the buffer."""

    algo: Any
    buffer: Any
    buffer_stats: Any


def test_the_buffer_field_not_the_word_buffer_selects_what_is_left_out(tmp_path):
    state = LookAlikeState(algo={"w": jnp.full((2,), 1.0)}, buffer={"rows": jnp.full((5, 2), 2.0)},
                           buffer_stats=jnp.full((3,), 3.0))
    assert checkpoint.buffer_bytes(state) == 5 * 2 * 4
    path = checkpoint.save(tmp_path, "run", 1, state, {}, False)
    content = serialization.msgpack_restore(path.read_bytes()[len(checkpoint.MAGIC) + 32:])
    assert sorted(content["leaves"]) == [".algo['w']", ".buffer_stats"]
    assert ".buffer_stats".startswith(".buffer")  # the former prefix rule would have left it out too

    template = jax.eval_shape(lambda: state)
    fresh = LookAlikeState(algo={"w": jnp.zeros((2,))}, buffer={"rows": jnp.full((5, 2), 9.0)},
                           buffer_stats=jnp.zeros((3,)))
    got = checkpoint.restore_state(checkpoint.load_latest(tmp_path, "run", template), template, fresh_buffer=fresh)
    np.testing.assert_array_equal(got.buffer["rows"], np.full((5, 2), 9.0, np.float32))
    np.testing.assert_array_equal(got.buffer_stats, np.full((3,), 3.0, np.float32))
    np.testing.assert_array_equal(got.algo["w"], np.full((2,), 1.0, np.float32))


@dataclasses.dataclass(frozen=True)
class PositionalState:
    """A state flattened without field names: its key paths are ``[0]...`` and ``[1]...``."""

    algo: Any
    buffer: Any


jax.tree_util.register_pytree_with_keys(
    PositionalState,
    lambda s: (((jax.tree_util.SequenceKey(0), s.algo), (jax.tree_util.SequenceKey(1), s.buffer)), None),
    lambda _, children: PositionalState(*children))


def test_buffer_leaves_without_buffer_in_their_key_path(tmp_path):
    state = PositionalState(algo={"w": jnp.full((2,), 1.0)}, buffer=(jnp.full((4, 3), 2.0, jnp.float32),
                                                                      jnp.zeros((), jnp.int32)))
    names = [n for n, _ in checkpoint.leaf_paths(state)]
    assert names == ["[0]['w']", "[1][0]", "[1][1]"] and not any("buffer" in n for n in names)
    assert checkpoint.buffer_bytes(state) == 4 * 3 * 4 + 4
    path = checkpoint.save(tmp_path, "run", 1, state, {}, False)
    content = serialization.msgpack_restore(path.read_bytes()[len(checkpoint.MAGIC) + 32:])
    assert sorted(content["leaves"]) == ["[0]['w']"]

    template = jax.eval_shape(lambda: state)
    fresh = PositionalState(algo={"w": jnp.zeros((2,))}, buffer=(jnp.full((4, 3), 5.0), jnp.array(8, jnp.int32)))
    got = checkpoint.restore_state(checkpoint.load_latest(tmp_path, "run", template), template, fresh_buffer=fresh)
    np.testing.assert_array_equal(got.algo["w"], np.full((2,), 1.0, np.float32))
    np.testing.assert_array_equal(got.buffer[0], np.full((4, 3), 5.0, np.float32))
    assert int(got.buffer[1]) == 8


def test_a_checkpoint_without_buffer_needs_a_fresh_one(tmp_path):
    state = PositionalState(algo={"w": jnp.ones((2,))}, buffer=(jnp.ones((4, 3)),))
    checkpoint.save(tmp_path, "run", 1, state, {}, False)
    template = jax.eval_shape(lambda: state)
    with pytest.raises(ValueError, match="has no replay buffer: pass fresh_buffer"):
        checkpoint.restore_state(checkpoint.load_latest(tmp_path, "run", template), template)


def test_bad_checkpoint_interval_is_one_clear_error():
    with pytest.raises(ConfigError, match="--checkpoint-every"):
        CheckpointConfig(every_epochs=-1)


# -- real runs -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny grid run uninterrupted, in this process, with a checkpoint after every epoch."""
    out = tmp_path_factory.mktemp("reference")
    assert run_all(grid(), out, EVERY_EPOCH) == []
    results.write_scores_csv(out)
    return out


def _run_dir(out, seed):
    return out / "runs" / grid((seed,))[0].run_id


def test_sweep_killed_twice_finishes_with_the_uninterrupted_results(tmp_path, reference):
    out = tmp_path / "r"
    args = cli_args(out, "0,1", "--checkpoint-every", "1")
    s0, s1 = _run_dir(out, 0), _run_dir(out, 1)

    # 1. SIGKILL while the first checkpoint of run s1 is written (after the temp file, before the rename).
    p = run_cli(*args, env={checkpoint.FAULT_ENV: "kill-during-write:3"})
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert (s0 / "summary.json").exists() and not (s1 / "summary.json").exists()
    assert [f.name for f in checkpoint.folder(s1).iterdir() if f.suffix == ".ckpt"] == []  # only the temp file
    assert len(metrics(s1)) == 1
    s0_files = {f.name: f.read_bytes() for f in s0.iterdir()}

    # 2. SIGKILL in the middle of run s1: its epoch-2 checkpoint is written, epoch 3 is not done.
    p = run_cli(*args, env={checkpoint.FAULT_ENV: "kill-after-write:2"})
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert "1 already complete" in p.stdout
    assert sorted(f.name for f in checkpoint.folder(s1).glob("*.ckpt")) == ["epoch-000001.ckpt", "epoch-000002.ckpt"]

    # 3. The same command again: s0 is not redone, s1 resumes after epoch 2 and finishes.
    p = run_cli(*args)
    assert p.returncode == 0, p.stderr
    assert "resumed after epoch 2/3" in p.stderr
    assert {f.name: f.read_bytes() for f in s0.iterdir()} == s0_files
    assert not checkpoint.folder(s1).exists()
    summary = json.loads((s1 / "summary.json").read_text())
    assert summary["resumed"] and summary["refill_env_steps"] == 0 and summary["num_evaluations"] == 3

    # Bitwise: every metric of every epoch, the final parameters and the score table.
    for seed in (0, 1):
        assert metrics(_run_dir(out, seed)) == metrics(_run_dir(reference, seed))
        assert (_run_dir(out, seed) / "params.msgpack").read_bytes() == \
            (_run_dir(reference, seed) / "params.msgpack").read_bytes()
    assert scores(out) == scores(reference)
    results.validate_directory(out)


def _sigterm_after_first_epoch(run, out, options):
    """Runs until SIGTERM arrives during epoch 1: the run finishes the epoch, checkpoints and stops."""

    def on_epoch(report):
        if report.epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(RunInterrupted, match=r"^SIGTERM: run .* stopped after epoch 1/3, checkpoint written; rerun"):
        execute(run, out, on_epoch=on_epoch, options=options)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again


def test_sigterm_then_resume_without_buffer_refills_and_says_so(tmp_path, reference):
    run = grid((1,))[0]
    no_buffer = ExecutionOptions(checkpoint=CheckpointConfig(every_epochs=0, buffer_max_bytes=0))
    _sigterm_after_first_epoch(run, tmp_path, no_buffer)
    folder = tmp_path / "runs" / run.run_id
    assert [p.name for p in checkpoint.folder(folder).glob("*.ckpt")] == ["epoch-000001.ckpt"]
    with pytest.warns(RuntimeWarning, match="no replay buffer; refilling it"):
        summary = execute(run, tmp_path, options=no_buffer)
    plan = derive_plan(run.loop, registry.task_spec(run.task))
    assert summary["refill_env_steps"] == plan.prefill_env_steps
    assert summary["env_steps"] == plan.total_env_steps
    assert [r["epoch"] for r in results.read_metrics(folder / "metrics.jsonl")] == [1, 2, 3]
    assert metrics(folder)[0] == metrics(_run_dir(reference, 1))[0]  # epoch 1 came from before the interruption


def test_a_diverged_run_is_stopped_and_recorded_with_its_last_good_metrics(tmp_path, reference):
    """Parameters that became NaN (here: in the checkpoint an interrupted attempt left) stop the run at the
    next epoch; failure.json names the reason and keeps the last good metrics; the sweep goes on."""
    bad, good = grid((0, 1))
    folder = tmp_path / "runs" / bad.run_id
    _sigterm_after_first_epoch(bad, tmp_path, EVERY_EPOCH)
    ckpt = checkpoint.folder(folder) / "epoch-000001.ckpt"
    content = serialization.msgpack_restore(ckpt.read_bytes()[len(checkpoint.MAGIC) + 32:])
    meta = json.loads(content["meta"])
    leaves = {k: (v * np.nan if k.startswith(".algo") and v.dtype == np.float32 else v)
              for k, v in content["leaves"].items()}
    payload = serialization.msgpack_serialize({"meta": content["meta"], "leaves": leaves})
    ckpt.write_bytes(checkpoint.MAGIC + hashlib.sha256(payload).digest() + payload)

    failures = run_all([bad, good], tmp_path, EVERY_EPOCH)
    assert len(failures) == 1 and bad.run_id in failures[0] and "RunDiverged" in failures[0]
    record = json.loads((folder / "failure.json").read_text())
    assert record["reason"] == "diverged" and record["epoch"] == 2 and "parameters" in record["error"]
    assert record["last_good"] == meta["host"]["rows"][0] and record["evaluations"] == 1
    assert record["diverged_row"]["train/critic_loss"] == "nan"
    assert (record["algo"], record["task"], record["depth"], record["width"], record["seed"]) == \
        ("crl", "point_u_maze", 4, 16, 0)
    assert not (folder / "summary.json").exists()
    assert results.read_metrics(folder / "metrics.jsonl") == meta["host"]["rows"]  # the bad epoch is not recorded
    assert metrics(tmp_path / "runs" / good.run_id) == metrics(_run_dir(reference, 1))
