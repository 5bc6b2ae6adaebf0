"""Checkpoints of a run in progress: the whole LoopState plus the host-side state, safe to load.

Format. One file per checkpoint, ``runs/<run_id>/checkpoints/epoch-000005.ckpt``::

    b"GCRL-CKPT\\n" | sha256(payload) (32 bytes) | payload

where ``payload`` is flax's msgpack encoding of a plain dictionary::

    {"meta": <JSON text: format, run id, epoch, has_buffer, host state>,
     "leaves": {"<key path>": ndarray, ...}}     # every array leaf of the LoopState, by its key path
                                                 # (jax.tree_util.keystr, e.g. ".buffer.obs")

msgpack holds only numbers, strings and arrays (flax encodes arrays as dtype + shape + raw bytes), so
reading a checkpoint never executes code, unlike pickle. The pytree *structure* is never read from the
file: it comes from the run's own ``jax.eval_shape(trainer.init)``, and every leaf is checked against it
(name, shape and dtype) before use. The digest catches truncated or damaged files; a checkpoint that fails
any check is skipped with a warning and the previous one is used, or the run starts afresh.

Writes are atomic (temporary file, fsync, rename, fsync of the folder) and the newest ``KEEP`` checkpoints
are kept, so a crash during a write always leaves the previous good checkpoint in place.

The replay buffer is by far the largest part of the state (paper preset: ~1.4 GB). Its leaves are the
leaves of the state's ``buffer`` field (:func:`gcrl_bench.state_parts.buffer_flags`; the key path names
only identify leaves in the file, they never decide what is buffer). It is saved when it is at most
``CheckpointConfig.buffer_max_bytes``; without it, a resumed run refills the buffer with
the restored policy before continuing (a warning says so, and the run's summary records the extra
environment steps), so its results are no longer identical to an uninterrupted run's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import tempfile
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from gcrl_bench import state_parts
from gcrl_bench.errors import ConfigError

FORMAT = 1
MAGIC = b"GCRL-CKPT\n"
KEEP = 2
# Fault injection for the interruption tests: "kill-during-write:N" sends SIGKILL to this process after
# the N-th checkpoint file of the process is written but before it is renamed into place;
# "kill-after-write:N" sends it right after the N-th checkpoint is complete.
FAULT_ENV = "GCRL_BENCH_FAULT"


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """When and what to checkpoint (does not change a run's results, so not part of its id).

    Attributes:
      every_epochs: write a checkpoint after every this many epochs (0: only when interrupted by
        SIGTERM/SIGINT). The last epoch writes none: the run's final files follow at once.
      buffer_max_bytes: include the replay buffer when it is at most this many bytes; a larger buffer is
        left out and refilled on resume. 0 never saves it.
    """

    every_epochs: int = 5
    buffer_max_bytes: int = 4 << 30

    def __post_init__(self):
        if not isinstance(self.every_epochs, int) or self.every_epochs < 0:
            raise ConfigError(f"checkpoint interval must be a non-negative number of epochs, got {self.every_epochs!r}; "
                              "e.g. --checkpoint-every 5 (0: only on SIGTERM/SIGINT)")
        if not isinstance(self.buffer_max_bytes, int) or self.buffer_max_bytes < 0:
            raise ConfigError(f"checkpoint buffer limit must be >= 0 bytes, got {self.buffer_max_bytes!r}")


@dataclasses.dataclass(frozen=True)
class Restored:
    """A checkpoint read back.

    Attributes:
      epoch: epochs completed when it was written.
      leaves: key path -> array, every LoopState leaf (without the buffer's when ``has_buffer`` is False).
      has_buffer: whether the replay buffer is included.
      host: the host-side state (JSON-compatible: eval key, metrics rows, wall time so far, ...).
      path: the file it came from.
    """

    epoch: int
    leaves: dict[str, np.ndarray]
    has_buffer: bool
    host: dict[str, Any]
    path: Path


_writes = 0  # checkpoint files written by this process (fault injection counts them)


def _fault(kind: str) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if spec.partition(":")[0] == kind and spec.partition(":")[2] == str(_writes):
        os.kill(os.getpid(), signal.SIGKILL)


def leaf_paths(tree) -> list[tuple[str, Any]]:
    """(key path string, leaf) for every leaf of ``tree``, in flattening order."""
    return [(jax.tree_util.keystr(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def flagged_leaf_paths(tree) -> list[tuple[str, Any, bool]]:
    """(key path string, leaf, is a replay buffer leaf) for every leaf of ``tree``, in flattening order.

    Args:
      tree: a LoopState (or a dict with a ``"buffer"`` entry); the buffer leaves are those of its
        ``buffer`` field (:func:`gcrl_bench.state_parts.buffer_flags`).
    """
    flags = jax.tree.leaves(state_parts.buffer_flags(tree))
    return [(name, leaf, flag) for (name, leaf), flag in zip(leaf_paths(tree), flags, strict=True)]


def buffer_bytes(state_shape) -> int:
    """Bytes of the replay buffer's leaves of a LoopState (arrays or ``jax.ShapeDtypeStruct`` leaves)."""
    return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
               for _, x, in_buffer in flagged_leaf_paths(state_shape) if in_buffer)


def folder(run_path: Path) -> Path:
    return run_path / "checkpoints"


def save(run_path: Path, run_id: str, epoch: int, state, host: dict[str, Any], include_buffer: bool) -> Path:
    """Writes the checkpoint of ``epoch`` atomically and deletes all but the newest KEEP.

    Args:
      state: the LoopState (device arrays are fetched to the host here).
      host: JSON-compatible host-side state.
      include_buffer: whether the leaves of ``state.buffer`` are written too.
    """
    global _writes
    leaves = {name: np.asarray(x) for name, x, in_buffer in flagged_leaf_paths(jax.device_get(state))
              if include_buffer or not in_buffer}
    meta = {"format": FORMAT, "run_id": run_id, "epoch": epoch, "has_buffer": include_buffer, "host": host}
    payload = serialization.msgpack_serialize({"meta": json.dumps(meta, sort_keys=True), "leaves": leaves})
    target = folder(run_path) / f"epoch-{epoch:06d}.ckpt"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC)
            f.write(hashlib.sha256(payload).digest())
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        _writes += 1
        _fault("kill-during-write")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
    for old in sorted(target.parent.glob("epoch-*.ckpt"))[:-KEEP]:
        old.unlink()
    _fault("kill-after-write")
    return target


