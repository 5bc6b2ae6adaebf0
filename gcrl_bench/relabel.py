"""The one hindsight relabeller: goals for a window of consecutive steps of one environment.

Every strategy picks, for each step i of a window, a goal step ``j(i)`` inside the same episode
(same trajectory id) and at or after i, then reads the goal as ``obs[j(i), goal_indices]``:

- ``geometric`` (CRL, GCBC; docs/tasks.md §7.2): offset k = j - i >= 1 with P(k) proportional to gamma^k,
  truncated at the last step of i's episode inside the window. Drawn directly by inverting the
  truncated geometric CDF, so the cost is linear in the window length (no T x T weight matrix):
  with M the largest admissible offset and u ~ U(0, 1),
  ``k = 1 + floor(log(1 - u (1 - gamma^M)) / log(gamma))``, which lies in [1, M].
  Worked example: gamma = 0.5, M = 2: P(k=1) = 0.5 / 0.75 = 2/3, P(k=2) = 1/3; u < 2/3 gives
  log(1 - u * 0.75) / log(0.5) in [0, 1) -> k = 1.
- ``future``: j uniform over the remaining steps of the episode inside the window (k in [1, M]).
- ``final``: the last step of the episode inside the window (k = M).
- ``none``: keep the commanded goal stored with the step.

A step with no later step of its episode in the window (M = 0) gets its own state as goal, as in the
reference. ``fraction`` < 1 keeps the commanded goal for the other tuples (HER's "k" future goals per
stored goal is fraction = k / (k + 1): k = 4 in Andrychowicz et al. 2017 is 0.8). The window's last step
is dropped (it has no successor), so a window of T rows yields T - 1 tuples.

``final`` differs from the reference's HER (docs/tasks.md §7.6), which relabels only the steps whose
episode's time-limit step lies inside the window and leaves the others with the commanded goal: here
every step takes the last state of its own episode that the window holds, so no tuple is wasted and no
goal ever comes from another episode.

Rewards and TD validity (see :class:`gcrl_bench.interface.Transition`): ``reward`` tests s_t (the
reference's HER reward), ``next_reward`` tests s_{t+1} (the textbook sparse reward r(s_t, a_t, g), used by
the TD methods), both against the tuple's goal with the spec's one success test
(:meth:`gcrl_bench.interface.TaskSpec.goal_distance` and :meth:`~gcrl_bench.interface.TaskSpec.reached`,
as :meth:`~gcrl_bench.interface.TaskSpec.success_of` combines them), and ``mask`` is 0 exactly on tuples cut by the time limit, whose next row belongs to
the next episode. Worked example, a window of rows with trajectory ids [3, 3, 4, 4] where episode 3
ended by its time limit after row 1: tuples 0, 1, 2 get masks [1, 0, 1]; had episode 3 terminated at
row 1 instead, tuple 1 would keep mask 1 with discount 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gcrl_bench.interface import RelabelConfig, TaskSpec, Transition


def episode_end_offsets(traj_id: jax.Array) -> jax.Array:
    """Largest offset M[i] such that steps i..i+M[i] share traj_id[i] (contiguous runs).

    Args:
      traj_id: (T,) integer trajectory ids of consecutive steps.
    Returns:
      (T,) int32 offsets >= 0.
    """
    T = traj_id.shape[0]
    idx = jnp.arange(T, dtype=jnp.int32)
    last_of_run = jnp.concatenate([traj_id[1:] != traj_id[:-1], jnp.ones((1,), bool)])
    run_end = jax.lax.cummin(jnp.where(last_of_run, idx, T), reverse=True)
    return run_end - idx


def goal_offsets(key: jax.Array, max_offset: jax.Array, config: RelabelConfig) -> jax.Array:
    """Draws each step's goal offset k in [0, max_offset] according to the strategy (module docstring).

    Args:
      key: PRNG key.
      max_offset: (T,) int32 largest admissible offset per step.
    Returns:
      (T,) int32 offsets; 0 where max_offset == 0 or the strategy is ``none``.
    """
    m = max_offset.astype(jnp.float32)
    u = jax.random.uniform(key, max_offset.shape, minval=0.0, maxval=1.0)
    if config.strategy == "geometric":
        g = config.gamma
        k = 1.0 + jnp.floor(jnp.log1p(-u * (1.0 - g ** m)) / jnp.log(g))
    elif config.strategy == "future":
        k = 1.0 + jnp.floor(u * m)
    elif config.strategy == "final":
        k = m
    elif config.strategy == "none":
        return jnp.zeros_like(max_offset)
    else:
        raise ValueError(f"unknown relabel strategy {config.strategy!r}")
    k = jnp.clip(k, 1.0, jnp.maximum(m, 1.0)).astype(jnp.int32)  # guard the float edge u -> 1
    return jnp.where(max_offset > 0, k, 0)


def relabel_window(
    key: jax.Array,
    obs: jax.Array,
    action: jax.Array,
    traj_id: jax.Array,
    terminal: jax.Array,
    spec: TaskSpec,
    config: RelabelConfig,
) -> Transition:
    """Turns one window of T consecutive steps of one environment into T - 1 relabelled tuples.

    Args:
      key: PRNG key.
      obs: (T, observation_size) observations [state, commanded goal] before each action.
      action: (T, action_size) actions taken.
      traj_id: (T,) trajectory (episode) ids.
      terminal: (T,) 1.0 where the step ended its episode by termination (the next row is a reset).
      spec: the task spec (state size, goal indices, success threshold).
      config: relabelling strategy.
    Returns:
      Transition with leading axis T - 1.
    """
    T = obs.shape[0]
    k_offsets, k_mix = jax.random.split(key)
    offsets = goal_offsets(k_offsets, episode_end_offsets(traj_id), config)
    j = jnp.arange(T) + offsets
    states = obs[:, : spec.state_size]
    achieved = spec.achieved_goal(states)
    goal = achieved[j]
    if config.strategy != "none" and config.fraction < 1.0:
        keep = jax.random.uniform(k_mix, (T,)) >= config.fraction
        goal = jnp.where(keep[:, None], spec.commanded_goal(obs), goal)
    elif config.strategy == "none":
        goal = spec.commanded_goal(obs)
    reached = spec.reached(spec.goal_distance(achieved, goal))  # (T,) bool: s_t within reach of g_t
    reached_next = spec.reached(spec.goal_distance(achieved[1:], goal[:-1]))  # (T - 1,): s_{t+1}, g_t
    same_episode = traj_id[1:] == traj_id[:-1]
    terminated = terminal[:-1] > 0.5
    # s_{t+1} is the next row when it belongs to the same episode; across a boundary the successor was
    # not stored (the next row is a reset), so the tuple's discount is 0 if the episode terminated and the
    # tuple is no TD sample at all if it was cut by the time limit.
    discount = jnp.where(same_episode, 1.0, 1.0 - terminal[:-1])
    mask = same_episode | terminated
    next_reward = jnp.where(same_episode, reached_next, reached[:-1])
    return Transition(
        state=states[:-1],
        action=action[:-1],
        goal=goal[:-1],
        next_state=states[1:],
        future_state=states[j][:-1],
        reward=reached[:-1].astype(jnp.float32),
        discount=discount.astype(jnp.float32),
        next_reward=next_reward.astype(jnp.float32),
        mask=mask.astype(jnp.float32),
    )
