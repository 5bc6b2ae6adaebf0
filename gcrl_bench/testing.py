"""Conformance kit: checks that a task or an algorithm honours the contracts of :mod:`gcrl_bench.interface`.

Plugin authors call these from their own test suites; gcrl-bench runs them on every registered task and
algorithm (``tests/test_contracts.py``)::

    from gcrl_bench.testing import check_algorithm, check_task

    def test_my_task():
        check_task("my_task")                            # or a task object

    def test_my_algorithm():
        check_algorithm("my_algo", task="point_u_maze")  # or an Algorithm object

Each check raises :class:`ConformanceError` (an ``AssertionError``) whose message says which rule is broken,
by what value, and where. Each check compiles a few small programs; on a CPU a pure-JAX task or a small
algorithm takes seconds, a brax task tens of seconds (mostly compilation).

Optional task protocol
----------------------
A task may define ``contains_goal(goal, evaluation) -> () bool``: jittable, True when ``goal``
(goal_size,) belongs to the training goal set (``evaluation=False``) or to the evaluation goal set. When
present, :func:`check_task` checks that every reset's commanded goal belongs to its goal set. A task whose
reset ignores the key (a fixed start and goal) sets ``deterministic_reset = True``; otherwise resets from
different keys must differ.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gcrl_bench import registry
from gcrl_bench.interface import Algorithm, EnvState, RelabelConfig, Task, TaskSpec
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.overrides import field_docs
from gcrl_bench.relabel import relabel_window
from gcrl_bench.rollout import auto_reset_step, reset_batch

__all__ = ["ConformanceError", "TaskReport", "AlgorithmReport", "check_task", "check_algorithm",
           "documented_fields"]


class ConformanceError(AssertionError):
    """A task or algorithm breaks its contract; the message names the rule, the value and the place."""


def _fail(subject: str, message: str) -> ConformanceError:
    return ConformanceError(f"{subject}: {message}")


@dataclasses.dataclass(frozen=True)
class TaskReport:
    """What :func:`check_task` measured (all checks passed).

    Attributes:
      name: the task's name.
      num_envs, num_steps: the random-action rollout's size.
      episodes: episodes ended (termination or time limit) during the rollout.
      terminations: episodes ended by termination.
      success_fraction: fraction of env steps within the success radius under random actions.
      compile_seconds: time to trace and compile the rollout program.
      run_seconds: time of the two rollouts (the second checks reproducibility).
    """

    name: str
    num_envs: int
    num_steps: int
    episodes: int
    terminations: int
    success_fraction: float
    compile_seconds: float
    run_seconds: float


@dataclasses.dataclass(frozen=True)
class AlgorithmReport:
    """What :func:`check_algorithm` measured (all checks passed).

    Attributes:
      name: the algorithm's name.
      task: the task its batches came from.
      num_updates: gradient steps taken.
      metrics: the last update's metrics.
      seconds: wall time of the whole check.
    """

    name: str
    task: str
    num_updates: int
    metrics: dict[str, float]
    seconds: float


# ---------------------------------------------------------------------------------------------------------
# Helpers


def _resolve_task(task: Task | str) -> tuple[Task, str]:
    if isinstance(task, str):
        built = registry.get_task(task)
        registered = registry.task_spec(task)
        if getattr(built, "spec", None) != registered:
            raise _fail(f"task {task!r}", f"the factory built a task whose spec {getattr(built, 'spec', None)!r} differs "
                                          f"from the registered spec {registered!r}; register the task's own spec")
        return built, f"task {task!r}"
    spec = getattr(task, "spec", None)
    name = spec.name if isinstance(spec, TaskSpec) else type(task).__name__
    return task, f"task {name!r}"


def _leaf_paths(tree) -> list[tuple[str, Any]]:
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _attributes(obj) -> dict[str, int]:
    """Identity of each instance attribute: a pure reset/step/update leaves them all in place."""
    return {k: id(v) for k, v in getattr(obj, "__dict__", {}).items()}


def _check_unchanged(task, before: dict[str, int], subject: str) -> None:
    after = _attributes(task)
    if after != before:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        raise _fail(subject, f"reset/step changed the task object's attribute(s) {changed}; tasks must be pure: "
                             "keep everything that changes in the EnvState")


def _first_true(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _same(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


# ---------------------------------------------------------------------------------------------------------
# Tasks


def _check_spec(spec: object, subject: str) -> TaskSpec:
    if not isinstance(spec, TaskSpec):
        raise _fail(subject, f"spec must be a gcrl_bench.interface.TaskSpec, got {type(spec).__name__}")
    for field in ("state_size", "goal_size", "action_size", "episode_length"):
        value = getattr(spec, field)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise _fail(subject, f"spec.{field} must be a positive int, got {value!r}")
    if len(spec.goal_indices) != spec.goal_size:
        raise _fail(subject, f"spec.goal_indices {spec.goal_indices} has {len(spec.goal_indices)} entries, goal_size is {spec.goal_size}")
    for i in spec.goal_indices:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < spec.state_size:
            raise _fail(subject, f"spec.goal_indices {spec.goal_indices}: index {i!r} is not an int in [0, state_size={spec.state_size})")
    if len(set(spec.goal_indices)) != len(spec.goal_indices):
        raise _fail(subject, f"spec.goal_indices {spec.goal_indices} repeats an index")
    for field in ("success_threshold", "env_step_seconds"):
        value = getattr(spec, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise _fail(subject, f"spec.{field} must be a positive finite number, got {value!r}")
    if spec.observation_size != spec.state_size + spec.goal_size:
        raise _fail(subject, f"spec.observation_size {spec.observation_size} != state_size + goal_size "
                             f"({spec.state_size} + {spec.goal_size})")
    if not isinstance(spec.benchmark, bool):
        raise _fail(subject, f"spec.benchmark must be a bool, got {spec.benchmark!r}")
    return spec


def _random_policy(spec: TaskSpec):
    """``policy(obs, key)``: uniform random actions in [-1, 1], (N, action_size) for obs (N, observation_size)."""
    return lambda obs, key: jax.random.uniform(key, (obs.shape[0], spec.action_size), minval=-1.0, maxval=1.0)


def _check_env_state_shape(state, spec: TaskSpec, subject: str, where: str) -> None:
    if not isinstance(state, EnvState):
        raise _fail(subject, f"{where} must return a gcrl_bench.interface.EnvState, got {type(state).__name__}")
    if state.obs.shape != (spec.observation_size,) or state.obs.dtype != jnp.float32:
        raise _fail(subject, f"{where}: obs is {state.obs.dtype}{list(state.obs.shape)}, expected "
                             f"float32[{spec.observation_size}] (state_size {spec.state_size} + goal_size {spec.goal_size})")
    if state.terminated.shape != () or state.terminated.dtype != jnp.float32:
        raise _fail(subject, f"{where}: terminated is {state.terminated.dtype}{list(state.terminated.shape)}, "
                             "expected a float32 scalar (1.0 terminated, 0.0 not)")


def _rollout_program(task: Task, spec: TaskSpec, num_envs: int, num_steps: int):
    """One program: train and eval resets, then num_steps random-action steps in num_envs environments with
    the loop's auto-reset (:func:`gcrl_bench.rollout.auto_reset_step`, fresh resets), counting every
    violation and where it first happens."""
    S, n = spec.state_size, num_envs
    has_contains = callable(getattr(task, "contains_goal", None))

    def finite_per_env(state: EnvState):
        leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact)]
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x.reshape(n, -1)), axis=1) for x in leaves]), axis=0)

    def in_goal_set(state: EnvState, evaluation: bool):
        if not has_contains:
            return jnp.ones((n,), bool)
        return jax.vmap(lambda g: jnp.asarray(task.contains_goal(g, evaluation), bool))(state.obs[:, S:])

    def program(key):
        k_train, k_eval, k_steps = jax.random.split(key, 3)
        train0, eval0 = reset_batch(task, k_train, n, False), reset_batch(task, k_eval, n, True)
        checks0 = {
            "reset_finite": jnp.stack([finite_per_env(train0), finite_per_env(eval0)]),
            "reset_goal_in_set": jnp.stack([in_goal_set(train0, False), in_goal_set(eval0, True)]),
            "reset_terminated": jnp.stack([train0.terminated, eval0.terminated]),
        }
        never = jnp.full((n,), -1, jnp.int32)
        zeros = jnp.zeros((n,), jnp.int32)
        init_stats = {"nonfinite": never, "bad_terminated": never, "goal_changed": never, "goal_outside": never,
                      "success_steps": zeros, "episodes": zeros, "terminations": zeros}

        def first(prev, bad, t):
            return jnp.where((prev < 0) & bad, t, prev)

        def body(carry, inputs):
            env, episode_step, traj_id, stats = carry
            t, k = inputs
            (env_next, episode_step, traj_id), rec = auto_reset_step(
                task, _random_policy(spec), k, env, episode_step, traj_id, "fresh")
            nxt, fresh, done = rec.next_env, rec.restart, rec.done
            terminated = nxt.terminated
            success = spec.reached(spec.distance(nxt.obs))
            stats = {
                "nonfinite": first(stats["nonfinite"], ~finite_per_env(nxt), t),
                "bad_terminated": first(stats["bad_terminated"], (terminated != 0.0) & (terminated != 1.0), t),
                "goal_changed": first(stats["goal_changed"], jnp.any(nxt.obs[:, S:] != env.obs[:, S:], axis=1), t),
                "goal_outside": first(stats["goal_outside"], ~in_goal_set(fresh, False) & done, t),
                "success_steps": stats["success_steps"] + success,
                "episodes": stats["episodes"] + done,
                "terminations": stats["terminations"] + (terminated > 0.5),
            }
            return (env_next, episode_step, traj_id, stats), None

        steps = (jnp.arange(num_steps, dtype=jnp.int32), jax.random.split(k_steps, num_steps))
        (final, _, _, stats), _ = jax.lax.scan(body, (train0, zeros, zeros, init_stats), steps)
        return {"train0": train0, "eval0": eval0, "final": final, "stats": stats, "checks0": checks0}

    return program


def check_task(task: Task | str, *, num_envs: int = 64, num_steps: int = 1000, key: jax.Array | None = None) -> TaskReport:
    """Checks a task against the task contract; raises :class:`ConformanceError` on the first violation.

    Checked: the spec (sizes positive, ``observation_size = state_size + goal_size``, goal indices in range
    and distinct, threshold and step duration positive; for a registered name, the built task's spec is
    the registered one); ``reset``/``step`` trace under ``jit`` and ``vmap`` with ``EnvState`` outputs
    (obs float32 (observation_size,), terminated a float32 scalar) and ``step`` keeps the state's
    structure, shapes and dtypes; tracing and running them leaves the task object's attributes in place;
    ``num_steps`` steps of uniform random actions in ``num_envs`` environments (one ``lax.scan`` over
    ``vmap(step)``, auto-reset on termination or the time limit as the loop does) keep every float of the
    state finite and ``terminated`` in {0, 1}, and never change the commanded goal ``obs[state_size:]``
    within an episode; not every reset starts inside the success radius (:meth:`TaskSpec.success`, as the
    loop computes success); resets with ``evaluation=True`` satisfy the same; the same key reproduces the
    rollout bit for bit and different keys give different resets (unless ``deterministic_reset``); with
    the optional ``contains_goal`` every reset's goal lies in its goal set.

    Args:
      task: a task object or a registered task name.
      num_envs: parallel environments of the random-action rollout.
      num_steps: env steps per environment of the rollout.
      key: PRNG key (default ``PRNGKey(0)``).
    Returns:
      a :class:`TaskReport` of what was measured.
    """
    task, subject = _resolve_task(task)
    key = jax.random.PRNGKey(0) if key is None else key
    spec = _check_spec(getattr(task, "spec", None), subject)
    for method in ("reset", "step"):
        if not callable(getattr(task, method, None)):
            raise _fail(subject, f"has no callable {method}(); see gcrl_bench.interface.Task")
    if num_envs < 2 or num_steps < 1:
        raise ValueError(f"check_task needs num_envs >= 2 and num_steps >= 1, got {num_envs}, {num_steps}")
    attributes = _attributes(task)

    # Static checks: shapes and dtypes of reset and step, without compiling anything.
    try:
        state_shape = jax.eval_shape(lambda k: task.reset(k, False), key)
        eval_shape = jax.eval_shape(lambda k: task.reset(k, True), key)
    except Exception as exc:
        raise _fail(subject, f"reset(key, evaluation) does not trace under jax.jit: {type(exc).__name__}: {exc}") from exc
    _check_env_state_shape(state_shape, spec, subject, "reset(key, False)")
    _check_env_state_shape(eval_shape, spec, subject, "reset(key, True)")
    action_shape = jax.ShapeDtypeStruct((spec.action_size,), jnp.float32)
    try:
        next_shape = jax.eval_shape(task.step, state_shape, action_shape)
    except Exception as exc:
        raise _fail(subject, f"step(state, action) does not trace under jax.jit with action float32[{spec.action_size}]: "
                             f"{type(exc).__name__}: {exc}") from exc
    _check_env_state_shape(next_shape, spec, subject, "step(state, action)")
    if jax.tree.structure(next_shape) != jax.tree.structure(state_shape):
        raise _fail(subject, "step returns a state whose pytree structure differs from reset's; keep the same fields")
    for (path, a), (_, b) in zip(_leaf_paths(state_shape), _leaf_paths(next_shape)):
        if (a.shape, a.dtype) != (b.shape, b.dtype):
            raise _fail(subject, f"step changes state{path} from {a.dtype}{list(a.shape)} to {b.dtype}{list(b.shape)}; "
                                 "a state must keep its shapes and dtypes across steps")
    if jax.tree.structure(eval_shape) != jax.tree.structure(state_shape):
        raise _fail(subject, "reset(key, True) returns a state structured differently from reset(key, False)")

    _check_unchanged(task, attributes, subject)

    t0 = time.perf_counter()
    compiled = jax.jit(_rollout_program(task, spec, num_envs, num_steps)).lower(key).compile()
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.device_get(compiled(key))
    again = jax.device_get(compiled(key))
    run_seconds = time.perf_counter() - t0
    _check_unchanged(task, attributes, subject)

    S = spec.state_size
    checks0, stats = out["checks0"], out["stats"]
    for i, (which, st) in enumerate((("reset(key, False)", out["train0"]), ("reset(key, True)", out["eval0"]))):
        if not checks0["reset_finite"][i].all():
            raise _fail(subject, f"{which} returns a non-finite value (env {_first_true(~checks0['reset_finite'][i])[0]})")
        term = checks0["reset_terminated"][i]
        if np.any(term != 0.0):
            raise _fail(subject, f"{which} returns terminated = {term[term != 0.0][0]}; a fresh episode must start with 0.0")
        if not checks0["reset_goal_in_set"][i].all():
            env = _first_true(~checks0["reset_goal_in_set"][i])[0]
            raise _fail(subject, f"{which} commands goal {st.obs[env, S:].tolist()} (env {env}), which contains_goal "
                                 f"rejects for evaluation={i == 1}")
        distance = np.asarray(spec.distance(st.obs))
        if np.all(np.asarray(spec.success(st.obs)) > 0.5):
            raise _fail(subject, f"{which}: all {num_envs} resets start within the success radius "
                                 f"{spec.success_threshold} of their goal (max distance {distance.max():.4g}); an "
                                 "episode must not start solved: check goal_indices and the goal slice of obs")
        if not getattr(task, "deterministic_reset", False) and np.all(st.obs == st.obs[:1]):
            raise _fail(subject, f"{which} gives the same observation for {num_envs} different keys; use the key "
                                 "(random start or goal), or set deterministic_reset = True on the task")

    def at(name: str, what: str) -> None:
        first = stats[name]
        if np.any(first >= 0):
            env = int(np.argmin(np.where(first >= 0, first, np.iinfo(np.int32).max)))
            raise _fail(subject, f"{what} at step {int(first[env])} of env {env} "
                                 f"({num_envs} envs x {num_steps} uniform random actions, key {np.asarray(key).tolist()})")

    at("nonfinite", "step produced a NaN or Inf in the state")
    at("bad_terminated", "step returned terminated outside {0.0, 1.0}")
    at("goal_changed", "step changed the commanded goal obs[state_size:] within an episode")
    at("goal_outside", "a reset commanded a goal outside the goal set (contains_goal)")
    if not _same(out, again):
        raise _fail(subject, "two rollouts with the same key differ; reset/step must be deterministic functions of "
                             "their inputs (no hidden state, no Python-side randomness)")
    return TaskReport(
        name=spec.name, num_envs=num_envs, num_steps=num_steps,
        episodes=int(stats["episodes"].sum()), terminations=int(stats["terminations"].sum()),
        success_fraction=float(stats["success_steps"].sum() / (num_envs * num_steps)),
        compile_seconds=compile_seconds, run_seconds=run_seconds,
    )


# ---------------------------------------------------------------------------------------------------------
# Algorithms

def documented_fields(cls: type) -> set[str]:
    """Field names documented in the ``Attributes:`` section of a class docstring (Google style).

    An entry is a line indented one level below ``Attributes:`` of the form ``name: text`` or
    ``name_a, name_b: text``; deeper-indented lines continue the previous entry (the parser is
    :func:`gcrl_bench.overrides.field_docs`, which ``gcrl-bench describe`` prints from).
    """
    return set(field_docs(cls))


def _resolve_algorithm(algorithm: Algorithm | str) -> tuple[Algorithm, str]:
    if isinstance(algorithm, str):
        return registry.get_algorithm(algorithm), f"algorithm {algorithm!r}"
    if not isinstance(algorithm, Algorithm):
        raise ConformanceError(f"expected a gcrl_bench.interface.Algorithm or a registered name, got {type(algorithm).__name__}")
    return algorithm, f"algorithm {algorithm.name!r}"


def _check_config_class(algorithm: Algorithm, subject: str, network: NetworkConfig):
    cls = algorithm.config_cls
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise _fail(subject, f"config_cls {cls!r} must be a dataclass type")
    if not cls.__dataclass_params__.frozen:
        raise _fail(subject, f"config class {cls.__name__} must be frozen (@dataclasses.dataclass(frozen=True)): the "
                             "loop passes it to jax.jit as a static value")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if "network" not in fields:
        raise _fail(subject, f"config class {cls.__name__} has no `network: NetworkConfig` field; --depths/--widths "
                             "and the architecture switches reach every network through it")
    documented = documented_fields(cls)
    missing = [name for name in fields if name not in documented]
    if missing:
        raise _fail(subject, f"config class {cls.__name__} does not document field(s) {missing} in the 'Attributes:' "
                             "section of its docstring (one `name: meaning (default's source)` entry per field)")
    stale = sorted(documented - set(fields))
    if stale:
        raise _fail(subject, f"config class {cls.__name__} documents {stale}, which are not fields; remove or rename them")
    required = [f.name for f in fields.values() if f.name != "network"
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        raise _fail(subject, f"config class {cls.__name__} has fields without defaults {required}; every field except "
                             "network needs a default (the CLI builds configs as config_cls(network=...))")
    try:
        config = cls(network=network)
    except Exception as exc:
        raise _fail(subject, f"{cls.__name__}(network={network}) raised {type(exc).__name__}: {exc}") from exc
    try:
        if hash(config) != hash(cls(network=network)) or config != cls(network=network):
            raise _fail(subject, f"two equal {cls.__name__} configs hash or compare differently")
    except TypeError as exc:
        raise _fail(subject, f"config {cls.__name__} is not hashable ({exc}); use tuples, not lists or dicts, in fields") from exc
    return config


def _random_windows(task: Task, spec: TaskSpec, num_envs: int, rows: int, key: jax.Array):
    """``rows`` consecutive steps of uniform random actions in ``num_envs`` environments, laid out as the
    replay buffer's windows: (obs, action, traj_id, terminal), each with leading axes (num_envs, rows).
    Episodes end by termination or the time limit and restart from a fresh reset, with the loop's own
    step (:func:`gcrl_bench.rollout.auto_reset_step`)."""

    def program(key):
        k_reset, k_steps = jax.random.split(key)
        env = reset_batch(task, k_reset, num_envs, False)

        def body(carry, k):
            carry, record = auto_reset_step(task, _random_policy(spec), k, *carry, "fresh")
            return carry, record.row

        zeros = jnp.zeros((num_envs,), jnp.int32)
        _, rows_out = jax.lax.scan(body, (env, zeros, zeros), jax.random.split(k_steps, rows))
        return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rows_out)

    return jax.jit(program)(key)


_WINDOW_CACHE: dict[tuple, Any] = {}


def _windows_for(task: Task, spec: TaskSpec, key: jax.Array):
    """Random-action windows of a task, collected once per (task, key) in a process and shared by checks."""
    rows = min(spec.episode_length + 50, 256)  # crosses an episode boundary on short-episode tasks
    cache_key = (id(task), spec, tuple(np.asarray(jax.random.key_data(key)).ravel().tolist()))
    if cache_key not in _WINDOW_CACHE:
        _WINDOW_CACHE[cache_key] = (task, jax.device_get(_random_windows(task, spec, 8, rows, key)))
    return _WINDOW_CACHE[cache_key][1]


def check_algorithm(
    algorithm: Algorithm | str,
    *,
    task: Task | str = "point_u_maze",
    num_updates: int = 8,
    batch_size: int = 64,
    network: NetworkConfig = NetworkConfig(depth=4, width=32),
    key: jax.Array | None = None,
) -> AlgorithmReport:
    """Checks an algorithm against the algorithm contract; raises :class:`ConformanceError` on the first violation.

    Checked: the config class is a frozen dataclass with a ``network`` field, every field documented in
    its docstring's ``Attributes:`` section (and nothing else), defaults for every other field, equal
    configs hash equal; ``config.relabel`` is a :class:`RelabelConfig`; ``init`` is a deterministic
    function of the key (same key, identical state; another key, different parameters); ``act`` returns
    float actions (B, action_size) in [-1, 1] for any batch size, and the deterministic action does not
    depend on the key; ``update`` keeps the state's structure, shapes and dtypes and returns a dict of
    finite scalar metrics with string keys; after ``num_updates`` updates on batches that the real
    relabeller (:func:`gcrl_bench.relabel.relabel_window`) built from random-action windows of ``task``,
    every float in the state is finite and the state has changed; the same key reproduces the state bit
    for bit; tracing ``update`` twice gives the same program (no hidden Python state).

    Args:
      algorithm: an :class:`Algorithm` or a registered algorithm name.
      task: a task object or registered name whose data feeds the updates (default: the cheap sanity task).
      num_updates: gradient steps to take (one ``lax.scan``).
      batch_size: tuples per update.
      network: the network every network of the algorithm is built with (small, so the check is fast).
      key: PRNG key (default ``PRNGKey(0)``).
    Returns:
      an :class:`AlgorithmReport` with the last update's metrics.
    """
    start = time.perf_counter()
    algorithm, subject = _resolve_algorithm(algorithm)
    task, _ = _resolve_task(task)
    spec = task.spec
    key = jax.random.PRNGKey(0) if key is None else key
    for name in ("init", "act", "update"):
        if not callable(getattr(algorithm, name)):
            raise _fail(subject, f"{name} is not callable")
    config = _check_config_class(algorithm, subject, network)
    relabel = getattr(config, "relabel", None)
    if not isinstance(relabel, RelabelConfig):
        raise _fail(subject, f"config class {type(config).__name__} needs a `relabel: RelabelConfig` field (the loop's "
                             f"hindsight relabelling), got {type(relabel).__name__ if hasattr(config, 'relabel') else 'none'}")
    if relabel.strategy not in ("geometric", "future", "final", "none") or not 0.0 <= relabel.fraction <= 1.0:
        raise _fail(subject, f"config.relabel is {relabel}; strategy must be geometric/future/final/none and "
                             "fraction in [0, 1]")

    k_init, k_other, k_act, k_a, k_b, k_data, k_relabel = jax.random.split(key, 7)

    # init: deterministic in its key, and it uses the key.
    init = jax.jit(lambda k: algorithm.init(config, spec, k))
    try:
        state = init(k_init)
    except Exception as exc:
        raise _fail(subject, f"init(config, spec, key) failed under jax.jit: {type(exc).__name__}: {exc}") from exc
    if not _same(state, init(k_init)):
        raise _fail(subject, "init with the same key returned different states")
    if _same(state, init(k_other)):
        raise _fail(subject, "init returned identical states for two different keys; initialise parameters from the key")
    if _first_nonfinite(state):
        raise _fail(subject, f"init returned a non-finite value at {_first_nonfinite(state)}")

    # act: shapes, range, determinism of the deterministic action.
    windows = _windows_for(task, spec, k_data)
    obs = windows[0][:, 0]  # (8, observation_size): real reset observations
    B = obs.shape[0]
    for batch in (1, B):
        try:
            shape = jax.eval_shape(lambda s, o, k: algorithm.act(config, s, o, k, False), state, obs[:batch], k_act)
        except Exception as exc:
            raise _fail(subject, f"act(config, state, obs[{batch}, {spec.observation_size}], key, False) does not trace: "
                                 f"{type(exc).__name__}: {exc}") from exc
        if not hasattr(shape, "shape") or shape.shape != (batch, spec.action_size) or not jnp.issubdtype(shape.dtype, jnp.floating):
            raise _fail(subject, f"act on a batch of {batch} observations returned {shape}, expected float[{batch}, {spec.action_size}]")

    @jax.jit
    def act_all(state, obs, k1, k2):
        return (algorithm.act(config, state, obs, k1, False), algorithm.act(config, state, obs, k1, True),
                algorithm.act(config, state, obs, k2, True))

    stochastic, det_a, det_b = jax.device_get(act_all(state, obs, k_a, k_b))
    for name, a in (("stochastic", stochastic), ("deterministic", det_a)):
        if not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0):
            bad = a[~(np.isfinite(a) & (np.abs(a) <= 1.0))][0]
            raise _fail(subject, f"{name} act returned {bad}, outside [-1, 1]; squash actions (e.g. tanh)")
    if not np.array_equal(det_a, det_b):
        raise _fail(subject, "act(..., deterministic=True) depends on the key; the evaluation policy must be deterministic")

    # update: a scan of num_updates steps on relabelled batches of real data.
    @jax.jit
    def make_batches(k):
        k_windows, k_pick, k_steps = jax.random.split(k, 3)
        keys = jax.random.split(k_windows, windows[0].shape[0])
        tuples = jax.vmap(lambda kk, o, a, t, e: relabel_window(kk, o, a, t, e, spec, relabel))(keys, *windows)
        pool = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tuples)
        available = jax.tree.leaves(pool)[0].shape[0]
        picks = jax.vmap(lambda kk: jax.random.permutation(kk, available)[:batch_size])(
            jax.random.split(k_pick, num_updates))
        return jax.tree.map(lambda x: x[picks], pool), jax.random.split(k_steps, num_updates)

    available = windows[0].shape[0] * (windows[0].shape[1] - 1)
    if batch_size > available:
        raise ValueError(f"batch_size {batch_size} exceeds the {available} relabelled tuples of the check's data")
    batches, update_keys = make_batches(k_relabel)
    batch0 = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), batches)
    key0 = jax.ShapeDtypeStruct(update_keys.shape[1:], update_keys.dtype)

    try:
        out_shape = jax.eval_shape(lambda s, b, k: algorithm.update(config, s, b, k), state, batch0, key0)
    except Exception as exc:
        raise _fail(subject, f"update(config, state, batch, key) does not trace under jax.jit: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(out_shape, tuple) and len(out_shape) == 2):
        raise _fail(subject, "update must return (new_state, metrics)")
    new_shape, metrics_shape = out_shape
    if jax.tree.structure(new_shape) != jax.tree.structure(state):
        raise _fail(subject, "update returns a state whose pytree structure differs from init's")
    for (path, a), (_, b) in zip(_leaf_paths(state), _leaf_paths(new_shape)):
        if (a.shape, a.dtype) != (b.shape, b.dtype):
            raise _fail(subject, f"update changes state{path} from {a.dtype}{list(a.shape)} to {b.dtype}{list(b.shape)}")
    if not isinstance(metrics_shape, dict) or not metrics_shape:
        raise _fail(subject, f"update must return a non-empty dict of metrics, got {type(metrics_shape).__name__}")
    for name, value in metrics_shape.items():
        if not isinstance(name, str) or not name:
            raise _fail(subject, f"metric key {name!r} must be a non-empty string")
        if getattr(value, "shape", None) != ():
            raise _fail(subject, f"metric {name!r} has shape {getattr(value, 'shape', None)}, expected a scalar ()")

    def trace_update():
        return str(jax.make_jaxpr(lambda s, b, k: algorithm.update(config, s, b, k))(state, batch0, key0))

    if trace_update() != trace_update():
        raise _fail(subject, "tracing update twice gives two different programs; update must not depend on Python "
                             "state that changes between calls")

    @jax.jit
    def train(state, batches, keys):
        def body(s, inputs):
            b, k = inputs
            return algorithm.update(config, s, b, k)

        return jax.lax.scan(body, state, (batches, keys))

    batch_before = jax.device_get(batches)
    trained, metrics = jax.device_get(train(state, batches, update_keys))
    if not _same(batch_before, batches):
        raise _fail(subject, "update modified its input batch")
    for name, values in metrics.items():
        bad = ~np.isfinite(values)
        if np.any(bad):
            raise _fail(subject, f"metric {name!r} is {values[bad][0]} at update {_first_true(bad)[0]} of {num_updates}")
    if _first_nonfinite(trained):
        raise _fail(subject, f"the state holds a non-finite value at {_first_nonfinite(trained)} after {num_updates} updates")
    if _same(trained, state):
        raise _fail(subject, f"{num_updates} updates left the state unchanged")
    trained_again, _ = jax.device_get(train(state, batches, update_keys))
    if not _same(trained, trained_again):
        raise _fail(subject, "the same updates from the same state and keys gave different states")
    return AlgorithmReport(
        name=algorithm.name, task=spec.name, num_updates=num_updates,
        metrics={k: float(v[-1]) for k, v in metrics.items()}, seconds=time.perf_counter() - start,
    )


def _first_nonfinite(tree) -> str:
    for path, leaf in _leaf_paths(tree):
        leaf = np.asarray(leaf)
        if np.issubdtype(leaf.dtype, np.inexact) and not np.all(np.isfinite(leaf)):
            return f"state{path}"
    return ""

