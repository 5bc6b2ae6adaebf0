"""The two contracts of gcrl-bench: what a task is and what an algorithm is.

Everything here is plain data or a protocol of pure functions over pytrees; nothing here imports brax,
plotting or statistics.

Task contract
-------------
A task is a static :class:`TaskSpec` plus two pure functions::

    reset(key, evaluation: bool) -> EnvState      # one environment; the loop vmaps it
    step(state: EnvState, action) -> EnvState      # one env step (all physics substeps)

Observations follow the goal-conditioned convention of the paper: ``obs = [state, commanded goal]`` with
``state = obs[:state_size]`` and ``goal = obs[state_size:]``. The goal a state *achieves* is
``state[goal_indices]``. Success is ``||state[goal_indices] - goal||_2 < success_threshold``, defined once by
:meth:`TaskSpec.success` / :meth:`TaskSpec.success_of`: the loop, the evaluator, the relabeller and the
conformance kit all call them, so every task and every algorithm measures success the same way.

Episode bookkeeping (time limit, auto-reset, trajectory ids) belongs to the shared loop, not to tasks:
``step`` reports only physical termination (for example an ant that flips over).

Algorithm contract
------------------
An algorithm is a typed, frozen config dataclass plus pure functions over one state pytree::

    init(config, spec, key) -> state
    act(config, state, obs, key, deterministic: bool) -> action      # obs: (batch, observation_size)
    update(config, state, batch: Transition, key) -> (state, metrics)  # one gradient step

Every algorithm config has a ``network: NetworkConfig`` field (gcrl_bench.networks): depth, width and the
residual / normalisation / activation switches apply to every network of every algorithm through the one
builder. Every algorithm config also has a ``relabel: RelabelConfig`` field: the hindsight relabelling the
loop applies before ``update``. Configs are hashable, so the loop passes them to ``jax.jit`` as static values.

``act`` must be traceable with a batch dimension and return actions in [-1, 1].
``update`` receives a relabelled batch (see :class:`Transition`) and returns scalar metrics namespaced by
the loop (``train/...``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal, Mapping, Protocol, get_args, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

from gcrl_bench.errors import ConfigError

Array = jax.Array
PyTree = Any


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Static facts about a task, computed once.

    Attributes:
      name: registry name, e.g. ``"ant_big_maze"``.
      state_size: size of the state part of the observation (the paper's ``obs_dim``).
      goal_size: size of the commanded goal at the end of the observation.
      goal_indices: indices into the state whose values a goal is compared with (len == goal_size).
      action_size: size of the action vector; actions lie in [-1, 1].
      success_threshold: Euclidean distance below which the goal counts as reached.
      episode_length: steps per episode (time limit; 1000 for the paper's tasks).
      env_step_seconds: simulated seconds per env step (physics dt x substeps).
      backend: physics pipeline, e.g. ``"spring"``.
      eval_goal_set: name of the goal set evaluation samples from (``"train"`` or e.g. ``"eval"``).
      benchmark: True for the ten tasks of the paper; False for sanity/tutorial tasks.
      description: one line shown by ``gcrl-bench list tasks``.
    """

    name: str
    state_size: int
    goal_size: int
    goal_indices: tuple[int, ...]
    action_size: int
    success_threshold: float
    episode_length: int
    env_step_seconds: float
    backend: str
    eval_goal_set: str = "train"
    benchmark: bool = True
    description: str = ""

    @property
    def observation_size(self) -> int:
        return self.state_size + self.goal_size

    def achieved_goal(self, state: Array) -> Array:
        """The goal a state achieves, ``state[..., goal_indices]``.

        Args:
          state: (..., n) with n >= state_size: states, or whole observations (the goal indices lie in the
            state part).
        Returns:
          (..., goal_size).
        """
        return state[..., jnp.asarray(self.goal_indices)]

    def commanded_goal(self, obs: Array) -> Array:
        """The commanded goal of observations, ``obs[..., state_size:]``: (..., observation_size) -> (..., goal_size)."""
        return obs[..., self.state_size :]

    def goal_distance(self, achieved: Array, goal: Array) -> Array:
        """Euclidean distance between achieved goals (:meth:`achieved_goal`) and goals, both (..., goal_size)
        (broadcast against each other): (...,) ``||achieved - goal||``."""
        return jnp.linalg.norm(achieved - goal, axis=-1)

    def reached(self, distance: Array) -> Array:
        """The success test on distances: (...,) bool, ``distance < success_threshold``."""
        return distance < self.success_threshold

    def distance(self, obs: Array) -> Array:
        """Distance between the achieved and the commanded goal of observations ``[state, goal]``.

        Args:
          obs: (..., observation_size).
        Returns:
          (...,) ``||obs[..., goal_indices] - obs[..., state_size:]||``.
        """
        return self.goal_distance(self.achieved_goal(obs), self.commanded_goal(obs))

    def success(self, obs: Array) -> Array:
        """(...,) float32: 1.0 where an observation's state has reached its commanded goal
        (``distance(obs) < success_threshold``), else 0.0; obs: (..., observation_size)."""
        return self.reached(self.distance(obs)).astype(jnp.float32)

    def success_of(self, state: Array, goal: Array) -> Array:
        """(...,) float32: 1.0 where a state has reached a separate goal, ``||state[goal_indices] - goal|| <
        success_threshold``, else 0.0.

        Args:
          state: (..., n), n >= state_size (see :meth:`achieved_goal`).
          goal: (..., goal_size), broadcast against the achieved goal.
        """
        return self.reached(self.goal_distance(self.achieved_goal(state), goal)).astype(jnp.float32)

    def __post_init__(self):
        if len(self.goal_indices) != self.goal_size:
            raise ValueError(
                f"task {self.name!r}: goal_indices {self.goal_indices} has {len(self.goal_indices)} entries "
                f"but goal_size is {self.goal_size}; give one state index per goal coordinate"
            )


