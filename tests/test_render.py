"""Drawing: `gcrl-bench show` writes a real picture of a task, `gcrl-bench render` a video of a trained policy
from a real (tiny) run folder, run folders load back exactly, and bad input gives one clear line."""

import json
import math

import imageio.v2 as imageio
import jax
import numpy as np
import pytest
from flax import serialization
from PIL import Image

from gcrl_bench import registry, render, rundirs
from cli_helpers import assert_one_line_error, run_cli
from gcrl_bench.config import LoopConfig
from gcrl_bench.errors import ResultsError, UnknownNameError
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.runner import execute
from gcrl_bench.runspec import RunSpec

GL_OK, GL_WHY = render.gl_available()
needs_gl = pytest.mark.skipif(not GL_OK, reason=f"no OpenGL backend for offscreen rendering here: {GL_WHY}")

GOAL_RGB = np.array([0.9, 0.1, 0.1]) * 255


def goal_pixels(image: np.ndarray) -> int:
    """Pixels of the goal marker's red (lit or shaded: red dominant, green and blue low)."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return int(np.sum((r > 90) & (g < 0.45 * r) & (b < 0.45 * r)))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A complete run folder: CRL (depth 4, width 16) on point_u_maze, one short epoch."""
    from gcrl_bench.algorithms.crl import CRLConfig

    loop = LoopConfig(total_env_steps=440, num_epochs=1, num_envs=4, unroll_length=10, batch_size=32,
                      updates_per_step=2, min_replay_rows=100, max_replay_rows=200, num_eval_envs=4)
    run = RunSpec(algo="crl", task="point_u_maze", seed=3, preset="test", loop=loop,
                  algo_config=CRLConfig(network=NetworkConfig(depth=4, width=16), repr_dim=8))
    out = tmp_path_factory.mktemp("results")
    execute(run, out)
    return run, out / "runs" / run.run_id


# ------------------------------------------------------------------------------------------------ show


@needs_gl
def test_show_writes_a_picture_of_the_task(capsys, tmp_path):
    path = tmp_path / "maze.png"
    code, out, err = run_cli(capsys, "show", "point_u_maze", "-o", str(path), "--width", "200", "--height", "150",
                             "--seed", "1")
    assert code == 0, err
    assert "wrote" in out
    image = imageio.imread(path)
    assert image.shape == (150, 200, 3)
    assert image.std() > 20  # not blank
    assert goal_pixels(image) > 30  # the goal marker is in view
    gold = (image[..., 0] > 150) & (image[..., 1] > 100) & (image[..., 2] < 0.5 * image[..., 0])
    assert gold.sum() > 10  # so is the point mass
    top = imageio.imread(tmp_path / "top.png") if run_cli(
        capsys, "show", "point_u_maze", "-o", str(tmp_path / "top.png"), "--width", "200", "--height", "150",
        "--seed", "1", "--camera", "top")[0] == 0 else None
    assert top is not None and not np.array_equal(top, image)


@pytest.mark.parametrize("name", ["point_u_maze", "ant_u4_maze"])
def test_render_qpos_puts_goal_marker_at_the_commanded_goal(name):
    import mujoco

    task = registry.get_task(name)
    state = jax.jit(lambda k: task.reset(k, True))(jax.random.PRNGKey(7))
    model = task.render_model()
    qpos = task.render_qpos(jax.device_get(state))
    assert qpos.shape == (model.nq,)
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_kinematics(model, data)
    red = [g for g in range(model.ngeom) if np.allclose(model.geom_rgba[g, :3] * 255, GOAL_RGB, atol=1)]
    assert len(red) == 1
    goal = np.asarray(state.obs)[task.spec.state_size:]
    np.testing.assert_allclose(data.geom_xpos[red[0], :2], goal, atol=1e-5)
    achieved = np.asarray(state.obs)[list(task.spec.goal_indices)]
    body = int(model.geom_bodyid[red[0]])
    others = [g for g in range(model.ngeom) if model.geom_bodyid[g] not in (0, body)]
    dist = np.linalg.norm(data.geom_xpos[others, :2] - achieved, axis=1).min()
    assert dist < 0.3  # the body is drawn where the observation says it is
    boxes = int(np.sum(model.geom_type == mujoco.mjtGeom.mjGEOM_BOX))
    assert boxes == len(task.walls)  # every wall cell is drawn


def test_frame_box_fits_the_box_and_fills_the_image():
    low, high = np.array([-2.0, -2.0, 0.0]), np.array([26.0, 18.0, 2.0])
    width, height, fovy = 320, 240, 45.0
    cam = render.frame_box(low, high, width, height, fovy)
    forward, right, up = render._axes(cam.azimuth, cam.elevation)
    eye = np.array(cam.lookat) - cam.distance * forward
    corners = np.array(np.meshgrid(*zip(low, high))).reshape(3, -1).T
    v = corners - eye
    depth = v @ forward
    tan_y = math.tan(math.radians(fovy) / 2)
    sx, sy = (v @ right) / depth / (tan_y * width / height), (v @ up) / depth / tan_y
    assert np.all(depth > 0)
    assert np.all(np.abs(sx) <= 1 + 1e-6) and np.all(np.abs(sy) <= 1 + 1e-6)  # every corner in view
    assert max(np.abs(sx).max(), np.abs(sy).max()) > 0.9  # and the box is not lost in the middle
    assert abs(sx.max() + sx.min()) < 0.05 and abs(sy.max() + sy.min()) < 0.05  # centred