def _read(path: Path, run_id: str, template) -> Restored:
    """Reads and checks one checkpoint file; raises ValueError naming the first problem."""
    data = path.read_bytes()
    head = len(MAGIC) + 32
    if len(data) < head or not data.startswith(MAGIC):
        raise ValueError("not a gcrl-bench checkpoint")
    if hashlib.sha256(data[head:]).digest() != data[len(MAGIC):head]:
        raise ValueError("checksum mismatch (truncated or damaged)")
    content = serialization.msgpack_restore(data[head:])
    meta = json.loads(content["meta"])
    if meta.get("format") != FORMAT or meta.get("run_id") != run_id:
        raise ValueError(f"format {meta.get('format')!r} / run {meta.get('run_id')!r} is not this run's")
    leaves = content["leaves"]
    for name, spec, in_buffer in flagged_leaf_paths(template):
        if in_buffer and not meta["has_buffer"]:
            continue
        got = leaves.get(name)
        if got is None or got.shape != spec.shape or got.dtype != spec.dtype:
            raise ValueError(f"leaf {name} is {None if got is None else (got.shape, got.dtype)}, "
                             f"expected {(spec.shape, spec.dtype)}")
    return Restored(epoch=int(meta["epoch"]), leaves=leaves, has_buffer=bool(meta["has_buffer"]),
                    host=meta["host"], path=path)


def load_latest(run_path: Path, run_id: str, template) -> Restored | None:
    """The newest valid checkpoint of a run, or None. Invalid files are skipped with a warning.

    Args:
      template: the LoopState's shape tree (``jax.eval_shape(trainer.init, key)``): the only source of
        the structure, shapes and dtypes a checkpoint must match.
    """
    for path in sorted(folder(run_path).glob("epoch-*.ckpt"), reverse=True):
        try:
            return _read(path, run_id, template)
        except Exception as exc:  # any damage: fall back to the previous checkpoint
            warnings.warn(f"skipping checkpoint {path}: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
    return None


def restore_state(restored: Restored, template, fresh_buffer=None):
    """Builds the LoopState from a checkpoint's leaves in the template's structure.

    Args:
      template: the LoopState's shape tree (as for :func:`load_latest`).
      fresh_buffer: a state of the template's structure whose buffer leaves are used when the checkpoint
        has no buffer (required then).
    """
    if not restored.has_buffer and fresh_buffer is None:
        raise ValueError(f"checkpoint {restored.path} has no replay buffer: pass fresh_buffer, a state to take "
                         "the buffer from")
    structure = jax.tree_util.tree_structure(template)
    fill = structure.flatten_up_to(fresh_buffer) if not restored.has_buffer else None
    leaves = [fill[i] if in_buffer and not restored.has_buffer else restored.leaves[name]
              for i, (name, _, in_buffer) in enumerate(flagged_leaf_paths(template))]
    return jax.tree_util.tree_unflatten(structure, leaves)


def discard_after(run_path: Path, epoch: int) -> None:
    """Deletes checkpoints newer than ``epoch`` (damaged ones a resumed run skipped), so that they can never
    be taken for the newest, and any temporary files of interrupted writes."""
    ckpt = folder(run_path)
    if ckpt.is_dir():
        for p in ckpt.iterdir():
            if p.name.endswith(".tmp") or (p.suffix == ".ckpt" and p.stem > f"epoch-{epoch:06d}"):
                p.unlink()


def remove(run_path: Path) -> None:
    """Deletes a run's checkpoints (called once the run's final files are written)."""
    ckpt = folder(run_path)
    if ckpt.is_dir():
        for p in ckpt.iterdir():
            p.unlink()
        ckpt.rmdir()
