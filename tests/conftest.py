"""Shared test set-up: JAX's persistent compilation cache (compile time dominates the suite)."""

import os

import jax

_CACHE = os.environ.get("GCRL_BENCH_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "gcrl-bench", "jax"))
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# The fast tier (`pytest -m fast`): hand-computed unit tests and the contract tests, a few minutes on two
# cores. Whole modules are listed here (one place) rather than marked one by one; slow and benchmark tests
# in them stay out of the tier.
FAST_MODULES = frozenset({
    "test_buffer", "test_common", "test_config", "test_contracts", "test_crl", "test_crl_variants",
    "test_networks", "test_overrides", "test_planner", "test_relabel", "test_rollout", "test_sharding",
    "test_xla_setup", "test_point_maze", "test_depth_control",
})


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        if item.module.__name__.rpartition(".")[2] in FAST_MODULES and not any(
            item.get_closest_marker(name) for name in ("slow", "benchmark")
        ):
            item.add_marker(pytest.mark.fast)
