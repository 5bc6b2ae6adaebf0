"""The accelerator verification kit (python -m gcrl_bench.benchmarks.gpu) at its smallest scale on a CPU."""

import json
import math
import os
import subprocess
import sys

import pytest

from gcrl_bench.benchmarks import gpu
from gcrl_bench.config import get_preset

NUMERIC = {
    "env": ("envs", "scan_steps", "env_steps_per_s", "compile_s"),
    "learner": ("depth", "width", "batch", "updates_per_s", "ms_per_update", "gflop_per_s", "compile_s"),
    "train": ("depth", "envs", "grad_steps_per_train_step", "env_steps_per_s", "compile_s"),
    "learning": ("env_steps", "first_eval", "last3_mean", "threshold", "wall_s"),
}


def _printed_tables(stdout: str) -> dict[str, list[list[str]]]:
    """Section name -> rows of cells (header first), parsed from the kit's stdout."""
    tables, current = {}, None
    for line in stdout.splitlines():
        if line.startswith("## "):
            current = tables.setdefault(line[3:].strip(), [])
        elif not line.strip() or line.startswith("("):
            current = None
        elif current is not None:
            current.append(line.split())
    return tables


@pytest.fixture(scope="module")
def kit_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("kit") / "kit.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "gcrl_bench.benchmarks.gpu", "--scale", "tiny", "--json", str(out)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_every_section_printed_with_finite_numbers(kit_run):
    stdout, data = kit_run
    printed = _printed_tables(stdout)
    assert set(printed) == set(gpu.SECTIONS), stdout
    for section, columns in NUMERIC.items():
        header, *rows = printed[section]
        assert rows, f"section {section} has no rows:\n{stdout}"
        records = data["sections"][section]
        assert len(records) == len(rows)
        for record in records:
            for column in columns:
                value = record[column]
                assert isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, (section, column, value)
    for section in ("env", "learner", "train"):
        for record in data["sections"][section]:
            rate = record["env_steps_per_s"] if section != "learner" else record["updates_per_s"]
            assert rate > 0, (section, record)
    # tiny scale: one env size (32 envs, 10-step scans), one depth, a 2-epoch learning run that is not judged
    assert [(r["task"], r["envs"], r["scan_steps"]) for r in data["sections"]["env"]] == [("point_u_maze", 32, 10)]
    assert [r["depth"] for r in data["sections"]["train"]] == [4]
    # the smoke preset's loop is not the paper's: no paper rate and no ratio beside it
    assert (data["sections"]["train"][0]["paper_env_steps_per_s"], data["sections"]["train"][0]["ratio"]) == ("-", "-")
    assert data["sections"]["learning"][0]["verdict"] == "not judged (shortened run)"
    # a CPU reports no device memory statistics: one row per measured section, each saying so
    memory = data["sections"]["memory"]
    assert [r["after_section"] for r in memory] == ["env", "learner", "train", "learning"]
    assert all(r["peak_bytes_in_use"] == "n/a on this platform" for r in memory)
    assert data["platform"] == "cpu" and data["scale"] == "tiny"


def test_paper_rate_from_table3_and_budgets():
    # ant_big_maze: 100M env steps in 2.12 h at depth 4 and 11.66 h at depth 64 (docs/tasks.md §1.6, §8.3)
    assert gpu.paper_env_steps_per_second("ant_big_maze", 4) == pytest.approx(100e6 / (2.12 * 3600))
    assert gpu.paper_env_steps_per_second("ant_big_maze", 4) == pytest.approx(13_102.7, abs=0.1)
    assert gpu.paper_env_steps_per_second("ant_big_maze", 64) == pytest.approx(2_382.3, abs=0.1)
    # ant_u5_maze runs 400M env steps: 9.46 h at depth 4
    assert gpu.paper_env_steps_per_second("ant_u5_maze", 4) == pytest.approx(400e6 / (9.46 * 3600))
    assert gpu.paper_env_steps_per_second("point_u_maze", 4) is None
    assert gpu.paper_env_steps_per_second("ant_big_maze", 1024) is None


def test_shortened_loop_keeps_the_training_step():
    paper = get_preset("paper").loop_for("ant_big_maze")
    loop = gpu.shortened_loop(paper, "ant_big_maze", 4)
    # prefill: ceil(1000 / 62) = 17 collection steps of 512 x 62 env steps; then 4 training steps, one epoch
    assert loop.total_env_steps == (17 + 4) * 512 * 62
    assert loop.num_epochs == 1
    assert (loop.num_envs, loop.unroll_length, loop.batch_size, loop.updates_per_step) == (512, 62, 512, 800)
    assert (loop.min_replay_rows, loop.max_replay_rows) == (paper.min_replay_rows, paper.max_replay_rows)


def test_cpu_scale_flag_conflicts_with_another_scale():
    with pytest.raises(Exception, match="--cpu-scale contradicts --scale full"):
        gpu.main(["--cpu-scale", "--scale", "full"])
