"""Point and interval estimates over score matrices, with reproducible stratified bootstrap intervals.

Every function here is pure apart from the random draws, which come from an explicit
`np.random.Generator`. Scores are arranged as rliable expects them: a matrix of shape
(num_runs x num_tasks), where column m holds the independent runs (seeds) of task m. Runs in
the same row of different columns are unrelated; the stratified bootstrap resamples runs within
each task (column) independently.

Why the seeding is done here: rliable's `get_interval_estimates(..., random_state=...)` hands the
`RandomState` to arch's `IIDBootstrap`, which stores it as the bootstrap's generator, but rliable's
`StratifiedBootstrap.update_indices` (and `StratifiedIndependentBootstrap._get_indices`) draw the
resampling indices with `np.random.choice`, i.e. from numpy's *global* RNG, and never use that
generator. So `random_state` changes nothing, and two calls give different intervals. We instead
seed the global RNG from the caller's Generator for the duration of the call and restore its
previous state afterwards (`_global_numpy_rng_seeded_from`), without touching installed packages.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
from rliable import library as rly
from rliable import metrics as rly_metrics

CONFIDENCE = 0.95
"""Coverage of every interval in the report."""

# Aggregate statistics over a (num_runs x num_tasks) matrix, as defined by rliable (Agarwal et al.
# 2021, "Deep RL at the Edge of the Statistical Precipice"). Scores are expected in [0, 1]
# (normalised), which the optimality gap assumes (threshold gamma = 1).
AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "iqm": rly_metrics.aggregate_iqm,
    "mean": rly_metrics.aggregate_mean,
    "median": rly_metrics.aggregate_median,
    "optimality_gap": rly_metrics.aggregate_optimality_gap,
}


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval [lower, upper] (coverage `CONFIDENCE`)."""

    estimate: float
    lower: float
    upper: float

    @classmethod
    def missing(cls) -> Interval:
        """An explicitly unavailable estimate (all NaN), never a stand-in value."""
        return cls(float("nan"), float("nan"), float("nan"))


@contextlib.contextmanager
def _global_numpy_rng_seeded_from(rng: np.random.Generator) -> Iterator[None]:
    """Seeds numpy's global RNG with a value drawn from `rng`, and restores its state on exit.

    rliable's stratified bootstraps draw from the global RNG (see the module docstring), so this
    is what makes their intervals a function of `rng`. Not thread-safe: two threads bootstrapping
    at once would share the global RNG.
    """
    saved = np.random.get_state()
    np.random.seed(int(rng.integers(2**32)))
    try:
        yield
    finally:
        np.random.set_state(saved)


