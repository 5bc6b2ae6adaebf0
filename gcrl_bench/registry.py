"""One registry for tasks and algorithms.

Built-ins and plugins register through the same functions. Plugins are found through the entry-point
groups ``gcrl_bench.tasks`` and ``gcrl_bench.algorithms``: each entry point names a callable that is
called with no arguments and registers what it provides by calling :func:`register_task` /
:func:`register_algorithm`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
import warnings
from typing import Callable

from gcrl_bench.errors import ConfigError, UnknownNameError
from gcrl_bench.interface import Algorithm, Task, TaskSpec

BUILTIN = "built-in"


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    """A registered task: its static spec, a factory building the (possibly expensive) environment, and
    where it came from (``built-in`` or the distribution that provided it)."""

    spec: TaskSpec
    factory: Callable[[], Task]
    origin: str = BUILTIN


@dataclasses.dataclass(frozen=True)
class AlgorithmEntry:
    algorithm: Algorithm
    origin: str = BUILTIN


_TASKS: dict[str, TaskEntry] = {}
_ALGORITHMS: dict[str, AlgorithmEntry] = {}
_BUILT_TASKS: dict[str, Task] = {}
_loaded = False
_origin = BUILTIN
PLUGIN_ERRORS: list[str] = []


def register_task(spec: TaskSpec, factory: Callable[[], Task]) -> None:
    """Registers a task under ``spec.name``; a second registration of the same name is an error."""
    if spec.name in _TASKS:
        raise ConfigError(
            f"task {spec.name!r} is registered twice (by {_TASKS[spec.name].origin} and by {_origin}); "
            "task names must be unique: rename one of them"
        )
    _TASKS[spec.name] = TaskEntry(spec=spec, factory=factory, origin=_origin)


def register_algorithm(algorithm: Algorithm) -> None:
    """Registers an algorithm under ``algorithm.name``; a second registration of the name is an error."""
    if algorithm.name in _ALGORITHMS:
        raise ConfigError(
            f"algorithm {algorithm.name!r} is registered twice (by {_ALGORITHMS[algorithm.name].origin} and "
            f"by {_origin}); algorithm names must be unique: rename one of them"
        )
    _ALGORITHMS[algorithm.name] = AlgorithmEntry(algorithm=algorithm, origin=_origin)


def _load() -> None:
    """Imports the built-ins, then every plugin entry point (once)."""
    global _loaded, _origin
    if _loaded:
        return
    _loaded = True
    importlib.import_module("gcrl_bench.tasks")
    importlib.import_module("gcrl_bench.algorithms")
    for group in ("gcrl_bench.tasks", "gcrl_bench.algorithms"):
        for ep in importlib.metadata.entry_points(group=group):
            dist = ep.dist.name if ep.dist is not None else ep.value
            _origin = dist
            try:
                ep.load()()
            except Exception as exc:  # a broken plugin must not take the others down
                msg = f"plugin {dist!r} (entry point {ep.name!r} in {group}) failed to load: {type(exc).__name__}: {exc}"
                PLUGIN_ERRORS.append(msg)
                warnings.warn(msg, stacklevel=2)
            finally:
                _origin = BUILTIN


def _unknown(kind: str, name: str, known: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}{hint}; known {kind}s: {', '.join(sorted(known))}")


def task_entries() -> dict[str, TaskEntry]:
    _load()
    return dict(_TASKS)


def algorithm_entries() -> dict[str, AlgorithmEntry]:
    _load()
    return dict(_ALGORITHMS)


def task_spec(name: str) -> TaskSpec:
    entries = task_entries()
    if name not in entries:
        raise _unknown("task", name, list(entries))
    return entries[name].spec


def get_task(name: str) -> Task:
    """Builds (once per process) and returns the task called ``name``."""
    entries = task_entries()
    if name not in entries:
        raise _unknown("task", name, list(entries))
    if name not in _BUILT_TASKS:
        _BUILT_TASKS[name] = entries[name].factory()
    return _BUILT_TASKS[name]


def get_algorithm(name: str) -> Algorithm:
    entries = algorithm_entries()
    if name not in entries:
        raise _unknown("algorithm", name, list(entries))
    return entries[name].algorithm


def benchmark_task_names() -> list[str]:
    """The registered tasks of the benchmark (not sanity tasks and not evaluation-only goal sets)."""
    return [n for n, e in task_entries().items() if e.spec.benchmark]
