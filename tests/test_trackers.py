"""Experiment trackers: what a tracker writes is read back from its own files (TensorBoard event files, W&B's
offline run log), with the steps and values of the rows logged, also across a resume; and a real run with
``--logger`` mirrors every metrics.jsonl row exactly once."""

import json
import os
import signal
import struct
import sys
import time

import numpy as np
import pytest

from gcrl_bench.checkpoint import CheckpointConfig
from gcrl_bench.cli import main
from gcrl_bench.errors import ConfigError, MissingExtraError
from gcrl_bench.runner import ExecutionOptions, RunInterrupted, execute
from gcrl_bench.trackers import (RunMirror, TensorBoardTracker, WandbTracker, log_row, make_tracker, mirrored,
                                 read_scalars, wandb_run_id)

from sweep_helpers import cli_args, grid

RUN_ID = "crl__point_u_maze__d4_w16_s0__0123456789"
CONFIG = {"algo": "crl", "task": "point_u_maze", "seed": 0}


def row(epoch: int, time_at_goal: float) -> dict:
    """A metrics.jsonl row of epoch ``epoch`` (100 env steps per epoch); values exact in float32."""
    return {"epoch": epoch, "env_steps": 100 * epoch, "eval/time_at_goal": time_at_goal,
            "train/loss": 2.0 - epoch / 4, "diverged": False, "note": "not a scalar"}


def test_make_tracker_kinds_and_refusals(monkeypatch):
    assert make_tracker(None) is None and make_tracker("none") is None
    assert isinstance(make_tracker("tensorboard"), TensorBoardTracker)
    with pytest.raises(ConfigError) as info:
        make_tracker("mlflow")
    assert str(info.value) == "--logger 'mlflow': unknown tracker; choose tensorboard, wandb (or none)"
    with pytest.raises(ConfigError, match=r"^--logger tensorboard: unknown option 'project'; known: subdir$"):
        make_tracker("tensorboard", project="x")
    for kind, module in (("tensorboard", "tensorboardX"), ("wandb", "wandb")):
        monkeypatch.setitem(sys.modules, module, None)  # `import <module>` raises ImportError
        with pytest.raises(MissingExtraError) as info:
            make_tracker(kind)
        assert str(info.value) == (f"--logger {kind} needs the {module} package, which is not installed: "
                                   f"pip install 'gcrl-bench[{kind}]'")


def test_wandb_run_id_is_the_run_id_made_safe():
    assert wandb_run_id(RUN_ID) == RUN_ID
    assert wandb_run_id(RUN_ID, attempt=2) == RUN_ID + "-a2"
    assert wandb_run_id("crl__my/task:v2__d4") == "crl__my-task-v2__d4"
    long = "crl__" + "t" * 80 + "__d4_w16_s0__0123456789"
    short = wandb_run_id(long)
    assert len(short) == 64 and short.startswith(long[:53] + "-") and short != wandb_run_id(long + "x")


def test_tensorboard_event_files_hold_the_rows_and_a_resume_appends(tmp_path):
    pytest.importorskip("tensorboardX")
    run_dir = tmp_path / "runs" / RUN_ID
    tracker = make_tracker("tensorboard")
    tracker.open(RUN_ID, run_dir, CONFIG, resume=False)
    for epoch, value in ((1, 0.5), (2, 1.25), (3, 3.0)):
        log_row(tracker, row(epoch, value))
    tracker.close()
    got = read_scalars(run_dir / "tensorboard")
    assert sorted(got) == ["epoch", "eval/time_at_goal", "train/loss"]  # not env_steps (the step), bools, strings
    assert got["eval/time_at_goal"] == [(100, 0.5), (200, 1.25), (300, 3.0)]
    assert got["train/loss"] == [(100, 1.75), (200, 1.5), (300, 1.25)]
    assert got["epoch"] == [(100, 1.0), (200, 2.0), (300, 3.0)]

    # resumed from the epoch-2 checkpoint: epoch 3 is redone (skipped: already logged), epoch 4 is new
    resumed = make_tracker("tensorboard")
    resumed.open(RUN_ID, run_dir, CONFIG, resume=True)
    assert resumed.last_step == 300
    log_row(resumed, row(3, 9.0))
    log_row(resumed, row(4, 4.5))
    resumed.close()
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2
    got = read_scalars(run_dir / "tensorboard")
    assert got["eval/time_at_goal"] == [(100, 0.5), (200, 1.25), (300, 3.0), (400, 4.5)]
    assert got["train/loss"][-1] == (400, 1.0)

    # started over (no checkpoint): the earlier points are gone
    fresh = make_tracker("tensorboard")
    fresh.open(RUN_ID, run_dir, CONFIG, resume=False)
    log_row(fresh, row(1, 0.25))
    fresh.close()
    assert read_scalars(run_dir / "tensorboard")["eval/time_at_goal"] == [(100, 0.25)]


