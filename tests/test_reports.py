"""Fast tests of the report: statistics against rliable and hand-computed values, reproducible
bootstrap intervals, and a report built from a small, well-formed results directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader
from rliable import library as rly
from rliable import metrics as rly_metrics

from gcrl_bench.errors import ResultsError
from gcrl_bench.reports import build_report, load_results, stats, tables

EPISODE_LENGTH = 1000
TASKS = ("ant_big_maze", "arm_push_easy")
DEPTHS = (4, 64)
SEEDS = (0, 1, 2)
EVAL_STEPS = tuple(range(100_000, 1_000_001, 100_000))  # 10 evaluations
REPS = 200

# ----------------------------------------------------------------------------------------------
# A results directory in the training code's format (format_version 1)


def _time_at_goal(task: str, depth: int, seed: int, step: int) -> float:
    """A plausible rising curve: deeper networks and the arm task do better; seeds differ."""
    ceiling = (300.0 if depth == 64 else 60.0) * (2.0 if task == "arm_push_easy" else 1.0)
    return ceiling * (step / EVAL_STEPS[-1]) ** 1.5 + 7.0 * seed


def _config(run_id: str, task: str, depth: int, seed: int) -> dict:
    return {
        "format_version": 1, "run_id": run_id, "algo": "crl", "task": task, "depth": depth, "width": 256,
        "seed": seed, "preset": "tiny", "env_steps_planned": EVAL_STEPS[-1], "episode_length": EPISODE_LENGTH,
        "algo_config": {"logsumexp_penalty": 0.1}, "loop_config": {"num_envs": 8, "batch_size": 256},
        "versions": {"gcrl_bench": "0.1.0", "jax": "0.10.0"}, "code_version": "abc1234",
        "hardware": {"platform": "cpu", "device": "TFRT_CPU_0", "cpu_count": 2},
    }


def _write_run(root: Path, rows: list, task: str, depth: int, seed: int, steps, *, complete: bool) -> str:
    run_id = f"crl_{task}_d{depth}_w256_s{seed}"
    run_dir = root / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(_config(run_id, task, depth, seed)))
    records = []
    for epoch, step in enumerate(steps):
        tag = _time_at_goal(task, depth, seed, step)
        values = {"time_at_goal": tag, "success_any": min(1.0, tag / 100), "success_at_end": min(1.0, tag / 300),
                  "final_distance": 5.0 - tag / 300}
        records.append({"epoch": epoch, "env_steps": step, "wall_time_s": 1.5 * (epoch + 1),
                        **{f"eval/{k}": v for k, v in values.items()}, "train/critic_loss": 0.5})
        rows += [("crl", task, depth, 256, seed, step, metric, value) for metric, value in values.items()]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if complete:
        score = float(np.mean([r["eval/time_at_goal"] for r in records[-5:]]))
        rows.append(("crl", task, depth, 256, seed, steps[-1], "score", score))
        (run_dir / "summary.json").write_text(json.dumps({
            "status": "complete", "score": score, "score_normalized": score / EPISODE_LENGTH,
            "env_steps": steps[-1], "wall_time_s": 15.0, "compile_time_s": 3.0, "episode_length": EPISODE_LENGTH,
        }))
    return run_id


def write_results_dir(root: Path) -> Path:
    """2 tasks x 2 depths x 3 complete seeds, plus one run still in progress (seed 3)."""
    rows: list = []
    for task in TASKS:
        for depth in DEPTHS:
            for seed in SEEDS:
                _write_run(root, rows, task, depth, seed, EVAL_STEPS, complete=True)
    _write_run(root, rows, "ant_big_maze", 64, 3, EVAL_STEPS[:4], complete=False)
    pd.DataFrame(rows, columns=["algo", "task", "depth", "width", "seed", "env_steps", "metric", "value"]).to_csv(
        root / "scores.csv", index=False
    )
    return root


def expected_score(task: str, depth: int, seed: int) -> float:
    return float(np.mean([_time_at_goal(task, depth, seed, s) for s in EVAL_STEPS[-5:]]))


IN_PROGRESS_RUN = "crl_ant_big_maze_d64_w256_s3"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = write_results_dir(tmp_path_factory.mktemp("results"))
    return root, build_report(root, reps=REPS, seed=0)


# ----------------------------------------------------------------------------------------------
# Statistics


def test_point_estimates_equal_rliable_functions():
    scores = np.random.default_rng(3).uniform(size=(7, 4))
    ours = stats.point_estimates(scores)
    assert ours["iqm"] == rly_metrics.aggregate_iqm(scores)
    assert ours["mean"] == rly_metrics.aggregate_mean(scores)
    assert ours["median"] == rly_metrics.aggregate_median(scores)
    assert ours["optimality_gap"] == rly_metrics.aggregate_optimality_gap(scores)
    intervals = stats.interval_estimates(scores, rng=np.random.default_rng(0), reps=50)
    assert {name: iv.estimate for name, iv in intervals.items()} == pytest.approx(ours, rel=0, abs=0)


def test_known_scores_give_known_mean_and_a_covering_interval():
    # Hand-computed: mean of (1, 2, 3, 4, 10) = 4; the IQM trims one value at each end: mean(2, 3, 4) = 3.
    scores = np.array([[1.0], [2.0], [3.0], [4.0], [10.0]])
    intervals = stats.interval_estimates(scores, rng=np.random.default_rng(0), reps=2000, statistics=("mean", "iqm"))
    assert intervals["mean"].estimate == pytest.approx(4.0)
    assert intervals["iqm"].estimate == pytest.approx(3.0)
    for interval in intervals.values():
        assert 1.0 <= interval.lower < interval.estimate < interval.upper <= 10.0
    # Two runs (0, 1): a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4, so the 95%
    # percentile interval is exactly [0, 1].
    pair = stats.seed_mean_interval(np.array([0.0, 1.0]), rng=np.random.default_rng(0), reps=2000)
    assert (pair.estimate, pair.lower, pair.upper) == (0.5, 0.0, 1.0)
    constant = stats.seed_mean_interval(np.array([5.0, 5.0, 5.0]), rng=np.random.default_rng(0), reps=100)
    assert (constant.estimate, constant.lower, constant.upper) == (5.0, 5.0, 5.0)


def test_bootstrap_is_reproducible_from_the_seed_and_leaves_the_global_rng_alone():
    scores = np.random.default_rng(4).uniform(size=(5, 3))
    np.random.seed(123)
    global_before = np.random.get_state()[1].copy()
    first = stats.interval_estimates(scores, rng=np.random.default_rng(7), reps=300)
    second = stats.interval_estimates(scores, rng=np.random.default_rng(7), reps=300)
    other = stats.interval_estimates(scores, rng=np.random.default_rng(8), reps=300)
    assert first == second
    assert first != other
    assert np.array_equal(np.random.get_state()[1], global_before)


def test_rliable_random_state_alone_does_not_reproduce_intervals():
    """Why stats seeds numpy's global RNG: rliable resamples with np.random.choice, ignoring random_state."""
    scores = np.random.default_rng(5).uniform(size=(5, 3))

    def iqm(matrix):
        return np.array([rly_metrics.aggregate_iqm(matrix)])

    with pytest.warns(FutureWarning):  # arch deprecates random_state
        _, first = rly.get_interval_estimates({"x": scores}, iqm, reps=300, random_state=np.random.RandomState(0))
        _, second = rly.get_interval_estimates({"x": scores}, iqm, reps=300, random_state=np.random.RandomState(0))
    assert not np.array_equal(first["x"], second["x"])


