"""The one episode loop (gcrl_bench.rollout) and the spec's success test, on a scripted pure-JAX task whose
every number is known by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import EnvState, TaskSpec
from gcrl_bench.rollout import auto_reset_step, evaluate_policy, evaluation_episode, reset_batch


class Line:
    """A point on a line that jumps to wherever the action says: obs = [x, clock, goal].

    physics = {"clock": steps taken, "end": the step count at which the physics terminates the episode
    (0: never)}. reset: x = 0, clock = 0, goal uniform in [-1, 0] (training) or [1, 2] (evaluation).
    step: x <- action[0], clock <- clock + 1, terminated = 1.0 when clock == end.
    """

    spec = TaskSpec(name="line", state_size=2, goal_size=1, goal_indices=(0,), action_size=1, success_threshold=0.25,
                    episode_length=5, env_step_seconds=0.1, backend="none", benchmark=False)

    def __init__(self, end: int = 0):
        self.end = end

    def reset(self, key, evaluation=False):
        low = 1.0 if evaluation else -1.0
        goal = jax.random.uniform(key, (), minval=low, maxval=low + 1.0)
        return EnvState(physics={"clock": jnp.zeros((), jnp.int32), "end": jnp.asarray(self.end, jnp.int32)},
                        obs=jnp.stack([0.0, 0.0, goal]).astype(jnp.float32), terminated=jnp.zeros((), jnp.float32))

    def step(self, state, action):
        clock = state.physics["clock"] + 1
        obs = jnp.stack([action[0], clock.astype(jnp.float32), state.obs[2]])
        terminated = (clock == state.physics["end"]).astype(jnp.float32)
        return EnvState(physics={**state.physics, "clock": clock}, obs=obs, terminated=terminated)


def hand_envs(goals, ends):
    """A batch of fresh states with the given goals and termination steps."""
    n = len(goals)
    return EnvState(physics={"clock": jnp.zeros((n,), jnp.int32), "end": jnp.asarray(ends, jnp.int32)},
                    obs=jnp.stack([jnp.zeros(n), jnp.zeros(n), jnp.asarray(goals)], 1).astype(jnp.float32),
                    terminated=jnp.zeros((n,), jnp.float32))


def scripted(positions):
    """policy(obs, key): env e on its step t (t = obs clock) jumps to positions[e][t]; the key is ignored."""
    table = jnp.asarray(positions, jnp.float32)

    def policy(obs, key):
        t = jnp.clip(obs[:, 1].astype(jnp.int32), 0, table.shape[1] - 1)
        return table[jnp.arange(obs.shape[0]), t][:, None]

    return policy


# ------------------------------------------------------------------------------------------- TaskSpec


SPEC3 = TaskSpec(name="s", state_size=3, goal_size=2, goal_indices=(0, 2), action_size=1, success_threshold=0.5,
                 episode_length=10, env_step_seconds=0.1, backend="none", benchmark=False)


def test_spec_distance_and_success_by_hand():
    obs = jnp.array([[3.0, 9.0, 4.0, 0.0, 0.0],     # achieved (3, 4), goal (0, 0): distance 5
                     [0.5, 7.0, 0.0, 0.0, 0.0],     # distance 0.5: not below the threshold
                     [1.3, -2.0, 1.3, 1.0, 1.0]])   # distance sqrt(0.18) = 0.4243
    np.testing.assert_allclose(SPEC3.achieved_goal(obs), [[3, 4], [0.5, 0.0], [1.3, 1.3]], rtol=1e-6)
    np.testing.assert_allclose(SPEC3.commanded_goal(obs), [[0, 0], [0, 0], [1, 1]])
    np.testing.assert_allclose(SPEC3.distance(obs), [5.0, 0.5, np.sqrt(0.18)], rtol=1e-6)
    success = SPEC3.success(obs)
    assert success.dtype == jnp.float32
    np.testing.assert_array_equal(success, [0.0, 0.0, 1.0])
    batched = jnp.stack([obs, obs[::-1]])  # (2, 3, 5) -> (2, 3)
    np.testing.assert_array_equal(SPEC3.success(batched), [[0, 0, 1], [1, 0, 0]])


def test_spec_success_of_a_state_against_a_separate_goal():
    state = jnp.array([1.0, 5.0, 1.0])  # achieves (1, 1); index 1 is not a goal coordinate
    np.testing.assert_allclose(SPEC3.goal_distance(SPEC3.achieved_goal(state), jnp.array([1.75, 2.0])), 1.25)
    np.testing.assert_array_equal(SPEC3.reached(jnp.array([0.25, 0.5, 0.75])), [True, False, False])  # strict
    assert float(SPEC3.success_of(state, jnp.array([1.0, 1.375]))) == 1.0  # distance 0.375
    assert float(SPEC3.success_of(state, jnp.array([1.0, 1.5]))) == 0.0  # distance 0.5
    states = jnp.array([[0.0, 0.0, 0.0], [2.0, 0.0, 2.0]])
    np.testing.assert_array_equal(SPEC3.success_of(states, jnp.array([2.0, 2.25])), [0.0, 1.0])  # broadcast goal
    obs = jnp.concatenate([states, jnp.array([[0.0, 0.2], [0.0, 0.0]])], 1)
    np.testing.assert_array_equal(SPEC3.success_of(states, SPEC3.commanded_goal(obs)), SPEC3.success(obs))


# ------------------------------------------------------------------------------------- auto-reset step


def run_steps(task, policy, env, num_steps, reset_mode, first_env=None, key=jax.random.PRNGKey(0)):
    """num_steps auto-reset steps from a fresh batch; returns the per-step carries and records, stacked."""
    n = env.obs.shape[0]

    def body(carry, k):
        carry, record = auto_reset_step(task, policy, k, *carry, reset_mode, first_env)
        return carry, (carry, record)

    zeros = jnp.zeros((n,), jnp.int32)
    _, out = jax.lax.scan(body, (env, zeros, zeros), jax.random.split(key, num_steps))
    return jax.device_get(out)


def test_time_limit_bookkeeping_of_episode_step_and_traj_id():
    task = Line()  # never terminates; episode_length 5
    env = hand_envs([-0.5], [0])
    (nxt, episode_step, traj_id), rec = run_steps(task, scripted([[0.1] * 5]), env, 12, "first", env)
    np.testing.assert_array_equal(episode_step[:, 0], [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2])
    np.testing.assert_array_equal(traj_id[:, 0], [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(rec.traj_id[:, 0], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2])  # the row's episode
    np.testing.assert_array_equal(rec.done[:, 0], [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(rec.terminated[:, 0], np.zeros(12))  # the time limit is no termination
    np.testing.assert_array_equal(rec.obs[:, 0, 1], [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])  # the clock restarts
    np.testing.assert_array_equal(rec.next_env.obs[:, 0, 1], [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2])


def test_termination_ends_only_its_own_episode():
    task = Line()
    env = hand_envs([-0.5, -0.5], [2, 0])  # env 0 terminates on its 2nd step; env 1 never
    (nxt, episode_step, traj_id), rec = run_steps(task, scripted([[0.25] * 5, [0.75] * 5]), env, 4, "first", env)
    np.testing.assert_array_equal(rec.terminated, [[0, 0], [1, 0], [0, 0], [1, 0]])
    np.testing.assert_array_equal(rec.done, [[0, 0], [1, 0], [0, 0], [1, 0]])
    np.testing.assert_array_equal(episode_step, [[1, 1], [0, 2], [1, 3], [0, 4]])
    np.testing.assert_array_equal(traj_id, [[0, 0], [1, 0], [1, 0], [2, 0]])
    np.testing.assert_array_equal(nxt.obs[:, 1, 1], [1, 2, 3, 4])  # env 1 keeps going
    np.testing.assert_array_equal(nxt.obs[1, 0], env.obs[0])  # env 0 is back at its first reset
    np.testing.assert_array_equal(rec.next_env.obs[1, 0], [0.25, 2.0, -0.5])  # what the terminating step reached


def test_reset_mode_first_restores_the_first_reset():
    task = Line()
    first = reset_batch(task, jax.random.PRNGKey(3), 3, False)
    (nxt, _, _), rec = run_steps(task, scripted([[0.9] * 5] * 3), first, 5, "first", first)
    assert rec.done[4].all()
    for got, want in zip(jax.tree.leaves(jax.tree.map(lambda x: x[4], nxt)), jax.tree.leaves(first)):
        np.testing.assert_array_equal(got, want)  # physics, obs (goal included) and terminated
    assert np.all(nxt.obs[3, :, 0] == 0.9)  # before the episode's end the stepped states were kept


def test_reset_mode_fresh_samples_a_new_reset_from_the_step_key():
    task = Line()
    first = reset_batch(task, jax.random.PRNGKey(3), 3, False)
    key = jax.random.PRNGKey(11)
    (nxt, _, _), rec = run_steps(task, scripted([[0.9] * 5] * 3), first, 5, "fresh", key=key)
    step_keys = jax.random.split(key, 5)
    _, k_reset = jax.random.split(step_keys[4])  # k_act, k_reset = split(step key)
    want = reset_batch(task, k_reset, 3, False)
    np.testing.assert_array_equal(nxt.obs[4], want.obs)
    goals = nxt.obs[4, :, 2]
    assert np.all(goals != first.obs[:, 2]) and len(set(goals.tolist())) == 3  # new, distinct goals
    assert np.all((goals >= -1.0) & (goals <= 0.0))  # from the training goal set
    np.testing.assert_array_equal(nxt.physics["clock"][4], [0, 0, 0])


def test_bad_reset_mode_is_one_clear_error():
    task, env = Line(), hand_envs([0.0, 0.0], [0, 0])
    zeros = jnp.zeros((2,), jnp.int32)
    with pytest.raises(ConfigError, match="reset_mode 'sometimes' is unknown; use one of first, fresh"):
        auto_reset_step(task, scripted([[0.0]]), jax.random.PRNGKey(0), env, zeros, zeros, "sometimes", env)
    with pytest.raises(ConfigError, match="needs first_env"):
        auto_reset_step(task, scripted([[0.0]]), jax.random.PRNGKey(0), env, zeros, zeros, "first")


# ---------------------------------------------------------------------------------- evaluation episode


class LongLine(Line):
    spec = TaskSpec(name="long_line", state_size=2, goal_size=1, goal_indices=(0,), action_size=1,
                    success_threshold=0.25, episode_length=6, env_step_seconds=0.1, backend="none", benchmark=False)


POSITIONS = [[0.0, 0.5, 0.6, 0.1, 0.5, 0.5],   # goal 0.5: success [0, 1, 1, 0, 1, 1], never terminates
             [0.5, 0.0, 0.6, 0.5, 0.5, 0.5],   # success [1, 0, 1 | 1, 1, 1], terminates on step 3
             [0.9, 0.5, 0.5, 0.5, 0.5, 0.5]]   # success [0 | 1, 1, 1, 1, 1], terminates on step 1
ENDS = [0, 3, 1]


def test_evaluation_episode_counts_the_terminating_step_and_nothing_after():
    task = LongLine()
    env = hand_envs([0.5, 0.5, 0.5], ENDS)
    ep = jax.device_get(evaluation_episode(task, scripted(POSITIONS), env, jax.random.PRNGKey(0)))
    np.testing.assert_array_equal(ep.time_at_goal, [4.0, 2.0, 0.0])  # env 1: steps 1 and 3 of 3 counted steps
    np.testing.assert_array_equal(ep.success_any, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(ep.success_at_end, [1.0, 1.0, 0.0])  # env 1: the terminating step reached it
    np.testing.assert_allclose(ep.final_distance, [0.0, 0.1, 0.4], atol=1e-6)  # after the last counted step
    assert ep.states is None and ep.alive is None
    assert set(ep.metrics()) == {"time_at_goal", "success_any", "success_at_end", "final_distance"}


def test_recorded_evaluation_episode_has_every_state_and_the_alive_mask():
    task = LongLine()
    env = hand_envs([0.5, 0.5, 0.5], ENDS)
    plain = jax.device_get(evaluation_episode(task, scripted(POSITIONS), env, jax.random.PRNGKey(0)))
    ep = jax.device_get(evaluation_episode(task, scripted(POSITIONS), env, jax.random.PRNGKey(0), record=True))
    assert ep.alive.shape == (7, 3) and ep.states.obs.shape == (7, 3, 3)
    np.testing.assert_array_equal(ep.alive.T, [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(ep.states.obs[0], env.obs)  # the reset first
    np.testing.assert_allclose(ep.states.obs[1:, :, 0], np.array(POSITIONS).T)  # then every step's position
    for name, value in plain.metrics().items():
        np.testing.assert_array_equal(ep.metrics()[name], value)
    # time at goal is the success summed over the counted (alive) steps
    success = np.asarray(task.spec.success(ep.states.obs))
    np.testing.assert_array_equal((success * ep.alive)[1:].sum(0), ep.time_at_goal)


def test_evaluate_policy_starts_from_evaluation_resets_with_the_split_key():
    task = LongLine()
    key = jax.random.PRNGKey(5)

    def noisy(obs, k):  # a policy that uses its key, so that the key stream is checked too
        return jax.random.uniform(k, (obs.shape[0], 1), minval=0.5, maxval=2.0)

    ep = jax.device_get(evaluate_policy(task, noisy, key, 4, record=True))
    k_reset, k_act = jax.random.split(key)
    start = reset_batch(task, k_reset, 4, True)
    want = jax.device_get(evaluation_episode(task, noisy, start, k_act, record=True))
    np.testing.assert_array_equal(ep.states.obs, want.states.obs)
    np.testing.assert_array_equal(ep.time_at_goal, want.time_at_goal)
    assert np.all((ep.states.obs[0, :, 2] >= 1.0) & (ep.states.obs[0, :, 2] <= 2.0))  # evaluation goal set
    step_keys = jax.random.split(k_act, 6)
    np.testing.assert_array_equal(ep.states.obs[1, :, 0], noisy(start.obs, step_keys[0])[:, 0])
    assert 0 < ep.time_at_goal.sum() < 24  # the random positions reach their goals sometimes


def test_render_rollout_is_the_recorded_evaluation():
    from gcrl_bench import render

    class Scripted:  # an algorithm whose deterministic policy is the script
        @staticmethod
        def act(config, state, obs, key, deterministic):
            assert deterministic
            return scripted(POSITIONS)(obs, key)

    class Start(LongLine):  # a reset is env 0, 1 or 2 of the hand-built batch: the key's first word mod 3
        def reset(self, key, evaluation=False):
            return jax.tree.map(lambda x: x[key[0] % 3], hand_envs([0.5, 0.5, 0.5], ENDS))

    task = Start()
    key = jax.random.PRNGKey(2)
    states, alive, metrics = render.rollout(task, Scripted, None, None, key, 3)
    policy = lambda obs, k: Scripted.act(None, None, obs, k, True)  # noqa: E731
    want = jax.device_get(evaluate_policy(task, policy, key, 3, record=True))
    np.testing.assert_array_equal(alive, want.alive)
    np.testing.assert_array_equal(states.obs, want.states.obs)
    steps = alive.sum(0)  # frames drawn per episode: the reset and every counted step
    success = np.asarray(task.spec.success(states.obs))
    for e in range(3):
        assert metrics["time_at_goal"][e] == success[1:steps[e], e].sum()
    # PRNGKey(2)'s reset keys have first words 2, 0, 1 (mod 3), so episode e starts as hand-built env
    # [2, 0, 1][e] (its termination step: ENDS) and follows script row e (POSITIONS, goal 0.5):
    # e = 0: ends on step 0 at x = 0.0 -> 0; e = 1: never ends, x = [.5, 0, .6, .5, .5, .5] -> 5;
    # e = 2: ends on step 2, x = [.9, .5, .5] -> 2.
    assert [int(k[0]) % 3 for k in jax.random.split(jax.random.split(key)[0], 3)] == [2, 0, 1]
    np.testing.assert_array_equal(metrics["time_at_goal"], [0.0, 5.0, 2.0])
    np.testing.assert_array_equal(steps, [2, 7, 4])
