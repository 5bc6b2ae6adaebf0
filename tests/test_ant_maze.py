"""Ant maze tasks: layouts against docs/tasks.md §2.8, the task contract, parity with brax, walls that hold."""

import jax
import jax.numpy as jp
import mujoco
import numpy as np
import pytest
from brax import contact, kinematics
from brax.spring import pipeline as spring_pipeline

from gcrl_bench import registry
from gcrl_bench.tasks import ant_maze, maze_walls

N_ENVS = 4
N_STEPS = 100


@pytest.fixture(scope="module")
def big():
    return ant_maze.make_ant_maze("ant_big_maze")


@pytest.fixture(scope="module")
def rollout(big):
    """Jitted (N_ENVS, N_STEPS) rollout of the big maze: final state and per-step torso positions."""

    def one(state, actions):
        def body(s, a):
            s = big.step(s, a)
            return s, s.physics.x.pos[0]

        return jax.lax.scan(body, state, actions)

    return jax.jit(jax.vmap(one))


def _actions(key, n_envs=N_ENVS, n_steps=N_STEPS):
    return jax.random.uniform(key, (n_envs, n_steps, 8), minval=-1.0, maxval=1.0)


# ----------------------------------------------------------------------------------------- layouts


@pytest.mark.parametrize(
    "layout, start_xy, n_goals",
    [
        ("u4_maze", (8, 4), 10),
        ("u4_maze_eval", (8, 4), 4),
        ("u5_maze", (8, 4), 16),
        ("u5_maze_eval", (8, 4), 8),
        ("big_maze", (4, 4), 25),
        ("big_maze_eval", (4, 4), 9),
        ("hardest_maze", (4, 4), 45),
    ],
)
def test_layout_start_and_goal_counts(layout, start_xy, n_goals):
    grid = ant_maze.LAYOUTS[layout]
    assert ant_maze.cell_xy(ant_maze.start_cell(grid)) == start_xy
    assert len(ant_maze.goal_cells(grid)) == n_goals
    assert len({len(row) for row in grid}) == 1
    # closed by walls on the border
    assert set(grid[0]) == set(grid[-1]) == {"#"} and all(row[0] == row[-1] == "#" for row in grid)


@pytest.mark.parametrize(
    "layout, goals_xy",
    [
        ("u4_maze_eval", [(16, 4), (20, 4), (20, 8), (20, 12)]),
        ("u5_maze_eval", [(16, 4), (16, 24), (20, 4), (20, 8), (20, 12), (20, 16), (20, 20), (20, 24)]),
        ("big_maze_eval", [(4, 20), (4, 24), (8, 24), (20, 12), (20, 24), (24, 8), (24, 12), (24, 20), (24, 24)]),
    ],
)
def test_eval_goal_cells(layout, goals_xy):
    got = sorted(ant_maze.cell_xy(c) for c in ant_maze.goal_cells(ant_maze.LAYOUTS[layout]))
    assert got == sorted((float(x), float(y)) for x, y in goals_xy)
    train = ant_maze.LAYOUTS[layout.removesuffix("_eval")]
    assert ant_maze.cells(train, "#") == ant_maze.cells(ant_maze.LAYOUTS[layout], "#")
    assert set(ant_maze.goal_cells(ant_maze.LAYOUTS[layout])) <= set(ant_maze.goal_cells(train))


def test_layout_sizes():
    sizes = {name: (len(g), len(g[0])) for name, g in ant_maze.LAYOUTS.items()}
    assert sizes["u4_maze"] == (7, 5) and sizes["u5_maze"] == (7, 8)
    assert sizes["big_maze"] == (8, 8) and sizes["hardest_maze"] == (9, 12)
    assert len(ant_maze.cells(ant_maze.LAYOUTS["big_maze"], "#")) == 38


# ------------------------------------------------------------------------------------ spec, registry


def test_specs_and_register_all(monkeypatch):
    monkeypatch.setattr(registry, "_TASKS", {})
    ant_maze.register_all()
    names = {"ant_u4_maze", "ant_u5_maze", "ant_big_maze", "ant_hardest_maze"}
    assert set(registry._TASKS) == names
    for name in names:
        spec = registry._TASKS[name].spec
        assert (spec.state_size, spec.goal_size, spec.goal_indices, spec.action_size) == (29, 2, (0, 1), 8)
        assert (spec.success_threshold, spec.episode_length, spec.backend) == (0.5, 1000, "spring")
        assert spec.env_step_seconds == pytest.approx(0.05) and spec.benchmark
        assert spec.eval_goal_set == ("train" if name == "ant_hardest_maze" else "eval")


