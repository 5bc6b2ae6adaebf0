"""Built-in tasks. Each module registers its tasks through the same API plugins use."""

import contextlib
import io
import warnings

# brax's loader warns on every model load that its pipelines are in maintenance mode; the spring pipeline
# is what the reference used and what these tasks are built on, so the notice is noise here.
warnings.filterwarnings("ignore", message="Brax System, piplines and environments", category=UserWarning)

with contextlib.redirect_stdout(io.StringIO()):
    # MJX prints a notice on stdout when its optional GPU back-end (warp) is absent; it is not used here.
    import mujoco.mjx  # noqa: F401

from gcrl_bench.tasks import ant_maze, arm, humanoid, point_maze, point_momentum  # noqa: E402

ant_maze.register_all()
humanoid.register_all()
arm.register_all()
point_maze.register_all()
point_momentum.register_all()
