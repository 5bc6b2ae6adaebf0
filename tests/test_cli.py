"""The command line: bad input gives one clear line and a non-zero exit; a smoke run writes every file."""

import csv
import json
import os
import stat

import pytest

from gcrl_bench.cli import main


def run_cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(
    "argv,needles",
    [
        (["run", "--algos", "crl", "--tasks", "ant_bigmaze"], ["unknown task 'ant_bigmaze'", "known tasks:", "point_u_maze"]),
        (["run", "--algos", "crll", "--tasks", "point_u_maze"], ["unknown algorithm 'crll'", "did you mean 'crl'"]),
        (["run", "--tasks", "point_u_maze", "--depths", "4,6"], ["depth 6", "multiple of 4"]),
        (["run", "--tasks", "point_u_maze", "--depths", "4,x"], ["--depths", "'x'"]),
        (["run", "--tasks", "point_u_maze", "--preset", "smoke", "--set", "updates_per_step=500"],
         ["updates_per_step", "500", "use updates_per_step <="]),
        (["run", "--tasks", "point_u_maze", "--set", "bogus=1"], ["unknown hyperparameter", "batch_size"]),
        (["run", "--tasks", "point_u_maze", "--set", "reset_mode=bad"], ["reset_mode=bad", "one of first, fresh"]),
        (["run", "--tasks", "point_u_maze", "--preset", "huge"], ["unknown preset 'huge'", "smoke"]),
        (["report", "/nonexistent/results"], ["not a gcrl-bench results directory"]),
    ],
)
def test_bad_input_gives_one_clear_line(capsys, tmp_path, argv, needles):
    code, _, err = run_cli(capsys, *argv, *(["--out", str(tmp_path / "r")] if argv[0] == "run" else []))
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "r" / "runs").exists() or not os.listdir(tmp_path / "r" / "runs")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_results_directory(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    code, _, err = run_cli(capsys, "run", "--tasks", "point_u_maze", "--preset", "smoke", "--out", str(ro / "x"))
    assert_one_line_error(code, err, "not writable")


def test_list_shows_tasks_algorithms_presets(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    assert "point_u_maze" in out and "SANITY" in out
    assert "crl" in out and "smoke" in out and "paper" in out


def test_corrupt_run_in_results_directory(capsys, tmp_path):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{not json")
    code, _, err = run_cli(capsys, "report", str(tmp_path))
    assert_one_line_error(code, err, "config.json", "corrupt")
    assert (run / "config.json").read_text() == "{not json"  # nothing damaged


def test_run_refuses_a_corrupt_results_directory_before_training(capsys, tmp_path):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"format_version": 1}))
    (run / "summary.json").write_text("{trunc")
    code, _, err = run_cli(capsys, "run", "--tasks", "point_u_maze", "--preset", "smoke", "--out", str(tmp_path))
    assert_one_line_error(code, err, "summary.json", "corrupt")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["x"]  # nothing new started
    assert (run / "summary.json").read_text() == "{trunc"


def test_incompatible_version_in_results_directory(capsys, tmp_path):
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"format_version": 99}))
    code, _, err = run_cli(capsys, "report", str(tmp_path))
    assert_one_line_error(code, err, "format version 99")


def test_smoke_run_writes_every_promised_file_and_rerun_skips(capsys, tmp_path):
    out = tmp_path / "res"
    argv = ["run", "--algos", "crl", "--tasks", "point_u_maze", "--depths", "4", "--widths", "32",
            "--preset", "smoke", "--out", str(out), "--no-report"]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    runs = list((out / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    for name in ("config.json", "metrics.jsonl", "summary.json", "params.msgpack"):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == "crl" and config["depth"] == 4 and config["width"] == 32
    assert {"jax", "brax", "flax"} <= set(config["versions"]) and config["code_version"]
    metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert all(0 <= m["eval/time_at_goal"] <= 100 for m in metrics)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert summary["score"] == pytest.approx(sum(m["eval/time_at_goal"] for m in metrics) / 2)
    with open(out / "scores.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["algo", "task", "depth", "width", "seed", "env_steps", "metric", "value"]
    assert any(r[6] == "score" for r in rows[1:])
    assert {r[6] for r in rows[1:]} == {"time_at_goal", "success_any", "success_at_end", "final_distance", "score"}
    mtime = (run / "summary.json").stat().st_mtime_ns
    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 0 and "1 already complete" in stdout
    assert (run / "summary.json").stat().st_mtime_ns == mtime