def test_model(big):
    sys = big.sys
    assert (sys.num_links(), sys.q_size(), sys.qd_size(), sys.act_size()) == (10, 17, 16, 8)
    assert float(sys.opt.timestep) == pytest.approx(0.005)
    np.testing.assert_allclose(sys.init_q, [4, 4, 0.55, 1, 0, 0, 0, 0, 1, 0, -1, 0, -1, 0, 1, 0, 0])
    with_walls = ant_maze.build_mj_model(big.start_xy, big.walls)
    assert with_walls.ngeom == big.mj_model.ngeom + 38
    wall = mujoco.mj_name2id(with_walls, mujoco.mjtObj.mjOBJ_GEOM, "wall_0_0")
    np.testing.assert_allclose(with_walls.geom_size[wall], [2.0, 2.0, 1.0])
    np.testing.assert_allclose(with_walls.geom_pos[wall], [0.0, 0.0, 1.0])
    assert (with_walls.geom_contype[wall], with_walls.geom_conaffinity[wall]) == (1, 1)
    assert with_walls.geom_friction[wall, 0] == 1.0  # the friction wall_contacts assumes
    for name in ("torso_geom", "aux_1_geom", "left_foot_geom"):
        assert big.mj_model.geom_conaffinity[mujoco.mj_name2id(big.mj_model, mujoco.mjtObj.mjOBJ_GEOM, name)] == 1


# ---------------------------------------------------------------------------------- reset and obs


def test_reset_obs_layout_and_determinism(big):
    reset = jax.jit(jax.vmap(big.reset, in_axes=(0, None)), static_argnums=1)
    keys = jax.random.split(jax.random.PRNGKey(0), 256)
    s = reset(keys, False)
    assert s.obs.shape == (256, 31) and s.terminated.shape == (256,)
    q, qd = s.physics.q, s.physics.qd
    np.testing.assert_array_equal(s.obs[:, :15], q[:, :15])
    np.testing.assert_array_equal(s.obs[:, 15:29], qd[:, :14])
    np.testing.assert_allclose(s.obs[:, 29:31], q[:, 15:17], atol=1e-5)  # target body xy = slide joints
    assert np.all(np.abs(s.obs[:, 0:2] - 4.0) <= 0.1 + 1e-6)  # R cell (1, 1) plus the U(-0.1, 0.1) noise
    goals = {tuple(g) for g in np.asarray(q[:, 15:17]).tolist()}
    assert goals <= {tuple(map(float, ant_maze.cell_xy(c))) for c in ant_maze.goal_cells(big.layout)}
    assert len(goals) > 15
    np.testing.assert_array_equal(qd[:, 15:17], 0.0)
    again = reset(keys, False)
    np.testing.assert_array_equal(again.obs, s.obs)
    eval_goals = {tuple(g) for g in np.asarray(reset(keys, True).physics.q[:, 15:17]).tolist()}
    assert eval_goals == {tuple(map(float, ant_maze.cell_xy(c))) for c in ant_maze.goal_cells(big.eval_layout)}


# ---------------------------------------------------------------------------------- contact parity


def _random_configs(task, n, key):
    """n (q, x) ant poses with the torso near walls of the big maze, random orientations and joints."""
    kp, ko, kj, kz = jax.random.split(key, 4)
    # torso centres within 0.6 m of the wall faces around the start cell (4, 4) and its corridor
    anchors = jp.array([[2.3, 4.0], [4.0, 2.3], [2.4, 2.4], [4.0, 9.6], [9.7, 6.2], [6.2, 9.7], [5.7, 9.5], [9.6, 5.9]])
    xy = anchors[jp.arange(n) % anchors.shape[0]] + jax.random.uniform(kp, (n, 2), minval=-0.35, maxval=0.35)
    quat = jax.random.normal(ko, (n, 4))
    quat = quat / jp.linalg.norm(quat, axis=1, keepdims=True)
    z = jax.random.uniform(kz, (n, 1), minval=0.2, maxval=1.0)
    joint = jax.random.uniform(kj, (n, 8), minval=-1.2, maxval=1.2)
    q = jp.concatenate([xy, z, quat, joint, jp.zeros((n, 2))], axis=1)
    return q


