"""Drawing tasks and policies: ``gcrl-bench show`` (one PNG of a reset) and ``gcrl-bench render`` (an MP4 or
GIF of a trained policy), with MuJoCo's offscreen renderer and no display.

A task is drawable when it implements :class:`gcrl_bench.interface.RenderableTask`: ``render_model()`` (the
visual scene as a ``mujoco.MjModel``) and ``render_qpos(state)`` (the pose of one environment state in it).

OpenGL without a display
------------------------
MuJoCo renders through an OpenGL context; without a display that context comes from EGL (Mesa's
``libEGL_mesa`` renders on the CPU with llvmpipe, or on a GPU through its vendor's EGL) or from OSMesa
(pure software). The backend is chosen in this order:

1. ``MUJOCO_GL`` if the user set it (``egl``, ``osmesa`` or ``glfw``): only that one is tried.
2. otherwise ``egl``, then ``osmesa``.

:func:`choose_gl_backend` sets ``MUJOCO_GL`` (and so what ``mujoco.Renderer`` would use) before MuJoCo is
imported; the CLI calls it first thing. :class:`SceneRenderer` opens its context from the chosen backend's
module itself, rather than through ``mujoco.Renderer``, which fixes its backend once, at ``import mujoco``:
so drawing works in any process, whatever imported MuJoCo first (the test suite, a notebook). When no
backend works the error is one line saying what to install: on Debian/Ubuntu
``apt-get install libegl1 libgl1-mesa-dri`` (EGL) or ``libosmesa6`` (OSMesa, with ``MUJOCO_GL=osmesa``).

Camera
------
The default view (``overview``) is derived from the scene: the axis-aligned box around every visible geom
except the floor plane (over every frame of a video), looked at from azimuth 180 degrees, so that a
maze reads as its layout in docs/tasks.md (§2.8, §4.3, §10: layout rows downwards, columns to the
right). Flat scenes (mazes) are seen from 60 degrees above the horizon; tall ones (a standing body, an arm) from 25 degrees, across
the box's longer horizontal side, 35 degrees off square. The distance is the smallest at which the whole box fits the image. ``top`` looks straight down; any camera named in
the task's model can be used by name.

This module imports imageio and Pillow (only here); the training loop never imports it.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import importlib
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from gcrl_bench.errors import ConfigError, GcrlBenchError

GL_BACKENDS = ("egl", "osmesa")
"""Headless OpenGL backends tried, in order, when MUJOCO_GL is not set."""
INSTALL_HINT = ("install Mesa's EGL (Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri) or OSMesa "
                "(apt-get install libosmesa6, then set MUJOCO_GL=osmesa)")
VIEWS = ("overview", "top")
"""Cameras derived from the scene; a camera defined in the task's model can also be named."""
IMAGE_SUFFIXES = (".png",)
VIDEO_SUFFIXES = (".mp4", ".gif")
FLAT_SCENE_ELEVATION = -60.0
TALL_SCENE_ELEVATION = -25.0
OBLIQUE_AZIMUTH = 35.0
FRAME_MARGIN = 1.04
"""The framed box is enlarged by this factor so that nothing touches the image border."""


class RenderError(GcrlBenchError):
    """Drawing is impossible here (no OpenGL backend) or the task cannot be drawn."""


# --------------------------------------------------------------------------------------- GL backend


