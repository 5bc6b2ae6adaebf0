"""The command line: bad input gives one clear line and a non-zero exit; a smoke run writes every file."""

import csv
import dataclasses
import json
import os
import stat

import pytest

from cli_helpers import assert_one_line_error, run_cli


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
        # a key is checked against every chosen algorithm and the loop, whatever their order: tau (sac only)
        # passes, so the error is about the next key
        (["run", "--tasks", "point_u_maze", "--algos", "sac,crl", "--set", "tau=0.01", "--set", "bogus=1"],
         ["--set bogus=1: unknown hyperparameter 'bogus'", "tau", "batch_size", "repr_dim"]),
        (["run", "--tasks", "point_u_maze", "--algos", "crl,sac", "--set", "tau=0.01", "--set", "bogus=1"],
         ["--set bogus=1: unknown hyperparameter 'bogus'", "tau", "batch_size", "repr_dim"]),
        (["run", "--tasks", "point_u_maze", "--algos", "crl", "--set", "tua=0.01"],
         ["--set tua=0.01: unknown hyperparameter 'tua': no chosen config has it", "known: alpha_lr"]),
        (["run", "--tasks", "point_u_maze", "--algos", "crl", "--set", "sac.tau=0.01"],
         ["'sac' is not one of the chosen algorithms (crl)", "add it to --algos"]),
        (["run", "--tasks", "point_u_maze", "--algos", "crl,sac", "--set", "crl.tau=0.01"],
         ["unknown hyperparameter 'tau' for algorithm crl", "repr_dim"]),
        (["run", "--tasks", "point_u_maze", "--algos", "crl", "--set", "loop.repr_dim=8"],
         ["unknown hyperparameter 'repr_dim' for the loop config", "batch_size"]),
        (["run", "--tasks", "point_u_maze", "--set", "network.depth=8"],
         ["--set network.depth=8: network.depth is not set with --set; use --depths"]),
        (["run", "--tasks", "point_u_maze", "--set", "crl.network.activation=relu"], ["use --activation"]),
        (["run", "--tasks", "point_u_maze", "--algos", "sac", "--set", "relabel=final"],
         ["relabel is a group of settings in algorithm sac", "relabel.strategy, relabel.gamma, relabel.fraction"]),
        (["run", "--tasks", "point_u_maze", "--algos", "crl", "--set", "strategy=final"],
         ["did you mean relabel.strategy?"]),
        (["run", "--tasks", "point_u_maze", "--algos", "sac", "--set", "sac.relabel.strategy=bogus"],
         ["algorithm sac's relabel.strategy expected one of geometric, future, final, none, got 'bogus'"]),
        (["run", "--tasks", "point_u_maze", "--algos", "sac", "--set", "tau=fast"],
         ["--set tau=fast: algorithm sac's tau expected a number, got 'fast'"]),
        (["run", "--tasks", "point_u_maze", "--algos", "sac", "--set", "tau=5"], ["tau 5.0 must lie in (0, 1]"]),
        (["run", "--tasks", "point_u_maze", "--set", "batch_size"], ["is not KEY=VALUE"]),
        (["run", "--tasks", "point_u_maze", "--batch-sizes", "64,128", "--set", "batch_size=32"],
         ["--batch-sizes 64,128 and --set batch_size=32 both set the batch size; keep one"]),
        (["run", "--tasks", "point_u_maze", "--batch-sizes", "64,128", "--set", "loop.batch_size=32"],
         ["both set the batch size"]),
        (["run", "--tasks", "point_u_maze", "--batch-sizes", "64,x"], ["--batch-sizes: 'x' is not a valid int"]),
        # smoke on point_u_maze: 16 windows x 249 = 3984 tuples per step, 20 updates: batch_size <= 3984 // 20 = 199
        (["run", "--tasks", "point_u_maze", "--preset", "smoke", "--depths", "4", "--widths", "32",
          "--batch-sizes", "64,256"],
         ["run crl point_u_maze d4 w32 batch_size 256: batch_size x updates_per_step (256 x 20 = 5120) exceeds the 3984",
          "or batch_size <= 199"]),
        (["describe", "crll"], ["unknown name 'crll' (did you mean 'crl'?)", "algorithms: crl,", "tasks: ",
                                "point_u_maze", "presets: paper, quick, control, smoke, quickstart"]),
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
    assert rows[0] == ["algo", "task", "depth", "width", "batch_size", "seed", "env_steps", "metric", "value"]
    assert config["batch_size"] == 128 and all(r[4] == "128" for r in rows[1:])  # the smoke preset's batch size
    assert any(r[7] == "score" for r in rows[1:])
    assert {r[7] for r in rows[1:]} == {"time_at_goal", "success_any", "success_at_end", "final_distance", "score"}
    mtime = (run / "summary.json").stat().st_mtime_ns
    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 0 and "1 already complete" in stdout
    assert (run / "summary.json").stat().st_mtime_ns == mtime


