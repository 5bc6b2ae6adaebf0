"""Comparisons across configurations: depth scaling, critical depth, probability of improvement,
performance profiles and sample-efficiency curves. Numbers only (DataFrames and arrays); the
figures are drawn in `report`.

Conventions:
- a configuration is (algo, depth, width); its runs form a (num_runs x num_tasks) matrix of
  normalised scores (time at goal / episode length) built by `tables.configuration_matrix`;
- comparisons between two configurations use the tasks both ran;
- every interval is a 95% stratified bootstrap seeded by `tables.cell_rng`, so it depends only on
  the data of the cell, the number of resamples and the report seed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from gcrl_bench.reports import stats, tables
from gcrl_bench.reports.results import Results

BASE_DEPTH = 4
"""Depth against which deeper networks of the same algorithm and width are compared."""
BASE_ALGO = "crl"
"""Algorithm against which every other algorithm is compared at the same depth and width."""
PROFILE_POINTS = 101
"""Number of thresholds tau of the performance profiles."""


def profile_thresholds(scores: np.ndarray) -> np.ndarray:
    """Thresholds tau of the performance profiles: evenly spaced from 0 to the best normalised score
    of any run (at most 1, at least 0.01), so that short runs with low scores are not squeezed
    against the left edge of a [0, 1] axis. Shape (PROFILE_POINTS,)."""
    best = float(np.nanmax(scores)) if np.size(scores) else 1.0
    return np.linspace(0.0, float(np.clip(best * 1.05, 0.01, 1.0)), PROFILE_POINTS)


def critical_depth(depths: list[int], lower: list[float], upper: list[float]) -> float:
    """The smallest depth whose interval lies entirely above the interval of depth `BASE_DEPTH`
    (its lower bound exceeds depth 4's upper bound); NaN when no depth does or depth 4 is absent.

    Args:
        depths, lower, upper: one entry per depth, same order.
    """
    if BASE_DEPTH not in depths:
        return math.nan
    base_upper = upper[depths.index(BASE_DEPTH)]
    above = sorted(d for d, low in zip(depths, lower) if d > BASE_DEPTH and low > base_upper)
    return float(above[0]) if above else math.nan


def depth_scaling_table(task_table: pd.DataFrame, aggregates: pd.DataFrame) -> pd.DataFrame:
    """Critical depth per (algo, width) on each task (interval of the mean time at goal over seeds)
    and on the aggregate (interval of the IQM of normalised scores).

    Returns:
        one row per (algo, width, task) plus one per (algo, width) with task "aggregate (IQM)";
        columns algo, width, task, depths (space-separated), critical_depth (NaN: none).
    """
    rows = []
    for (algo, width), group in task_table.groupby(["algo", "width"]):
        for task, cells in group.groupby("task"):
            cells = cells.sort_values("depth")
            depths = [int(d) for d in cells["depth"]]
            rows.append({"algo": algo, "width": int(width), "task": task, "depths": " ".join(map(str, depths)),
                         "critical_depth": critical_depth(depths, list(cells["ci95_low"]), list(cells["ci95_high"]))})
    for (algo, width), cells in aggregates.groupby(["algo", "width"]):
        cells = cells.sort_values("depth")
        depths = [int(d) for d in cells["depth"]]
        rows.append({"algo": algo, "width": int(width), "task": "aggregate (IQM)", "depths": " ".join(map(str, depths)),
                     "critical_depth": critical_depth(depths, list(cells["iqm_ci95_low"]), list(cells["iqm_ci95_high"]))})
    return pd.DataFrame(rows, columns=["algo", "width", "task", "depths", "critical_depth"])


def _common_task_matrices(results: Results, x: tuple, y: tuple) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]] | None:
    runs = results.runs
    pick = {key: runs[(runs["algo"] == key[0]) & (runs["depth"] == key[1]) & (runs["width"] == key[2])] for key in (x, y)}
    common = sorted(set(pick[x]["task"]) & set(pick[y]["task"]))
    if not common:
        return None
    mx = tables.configuration_matrix(pick[x][pick[x]["task"].isin(common)])
    my = tables.configuration_matrix(pick[y][pick[y]["task"].isin(common)])
    return mx.scores, my.scores, mx.tasks


def improvement_table(results: Results, *, reps: int, seed: int) -> pd.DataFrame:
    """Probability of improvement P(X > Y) with 95% intervals, over the tasks X and Y both ran, for
    (a) every depth vs depth `BASE_DEPTH` of the same algorithm and width and (b) every algorithm
    vs `BASE_ALGO` at the same depth and width.

    Returns:
        columns comparison ("depth" or "algorithm"), algo, depth, width (X), versus_algo,
        versus_depth (Y, same width), num_tasks, tasks, probability, ci95_low, ci95_high.
    """
    configurations = sorted({(a, int(d), int(w)) for a, d, w in results.runs[["algo", "depth", "width"]].itertuples(index=False)})
    pairs = []
    for algo, depth, width in configurations:
        if depth != BASE_DEPTH and (algo, BASE_DEPTH, width) in configurations:
            pairs.append(("depth", (algo, depth, width), (algo, BASE_DEPTH, width)))
    for algo, depth, width in configurations:
        if algo != BASE_ALGO and (BASE_ALGO, depth, width) in configurations:
            pairs.append(("algorithm", (algo, depth, width), (BASE_ALGO, depth, width)))
    rows = []
    for kind, x, y in pairs:
        matrices = _common_task_matrices(results, x, y)
        if matrices is None:
            continue
        mx, my, tasks = matrices
        interval = stats.probability_of_improvement(mx, my, rng=tables.cell_rng(seed, "poi", *x, *y), reps=reps)
        rows.append({"comparison": kind, "algo": x[0], "depth": x[1], "width": x[2], "versus_algo": y[0],
                     "versus_depth": y[1], "num_tasks": len(tasks), "tasks": " ".join(tasks),
                     "probability": interval.estimate, "ci95_low": interval.lower, "ci95_high": interval.upper})
    return pd.DataFrame(rows, columns=["comparison", "algo", "depth", "width", "versus_algo", "versus_depth",
                                       "num_tasks", "tasks", "probability", "ci95_low", "ci95_high"])


@dataclasses.dataclass(frozen=True)
class Band:
    """A configuration's curve with a pointwise 95% interval; x, y, lower, upper of shape (num_points,)."""

    algo: str
    depth: int
    width: int
    x: np.ndarray
    y: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def performance_profiles(results: Results, *, reps: int, seed: int) -> list[Band]:
    """Per configuration, the fraction of runs (all its tasks) with normalised score above tau, for
    tau in `profile_thresholds` of all included runs (one axis for every configuration)."""
    thresholds = profile_thresholds(results.runs["score_normalized"].to_numpy(float))
    bands = []
    for (algo, depth, width), runs in results.runs.groupby(["algo", "depth", "width"]):
        matrix = tables.configuration_matrix(runs)
        profile, lower, upper = stats.performance_profile(
            matrix.scores, thresholds, rng=tables.cell_rng(seed, "profile", algo, depth, width), reps=reps
        )
        bands.append(Band(algo, int(depth), int(width), thresholds, profile, lower, upper))
    return bands


def sample_efficiency_curves(results: Results, *, reps: int, seed: int) -> list[Band]:
    """Per configuration, the IQM over runs and tasks of the normalised evaluation time at goal
    against env steps, with pointwise 95% intervals.

    Alignment rule: the runs of the configuration's matrix (`tables.configuration_matrix`, all its
    tasks) are put on one grid by `stats.align_curves`: the union of their evaluation steps within
    the range every run covers, linear interpolation, no extrapolation. Tasks with different
    budgets are therefore compared over the shortest run's range.
    """
    evaluations = results.evaluations[results.evaluations["metric"] == "time_at_goal"]
    lengths = dict(zip(results.runs["run_id"], results.runs["episode_length"]))
    bands = []
    for (algo, depth, width), runs in results.runs.groupby(["algo", "depth", "width"]):
        matrix = tables.configuration_matrix(runs)
        curves = []
        for row in range(matrix.scores.shape[0]):
            for column, task in enumerate(matrix.tasks):
                run_seed = int(matrix.seeds[row, column])
                run = runs[(runs["task"] == task) & (runs["seed"] == run_seed)].iloc[0]
                points = evaluations[(evaluations["algo"] == algo) & (evaluations["task"] == task)
                                     & (evaluations["depth"] == depth) & (evaluations["width"] == width)
                                     & (evaluations["seed"] == run_seed)].sort_values("env_steps")
                curves.append((points["env_steps"].to_numpy(), points["value"].to_numpy() / lengths[run["run_id"]]))
        if any(steps.size == 0 for steps, _ in curves):
            continue
        grid, values = stats.align_curves(curves)
        if grid.size == 0:
            continue
        values = values.reshape(matrix.scores.shape[0], len(matrix.tasks), grid.size)
        iqm, lower, upper = stats.iqm_curve(values, rng=tables.cell_rng(seed, "efficiency", algo, depth, width), reps=reps)
        bands.append(Band(algo, int(depth), int(width), grid, iqm, lower, upper))
    return bands