def test_task_without_render_protocol_is_refused():
    class Bare:
        spec = registry.task_spec("point_u_maze")

        def reset(self, key, evaluation=False): ...

        def step(self, state, action): ...

    with pytest.raises(render.RenderError, match="cannot be drawn.*render_model"):
        render.renderable(Bare(), "bare")


@pytest.mark.parametrize(
    "argv,needles",
    [
        (["show", "point_u_maze", "-o", "{tmp}/x.jpg"], ["unsupported extension", ".png"]),
        (["show", "point_maze", "-o", "{tmp}/x.png"], ["unknown task 'point_maze'", "point_u_maze"]),
        (["show", "point_u_maze", "-o", "{tmp}/missing/x.png"], ["does not exist"]),
        (["show", "point_u_maze", "-o", "{tmp}/x.png", "--width", "0"], ["--width 0", "16 to 4096"]),
        (["render", "{tmp}/nowhere", "-o", "{tmp}/x.gif"], ["does not exist"]),
        (["render", "{tmp}", "-o", "{tmp}/x.gif"], ["not a gcrl-bench run folder"]),
        (["render", "{tmp}", "-o", "{tmp}/x.avi"], ["unsupported extension", ".mp4, .gif"]),
        (["render", "{tmp}", "-o", "{tmp}/x.gif", "--episodes", "0"], ["--episodes 0"]),
    ],
)
def test_bad_input_gives_one_clear_line(capsys, tmp_path, argv, needles):
    code, _, err = run_cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert_one_line_error(code, err, *needles)
    assert not list(tmp_path.glob("x.*"))


@needs_gl
def test_show_unknown_camera(capsys, tmp_path):
    code, _, err = run_cli(capsys, "show", "point_u_maze", "-o", str(tmp_path / "x.png"), "--camera", "side")
    assert_one_line_error(code, err, "unknown camera 'side'", "overview, top")


# ---------------------------------------------------------------------------------------------- runs


def test_load_run_restores_the_run_exactly(tiny_run):
    run, folder = tiny_run
    loaded = rundirs.load_run(folder)
    assert loaded.run.run_id == run.run_id == json.loads((folder / "config.json").read_text())["run_id"]
    assert loaded.algo_config == run.algo_config
    saved = serialization.msgpack_restore((folder / "params.msgpack").read_bytes())
    flat_saved = jax.tree.leaves(saved)
    flat_loaded = jax.tree.leaves(serialization.to_state_dict(loaded.algo_state))
    assert len(flat_saved) == len(flat_loaded) > 0
    for a, b in zip(flat_saved, flat_loaded):
        np.testing.assert_array_equal(a, b)


def test_load_run_rejects_incomplete_and_foreign_runs(tiny_run, tmp_path):
    _, folder = tiny_run
    config = json.loads((folder / "config.json").read_text())
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text(json.dumps(config))
    (partial / "checkpoints").mkdir()
    with pytest.raises(ResultsError, match="not finished"):
        rundirs.load_run(partial)
    for name in ("params.msgpack", "summary.json"):
        (partial / name).write_bytes((folder / name).read_bytes())
    (partial / "config.json").write_text(json.dumps({**config, "task": "ant_bigmaze"}))
    with pytest.raises(UnknownNameError, match="unknown task 'ant_bigmaze'"):
        rundirs.load_run(partial)
    wider = {**config["algo_config"], "network": {**config["algo_config"]["network"], "width": 32}}
    (partial / "config.json").write_text(json.dumps({**config, "algo_config": wider}))
    with pytest.raises(ResultsError, match="params.msgpack"):
        rundirs.load_run(partial)


@needs_gl
def test_render_writes_gif_and_mp4_of_the_policy(capsys, tiny_run, tmp_path):
    run, folder = tiny_run
    frames_per_episode = registry.task_spec(run.task).episode_length + 1  # the reset, then every step
    gif = tmp_path / "policy.gif"
    code, out, err = run_cli(capsys, "render", str(folder), "-o", str(gif), "--episodes", "2", "--width", "96",
                             "--height", "64", "--fps", "25")
    assert code == 0, err
    assert f"{2 * frames_per_episode} frames" in out
    with Image.open(gif) as im:  # Pillow merges identical consecutive frames, adding up their durations
        assert im.size == (96, 64)
        first = np.asarray(im.convert("RGB"))
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
        last = np.asarray(im.convert("RGB"))
    assert sum(durations) == 2 * frames_per_episode * 40  # 25 fps
    assert goal_pixels(first) > 0 and not np.array_equal(first, last)

    mp4 = tmp_path / "policy.mp4"
    code, out, err = run_cli(capsys, "render", str(folder), "-o", str(mp4), "--episodes", "1", "--width", "96",
                             "--height", "64")
    assert code == 0, err
    reader = imageio.get_reader(mp4, format="FFMPEG")
    try:
        assert reader.count_frames() == frames_per_episode
        frame = reader.get_data(0)
    finally:
        reader.close()
    assert frame.shape == (64, 96, 3) and frame.std() > 10