def test_describe_an_algorithm_prints_every_field_with_its_doc_and_default(capsys):
    code, out, _ = run_cli(capsys, "describe", "sac_her")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("algorithm sac_her [built-in]: ")
    assert "  tau: float = 0.005" in lines
    assert lines[lines.index("  tau: float = 0.005") + 1].strip().startswith("Polyak rate of the target critics")
    assert "    network.depth: int = 4  [--depths]" in lines  # nested, with the flag that sets it
    assert "    network.activation: one of swish, relu, tanh = 'swish'  [--activation]" in lines
    assert "    relabel.strategy: one of geometric, future, final, none = 'future'" in lines  # SACHER's default
    assert "    relabel.fraction: float = 0.8" in lines
    from gcrl_bench import registry
    from gcrl_bench.overrides import leaf_paths

    shown = {l.split(":")[0].strip() for l in lines if l.startswith("  ") and not l.startswith("      ")}
    assert set(leaf_paths(registry.get_algorithm("sac_her").config_cls)) <= shown


def test_describe_a_task_prints_its_spec(capsys):
    code, out, _ = run_cli(capsys, "describe", "ant_u5_maze")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("task ant_u5_maze [built-in], one of the ten benchmark tasks: ant in a long U-shaped maze")
    for line in ("  state_size: int = 29", "  goal_indices: tuple of int = (0, 1)", "  success_threshold: float = 0.5",
                 "  episode_length: int = 1000", "  backend: str = 'spring'", "  eval_goal_set: str = 'eval'",
                 "  observation_size: int = 31"):
        assert line in lines, line
    assert "preset paper changes for this task: total_env_steps=400_000_000, num_epochs=400" in lines


def test_describe_a_preset_prints_its_loop_and_budgets(capsys):
    code, out, _ = run_cli(capsys, "describe", "smoke")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("preset smoke: Checks that everything runs end to end")
    assert "  window_length: int = 250" in lines and "  total_env_steps: int = 7200" in lines  # 16 x (250 + 2 x 2 x 50)
    assert "  reset_mode: one of first, fresh = 'first'" in lines
    code, out, _ = run_cli(capsys, "describe", "paper")
    lines = out.splitlines()
    assert "  num_envs: int = 512" in lines and "  updates_per_step: int = 800" in lines
    assert any(l.split() == ["ant_u5_maze", "total_env_steps=400_000_000,", "num_epochs=400"] for l in lines)
    assert any(l.split() == ["humanoid", "total_env_steps=100_000_000,", "num_epochs=100"] for l in lines)


# ---------------------------------------------------------------------------------------------------------
# Sweep files (--config)

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "sweep.toml")


def sweep_params(*argv):
    """The merged parameters of `gcrl-bench run ARGV`, parsed without running anything."""
    from gcrl_bench import cli

    with cli.run.make_context("run", list(argv)) as ctx:
        return cli._sweep_params(ctx)


def test_the_example_sweep_file_sets_flags_and_overrides():
    params = sweep_params("--config", EXAMPLE)
    assert params["algos"] == "crl,sac_her" and params["tasks"] == "point_u_maze"
    assert params["depths"] == "4,16" and params["widths"] == "256" and params["seeds"] == "0,1,2"
    assert params["preset"] == "quick" and params["out"] == "results/sweep" and params["report"] is True
    assert params["epochs"] is None  # not in the file: the flag's default
    assert [(o.key, o.value) for o in params["sets"]] == [
        ("updates_per_step", 40), ("sac_her.tau", 0.01), ("sac_her.relabel.strategy", "final"),
        ("sac_her.relabel.fraction", 1.0), ("crl.relabel.gamma", 0.95),
    ]