def test_run_mirror_opens_at_the_first_row_and_resumes_past_epoch_one(tmp_path):
    pytest.importorskip("tensorboardX")
    run_dir = tmp_path / "runs" / RUN_ID
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(CONFIG))
    passed_on = []
    with mirrored("tensorboard", RUN_ID, run_dir, passed_on.append) as on_metrics:
        assert isinstance(on_metrics, RunMirror) and not on_metrics.opened  # nothing opened before a row
        for epoch, value in ((1, 0.5), (2, 1.25)):
            on_metrics(row(epoch, value))
        assert on_metrics.opened and on_metrics.tracker.last_step == 200
    assert not on_metrics.opened  # closed with the block
    assert passed_on == [row(1, 0.5), row(2, 1.25)]
    # a run resumed from its epoch-1 checkpoint: the runner passes on epoch 2 (redone) and epoch 3
    with pytest.raises(RuntimeError, match="the run failed"):
        with mirrored("tensorboard", RUN_ID, run_dir) as on_metrics:
            on_metrics(row(2, 9.0))
            on_metrics(row(3, 3.0))
            raise RuntimeError("the run failed")
    assert not on_metrics.opened  # closed however the block ended
    assert read_scalars(run_dir / "tensorboard")["eval/time_at_goal"] == [(100, 0.5), (200, 1.25), (300, 3.0)]
    # without a tracker the run's own observer is used as it is
    with mirrored(None, RUN_ID, run_dir, passed_on.append) as on_metrics:
        assert on_metrics == passed_on.append
    with mirrored(None, RUN_ID, run_dir) as on_metrics:
        assert on_metrics is None


