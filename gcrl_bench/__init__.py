"""gcrl-bench: a benchmark harness for online goal-conditioned RL in JAX."""

__version__ = "0.1.0"