def test_unequal_seed_counts_keep_the_lowest_seeds_and_name_the_dropped_runs():
    matrix = stats.common_seed_matrix({"b": {1: 0.9, 0: 1.0}, "a": {0: 0.1, 2: 0.3, 1: 0.2}})
    assert matrix.tasks == ("a", "b")
    np.testing.assert_array_equal(matrix.scores, [[0.1, 1.0], [0.2, 0.9]])
    np.testing.assert_array_equal(matrix.seeds, [[0, 0], [1, 1]])
    assert matrix.dropped == (("a", 2),)
    with pytest.raises(ValueError):
        stats.common_seed_matrix({"a": {}})


def test_probability_of_improvement_is_half_for_identical_and_one_for_dominated_runs():
    scores = np.random.default_rng(0).uniform(size=(4, 3))
    same = stats.probability_of_improvement(scores, scores, rng=np.random.default_rng(0), reps=200)
    assert same.estimate == 0.5
    better = stats.probability_of_improvement(scores + 2.0, scores, rng=np.random.default_rng(0), reps=200)
    assert (better.estimate, better.lower, better.upper) == (1.0, 1.0, 1.0)
    worse = stats.probability_of_improvement(scores, scores + 2.0, rng=np.random.default_rng(0), reps=200)
    assert worse.estimate == 0.0
    # equal to rliable's own function on the same inputs, runs counts may differ between X and Y
    other = np.random.default_rng(1).uniform(size=(6, 3))
    mixed = stats.probability_of_improvement(scores, other, rng=np.random.default_rng(0), reps=200)
    assert mixed.estimate == rly_metrics.probability_of_improvement(scores, other)
    assert mixed.lower <= mixed.estimate <= mixed.upper
    again = stats.probability_of_improvement(scores, other, rng=np.random.default_rng(0), reps=200)
    assert again == mixed


