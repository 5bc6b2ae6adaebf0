"""One registry for tasks and algorithms.

Built-ins and plugins register through the same two functions, :func:`register_task` and
:func:`register_algorithm`. Plugins are found through the entry-point groups ``gcrl_bench.tasks`` and
``gcrl_bench.algorithms``: each entry point names a callable that is called with no arguments and
registers what it provides by calling those two functions (see ``docs/plugins.md``).

Loading a plugin is all or nothing: what one entry point registers is kept only if the whole call
succeeds. An entry point that raises, or that registers a name already taken, is left out; its error is
recorded in :data:`PLUGIN_ERRORS` as one line naming the distribution (and, for a clash, the distribution
that holds the name), and everything else stays usable. The registry prints nothing itself:
``gcrl-bench list`` shows the recorded errors, and an unknown-name error mentions them.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
import re
from typing import Callable

from gcrl_bench.errors import ConfigError, UnknownNameError
from gcrl_bench.interface import Algorithm, Task, TaskSpec

BUILTIN = "built-in"

# Names appear in comma-separated CLI lists, run ids and directory names.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    """A registered task.

    Attributes:
      spec: the task's static spec (available without building the task).
      factory: called with no arguments, builds the (possibly expensive) task object; called at most once
        per process, on first use.
      origin: ``built-in`` or the name of the distribution (pip package) that registered the task.
    """

    spec: TaskSpec
    factory: Callable[[], Task]
    origin: str = BUILTIN


@dataclasses.dataclass(frozen=True)
class AlgorithmEntry:
    """A registered algorithm.

    Attributes:
      algorithm: the algorithm's config class and pure functions.
      origin: ``built-in`` or the name of the distribution (pip package) that registered the algorithm.
    """

    algorithm: Algorithm
    origin: str = BUILTIN


_TASKS: dict[str, TaskEntry] = {}
_ALGORITHMS: dict[str, AlgorithmEntry] = {}
_BUILT_TASKS: dict[str, Task] = {}
_loaded = False
_origin = BUILTIN
PLUGIN_ERRORS: list[str] = []
"""One line per plugin entry point that failed to load: the distribution, the entry point and the error."""


def _check_name(kind: str, name: object) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{kind} name {name!r} (from {_origin}) is not valid: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit (names appear in --tasks/--algos lists and in run ids)"
        )


def register_task(spec: TaskSpec, factory: Callable[[], Task]) -> None:
    """Registers a task under ``spec.name``.

    Args:
      spec: the task's static spec; ``gcrl-bench list`` and the CLI's checks read it without building the task.
      factory: called with no arguments, returns the task object (``spec`` attribute, ``reset``, ``step``);
        it is called at most once per process, when the task is first used.

    Raises:
      ConfigError: the name is taken (the message names both origins), is not a valid name, or a plugin
        task claims ``benchmark=True``, which marks the paper's ten tasks (the default task list of
        ``gcrl-bench run``).
    """
    if not isinstance(spec, TaskSpec):
        raise ConfigError(f"register_task from {_origin}: spec must be a gcrl_bench.interface.TaskSpec, got {type(spec).__name__}")
    _check_name("task", spec.name)
    if not callable(factory):
        raise ConfigError(f"register_task({spec.name!r}) from {_origin}: factory {factory!r} is not callable; "
                          "pass a function or class that builds the task with no arguments")
    if spec.name in _TASKS:
        raise ConfigError(
            f"task {spec.name!r} is registered twice (by {_TASKS[spec.name].origin} and by {_origin}); "
            "task names must be unique: rename one of them"
        )
    if _origin != BUILTIN and spec.benchmark:
        raise ConfigError(
            f"task {spec.name!r} from {_origin} sets benchmark=True (TaskSpec's default), which marks the paper's "
            "ten tasks that `gcrl-bench run` trains when no --tasks is given; pass benchmark=False in its TaskSpec"
        )
    _TASKS[spec.name] = TaskEntry(spec=spec, factory=factory, origin=_origin)


def register_algorithm(algorithm: Algorithm) -> None:
    """Registers an algorithm under ``algorithm.name``.

    Raises:
      ConfigError: the name is taken (the message names both origins) or is not a valid name.
    """
    if not isinstance(algorithm, Algorithm):
        raise ConfigError(f"register_algorithm from {_origin}: expected a gcrl_bench.interface.Algorithm, "
                          f"got {type(algorithm).__name__}")
    _check_name("algorithm", algorithm.name)
    if algorithm.name in _ALGORITHMS:
        raise ConfigError(
            f"algorithm {algorithm.name!r} is registered twice (by {_ALGORITHMS[algorithm.name].origin} and "
            f"by {_origin}); algorithm names must be unique: rename one of them"
        )
    _ALGORITHMS[algorithm.name] = AlgorithmEntry(algorithm=algorithm, origin=_origin)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _load_entry_point(group: str, ep: importlib.metadata.EntryPoint) -> None:
    """Calls one plugin entry point; keeps what it registered only if the whole call succeeds."""
    global _origin
    dist = ep.dist.name if ep.dist is not None else ep.value.split(":")[0].split(".")[0]
    tasks_before, algos_before = dict(_TASKS), dict(_ALGORITHMS)
    _origin = dist
    try:
        ep.load()()
    except Exception as exc:  # a broken plugin must not take the others down
        _TASKS.clear()
        _TASKS.update(tasks_before)
        _ALGORITHMS.clear()
        _ALGORITHMS.update(algos_before)
        PLUGIN_ERRORS.append(
            f"plugin {dist!r} not loaded (entry point {ep.name!r} = {ep.value} in group {group}): {_one_line(exc)}"
        )
    finally:
        _origin = BUILTIN


def _load() -> None:
    """Imports the built-ins, then every plugin entry point (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    importlib.import_module("gcrl_bench.tasks")
    importlib.import_module("gcrl_bench.algorithms")
    for group in ("gcrl_bench.tasks", "gcrl_bench.algorithms"):
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: (e.value, e.name)):
            _load_entry_point(group, ep)


def _unknown(kind: str, name: str, known: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    broken = f"; {len(PLUGIN_ERRORS)} plugin(s) failed to load, see `gcrl-bench list`" if PLUGIN_ERRORS else ""
    return UnknownNameError(f"unknown {kind} {name!r}{hint}; known {kind}s: {', '.join(sorted(known))}{broken}")


def task_entries() -> dict[str, TaskEntry]:
    """Every registered task by name (built-ins and plugins)."""
    _load()
    return dict(_TASKS)


def algorithm_entries() -> dict[str, AlgorithmEntry]:
    """Every registered algorithm by name (built-ins and plugins)."""
    _load()
    return dict(_ALGORITHMS)


def plugin_errors() -> list[str]:
    """The plugin entry points that failed to load, one line each (after loading the registry)."""
    _load()
    return list(PLUGIN_ERRORS)


def task_spec(name: str) -> TaskSpec:
    """The spec of the task called ``name``, without building the task."""
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
    """The algorithm called ``name``."""
    entries = algorithm_entries()
    if name not in entries:
        raise _unknown("algorithm", name, list(entries))
    return entries[name].algorithm


def benchmark_task_names() -> list[str]:
    """The registered tasks of the benchmark (not sanity tasks and not evaluation-only goal sets)."""
    return [n for n, e in task_entries().items() if e.spec.benchmark]
