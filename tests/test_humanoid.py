"""Humanoid tasks: spec and model against docs/tasks.md §3-§4, reset/observation, falls, walls that hold, parity
with brax's spring step and with mjx.collision."""

import dataclasses
import types

import jax
import jax.numpy as jp
import mujoco
import numpy as np
import pytest
from brax import contact, kinematics
from brax.spring import pipeline as spring_pipeline

from gcrl_bench import registry
from gcrl_bench.tasks import humanoid, maze_walls

N_ENVS = 4
N_STEPS = 100


@pytest.fixture(scope="module")
def open_floor():
    return humanoid.make_humanoid("humanoid")


@pytest.fixture(scope="module")
def u_maze():
    return humanoid.make_humanoid("humanoid_u_maze")


def _rollout_fn(step):
    """Jitted (envs, steps) rollout: final state and every link's position at every step."""

    def one(state, actions):
        def body(s, a):
            s = step(s, a)
            return s, s.physics.x.pos

        return jax.lax.scan(body, state, actions)

    return jax.jit(jax.vmap(one))


@pytest.fixture(scope="module")
def maze_rollout(u_maze):
    return _rollout_fn(u_maze.step)


@pytest.fixture(scope="module")
def brax_rollout(u_maze):
    """The same rollout with brax's own spring pipeline on the maze's physics model (which has no walls)."""

    def step(s, a):
        p, _ = jax.lax.scan(lambda p, _: (spring_pipeline.step(u_maze.sys, p, humanoid.ACTION_SCALE * a), None),
                            s.physics, None, length=humanoid.N_FRAMES)
        return s.replace(physics=p)

    return _rollout_fn(step)


def _resets(task, seed, n=N_ENVS):
    return jax.jit(jax.vmap(task.reset))(jax.random.split(jax.random.PRNGKey(seed), n))


# ------------------------------------------------------------------------------------ spec, registry


def test_specs_and_register_all(monkeypatch):
    monkeypatch.setattr(registry, "_TASKS", {})
    humanoid.register_all()
    assert set(registry._TASKS) == {"humanoid", "humanoid_u_maze", "humanoid_big_maze", "humanoid_paper_dt"}
    for name, entry in registry._TASKS.items():
        if name == "humanoid_paper_dt":  # the as-run variant: test_paper_dt_spec
            continue
        spec = entry.spec
        assert (spec.state_size, spec.goal_size, spec.goal_indices, spec.action_size) == (268, 3, (0, 1, 2), 17)
        assert (spec.observation_size, spec.success_threshold, spec.episode_length) == (271, 0.5, 1000)
        assert spec.env_step_seconds == pytest.approx(0.015) and spec.backend == "spring"
        assert spec.eval_goal_set == "train" and spec.benchmark


def test_paper_dt_spec():
    """humanoid_paper_dt is humanoid's spec with only the step (0.003 s x 10 = 0.03 s), name, description and the
    benchmark flag changed; a 1000-step episode is 30 s of simulated time."""
    spec, plain = humanoid.SPECS["humanoid_paper_dt"], humanoid.SPECS["humanoid"]
    assert spec.env_step_seconds == pytest.approx(0.03) and plain.env_step_seconds == pytest.approx(0.015)
    assert spec.episode_length * spec.env_step_seconds == pytest.approx(30.0)
    assert not spec.benchmark and spec.description.startswith("humanoid as the paper's code ran it (0.03 s")
    assert spec.description.endswith("not one of the ten")
    assert spec == dataclasses.replace(plain, name="humanoid_paper_dt", env_step_seconds=spec.env_step_seconds,
                                       benchmark=False, description=spec.description)
    assert (spec.state_size, spec.goal_indices, spec.success_threshold) == (268, (0, 1, 2), 0.5)
    assert spec.episode_length == 1000


def test_paper_dt_not_a_default_benchmark_task():
    """`gcrl-bench run` without --tasks trains registry.benchmark_task_names(): still the ten, humanoid among them."""
    names = registry.benchmark_task_names()
    assert "humanoid_paper_dt" in registry.task_entries() and "humanoid_paper_dt" not in names
    assert "humanoid" in names and len(names) == 10


