"""The report's tables: numbers (DataFrames) and their one text rendering, shared by CSV, Markdown,
LaTeX and the PDF so that all of them show the same values.

Two tables:
- per task: a run's score is its time at goal (mean of its last 5 evaluations); per
  (task, algo, depth, width) the table gives the mean over seeds with a 95% stratified-bootstrap
  interval over seeds, the number of seeds, and the paper's Table 1 value where there is one;
- aggregate: per (algo, depth, width), over the tasks it ran, the normalised score
  (score / episode_length, in [0, 1]) summarised by IQM, mean, median and optimality gap with 95%
  stratified-bootstrap intervals (runs resampled within each task).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from gcrl_bench.reports import reference, stats
from gcrl_bench.reports.results import Results

AGGREGATE_STATISTICS = ("iqm", "mean", "median", "optimality_gap")
_STATISTIC_LABELS = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}
CSV_COLUMNS = (
    "table", "task", "algo", "depth", "width", "statistic", "value", "ci95_low", "ci95_high",
    "num_seeds", "num_tasks", "unit", "paper_table1_mean", "paper_table1_se",
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
        num_seeds, episode_length, mean, ci95_low, ci95_high (time at goal in steps, from
        0 to episode_length), paper_table1_mean, paper_table1_se (NaN where the paper has none).
    """
    rows = []
    for (task, algo, depth, width), runs in results.runs.groupby(["task", "algo", "depth", "width"]):
        episode_lengths = sorted(set(runs["episode_length"]))
        interval = stats.seed_mean_interval(
            runs["score"].to_numpy(), rng=cell_rng(seed, "task", task, algo, depth, width), reps=reps
        )
        paper = (reference.paper_table1(algo, task, depth, width, episode_lengths[0], float(runs["env_steps"].min()))
                 if len(episode_lengths) == 1 else None)
        rows.append({
            "task": task, "algo": algo, "depth": int(depth), "width": int(width), "num_seeds": len(runs),
            "episode_length": "/".join(map(str, episode_lengths)),
            "mean": interval.estimate, "ci95_low": interval.lower, "ci95_high": interval.upper,
            "paper_table1_mean": paper[0] if paper else math.nan,
            "paper_table1_se": paper[1] if paper else math.nan,
        })
    return pd.DataFrame(rows)


def aggregate_table(results: Results, *, reps: int, seed: int) -> pd.DataFrame:
    """Normalised score aggregated over tasks per (algo, depth, width).

    The aggregate covers the tasks on which the configuration has complete runs (listed in the
    `tasks` column); aggregates over different task sets are not comparable. With unequal seed
    counts across tasks, IQM and optimality gap are NaN (see `stats.ragged_interval_estimates`).

    Returns:
        one row per configuration with columns algo, depth, width, num_tasks, tasks,
        seeds_per_task, and for each statistic s in AGGREGATE_STATISTICS: s, s_ci95_low, s_ci95_high.
    """
    rows = []
    for (algo, depth, width), runs in results.runs.groupby(["algo", "depth", "width"]):
        per_task = {task: group["score_normalized"].to_numpy() for task, group in runs.groupby("task")}
        estimates = stats.ragged_interval_estimates(
            list(per_task.values()), rng=cell_rng(seed, "aggregate", algo, depth, width), reps=reps
        )
        seed_counts = sorted({len(v) for v in per_task.values()})
        row = {
            "algo": algo, "depth": int(depth), "width": int(width), "num_tasks": len(per_task),
            "tasks": " ".join(per_task),
            "seeds_per_task": str(seed_counts[0]) if len(seed_counts) == 1 else f"{seed_counts[0]}-{seed_counts[-1]}",
        }
        for name in AGGREGATE_STATISTICS:
            interval = estimates[name]
            row |= {name: interval.estimate, f"{name}_ci95_low": interval.lower, f"{name}_ci95_high": interval.upper}
        rows.append(row)
    return pd.DataFrame(rows)


def long_table(tasks: pd.DataFrame, aggregates: pd.DataFrame) -> pd.DataFrame:
    """Both tables in one long-form table (the CSV), one row per reported statistic; columns CSV_COLUMNS."""
    rows = []
    for _, row in tasks.iterrows():
        rows.append({
            "table": "task", "task": row["task"], "algo": row["algo"], "depth": row["depth"], "width": row["width"],
            "statistic": "mean", "value": row["mean"], "ci95_low": row["ci95_low"], "ci95_high": row["ci95_high"],
            "num_seeds": row["num_seeds"], "num_tasks": 1,
            "unit": f"time_at_goal (steps out of {row['episode_length']})",
            "paper_table1_mean": row["paper_table1_mean"], "paper_table1_se": row["paper_table1_se"],
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
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


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
        "Time at goal, mean [95% CI]": [
            format_interval(r["mean"], r["ci95_low"], r["ci95_high"], 1) for _, r in tasks.iterrows()
        ],
        "Paper Table 1": [
            "" if not math.isfinite(r["paper_table1_mean"]) else f"{r['paper_table1_mean']:g} ± {r['paper_table1_se']:g}"
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