def _probe_egl() -> bool:
    """Whether an EGL context can be created, tried in a child process (a failed EGL start-up leaves
    PyOpenGL bound to EGL in the process that tried it, so the fallback must be decided beforehand)."""
    code = ("import os; os.environ['PYOPENGL_PLATFORM'] = 'egl'\n"
            "from mujoco.egl import GLContext\nc = GLContext(8, 8); c.make_current(); c.free()")
    env = {**os.environ, "MUJOCO_GL": "egl"}
    env.pop("PYOPENGL_PLATFORM", None)
    try:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _loadable(*names: str) -> bool:
    """Whether one of these shared libraries can be loaded (no subprocess, unlike ctypes.util.find_library)."""
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def choose_gl_backend() -> str | None:
    """Sets ``MUJOCO_GL`` for this process when the user has not, before MuJoCo is imported.

    EGL when its library is installed (and, where OSMesa is installed too, when an EGL context can
    actually be created), else OSMesa when its library is installed. Nothing is set when neither is
    installed: drawing then fails with :data:`INSTALL_HINT`.

    Returns:
      the backend MUJOCO_GL now names, or None.
    """
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"].lower()
    has_egl, has_osmesa = _loadable("libEGL.so.1", "libEGL.so"), _loadable("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so")
    if has_egl and (not has_osmesa or _probe_egl()):
        os.environ["MUJOCO_GL"] = "egl"
    elif has_osmesa:
        os.environ["MUJOCO_GL"] = "osmesa"
    return os.environ.get("MUJOCO_GL")


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def open_gl_context(width: int, height: int) -> tuple[str, Any]:
    """An OpenGL context of at least width x height pixels, made current.

    Returns:
      (backend name, MuJoCo GLContext); the caller frees it.
    Raises:
      RenderError: one line naming what each backend said and what to install.
    """
    requested = os.environ.get("MUJOCO_GL", "").lower().strip()
    order = (requested,) if requested in ("egl", "osmesa", "glfw") else GL_BACKENDS
    failures = []
    for backend in order:
        platform = os.environ.get("PYOPENGL_PLATFORM")
        try:
            context = importlib.import_module(f"mujoco.{backend}").GLContext(width, height)
            context.make_current()
            return backend, context
        except Exception as exc:  # a missing library or a driver that refuses: try the next backend
            failures.append(f"{backend}: {_one_line(exc)}")
            if platform is None:  # mujoco.egl / mujoco.osmesa bind PyOpenGL's platform when it is unset
                os.environ.pop("PYOPENGL_PLATFORM", None)
    raise RenderError(f"cannot render without a display: no OpenGL backend works ({'; '.join(failures)}); "
                      f"{INSTALL_HINT}")


def gl_available() -> tuple[bool, str]:
    """(True, backend) if an offscreen OpenGL context can be created here, else (False, why)."""
    try:
        backend, context = open_gl_context(16, 16)
    except RenderError as exc:
        return False, str(exc)
    context.free()
    return True, backend


# ------------------------------------------------------------------------------------------- camera


@dataclasses.dataclass(frozen=True)
class FreeCamera:
    """A MuJoCo free camera: it looks at ``lookat`` from ``distance`` metres away, from the direction
    given by ``azimuth`` (degrees, about +z from +x) and ``elevation`` (degrees, negative = from above)."""

    lookat: tuple[float, float, float]
    distance: float
    azimuth: float
    elevation: float


def scene_box(model, poses: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) corners, (3,) each, of the world box around every visible non-plane geom in every pose.

    Args:
      model: a mujoco.MjModel. poses: qpos vectors (model.nq,) to pose it in.
    """
    import mujoco

    data = mujoco.MjData(model)
    visible = [g for g in range(model.ngeom)
               if model.geom_type[g] != mujoco.mjtGeom.mjGEOM_PLANE and model.geom_rgba[g, 3] > 0
               and model.geom_group[g] < 3]
    if not visible:
        raise RenderError("the task's render model has no visible geom besides the floor; nothing to frame")
    centre_local, half_local = model.geom_aabb[visible, :3], model.geom_aabb[visible, 3:]
    low, high = np.full(3, np.inf), np.full(3, -np.inf)
    for qpos in poses:
        data.qpos[:] = qpos
        mujoco.mj_kinematics(model, data)
        rot = data.geom_xmat[visible].reshape(-1, 3, 3)
        centre = data.geom_xpos[visible] + np.einsum("gij,gj->gi", rot, centre_local)
        half = np.einsum("gij,gj->gi", np.abs(rot), half_local)
        low, high = np.minimum(low, (centre - half).min(0)), np.maximum(high, (centre + half).max(0))
    return low, high


def _axes(azimuth: float, elevation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(forward, right, up) unit vectors of a free camera."""
    a, e = math.radians(azimuth), math.radians(elevation)
    forward = np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    right = np.array([math.sin(a), -math.cos(a), 0.0])  # forward x z, normalised
    return forward, right, np.cross(right, forward)