def test_performance_profile_and_iqm_curve_equal_rliable_point_estimates():
    scores = np.random.default_rng(2).uniform(size=(5, 2))
    thresholds = np.linspace(0, 1, 11)
    profile, lower, upper = stats.performance_profile(scores, thresholds, rng=np.random.default_rng(0), reps=200)
    # hand check: the fraction of the 10 scores strictly above each threshold
    np.testing.assert_allclose(profile, [(scores > t).mean() for t in thresholds])
    assert np.all(lower <= profile + 1e-12) and np.all(profile <= upper + 1e-12)
    curves = np.random.default_rng(3).uniform(size=(4, 2, 3))
    iqm, lower, upper = stats.iqm_curve(curves, rng=np.random.default_rng(0), reps=200)
    np.testing.assert_allclose(iqm, [rly_metrics.aggregate_iqm(curves[..., i]) for i in range(3)])
    assert np.all(lower <= iqm + 1e-12) and np.all(iqm <= upper + 1e-12)


def test_critical_depth_is_the_first_depth_above_depth_4s_interval():
    from gcrl_bench.reports.scaling import critical_depth

    assert critical_depth([4, 8, 16, 32], [0.1, 0.15, 0.31, 0.5], [0.3, 0.4, 0.6, 0.7]) == 16
    assert np.isnan(critical_depth([4, 8], [0.1, 0.2], [0.3, 0.4]))  # overlapping intervals: none
    assert np.isnan(critical_depth([8, 16], [0.1, 0.9], [0.2, 1.0]))  # no depth 4 to compare with


def test_align_curves_uses_the_union_grid_within_the_common_range():
    grid, values = stats.align_curves([
        (np.array([0, 10, 20]), np.array([0.0, 1.0, 2.0])),
        (np.array([0, 15, 30]), np.array([0.0, 3.0, 6.0])),
    ])
    np.testing.assert_array_equal(grid, [0, 10, 15, 20])
    np.testing.assert_allclose(values, [[0, 1, 1.5, 2], [0, 2, 3, 4]])


def test_curve_band_single_run_has_no_spread_and_several_runs_bracket_the_mean():
    mean, lower, upper = stats.curve_band(np.array([[1.0, 2.0, 3.0]]), rng=np.random.default_rng(0), reps=50)
    np.testing.assert_array_equal(lower, mean)
    np.testing.assert_array_equal(upper, mean)
    values = np.random.default_rng(1).uniform(size=(4, 6))
    mean, lower, upper = stats.curve_band(values, rng=np.random.default_rng(0), reps=200)
    np.testing.assert_allclose(mean, values.mean(axis=0))
    assert np.all(lower <= mean) and np.all(mean <= upper)


# ----------------------------------------------------------------------------------------------
# The report


def test_report_writes_pdf_and_tables_beside_it(built):
    root, paths = built
    assert paths == {
        "pdf": root / "report.pdf", "csv": root / "report_tables.csv",
        "markdown": root / "report_tables.md", "latex": root / "report_tables.tex",
    }
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert not list(root.glob(".*.tmp"))


