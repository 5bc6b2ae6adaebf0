"""The report of a results directory written by real training runs: CRL on point_u_maze at depths 4
and 8, two seeds each, through the `gcrl-bench run` and `gcrl-bench report` commands."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pypdf import PdfReader
from rliable import metrics as rly_metrics

from gcrl_bench.cli import main
from gcrl_bench.reports import load_results, tables

# A tiny real loop (a few seconds per run after compilation); the same settings as other tests' grids,
# so its depth-4 programs come from the compilation cache when those ran first.
LOOP_SETS = dict(num_envs=8, unroll_length=10, batch_size=32, updates_per_step=2, min_replay_rows=20,
                 max_replay_rows=60, window_length=20, windows_per_step=8, num_eval_envs=8)
DEPTHS, SEEDS, WIDTH, EPOCHS, ENV_STEPS = (4, 8), (0, 1), 16, 3, 640
REPS = 200


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("real-results")
    sets = [a for k, v in LOOP_SETS.items() for a in ("--set", f"{k}={v}")]
    main(["run", "--algos", "crl", "--tasks", "point_u_maze", "--depths", ",".join(map(str, DEPTHS)),
          "--widths", str(WIDTH), "--seeds", ",".join(map(str, SEEDS)), "--preset", "smoke",
          "--env-steps", str(ENV_STEPS), "--epochs", str(EPOCHS), *sets, "--no-report", "--out", str(out)])
    main(["report", str(out), "--reps", str(REPS), "--seed", "3"])
    return out


def test_real_runs_are_loaded_with_their_scores_params_and_times(real_report):
    results = load_results(real_report)
    assert len(results.runs) == len(DEPTHS) * len(SEEDS) and results.not_included.empty
    for run in results.runs.itertuples():
        folder = real_report / "runs" / run.run_id
        summary = json.loads((folder / "summary.json").read_text())
        evaluations = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert len(evaluations) == EPOCHS
        assert run.score == pytest.approx(summary["score"])
        assert run.success_any_last5 == pytest.approx(np.mean([e["eval/success_any"] for e in evaluations[-5:]]))
        assert run.wall_time_s == pytest.approx(summary["wall_time_s"])
    # deeper networks have more parameters; seeds of one configuration have the same count
    counts = results.runs.groupby("depth")["param_count"].agg(["min", "max"])
    assert (counts["min"] == counts["max"]).all() and counts.loc[8, "min"] > counts.loc[4, "min"] > 0


def test_real_report_has_every_page_and_its_tables_match_the_csv(real_report):
    pages = [page.extract_text() for page in PdfReader(real_report / "report.pdf").pages]
    assert len(pages) == 15
    expected_titles = ("gcrl-bench report", "Time at goal per task", "Aggregate over tasks", "Depth scaling",
                       "Critical depth", "Cost of scale", "Comparisons over all tasks", "Probability of improvement",
                       "Learning curves", "Diagnostics: residual-branch ratio", "Diagnostics: gradient norm by block",
                       "Diagnostics: representation effective rank", "Diagnostics: warnings",
                       "Appendix: every included run", "Runs not included")
    for page, title in zip(pages, expected_titles):
        assert title in page, title
    assert f"{REPS:,} resamples, seed 3" in pages[0] and "point_u_maze" in pages[0]

    csv = pd.read_csv(real_report / "report_tables.csv")
    results = load_results(real_report)
    for row in csv[(csv["table"] == "task") & (csv["statistic"] == "time_at_goal")].itertuples():
        runs = results.runs[results.runs["depth"] == row.depth]
        assert row.value == pytest.approx(runs["score"].mean())
        assert tables.format_interval(row.value, row.ci95_low, row.ci95_high, 1) in pages[1]
    aggregate = csv[csv["table"] == "aggregate"].set_index(["depth", "statistic"])
    for depth in DEPTHS:
        normalised = results.runs[results.runs["depth"] == depth].sort_values("seed")["score_normalized"].to_numpy()[:, None]
        assert aggregate.loc[(depth, "iqm"), "value"] == pytest.approx(rly_metrics.aggregate_iqm(normalised))
        row = aggregate.loc[(depth, "iqm")]
        assert tables.format_interval(row["value"], row["ci95_low"], row["ci95_high"], 3) in pages[2]
    (improvement,) = csv[csv["table"] == "probability_of_improvement"].itertuples()
    assert improvement.depth == 8 and "depth 4" in improvement.versus
    assert tables.format_interval(improvement.value, improvement.ci95_low, improvement.ci95_high, 2) in pages[7]
    markdown = (real_report / "report_tables.md").read_text()
    latex = (real_report / "report_tables.tex").read_text()
    assert "## Probability of improvement" in markdown and "## Critical depth" in markdown
    assert latex.count(r"\begin{tabular}") == 4