def frame_box(low: np.ndarray, high: np.ndarray, width: int, height: int, fovy_deg: float,
              view: str = "overview") -> FreeCamera:
    """The free camera from which the box [low, high] fills a width x height image (perspective, vertical
    field of view fovy_deg), centred.

    A corner at offset p from the look-at point lies at depth ``d + p.f`` and must satisfy
    ``|p.r| <= tan(fovx/2) (d + p.f)`` and ``|p.u| <= tan(fovy/2) (d + p.f)``, so the distance d is the
    largest of ``|p.r| / tan(fovx/2) - p.f`` and ``|p.u| / tan(fovy/2) - p.f`` over the eight corners. The
    look-at point is then moved so that the projected box is centred, and d recomputed (three rounds).
    """
    if view not in VIEWS:
        raise ConfigError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}")
    size = (high - low) * FRAME_MARGIN
    centre = (low + high) / 2
    flat = size[2] < 0.3 * max(size[0], size[1])
    if view == "top":
        elevation = -89.9
    else:
        elevation = FLAT_SCENE_ELEVATION if flat else TALL_SCENE_ELEVATION
    # A flat scene (a maze) is seen from +x, so that it reads as its layout; a tall one obliquely (35 degrees
    # off) across its longer horizontal side, so that a body and a goal beside it are seen side by side
    # and a vertical arm does not hide what lies behind its base.
    azimuth = 180.0 if flat else (180.0 if size[1] >= size[0] else 90.0) - OBLIQUE_AZIMUTH
    forward, right, up = _axes(azimuth, elevation)
    tan_y = math.tan(math.radians(fovy_deg) / 2)
    tan_x = tan_y * width / height
    corners = centre + (np.array(np.meshgrid([-.5, .5], [-.5, .5], [-.5, .5])).reshape(3, -1).T * size)
    lookat = centre.copy()
    for _ in range(3):
        p = corners - lookat
        x, y, z = p @ right, p @ up, p @ forward
        distance = float(max(np.max(np.abs(x) / tan_x - z), np.max(np.abs(y) / tan_y - z), 1e-3))
        sx, sy = x / (z + distance), y / (z + distance)
        lookat = lookat + right * (sx.max() + sx.min()) / 2 * distance + up * (sy.max() + sy.min()) / 2 * distance
    return FreeCamera(lookat=tuple(float(v) for v in lookat), distance=distance, azimuth=azimuth,
                      elevation=elevation)


def camera_for(model, poses: Sequence[np.ndarray], width: int, height: int, camera: str):
    """The mujoco.MjvCamera for ``camera``: a derived view (:data:`VIEWS`) framing ``poses``, or a camera
    defined in the model, by name.

    Raises:
      ConfigError: an unknown camera name (the error lists the choices).
    """
    import mujoco

    cam = mujoco.MjvCamera()
    if camera in VIEWS:
        free = frame_box(*scene_box(model, poses), width, height, float(model.vis.global_.fovy), camera)
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = free.lookat
        cam.distance, cam.azimuth, cam.elevation = free.distance, free.azimuth, free.elevation
        return cam
    named = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
    if camera not in named:
        raise ConfigError(f"unknown camera {camera!r}; use one of {', '.join(list(VIEWS) + [n for n in named if n])}")
    cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
    cam.fixedcamid = named.index(camera)
    return cam


# ----------------------------------------------------------------------------------------- renderer


