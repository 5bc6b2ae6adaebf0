"""The report's view of a results directory: the runs it includes, their scores and evaluations.

The files and their format are those of :mod:`gcrl_bench.results` (which also reads and checks them);
this module assembles the report's tables from them. The numbers come from scores.csv; runs/ says which
runs exist, which are complete, and how they were configured. A run is identified in scores.csv by
(algo, task, depth, width, batch_size, seed). Runs with a failure.json or without a complete summary are listed as
not included and their rows are left out.
Anything unreadable raises `ResultsError` naming the file and what to do.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gcrl_bench.errors import ResultsError
from gcrl_bench.results import (EVAL_METRICS, RUN_KEY, SCORE_METRIC, SCORE_WINDOW, SUCCESS_METRICS, RunDir,
                                read_config, read_scores, run_status)


@dataclasses.dataclass(frozen=True)
class Results:
    """A validated results directory.

    Attributes:
        directory: the results directory.
        runs: one row per complete, included run: run_id, algo, task, depth, width, batch_size, seed, preset,
            env_steps_planned, env_steps (final), episode_length, score (time at goal, mean of the
            last 5 evaluations, from scores.csv), score_normalized (score / episode_length),
            success_any_last5 and success_at_end_last5 (means of the last 5 evaluations; NaN if not
            recorded), wall_time_s (from summary.json; NaN if absent) and param_count (see
            `network_param_count`).
        evaluations: scores.csv rows of the included runs for the per-evaluation metrics
            (columns as in scores.csv).
        not_included: one row per run left out: run_id, algo, task, depth, width, batch_size, seed,
            last_env_steps (NaN if it never evaluated), env_steps_planned, reason; fields a run
            does not state (no config.json yet) are None.
        configs: the parsed config.json of every included run, keyed by run_id.
    """

    directory: Path
    runs: pd.DataFrame
    evaluations: pd.DataFrame
    not_included: pd.DataFrame
    configs: dict[str, dict[str, Any]]


def network_param_count(run_dir: Path) -> float:
    """Number of network parameters of a run: the sizes of every array under the top-level entries of
    params.msgpack whose name ends in "params" (e.g. actor_params, critic_params), i.e. without
    optimiser state or scalars such as the entropy temperature. NaN when the file is absent."""
    path = RunDir(run_dir).params
    if not path.is_file():
        return math.nan
    from flax import serialization

    try:
        state = serialization.msgpack_restore(path.read_bytes())
    except (OSError, ValueError, TypeError) as error:
        raise ResultsError(f"{path} is not a readable parameter file ({error}); rerun the run or delete the file") from error

    def size(tree: Any) -> int:
        if isinstance(tree, dict):
            return sum(size(value) for value in tree.values())
        return int(np.size(tree))

    from gcrl_bench.planner import params_entries

    return float(sum(size(value) for value in params_entries(state).values()))


def _last_evaluations_mean(scores: pd.DataFrame, key: tuple, metric: str) -> float:
    """Mean of a run's last `SCORE_WINDOW` values of an evaluation metric (as the score is for
    time at goal); NaN when the run recorded none (never 0)."""
    rows = scores[(scores["metric"] == metric)]
    for column, value in zip(RUN_KEY, key):
        rows = rows[rows[column] == value]
    if rows.empty:
        return math.nan
    return float(rows.sort_values("env_steps")["value"].iloc[-SCORE_WINDOW:].mean())


def load_results(directory: str | Path) -> Results:
    """Reads and validates a results directory (see the module docstring).

    Raises:
        ResultsError: missing directory or files, corrupt or incompatible files, or no complete run.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ResultsError(f"results directory {directory} does not exist; pass the directory the training runs wrote to")
    runs_dir = directory / "runs"
    run_dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
    if not run_dirs:
        raise ResultsError(f"{runs_dir} holds no runs; pass the directory the training runs wrote to")

    configs: dict[str, dict[str, Any]] = {}
    complete: dict[tuple, str] = {}
    skipped: list[dict[str, Any]] = []
    seen: dict[tuple, Path] = {}
    summaries: dict[str, dict[str, Any]] = {}
    run_dirs_by_id: dict[str, Path] = {}
    for run_dir in run_dirs:
        config_path = run_dir / "config.json"
        if not config_path.is_file():  # a run that is just starting, or not a run at all
            skipped.append({**dict.fromkeys(RUN_KEY), "run_id": run_dir.name, "env_steps_planned": None,
                            "reason": "no config.json (starting, or not a run directory)"})
            continue
        config = read_config(config_path)
        key = tuple(config[k] for k in RUN_KEY)
        if key in seen:
            # scores.csv identifies a run by RUN_KEY alone, so the two runs' rows cannot be told apart.
            raise ResultsError(
                f"{seen[key]} and {run_dir} are both runs of {', '.join(f'{k}={v}' for k, v in zip(RUN_KEY, key))} "
                "with different settings; keep runs with different settings in different results directories"
            )
        seen[key] = run_dir
        status = run_status(RunDir(run_dir))
        if status.status == "complete":
            complete[key] = config["run_id"]
            configs[config["run_id"]] = config
            summaries[config["run_id"]] = status.summary
            run_dirs_by_id[config["run_id"]] = run_dir
        else:
            skipped.append({**{k: config[k] for k in RUN_KEY}, "run_id": config["run_id"],
                            "env_steps_planned": config["env_steps_planned"], "reason": status.reason})

    scores = read_scores(directory / "scores.csv")
    score_rows = scores[scores["metric"] == SCORE_METRIC].set_index(list(RUN_KEY))
    runs: list[dict[str, Any]] = []
    for key, run_id in complete.items():
        config = configs[run_id]
        if key not in score_rows.index:
            raise ResultsError(
                f"{directory / 'scores.csv'} has no {SCORE_METRIC!r} row for the complete run {run_id}; "
                "the file is incomplete: regenerate it from the runs"
            )
        row = score_rows.loc[key]
        score = float(row["value"])
        if not math.isfinite(score):
            del configs[run_id]
            skipped.append({**dict(zip(RUN_KEY, key)), "run_id": run_id,
                            "env_steps_planned": config["env_steps_planned"], "reason": "score is not a finite number"})
            continue
        wall_time = summaries[run_id].get("wall_time_s")
        runs.append({
            "run_id": run_id, **dict(zip(RUN_KEY, key)), "preset": config["preset"],
            "env_steps_planned": config["env_steps_planned"], "env_steps": int(row["env_steps"]),
            "episode_length": config["episode_length"], "score": score,
            "score_normalized": score / config["episode_length"],
            **{f"{metric}_last5": _last_evaluations_mean(scores, key, metric) for metric in SUCCESS_METRICS},
            "wall_time_s": float(wall_time) if isinstance(wall_time, (int, float)) else math.nan,
            "param_count": network_param_count(run_dirs_by_id[run_id]),
        })
    if not runs:
        raise ResultsError(
            f"{directory} has no complete run ({len(skipped)} in progress or failed); "
            "build the report once at least one run has finished"
        )

    runs_table = pd.DataFrame(runs).sort_values(list(RUN_KEY), ignore_index=True)
    included_keys = pd.MultiIndex.from_frame(runs_table[list(RUN_KEY)])
    scores_keys = pd.MultiIndex.from_frame(scores[list(RUN_KEY)])
    evaluations = scores[scores_keys.isin(included_keys) & scores["metric"].isin(EVAL_METRICS)]

    # object dtype keeps integers as integers next to the None of a run without config.json
    not_included = pd.DataFrame(skipped, columns=[*RUN_KEY, "run_id", "env_steps_planned", "reason"], dtype=object)
    last_steps = scores.groupby(list(RUN_KEY))["env_steps"].max()
    not_included.insert(
        len(RUN_KEY) + 1, "last_env_steps",
        [float(last_steps.get(tuple(row[k] for k in RUN_KEY), np.nan)) for _, row in not_included.iterrows()],
    )
    not_included = not_included.sort_values("run_id", ignore_index=True)
    return Results(directory, runs_table, evaluations.reset_index(drop=True), not_included, configs)