def test_paper_dt_system():
    """The variant's brax system steps 0.003 s (the shipped humanoid.xml's own timestep) x 10 substeps."""
    task = humanoid.make_humanoid("humanoid_paper_dt")
    assert float(task.sys.opt.timestep) == pytest.approx(0.003) and humanoid.N_FRAMES == 10
    assert mujoco.MjModel.from_xml_path(humanoid._brax_humanoid_xml()).opt.timestep == pytest.approx(0.003)
    assert task.physics_dt * humanoid.N_FRAMES == pytest.approx(task.spec.env_step_seconds)
    # the rest of the model is humanoid's
    plain = humanoid.make_humanoid("humanoid")
    np.testing.assert_array_equal(task.sys.init_q, plain.sys.init_q)
    np.testing.assert_array_equal(task.mj_model.actuator_gear, plain.mj_model.actuator_gear)
    with pytest.raises(ValueError, match="env_step_seconds=0.015"):
        humanoid.Humanoid(humanoid.SPECS["humanoid"], physics_dt=humanoid.PAPER_RUN_DT)


def test_paper_dt_step_is_0_03_seconds_of_free_fall():
    """Held 50 m up with zero control, one env step is 10 semi-implicit Euler substeps of free fall: torso
    vz = -g n dt and a drop of g dt^2 n (n + 1) / 2. With dt = 0.003, n = 10: vz = -0.2943 m/s, drop 4.856 mm
    (at 0.015 s per step they would be -0.1472 m/s and 1.214 mm)."""
    task = humanoid.make_humanoid("humanoid_paper_dt")
    q = jp.asarray(task.sys.init_q).at[2].set(50.0)
    start = spring_pipeline.init(task.sys, q, jp.zeros(task.sys.qd_size()))
    after = jax.jit(task.physics_step)(start, jp.zeros(17))
    g, dt, n = 9.81, 0.003, 10
    assert float(after.qd[2]) == pytest.approx(-g * n * dt, rel=2e-3)
    assert 50.0 - float(after.q[2]) == pytest.approx(g * dt**2 * n * (n + 1) / 2, rel=5e-3)


def test_paper_column_for_humanoid_and_its_variant():
    """The report's paper column: the variant gets the paper's humanoid row (and its 100M budget); plain humanoid
    gets the same number marked as obtained at 0.03 s per step."""
    import pandas as pd

    from gcrl_bench.reports import reference, tables

    assert reference.paper_table1("crl", "humanoid_paper_dt", 64, 256, 1000, 100_000_000) == (649.0, 19.0)
    assert reference.paper_table1("crl", "humanoid_paper_dt", 4, 256, 1000, 100_000_000) == (12.6, 1.3)
    assert reference.paper_table1("crl", "humanoid_paper_dt", 64, 256, 1000, 50_000_000) is None
    assert reference.paper_table1("crl", "humanoid", 64, 256, 1000, 100_000_000) == (649.0, 19.0)
    assert reference.paper_note("humanoid") == "at 0.03 s/step" and reference.paper_note("humanoid_paper_dt") == ""
    row = dict(algo="crl", depth=64, width=256, num_seeds=3, episode_length="1000", env_steps=100_000_000,
               mean=600.0, ci95_low=590.0, ci95_high=610.0, paper_table1_mean=649.0, paper_table1_se=19.0,
               **{f"{m}{suffix}": 0.5 for m in tables.SUCCESS_COLUMNS for suffix in ("", "_ci95_low", "_ci95_high")})
    shown = tables.display_task_table(pd.DataFrame([dict(row, task="humanoid"), dict(row, task="humanoid_paper_dt")]))
    assert shown["Paper Table 1"].tolist() == ["649 ± 19 (at 0.03 s/step)", "649 ± 19"]


@pytest.mark.parametrize(
    "layout, start_xy, goals_xy",
    [
        ("u_maze", (2, 2), [(2, 4), (2, 6), (4, 6), (6, 2), (6, 4), (6, 6)]),
        ("big_maze", (2, 2), None),
    ],
)
def test_layouts(layout, start_xy, goals_xy):
    grid = humanoid.LAYOUTS[layout]
    (start,) = humanoid.cells(grid, "R")
    assert humanoid.cell_xy(start) == start_xy
    goals = sorted(humanoid.cell_xy(c) for c in humanoid.cells(grid, "G"))
    if goals_xy is not None:
        assert goals == sorted((float(x), float(y)) for x, y in goals_xy)
    else:  # the ant's big maze at 2 m cells: 25 goals, 38 walls
        assert len(goals) == 25 and len(humanoid.cells(grid, "#")) == 38
    assert set(grid[0]) == set(grid[-1]) == {"#"} and all(row[0] == row[-1] == "#" for row in grid)


