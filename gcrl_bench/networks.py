"""The one deep network builder shared by every algorithm, and the tanh-Gaussian policy head.

Architecture (Wang et al. 2025, "1000 Layer Networks for Self-Supervised RL", §4.1 and Fig. 2)::

    input layer:      Dense(width) -> LayerNorm -> act
    depth/4 blocks:   h = x; 4 x [Dense(width) -> LayerNorm -> act]; out = x + h   (no activation after the add)
    output layer:     Dense(out_dim)

"Depth" counts only the Dense layers inside the residual blocks, so depth 4 has 1 + 4 hidden Dense layers
plus the output layer. The residual blocks are one ``nn.scan`` over parameters stacked along a leading
block axis, so the compiled program (and its compile time) is the same size at depth 4 and depth 1024.
Inside a block, backward passes recompute LayerNorm and the activation from the saved Dense outputs
(``nn.remat`` with a dots-saveable policy): a backward pass then keeps five (B, width) arrays per block
instead of 28, which matters at depth 1024, and no value changes.

Initialisation follows the paper's code: every kernel uniform in +-1/sqrt(fan_in) (variance scaling 1/3,
fan-in, uniform), biases zero, LayerNorm with a learned scale (ones) and bias (zeros).

Policy head (Haarnoja et al. 2018, SAC, Appendix C; log-std squashing of the paper's code)::

    mean, raw = split(ResidualMLP(config, 2 * |A|)(obs))
    log_std   = -5 + 3.5 * (tanh(raw) + 1)                 in [-5, 2]
    u ~ N(mean, exp(log_std)),  a = tanh(u)
    log pi(a) = sum_dims [log N(u; mean, std) - log(1 - a^2 + 1e-6)]

One Dense(2|A|) output split in two is the same function, with the same initial distribution, as the two
separate Dense(|A|) heads of the paper's code: each output column has its own weights and fan-in = width.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from gcrl_bench.errors import ConfigError

Array = jax.Array

Activation = Literal["swish", "relu", "tanh"]
_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {"swish": nn.swish, "relu": nn.relu, "tanh": jnp.tanh}

# Units per residual block: the paper's block is four Dense -> LayerNorm -> act units.
UNITS_PER_BLOCK = 4

# kernel ~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)): variance scaling with scale 1/3 gives limit sqrt(3 * 1/3 / fan_in).
KERNEL_INIT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
BIAS_INIT = nn.initializers.zeros


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Shape and switches of every network of every algorithm.

    Attributes:
      depth: number of Dense layers inside residual blocks (4 per block); a positive multiple of 4.
        Paper: 4, 8, 16, 32, 64 on all tasks, up to 1024 on humanoid_u_maze (Table 4).
      width: units of every hidden Dense layer (paper: 256 for actor and critic, train.py).
      residual: add each block's input to its output (the paper's skip connection). Off: plain stack.
      layer_norm: LayerNorm after every hidden Dense layer (paper: on).
      activation: nonlinearity after every hidden LayerNorm; "swish" is the paper's default (use_relu 0).
    """

    depth: int = 4
    width: int = 256
    residual: bool = True
    layer_norm: bool = True
    activation: Activation = "swish"

    def __post_init__(self):
        if not isinstance(self.depth, int) or isinstance(self.depth, bool):
            raise ConfigError(f"network depth {self.depth!r} must be an integer multiple of {UNITS_PER_BLOCK}; use for example 4")
        if self.depth <= 0 or self.depth % UNITS_PER_BLOCK:
            lower = UNITS_PER_BLOCK * (self.depth // UNITS_PER_BLOCK)
            fix = f"{lower} or {lower + UNITS_PER_BLOCK}" if lower >= UNITS_PER_BLOCK else str(UNITS_PER_BLOCK)
            raise ConfigError(
                f"network depth {self.depth} is not a positive multiple of {UNITS_PER_BLOCK} (depth counts the Dense "
                f"layers inside residual blocks of {UNITS_PER_BLOCK}); use {fix}"
            )
        if not isinstance(self.width, int) or isinstance(self.width, bool) or self.width < 1:
            raise ConfigError(f"network width {self.width!r} must be a positive integer; use for example 256")
        if self.activation not in _ACTIVATIONS:
            raise ConfigError(
                f"network activation {self.activation!r} is unknown; use one of {', '.join(sorted(_ACTIVATIONS))}"
            )

    @property
    def num_blocks(self) -> int:
        return self.depth // UNITS_PER_BLOCK


class _Unit(nn.Module):
    """Dense(width) -> [LayerNorm] -> act."""

    config: NetworkConfig

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = nn.Dense(self.config.width, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT)(x)
        if self.config.layer_norm:
            x = nn.LayerNorm()(x)
        return _ACTIVATIONS[self.config.activation](x)


class _ResidualBlock(nn.Module):
    """Four units; with ``residual`` the block input is added after the fourth (no activation after the add).

    Written as a scan body: ``(carry, unused) -> (carry, None)``.
    """

    config: NetworkConfig

    @nn.compact
    def __call__(self, x: Array, _unused: None) -> tuple[Array, None]:
        h = x
        for _ in range(UNITS_PER_BLOCK):
            h = _Unit(self.config)(h)
        return (x + h if self.config.residual else h), None


class ResidualMLP(nn.Module):
    """The paper's residual MLP: (..., in_dim) -> (..., out_dim).

    Parameters: ``input`` (one unit), ``blocks`` (every leaf stacked along a leading axis of length
    depth/4) and ``output`` (Dense).
    """

    config: NetworkConfig
    out_dim: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = _Unit(self.config, name="input")(x)
        # Backward passes keep only the Dense outputs of each block and recompute LayerNorm and the
        # activation from them: otherwise the scan stacks every elementwise intermediate of every block
        # (memory that grows with depth, and zero-filled buffers and copies on CPU). Same values.
        block = nn.remat(_ResidualBlock, policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
        blocks = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            length=self.config.num_blocks,
        )
        x, _ = blocks(self.config, name="blocks")(x, None)
        return nn.Dense(self.out_dim, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, name="output")(x)


def param_count(config: NetworkConfig, in_dim: int, out_dim: int) -> int:
    """Number of parameters of ``ResidualMLP(config, out_dim)`` on inputs of size ``in_dim``.

    Each hidden unit has a kernel and a bias, plus a LayerNorm scale and bias when ``layer_norm``::

        (in_dim + 1) w + depth (w + 1) w + (2 w) (depth + 1) [layer_norm] + (w + 1) out_dim
    """
    w = config.width
    hidden = (in_dim + 1) * w + config.depth * (w + 1) * w
    norm = 2 * w * (config.depth + 1) if config.layer_norm else 0
    return hidden + norm + (w + 1) * out_dim


def matmul_flops(config: NetworkConfig, in_dim: int, out_dim: int, batch: int) -> int:
    """Multiply-add FLOPs (2 per multiply-accumulate) of the Dense layers of one forward pass on a batch."""
    w = config.width
    return 2 * batch * (in_dim * w + config.depth * w * w + w * out_dim)


# ---------------------------------------------------------------------------------------------------------
# tanh-Gaussian policy head (pure functions; shapes (..., |A|) throughout)

LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0
# Added inside log(1 - a^2 + eps) so that |a| -> 1 stays finite (paper's code; SAC).
TANH_LOG_PROB_EPS = 1e-6
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def split_policy_output(out: Array) -> tuple[Array, Array]:
    """Splits a policy network output (..., 2|A|) into ``(mean, log_std)``, each (..., |A|).

    The second half is the raw log-std head, squashed by :func:`squash_log_std` into [-5, 2].
    """
    mean, raw_log_std = jnp.split(out, 2, axis=-1)
    return mean, squash_log_std(raw_log_std)


def squash_log_std(raw: Array) -> Array:
    """log_std = -5 + 3.5 (tanh(raw) + 1), which lies in [-5, 2]. Example: raw = 0 gives -1.5."""
    return LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(raw) + 1.0)