@struct.dataclass
class EnvState:
    """State of one environment (the loop vmaps over a leading batch axis).

    Attributes:
      physics: task-specific pytree (for example a brax pipeline state).
      obs: (observation_size,) float32 observation ``[state, goal]``.
      terminated: () float32, 1.0 when the physics says the episode is over (a fall), else 0.0.
    """

    physics: PyTree
    obs: Array
    terminated: Array


class Task(Protocol):
    """A goal-conditioned environment: a spec and pure reset/step functions (see module docstring)."""

    spec: TaskSpec

    def reset(self, key: Array, evaluation: bool = False) -> EnvState: ...

    def step(self, state: EnvState, action: Array) -> EnvState: ...


@runtime_checkable
class RenderableTask(Protocol):
    """Optional protocol of a task that can be drawn (``gcrl-bench show`` / ``render``, gcrl_bench.render).

    ``render_model()`` returns a ``mujoco.MjModel`` of the whole visual scene: floor, walls, the body and a
    goal marker (it may differ from the physics model, e.g. carry wall boxes the physics resolves in
    closed form). ``render_qpos(state)`` returns the ``(render_model().nq,)`` float64 qpos that poses ONE
    unbatched environment state in that model, the goal marker placed at the commanded goal. Neither is
    traced; both run on the host.
    """

    def render_model(self) -> Any: ...

    def render_qpos(self, state: EnvState) -> Any: ...


