"""Loading a finished run folder back: its configuration, its task and algorithm, its final parameters.

A run folder (``results/runs/<run_id>/``, written by :mod:`gcrl_bench.runner`) holds ``config.json`` (the
run's identity: algorithm, task, seed, ``algo_config``, ``loop_config``) and, once the run is complete,
``params.msgpack``: the final algorithm state (``LoopState.algo``) as flax msgpack. The state's pytree
structure is never read from the file: it comes from ``algorithm.init`` traced (``jax.eval_shape``) with
the recorded config and the task's spec, and every leaf read back is checked against it.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from gcrl_bench import registry, results
from gcrl_bench.config import LoopConfig
from gcrl_bench.errors import GcrlBenchError, ResultsError
from gcrl_bench.interface import Algorithm, Task
from gcrl_bench.runspec import RunSpec


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A complete run read back from its folder.

    Attributes:
      path: the run folder.
      run: the run's RunSpec (algorithm, task, seed, algorithm config, loop config, preset).
      record: config.json as written (also package versions, code version, hardware).
      task: the registered task the run trained on.
      algorithm: the registered algorithm.
      algo_state: the final algorithm state (parameters, optimiser states, ...), numpy leaves.
    """

    path: Path
    run: RunSpec
    record: dict
    task: Task
    algorithm: Algorithm
    algo_state: Any

    @property
    def algo_config(self) -> Any:
        return self.run.algo_config


def config_from_dict(cls: type, values: dict, where: str) -> Any:
    """Rebuilds a (possibly nested) frozen config dataclass from its JSON form (``results.jsonable``).

    Nested dataclass fields (e.g. ``network: NetworkConfig``) are rebuilt recursively and JSON lists
    become tuples where the field is a tuple; the dataclass's own validation runs as usual.

    Raises:
      ResultsError: a field the class does not have (the run was written by another version).
    """
    if not isinstance(values, dict):
        raise ResultsError(f"{where}: expected an object of {cls.__name__} fields, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ResultsError(f"{where}: {cls.__name__} has no field(s) {', '.join(unknown)}; the run was written by "
                           "another version of its algorithm")
    kwargs = {}
    for name, value in values.items():
        hint = hints.get(name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            value = config_from_dict(hint, value, f"{where}.{name}")
        elif (hint is tuple or typing.get_origin(hint) is tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _incomplete(folder: results.RunDir) -> str:
    if folder.failure.exists():
        try:
            error = results.read_json(folder.failure).get("error", "see failure.json")
        except ResultsError:
            error = "see failure.json"
        return f"the run failed ({error}); it has no final parameters"
    if (folder.path / "checkpoints").is_dir():
        return "the run is not finished (in progress or interrupted); rerun its command to complete it"
    return "the run is not complete (no params.msgpack and summary.json)"


def load_run(run_dir: str | Path) -> LoadedRun:
    """Loads a complete run folder: config, task, algorithm and the final algorithm state.

    Raises:
      ResultsError: not a run folder, incomplete or failed run, unreadable or mismatching files.
      UnknownNameError: the run's task or algorithm is not registered in this installation.
    """
    path = Path(run_dir)
    folder = results.RunDir(path)
    if not path.is_dir():
        raise ResultsError(f"run folder {str(path)!r} does not exist; pass a folder results/runs/<run_id>")
    if not folder.config.exists():
        hint = " (this is a results directory: pick one of its runs/<run_id> folders)" if (path / "runs").is_dir() else ""
        raise ResultsError(f"{str(path)!r} is not a gcrl-bench run folder (no config.json){hint}; "
                           "pass a folder results/runs/<run_id>")
    if not (folder.params.exists() and folder.summary.exists()):
        raise ResultsError(f"run folder {str(path)!r}: {_incomplete(folder)}")
    record = results.read_config(folder.config)  # format version and the fields every reader relies on
    algo_name, task_name, seed = record["algo"], record["task"], record["seed"]
    try:
        algo_values, loop_values = record["algo_config"], record["loop_config"]
    except KeyError as exc:
        raise ResultsError(f"run folder {str(path)!r}: config.json is unreadable or incomplete "
                           f"({type(exc).__name__}: {exc})") from None

    algorithm = registry.get_algorithm(algo_name)
    task = registry.get_task(task_name)
    try:
        algo_config = config_from_dict(algorithm.config_cls, algo_values, "config.json algo_config")
        loop = config_from_dict(LoopConfig, loop_values, "config.json loop_config")
    except GcrlBenchError:
        raise
    except (TypeError, ValueError) as exc:
        raise ResultsError(f"run folder {str(path)!r}: config.json does not describe a valid configuration "
                           f"({type(exc).__name__}: {exc})") from None
    run = RunSpec(algo=algo_name, task=task_name, seed=seed, algo_config=algo_config, loop=loop,
                  preset=record["preset"])

    template = jax.eval_shape(functools.partial(algorithm.init, algo_config, task.spec), jax.random.PRNGKey(seed))
    try:
        state = serialization.from_bytes(template, folder.params.read_bytes())
    except Exception as exc:  # msgpack decoding or a structure that does not match the template
        raise ResultsError(f"run folder {str(path)!r}: params.msgpack does not hold this run's {algo_name} state "
                           f"({type(exc).__name__}: {exc})") from None
    expected, leaves = jax.tree_util.tree_flatten_with_path(template)[0], jax.tree.leaves(state)
    if len(leaves) != len(expected):
        raise ResultsError(f"run folder {str(path)!r}: params.msgpack holds {len(leaves)} arrays, the run's config "
                           f"expects {len(expected)}")
    for (key, want), got in zip(expected, leaves):
        got = np.asarray(got)
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ResultsError(f"run folder {str(path)!r}: params.msgpack leaf {jax.tree_util.keystr(key)} is "
                               f"{got.shape} {got.dtype}, the run's config expects {want.shape} {want.dtype}")
    return LoadedRun(path=path, run=run, record=record, task=task, algorithm=algorithm, algo_state=state)