def gaussian_log_prob(u: Array, mean: Array, log_std: Array) -> Array:
    """Element-wise log N(u; mean, exp(log_std)), shape of ``u``."""
    z = (u - mean) * jnp.exp(-log_std)
    return -0.5 * jnp.square(z) - log_std - _HALF_LOG_2PI


def tanh_gaussian_log_prob(u: Array, mean: Array, log_std: Array) -> Array:
    """log pi(tanh(u)) by change of variables: sum over the last axis of log N(u) - log(1 - tanh(u)^2 + 1e-6).

    Args:
      u: (..., |A|) pre-tanh sample.
      mean, log_std: (..., |A|) Gaussian parameters.
    Returns:
      (...,) log-density of the squashed action a = tanh(u).
    """
    a = jnp.tanh(u)
    return jnp.sum(gaussian_log_prob(u, mean, log_std) - jnp.log(1.0 - jnp.square(a) + TANH_LOG_PROB_EPS), axis=-1)


def sample_tanh_gaussian(key: Array, mean: Array, log_std: Array) -> tuple[Array, Array]:
    """Samples a = tanh(u), u = mean + std * eps with eps ~ N(0, I) (reparameterised).

    Returns:
      ``(action, log_prob)``: (..., |A|) in [-1, 1] and (...,) from :func:`tanh_gaussian_log_prob`.
    """
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)


def deterministic_action(mean: Array) -> Array:
    """The evaluation action tanh(mean), (..., |A|) in [-1, 1]."""
    return jnp.tanh(mean)
