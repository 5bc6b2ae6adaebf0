"""Controls for the depth-scaling statistics of the report.

- the control task ``point_big_maze`` (tasks/point_momentum.py): its dynamics checked by hand;
- positive control (slow): CRL at depth 16 should beat depth 4 on it under the ``control`` preset, through
  ``gcrl-bench run`` and the report's own tables (critical depth, probability of improvement); at the
  preset's CPU budget it does not yet (measured numbers in the xfail reason), so it is marked xfail;
- negative control: two groups of runs of one identical configuration (different seeds only), labelled
  as two depths and fed to the same report functions, show no improvement and no critical depth.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from gcrl_bench import registry
from gcrl_bench.config import LoopConfig, get_preset
from gcrl_bench.interface import EnvState
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.reports import scaling, tables
from gcrl_bench.reports.results import Results
from gcrl_bench.results import run_score
from gcrl_bench.tasks.point_momentum import (CELL, DAMPING, DT, EVAL_MIN_CELLS, LAYOUT, RADIUS, THRUST,
                                             PointMomentumMaze, path_lengths)
from gcrl_bench.training import Trainer

TASK = "point_big_maze"
REPS = 2000  # the report's default number of bootstrap resamples


def _state(task: PointMomentumMaze, pos, vel, goal=(7.0, 7.0)) -> EnvState:
    physics = jnp.array([*pos, *vel], jnp.float32)
    return EnvState(physics=physics, obs=jnp.concatenate([physics, jnp.array(goal, jnp.float32)]),
                    terminated=jnp.zeros(()))


# ------------------------------------------------------------------------------------------------------
# The task


def test_registered_as_a_control_task_not_a_benchmark_task():
    spec = registry.task_spec(TASK)
    assert not spec.benchmark and "control task (not one of the ten)" in spec.description
    assert TASK not in registry.benchmark_task_names()
    assert spec.observation_size == 6 and spec.goal_indices == (0, 1) and spec.episode_length == 200
    assert get_preset("control").loop_for(TASK).updates_per_step == 60


def test_goal_sets_follow_the_corridor_distances():
    task = PointMomentumMaze()
    dist = path_lengths(LAYOUT)
    free = sum(row.count(".") for row in LAYOUT)
    assert len(dist) == free + 1 and max(dist.values()) == 14  # every free cell is reachable
    cell = lambda xy: (int(round(float(xy[0]) / CELL)), int(round(float(xy[1]) / CELL)))
    assert len(task.train_goals) == free and all(dist[cell(g)] >= 1 for g in task.train_goals)
    assert len(task.eval_goals) > 0 and all(dist[cell(g)] >= EVAL_MIN_CELLS for g in task.eval_goals)
    goals = jax.vmap(lambda k: task.reset(k, True).obs[4:])(jax.random.split(jax.random.PRNGKey(0), 256))
    assert all(dist[cell(g)] >= EVAL_MIN_CELLS for g in np.asarray(goals))


def test_momentum_by_hand():
    """One thrust, then coasting: the velocity decays by (1 - DAMPING) per step and the point keeps moving."""
    task = PointMomentumMaze()
    step = jax.jit(task.step)
    state = step(_state(task, (1.0, 1.0), (0.0, 0.0)), jnp.array([0.0, 1.0]))  # +y along the top corridor
    np.testing.assert_allclose(state.physics, [1.0, 1.0 + THRUST * DT, 0.0, THRUST], rtol=1e-6)
    y, v = 1.0 + THRUST * DT, THRUST
    for _ in range(10):
        state = step(state, jnp.zeros(2))
        v *= 1.0 - DAMPING
        y += v * DT
    np.testing.assert_allclose(state.physics, [1.0, y, 0.0, v], rtol=1e-5)
    assert v > 0.5 * THRUST  # after 10 steps it still has more than half its speed (point_u_maze: 0.1%)
    # actions are clipped to [-1, 1]; full reverse thrust from 1.5 m/s: 1.5 * 0.95 - 0.1
    state = step(_state(task, (1.0, 1.0), (0.0, 1.5)), jnp.array([0.0, -5.0]))
    np.testing.assert_allclose(state.physics[3], 1.5 * (1 - DAMPING) - THRUST, rtol=1e-6)
    # top speed THRUST / DAMPING per axis: full thrust for 300 steps (the position put back in the open
    # bottom corridor every step, so that no wall is met)
    state = _state(task, (7.0, 2.0), (0.0, 0.0))
    for _ in range(300):
        state = step(state.replace(physics=state.physics.at[:2].set(jnp.array([7.0, 2.0]))), jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(state.physics[3], THRUST / DAMPING, rtol=1e-3)


def test_walls_stop_the_point_mass_and_keep_it_out():
    task = PointMomentumMaze()
    step = jax.jit(task.step)
    # at top speed along the top corridor towards the wall cell (1, 4): its face is at y = 3.5
    state = _state(task, (1.0, 1.0), (0.0, THRUST / DAMPING))
    hit = None
    for t in range(40):
        before = float(state.physics[1])
        state = step(state, jnp.array([0.0, 1.0]))
        assert float(state.physics[1]) <= 3.5 - RADIUS + 1e-6
        if hit is None and float(state.physics[1]) == before:
            hit = t
    assert hit is not None and float(state.physics[3]) == 0.0  # an inelastic stop
    assert float(state.physics[1]) > 3.5 - RADIUS - np.sqrt(2) * THRUST / DAMPING * DT  # it reached the face
    # a stop on one axis keeps the other's motion: sliding along x while pushing into the wall in y
    state = step(_state(task, (1.0, 3.35), (1.0, 1.0)), jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(state.physics, [1.0 + 1.0 * (1 - DAMPING) * DT, 3.35, 1.0 * (1 - DAMPING), 0.0],
                               rtol=1e-6)
    # random thrusts from random starts never put the disc into a wall
    keys = jax.random.split(jax.random.PRNGKey(1), 32)
    states = jax.vmap(lambda k: task.reset(k))(keys)

    def body(s, k):
        s = jax.vmap(task.step)(s, jax.random.uniform(k, (32, 2), minval=-1, maxval=1))
        return s, jax.vmap(task._blocked)(s.physics[:, :2])

    _, blocked = jax.lax.scan(body, states, jax.random.split(jax.random.PRNGKey(2), 500))
    assert not bool(jnp.any(blocked))


def test_success_is_within_the_radius_of_the_goal():
    task = PointMomentumMaze()
    spec = task.spec
    goal = (7.0, 7.0)  # a far cell (corridor distance 12)
    assert path_lengths(LAYOUT)[(7, 7)] >= EVAL_MIN_CELLS
    at = _state(task, (7.0, 7.0 - 0.29), (0.0, 0.0), goal)
    off = _state(task, (7.0, 7.0 - 0.31), (0.0, 0.0), goal)
    assert float(spec.distance(at.obs[None])[0]) < spec.success_threshold
    assert float(spec.distance(off.obs[None])[0]) > spec.success_threshold
    # the goal rides along unchanged in the observation
    moved = task.step(at, jnp.array([0.0, 1.0]))
    np.testing.assert_array_equal(moved.obs[4:], jnp.array(goal))


# ------------------------------------------------------------------------------------------------------
# Positive control (slow): the committed comparison, end to end

POSITIVE_DEPTHS, POSITIVE_SEEDS, POSITIVE_WIDTH = (4, 16), (0, 1, 2), 64
# With 3 seeds per depth the report's percentile-bootstrap interval of the mean is [min, max] of the seeds
# (a resample of three copies of the lowest seed has probability 1/27 > 2.5%), so a critical depth of 16
# means every depth-16 seed beat every depth-4 seed, i.e. P(16 > 4) = 9/9. We ask for at least 8/9 and an
# interval above 0.5: under no difference (exchangeable seeds) P(U >= 8 of 9) = 2/20 = 0.1.
MIN_IMPROVEMENT = 8 / 9


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "not separated at the control preset's budget: width 64, time at goal of 200, depth 4 seeds 0-2 score "
    "28.0 / 37.8 / 45.3 (interval 28.0-45.3), depth 16 seed 0 scores 34.3"))
def test_positive_control_depth_16_beats_depth_4(tmp_path: Path):
    from gcrl_bench.cli import main
    from gcrl_bench.reports import load_results

    main(["run", "--algos", "crl", "--tasks", TASK, "--depths", ",".join(map(str, POSITIVE_DEPTHS)),
          "--widths", str(POSITIVE_WIDTH), "--seeds", ",".join(map(str, POSITIVE_SEEDS)), "--preset", "control",
          "--out", str(tmp_path), "--no-report"])
    main(["report", str(tmp_path)])
    results = load_results(tmp_path)
    assert len(results.runs) == len(POSITIVE_DEPTHS) * len(POSITIVE_SEEDS) and results.not_included.empty
    per_task = tables.task_table(results, reps=REPS, seed=0)
    aggregates = tables.aggregate_table(results, reps=REPS, seed=0)
    critical = scaling.depth_scaling_table(per_task, aggregates)
    row = critical[critical["task"] == TASK].iloc[0]
    assert row["critical_depth"] == 16, per_task[["depth", "mean", "ci95_low", "ci95_high"]]
    improvement = scaling.improvement_table(results, reps=REPS, seed=0)
    poi = improvement[(improvement["comparison"] == "depth") & (improvement["depth"] == 16)].iloc[0]
    assert poi["probability"] >= MIN_IMPROVEMENT and poi["ci95_low"] > 0.5, poi
    assert (tmp_path / "report.pdf").is_file() and (tmp_path / "report_tables.md").is_file()


# ------------------------------------------------------------------------------------------------------
# Negative control: one configuration, two groups of seeds

NEGATIVE_SEEDS_PER_GROUP = 8
NEGATIVE_WIDTH = 32
# A short run of the control task (depth 4, width 32): 4,800 gradient steps of batch 128, enough for the
# seeds' scores to differ (few ties at zero); all 16 seeds train side by side in one vmapped program.
NEGATIVE_LOOP = dict(
    total_env_steps=20 * 320 + 3 * 40 * 320, num_epochs=3, num_envs=32, unroll_length=10, batch_size=128,
    updates_per_step=40, windows_per_step=64, min_replay_rows=200, max_replay_rows=1000, num_eval_envs=64,
)
# Under no difference the Mann-Whitney statistic P(X > Y) of n vs n runs has mean 0.5 and standard
# deviation sqrt((2n + 1) / (12 n^2)) = 0.149 for n = 8; |P - 0.5| <= 0.35 (2.35 standard deviations)
# fails by chance about 2% of the time over seed sets (the seeds here are fixed, so the test is
# deterministic on one machine). The critical depth needs the two groups' intervals to be disjoint.
NULL_BOUND = 0.35


def _vmapped_seed_scores(seeds: list[int]) -> tuple[np.ndarray, int]:
    """Trains CRL (depth 4) on the control task for every seed at once; returns each seed's run score
    (gcrl_bench.results.run_score over its evaluations) and the episode length."""
    task = registry.get_task(TASK)
    algo = registry.get_algorithm("crl")
    trainer = Trainer(task, algo, algo.config_cls(network=NetworkConfig(depth=4, width=NEGATIVE_WIDTH)),
                      LoopConfig(**NEGATIVE_LOOP))
    keys = jnp.stack([jax.random.split(jax.random.PRNGKey(s)) for s in seeds])  # (seeds, 2: run, eval)
    state = jax.jit(jax.vmap(trainer.init))(keys[:, 0])
    state = jax.jit(jax.vmap(trainer.prefill))(state)
    epoch = jax.jit(jax.vmap(trainer.epoch))
    evaluate = jax.jit(jax.vmap(trainer.evaluate))
    rows: list[list[dict]] = [[] for _ in seeds]
    for e in range(trainer.loop.num_epochs):
        state, _ = epoch(state)
        metrics = evaluate(state.algo, jax.vmap(lambda k: jax.random.fold_in(k, e))(keys[:, 1]))
        for i, value in enumerate(np.asarray(metrics["time_at_goal"]).mean(axis=1)):
            rows[i].append({"eval/time_at_goal": float(value)})
    return np.array([run_score(r) for r in rows]), task.spec.episode_length


def _results_of(groups: dict[int, tuple[list[int], np.ndarray]], episode_length: int) -> Results:
    """A report view of runs: {depth label: (seeds, scores)}; the report's tables read only these columns."""
    rows = [
        {"run_id": f"crl_{TASK}_d{depth}_s{seed}", "algo": "crl", "task": TASK, "depth": depth, "width": NEGATIVE_WIDTH,
         "seed": seed, "env_steps": 0, "episode_length": episode_length, "score": float(score),
         "score_normalized": float(score) / episode_length, "success_any_last5": math.nan,
         "success_at_end_last5": math.nan}
        for depth, (seeds, scores) in groups.items() for seed, score in zip(seeds, scores)
    ]
    return Results(directory=Path("."), runs=pd.DataFrame(rows), evaluations=pd.DataFrame(),
                   not_included=pd.DataFrame(), configs={})


@pytest.mark.slow
def test_negative_control_identical_configurations_show_no_depth_effect():
    n = NEGATIVE_SEEDS_PER_GROUP
    seeds = list(range(2 * n))
    scores, episode_length = _vmapped_seed_scores(seeds)
    print("negative control scores (time at goal):", np.round(scores, 2).tolist())
    assert np.all(np.isfinite(scores)) and len(np.unique(scores)) >= 3 * n // 2  # a real spread, few ties
    # the same configuration, labelled as depth 4 (first half of the seeds) and depth 8 (second half)
    results = _results_of({4: (seeds[:n], scores[:n]), 8: (seeds[n:], scores[n:])}, episode_length)
    per_task = tables.task_table(results, reps=REPS, seed=0)
    aggregates = tables.aggregate_table(results, reps=REPS, seed=0)
    critical = scaling.depth_scaling_table(per_task, aggregates)
    assert critical["critical_depth"].isna().all(), critical
    improvement = scaling.improvement_table(results, reps=REPS, seed=0)
    (poi,) = improvement[improvement["comparison"] == "depth"].itertuples()
    assert abs(poi.probability - 0.5) <= NULL_BOUND, poi
    assert poi.ci95_low < 0.5 < poi.ci95_high, poi