class SceneRenderer:
    """Offscreen renderer of one model: MuJoCo's visualiser (mjv) and renderer (mjr) on an offscreen
    framebuffer of width x height, in a context from :func:`open_gl_context`. Close it (or use it as a
    context manager): the OpenGL context is freed explicitly."""

    def __init__(self, model, width: int, height: int):
        import mujoco

        self.model, self.width, self.height = model, width, height
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        self.backend, self._gl = open_gl_context(width, height)
        self._context = None
        try:
            self._data = mujoco.MjData(model)
            self._scene = mujoco.MjvScene(model, maxgeom=max(1000, 2 * model.ngeom))
            self._option = mujoco.MjvOption()
            self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
            self._rect = mujoco.MjrRect(0, 0, width, height)
        except BaseException:
            self.close()
            raise

    def render(self, qpos: np.ndarray, camera) -> np.ndarray:
        """(height, width, 3) uint8 image of the model posed at qpos, seen from ``camera`` (an MjvCamera)."""
        import mujoco

        if self._context is None:
            raise RuntimeError("SceneRenderer.render after close()")
        self._gl.make_current()
        self._data.qpos[:] = qpos
        mujoco.mj_forward(self.model, self._data)
        mujoco.mjv_updateScene(self.model, self._data, self._option, None, camera, mujoco.mjtCatBit.mjCAT_ALL,
                               self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._context)
        pixels = np.empty((self.height, self.width, 3), np.uint8)
        mujoco.mjr_readPixels(pixels, None, self._rect, self._context)
        return np.flipud(pixels).copy()  # OpenGL's rows run bottom-up

    def close(self) -> None:
        if self._context is not None:
            self._gl.make_current()
            self._context.free()
            self._context = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None

    def __enter__(self) -> "SceneRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------- task and policy


def renderable(task, name: str):
    """The task if it implements RenderableTask, else a RenderError naming what is missing."""
    from gcrl_bench.interface import RenderableTask

    if not isinstance(task, RenderableTask):
        raise RenderError(f"task {name!r} cannot be drawn: it does not implement render_model() and "
                          "render_qpos(state) (gcrl_bench.interface.RenderableTask)")
    return task


def _check_size(width: int, height: int) -> None:
    for what, v in (("--width", width), ("--height", height)):
        if not isinstance(v, int) or not 16 <= v <= 4096:
            raise ConfigError(f"{what} {v!r} is out of range; use 16 to 4096 pixels, e.g. {what} 640")


def _check_output(output: Path, suffixes: Sequence[str]) -> None:
    if output.suffix.lower() not in suffixes:
        raise ConfigError(f"output {str(output)!r} has an unsupported extension; use one of {', '.join(suffixes)}")
    if not output.parent.exists() or not output.parent.is_dir():
        raise ConfigError(f"output folder {str(output.parent)!r} does not exist; create it first")


def _unbatched(tree, i: int):
    import jax

    return jax.tree.map(lambda x: x[i], tree)


def show(task_name: str, output: str | Path, seed: int = 0, width: int = 640, height: int = 480,
         camera: str = "overview", evaluation: bool = False) -> Path:
    """Draws the task from one reset (walls, body, goal marker) into a PNG.

    Args:
      seed: PRNG seed of the reset (start noise and goal). evaluation: draw the goal from the
        evaluation goal set.
    Returns:
      the PNG's path.
    """
    import jax

    from gcrl_bench import registry

    output = Path(output)
    _check_output(output, IMAGE_SUFFIXES)
    _check_size(width, height)
    task = renderable(registry.get_task(task_name), task_name)
    state = jax.jit(functools.partial(task.reset, evaluation=evaluation))(jax.random.PRNGKey(seed))
    qpos = task.render_qpos(jax.device_get(state))
    model = task.render_model()
    cam = camera_for(model, [qpos], width, height, camera)
    with SceneRenderer(model, width, height) as renderer:
        image = renderer.render(qpos, cam)
    _write_png(output, image)
    return output


def rollout(task, algorithm, algo_config, algo_state, key, num_episodes: int):
    """num_episodes evaluation episodes of the deterministic policy, in one batch (one compiled program):
    the evaluator's episodes (:func:`gcrl_bench.rollout.evaluate_policy`, the same keys), recorded.

    Returns:
      (states, alive, metrics): the environment states with leading axes (episode_length + 1,
      num_episodes), the reset first; alive (episode_length + 1, num_episodes) bool, False after the step
      on which an episode terminated (that step is still drawn, as in the evaluator's accounting); the
      evaluator's per-episode metrics (time_at_goal, success_any, success_at_end, final_distance), each
      (num_episodes,).
    """
    import jax

    from gcrl_bench.rollout import evaluate_policy

    @jax.jit
    def run(algo_state, key):
        policy = lambda obs, k: algorithm.act(algo_config, algo_state, obs, k, True)  # noqa: E731
        episode = evaluate_policy(task, policy, key, num_episodes, record=True)
        return episode.states, episode.alive, episode.metrics()

    states, alive, metrics = jax.device_get(run(algo_state, key))
    return states, np.asarray(alive), {k: np.asarray(v) for k, v in metrics.items()}


