"""The results directory: one folder per run, written atomically, plus a long-form score table.

Layout::

    DIR/scores.csv                 algo,task,depth,width,seed,env_steps,metric,value (every evaluation's
                                   metrics, and each complete run's final ``score``)
    DIR/runs/<run_id>/config.json  the run's configuration, package versions, code version, hardware
    DIR/runs/<run_id>/metrics.jsonl one JSON object per evaluation (env_steps, eval/..., train/...)
    DIR/runs/<run_id>/summary.json written last, only when the run completed: its presence marks completion
    DIR/runs/<run_id>/params.msgpack final algorithm state (flax msgpack: plain arrays, never pickle)
    DIR/runs/<run_id>/failure.json  only when the last attempt failed: why, when, the last good metrics
    DIR/runs/<run_id>/checkpoints/  only while the run is unfinished (see gcrl_bench.checkpoint)

Every file is written to a temporary file in the same folder and moved into place with ``os.replace``,
so a reader sees either the old or the new complete file. The run id is a readable prefix plus a hash
of the full configuration, so the same command maps to the same folders and a rerun skips completed
runs.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from gcrl_bench.errors import ResultsError

FORMAT_VERSION = 1
SCORE_COLUMNS = ("algo", "task", "depth", "width", "seed", "env_steps", "metric", "value")
EVAL_METRICS = ("time_at_goal", "success_any", "success_at_end", "final_distance")
SCORE_WINDOW = 5  # the paper's score: mean time at goal over the last 5 evaluations


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


def _jsonable(x: Any) -> Any:
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    return x


def config_hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


def run_id(algo: str, task: str, depth: int, width: int, seed: int, identity: dict) -> str:
    """Deterministic id: readable fields plus a hash of everything that defines the run."""
    return f"{algo}__{task}__d{depth}_w{width}_s{seed}__{config_hash(identity)}"


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


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(
            f"{path} is unreadable or corrupt ({type(exc).__name__}); delete that run folder ({path.parent}) "
            "and rerun the same command to redo it"
        ) from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path} does not hold a JSON object; delete {path.parent} and rerun to redo that run")
    return data


def check_run_config(path: Path) -> dict:
    """Reads a run's config.json and checks its format version."""
    cfg = read_json(path)
    version = cfg.get("format_version")
    if version != FORMAT_VERSION:
        raise ResultsError(
            f"{path} has results format version {version!r}, this gcrl-bench reads version {FORMAT_VERSION}; "
            "use the gcrl-bench version that wrote it, or move that run folder out of the results directory"
        )
    return cfg


def read_metrics(path: Path) -> list[dict]:
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


def append_metrics(run: RunDir, rows: list[dict]) -> None:
    """Rewrites metrics.jsonl atomically with all rows so far (a crash never leaves half a line)."""
    atomic_write_text(run.metrics, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def run_score(metrics: list[dict]) -> float:
    """Mean eval/time_at_goal over the last SCORE_WINDOW evaluations (the paper's score)."""
    values = [m["eval/time_at_goal"] for m in metrics if "eval/time_at_goal" in m]
    if not values:
        return math.nan
    tail = values[-SCORE_WINDOW:]
    return sum(tail) / len(tail)


def iter_runs(out: Path) -> Iterable[tuple[RunDir, dict]]:
    runs = out / "runs"
    if not runs.is_dir():
        return
    for p in sorted(runs.iterdir()):
        if p.is_dir() and (p / "config.json").exists():
            yield RunDir(p), check_run_config(p / "config.json")


def validate_directory(out: Path) -> int:
    """Reads every run folder's config.json and summary.json once, so that a corrupt or incompatible run
    is reported (one line, naming the file) before any new work starts. Returns the number of runs."""
    count = 0
    for run, _ in iter_runs(out):
        if run.is_complete():
            summary = read_json(run.summary)
            if "score" not in summary or "env_steps" not in summary:
                raise ResultsError(f"{run.summary} lacks 'score' or 'env_steps'; delete {run.path} and rerun to redo it")
        read_metrics(run.metrics)
        count += 1
    return count


def write_scores_csv(out: Path) -> Path:
    """Rebuilds DIR/scores.csv from every run folder (complete runs get a final ``score`` row)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SCORE_COLUMNS)
    for run, cfg in iter_runs(out):
        key = (cfg["algo"], cfg["task"], cfg["depth"], cfg["width"], cfg["seed"])
        metrics = read_metrics(run.metrics)
        for m in metrics:
            for name in EVAL_METRICS:
                if f"eval/{name}" in m:
                    w.writerow(key + (m["env_steps"], name, repr(float(m[f"eval/{name}"]))))
        if run.is_complete():
            summary = read_json(run.summary)
            w.writerow(key + (summary["env_steps"], "score", repr(float(summary["score"]))))
    path = out / "scores.csv"
    atomic_write_text(path, buf.getvalue())
    return path


def to_json(x: Any) -> str:
    return json.dumps(_jsonable(x), indent=1, sort_keys=True)
