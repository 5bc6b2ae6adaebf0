"""Built-in tasks. Each module registers its tasks through the same API plugins use."""

import contextlib
import io

with contextlib.redirect_stdout(io.StringIO()):
    # MJX prints a notice on stdout when its optional GPU back-end (warp) is absent; it is not used here.
    import mujoco.mjx  # noqa: F401

from gcrl_bench.tasks import ant_maze, point_maze  # noqa: E402

ant_maze.register_all()
point_maze.register_all()
