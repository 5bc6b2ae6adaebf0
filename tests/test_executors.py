"""Executors: local worker processes, a real local Ray instance and submitit's local executor run the same
grid to the same results directory content as the sequential in-process path."""

import json
import sys

import pytest

from gcrl_bench import results
from gcrl_bench.checkpoint import CheckpointConfig
from gcrl_bench.cli import main
from gcrl_bench.errors import ConfigError, MissingExtraError
from gcrl_bench.executors import ExecutorConfig, run_all, worker_environments
from gcrl_bench.runner import ExecutionOptions

from sweep_helpers import cli_args, grid, metrics, scores

OPTIONS = ExecutionOptions(checkpoint=CheckpointConfig(every_epochs=1))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("sequential")
    assert run_all(grid(), out, OPTIONS) == []
    results.write_scores_csv(out)
    return out


def _same_results(out, reference):
    results.write_scores_csv(out)
    assert scores(out) == scores(reference)
    for run in grid():
        got, want = out / "runs" / run.run_id, reference / "runs" / run.run_id
        assert metrics(got) == metrics(want)
        assert (got / "params.msgpack").read_bytes() == (want / "params.msgpack").read_bytes()
        assert json.loads((got / "summary.json").read_text())["status"] == "complete"
    results.validate_directory(out)


@pytest.mark.parametrize("kind, module, extra", [("ray", "ray", "ray"), ("slurm", "submitit", "slurm")])
def test_executor_without_its_package_names_the_extra(monkeypatch, capsys, tmp_path, kind, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # `import <module>` raises ImportError
    with pytest.raises(MissingExtraError) as info:
        ExecutorConfig(kind=kind)
    assert str(info.value) == (f"--executor {kind} needs the {module} package, which is not installed: "
                               f"pip install 'gcrl-bench[{extra}]'")
    with pytest.raises(SystemExit) as exit_info:
        main(cli_args(tmp_path / "out", "0", "--executor", kind))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.splitlines() == [f"error: {info.value}"]  # one line, no traceback
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.slow  # spawns worker processes that each import JAX and compile: ~1.5 min on 2 cores
def test_local_worker_processes(tmp_path, reference):
    assert run_all(grid(), tmp_path, OPTIONS, ExecutorConfig(kind="local", workers=2)) == []
    _same_results(tmp_path, reference)


def test_ray_local_cluster(tmp_path, reference):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert run_all(grid(), tmp_path, OPTIONS, ExecutorConfig(kind="ray", gpus_per_run=0)) == []
    finally:
        ray.shutdown()
    _same_results(tmp_path, reference)


def test_submitit_local_executor(tmp_path, reference):
    pytest.importorskip("submitit")
    config = ExecutorConfig(kind="slurm", slurm_cluster="local", slurm_time_min=10, slurm_partition="unused-locally")
    assert run_all(grid(), tmp_path, OPTIONS, config) == []
    _same_results(tmp_path, reference)
    assert any((tmp_path / "logs" / "slurm").iterdir())  # submitit's job folders


def test_gpu_workers_get_one_gpu_and_a_memory_share():
    envs = worker_environments(4, ["0", "1"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0", "1"]
    assert {e["XLA_PYTHON_CLIENT_MEM_FRACTION"] for e in envs} == {"0.45"}
    assert worker_environments(2, ["3", "5"]) == [{"CUDA_VISIBLE_DEVICES": "3"}, {"CUDA_VISIBLE_DEVICES": "5"}]


def test_bad_executor_settings_are_one_clear_error():
    with pytest.raises(ConfigError, match="--workers -1"):
        ExecutorConfig(workers=-1)
    with pytest.raises(ConfigError, match="--executor 'dask'"):
        ExecutorConfig(kind="dask")