def test_report_pages_show_what_was_run_tables_curves_and_excluded_runs(built):
    _, paths = built
    pages = [page.extract_text() for page in PdfReader(paths["pdf"]).pages]
    assert len(pages) == 13
    (title, task_page, aggregate_page, scaling_page, critical_page, cost_page, comparison_page, improvement_page,
     curves, diagnostics_page, warnings_page, appendix, excluded) = pages
    assert "gcrl-bench report" in title
    for expected in ("crl", *TASKS, "4, 64", "256", "0, 1, 2", "tiny", "1,000,000", "jax 0.10.0", "abc1234",
                     "TFRT_CPU_0", f"{REPS:,} resamples, seed 0"):
        assert expected in title, expected
    assert "Time at goal per task" in task_page
    csv = pd.read_csv(paths["csv"])
    for row in csv[(csv["table"] == "task") & (csv["statistic"] == "time_at_goal")].itertuples():
        assert tables.format_interval(row.value, row.ci95_low, row.ci95_high, 1) in task_page
    assert "Aggregate over tasks" in aggregate_page and "IQM" in aggregate_page
    assert "Depth scaling" in scaling_page and "network depth (layers, log2 scale)" in scaling_page
    assert all(task in scaling_page for task in TASKS)
    # the fixture's depth-64 runs beat depth 4 on every task and seed: a critical depth of 64 everywhere
    assert "Critical depth" in critical_page
    for task in (*TASKS, "aggregate (IQM)"):
        assert f"crl 256 {task} 4 64 64" in critical_page, task
    assert "network parameters" in cost_page and "wall-clock time per run" in cost_page
    assert "probability of improvement" in comparison_page and "performance profile" in comparison_page
    assert "sample efficiency" in comparison_page
    assert "crl depth 64 width 256" in improvement_page and "1.00 [1.00, 1.00]" in improvement_page
    assert "Appendix: every included run" in appendix and all(f"crl_{t}_d64_w256_s2" in appendix for t in TASKS)
    assert "Learning curves" in curves and "environment steps (millions)" in curves
    assert all(task in curves for task in TASKS)
    # the fixture's runs recorded no diagnostics: a note page, no figure; and no warnings
    assert "Diagnostics" in diagnostics_page and "No run recorded per-layer diagnostics" in diagnostics_page
    assert "Diagnostics: warnings" in warnings_page and "none" in warnings_page
    assert "Runs not included" in excluded and IN_PROGRESS_RUN in excluded and "400,000" in excluded


def test_paper_numbers_only_beside_runs_of_the_papers_budget():
    from gcrl_bench.reports import reference

    assert reference.paper_table1("crl", "ant_big_maze", 64, 256, 1000, 100_000_000) == (441.0, 25.0)
    assert reference.paper_table1("crl", "arm_push_easy", 4, 256, 1000, 99_000_000) == (308.0, 33.0)
    assert reference.paper_table1("crl", "ant_big_maze", 64, 256, 1000, 7_200) is None
    assert reference.paper_table1("crl", "ant_u5_maze", 64, 256, 1000, 100_000_000) is None  # needs 400M
    assert reference.paper_table1("crl", "ant_big_maze", 64, 64, 1000, 100_000_000) is None


def test_csv_matches_scores_recomputed_from_the_runs(built):
    _, paths = built
    csv = pd.read_csv(paths["csv"])
    task_rows = csv[(csv["table"] == "task") & (csv["statistic"] == "time_at_goal")]
    assert len(task_rows) == len(TASKS) * len(DEPTHS)
    success = csv[(csv["table"] == "task") & (csv["statistic"] == "success_any")].set_index(["task", "depth"])
    for task in TASKS:
        for depth in DEPTHS:
            # the fixture's success_any is min(1, time_at_goal / 100) at every evaluation
            expected = np.mean([np.mean([min(1.0, _time_at_goal(task, depth, s, e) / 100) for e in EVAL_STEPS[-5:]])
                                for s in SEEDS])
            assert success.loc[(task, depth), "value"] == pytest.approx(expected)
    for row in task_rows.itertuples():
        scores = [expected_score(row.task, row.depth, seed) for seed in SEEDS]
        assert row.value == pytest.approx(np.mean(scores))
        assert row.ci95_low <= row.value <= row.ci95_high
        assert int(row.num_seeds) == 3  # the in-progress seed 3 is excluded
    # the fixture's runs are far shorter than the paper's 100M env steps: its numbers are not shown beside them
    assert task_rows["paper_table1_mean"].isna().all()

    aggregate = csv[csv["table"] == "aggregate"].set_index(["depth", "statistic"])
    for depth in DEPTHS:
        normalized = np.array([[expected_score(t, depth, s) / EPISODE_LENGTH for t in TASKS] for s in SEEDS])
        assert aggregate.loc[(depth, "mean"), "value"] == pytest.approx(rly_metrics.aggregate_mean(normalized))
        assert aggregate.loc[(depth, "iqm"), "value"] == pytest.approx(rly_metrics.aggregate_iqm(normalized))
        assert aggregate.loc[(depth, "iqm"), "num_tasks"] == len(TASKS)

    markdown = paths["markdown"].read_text()
    for row in task_rows.itertuples():
        assert tables.format_interval(row.value, row.ci95_low, row.ci95_high, 1) in markdown
    assert r"\begin{tabular}" in paths["latex"].read_text()