def test_the_example_sweep_file_resolves_against_its_algorithms():
    from gcrl_bench import registry
    from gcrl_bench.cli import _NETWORK_FLAGS
    from gcrl_bench.config import LoopConfig
    from gcrl_bench.overrides import apply_overrides, resolve_overrides

    params = sweep_params("--config", EXAMPLE)
    algos = params["algos"].split(",")
    configs = {a: registry.get_algorithm(a).config_cls for a in algos} | {"loop": LoopConfig}
    changes = resolve_overrides(params["sets"], configs, other_scopes=registry.algorithm_entries(), refused=_NETWORK_FLAGS)
    sac_her = apply_overrides(configs["sac_her"](), changes["sac_her"], "sac_her")
    assert (sac_her.tau, sac_her.relabel.strategy, sac_her.relabel.fraction) == (0.01, "final", 1.0)
    crl = apply_overrides(configs["crl"](), changes["crl"], "crl")
    assert crl.relabel.gamma == 0.95 and crl.relabel.strategy == "geometric"
    assert changes["loop"] == {"updates_per_step": 40}


def test_command_line_flags_win_over_the_file_and_set_entries_add_up(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('algos = "crl,sac"\nseeds = [0, 1]\npreset = "smoke"\nresidual = false\nepochs = 3\n'
                    '[set]\ntau = 0.01\nbatch_size = 64\n')
    params = sweep_params("--config", str(path), "--seeds", "7", "--residual", "--set", "batch_size=32")
    assert params["seeds"] == "7"  # given on the command line
    assert params["residual"] is True  # given on the command line, although it equals the default
    assert params["algos"] == "crl,sac" and params["preset"] == "smoke" and params["epochs"] == 3  # from the file
    assert [(o.key, o.value) for o in params["sets"]] == [("tau", 0.01), ("batch_size", 64), ("batch_size", "32")]
    from gcrl_bench import registry
    from gcrl_bench.config import LoopConfig
    from gcrl_bench.overrides import resolve_overrides

    changes = resolve_overrides(params["sets"], {"sac": registry.get_algorithm("sac").config_cls, "loop": LoopConfig})
    assert changes == {"sac": {"tau": 0.01}, "loop": {"batch_size": 32}}  # the command line's --set comes last


def test_a_sweep_file_is_used_by_run(capsys, tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('algos = ["crl"]\ntasks = ["point_u_maze"]\n[set.sac]\ntau = 0.01\n')
    code, _, err = run_cli(capsys, "run", "--config", str(path), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, f"{path}: set.sac.tau: 'sac' is not one of the chosen algorithms (crl)")
    path.write_text('tasks = "point_u_maze"\npreset = "smoke"\n[set]\nupdates_per_step = 500\n')
    code, _, err = run_cli(capsys, "run", "--config", str(path), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "updates_per_step (128 x 500", "use updates_per_step <=")
    assert not (tmp_path / "r" / "runs").exists()


@pytest.mark.parametrize(
    "text,needles",
    [
        ('algo = "crl"\n', ["unknown key 'algo' (did you mean 'algos'?)", "known keys: activation, address"]),
        ("depths = [4, 6.5]\n", ["depths = [4, 6.5]: expected a non-empty array of ints", "[4, 64]"]),
        ('epochs = "3"\n', ["epochs = '3': expected an integer (as for --epochs)"]),
        ("residual = 1\n", ["residual = 1: expected true or false (as for --residual)"]),
        ('executor = "mpi"\n', ["executor = 'mpi':", "'mpi' is not one of 'local', 'ray', 'slurm'"]),
        ("set = 3\n", ["set must be a table of overrides"]),
        ("[set]\nbogus = 1\n", ["set.bogus: unknown hyperparameter 'bogus'"]),
        ('[set]\nbatch_size = "many"\n', ["set.batch_size: the loop config's batch_size expected an integer, got 'many'"]),
        ("[set]\nbatch_size = 64.5\n", ["expected an integer, got 64.5"]),
        ("algos = [\n", ["not valid TOML"]),
    ],
)
def test_bad_sweep_files_give_one_clear_line(capsys, tmp_path, text, needles):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    code, _, err = run_cli(capsys, "run", "--config", str(path), "--tasks", "point_u_maze", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, *needles)


def test_a_missing_sweep_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", "--config", str(tmp_path / "nope.toml"))
    assert_one_line_error(code, err, f"--config {tmp_path / 'nope.toml'}: no such file")


def test_depth_ladder_on_the_command_line_and_in_a_sweep_file(tmp_path):
    from gcrl_bench import cli

    assert cli._depths("ladder") == [4, 16, 64, 256, 1024]
    assert cli._depths("4,16") == [4, 16]
    path = tmp_path / "sweep.toml"
    path.write_text('depths = "ladder"\nbatch_sizes = [256, 512]\n')
    params = sweep_params("--config", str(path))
    assert params["depths"] == "ladder" and params["batch_sizes"] == "256,512"
    assert cli._depths(params["depths"]) == [4, 16, 64, 256, 1024]
    assert sweep_params("--config", str(path), "--depths", "4")["depths"] == "4"  # the command line wins


def test_batch_sizes_are_a_sweep_axis(capsys, tmp_path, monkeypatch):
    """--depths 4,8 x --batch-sizes 32,64 x --seeds 0,1 on one task: 8 runs, each with its batch size."""
    from gcrl_bench import executors

    captured = []
    monkeypatch.setattr(executors, "run_all", lambda todo, *rest: captured.extend(todo) or [])
    code, stdout, err = run_cli(capsys, "run", "--tasks", "point_u_maze", "--preset", "smoke", "--depths", "4,8",
                                "--widths", "16", "--batch-sizes", "32,64", "--seeds", "0,1", "--no-report",
                                "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "plan: 8 runs (1 algos x 1 tasks x 2 networks x 2 batch sizes x 2 seeds)" in stdout
    grid = [(r.network.depth, r.loop.batch_size, r.seed) for r in captured]
    assert grid == [(d, b, s) for d in (4, 8) for b in (32, 64) for s in (0, 1)]
    assert len({r.run_id for r in captured}) == 8
    # the runs differ from the preset's loop in their batch size only
    from gcrl_bench.config import get_preset

    preset_loop = get_preset("smoke").loop_for("point_u_maze")
    assert {dataclasses.replace(r.loop, batch_size=preset_loop.batch_size) for r in captured} == {preset_loop}
    captured.clear()
    code, stdout, err = run_cli(capsys, "run", "--tasks", "point_u_maze", "--preset", "smoke", "--widths", "16",
                                "--set", "batch_size=96", "--no-report", "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "1 batch sizes" in stdout and [r.loop.batch_size for r in captured] == [96]


def _dry_run_ids(capsys, tmp_path, *extra):
    code, stdout, err = run_cli(capsys, "run", "--algos", "crl", "--tasks", "point_u_maze", "--widths", "8",
                                "--preset", "smoke", "--dry-run", "--out", str(tmp_path / "r"), *extra)
    assert code == 0, err
    return sorted(l.split()[0] for l in stdout.splitlines() if l.startswith("crl__"))


def test_matmul_precision_flag_is_the_set_key(capsys, tmp_path):
    default = _dry_run_ids(capsys, tmp_path)
    flag = _dry_run_ids(capsys, tmp_path, "--matmul-precision", "high")
    via_set = _dry_run_ids(capsys, tmp_path, "--set", "matmul_precision=high")
    assert len(flag) == 1 and flag == via_set and flag != default  # the config (and so the run id) records it
    assert _dry_run_ids(capsys, tmp_path, "--matmul-precision", "highest") == default  # the default value
    code, _, err = run_cli(capsys, "run", "--algos", "sac", "--tasks", "point_u_maze", "--preset", "smoke",
                           "--matmul-precision", "high", "--dry-run", "--out", str(tmp_path / "s"))
    assert_one_line_error(code, err, "matmul_precision")


@pytest.mark.parametrize("argv, needle", [
    (("run", "--logger", "bogus"), "'--logger'"),
    (("run", "--activation", "gelu"), "'--activation'"),
    (("inspect", "/nonexistent/run"), "RUN_DIR"),
    (("frobnicate",), "frobnicate"),
])
def test_click_usage_errors_are_one_line_too(capsys, argv, needle):
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, needle, "--help")