def test_model(u_maze, open_floor):
    sys, model = u_maze.sys, u_maze.mj_model
    assert (sys.num_links(), sys.q_size(), sys.qd_size(), sys.act_size()) == (12, 26, 25, 17)
    assert float(sys.opt.timestep) == pytest.approx(0.0015)
    np.testing.assert_allclose(model.actuator_gear[:, 0], [350.0] * 11 + [100.0] * 6)
    np.testing.assert_allclose(sys.init_q[:3], [2.0, 2.0, 1.4])
    np.testing.assert_allclose(open_floor.sys.init_q[:3], [0.0, 0.0, 1.4])
    body_geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] not in (0, model.nbody - 1)]
    assert len(body_geoms) == 17
    assert all(model.geom_contype[g] == 1 and model.geom_conaffinity[g] == 0 for g in body_geoms)
    target = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "target")
    assert (model.geom_contype[target], model.geom_conaffinity[target], model.geom_size[target, 0]) == (0, 0, 0.5)
    # every geom reaches less than half a cell from its centre, so each geom's 2x2 cells cover its walls
    assert u_maze._geoms.extent == pytest.approx(0.23, abs=0.01) and u_maze._geoms.extent < humanoid.CELL_SIZE / 2
    visual = u_maze.render_model()
    assert visual.ngeom == model.ngeom + 18
    wall = mujoco.mj_name2id(visual, mujoco.mjtObj.mjOBJ_GEOM, "wall_0_0")
    np.testing.assert_allclose(visual.geom_size[wall], [1.0, 1.0, 0.5])
    assert visual.nq == 26


# ---------------------------------------------------------------------------------- reset and obs


def test_reset_obs_and_goals(open_floor, u_maze):
    s = _resets(open_floor, 0, 512)
    assert s.obs.shape == (512, 271) and s.terminated.shape == (512,)
    q, qd = np.asarray(s.physics.q), np.asarray(s.physics.qd)
    np.testing.assert_array_equal(s.obs[:, :26], q)
    np.testing.assert_array_equal(s.obs[:, 26:51], qd)
    np.testing.assert_array_equal(s.obs[:, 268:270], q[:, 24:26])
    np.testing.assert_array_equal(s.obs[:, 270], 1.25)
    np.testing.assert_array_equal(s.terminated, 0.0)
    # radial goals: r in [1, 5], every direction
    r = np.linalg.norm(q[:, 24:26], axis=1)
    assert r.min() >= 1.0 and r.max() <= 5.0 and r.max() - r.min() > 3.5
    angles = np.arctan2(q[:, 25], q[:, 24])
    assert np.histogram(angles, bins=8, range=(-np.pi, np.pi))[0].min() > 20
    # per-link inertia about the centre of mass: identity inertia under spring, masses of the model
    com_inertia = np.asarray(s.obs[0, 51:171]).reshape(12, 10)
    np.testing.assert_allclose(com_inertia[:, 9], u_maze.mj_model.body_mass[1:], rtol=1e-5)
    np.testing.assert_allclose(s.obs[:, 171:268], 0.0, atol=1e-6)  # at rest, no actuator force
    again = _resets(open_floor, 0, 512)
    np.testing.assert_array_equal(again.obs, s.obs)

    m = _resets(u_maze, 1, 256)
    goals = {tuple(g) for g in np.asarray(m.physics.q[:, 24:26]).tolist()}
    assert goals == {tuple(map(float, humanoid.cell_xy(c))) for c in humanoid.cells(u_maze.layout, "G")}
    np.testing.assert_allclose(m.obs[:, :3], np.tile([2.0, 2.0, 1.4], (256, 1)), atol=1e-6)
    # contains_goal accepts every reset goal and rejects goals outside the set
    for task, obs in ((open_floor, s.obs), (u_maze, m.obs)):
        assert bool(jp.all(jax.vmap(task.contains_goal)(obs[:, 268:])))
    assert not bool(open_floor.contains_goal(jp.array([0.5, 0.0, 1.25])))
    assert not bool(open_floor.contains_goal(jp.array([3.0, 0.0, 1.0])))
    assert not bool(u_maze.contains_goal(jp.array([2.0, 2.0, 1.25])))  # the start cell is not a goal


@pytest.fixture(scope="module")
def open_step(open_floor):
    return jax.jit(open_floor.step)


def test_actuator_forces_in_obs(open_floor, open_step):
    """Observed actuator forces are gear x 0.4 x action, one dof per motor."""
    s = open_floor.reset(jax.random.PRNGKey(0))
    action = jax.random.uniform(jax.random.PRNGKey(1), (17,), minval=-1.0, maxval=1.0)
    s = open_step(s, action)
    qfrc = np.asarray(s.obs[243:268])
    np.testing.assert_array_equal(qfrc[:6], 0.0)  # free joint
    np.testing.assert_array_equal(qfrc[23:], 0.0)  # target joints
    gears = np.array(humanoid.GEARS)
    np.testing.assert_allclose(np.sort(np.abs(qfrc[6:23])), np.sort(gears * 0.4 * np.abs(np.asarray(action))),
                               rtol=1e-5)