def test_report_numbers_depend_only_on_data_reps_and_seed(built, tmp_path):
    root, paths = built
    again = build_report(root, tmp_path / "again.pdf", reps=REPS, seed=0)
    assert again["csv"] == tmp_path / "again_tables.csv"
    assert again["csv"].read_text() == paths["csv"].read_text()
    other = build_report(root, tmp_path / "other.pdf", reps=REPS, seed=1)
    first, second = pd.read_csv(paths["csv"]), pd.read_csv(other["csv"])
    pd.testing.assert_series_equal(first["value"], second["value"])
    assert not first["ci95_low"].equals(second["ci95_low"])


def test_in_progress_runs_are_listed_and_left_out(built):
    root, _ = built
    results = load_results(root)
    assert list(results.not_included["run_id"]) == [IN_PROGRESS_RUN]
    assert results.not_included["last_env_steps"].iloc[0] == EVAL_STEPS[3]
    assert IN_PROGRESS_RUN not in set(results.runs["run_id"])
    assert 3 not in set(results.evaluations["seed"])
    assert len(results.runs) == len(TASKS) * len(DEPTHS) * len(SEEDS)


def test_a_run_directory_without_config_is_listed_not_fatal(tmp_path):
    root = write_results_dir(tmp_path / "results")
    (root / "runs" / "crl__starting").mkdir()
    results = load_results(root)
    listed = results.not_included.set_index("run_id")
    assert "no config.json" in listed.loc["crl__starting", "reason"]
    assert listed.loc["crl__starting", "algo"] is None
    assert len(results.runs) == len(TASKS) * len(DEPTHS) * len(SEEDS)


def _write_batch_run(root: Path, depth: int, batch_size: int, seed: int, tag: float) -> None:
    """A complete run whose 5 evaluations all have time at goal ``tag`` (so its score is ``tag``)."""
    run_id = f"crl_ant_big_maze_d{depth}_b{batch_size}_s{seed}"
    run_dir = root / "runs" / run_id
    run_dir.mkdir(parents=True)
    config = {**_config(run_id, "ant_big_maze", depth, seed), "batch_size": batch_size}
    (run_dir / "config.json").write_text(json.dumps(config))
    records = [{"epoch": e, "env_steps": step, "eval/time_at_goal": tag, "eval/success_any": 0.5,
                "eval/success_at_end": 0.25, "eval/final_distance": 1.0} for e, step in enumerate(EVAL_STEPS[-5:])]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run_dir / "summary.json").write_text(json.dumps({"status": "complete", "score": tag, "env_steps": EVAL_STEPS[-1]}))


def test_two_batch_sizes_add_a_batch_size_by_depth_table(tmp_path):
    from gcrl_bench import results as results_format

    root = tmp_path / "results"
    # (depth, batch size) -> the scores of seeds 0 and 1; depth 64 ran only at batch size 256
    cells = {(4, 256): (10.0, 20.0), (4, 512): (30.0, 50.0), (64, 256): (60.0, 60.0)}
    for (depth, batch_size), scores in cells.items():
        for seed, tag in enumerate(scores):
            _write_batch_run(root, depth, batch_size, seed, tag)
    results_format.write_scores_csv(root)
    table = tables.batch_depth_table(load_results(root), reps=REPS, seed=0)
    assert table[["batch_size", "depth", "num_seeds", "mean"]].values.tolist() == [
        [256, 4, 2, 15.0], [256, 64, 2, 60.0], [512, 4, 2, 40.0]]
    # two distinct seed scores: every resample's mean lies in [min, max] and both ends have mass 1/4
    assert table[["ci95_low", "ci95_high"]].values.tolist() == [[10.0, 20.0], [60.0, 60.0], [30.0, 50.0]]
    text = tables.display_batch_depth_table(table)
    assert list(text.columns) == ["Task", "Algorithm", "Width", "Batch size", "Depth 4", "Depth 64"]
    assert text.values.tolist() == [
        ["ant_big_maze", "crl", "256", "256", "15.0 [10.0, 20.0] (n=2)", "60.0 [60.0, 60.0] (n=2)"],
        ["ant_big_maze", "crl", "256", "512", "40.0 [30.0, 50.0] (n=2)", "-"],
    ]
    paths = build_report(root, reps=REPS, seed=0)
    markdown = paths["markdown"].read_text()
    assert "## Batch size x depth: time at goal" in markdown and "40.0 [30.0, 50.0] (n=2)" in markdown
    # batch size 256 has the most runs (4 of 6): the per-task table shows its runs only, not both pooled
    task_section = markdown.split("## Aggregate over tasks")[0]
    assert "| 15.0 [10.0, 20.0] |" in task_section and "| 60.0 [60.0, 60.0] |" in task_section
    assert "40.0" not in task_section and "Runs of batch size 256 only" in task_section
    pages = [page.extract_text() for page in PdfReader(paths["pdf"]).pages]
    assert any("Batch size x depth: time at goal" in page and "40.0 [30.0, 50.0] (n=2)" in page for page in pages)
    assert any("Batch size x depth: time at goal vs network depth" in page for page in pages)


