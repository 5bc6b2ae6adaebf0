"""Plugins end to end: the example package installed with pip (into a temporary --target, not into this
environment), found through its entry points by a `gcrl-bench` subprocess, listed with its origin, trained
by `gcrl-bench run` and included by `gcrl-bench report`; a plugin that raises and a plugin whose name clashes
are left out with one line each while everything else keeps working."""

import csv
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "gcrl-bench-example-plugin"

BROKEN = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "gcrl-bench-broken-plugin"
        version = "0.0.1"
        [project.entry-points."gcrl_bench.tasks"]
        broken = "gcrl_bench_broken_plugin:register"
        """,
    "gcrl_bench_broken_plugin.py": """
        def register():
            raise RuntimeError("calibration file maze.json not found")
        """,
}

CLASH = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "gcrl-bench-clash-plugin"
        version = "0.0.1"
        [project.entry-points."gcrl_bench.algorithms"]
        clash = "gcrl_bench_clash_plugin:register"
        """,
    "gcrl_bench_clash_plugin.py": """
        import dataclasses

        from gcrl_bench import registry


        def register():
            crl = registry.get_algorithm("crl")
            registry.register_algorithm(dataclasses.replace(crl, name="clash_first"))  # rolled back below
            registry.register_algorithm(dataclasses.replace(crl, description="a second crl"))  # clashes
        """,
}


def _write_package(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


def _pip_install_target(target: Path, *sources: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), *map(str, sources)],
        check=True, capture_output=True, text=True,
    )


@pytest.fixture(scope="module")
def plugin_paths(tmp_path_factory):
    """(example target, broken+clash target): pip-installed copies of the packages (the copy keeps build
    leftovers out of the repository)."""
    tmp = tmp_path_factory.mktemp("plugins")
    example = shutil.copytree(EXAMPLE, tmp / "src" / "example", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    _pip_install_target(tmp / "example", example)
    bad = [_write_package(tmp / "src" / "broken", BROKEN), _write_package(tmp / "src" / "clash", CLASH)]
    _pip_install_target(tmp / "bad", *bad)
    return tmp / "example", tmp / "bad"


def _cli(*args: str, pythonpath: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, pythonpath)))
    script = Path(sys.executable).parent / "gcrl-bench"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gcrl_bench.cli"]
    return subprocess.run(command + list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_list_shows_plugins_with_origin_and_one_line_per_broken_plugin(plugin_paths, tmp_path):
    example, bad = plugin_paths
    done = _cli("list", pythonpath=[example, bad], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(l.split()[0] == "point_reach" and l.endswith("[gcrl-bench-example-plugin]") for l in lines if l.strip()), done.stdout
    assert any(l.split()[0] == "hindsight_bc" and l.endswith("[gcrl-bench-example-plugin]") for l in lines if l.strip()), done.stdout
    assert any(l.split()[0] == "crl" and l.endswith("[built-in]") for l in lines if l.strip())
    assert not any(l.strip().startswith("clash_first") for l in lines), "a failed plugin's registrations must be rolled back"

    errors = [l for l in done.stderr.splitlines() if l.strip()]
    assert len(errors) == 2, done.stderr  # one line per failed plugin, no traceback, no warning location
    broken = next(l for l in errors if "gcrl-bench-broken-plugin" in l)
    assert "RuntimeError: calibration file maze.json not found" in broken
    clash = next(l for l in errors if "gcrl-bench-clash-plugin" in l)
    assert "'crl' is registered twice (by built-in and by gcrl-bench-clash-plugin)" in clash


def test_unknown_name_points_at_failed_plugins(plugin_paths, tmp_path):
    example, bad = plugin_paths
    done = _cli("run", "--algos", "clash_first", "--tasks", "point_reach", "--preset", "smoke",
                pythonpath=[example, bad], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert "unknown algorithm 'clash_first'" in done.stderr and "2 plugin(s) failed to load" in done.stderr


def test_run_and_report_include_the_plugin(plugin_paths, tmp_path):
    example, _ = plugin_paths
    out = tmp_path / "results"
    run = _cli("run", "--algos", "hindsight_bc", "--tasks", "point_reach", "--depths", "4", "--widths", "32",
               "--preset", "smoke", "--no-report", "--out", str(out), pythonpath=[example], cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    summaries = list((out / "runs").glob("*/summary.json"))
    assert len(summaries) == 1, list((out / "runs").iterdir())
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["algo"], r["task"]) for r in rows} == {("hindsight_bc", "point_reach")}

    report = _cli("report", str(out), "--reps", "200", pythonpath=[example], cwd=tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    tables = (out / "report_tables.csv").read_text()
    assert "hindsight_bc" in tables and "point_reach" in tables
    assert (out / "report.pdf").stat().st_size > 0
