"""The shared residual MLP: shape, parameter count, switches, initialisation, validation, compile time."""

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcrl_bench.errors import ConfigError
from gcrl_bench.networks import NetworkConfig, ResidualMLP, param_count

IN_DIM, OUT_DIM = 37, 64


def _init(config, in_dim=IN_DIM, out_dim=OUT_DIM, seed=0):
    module = ResidualMLP(config, out_dim)
    return module, module.init(jax.random.PRNGKey(seed), jnp.zeros((1, in_dim)))


def _count(params):
    return sum(leaf.size for leaf in jax.tree.leaves(params))


@pytest.mark.parametrize(
    "config",
    [
        NetworkConfig(depth=4, width=256),
        NetworkConfig(depth=8, width=64),
        NetworkConfig(depth=64, width=32),
        NetworkConfig(depth=8, width=16, layer_norm=False),
        NetworkConfig(depth=8, width=16, residual=False, activation="relu"),
    ],
    ids=["d4w256", "d8w64", "d64w32", "no_layer_norm", "no_residual"],
)
def test_param_count_matches_formula(config):
    module = ResidualMLP(config, OUT_DIM)
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, IN_DIM)))
    assert _count(shapes) == param_count(config, IN_DIM, OUT_DIM)


def test_param_count_by_hand():
    # depth 4, width 2, in 3, out 1: input (3*2 + 2) + LN 4; four units (2*2 + 2 + LN 4) = 40; output 2 + 1.
    assert param_count(NetworkConfig(depth=4, width=2), 3, 1) == 8 + 4 + 40 + 3
    assert param_count(NetworkConfig(depth=4, width=2, layer_norm=False), 3, 1) == 8 + 24 + 3


def test_blocks_are_stacked_along_one_axis():
    module = ResidualMLP(NetworkConfig(depth=12, width=8), OUT_DIM)
    params = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, IN_DIM)))
    kernel = params["params"]["blocks"]["_Unit_0"]["Dense_0"]["kernel"]
    assert kernel.shape == (3, 8, 8)


@pytest.mark.parametrize("depth, fix", [(6, "use 4 or 8"), (0, "use 4"), (-4, "use 4"), (18, "use 16 or 20")])
def test_bad_depth_is_a_config_error_naming_the_value_and_a_fix(depth, fix):
    with pytest.raises(ConfigError) as error:
        NetworkConfig(depth=depth)
    message = str(error.value)
    assert f"depth {depth} " in message and "multiple of 4" in message and fix in message
    assert "\n" not in message


@pytest.mark.parametrize("field, value", [("width", 0), ("width", -3), ("depth", 8.0), ("activation", "gelu")])
def test_other_bad_values_are_config_errors(field, value):
    with pytest.raises(ConfigError, match=repr(value)):
        NetworkConfig(**{field: value})


def test_initialisation_uniform_fan_in_and_zero_biases():
    config = NetworkConfig(depth=8, width=64)
    _, params = _init(config)
    p = params["params"]
    kernels = {
        "input": (p["input"]["Dense_0"]["kernel"], IN_DIM),
        "block": (p["blocks"]["_Unit_2"]["Dense_0"]["kernel"], 64),
        "output": (p["output"]["kernel"], 64),
    }
    for name, (kernel, fan_in) in kernels.items():
        limit = 1.0 / math.sqrt(fan_in)
        k = np.asarray(kernel)
        assert np.abs(k).max() <= limit, name
        # a uniform on [-l, l] has std l / sqrt(3); thousands of draws land well within 10%
        assert abs(k.std() - limit / math.sqrt(3)) < 0.1 * limit / math.sqrt(3), name
    for leaf_path, leaf in jax.tree_util.tree_leaves_with_path(params):
        name = jax.tree_util.keystr(leaf_path)
        if "bias" in name:
            assert np.all(np.asarray(leaf) == 0), name
        if "scale" in name:
            assert np.all(np.asarray(leaf) == 1), name
    # blocks get independent draws
    stacked = np.asarray(p["blocks"]["_Unit_0"]["Dense_0"]["kernel"])
    assert not np.allclose(stacked[0], stacked[1])


