"""Example gcrl-bench plugin: the ``point_reach`` task and the ``hindsight_bc`` algorithm."""
