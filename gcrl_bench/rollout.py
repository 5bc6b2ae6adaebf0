"""The one episode loop: the auto-reset step of training collection and the evaluation episode.

Every loop over environment steps in gcrl-bench is built from the two pure functions here, so the time
limit, the restart after an episode's end, the trajectory ids, the alive mask and success (the spec's
:meth:`gcrl_bench.interface.TaskSpec.success`) have one definition each:

- :func:`auto_reset_step`: one step of a batch of environments that never stops. An environment's
  episode ends when the physics terminates it or when it has taken ``episode_length`` steps (the time
  limit); it then restarts, at once, from its own first reset (``reset_mode="first"``) or from a new
  reset (``"fresh"``), and its trajectory id grows by one. Training collection
  (:class:`gcrl_bench.training.Trainer`) and the conformance kit's random-action rollouts
  (:mod:`gcrl_bench.testing`) are ``lax.scan`` over it.
- :func:`evaluation_episode` / :func:`evaluate_policy`: exactly one episode of ``episode_length`` steps per
  environment, no restart, with per-episode metrics (the evaluator after each epoch and
  ``gcrl-bench render``).

Alive mask of an evaluation episode: the step on which the physics terminates an episode still counts
(its success and distance enter the metrics); every step after it does not. Worked example, one episode
of 4 steps (0 to 3) whose successes are [0, 1, 1, 1] and which terminates on step 1: alive during the
steps is [1, 1, 0, 0], so time_at_goal = 1, success_any = 1, success_at_end = 1 (the success of step 1) and
final_distance is the distance after step 1.

A policy here is ``policy(obs, key) -> action``: obs (N, observation_size), action (N, action_size).
"""

from __future__ import annotations

from typing import Callable, Literal

import jax
import jax.numpy as jnp
from flax import struct

from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import EnvState, Task

Array = jax.Array
Policy = Callable[[Array, Array], Array]
"""``policy(obs, key) -> action``: obs (N, observation_size) float32 -> actions (N, action_size) in [-1, 1]."""
ResetMode = Literal["first", "fresh"]
RESET_MODES: tuple[str, ...] = ("first", "fresh")


def select_envs(mask: Array, a, b):
    """Per-environment choice between two batched pytrees: ``a`` where mask (N,) is True, else ``b``."""

    def pick(x, y):
        m = mask.reshape(mask.shape + (1,) * (x.ndim - 1))
        return jnp.where(m, x, y)

    return jax.tree.map(pick, a, b)


def reset_batch(task: Task, key: Array, num_envs: int, evaluation: bool) -> EnvState:
    """num_envs resets from ``jax.random.split(key, num_envs)``: an EnvState with leading axis num_envs."""
    return jax.vmap(lambda k: task.reset(k, evaluation))(jax.random.split(key, num_envs))


@struct.dataclass
class StepRecord:
    """What one :func:`auto_reset_step` saw, for a batch of N environments.

    Attributes:
      obs: (N, observation_size) observations before the action (the replay buffer's row).
      action: (N, action_size) the actions taken.
      traj_id: (N,) int32 trajectory ids of the episodes the actions were taken in.
      terminated: (N,) float32 1.0 where the physics terminated the episode on this step, else 0.0.
      done: (N,) bool, the episode ended on this step (terminated, or its episode_length-th step).
      next_env: (N, ...) the states right after the action, before any restart.
      restart: (N, ...) the states the ended episodes restarted from (every environment's candidate:
        only the ``done`` rows were used).
    """

    obs: Array
    action: Array
    traj_id: Array
    terminated: Array
    done: Array
    next_env: EnvState
    restart: EnvState

    @property
    def row(self) -> tuple[Array, Array, Array, Array]:
        """``(obs, action, traj_id, terminated)``: the row :func:`gcrl_bench.buffer.insert` stores."""
        return self.obs, self.action, self.traj_id, self.terminated


def auto_reset_step(
    task: Task,
    policy: Policy,
    key: Array,
    env: EnvState,
    episode_step: Array,
    traj_id: Array,
    reset_mode: ResetMode,
    first_env: EnvState | None = None,
) -> tuple[tuple[EnvState, Array, Array], StepRecord]:
    """One step of N environments with the time limit and auto-reset (module docstring).

    Keys: ``k_act, k_reset = jax.random.split(key)``; the policy gets ``k_act``; with ``reset_mode="fresh"``
    the new resets come from ``jax.random.split(k_reset, N)`` (training goal set); with ``"first"``
    ``k_reset`` is unused and ``first_env`` is restored.

    Args:
      task: the task (its spec's episode_length is the time limit).
      policy: ``policy(obs, key) -> action`` on the batch.
      key: PRNG key of this step.
      env: (N, ...) batched states to act in.
      episode_step: (N,) int32 steps already taken in each current episode (0 right after a reset).
      traj_id: (N,) int32 id of each environment's current episode.
      reset_mode: ``first`` or ``fresh`` (see :class:`gcrl_bench.config.LoopConfig`).
      first_env: (N, ...) each environment's first reset; required with ``reset_mode="first"``.
    Returns:
      ``((env, episode_step, traj_id), record)``: the states to act in next (restarted where the episode
      ended), the step counts (0 where it ended, else one more), the ids (one more where it ended), and the
      :class:`StepRecord` of this step.
    """
    if reset_mode not in RESET_MODES:
        raise ConfigError(f"reset_mode {reset_mode!r} is unknown; use one of {', '.join(RESET_MODES)}")
    if reset_mode == "first" and first_env is None:
        raise ConfigError("reset_mode 'first' needs first_env, each environment's first reset; pass it, or use "
                          "reset_mode 'fresh'")
    num_envs = episode_step.shape[0]
    k_act, k_reset = jax.random.split(key)
    action = policy(env.obs, k_act)
    nxt = jax.vmap(task.step)(env, action)
    step = episode_step + 1
    terminated = nxt.terminated > 0.5
    done = terminated | (step >= task.spec.episode_length)
    restart = reset_batch(task, k_reset, num_envs, False) if reset_mode == "fresh" else first_env
    record = StepRecord(obs=env.obs, action=action, traj_id=traj_id, terminated=terminated.astype(jnp.float32),
                        done=done, next_env=nxt, restart=restart)
    carry = (select_envs(done, restart, nxt), jnp.where(done, 0, step), jnp.where(done, traj_id + 1, traj_id))
    return carry, record