def _numpy_forward(params, x, config):
    """Slow reference: the architecture written out layer by layer."""
    act = {"swish": lambda v: v / (1 + np.exp(-v)), "relu": lambda v: np.maximum(v, 0), "tanh": np.tanh}[
        config.activation
    ]

    def unit(p, h):
        h = h @ np.asarray(p["Dense_0"]["kernel"]) + np.asarray(p["Dense_0"]["bias"])
        if config.layer_norm:
            mu = h.mean(-1, keepdims=True)
            var = h.var(-1, keepdims=True)
            h = (h - mu) / np.sqrt(var + 1e-6) * np.asarray(p["LayerNorm_0"]["scale"]) + np.asarray(
                p["LayerNorm_0"]["bias"]
            )
        return act(h)

    p = params["params"]
    h = unit(p["input"], np.asarray(x, np.float64))
    for b in range(config.num_blocks):
        block_in = h
        for u in range(4):
            unit_params = jax.tree.map(lambda leaf: np.asarray(leaf)[b], p["blocks"][f"_Unit_{u}"])
            h = unit(unit_params, h)
        if config.residual:
            h = h + block_in
    return h @ np.asarray(p["output"]["kernel"]) + np.asarray(p["output"]["bias"])


@pytest.mark.parametrize(
    "config",
    [
        NetworkConfig(depth=8, width=16),
        NetworkConfig(depth=8, width=16, residual=False),
        NetworkConfig(depth=4, width=16, layer_norm=False, activation="tanh"),
        NetworkConfig(depth=4, width=16, activation="relu"),
    ],
    ids=["paper", "no_residual", "no_layer_norm_tanh", "relu"],
)
def test_forward_matches_numpy_reference(config):
    module, params = _init(config, in_dim=5, out_dim=3)
    x = jax.random.normal(jax.random.PRNGKey(1), (7, 5))
    np.testing.assert_allclose(np.asarray(module.apply(params, x)), _numpy_forward(params, x, config), atol=2e-5)


def test_residual_switch_changes_the_output():
    with_skip = NetworkConfig(depth=8, width=16, residual=True)
    without = NetworkConfig(depth=8, width=16, residual=False)
    module, params = _init(with_skip)  # same parameter tree for both: reuse the parameters
    x = jax.random.normal(jax.random.PRNGKey(1), (4, IN_DIM))
    y_skip = module.apply(params, x)
    y_plain = ResidualMLP(without, OUT_DIM).apply(params, x)
    assert y_skip.shape == y_plain.shape == (4, OUT_DIM)
    assert float(jnp.max(jnp.abs(y_skip - y_plain))) > 1e-3


def test_gradients_are_finite_and_reach_every_block():
    config = NetworkConfig(depth=16, width=16)
    module, params = _init(config)
    x = jax.random.normal(jax.random.PRNGKey(1), (8, IN_DIM))
    grads = jax.jit(jax.grad(lambda p: jnp.sum(module.apply(p, x) ** 2)))(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    first_kernel = grads["params"]["blocks"]["_Unit_0"]["Dense_0"]["kernel"]
    assert bool(jnp.all(jnp.abs(first_kernel).reshape(config.num_blocks, -1).max(axis=1) > 0))


def _compile_seconds(depth: int) -> float:
    config = NetworkConfig(depth=depth, width=32)
    module = ResidualMLP(config, OUT_DIM)
    x = jax.ShapeDtypeStruct((64, IN_DIM), jnp.float32)
    params = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)

    def loss(p, x):
        return jnp.mean(module.apply(p, x) ** 2)

    start = time.perf_counter()
    jax.jit(jax.value_and_grad(loss)).lower(params, x).compile()
    return time.perf_counter() - start


def test_compile_time_does_not_grow_with_depth():
    # The persistent compilation cache of conftest would hide compile times: switch it off here.
    previous = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        _compile_seconds(8)  # warm up tracing/lowering machinery
        shallow = _compile_seconds(4)
        deep = _compile_seconds(1024)
        print(f"compile (value_and_grad, width 32): depth 4 {shallow:.2f} s, depth 1024 {deep:.2f} s")
    finally:
        jax.config.update("jax_enable_compilation_cache", previous)
    assert deep < 3 * shallow + 2.0, f"compile {deep:.2f}s at depth 1024 vs {shallow:.2f}s at depth 4"
