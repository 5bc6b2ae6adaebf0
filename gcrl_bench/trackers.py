"""Optional experiment trackers: mirror a run's metrics rows to TensorBoard or Weights & Biases.

The results directory stays the source of truth. A tracker only mirrors the rows of
``runs/<run_id>/metrics.jsonl`` as they are written: one point per row, at step ``env_steps`` (the row's
other numeric fields are the scalars). Trackers are offline first:

- ``tensorboard`` (extra ``tensorboard``: tensorboardX, no TensorFlow): event files under
  ``runs/<run_id>/tensorboard/``; ``tensorboard --logdir <results>/runs`` shows every run.
- ``wandb`` (extra ``wandb``): a Weights & Biases run in mode ``offline`` unless ``WANDB_MODE`` or the
  ``mode`` option says otherwise (``wandb sync`` uploads offline runs later). Its files go under
  ``runs/<run_id>/wandb/`` unless ``WANDB_DIR`` is set.

Resuming: a run restored from its checkpoint opens its tracker with ``resume=True`` and continues the same
tracker run (TensorBoard: a new event file beside the earlier ones; W&B: the same run id, ``resume="allow"``);
rows at steps already logged are skipped, so the rows the runner redoes after the checkpoint are not
logged twice. A run that starts over (``resume=False``) starts its tracker over too: the earlier
TensorBoard files are removed and W&B gets a new run (the same id with an attempt suffix).

A tracker is made with :func:`make_tracker` in the process that executes the run, then
``open(...)``, ``log(...)`` once per row (:func:`log_row`), ``close()``; :func:`mirrored` does all of it
for one run as the runner's ``on_metrics`` observer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

from gcrl_bench.errors import ConfigError, import_extra


class Tracker(Protocol):
    """What the runner calls: ``open`` once, ``log`` once per metrics row, ``close`` once."""

    def open(self, run_id: str, run_dir: Path, config: dict, resume: bool) -> None:
        """Starts (``resume=False``) or continues (``resume=True``) the tracker run of ``run_id``.

        Args:
          run_id: the gcrl-bench run id (the name of ``run_dir``).
          run_dir: the run's folder, ``<results>/runs/<run_id>``.
          config: the run's configuration record (the content of its config.json), plain JSON data.
          resume: the run continues from a checkpoint; False: it starts from its first epoch.
        """

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Records the numeric entries of ``metrics`` at ``step`` (env steps); a step not above the last
        one logged in this tracker run is skipped."""

    def close(self) -> None:
        """Writes out everything logged and ends the tracker run."""


# kind -> (module, extra that installs it)
KINDS = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb", "wandb")}


def make_tracker(kind: str | None, **options) -> Tracker | None:
    """A tracker of ``kind`` (``tensorboard``, ``wandb``; None or ``none``: no tracker, returns None).

    Args:
      kind: the tracker's name, as given to ``--logger``.
      **options: fields of that tracker's dataclass (:class:`TensorBoardTracker`, :class:`WandbTracker`).

    Raises:
      ConfigError: an unknown kind or option.
      MissingExtraError: the tracker's package is not installed (the message names the extra).
    """
    if kind is None or kind == "none":
        return None
    if kind not in KINDS:
        raise ConfigError(f"--logger {kind!r}: unknown tracker; choose {', '.join(KINDS)} (or none)")
    module, extra = KINDS[kind]
    import_extra(module, extra, f"--logger {kind}")  # refuse before any run starts
    cls = TensorBoardTracker if kind == "tensorboard" else WandbTracker
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"--logger {kind}: unknown option {unknown[0]!r}; "
                          f"known: {', '.join(sorted(known)) or 'none'}")
    return cls(**options)


def log_row(tracker: Tracker, row: Mapping[str, Any]) -> None:
    """Mirrors one metrics.jsonl row: its ``env_steps`` is the step, its other numeric fields the scalars."""
    tracker.log(int(row["env_steps"]), {k: v for k, v in row.items() if k != "env_steps"})


