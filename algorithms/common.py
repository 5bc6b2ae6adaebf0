"""Pieces shared by the built-in algorithms: the tanh-Gaussian actor, one Adam step, SAC's actor and
temperature losses, and the check of a config's relabelling.

The tanh-Gaussian actor (CRL, SAC, GCSL, GCBC) is one :class:`gcrl_bench.networks.ResidualMLP` on the
observation ``[state, goal]`` with 2 |A| outputs, read as a mean and a raw log-std by
:func:`gcrl_bench.networks.split_policy_output` (log-std squashed into [-5, 2]). Actions are
a = tanh(u), u ~ N(mean, exp(log_std)) when collecting and tanh(mean) when evaluating; the density of a is
the change of variables of Haarnoja et al. 2018 (SAC, Appendix C), in
:func:`gcrl_bench.networks.tanh_gaussian_log_prob`.

Every function here is pure. Shapes: B = batch size, |A| = action size.
"""

from __future__ import annotations

from typing import Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import RelabelConfig, TaskSpec
from gcrl_bench.networks import (
    NetworkConfig,
    ResidualMLP,
    deterministic_action,
    sample_tanh_gaussian,
    split_policy_output,
    tanh_gaussian_log_prob,
)

Array = jax.Array
Params = dict

# Taken actions are clipped this far inside (-1, 1) before atanh (the GCSL code of the paper's authors,
# train_GCSL.py: 1e-6), so that an action saturated at +-1 has a finite pre-image (atanh(1 - 1e-6) = 7.25).
ACTION_CLIP_EPS = 1e-6


# ---------------------------------------------------------------------------------------------------------
# Relabelling


def check_relabel(owner: str, relabel: object, allowed: Iterable[str]) -> None:
    """Checks an algorithm config's ``relabel`` field: a :class:`RelabelConfig` whose strategy the algorithm
    accepts (the RelabelConfig itself has already checked gamma and fraction).

    Args:
      owner: the config's name in the message, e.g. ``"crl"``.
      relabel: the field's value.
      allowed: the strategies the algorithm accepts, e.g. ``("none", "final", "future")``.
    Raises:
      ConfigError: not a RelabelConfig, or a strategy outside ``allowed``.
    """
    allowed = tuple(allowed)
    if not isinstance(relabel, RelabelConfig):
        raise ConfigError(f"{owner} relabel must be a gcrl_bench.interface.RelabelConfig, got {type(relabel).__name__}")
    if relabel.strategy not in allowed:
        raise ConfigError(f"{owner} relabel.strategy {relabel.strategy!r} is not accepted by {owner}; "
                          f"use one of {', '.join(allowed)}")


# ---------------------------------------------------------------------------------------------------------
# The tanh-Gaussian actor


def actor_network(network: NetworkConfig, action_size: int) -> nn.Module:
    """The actor: ``[state, goal]`` (B, observation_size) -> mean and raw log-std (B, 2 |A|)."""
    return ResidualMLP(network, 2 * action_size)


def init_actor(network: NetworkConfig, spec: TaskSpec, key: Array) -> Params:
    """Fresh actor parameters for ``spec``, drawn from ``key`` alone (one ``init`` call on a (1,
    observation_size) input)."""
    return actor_network(network, spec.action_size).init(key, jnp.zeros((1, spec.observation_size)))


def policy(network: NetworkConfig, action_size: int, actor_params: Params, obs: Array) -> tuple[Array, Array]:
    """``(mean, log_std)`` of pi(. | obs), each (B, |A|), log_std in [-5, 2], for observations
    (B, observation_size)."""
    return split_policy_output(actor_network(network, action_size).apply(actor_params, obs))


def act(network: NetworkConfig, action_size: int, actor_params: Params, obs: Array, key: Array,
        deterministic: bool) -> Array:
    """Actions (B, |A|) in [-1, 1]: tanh(mean + std * N(0, I)) drawn with ``key`` (collection), or
    tanh(mean) (evaluation; ``key`` unused)."""
    mean, log_std = policy(network, action_size, actor_params, obs)
    if deterministic:
        return deterministic_action(mean)
    action, _ = sample_tanh_gaussian(key, mean, log_std)
    return action