@struct.dataclass
class Transition:
    """A batch of relabelled training tuples, leading axis = batch.

    Attributes:
      state: (B, state_size) s_t.
      action: (B, action_size) a_t as taken in the environment.
      goal: (B, goal_size) the relabelled goal g.
      next_state: (B, state_size) s_{t+1} (for TD methods).
      future_state: (B, state_size) the state the goal was taken from.
      reward: (B,) 1.0 where ``||s_t[goal_indices] - g|| < threshold`` else 0.0 (the reference's HER
        reward, docs/tasks.md §9.9: it tests the state *before* the action).
      discount: (B,) 0.0 where s_{t+1} is a terminal state, else 1.0.
      next_reward: (B,) 1.0 where ``||s_{t+1}[goal_indices] - g|| < threshold`` else 0.0: the sparse reward
        of the transition (s_t, a_t) -> s_{t+1}, which TD methods bootstrap with (summed over an episode
        it is the evaluation's time at goal). On a terminated tuple, whose terminal state is not stored,
        the success of s_t stands in. None only in hand-built batches for algorithms that ignore it.
      mask: (B,) 1.0 where the tuple is a valid TD sample: ``next_state`` is the true successor of
        ``state`` (same episode) or the step terminated (its target needs no successor). 0.0 where the
        episode was cut by the time limit after s_t: the stored next row is the next episode's reset, and
        the true s_{t+1} was never stored. None only in hand-built batches for algorithms that ignore it.
    """

    state: Array
    action: Array
    goal: Array
    next_state: Array
    future_state: Array
    reward: Array
    discount: Array
    next_reward: Array | None = None
    mask: Array | None = None


RelabelStrategy = Literal["geometric", "future", "final", "none"]


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A registered algorithm: its config class and its pure functions.

    Attributes:
      name: registry name, e.g. ``"crl"``.
      config_cls: a frozen dataclass type; every field documented in the class docstring.
      init, act, update: the pure functions of the module docstring.
      description: one line shown by ``gcrl-bench list algos``.
      diagnostics: optional ``diagnostics(config, previous, state, batch, key) -> dict[str, Array]``, the
        per-layer and representation statistics of every network on one probe batch (``previous``: the
        state at the start of the epoch, ``state`` at its end; keys ``<network>/<group>/<statistic>``, see
        :mod:`gcrl_bench.diagnostics`). None: the algorithm reports none.

    Which hindsight relabelling the loop applies before ``update`` is the config's ``relabel`` field.
    """

    name: str
    config_cls: type
    init: Callable[..., PyTree]
    act: Callable[..., Array]
    update: Callable[..., tuple[PyTree, Mapping[str, Array]]]
    description: str = ""
    diagnostics: Callable[..., Mapping[str, Array]] | None = None


RELABEL_STRATEGIES: tuple[str, ...] = get_args(RelabelStrategy)


@dataclasses.dataclass(frozen=True)
class RelabelConfig:
    """How the shared relabeller (:mod:`gcrl_bench.relabel`) picks goals: the ``relabel`` field of every
    algorithm config, which the loop applies to each sampled window before ``update``.

    Attributes:
      strategy: ``geometric`` (future state at offset k >= 1 with P(k) ~ gamma^k, truncated at the end of
        the episode inside the window; CRL, GCBC), ``future`` (uniform over the rest of the episode),
        ``final`` (the episode's last state in the window), ``none`` (keep the commanded goal).
      gamma: discount of the geometric law, in (0, 1) (0.99 in the paper); unused by the other strategies.
      fraction: fraction of tuples relabelled, in (0, 1] (the rest keep the commanded goal); 1.0 relabels
        all; unused by ``none``.
    """

    strategy: RelabelStrategy = "geometric"
    gamma: float = 0.99
    fraction: float = 1.0

    def __post_init__(self):
        if self.strategy not in RELABEL_STRATEGIES:
            raise ConfigError(f"relabel.strategy {self.strategy!r} is unknown; use one of {', '.join(RELABEL_STRATEGIES)}")
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, (int, float)) or not 0.0 < self.gamma < 1.0:
            raise ConfigError(f"relabel.gamma {self.gamma!r} must be a number in (0, 1); the paper uses 0.99")
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) or not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"relabel.fraction {self.fraction!r} must be a number in (0, 1]; 1.0 relabels every "
                              "tuple, 0.8 is HER's k = 4 relabelled goals per commanded one")