def render_policy(run_dir: str | Path, output: str | Path, episodes: int = 3, seed: int = 0,
                  fps: float | None = None, width: int = 640, height: int = 480, camera: str = "overview") -> dict:
    """Loads a complete run folder and writes a video of its deterministic policy: ``episodes`` evaluation
    episodes (fresh starts and goals from the evaluation goal set) one after another.

    Frames: each episode's reset and every step until the episode's end (time limit or termination).
    The camera is fixed for the whole video, framing everything that happens in it.

    Args:
      fps: frames per second; None plays in real time (1 / task.spec.env_step_seconds).
    Returns:
      {"path", "frames", "fps", "episodes", "steps": [frames per episode], "time_at_goal": [...]}.
    """
    import jax

    from gcrl_bench import rundirs

    output = Path(output)
    _check_output(output, VIDEO_SUFFIXES)
    _check_size(width, height)
    if not isinstance(episodes, int) or not 1 <= episodes <= 64:
        raise ConfigError(f"--episodes {episodes!r} is out of range; use 1 to 64")
    if fps is not None and not 0 < fps <= 240:
        raise ConfigError(f"--fps {fps!r} is out of range; use a value in (0, 240]")
    loaded = rundirs.load_run(run_dir)
    task = renderable(loaded.task, loaded.run.task)
    fps = float(fps) if fps is not None else 1.0 / task.spec.env_step_seconds
    states, alive, metrics = rollout(task, loaded.algorithm, loaded.algo_config, loaded.algo_state,
                                     jax.random.PRNGKey(seed), episodes)
    steps = [int(alive[:, e].sum()) for e in range(episodes)]
    poses = [[task.render_qpos(_unbatched(_unbatched(states, t), e)) for t in range(steps[e])]
             for e in range(episodes)]
    model = task.render_model()
    cam = camera_for(model, [q for episode in poses for q in episode], width, height, camera)

    def frames() -> Iterator[np.ndarray]:
        with SceneRenderer(model, width, height) as renderer:
            for episode in poses:
                for qpos in episode:
                    yield renderer.render(qpos, cam)

    count = _write_video(output, frames(), fps)
    return {"path": output, "frames": count, "fps": fps, "episodes": episodes, "steps": steps,
            "time_at_goal": [int(t) for t in metrics["time_at_goal"]]}


# ------------------------------------------------------------------------------------------ writers


def _write_png(path: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio

    tmp = path.with_name(f".{path.name}.tmp")
    iio.imwrite(tmp, image, extension=".png")
    os.replace(tmp, path)


def _write_video(path: Path, frames: Iterator[np.ndarray], fps: float) -> int:
    """Writes frames to an MP4 (H.264 through imageio-ffmpeg, streamed) or a GIF (Pillow, one shared
    palette); atomically (a temporary file renamed into place). Returns the number of frames."""
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    count = 0
    try:
        if path.suffix.lower() == ".mp4":
            import imageio.v2 as imageio

            with contextlib.closing(imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                                       macro_block_size=2, ffmpeg_log_level="error")) as writer:
                for frame in frames:
                    writer.append_data(frame)
                    count += 1
        else:
            from PIL import Image

            paletted, palette = [], None
            for frame in frames:
                image = Image.fromarray(frame)
                if palette is None:  # one palette for the whole clip: no flicker between frames
                    palette = image.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
                paletted.append(image.quantize(palette=palette, dither=Image.Dither.NONE))
            count = len(paletted)
            if count:
                paletted[0].save(tmp, format="GIF", save_all=True, append_images=paletted[1:],
                                 duration=max(20, round(1000 / fps)), loop=0)
        if count == 0:
            raise RenderError("no frame to write")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return count