class RunMirror:
    """The ``on_metrics`` observer of one run (see :func:`gcrl_bench.runner.execute`) that mirrors each
    metrics row to ``tracker``: opened at the first row, with ``resume`` when that row's epoch is past the
    first (the run continued from a checkpoint; the runner does not pass on the rows it restores), and the
    run's config.json as its config.

    Args:
      tracker: the tracker, not yet opened.
      run_id, run_dir: the run's id and folder (``<results>/runs/<run_id>``).
      then: another ``on_metrics`` observer, given each row after the tracker (None: none).
    """

    def __init__(self, tracker: Tracker, run_id: str, run_dir: Path,
                 then: Callable[[dict], None] | None = None):
        self.tracker, self.run_id, self.run_dir, self.then = tracker, run_id, Path(run_dir), then
        self.opened = False

    def __call__(self, row: dict) -> None:
        if not self.opened:
            config_path = self.run_dir / "config.json"
            config = json.loads(config_path.read_text()) if config_path.exists() else {}
            self.tracker.open(self.run_id, self.run_dir, config, resume=int(row["epoch"]) > 1)
            self.opened = True
        log_row(self.tracker, row)
        if self.then is not None:
            self.then(row)

    def close(self) -> None:
        if self.opened:
            self.tracker.close()
            self.opened = False


@contextlib.contextmanager
def mirrored(kind: str | None, run_id: str, run_dir: Path, on_metrics: Callable[[dict], None] | None = None,
             **options) -> Iterator[Callable[[dict], None] | None]:
    """The ``on_metrics`` observer to give the run ``run_id``: a :class:`RunMirror` to a ``kind`` tracker
    (made with ``options``, see :func:`make_tracker`) passing rows on to ``on_metrics``, closed when the
    block ends however it ends; with ``kind`` None, ``on_metrics`` itself."""
    tracker = make_tracker(kind, **options)
    if tracker is None:
        yield on_metrics
        return
    mirror = RunMirror(tracker, run_id, run_dir, on_metrics)
    try:
        yield mirror
    finally:
        mirror.close()


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric entries of ``metrics`` (booleans and strings are not scalars to plot)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


@dataclasses.dataclass
class TensorBoardTracker:
    """TensorBoard event files of one run, written with tensorboardX.

    Attributes:
      subdir: the folder of the event files inside the run's folder.
      last_step: the last step logged in this tracker run (None: none yet); set by ``open``.
    """

    subdir: str = "tensorboard"
    last_step: int | None = dataclasses.field(default=None, init=False)
    _writer: Any = dataclasses.field(default=None, init=False, repr=False)

    def open(self, run_id: str, run_dir: Path, config: dict, resume: bool) -> None:
        tbx = import_extra("tensorboardX", "tensorboard", "--logger tensorboard")
        log_dir = Path(run_dir) / self.subdir
        if resume:
            steps = [step for series in read_scalars(log_dir).values() for step, _ in series]
            self.last_step = max(steps, default=None)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)  # an earlier attempt's points: the run starts over
            self.last_step = None
        # numbered: a writer opened in the same second as an earlier one would otherwise reuse its file name
        number = len(list(log_dir.glob("events.out.tfevents.*")))
        self._writer = tbx.SummaryWriter(logdir=str(log_dir), filename_suffix=f".{number}")
        if not resume:
            self._writer.add_text("config", "```\n" + json.dumps(config, indent=2, sort_keys=True) + "\n```", 0)

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        if self.last_step is not None and step <= self.last_step:
            return
        for tag, value in _scalars(metrics).items():
            self._writer.add_scalar(tag, value, step)
        self._writer.flush()  # one row per epoch: a killed process loses nothing it logged
        self.last_step = step

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars of every TensorBoard event file in ``log_dir`` (none: an empty dict).

    Returns:
      tag -> [(step, value), ...] in the order written (files by name: their creation time, then their
      number); values are float32, as stored. A record cut short by a killed process ends its file's reading.
    """
    from tensorboardX.proto import event_pb2
    from tensorboardX.record_writer import masked_crc32c

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):  # TFRecord: u64 length, u32 crc(length), data, u32 crc(data)
            header = data[pos:pos + 8]
            (length,), (header_crc,) = struct.unpack("<Q", header), struct.unpack("<I", data[pos + 8:pos + 12])
            body = data[pos + 12:pos + 12 + length]
            end = pos + 12 + length + 4
            if header_crc != masked_crc32c(header) or end > len(data):
                break
            if struct.unpack("<I", data[end - 4:end])[0] != masked_crc32c(body):
                break
            event = event_pb2.Event()
            event.ParseFromString(body)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
            pos = end
    return scalars


_WANDB_STATE = "gcrl_bench_tracker.json"


def wandb_run_id(run_id: str, attempt: int = 0) -> str:
    """The W&B run id of a gcrl-bench run: the run id with characters outside ``[A-Za-z0-9_.-]`` replaced by
    ``-``, shortened to 64 characters with a hash of the whole id when longer; attempt ``n >= 1`` (a run
    that started over) appends ``-a<n>``."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)
    if len(base) > 64:
        base = base[:53] + "-" + hashlib.sha256(run_id.encode()).hexdigest()[:10]
    return f"{base}-a{attempt}" if attempt else base


