"""Reading and validating a results directory written by the training code.

Layout (format_version 1):

    DIR/scores.csv                  algo,task,depth,width,seed,env_steps,metric,value (long form)
    DIR/runs/<run_id>/config.json   what the run is (algo, task, depth, width, seed, preset, versions, ...)
    DIR/runs/<run_id>/metrics.jsonl one JSON object per evaluation (not needed by the report)
    DIR/runs/<run_id>/summary.json  present only once the run is complete

The numbers in the report come from scores.csv; runs/ says which runs exist, which are complete,
and how they were configured. A run is identified in scores.csv by (algo, task, depth, width,
seed). Runs with a failure.json or without a complete summary are listed as not included and their rows
are left out.
Anything unreadable raises `ResultsError` naming the file and what to do.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gcrl_bench.errors import ResultsError

FORMAT_VERSION = 1
SCORES_COLUMNS = ("algo", "task", "depth", "width", "seed", "env_steps", "metric", "value")
RUN_KEY = ("algo", "task", "depth", "width", "seed")
CONFIG_KEY = ("algo", "task", "depth", "width")
EVAL_METRICS = ("time_at_goal", "success_any", "success_at_end", "final_distance")
SCORE_METRIC = "score"
SUCCESS_METRICS = ("success_any", "success_at_end")
LAST_EVALUATIONS = 5
_CONFIG_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "run_id": str,
    "algo": str,
    "task": str,
    "depth": int,
    "width": int,
    "seed": int,
    "preset": str,
    "env_steps_planned": int,
    "episode_length": int,
}


@dataclasses.dataclass(frozen=True)
class Results:
    """A validated results directory.

    Attributes:
        directory: the results directory.
        runs: one row per complete, included run: run_id, algo, task, depth, width, seed, preset,
            env_steps_planned, env_steps (final), episode_length, score (time at goal, mean of the
            last 5 evaluations, from scores.csv), score_normalized (score / episode_length),
            success_any_last5 and success_at_end_last5 (means of the last 5 evaluations; NaN if not
            recorded), wall_time_s (from summary.json; NaN if absent) and param_count (see
            `network_param_count`).
        evaluations: scores.csv rows of the included runs for the per-evaluation metrics
            (columns as in scores.csv).
        not_included: one row per run left out: run_id, algo, task, depth, width, seed,
            last_env_steps (NaN if it never evaluated), env_steps_planned, reason; fields a run
            does not state (no config.json yet) are None.
        configs: the parsed config.json of every included run, keyed by run_id.
    """

    directory: Path
    runs: pd.DataFrame
    evaluations: pd.DataFrame
    not_included: pd.DataFrame
    configs: dict[str, dict[str, Any]]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise ResultsError(f"cannot read {path}: {error.strerror}; check the file's permissions") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResultsError(
            f"{path} is not valid JSON ({error}); the run may have been interrupted while writing it: "
            "rerun it or move its directory out of the results directory"
        ) from error


def _read_config(path: Path) -> dict[str, Any]:
    config = _read_json(path)
    if not isinstance(config, dict):
        raise ResultsError(f"{path} must hold a JSON object; move this run out of the results directory")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ResultsError(
            f"{path} has format_version {version!r}, this report reads format_version {FORMAT_VERSION}; "
            "use the gcrl-bench version that wrote it, or move the run out of the results directory"
        )
    for field, kind in _CONFIG_FIELDS.items():
        value = config.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ResultsError(
                f"{path}: field {field!r} is {value!r}, expected {getattr(kind, '__name__', kind)}; "
                "the file is corrupt: rerun the run or move it out of the results directory"
            )
    if config["episode_length"] <= 0:
        raise ResultsError(f"{path}: episode_length is {config['episode_length']}, expected a positive integer")
    return config


def _read_scores(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ResultsError(f"{path} is missing; the results directory must hold the scores.csv the training code writes")
    try:
        table = pd.read_csv(path, dtype={"algo": str, "task": str, "metric": str}, keep_default_na=False)
    except OSError as error:
        raise ResultsError(f"cannot read {path}: {error.strerror}; check the file's permissions") from error
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise ResultsError(f"{path} is not a readable CSV ({str(error).splitlines()[0]}); restore or regenerate it") from error
    if tuple(table.columns) != SCORES_COLUMNS:
        raise ResultsError(
            f"{path} has columns {','.join(map(str, table.columns))}, expected {','.join(SCORES_COLUMNS)}; "
            "it was not written by this version of gcrl-bench"
        )
    for column in ("depth", "width", "seed", "env_steps"):
        numbers = pd.to_numeric(table[column], errors="coerce")
        if numbers.isna().any() or (numbers != np.round(numbers)).any():
            row = int(np.flatnonzero(numbers.isna() | (numbers != np.round(numbers)))[0]) + 2
            raise ResultsError(f"{path} line {row}: column {column!r} must be an integer; the file is corrupt")
        table[column] = numbers.astype(np.int64)
    # An empty or "nan" value stays an explicit NaN (never 0); other text is corruption.
    values = pd.to_numeric(table["value"].replace("", "nan"), errors="coerce")
    bad = values.isna() & ~table["value"].astype(str).str.strip().str.lower().isin(["", "nan"])
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 2
        raise ResultsError(f"{path} line {row}: value {table['value'].iloc[row - 2]!r} is not a number; the file is corrupt")
    table["value"] = values.astype(float)
    duplicated = table.duplicated(subset=[*RUN_KEY, "env_steps", "metric"])
    if duplicated.any():
        row = table[duplicated].iloc[0]
        key = ", ".join(f"{k}={row[k]}" for k in RUN_KEY)
        raise ResultsError(
            f"{path} holds two rows for ({key}) metric {row['metric']!r} at env_steps {row['env_steps']}: "
            "two runs share algo/task/depth/width/seed; move one of them to another results directory"
        )
    score_rows = table[table["metric"] == SCORE_METRIC]
    duplicated = score_rows.duplicated(subset=list(RUN_KEY))
    if duplicated.any():
        row = score_rows[duplicated].iloc[0]
        key = ", ".join(f"{k}={row[k]}" for k in RUN_KEY)
        raise ResultsError(
            f"{path} holds two {SCORE_METRIC!r} rows for ({key}); a run has exactly one: "
            "move one of the runs sharing this identity to another results directory"
        )
    return table


def _run_status(run_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """(None, summary) when the run is complete, else (why it is not included, {})."""
    if (run_dir / "failure.json").is_file():
        return "failed (failure.json)", {}
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        return "in progress or failed (no summary.json)", {}
    summary = _read_json(summary_path)
    if not isinstance(summary, dict):
        raise ResultsError(f"{summary_path} must hold a JSON object; rerun the run or move it out of the results directory")
    if summary.get("status") != "complete":
        return f"status {summary.get('status')!r} in summary.json", {}
    return None, summary


def network_param_count(run_dir: Path) -> float:
    """Number of network parameters of a run: the sizes of every array under the top-level entries of
    params.msgpack whose name ends in "params" (e.g. actor_params, critic_params), i.e. without
    optimiser state or scalars such as the entropy temperature. NaN when the file is absent."""
    path = run_dir / "params.msgpack"
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

    return float(sum(size(value) for name, value in state.items() if str(name).endswith("params")))


def _last_evaluations_mean(scores: pd.DataFrame, key: tuple, metric: str) -> float:
    """Mean of a run's last `LAST_EVALUATIONS` values of an evaluation metric (as the score is for
    time at goal); NaN when the run recorded none (never 0)."""
    rows = scores[(scores["metric"] == metric)]
    for column, value in zip(RUN_KEY, key):
        rows = rows[rows[column] == value]
    if rows.empty:
        return math.nan
    return float(rows.sort_values("env_steps")["value"].iloc[-LAST_EVALUATIONS:].mean())


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
        config = _read_config(config_path)
        key = tuple(config[k] for k in RUN_KEY)
        if key in seen:
            # scores.csv identifies a run by RUN_KEY alone, so the two runs' rows cannot be told apart.
            raise ResultsError(
                f"{seen[key]} and {run_dir} are both runs of {', '.join(f'{k}={v}' for k, v in zip(RUN_KEY, key))} "
                "with different settings; keep runs with different settings in different results directories"
            )
        seen[key] = run_dir
        reason, summary = _run_status(run_dir)
        if reason is None:
            complete[key] = config["run_id"]
            configs[config["run_id"]] = config
            summaries[config["run_id"]] = summary
            run_dirs_by_id[config["run_id"]] = run_dir
        else:
            skipped.append({**{k: config[k] for k in RUN_KEY}, "run_id": config["run_id"],
                            "env_steps_planned": config["env_steps_planned"], "reason": reason})

    scores = _read_scores(directory / "scores.csv")
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
        6, "last_env_steps",
        [float(last_steps.get(tuple(row[k] for k in RUN_KEY), np.nan)) for _, row in not_included.iterrows()],
    )
    not_included = not_included.sort_values("run_id", ignore_index=True)
    return Results(directory, runs_table, evaluations.reset_index(drop=True), not_included, configs)
