"""Shared test set-up: JAX's persistent compilation cache (compile time dominates the suite)."""

import os

import jax

_CACHE = os.environ.get("GCRL_BENCH_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "gcrl-bench", "jax"))
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