def test_wall_contacts_match_mjx(big):
    """Closed-form wall contacts equal mjx.collision's for the same (geom, wall) pairs on sample poses."""
    brax_maze = ant_maze.make_ant_maze("ant_big_maze", collision="brax")

    def name_of(model, g):
        return mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, int(g))

    qs = _random_configs(big, 24, jax.random.PRNGKey(3))

    @jax.jit
    @jax.vmap
    def both(q):
        x, _ = kinematics.forward(big.sys, q, jp.zeros(16))
        ref = contact.get(brax_maze.sys, x)
        mine = ant_maze.wall_contacts(big.sys, big._geoms, big.wall_grid, x)
        cells = maze_walls.nearby_cells(x.pos[0, :2], ant_maze.CELL_SIZE)
        return ref, mine, cells

    ref, mine, near = jax.device_get(both(qs))
    n_per_box = mine.dist.shape[1] // 4
    geoms = np.concatenate([big._geoms.spheres, np.repeat(big._geoms.capsules, 2)])
    touching = 0
    for k in range(qs.shape[0]):
        expected = {}
        for i in range(ref.dist.shape[1]):
            g1, g2 = name_of(brax_maze.mj_model, ref.geom1[k, i]), name_of(brax_maze.mj_model, ref.geom2[k, i])
            if g2.startswith("wall_") and ref.dist[k, i] < 0:
                expected.setdefault((g1, g2), []).append((ref.dist[k, i], ref.pos[k, i], ref.frame[k, i, 0]))
        got = {}
        for i in range(mine.dist.shape[1]):
            if mine.dist[k, i] < 0:
                cell = near[k, i // n_per_box]
                key = (name_of(big.mj_model, geoms[i % n_per_box]), f"wall_{cell[0]}_{cell[1]}")
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
    assert touching >= 10  # the poses really touch walls


# ------------------------------------------------------------------------------------ step parity


def test_step_equals_brax_away_from_walls(big, rollout):
    """With no wall touched, the maze step equals brax.spring.pipeline.step on the same system."""

    def one(state, actions):
        def body(s, a):
            p, _ = jax.lax.scan(lambda p, _: (spring_pipeline.step(big.sys, p, a), None), s.physics, None,
                                length=ant_maze.N_FRAMES)
            s = s.replace(physics=p)
            return s, p.x.pos[0]

        return jax.lax.scan(body, state, actions)

    reference = jax.jit(jax.vmap(one))
    states = jax.vmap(big.reset)(jax.random.split(jax.random.PRNGKey(1), N_ENVS))
    actions = 0.3 * _actions(jax.random.PRNGKey(2))
    ours, torso = rollout(states, actions)
    theirs, torso_ref = reference(states, actions)
    # stays in the start cell, > 1.3 m from any wall face, so no wall contact was possible
    assert np.all(np.abs(np.asarray(torso_ref)[..., :2] - 4.0) < 0.7)
    np.testing.assert_allclose(torso, torso_ref, atol=1e-5)
    np.testing.assert_allclose(ours.physics.q, theirs.physics.q, atol=1e-5)
    np.testing.assert_allclose(ours.physics.qd, theirs.physics.qd, atol=1e-4)


# ------------------------------------------------------------------------------- walls hold, stable


def test_ant_thrown_at_walls_stays_outside(big, rollout):
    """Torso launched at 8 m/s into the walls around the start cell: it stops at the wall face."""
    directions = jp.array([[-1.0, 0.0], [0.0, -1.0], [-0.7071, -0.7071], [0.0, 1.0]])
    states = jax.vmap(big.reset)(jax.random.split(jax.random.PRNGKey(4), N_ENVS))
    start = jp.array([[4.0, 4.0], [4.0, 4.0], [4.0, 4.0], [4.0, 7.5]])
    q = states.physics.q.at[:, 0:2].set(start)
    qd = jp.zeros_like(states.physics.qd).at[:, 0:2].set(8.0 * directions)
    physics = jax.vmap(lambda q, qd: spring_pipeline.init(big.sys, q, qd))(q, qd)
    states = states.replace(physics=physics)
    _, torso = rollout(states, jp.zeros((N_ENVS, N_STEPS, 8)))
    torso = np.asarray(torso)
    radius = 0.25
    # wall faces: x = 2 (row 0), y = 2 (column 0), y = 10 (cell (1, 3))
    assert torso[0, :, 0].min() > 2.0 + radius - 0.05
    assert torso[1, :, 1].min() > 2.0 + radius - 0.05
    assert torso[2, :, :2].min() > 2.0 + radius - 0.05
    assert torso[3, :, 1].max() < 10.0 - radius + 0.05
    # and they did reach the walls
    assert torso[0, :, 0].min() < 2.0 + radius + 0.1 and torso[3, :, 1].max() > 10.0 - radius - 0.1


def test_random_actions_no_nan(big, rollout):
    states = jax.vmap(big.reset)(jax.random.split(jax.random.PRNGKey(5), N_ENVS))
    for k in range(3):
        states, torso = rollout(states, _actions(jax.random.PRNGKey(10 + k)))
        assert np.all(np.isfinite(np.asarray(states.obs))) and np.all(np.isfinite(np.asarray(torso)))
    assert states.obs.shape == (N_ENVS, 31) and set(np.asarray(states.terminated).tolist()) <= {0.0, 1.0}


def test_terminated_on_torso_height(big):
    state = big.reset(jax.random.PRNGKey(0))
    assert float(ant_maze.terminated(state.physics)) == 0.0
    for z, expected in ((0.19, 1.0), (1.01, 1.0), (0.5, 0.0)):
        physics = state.physics.replace(q=state.physics.q.at[2].set(z))
        assert float(ant_maze.terminated(physics)) == expected


# ---------------------------------------------------------------------------- closed-form contacts


def test_sphere_box_contact_by_hand():
    half = jp.array([2.0, 2.0, 1.0])
    box = jp.array([0.0, 0.0, 1.0])
    # sphere of radius 0.25 with centre 0.2 m outside the +x face: 0.05 m deep, normal -x... towards box
    dist, pos, normal = maze_walls.sphere_box_contact(jp.array([2.2, 0.0, 0.5]), 0.25, box, half)
    np.testing.assert_allclose(dist, -0.05, atol=1e-6)
    np.testing.assert_allclose(normal, [-1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(pos, [(2.0 + 1.95) / 2, 0.0, 0.5], atol=1e-6)
    # near a vertical edge: distance from the edge (2, 2) is sqrt(0.1^2 + 0.1^2)
    dist, _, normal = maze_walls.sphere_box_contact(jp.array([2.1, 2.1, 0.5]), 0.25, box, half)
    np.testing.assert_allclose(dist, np.sqrt(0.02) - 0.25, atol=1e-6)
    np.testing.assert_allclose(normal, [-np.sqrt(0.5), -np.sqrt(0.5), 0.0], atol=1e-6)
    # far away: no contact
    dist, _, _ = maze_walls.sphere_box_contact(jp.array([3.0, 0.0, 0.5]), 0.25, box, half)
    assert dist > 0


def test_capsule_box_face_contact_by_hand():
    half = jp.array([2.0, 2.0, 1.0])
    box = jp.array([0.0, 0.0, 1.0])
    # capsule along y, radius 0.08, axis 0.05 m outside the +x face, half of it beyond the y = 2 edge
    dist, pos, normal = maze_walls.capsule_box_contacts(
        jp.array([2.05, 2.0, 0.5]), jp.array([0.0, 1.0, 0.0]), 0.5, 0.08, box, half
    )
    np.testing.assert_allclose(np.sort(dist), [-0.03, -0.03], atol=1e-6)
    np.testing.assert_allclose(normal, [[-1.0, 0.0, 0.0]] * 2, atol=1e-6)
    np.testing.assert_allclose(np.sort(pos[:, 1]), [1.5, 2.0], atol=1e-6)  # clipped to the face


def test_nearby_cells_cover_reach():
    rng = np.random.default_rng(0)
    for xy in rng.uniform(-10, 30, size=(200, 2)):
        near = {tuple(c) for c in np.asarray(maze_walls.nearby_cells(jp.asarray(xy), 4.0)).tolist()}
        for offset in rng.uniform(-1.99, 1.99, size=(20, 2)):
            p = xy + offset * (1.99 / max(1.99, np.linalg.norm(offset)))
            assert tuple(np.round(p / 4.0).astype(int).tolist()) in near
