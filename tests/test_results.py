"""The results-directory module: its readers, the notebook DataFrame, run ids and run outcomes."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gcrl_bench import results
from gcrl_bench.errors import ResultsError
from gcrl_bench.runner import RunOutcome
from gcrl_bench.runspec import RunSpec


def _config(run_id: str, seed: int, **changes) -> dict:
    return {"format_version": 1, "run_id": run_id, "algo": "crl", "task": "point_u_maze", "depth": 4, "width": 16,
            "seed": seed, "batch_size": 256, "preset": "smoke", "env_steps_planned": 200, "episode_length": 100,
            **changes}


def _row(epoch: int, env_steps: int, time_at_goal: float, loss: float) -> dict:
    return {"epoch": epoch, "env_steps": env_steps, "wall_time_s": 2.0 * epoch, "eval/time_at_goal": time_at_goal,
            "eval/success_any": 0.5, "eval/success_at_end": 0.25, "eval/final_distance": 3.0,
            "train/critic_loss": loss}


def _write_run(out: Path, run_id: str, seed: int, rows: list[dict], summary: dict | None = None,
               failure: dict | None = None) -> Path:
    folder = out / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(_config(run_id, seed)))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    if failure is not None:
        (folder / "failure.json").write_text(json.dumps(failure))
    return folder


@pytest.fixture
def directory(tmp_path) -> Path:
    """a: complete (2 evaluations); b: failed after 1; c: in progress (1, no summary); d: no config.json."""
    out = tmp_path / "res"
    _write_run(out, "a", 0, [_row(1, 100, 10.0, 0.75), _row(2, 200, 30.0, 0.5)],
               summary={"status": "complete", "score": 20.0, "env_steps": 200})
    _write_run(out, "b", 1, [_row(1, 100, 4.0, 0.25)], failure={"status": "failed", "error": "ValueError: x"})
    _write_run(out, "c", 2, [_row(1, 100, float("nan"), 1.0)])
    (out / "runs" / "d").mkdir()
    return out


def test_load_dataframe_has_one_row_per_run_evaluation_and_metric(directory):
    table = results.load_dataframe(directory)
    assert list(table.columns) == ["run_id", "algo", "task", "depth", "width", "batch_size", "seed", "env_steps",
                                   "metric", "value", "status"]
    # 4 evaluations (a: 2, b: 1, c: 1) x 4 evaluation metrics; d has no config.json and is left out
    assert len(table) == 16
    assert list(table["run_id"].drop_duplicates()) == ["a", "b", "c"]
    assert dict(table.groupby("run_id")["status"].first()) == {"a": "complete", "b": "failed", "c": "incomplete"}
    for column in ("depth", "width", "batch_size", "seed", "env_steps"):
        assert table[column].dtype == np.int64
    assert table["value"].dtype == float
    tag = table[table["metric"] == "time_at_goal"]
    assert list(zip(tag["run_id"], tag["env_steps"])) == [("a", 100), ("a", 200), ("b", 100), ("c", 100)]
    assert list(tag["value"].iloc[:3]) == [10.0, 30.0, 4.0] and math.isnan(tag["value"].iloc[3])
    assert list(table.loc[table["run_id"] == "a", "metric"].iloc[:4]) == list(results.EVAL_METRICS)
    assert set(table.loc[table["run_id"] == "b", "seed"]) == {1}
    assert table.loc[(table["run_id"] == "a") & (table["metric"] == "success_at_end"), "value"].tolist() == [0.25, 0.25]
    # the notebook's score of run a: mean of its last 5 (here: 2) time-at-goal values, as summary.json says
    assert tag[tag["run_id"] == "a"]["value"].tail(results.SCORE_WINDOW).mean() == 20.0


def test_load_dataframe_with_train_metrics(directory):
    table = results.load_dataframe(directory, include_train=True)
    assert len(table) == 16 + 4  # one train/critic_loss per evaluation
    loss = table[table["metric"] == "train/critic_loss"]
    assert loss["value"].tolist() == [0.75, 0.5, 0.25, 1.0]
    assert table.iloc[4]["metric"] == "train/critic_loss"  # after the 4 evaluation metrics of a's first row


def test_load_dataframe_of_an_empty_or_missing_directory(tmp_path):
    empty = results.load_dataframe(tmp_path)
    assert empty.empty and list(empty.columns) == list(results.DATAFRAME_COLUMNS)
    with pytest.raises(ResultsError, match="does not exist"):
        results.load_dataframe(tmp_path / "nowhere")


def test_load_dataframe_refuses_another_format_version(directory):
    path = directory / "runs" / "b" / "config.json"
    path.write_text(json.dumps(_config("b", 1, format_version=2)))
    with pytest.raises(ResultsError) as caught:
        results.load_dataframe(directory)
    message = str(caught.value)
    assert "b/config.json" in message and "format version 2" in message and "format_version 2" in message
    assert "\n" not in message


@pytest.mark.parametrize("changes, needle", [
    ({"seed": "0"}, "field 'seed' is '0', expected int"),
    ({"depth": True}, "field 'depth' is True, expected int"),
    ({"episode_length": 0}, "episode_length is 0, expected a positive integer"),
])
def test_read_config_checks_fields(tmp_path, changes, needle):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**_config("a", 0), **changes}))
    with pytest.raises(ResultsError, match=needle):
        results.read_config(path)


@pytest.mark.parametrize("text, needle", [("{trunc", "not valid JSON"), ("[1, 2]", "does not hold a JSON object")])
def test_read_json_errors_are_one_line(tmp_path, text, needle):
    path = tmp_path / "summary.json"
    path.write_text(text)
    with pytest.raises(ResultsError) as caught:
        results.read_json(path)
    assert needle in str(caught.value) and str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_run_status(directory):
    runs = directory / "runs"
    assert results.run_status(results.RunDir(runs / "a")) == results.RunStatus("complete", "", {
        "status": "complete", "score": 20.0, "env_steps": 200})
    assert results.run_status(results.RunDir(runs / "b")) == results.RunStatus("failed", "failed (failure.json)")
    assert results.run_status(results.RunDir(runs / "c")).status == "incomplete"
    (runs / "c" / "summary.json").write_text(json.dumps({"status": "running"}))
    assert results.run_status(results.RunDir(runs / "c")).reason == "status 'running' in summary.json"


def test_read_scores_keeps_nan_and_rejects_text(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("algo,task,depth,width,batch_size,seed,env_steps,metric,value\n"
                    "crl,t,4,16,256,0,100,time_at_goal,12.5\ncrl,t,4,16,256,0,200,time_at_goal,\n")
    table = results.read_scores(path)
    assert table["env_steps"].tolist() == [100, 200] and table["value"].iloc[0] == 12.5
    assert math.isnan(table["value"].iloc[1])
    path.write_text(path.read_text() + "crl,t,4,16,256,0,300,time_at_goal,oops\n")
    with pytest.raises(ResultsError, match="line 4: value 'oops' is not a number"):
        results.read_scores(path)


def test_scores_csv_written_from_the_run_folders_reads_back(directory):
    results.write_scores_csv(directory)
    table = results.read_scores(directory / "scores.csv")
    assert len(table) == 16 + 1  # the evaluations, plus the complete run's score
    score = table[table["metric"] == results.SCORE_METRIC]
    assert score[["seed", "env_steps", "value"]].values.tolist() == [[0, 200, 20.0]]
    long = results.load_dataframe(directory)
    merged = long.merge(table, on=[*results.RUN_KEY, "env_steps", "metric"], suffixes=("", "_csv"))
    assert len(merged) == 16
    np.testing.assert_array_equal(merged["value"], merged["value_csv"])  # NaN == NaN here


@dataclasses.dataclass(frozen=True)
class _Net:
    depth: int = 4
    width: int = 16


@dataclasses.dataclass(frozen=True)
class _Algo:
    network: _Net = _Net()
    tau: float = 0.5
    sizes: tuple = (1, 2)


@dataclasses.dataclass(frozen=True)
class _Loop:
    num_epochs: int = 3
    num_envs: int = 8


def test_run_id_is_readable_fields_plus_the_configuration_hash():
    run = RunSpec("crl", "point_u_maze", 7, _Algo(), _Loop(), "smoke")
    assert run.identity() == {"format_version": 1, "algo": "crl", "task": "point_u_maze", "seed": 7,
                              "algo_config": {"network": {"depth": 4, "width": 16}, "tau": 0.5, "sizes": [1, 2]},
                              "loop_config": {"num_epochs": 3, "num_envs": 8}}
    # the id existing results directories hold for this configuration: it must never change
    assert run.run_id == "crl__point_u_maze__d4_w16_s7__e18347a282"
    assert dataclasses.replace(run, preset="paper").run_id == run.run_id  # the preset is recorded, not identity
    assert RunSpec("crl", "point_u_maze", 7, _Algo(tau=0.25), _Loop(), "smoke").run_id != run.run_id
    assert run.label == "crl point_u_maze d4 w16 s7"


def test_outcomes():
    done = RunOutcome.complete("a", {"score": 20.0, "env_steps": 200, "wall_time_s": 4.5, "compile_time_s": 1.5})
    assert done == RunOutcome("a", "complete", 20.0, 200, 4.5, 1.5, "")
    failed = RunOutcome.unfinished("b", "failed", "ValueError: x", [_row(1, 100, 4.0, 0.25), _row(2, 150, 5.0, 0.5)])
    assert (failed.status, failed.env_steps, failed.wall_time_s, failed.error) == ("failed", 150, 4.0, "ValueError: x")
    assert math.isnan(failed.score)
    never = RunOutcome.unfinished("c", "failed", "OSError: y", [])
    assert never.env_steps == 0 and math.isnan(never.wall_time_s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.status = "failed"


def test_low_modules_import_neither_the_training_loop_nor_pandas():
    code = ("import sys, gcrl_bench.results, gcrl_bench.runspec; "
            "heavy = {'pandas', 'matplotlib', 'gcrl_bench.runner', 'gcrl_bench.training'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_run_reports_each_recorded_row_and_a_typed_outcome(tmp_path):
    """on_metrics sees exactly the rows of metrics.jsonl; the outcome repeats summary.json; a callback
    that raises fails the run with failure.json holding the rows recorded before it."""
    from gcrl_bench.runner import run_isolated
    from sweep_helpers import EPOCHS, grid

    run = grid((0,))[0]
    seen: list[dict] = []
    outcome = run_isolated(run, tmp_path / "ok", on_metrics=seen.append)
    folder = results.RunDir.of(tmp_path / "ok", run.run_id)
    summary = results.read_json(folder.summary)
    assert seen == results.read_metrics(folder.metrics) and [r["epoch"] for r in seen] == list(range(1, EPOCHS + 1))
    assert outcome == RunOutcome(run.run_id, "complete", summary["score"], seen[-1]["env_steps"],
                                 summary["wall_time_s"], summary["compile_time_s"], "",
                                 tuple(summary["warnings"]))
    assert outcome.score == sum(r["eval/time_at_goal"] for r in seen[-results.SCORE_WINDOW:]) / EPOCHS

    def tracker_fails(row: dict) -> None:
        if row["epoch"] == 2:
            raise ValueError("tracker offline")

    failed = run_isolated(run, tmp_path / "bad", on_metrics=tracker_fails)
    folder = results.RunDir.of(tmp_path / "bad", run.run_id)
    record = results.read_json(folder.failure)
    rows = results.read_metrics(folder.metrics)
    assert [r["epoch"] for r in rows] == [1, 2]  # the row is recorded before the hook sees it
    assert (failed.run_id, failed.status, failed.error, failed.env_steps, failed.wall_time_s) == (
        run.run_id, "failed", "ValueError: tracker offline", rows[-1]["env_steps"], rows[-1]["wall_time_s"])
    assert record["error"] == failed.error and math.isnan(failed.score) and math.isnan(failed.compile_time_s)
    assert record["evaluations"] == 2 and not folder.summary.exists()


def _write_batch_run(out: Path, run_id: str, batch_size: int, tags: list[float], legacy: bool = False) -> None:
    """A complete run of seed 0 whose config differs from the others' only in its batch size; ``legacy``: its
    config.json records the batch size only under loop_config, as before the batch_size field existed."""
    folder = out / "runs" / run_id
    folder.mkdir(parents=True)
    config = _config(run_id, 0, loop_config={"batch_size": batch_size, "num_envs": 8})
    if legacy:
        del config["batch_size"]
    else:
        config["batch_size"] = batch_size
    (folder / "config.json").write_text(json.dumps(config))
    rows = [_row(i + 1, 100 * (i + 1), tag, 0.5) for i, tag in enumerate(tags)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    score = sum(tags) / len(tags)
    (folder / "summary.json").write_text(json.dumps({"status": "complete", "score": score, "env_steps": 100 * len(tags)}))


def test_runs_differing_only_in_batch_size_are_two_runs(tmp_path):
    from reports.results import load_results

    out = tmp_path / "res"
    _write_batch_run(out, "x", 512, [10.0, 30.0])
    _write_batch_run(out, "y", 256, [2.0, 4.0])
    results.write_scores_csv(out)
    assert (out / "scores.csv").read_text().splitlines()[0] == "algo,task,depth,width,batch_size,seed,env_steps,metric,value"
    table = results.read_scores(out / "scores.csv")
    score = table[table["metric"] == results.SCORE_METRIC]
    assert score[["batch_size", "value"]].values.tolist() == [[512, 20.0], [256, 3.0]]
    loaded = load_results(out)
    assert loaded.runs[["run_id", "batch_size", "score"]].values.tolist() == [["y", 256, 3.0], ["x", 512, 20.0]]
    assert loaded.runs["success_any_last5"].tolist() == [0.5, 0.5]
    assert sorted(set(results.load_dataframe(out)["batch_size"])) == [256, 512]


def test_legacy_directory_reads_batch_size_from_loop_config(tmp_path):
    out = tmp_path / "res"
    _write_batch_run(out, "x", 512, [10.0, 30.0], legacy=True)
    (out / "scores.csv").write_text("algo,task,depth,width,seed,env_steps,metric,value\n"
                                    "crl,point_u_maze,4,16,0,100,time_at_goal,10.0\n"
                                    "crl,point_u_maze,4,16,0,200,score,20.0\n")
    table = results.read_scores(out / "scores.csv")
    assert list(table.columns) == list(results.SCORE_COLUMNS)
    assert table["batch_size"].tolist() == [512, 512] and table["value"].tolist() == [10.0, 20.0]
    assert results.validate_directory(out) == 1
    assert results.read_config(out / "runs" / "x" / "config.json")["batch_size"] == 512
    # a legacy row that no run folder matches cannot be given a batch size
    (out / "scores.csv").write_text((out / "scores.csv").read_text() + "crl,point_u_maze,4,16,9,100,time_at_goal,1.0\n")
    with pytest.raises(ResultsError, match="line 4: column 'batch_size' must be an integer"):
        results.read_scores(out / "scores.csv")