@dataclasses.dataclass
class WandbTracker:
    """A Weights & Biases run per gcrl-bench run, offline unless told otherwise.

    Its id is :func:`wandb_run_id` of the run id, and it is opened with ``resume="allow"``, so a resumed
    run continues it. ``runs/<run_id>/wandb/gcrl_bench_tracker.json`` records the id and the last step
    logged (W&B cannot be asked offline).

    Attributes:
      project: the W&B project; None: ``WANDB_PROJECT`` if set, else ``gcrl-bench``.
      entity: the W&B entity (user or team); None: W&B's default.
      mode: ``offline``, ``online`` or ``disabled``; None: ``WANDB_MODE`` if set, else ``offline``.
      last_step: the last step logged in this tracker run (None: none yet); set by ``open``.
    """

    project: str | None = None
    entity: str | None = None
    mode: str | None = None
    last_step: int | None = dataclasses.field(default=None, init=False)
    _run: Any = dataclasses.field(default=None, init=False, repr=False)
    _state: dict = dataclasses.field(default_factory=dict, init=False, repr=False)
    _state_path: Path | None = dataclasses.field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.mode not in (None, "offline", "online", "disabled"):
            raise ConfigError(f"wandb mode {self.mode!r}: choose offline, online or disabled")

    def open(self, run_id: str, run_dir: Path, config: dict, resume: bool) -> None:
        wandb = import_extra("wandb", "wandb", "--logger wandb")
        run_dir = Path(run_dir)
        self._state_path = run_dir / "wandb" / _WANDB_STATE
        earlier = json.loads(self._state_path.read_text()) if self._state_path.exists() else None
        if resume and earlier is not None:
            self._state = earlier
        else:
            attempt = earlier["attempt"] + 1 if earlier is not None else 0
            self._state = {"id": wandb_run_id(run_id, attempt), "attempt": attempt, "last_step": None}
        self.last_step = self._state["last_step"]
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        self._save_state()
        mode = self.mode or (None if os.environ.get("WANDB_MODE") else "offline")  # None: wandb reads WANDB_MODE
        self._run = wandb.init(
            project=self.project or os.environ.get("WANDB_PROJECT") or "gcrl-bench", entity=self.entity,
            id=self._state["id"], name=run_id, resume="allow", mode=mode, config=config,
            dir=None if os.environ.get("WANDB_DIR") else str(run_dir),
            settings=wandb.Settings(console="off", silent=True),
        )
        self._run.define_metric("env_steps")
        self._run.define_metric("*", step_metric="env_steps")

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        if self.last_step is not None and step <= self.last_step:
            return
        self._run.log({"env_steps": step, **_scalars(metrics)})
        self.last_step = self._state["last_step"] = step
        self._save_state()

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None

    def _save_state(self) -> None:
        from gcrl_bench.results import atomic_write_text

        atomic_write_text(self._state_path, json.dumps(self._state, sort_keys=True))