@struct.dataclass
class Episode:
    """One evaluation episode of N environments (:func:`evaluation_episode`).

    Attributes:
      time_at_goal: (N,) float32 counted steps with success, 0..episode_length.
      success_any: (N,) float32 1.0 if some counted step had success.
      success_at_end: (N,) float32 success of the last counted step.
      final_distance: (N,) float32 distance to the goal after the last counted step.
      states: with ``record``: the states with leading axes (episode_length + 1, N), the reset first;
        else None.
      alive: with ``record``: (episode_length + 1, N) bool, True for the reset and for every counted step
        (so False from the step after the terminating one on); else None.
    """

    time_at_goal: Array
    success_any: Array
    success_at_end: Array
    final_distance: Array
    states: EnvState | None = None
    alive: Array | None = None

    def metrics(self) -> dict[str, Array]:
        """The per-episode metrics: time_at_goal, success_any, success_at_end, final_distance."""
        return {"time_at_goal": self.time_at_goal, "success_any": self.success_any,
                "success_at_end": self.success_at_end, "final_distance": self.final_distance}


def evaluation_episode(task: Task, policy: Policy, env: EnvState, key: Array, record: bool = False) -> Episode:
    """Runs one episode of ``task.spec.episode_length`` steps from ``env`` (no restart) and measures it.

    Each step's success and distance come from the spec (:meth:`TaskSpec.success`, :meth:`TaskSpec.distance`)
    on the observation after the action. They count while the episode is alive: the terminating step
    counts, the steps after it do not (module docstring).

    Args:
      task: the task.
      policy: ``policy(obs, key) -> action``; step t's key is ``jax.random.split(key, episode_length)[t]``.
      env: (N, ...) batched start states.
      key: PRNG key of the policy's stream.
      record: also return every state and the alive mask (for drawing).
    Returns:
      an :class:`Episode`.
    """
    spec = task.spec
    n = env.obs.shape[0]
    zeros = jnp.zeros((n,), jnp.float32)
    init = (env, jnp.ones((n,), bool), zeros, zeros, zeros, spec.distance(env.obs))

    def body(carry, k):
        env, alive, time_at_goal, any_success, last_success, last_dist = carry
        action = policy(env.obs, k)
        env = jax.vmap(task.step)(env, action)
        dist = spec.distance(env.obs)
        success = spec.reached(dist).astype(jnp.float32)  # spec.success(env.obs), from the distance at hand
        time_at_goal = time_at_goal + success * alive
        any_success = jnp.maximum(any_success, success * alive)
        last_success = jnp.where(alive, success, last_success)
        last_dist = jnp.where(alive, dist, last_dist)
        out = (env, alive) if record else None
        alive = alive & (env.terminated < 0.5)
        return (env, alive, time_at_goal, any_success, last_success, last_dist), out

    carry, out = jax.lax.scan(body, init, jax.random.split(key, spec.episode_length))
    _, _, time_at_goal, any_success, last_success, last_dist = carry
    episode = Episode(time_at_goal=time_at_goal, success_any=any_success, success_at_end=last_success,
                      final_distance=last_dist)
    if record:
        states, alive = out
        states = jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), env, states)
        episode = episode.replace(states=states, alive=jnp.concatenate([jnp.ones((1, n), bool), alive]))
    return episode


def evaluate_policy(task: Task, policy: Policy, key: Array, num_episodes: int, record: bool = False) -> Episode:
    """num_episodes evaluation episodes in one batch: fresh resets from the evaluation goal set
    (``reset(k, evaluation=True)``), then :func:`evaluation_episode`.

    Keys: ``k_reset, k_act = jax.random.split(key)``; the resets from ``jax.random.split(k_reset,
    num_episodes)``, the policy's stream from ``k_act``.
    """
    k_reset, k_act = jax.random.split(key)
    env = reset_batch(task, k_reset, num_episodes, True)
    return evaluation_episode(task, policy, env, k_act, record)
