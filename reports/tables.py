"""The report's tables: numbers (DataFrames) and their one text rendering, shared by CSV, Markdown,
LaTeX and the PDF so that all of them show the same values.

Two tables:
- per task: a run's score is its time at goal (mean of its last 5 evaluations); per
  (task, algo, depth, width) the table gives the mean over seeds with a 95% stratified-bootstrap
  interval over seeds, the number of seeds, and the paper's Table 1 value where there is one;
- aggregate: per (algo, depth, width), over the tasks it ran, the normalised score
  (score / episode_length, in [0, 1]) summarised by IQM, mean, median and optimality gap with 95%
  stratified-bootstrap intervals (runs resampled within each task).
A third, when the results hold more than one batch size: batch size x depth, the per-task mean time
at goal over seeds per (task, algo, width, batch_size, depth) with its 95% interval over seeds.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from gcrl_bench.reports import reference, stats
from gcrl_bench.reports.results import Results

SUCCESS_COLUMNS = ("success_any", "success_at_end")
AGGREGATE_STATISTICS = ("iqm", "mean", "median", "optimality_gap")
_STATISTIC_LABELS = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}
CSV_COLUMNS = (
    "table", "task", "algo", "depth", "width", "statistic", "value", "ci95_low", "ci95_high",
    "num_seeds", "num_tasks", "unit", "paper_table1_mean", "paper_table1_se", "versus",
)


def cell_rng(seed: int, *identity: object) -> np.random.Generator:
    """The bootstrap generator of one table cell or curve: a function of the report seed and the
    cell's identity only, so adding runs of other configurations leaves its interval unchanged."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), zlib.crc32("|".join(map(str, identity)).encode())])


def task_table(results: Results, *, reps: int, seed: int) -> pd.DataFrame:
    """Time at goal per (task, algo, depth, width).

    Returns:
        one row per configuration and task, sorted, with columns task, algo, depth, width,
        num_seeds, env_steps (the smallest final env steps of its runs), episode_length, mean, ci95_low, ci95_high (time at goal in steps, from
        0 to episode_length), paper_table1_mean, paper_table1_se (NaN where the paper has none),
        and for m in SUCCESS_COLUMNS (fractions of evaluation episodes, last 5 evaluations): m,
        m_ci95_low, m_ci95_high.
    """
    rows = []
    for (task, algo, depth, width), runs in results.runs.groupby(["task", "algo", "depth", "width"]):
        episode_lengths = sorted(set(runs["episode_length"]))
        interval = stats.seed_mean_interval(
            runs["score"].to_numpy(), rng=cell_rng(seed, "task", task, algo, depth, width), reps=reps
        )
        success = {}
        for metric in SUCCESS_COLUMNS:
            values = runs[f"{metric}_last5"].to_numpy()
            measured = values[np.isfinite(values)]  # a run that did not record it is left out, not zeroed
            cell = (stats.seed_mean_interval(measured, rng=cell_rng(seed, metric, task, algo, depth, width), reps=reps)
                    if measured.size else stats.Interval.missing())
            success |= {metric: cell.estimate, f"{metric}_ci95_low": cell.lower, f"{metric}_ci95_high": cell.upper}
        paper = (reference.paper_table1(algo, task, depth, width, episode_lengths[0], float(runs["env_steps"].min()))
                 if len(episode_lengths) == 1 else None)
        rows.append({
            "task": task, "algo": algo, "depth": int(depth), "width": int(width), "num_seeds": len(runs),
            "env_steps": int(runs["env_steps"].min()),
            "episode_length": "/".join(map(str, episode_lengths)),
            "mean": interval.estimate, "ci95_low": interval.lower, "ci95_high": interval.upper,
            "paper_table1_mean": paper[0] if paper else math.nan,
            "paper_table1_se": paper[1] if paper else math.nan,
            **success,
        })
    return pd.DataFrame(rows)


def configuration_matrix(runs: pd.DataFrame, column: str = "score_normalized") -> stats.SeedMatrix:
    """One configuration's runs as a (num_runs x num_tasks) matrix, by `stats.common_seed_matrix`
    (equal run counts per task: each task keeps its lowest seeds; the rest are reported as dropped).

    Args:
        runs: rows of `Results.runs` of one (algo, depth, width).
        column: the per-run score to arrange.
    """
    return stats.common_seed_matrix({
        task: dict(zip(group["seed"].astype(int), group[column].astype(float))) for task, group in runs.groupby("task")
    })