def taken_action_log_prob(action: Array, mean: Array, log_std: Array) -> Array:
    """log pi(a | s, g) of given actions a (B, |A|), e.g. those taken in the environment, under the
    tanh-Gaussian (mean, log_std) (B, |A|). Returns (B,).

    Change of variables (Haarnoja et al. 2018, Appendix C) at u = atanh(clip(a, -1 + 1e-6, 1 - 1e-6)):
    sum_dims [log N(u; mean, std) - log(1 - tanh(u)^2 + 1e-6)].
    Example (one dimension): a = 0, mean = 0, log_std = 0: log N(0; 0, 1) - log(1 + 1e-6) = -0.918939.
    """
    clipped = jnp.clip(action, -1.0 + ACTION_CLIP_EPS, 1.0 - ACTION_CLIP_EPS)
    return tanh_gaussian_log_prob(jnp.arctanh(clipped), mean, log_std)


# ---------------------------------------------------------------------------------------------------------
# Optimiser


def adam_init(lr: float, params: Params) -> optax.OptState:
    """The Adam state (step count, first and second moments at zero) of ``params``."""
    return optax.adam(lr).init(params)


def adam_step(lr: float, grads: Params, opt_state: optax.OptState, params: Params) -> tuple[Params, optax.OptState]:
    """One Adam step (Kingma and Ba 2015, Algorithm 1; optax defaults b1 = 0.9, b2 = 0.999, eps = 1e-8) at
    learning rate ``lr``: ``(params - lr * m_hat / (sqrt(v_hat) + eps), new optimiser state)``.

    ``grads`` and ``params`` are pytrees of the same structure; ``opt_state`` comes from :func:`adam_init`
    or a previous step. Example: the first step from a zero state moves each parameter by
    -lr * g / (|g| + eps), i.e. by -lr * sign(g) for |g| >> eps.
    """
    updates, opt_state = optax.adam(lr).update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state


# ---------------------------------------------------------------------------------------------------------
# SAC's actor and temperature losses (used by CRL, SAC and GCBC)


def target_entropy(entropy_param: float, action_size: int) -> float:
    """The entropy target -entropy_param * |A| of the temperature loss (brax's SAC and the paper's code:
    entropy_param 0.5, so -4 for the ant's 8 action dimensions)."""
    return -entropy_param * action_size


def actor_loss(log_prob: Array, q: Array, alpha: Array) -> Array:
    """SAC-style actor loss (Haarnoja et al. 2018b, Eq. 7; CRL's actor in Wang et al. 2025, §3):
    mean(alpha * log pi(a~ | s, g) - Q(s, a~, g)).

    Args:
      log_prob: (B,) log-density of fresh reparameterised actions a~ ~ pi(. | s_i, g_i).
      q: (B,) critic score of (s_i, a~_i, g_i), with the critic parameters held fixed.
      alpha: () entropy temperature, held fixed.
    Example: log_prob = [1, 3], q = [-1, -2], alpha = 0.5: mean(0.5 + 1, 1.5 + 2) = 2.5.
    """
    return jnp.mean(alpha * log_prob - q)


def alpha_loss(log_alpha: Array, log_prob: Array, target_entropy: float) -> Array:
    """Temperature loss (Haarnoja et al. 2018b, Eq. 18): alpha * mean(stop_grad(-log pi - target_entropy)).

    Args:
      log_alpha: () log of the temperature, the variable it is differentiated with respect to.
      log_prob: (B,) log pi of fresh samples (no gradient flows into it).
      target_entropy: the entropy target, e.g. :func:`target_entropy`.
    alpha grows while the policy's entropy -log pi is below the target and shrinks while it is above.
    Example: log_alpha = 0, log_prob = [1, -3], target -2: 1 * mean(-1 + 2, 3 + 2) = 3.
    """
    return jnp.exp(log_alpha) * jnp.mean(jax.lax.stop_gradient(-log_prob - target_entropy))