def test_goal_fixed_within_episode(open_floor):
    """The commanded goal in the observation stays bit-for-bit the reset's goal while the body moves (a
    radial goal is an arbitrary float, which a read-back through the physics would round)."""
    states = _resets(open_floor, 9, 64)
    goals = np.asarray(states.obs[:, 268:])
    step = jax.jit(jax.vmap(open_floor.step))
    for t in range(3):
        actions = jax.random.uniform(jax.random.PRNGKey(t), (64, 17), minval=-1.0, maxval=1.0)
        states = step(states, actions)
        np.testing.assert_array_equal(np.asarray(states.obs[:, 268:]), goals, err_msg=f"step {t}")


def test_terminated_on_torso_height(open_floor):
    q = np.asarray(open_floor.sys.init_q, dtype=np.float32)
    for z, expected in ((0.99, 1.0), (2.01, 1.0), (1.4, 0.0)):
        assert float(humanoid.terminated(types.SimpleNamespace(q=jp.asarray(q).at[2].set(z)))) == expected


# ------------------------------------------------------------------------------ physics sanity


def test_zero_action_falls_and_terminates(u_maze, maze_rollout):
    """Without control the humanoid collapses: the torso leaves [1, 2] (terminated), nothing explodes."""
    states = _resets(u_maze, 2)
    chunks = []
    for _ in range(3):  # 3 x 100 steps = 4.5 s
        states, links = maze_rollout(states, jp.zeros((N_ENVS, N_STEPS, 17)))
        chunks.append(np.asarray(links))
    final, links = states, np.concatenate(chunks, axis=1)
    assert np.all(np.isfinite(links)) and np.all(np.isfinite(np.asarray(final.obs)))
    torso_z = links[:, :, 0, 2]
    assert np.all(torso_z.min(axis=1) < 1.0) and np.all(np.asarray(final.terminated) == 1.0)
    assert links[..., :11, 2].min() > -0.05  # resting on the floor, not through it
    assert np.abs(links[..., :11, :2] - 2.0).max() < 1.6  # fell where it stood


def test_random_actions_reproducible_and_finite(u_maze, maze_rollout):
    states = _resets(u_maze, 3)
    actions = jax.random.uniform(jax.random.PRNGKey(4), (N_ENVS, N_STEPS, 17), minval=-1.0, maxval=1.0)
    a, links_a = maze_rollout(states, actions)
    b, links_b = maze_rollout(states, actions)
    np.testing.assert_array_equal(links_a, links_b)
    assert np.all(np.isfinite(np.asarray(a.obs))) and set(np.asarray(a.terminated).tolist()) <= {0.0, 1.0}


def test_step_equals_brax_away_from_walls(u_maze, maze_rollout, brax_rollout):
    """While no geom can reach a wall, the maze step equals brax.spring.pipeline.step."""
    states = _resets(u_maze, 5)
    actions = 0.3 * jax.random.uniform(jax.random.PRNGKey(6), (N_ENVS, N_STEPS, 17), minval=-1.0, maxval=1.0)
    _, ours = maze_rollout(states, actions)
    _, theirs = brax_rollout(states, actions)
    ours, theirs = np.asarray(ours)[:, :, :11], np.asarray(theirs)[:, :, :11]
    # Every geom lies within 0.45 m of its link origin; the start cell's walls are the faces x = 1, x = 3,
    # y = 1 (cell (1, 2) beyond y = 3 is free). Compare up to the first step a link comes within 0.45 m.
    near = (theirs[..., 0] < 1.45) | (theirs[..., 0] > 2.55) | (theirs[..., 1] < 1.45)
    clear = int(np.argmax(near.any(axis=(0, 2)))) if near.any() else N_STEPS
    assert clear >= 20
    np.testing.assert_allclose(ours[:, :clear], theirs[:, :clear], atol=1e-4)