def aggregate_table(results: Results, *, reps: int, seed: int) -> pd.DataFrame:
    """Normalised score aggregated over tasks per (algo, depth, width).

    The aggregate covers the tasks on which the configuration has complete runs (listed in the
    `tasks` column); aggregates over different task sets are not comparable. With unequal seed
    counts across tasks every task keeps its lowest seeds up to the smallest count
    (`configuration_matrix`); the runs left out are named in `dropped_runs`.

    Returns:
        one row per configuration with columns algo, depth, width, num_tasks, tasks,
        seeds_per_task, dropped_runs, and for each statistic s in AGGREGATE_STATISTICS:
        s, s_ci95_low, s_ci95_high.
    """
    rows = []
    for (algo, depth, width), runs in results.runs.groupby(["algo", "depth", "width"]):
        matrix = configuration_matrix(runs)
        estimates = stats.interval_estimates(
            matrix.scores, rng=cell_rng(seed, "aggregate", algo, depth, width), reps=reps
        )
        row = {
            "algo": algo, "depth": int(depth), "width": int(width), "num_tasks": len(matrix.tasks),
            "tasks": " ".join(matrix.tasks), "seeds_per_task": str(matrix.scores.shape[0]),
            "dropped_runs": " ".join(f"{task}/seed{s}" for task, s in matrix.dropped),
        }
        for name in AGGREGATE_STATISTICS:
            interval = estimates[name]
            row |= {name: interval.estimate, f"{name}_ci95_low": interval.lower, f"{name}_ci95_high": interval.upper}
        rows.append(row)
    return pd.DataFrame(rows)