def test_one_batch_size_gives_no_batch_size_table(built):
    _, paths = built
    assert "Batch size x depth" not in paths["markdown"].read_text()


# ----------------------------------------------------------------------------------------------
# Bad input


def _corrupt_scores_garbage(root: Path) -> str:
    (root / "scores.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
    return "scores.csv"


def _corrupt_scores_columns(root: Path) -> str:
    table = pd.read_csv(root / "scores.csv").rename(columns={"value": "score"})
    table.to_csv(root / "scores.csv", index=False)
    return "scores.csv"


def _corrupt_scores_value(root: Path) -> str:
    text = (root / "scores.csv").read_text().splitlines()
    text[5] = ",".join(text[5].split(",")[:-1] + ["oops"])
    (root / "scores.csv").write_text("\n".join(text) + "\n")
    return "line 6"


def _corrupt_config_json(root: Path) -> str:
    (root / "runs" / "crl_arm_push_easy_d4_w256_s1" / "config.json").write_text('{"format_version": 1, "algo": ')
    return "crl_arm_push_easy_d4_w256_s1/config.json"


def _incompatible_format_version(root: Path) -> str:
    path = root / "runs" / "crl_ant_big_maze_d4_w256_s0" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": 2}))
    return "format_version 2"


def _missing_score_row(root: Path) -> str:
    table = pd.read_csv(root / "scores.csv")
    drop = (table["metric"] == "score") & (table["task"] == "arm_push_easy") & (table["seed"] == 2) & (table["depth"] == 4)
    table[~drop].to_csv(root / "scores.csv", index=False)
    return "crl_arm_push_easy_d4_w256_s2"


def _no_complete_runs(root: Path) -> str:
    for summary in root.glob("runs/*/summary.json"):
        summary.unlink()
    return "no complete run"


def _missing_scores(root: Path) -> str:
    (root / "scores.csv").unlink()
    return "scores.csv is missing"


def _two_runs_with_one_identity(root: Path) -> str:
    source = root / "runs" / "crl_ant_big_maze_d4_w256_s0"
    target = root / "runs" / "crl_ant_big_maze_d4_w256_s0_other_preset"
    target.mkdir()
    config = json.loads((source / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "run_id": target.name, "preset": "small"}))
    return "different settings"


@pytest.mark.parametrize("corrupt", [
    _corrupt_scores_garbage, _corrupt_scores_columns, _corrupt_scores_value, _corrupt_config_json,
    _incompatible_format_version, _missing_score_row, _no_complete_runs, _missing_scores,
    _two_runs_with_one_identity,
])
def test_bad_results_directory_raises_one_line_results_error(tmp_path, corrupt):
    root = write_results_dir(tmp_path / "results")
    expected = corrupt(root)
    with pytest.raises(ResultsError) as caught:
        build_report(root, reps=10)
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert not (root / "report.pdf").exists()


def test_missing_directory_raises_results_error(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        build_report(tmp_path / "nowhere")


def test_algorithms_tasks_and_training_do_not_import_the_statistics_or_plotting_stack():
    code = ("import sys, gcrl_bench, gcrl_bench.algorithms, gcrl_bench.tasks, gcrl_bench.training, gcrl_bench.runner; "
            "heavy = {'matplotlib', 'seaborn', 'rliable', 'arch', 'scipy.stats', 'pypdf'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    # the check can fail: the report package does pull them in
    reports = "import sys, gcrl_bench.reports; assert {'matplotlib', 'rliable', 'scipy.stats'} <= set(sys.modules)"
    subprocess.run([sys.executable, "-c", reports], check=True)