def test_pushed_into_wall_stays_outside(u_maze, maze_rollout, brax_rollout):
    """Launched at 4 m/s towards the wall face x = 1: no link ends up inside the wall; without the wall
    contacts (brax on the wall-less model) the same push carries the body through the wall's footprint."""
    states = _resets(u_maze, 7)
    qd = jp.zeros_like(states.physics.qd).at[:, 0].set(-4.0)
    physics = jax.vmap(lambda q, v: spring_pipeline.init(u_maze.sys, q, v))(states.physics.q, qd)
    states = states.replace(physics=physics)
    zeros = jp.zeros((N_ENVS, N_STEPS, 17))
    _, links = maze_rollout(states, zeros)
    _, free = brax_rollout(states, zeros)
    links, free = np.asarray(links)[..., :11, :], np.asarray(free)[..., :11, :]

    def depth_in_wall(pos):  # how far link origins below the wall top go past the face x = 1
        return np.where(pos[..., 2] < 0.9, 1.0 - pos[..., 0], -np.inf).max()

    assert depth_in_wall(links) < 0.05
    assert links[..., 0].min() < 1.2  # it did reach the wall
    assert depth_in_wall(free) > 0.3


# ---------------------------------------------------------------------------------- contact parity


def test_wall_contacts_match_mjx(u_maze):
    """Closed-form wall contacts equal mjx.collision's for the same (geom, wall) pairs on sample poses."""
    with_walls = humanoid.make_humanoid("humanoid_u_maze", collision="brax")
    model = u_maze.mj_model
    n = 24
    kp, ko, kj, kz = jax.random.split(jax.random.PRNGKey(8), 4)
    # torsos within ~0.6 m of wall faces and corners of the start corridor, any orientation and joint angles
    anchors = jp.array([[1.4, 2.0], [2.0, 1.4], [1.4, 1.4], [2.6, 2.2], [2.0, 6.5], [2.6, 5.4], [1.5, 4.0], [2.5, 3.0]])
    xy = anchors[jp.arange(n) % anchors.shape[0]] + jax.random.uniform(kp, (n, 2), minval=-0.3, maxval=0.3)
    quat = jax.random.normal(ko, (n, 4))
    quat = quat / jp.linalg.norm(quat, axis=1, keepdims=True)
    z = jax.random.uniform(kz, (n, 1), minval=0.3, maxval=1.4)
    lo, hi = model.jnt_range[1:18, 0], model.jnt_range[1:18, 1]
    joint = jax.random.uniform(kj, (n, 17), minval=lo, maxval=hi)
    qs = jp.concatenate([xy, z, quat, joint, jp.zeros((n, 2))], axis=1)
    geoms = u_maze._geoms
    geom_ids = np.concatenate([geoms.spheres, np.repeat(geoms.capsules, 2)])

    @jax.jit
    @jax.vmap
    def both(q):
        x, _ = kinematics.forward(u_maze.sys, q, jp.zeros(25))
        ref = contact.get(with_walls.sys, x)
        mine = maze_walls.wall_contacts(u_maze.sys, geoms, u_maze.wall_grid, x, humanoid.CELL_SIZE,
                                        humanoid.WALL_HALF_SIZE, anchor="geom")
        centres, _ = maze_walls.geom_world(u_maze.sys, x, geom_ids)
        cells = jax.vmap(maze_walls.nearby_cells, in_axes=(0, None))(centres[:, :2], humanoid.CELL_SIZE)
        return ref, mine, cells

    ref, mine, near = jax.device_get(both(qs))

    def name(m, g):
        return mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, int(g))

    k_slots = geom_ids.size
    touching = 0
    for k in range(n):
        expected = {}
        for i in range(ref.dist.shape[1]):
            g1, g2 = name(with_walls.mj_model, ref.geom1[k, i]), name(with_walls.mj_model, ref.geom2[k, i])
            if g2.startswith("wall_") and ref.dist[k, i] < 0:
                expected.setdefault((g1, g2), []).append((ref.dist[k, i], ref.pos[k, i], ref.frame[k, i, 0]))
        got = {}
        for i in range(mine.dist.shape[1]):
            if mine.dist[k, i] < 0:
                slot, b = i % k_slots, i // k_slots
                cell = near[k, slot, b]
                key = (name(model, geom_ids[slot]), f"wall_{cell[0]}_{cell[1]}")
                got.setdefault(key, []).append((mine.dist[k, i], mine.pos[k, i], mine.normal[k, i]))
        assert set(got) == set(expected), f"pose {k}"
        for pair, contacts in expected.items():
            a = sorted(contacts, key=lambda c: c[0])
            b = sorted(got[pair], key=lambda c: c[0])
            assert len(a) == len(b), f"pose {k} {pair}"
            for (da, pa, na), (db, pb, nb) in zip(a, b):
                np.testing.assert_allclose(db, da, atol=2e-4)
                np.testing.assert_allclose(pb, pa, atol=2e-4)
                np.testing.assert_allclose(nb, na, atol=2e-4)
        touching += len(expected)
    assert touching >= 20  # the poses really touch walls
