"""The results directory: its layout, its format, and the one place that writes and reads it.

Layout (format version :data:`FORMAT_VERSION`)::

    DIR/scores.csv                  algo,task,depth,width,batch_size,seed,env_steps,metric,value (every
                                    evaluation's metrics, and each complete run's final ``score``)
    DIR/runs/<run_id>/config.json   the run's configuration, package versions, code version, hardware
    DIR/runs/<run_id>/metrics.jsonl one JSON object per evaluation (env_steps, eval/..., train/...)
    DIR/runs/<run_id>/summary.json  written last, only when the run completed: its presence marks completion
    DIR/runs/<run_id>/params.msgpack final algorithm state (flax msgpack: plain arrays, never pickle)
    DIR/runs/<run_id>/failure.json  only when the last attempt failed: why, when, the last good metrics
    DIR/runs/<run_id>/checkpoints/  only while the run is unfinished (see gcrl_bench.checkpoint)

Every file is written to a temporary file in the same folder and moved into place with ``os.replace``,
so a reader sees either the old or the new complete file. The run id (see :mod:`gcrl_bench.runspec`) is a
readable prefix plus a hash of the full configuration, so the same command maps to the same folders and a
rerun skips completed runs.

Writers: :func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`append_metrics`,
:func:`write_scores_csv`. Readers: :func:`read_json`, :func:`read_config`, :func:`read_metrics`,
:func:`read_scores`, :func:`run_status`, :func:`iter_runs`, :func:`validate_directory` and, for notebooks,
:func:`load_dataframe`. Anything unreadable raises :class:`~gcrl_bench.errors.ResultsError` with one line
naming the file and what to do.

This module imports neither pandas nor matplotlib at import time (the training side imports it); the
readers that return tables import pandas when called.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal

from gcrl_bench.errors import ResultsError

if TYPE_CHECKING:
    import pandas as pd

FORMAT_VERSION = 1
SCORE_COLUMNS = ("algo", "task", "depth", "width", "batch_size", "seed", "env_steps", "metric", "value")
RUN_KEY = ("algo", "task", "depth", "width", "batch_size", "seed")  # identifies a run in scores.csv
# scores.csv as written before batch_size joined the run key; read with each run's batch size from its config.json
LEGACY_SCORE_COLUMNS = tuple(c for c in SCORE_COLUMNS if c != "batch_size")
INTEGER_COLUMNS = ("depth", "width", "batch_size", "seed", "env_steps")
EVAL_METRICS = ("time_at_goal", "success_any", "success_at_end", "final_distance")  # metrics.jsonl: "eval/<name>"
SCORE_METRIC = "score"  # scores.csv metric of a complete run's final score
SUCCESS_METRICS = ("success_any", "success_at_end")
SCORE_WINDOW = 5  # the paper's score: mean time at goal over the last 5 evaluations
CONFIG_FIELDS: dict[str, type | tuple[type, ...]] = {
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
}  # the fields of config.json every reader relies on, with their JSON types; batch_size: see config_batch_size


# ------------------------------------------------------------------------------------------ paths


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Paths of one run's folder."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def params(self) -> Path:
        return self.path / "params.msgpack"

    @property
    def failure(self) -> Path:
        return self.path / "failure.json"

    def is_complete(self) -> bool:
        return self.summary.exists()

    @classmethod
    def of(cls, out: Path, run_id: str) -> "RunDir":
        """The folder of run ``run_id`` in the results directory ``out``."""
        return cls(Path(out) / "runs" / run_id)


# ------------------------------------------------------------------------------------------ writers


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def jsonable(x: Any) -> Any:
    """``x`` with dataclasses turned into dicts of their fields and tuples into lists (recursively)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    return x