def test_read_scalars_stops_at_a_record_cut_short(tmp_path):
    pytest.importorskip("tensorboardX")
    tracker = TensorBoardTracker()
    tracker.open(RUN_ID, tmp_path, CONFIG, resume=False)
    log_row(tracker, row(1, 0.5))
    log_row(tracker, row(2, 1.5))
    tracker.close()
    (path,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    data = path.read_bytes()
    # the last record is epoch 2's last scalar: drop its final crc byte, as a killed writer could leave it
    path.write_bytes(data[:-1])
    got = read_scalars(tmp_path / "tensorboard")
    assert got["eval/time_at_goal"] == [(100, 0.5), (200, 1.5)]
    assert got["train/loss"] == [(100, 1.75)]  # epoch 2's train/loss was the record cut short
    assert read_scalars(tmp_path / "nothing-here") == {}


def _wandb_history(run_file, timeout_s: float = 30.0) -> list[dict]:
    """The history rows of a W&B run log (``run-<id>.wandb``), once its ``exit`` record is written (W&B's
    service process writes the log after ``finish()`` returns)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = _wandb_records(run_file)
        if (records and records[-1].WhichOneof("record_type") == "exit") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert records[-1].WhichOneof("record_type") == "exit", f"{run_file} has no exit record after {timeout_s}s"
    history = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history.append({k: v for k, v in items.items() if not k.startswith("_")})  # not W&B's own _step etc.
    return history


def _wandb_records(run_file) -> list:
    """The records of a W&B run log: a 7-byte ``:W&B`` header, then LevelDB log records (32 KiB blocks;
    7-byte record headers: crc, length, type FULL/FIRST/MIDDLE/LAST) of protobuf ``Record`` messages."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, records, pending = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's trailer too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # still being written
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            records.append(pending)
            pending = b""
    parsed = []
    for raw in records:
        parsed.append(wandb_internal_pb2.Record())
        parsed[-1].ParseFromString(raw)
    return parsed


def test_wandb_offline_run_holds_the_rows_and_a_resume_continues_it(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb-dir").mkdir()
    run_dir = tmp_path / "runs" / RUN_ID

    def run_files():
        return sorted((tmp_path / "wandb-dir" / "wandb").glob("offline-run-*/run-*.wandb"))

    tracker = make_tracker("wandb", project="gcrl-bench-tests")
    tracker.open(RUN_ID, run_dir, CONFIG, resume=False)
    log_row(tracker, row(1, 0.5))
    log_row(tracker, row(2, 1.25))
    tracker.close()
    (first,) = run_files()
    assert first.name == f"run-{RUN_ID}.wandb"
    want = [{"env_steps": 100, "epoch": 1, "eval/time_at_goal": 0.5, "train/loss": 1.75},
            {"env_steps": 200, "epoch": 2, "eval/time_at_goal": 1.25, "train/loss": 1.5}]
    assert _wandb_history(first) == want
    assert json.loads((run_dir / "wandb" / "gcrl_bench_tracker.json").read_text()) == {
        "id": RUN_ID, "attempt": 0, "last_step": 200}

    # resumed from the epoch-1 checkpoint: same W&B run id; epoch 2 is redone (skipped), epoch 3 is new
    resumed = make_tracker("wandb", project="gcrl-bench-tests")
    resumed.open(RUN_ID, run_dir, CONFIG, resume=True)
    log_row(resumed, row(2, 9.0))
    log_row(resumed, row(3, 3.0))
    resumed.close()
    second = [f for f in run_files() if f.parent != first.parent]
    assert [f.name for f in second] == [f"run-{RUN_ID}.wandb"]
    assert _wandb_history(second[0]) == [{"env_steps": 300, "epoch": 3, "eval/time_at_goal": 3.0, "train/loss": 1.25}]

    # started over: a new W&B run, so the earlier attempt's points are not mixed in
    fresh = make_tracker("wandb", project="gcrl-bench-tests")
    fresh.open(RUN_ID, run_dir, CONFIG, resume=False)
    log_row(fresh, row(1, 0.25))
    fresh.close()
    assert f"run-{RUN_ID}-a1.wandb" in [f.name for f in run_files()]
    assert json.loads((run_dir / "wandb" / "gcrl_bench_tracker.json").read_text())["id"] == RUN_ID + "-a1"


def test_wandb_mode_is_checked():
    with pytest.raises(ConfigError, match=r"^wandb mode 'cloud': choose offline, online or disabled$"):
        WandbTracker(mode="cloud")


def _assert_mirrors(tb_dir, metrics_path):
    """Every metrics.jsonl row is in the event files exactly once, at its env_steps, as float32."""
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    got = read_scalars(tb_dir)
    keys = {k for r in rows for k in r} - {"env_steps"}
    assert set(got) == keys
    for key in keys:
        assert got[key] == [(r["env_steps"], float(np.float32(r[key]))) for r in rows], key
    return rows


def test_a_run_interrupted_and_resumed_mirrors_each_metrics_row_once(tmp_path):
    pytest.importorskip("tensorboardX")
    run = grid((0,))[0]
    options = ExecutionOptions(checkpoint=CheckpointConfig(every_epochs=0), logger="tensorboard")

    def on_epoch(report):
        if report.epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # finishes epoch 1, checkpoints and stops

    with pytest.raises(RunInterrupted):
        execute(run, tmp_path, on_epoch=on_epoch, options=options)
    folder = tmp_path / "runs" / run.run_id
    assert [r["epoch"] for r in _assert_mirrors(folder / "tensorboard", folder / "metrics.jsonl")] == [1]
    execute(run, tmp_path, options=options)  # resumes after epoch 1
    rows = _assert_mirrors(folder / "tensorboard", folder / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert len(list((folder / "tensorboard").glob("events.out.tfevents.*"))) == 2


def test_cli_logger_option(capsys, tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    main(cli_args(tmp_path, "0", "--logger", "tensorboard"))  # returns (no SystemExit) when every run completes
    (folder,) = (tmp_path / "runs").iterdir()
    assert [r["epoch"] for r in _assert_mirrors(folder / "tensorboard", folder / "metrics.jsonl")] == [1, 2, 3]
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(SystemExit) as exit_info:
        main(cli_args(tmp_path / "other", "0", "--logger", "wandb"))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --logger wandb needs the wandb package, which is not installed: pip install 'gcrl-bench[wandb]'"]
    assert not (tmp_path / "other").exists()