def _check_matrix(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[0] < 1 or scores.shape[1] < 1:
        raise ValueError(f"scores must be a non-empty (num_runs x num_tasks) matrix, got shape {scores.shape}")
    return scores


def point_estimates(scores: np.ndarray, statistics: Sequence[str] = tuple(AGGREGATES)) -> dict[str, float]:
    """Aggregate statistics of a score matrix.

    Args:
        scores: shape (num_runs x num_tasks).
        statistics: names from `AGGREGATES`.

    Returns:
        {statistic name: value}, computed with rliable's own functions.
    """
    scores = _check_matrix(scores)
    return {name: float(AGGREGATES[name](scores)) for name in statistics}


def interval_estimates(
    scores: np.ndarray,
    *,
    rng: np.random.Generator,
    reps: int,
    statistics: Sequence[str] = tuple(AGGREGATES),
) -> dict[str, Interval]:
    """Point estimates and stratified-bootstrap percentile intervals of aggregate statistics.

    Args:
        scores: shape (num_runs x num_tasks); runs are resampled with replacement within each task.
        rng: source of the bootstrap's randomness; the same generator state gives the same intervals.
        reps: number of bootstrap resamples.
        statistics: names from `AGGREGATES`.

    Returns:
        {statistic name: Interval}. With one run per task every resample equals the data, so the
        interval collapses onto the estimate.
    """
    scores = _check_matrix(scores)
    unknown = [name for name in statistics if name not in AGGREGATES]
    if unknown:
        raise ValueError(f"unknown statistics {unknown}; known: {sorted(AGGREGATES)}")
    names = list(statistics)

    def all_statistics(matrix: np.ndarray) -> np.ndarray:
        return np.array([AGGREGATES[name](matrix) for name in names])

    with _global_numpy_rng_seeded_from(rng):
        points, intervals = rly.get_interval_estimates(
            {"scores": scores}, all_statistics, reps=reps, confidence_interval_size=CONFIDENCE
        )
    point, (lower, upper) = points["scores"], intervals["scores"]
    return {name: Interval(float(point[i]), float(lower[i]), float(upper[i])) for i, name in enumerate(names)}


def seed_mean_interval(scores: np.ndarray, *, rng: np.random.Generator, reps: int) -> Interval:
    """Mean over seeds of one task's scores, with a bootstrap interval over seeds.

    Args:
        scores: shape (num_runs,), one score per seed.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 1:
        raise ValueError(f"scores must have shape (num_runs,), got {scores.shape}")
    return interval_estimates(scores[:, None], rng=rng, reps=reps, statistics=("mean",))["mean"]


@dataclasses.dataclass(frozen=True)
class SeedMatrix:
    """A configuration's scores as the rectangular matrix rliable needs.

    Attributes:
        scores: shape (num_runs x num_tasks); column m holds task m's runs, in seed order.
        tasks: the task of each column.
        seeds: shape (num_runs x num_tasks), the seed of each score.
        dropped: (task, seed) of the runs left out to make the run counts equal.
    """

    scores: np.ndarray
    tasks: tuple[str, ...]
    seeds: np.ndarray
    dropped: tuple[tuple[str, int], ...]


def common_seed_matrix(per_task: Mapping[str, Mapping[int, float]]) -> SeedMatrix:
    """Arranges per-task scores as a (num_runs x num_tasks) matrix with the same run count per task.

    Rule: every task with at least one run is kept; each task keeps its n lowest seeds, where n is
    the smallest run count over the tasks; the other runs are returned in `dropped` (the report lists
    them). No value is ever filled in. Example: task a with seeds (0, 1, 2) and task b with seeds
    (0, 1) give a 2 x 2 matrix of seeds (0, 1) and drop (a, 2).

    Args:
        per_task: {task: {seed: score}}, every task with at least one score.
    """
    if not per_task or any(len(runs) == 0 for runs in per_task.values()):
        raise ValueError("per_task must map at least one task to at least one (seed, score)")
    tasks = tuple(sorted(per_task))
    count = min(len(per_task[task]) for task in tasks)
    kept = {task: sorted(per_task[task])[:count] for task in tasks}
    dropped = tuple((task, seed) for task in tasks for seed in sorted(per_task[task])[count:])
    scores = np.array([[float(per_task[task][kept[task][row]]) for task in tasks] for row in range(count)])
    seeds = np.array([[kept[task][row] for task in tasks] for row in range(count)], dtype=np.int64)
    return SeedMatrix(scores, tasks, seeds, dropped)


def probability_of_improvement(
    scores_x: np.ndarray, scores_y: np.ndarray, *, rng: np.random.Generator, reps: int
) -> Interval:
    """P(X > Y): the probability that a run of X beats a run of Y on a random task (ties count half),
    with a 95% interval from bootstrapping X's and Y's runs independently within each task
    (rliable's `probability_of_improvement` and `StratifiedIndependentBootstrap`).

    Args:
        scores_x: shape (num_runs_x x num_tasks).
        scores_y: shape (num_runs_y x num_tasks), the same tasks in the same column order.
    """
    scores_x, scores_y = _check_matrix(scores_x), _check_matrix(scores_y)
    if scores_x.shape[1] != scores_y.shape[1]:
        raise ValueError(f"X and Y must cover the same tasks, got {scores_x.shape[1]} and {scores_y.shape[1]} columns")

    def improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.array([rly_metrics.probability_of_improvement(x, y)])

    with _global_numpy_rng_seeded_from(rng):
        points, intervals = rly.get_interval_estimates(
            {"pair": [scores_x, scores_y]}, improvement, reps=reps, confidence_interval_size=CONFIDENCE
        )
    (lower,), (upper,) = intervals["pair"]
    return Interval(float(points["pair"][0]), float(lower), float(upper))


def performance_profile(
    scores: np.ndarray, thresholds: np.ndarray, *, rng: np.random.Generator, reps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score distribution: the fraction of runs (over all tasks) whose score exceeds each threshold,
    with pointwise 95% stratified-bootstrap intervals (rliable's `create_performance_profile`).

    Args:
        scores: shape (num_runs x num_tasks), normalised scores.
        thresholds: shape (num_thresholds,).

    Returns:
        profile, lower, upper, each of shape (num_thresholds,).
    """
    scores = _check_matrix(scores)
    thresholds = np.asarray(thresholds, dtype=float)
    with _global_numpy_rng_seeded_from(rng):
        profiles, intervals = rly.create_performance_profile(
            {"scores": scores}, thresholds, reps=reps, confidence_interval_size=CONFIDENCE
        )
    lower, upper = intervals["scores"]
    return np.asarray(profiles["scores"], dtype=float), np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)


def iqm_curve(values: np.ndarray, *, rng: np.random.Generator, reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over runs and tasks at every point of a learning curve, with pointwise 95%
    stratified-bootstrap intervals (the sample-efficiency curve of Agarwal et al. 2021).

    Args:
        values: shape (num_runs x num_tasks x num_points), curves aligned on one grid.

    Returns:
        iqm, lower, upper, each of shape (num_points,).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 3 or min(values.shape) < 1:
        raise ValueError(f"values must have shape (num_runs x num_tasks x num_points), got {values.shape}")

    def iqm_per_point(scores: np.ndarray) -> np.ndarray:
        return np.array([rly_metrics.aggregate_iqm(scores[..., point]) for point in range(scores.shape[-1])])

    with _global_numpy_rng_seeded_from(rng):
        points, intervals = rly.get_interval_estimates(
            {"curve": values}, iqm_per_point, reps=reps, confidence_interval_size=CONFIDENCE
        )
    lower, upper = intervals["curve"]
    return np.asarray(points["curve"], dtype=float), np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)


def align_curves(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Puts learning curves evaluated at different env steps on one common grid.

    Rule: the grid is the union of all runs' evaluation steps, restricted to the range that every
    run covers, [max of first steps, min of last steps]; each run's curve is linearly interpolated
    onto it (`np.interp`). Runs on identical grids are therefore returned unchanged, and nothing
    is extrapolated beyond a run's own evaluations. Example: runs evaluated at (0, 10, 20) and
    (0, 15, 30) give the grid (0, 10, 15, 20).

    Args:
        curves: one (steps, values) pair per run, each of shape (num_evals_r,), steps increasing.

    Returns:
        grid of shape (num_points,) and values of shape (num_runs x num_points).
        num_points is 0 when the runs' ranges do not overlap.
    """
    if not curves:
        raise ValueError("align_curves needs at least one curve")
    steps = [np.asarray(s, dtype=float) for s, _ in curves]
    if any(s.size == 0 or np.any(np.diff(s) <= 0) for s in steps):
        raise ValueError("each curve needs strictly increasing, non-empty steps")
    start = max(s[0] for s in steps)
    stop = min(s[-1] for s in steps)
    union = np.unique(np.concatenate(steps))
    grid = union[(union >= start) & (union <= stop)]
    values = np.stack([np.interp(grid, s, np.asarray(v, dtype=float)) for s, (_, v) in zip(steps, curves)])
    return grid, values


def curve_band(values: np.ndarray, *, rng: np.random.Generator, reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean learning curve over runs with a pointwise bootstrap interval over runs.

    Args:
        values: shape (num_runs x num_points), aligned curves (see `align_curves`).

    Returns:
        mean, lower, upper, each of shape (num_points,). With a single run there is no
        spread to estimate and lower = upper = the run's curve.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[0] < 1:
        raise ValueError(f"values must have shape (num_runs x num_points), got {values.shape}")
    mean = values.mean(axis=0)
    if values.shape[0] == 1 or values.shape[1] == 0:
        return mean, mean.copy(), mean.copy()

    # rliable's 3-d layout (num_runs x num_tasks x num_points) with a single task: each resample
    # draws runs independently per point; the statistic is the mean over runs at every point.
    def pointwise_mean(scores: np.ndarray) -> np.ndarray:
        return scores[:, 0, :].mean(axis=0)

    with _global_numpy_rng_seeded_from(rng):
        _, intervals = rly.get_interval_estimates(
            {"curve": values[:, None, :]}, pointwise_mean, reps=reps, confidence_interval_size=CONFIDENCE
        )
    lower, upper = intervals["curve"]
    return mean, np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