def to_json(x: Any) -> str:
    return json.dumps(jsonable(x), indent=1, sort_keys=True)


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("gcrl-bench", "jax", "jaxlib", "flax", "optax", "brax", "mujoco", "mujoco-mjx", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def code_version() -> str:
    """The git commit of the gcrl-bench checkout (with '+dirty' for local changes), else the package version."""
    here = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if rev.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "gcrl-bench " + package_versions()["gcrl-bench"]


def hardware() -> dict[str, Any]:
    import jax

    dev = jax.devices()[0]
    return {
        "platform": dev.platform,
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def failure_record(run_id: str, algo: str, task: str, depth: int, width: int, seed: int, exc: BaseException,
                   rows: list[dict]) -> dict:
    """The content of a failed run's failure.json.

    Fields: status ``failed``; reason ``diverged`` (a train metric or a parameter became NaN/inf) or
    ``error`` (any other exception); error (one line); the run's key (run_id, algo, task, depth, width,
    seed); epoch (the epoch that failed, when known); evaluations (good epochs recorded in
    metrics.jsonl); last_good (the last good metrics row, or null); diverged_row (the non-finite row,
    for divergence); traceback.
    """
    import traceback

    diverged = isinstance(exc, FloatingPointError)
    return {
        "status": "failed",
        "reason": "diverged" if diverged else "error",
        "error": f"{type(exc).__name__}: {exc}",
        "run_id": run_id, "algo": algo, "task": task, "depth": depth, "width": width, "seed": seed,
        "epoch": getattr(exc, "epoch", None),
        "evaluations": len(rows),
        "last_good": rows[-1] if rows else None,
        "diverged_row": {k: (v if math.isfinite(v) else repr(v)) if isinstance(v, float) else v
                         for k, v in getattr(exc, "row", {}).items()} or None,
        "traceback": "".join(traceback.format_exception(exc)),
    }


def ensure_writable(out: Path) -> None:
    """Creates ``out``/runs if needed and checks it is writable, with one clear error otherwise."""
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise ResultsError(
            f"results directory {str(out)!r} is not writable ({exc.strerror or exc}); choose another --out"
        ) from None


def append_metrics(run: RunDir, rows: list[dict]) -> None:
    """Rewrites metrics.jsonl atomically with all rows so far (a crash never leaves half a line)."""
    atomic_write_text(run.metrics, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def run_score(metrics: list[dict]) -> float:
    """Mean eval/time_at_goal over the last SCORE_WINDOW evaluations (the paper's score); NaN if none."""
    values = [m["eval/time_at_goal"] for m in metrics if "eval/time_at_goal" in m]
    if not values:
        return math.nan
    tail = values[-SCORE_WINDOW:]
    return sum(tail) / len(tail)


# ------------------------------------------------------------------------------------------ readers


def read_json(path: Path) -> dict:
    """A JSON file holding one object (config.json, summary.json, failure.json)."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror or exc}; check the file's permissions") from None
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        raise ResultsError(
            f"{path} is unreadable or corrupt (not valid JSON: {str(exc).splitlines()[0]}); the run may have been "
            f"interrupted while writing it: delete that run folder ({path.parent}) and rerun the same command to "
            "redo it, or move it out of the results directory"
        ) from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path} does not hold a JSON object; delete {path.parent} and rerun to redo that run, "
                           "or move it out of the results directory")
    return data


def check_format_version(config: dict, path: Path) -> None:
    """Raises ResultsError unless config.json ``config`` (read from ``path``) has :data:`FORMAT_VERSION`."""
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ResultsError(
            f"{path} has results format version {version!r} (format_version {version!r}), this gcrl-bench reads "
            f"version {FORMAT_VERSION}; use the gcrl-bench version that wrote it, or move that run folder out of "
            "the results directory"
        )


def check_config_fields(config: dict, path: Path) -> None:
    """Raises ResultsError unless config.json ``config`` has every :data:`CONFIG_FIELDS` entry with its type
    (booleans are not integers) and a positive episode_length."""
    for field, kind in CONFIG_FIELDS.items():
        value = config.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ResultsError(
                f"{path}: field {field!r} is {value!r}, expected {getattr(kind, '__name__', kind)}; "
                "the file is corrupt: rerun the run or move it out of the results directory"
            )
    if config["episode_length"] <= 0:
        raise ResultsError(f"{path}: episode_length is {config['episode_length']}, expected a positive integer")


def config_batch_size(config: dict, path: Path) -> int:
    """The batch size of the run whose config.json (read from ``path``) is ``config``: its ``batch_size``
    field, or, in a config.json written before that field was recorded, ``loop_config.batch_size``."""
    value = config.get("batch_size")
    if value is None:
        loop = config.get("loop_config")
        value = loop.get("batch_size") if isinstance(loop, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ResultsError(
            f"{path}: batch size is {value!r} (neither 'batch_size' nor 'loop_config.batch_size' holds a positive "
            "integer); the file is corrupt: rerun the run or move it out of the results directory"
        )
    return value


def run_key(config: dict, path: Path) -> tuple:
    """The :data:`RUN_KEY` values of the run whose config.json (read from ``path``) is ``config``."""
    return tuple(config_batch_size(config, path) if k == "batch_size" else config[k] for k in RUN_KEY)


def read_config(path: Path) -> dict:
    """A run's config.json, with its format version and its :data:`CONFIG_FIELDS` checked, and its
    ``batch_size`` field filled in from ``loop_config`` when the file predates it (see :func:`config_batch_size`)."""
    config = read_json(path)
    check_format_version(config, path)
    check_config_fields(config, path)
    return {**config, "batch_size": config_batch_size(config, path)}


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl (one dict per evaluation, in order); [] when the file does not exist."""
    rows = []
    if not path.exists():
        return rows
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            raise ResultsError(
                f"{path} line {n} is corrupt; delete that run folder ({path.parent}) and rerun to redo it"
            ) from None
    return rows


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """Where a run folder stands, from the files it holds.

    Attributes:
      status: ``complete`` (summary.json with status complete, no failure.json), ``failed`` (failure.json:
        the last attempt failed) or ``incomplete`` (in progress, interrupted, or its process died before
        it could write failure.json).
      reason: why the run is not complete, one phrase for the report ("" when complete).
      summary: summary.json when complete, else {}.
    """

    status: Literal["complete", "failed", "incomplete"]
    reason: str = ""
    summary: dict = dataclasses.field(default_factory=dict)


def run_status(run: RunDir) -> RunStatus:
    """Reads the status of one run folder (see :class:`RunStatus`)."""
    if run.failure.is_file():
        return RunStatus("failed", "failed (failure.json)")
    if not run.summary.is_file():
        return RunStatus("incomplete", "in progress or failed (no summary.json)")
    summary = read_json(run.summary)
    if summary.get("status") != "complete":
        return RunStatus("incomplete", f"status {summary.get('status')!r} in summary.json")
    return RunStatus("complete", "", summary)


def _run_folders(out: Path) -> list[RunDir]:
    """The folders under ``out``/runs holding a config.json, sorted by run id."""
    runs = Path(out) / "runs"
    if not runs.is_dir():
        return []
    return [RunDir(p) for p in sorted(runs.iterdir()) if p.is_dir() and (p / "config.json").exists()]


def iter_runs(out: Path) -> Iterable[tuple[RunDir, dict]]:
    """(folder, config) of every run folder with a config.json, sorted by run id (see :func:`read_config`)."""
    for run in _run_folders(out):
        yield run, read_config(run.config)


def validate_directory(out: Path) -> int:
    """Reads every run folder's config.json and summary.json once, so that a corrupt or incompatible run
    is reported (one line, naming the file) before any new work starts. Returns the number of runs.

    Per run, the format version is checked first (another version's files are not judged by this one's
    rules), then summary.json and metrics.jsonl, then config.json's fields."""
    count = 0
    for run in _run_folders(out):
        config = read_json(run.config)
        check_format_version(config, run.config)
        if run.is_complete():
            summary = read_json(run.summary)
            if "score" not in summary or "env_steps" not in summary:
                raise ResultsError(f"{run.summary} lacks 'score' or 'env_steps'; delete {run.path} and rerun to redo it")
        read_metrics(run.metrics)
        check_config_fields(config, run.config)
        config_batch_size(config, run.config)
        count += 1
    return count


def write_scores_csv(out: Path) -> Path:
    """Rebuilds DIR/scores.csv from every run folder (complete runs get a final ``score`` row)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SCORE_COLUMNS)
    for run, cfg in iter_runs(out):
        key = tuple(cfg[k] for k in RUN_KEY)  # read_config filled in batch_size
        metrics = read_metrics(run.metrics)
        for m in metrics:
            for name in EVAL_METRICS:
                if f"eval/{name}" in m:
                    w.writerow(key + (m["env_steps"], name, repr(float(m[f"eval/{name}"]))))
        if run.is_complete():
            summary = read_json(run.summary)
            w.writerow(key + (summary["env_steps"], SCORE_METRIC, repr(float(summary["score"]))))
    path = out / "scores.csv"
    atomic_write_text(path, buf.getvalue())
    return path


def read_scores(path: Path) -> "pd.DataFrame":
    """scores.csv as a DataFrame with :data:`SCORE_COLUMNS` (depth, width, batch_size, seed, env_steps int64;
    value float, an empty or "nan" value an explicit NaN), checked: every integer column holds integers,
    every value is a number, no two rows share (run key, env_steps, metric) and no run has two ``score`` rows.

    A scores.csv with :data:`LEGACY_SCORE_COLUMNS` (written before batch_size joined the run key) is read
    with each row's batch_size taken from the config.json of its run in ``path``'s directory."""
    import numpy as np
    import pandas as pd

    if not path.is_file():
        raise ResultsError(f"{path} is missing; the results directory must hold the scores.csv the training code writes")
    try:
        table = pd.read_csv(path, dtype={"algo": str, "task": str, "metric": str}, keep_default_na=False)
    except OSError as error:
        raise ResultsError(f"cannot read {path}: {error.strerror}; check the file's permissions") from error
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise ResultsError(f"{path} is not a readable CSV ({str(error).splitlines()[0]}); restore or regenerate it") from error
    if tuple(table.columns) == LEGACY_SCORE_COLUMNS:
        table.insert(SCORE_COLUMNS.index("batch_size"), "batch_size", _legacy_batch_sizes(path, table))
    if tuple(table.columns) != SCORE_COLUMNS:
        raise ResultsError(
            f"{path} has columns {','.join(map(str, table.columns))}, expected {','.join(SCORE_COLUMNS)}; "
            "it was not written by this version of gcrl-bench"
        )
    for column in INTEGER_COLUMNS:
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
            "two runs share algo/task/depth/width/batch_size/seed; move one of them to another results directory"
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


def _legacy_batch_sizes(path: Path, table: "pd.DataFrame") -> list:
    """The batch size of each row of a scores.csv without a batch_size column, from the config.json of the
    run in ``path``'s directory with the row's (algo, task, depth, width, seed); "" (reported as corrupt
    by the integer check) for a row no run folder matches."""
    old_key = [k for k in RUN_KEY if k != "batch_size"]
    sizes: dict[tuple, int] = {}
    for run, config in iter_runs(path.parent):
        sizes[tuple(str(config[k]) for k in old_key)] = config["batch_size"]
    return [sizes.get(key, "") for key in zip(*(table[k].astype(str) for k in old_key))]


DATAFRAME_COLUMNS = ("run_id", "algo", "task", "depth", "width", "batch_size", "seed", "env_steps", "metric", "value",
                     "status")


def load_dataframe(directory: str | Path, include_train: bool = False) -> "pd.DataFrame":
    """A results directory as one long-form pandas DataFrame, for notebooks.

    Read from every run folder's config.json and metrics.jsonl (complete, failed and unfinished runs
    alike; folders without a config.json are left out), not from scores.csv, so it needs no
    ``gcrl-bench report`` first.

    Args:
      directory: the results directory (the ``--out`` of ``gcrl-bench run``).
      include_train: also the training metrics of each evaluation row (``train/critic_loss``, ...,
        named as in metrics.jsonl).

    Returns:
      one row per run x evaluation x metric, with columns :data:`DATAFRAME_COLUMNS`: run_id, algo, task,
      depth, width, batch_size, seed (from config.json), env_steps (environment steps at that evaluation), metric
      (an :data:`EVAL_METRICS` name such as ``time_at_goal``, as in scores.csv, or a ``train/...`` name),
      value (float; NaN stays NaN), status (``complete``, ``failed`` or ``incomplete``, see
      :class:`RunStatus`). depth, width, batch_size, seed and env_steps are int64. Rows come in the order of the run
      folders (by run id), then of their evaluations, then of :data:`EVAL_METRICS` followed by the train
      metrics sorted by name. A complete run's score is the mean of its last :data:`SCORE_WINDOW`
      ``time_at_goal`` values.

    Raises:
      ResultsError: the directory does not exist, or one of its files is corrupt or of another format version.
    """
    import numpy as np
    import pandas as pd

    directory = Path(directory)
    if not directory.is_dir():
        raise ResultsError(f"results directory {directory} does not exist; pass the directory the training runs wrote to")
    records: list[tuple] = []
    for run, config in iter_runs(directory):
        head = (config["run_id"], *(config[k] for k in RUN_KEY))
        status = run_status(run).status
        for row in read_metrics(run.metrics):
            names = [(f"eval/{name}", name) for name in EVAL_METRICS]
            if include_train:
                names += [(k, k) for k in sorted(row) if k.startswith("train/")]
            for source, name in names:
                if source in row:
                    records.append((*head, int(row["env_steps"]), name, float(row[source]), status))
    table = pd.DataFrame.from_records(records, columns=list(DATAFRAME_COLUMNS))
    for column in INTEGER_COLUMNS:
        table[column] = table[column].astype(np.int64)
    table["value"] = table["value"].astype(float)
    return table