def long_table(tasks: pd.DataFrame, aggregates: pd.DataFrame, improvements: pd.DataFrame | None = None,
               critical_depths: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every table in one long-form table (the CSV), one row per reported statistic; columns CSV_COLUMNS.

    `improvements` (`scaling.improvement_table`) gives rows with table "probability_of_improvement"
    (X in algo/depth/width, Y in `versus`); `critical_depths` (`scaling.depth_scaling_table`) rows
    with table "critical_depth" (value NaN: no depth above depth 4's interval)."""
    rows = []
    for _, row in tasks.iterrows():
        rows.append({
            "table": "task", "task": row["task"], "algo": row["algo"], "depth": row["depth"], "width": row["width"],
            "statistic": "time_at_goal", "value": row["mean"], "ci95_low": row["ci95_low"], "ci95_high": row["ci95_high"],
            "num_seeds": row["num_seeds"], "num_tasks": 1,
            "unit": f"time_at_goal (steps out of {row['episode_length']})",
            "paper_table1_mean": row["paper_table1_mean"], "paper_table1_se": row["paper_table1_se"],
        })
        for metric in SUCCESS_COLUMNS:
            rows.append({
                "table": "task", "task": row["task"], "algo": row["algo"], "depth": row["depth"], "width": row["width"],
                "statistic": metric, "value": row[metric], "ci95_low": row[f"{metric}_ci95_low"],
                "ci95_high": row[f"{metric}_ci95_high"], "num_seeds": row["num_seeds"], "num_tasks": 1,
                "unit": "fraction of evaluation episodes", "paper_table1_mean": math.nan, "paper_table1_se": math.nan,
            })
    for _, row in aggregates.iterrows():
        for name in AGGREGATE_STATISTICS:
            rows.append({
                "table": "aggregate", "task": row["tasks"], "algo": row["algo"], "depth": row["depth"],
                "width": row["width"], "statistic": name, "value": row[name],
                "ci95_low": row[f"{name}_ci95_low"], "ci95_high": row[f"{name}_ci95_high"],
                "num_seeds": row["seeds_per_task"], "num_tasks": row["num_tasks"],
                "unit": "normalized score (time_at_goal / episode_length)",
                "paper_table1_mean": math.nan, "paper_table1_se": math.nan,
            })
    for _, row in (improvements if improvements is not None else pd.DataFrame()).iterrows():
        rows.append({
            "table": "probability_of_improvement", "task": row["tasks"], "algo": row["algo"], "depth": row["depth"],
            "width": row["width"], "statistic": "P(X>Y)", "value": row["probability"], "ci95_low": row["ci95_low"],
            "ci95_high": row["ci95_high"], "num_tasks": row["num_tasks"], "unit": "probability",
            "versus": f"{row['versus_algo']} depth {row['versus_depth']} width {row['width']}",
        })
    for _, row in (critical_depths if critical_depths is not None else pd.DataFrame()).iterrows():
        rows.append({
            "table": "critical_depth", "task": row["task"], "algo": row["algo"], "width": row["width"],
            "statistic": "critical_depth", "value": row["critical_depth"], "unit": "layers",
            "versus": f"depth 4 (depths run: {row['depths']})",
        })
    table = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    # Integer columns stay integers in the CSV ("8", not "8.0"); rows without one (critical depth) stay empty.
    for column in ("depth", "width", "num_seeds", "num_tasks"):
        table[column] = pd.to_numeric(table[column]).round().astype("Int64")
    return table


def display_improvement_table(improvements: pd.DataFrame) -> pd.DataFrame:
    """The probability-of-improvement table as text."""
    return pd.DataFrame({
        "X": [f"{r.algo} depth {r.depth} width {r.width}" for r in improvements.itertuples()],
        "Y": [f"{r.versus_algo} depth {r.versus_depth} width {r.width}" for r in improvements.itertuples()],
        "Tasks": improvements["num_tasks"].astype(str),
        "P(X > Y) [95% CI]": [format_interval(r.probability, r.ci95_low, r.ci95_high, 2) for r in improvements.itertuples()],
    }, columns=["X", "Y", "Tasks", "P(X > Y) [95% CI]"])


def display_critical_depth_table(critical_depths: pd.DataFrame) -> pd.DataFrame:
    """The critical-depth table as text."""
    return pd.DataFrame({
        "Algorithm": critical_depths["algo"],
        "Width": critical_depths["width"].astype(str),
        "Task": critical_depths["task"],
        "Depths run": critical_depths["depths"],
        "Critical depth": ["none" if not math.isfinite(v) else str(int(v)) for v in critical_depths["critical_depth"]],
    }, columns=["Algorithm", "Width", "Task", "Depths run", "Critical depth"])


def batch_depth_table(results: Results, *, reps: int, seed: int) -> pd.DataFrame:
    """Time at goal per (task, algo, width, batch_size, depth): the batch size x depth comparison.

    Returns:
        one row per cell, sorted, with columns task, algo, width, batch_size, depth, num_seeds,
        episode_length, mean, ci95_low, ci95_high (mean time at goal over seeds, in steps from 0 to
        episode_length, with a 95% bootstrap interval over seeds, `stats.seed_mean_interval`).
    """
    rows = []
    keys = ["task", "algo", "width", "batch_size", "depth"]
    for (task, algo, width, batch_size, depth), runs in results.runs.groupby(keys):
        interval = stats.seed_mean_interval(
            runs["score"].to_numpy(), rng=cell_rng(seed, "batch", task, algo, depth, width, batch_size), reps=reps
        )
        rows.append({
            "task": task, "algo": algo, "width": int(width), "batch_size": int(batch_size), "depth": int(depth),
            "num_seeds": len(runs), "episode_length": "/".join(map(str, sorted(set(runs["episode_length"])))),
            "mean": interval.estimate, "ci95_low": interval.lower, "ci95_high": interval.upper,
        })
    return pd.DataFrame(rows, columns=[*keys, "num_seeds", "episode_length", "mean", "ci95_low", "ci95_high"])


def display_batch_depth_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The batch size x depth table as text: one row per (task, algo, width, batch size), one column per
    depth holding 'mean [low, high] (n seeds)'; '-' where that depth was not run at that batch size."""
    depths = sorted({int(d) for d in cells["depth"]})
    rows = []
    for (task, algo, width, batch_size), group in cells.groupby(["task", "algo", "width", "batch_size"]):
        by_depth = {int(r.depth): r for r in group.itertuples()}
        rows.append({
            "Task": task, "Algorithm": algo, "Width": str(width), "Batch size": str(batch_size),
            **{f"Depth {d}": (f"{format_interval(by_depth[d].mean, by_depth[d].ci95_low, by_depth[d].ci95_high, 1)} "
                              f"(n={by_depth[d].num_seeds})" if d in by_depth else "-") for d in depths},
        })
    return pd.DataFrame(rows, columns=["Task", "Algorithm", "Width", "Batch size", *(f"Depth {d}" for d in depths)])


def format_interval(estimate: float, lower: float, upper: float, digits: int) -> str:
    """'12.3 [10.1, 14.0]'; 'n/a' for an unavailable (NaN) estimate."""
    if not math.isfinite(estimate):
        return "n/a"
    return f"{estimate:.{digits}f} [{lower:.{digits}f}, {upper:.{digits}f}]"


def display_task_table(tasks: pd.DataFrame) -> pd.DataFrame:
    """The per-task table as text, exactly as Markdown, LaTeX and the PDF print it."""
    return pd.DataFrame({
        "Task": tasks["task"],
        "Algorithm": tasks["algo"],
        "Depth": tasks["depth"].astype(str),
        "Width": tasks["width"].astype(str),
        "Seeds": tasks["num_seeds"].astype(str),
        "Episode length": tasks["episode_length"],
        "Env steps": [f"{v / 1e6:.3g}M" if v >= 1e6 else f"{v:,}" for v in tasks["env_steps"]],
        "Time at goal [95% CI]": [
            format_interval(r["mean"], r["ci95_low"], r["ci95_high"], 1) for _, r in tasks.iterrows()
        ],
        "Success any [95% CI]": [
            format_interval(r["success_any"], r["success_any_ci95_low"], r["success_any_ci95_high"], 2)
            for _, r in tasks.iterrows()
        ],
        "Success at end [95% CI]": [
            format_interval(r["success_at_end"], r["success_at_end_ci95_low"], r["success_at_end_ci95_high"], 2)
            for _, r in tasks.iterrows()
        ],
        "Paper Table 1": [
            "" if not math.isfinite(r["paper_table1_mean"])
            else f"{r['paper_table1_mean']:g} ± {r['paper_table1_se']:g}"
            + (f" ({reference.paper_note(r['task'])})" if reference.paper_note(r["task"]) else "")
            for _, r in tasks.iterrows()
        ],
    })


def display_aggregate_table(aggregates: pd.DataFrame) -> pd.DataFrame:
    """The aggregate table as text, exactly as Markdown, LaTeX and the PDF print it."""
    table = pd.DataFrame({
        "Algorithm": aggregates["algo"],
        "Depth": aggregates["depth"].astype(str),
        "Width": aggregates["width"].astype(str),
        "Tasks": aggregates["num_tasks"].astype(str),
        "Seeds per task": aggregates["seeds_per_task"],
    })
    for name in AGGREGATE_STATISTICS:
        table[f"{_STATISTIC_LABELS[name]} [95% CI]"] = [
            format_interval(r[name], r[f"{name}_ci95_low"], r[f"{name}_ci95_high"], 3) for _, r in aggregates.iterrows()
        ]
    return table


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of a DataFrame of strings."""
    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(table.columns), line(["---"] * len(table.columns)), *(line(r) for r in table.itertuples(index=False))])


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                          ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("±", r"$\pm$")):
        text = text.replace(char, escaped)
    return text


def to_latex(table: pd.DataFrame, caption: str) -> str:
    """A LaTeX `table` environment (booktabs) of a DataFrame of strings."""
    def line(cells) -> str:
        return " & ".join(_latex_escape(str(c)) for c in cells) + r" \\"
    return "\n".join([
        r"\begin{table}[ht]", r"\centering", r"\small",
        r"\begin{tabular}{" + "l" * len(table.columns) + "}", r"\toprule", line(table.columns), r"\midrule",
        *(line(r) for r in table.itertuples(index=False)),
        r"\bottomrule", r"\end{tabular}", rf"\caption{{{_latex_escape(caption)}}}", r"\end{table}",
    ])
