"""Built-in tasks. Each module registers its tasks through the same API plugins use."""

from gcrl_bench.tasks import point_maze

point_maze.register_all()
