"""Contrastive RL (CRL) as trained in Wang et al. 2025, "1000 Layer Networks for Self-Supervised RL".

CRL (Eysenbach et al. 2022) learns a goal-conditioned critic without rewards: a state-action encoder
phi(s, a) and a goal encoder psi(g), both residual MLPs to ``repr_dim``, score a pair by the L2 energy
-||phi(s, a) - psi(g)||. The critic is trained by forward InfoNCE over a batch of hindsight-relabelled
(s, a, g) tuples, the goal of every other tuple serving as a negative. The actor is a tanh-Gaussian policy
pi(a | s, g) trained like SAC's actor against that score, with a learned entropy temperature alpha (the
actor, its losses and the Adam step are :mod:`gcrl_bench.algorithms.common`).

Networks (paper §4.1, Fig. 2; all built by :class:`gcrl_bench.networks.ResidualMLP` with ``config.network``):

- actor:      [state, goal] (observation_size)      -> mean, raw log-std (2 x |A|)
- phi(s, a):  [state, action] (state_size + |A|)     -> repr_dim
- psi(g):     goal (goal_size)                       -> repr_dim

One gradient step (:func:`update`) follows the paper's order: the actor and alpha are updated with the
pre-update critic, then the critic, all on the same batch. Since neither actor step changes the critic, the
goal embeddings psi(g) of the pre-update critic are computed once and used by both losses.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from gcrl_bench.algorithms import common
from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import RelabelConfig, TaskSpec, Transition
from gcrl_bench.networks import NetworkConfig, ResidualMLP, sample_tanh_gaussian

Array = jax.Array
Params = dict


@dataclasses.dataclass(frozen=True)
class CRLConfig:
    """CRL hyperparameters; defaults are the paper's (Table 7 and the Args of its train.py).

    Attributes:
      network: depth, width and switches shared by the actor and both critic encoders (Table 7: depth
        depends on the experiment, width 256).
      repr_dim: size of the phi / psi representations (Table 7: 64).
      policy_lr: Adam learning rate of the actor (Table 7: 3e-4).
      critic_lr: Adam learning rate of both encoders, optimised jointly (Table 7: 3e-4).
      alpha_lr: Adam learning rate of log alpha (train.py: 3e-4).
      logsumexp_penalty: coefficient of the logsumexp regulariser of the critic (Table 7: 0.1).
      relabel: hindsight relabelling; CRL accepts ``geometric`` only, every tuple relabelled with a future
        state at offset k >= 1, P(k) ~ gamma^k (Table 7 "discounting": gamma = 0.99; fraction 1.0).
      entropy_param: target entropy is -entropy_param * |A| (train.py: 0.5, so -4 for the ant).
      energy: critic score of a (phi, psi) pair; "l2" is -||phi - psi||_2 (Table 7: L2).
      contrastive_loss: critic objective; "fwd_infonce" is a softmax over goals per row (Table 7: InfoNCE).
    """

    network: NetworkConfig = NetworkConfig()
    repr_dim: int = 64
    policy_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    logsumexp_penalty: float = 0.1
    relabel: RelabelConfig = RelabelConfig("geometric", 0.99, 1.0)
    entropy_param: float = 0.5
    energy: Literal["l2"] = "l2"
    contrastive_loss: Literal["fwd_infonce"] = "fwd_infonce"

    def __post_init__(self):
        if not isinstance(self.network, NetworkConfig):
            raise ConfigError(f"crl network must be a NetworkConfig, got {type(self.network).__name__}")
        if not isinstance(self.repr_dim, int) or self.repr_dim < 1:
            raise ConfigError(f"crl repr_dim {self.repr_dim!r} must be a positive integer; the paper uses 64")
        for name in ("policy_lr", "critic_lr", "alpha_lr"):
            value = getattr(self, name)
            if not value > 0:
                raise ConfigError(f"crl {name} {value!r} must be positive; the paper uses 3e-4")
        if not self.logsumexp_penalty >= 0:
            raise ConfigError(f"crl logsumexp_penalty {self.logsumexp_penalty!r} must be >= 0; the paper uses 0.1")
        common.check_relabel("crl", self.relabel, ("geometric",))
        if not self.entropy_param >= 0:
            raise ConfigError(f"crl entropy_param {self.entropy_param!r} must be >= 0; the paper uses 0.5")
        if self.energy != "l2":
            raise ConfigError(f"crl energy {self.energy!r} is not available; use 'l2'")
        if self.contrastive_loss != "fwd_infonce":
            raise ConfigError(f"crl contrastive_loss {self.contrastive_loss!r} is not available; use 'fwd_infonce'")


@struct.dataclass
class CRLState:
    """Everything CRL learns, as one pytree.

    Attributes:
      actor_params: flax params of the actor network.
      critic_params: ``{"sa_encoder": phi params, "goal_encoder": psi params}``.
      log_alpha: () float32 log of the entropy temperature (starts at 0, alpha = 1).
      actor_opt_state, critic_opt_state, alpha_opt_state: Adam states of the three optimisers.
      step: () int32 number of gradient steps taken.
      action_size: |A| (static), which fixes the actor's output size.
    """

    actor_params: Params
    critic_params: Params
    log_alpha: Array
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    step: Array
    action_size: int = struct.field(pytree_node=False)


# ---------------------------------------------------------------------------------------------------------
# Losses (pure; B = batch size, R = repr_dim)


@jax.custom_vjp
def l2_energy(phi: Array, psi: Array) -> Array:
    """Logits L[i, k] = -||phi_i - psi_k||_2 (paper §3 "L2 energy"; no epsilon, no temperature).

    Args:
      phi: (B, R) state-action representations.
      psi: (B, R) goal representations.
    Returns:
      (B, B) logits; row i scores every goal of the batch for tuple i, the diagonal being its own goal.

    The value is computed exactly as written, from the (B, B, R) differences. The gradient is the same
    function's exact gradient written with two (B, B) x (B, R) matmuls (see :func:`_l2_energy_bwd`): XLA's
    CPU backend differentiates the broadcast form into a reduction over the (B, B, R) tensor that took
    longer than all the network layers together (about 170 ms per step at B = 512).
    """
    return _l2_energy_value(phi, psi)


def _l2_energy_value(phi: Array, psi: Array) -> Array:
    return -jnp.sqrt(jnp.sum(jnp.square(phi[:, None, :] - psi[None, :, :]), axis=-1))


def _l2_energy_fwd(phi: Array, psi: Array) -> tuple[Array, tuple[Array, Array, Array]]:
    logits = _l2_energy_value(phi, psi)
    return logits, (phi, psi, logits)


def _l2_energy_bwd(residuals: tuple[Array, Array, Array], g: Array) -> tuple[Array, Array]:
    """With d_ik = ||phi_i - psi_k|| = -L[i, k] and h_ik = g_ik / L[i, k] = -g_ik / d_ik::

        dphi_i = sum_k g_ik * -(phi_i - psi_k) / d_ik = phi_i * sum_k h_ik - (h @ psi)_i
        dpsi_k = sum_i g_ik *  (phi_i - psi_k) / d_ik = psi_k * sum_i h_ik - (h^T @ phi)_k

    Like the plain autodiff of the square root, it is not finite where a distance is exactly 0.
    """
    phi, psi, logits = residuals
    h = g / logits
    dphi = jnp.sum(h, axis=1, keepdims=True) * phi - h @ psi
    dpsi = jnp.sum(h, axis=0)[:, None] * psi - h.T @ phi
    return dphi, dpsi


l2_energy.defvjp(_l2_energy_fwd, _l2_energy_bwd)


def infonce_forward_loss(logits: Array) -> Array:
    """Forward InfoNCE (paper §3; Oord et al. 2018): mean_i [-L[i, i] + logsumexp_k L[i, k]].

    A softmax over goals within each row: tuple i must pick its own goal among the batch's goals.
    Example: for L = [[0, -1], [-1, 0]] each row loses log(1 + e^-1) = 0.3133.
    """
    return jnp.mean(-jnp.diagonal(logits) + jax.nn.logsumexp(logits, axis=1))


def logsumexp_penalty(logits: Array, coef: float) -> Array:
    """Logsumexp regulariser of the paper's critic: coef * mean_i (logsumexp_k (L[i, k] + 1e-6))^2.

    It pins the row normalisers near 0 (the InfoNCE loss is invariant to adding a constant per row).
    """
    return coef * jnp.mean(jnp.square(jax.nn.logsumexp(logits + 1e-6, axis=1)))


# ---------------------------------------------------------------------------------------------------------
# Networks (the actor is common.actor_network)


def _encoder(config: CRLConfig) -> nn.Module:
    return ResidualMLP(config.network, config.repr_dim)


# ---------------------------------------------------------------------------------------------------------
# The algorithm's functions


def init(config: CRLConfig, spec: TaskSpec, key: Array) -> CRLState:
    """Fresh actor, encoders, log alpha = 0 and Adam states for ``spec``."""
    actor_key, sa_key, goal_key = jax.random.split(key, 3)
    actor_params = common.init_actor(config.network, spec, actor_key)
    encoder = _encoder(config)
    critic_params = {
        "sa_encoder": encoder.init(sa_key, jnp.zeros((1, spec.state_size + spec.action_size))),
        "goal_encoder": encoder.init(goal_key, jnp.zeros((1, spec.goal_size))),
    }
    log_alpha = jnp.zeros((), jnp.float32)
    return CRLState(
        actor_params=actor_params,
        critic_params=critic_params,
        log_alpha=log_alpha,
        actor_opt_state=common.adam_init(config.policy_lr, actor_params),
        critic_opt_state=common.adam_init(config.critic_lr, critic_params),
        alpha_opt_state=common.adam_init(config.alpha_lr, log_alpha),
        step=jnp.zeros((), jnp.int32),
        action_size=spec.action_size,
    )


def act(config: CRLConfig, state: CRLState, obs: Array, key: Array, deterministic: bool) -> Array:
    """Actions (B, |A|) in [-1, 1] for observations (B, observation_size) = [state, commanded goal].

    Stochastic: tanh(mean + std * N(0, I)) (collection, docs/tasks.md §7.5). Deterministic: tanh(mean)
    (evaluation).
    """
    return common.act(config.network, state.action_size, state.actor_params, obs, key, deterministic)


def update(config: CRLConfig, state: CRLState, batch: Transition, key: Array) -> tuple[CRLState, dict[str, Array]]:
    """One gradient step on a relabelled batch: actor and alpha with the pre-update critic, then the critic.

    Uses ``batch.state`` (B, state_size), ``batch.action`` (B, |A|) and ``batch.goal`` (B, goal_size).
    Returns the new state and scalar metrics.
    """
    encoder = _encoder(config)
    target_entropy = common.target_entropy(config.entropy_param, state.action_size)
    sa_input = jnp.concatenate([batch.state, batch.action], axis=-1)

    # Critic: forward InfoNCE + logsumexp penalty over the (B, B) logits.
    def critic_objective(critic_params):
        phi = encoder.apply(critic_params["sa_encoder"], sa_input)
        psi = encoder.apply(critic_params["goal_encoder"], batch.goal)
        logits = l2_energy(phi, psi)
        infonce = infonce_forward_loss(logits)
        penalty = logsumexp_penalty(logits, config.logsumexp_penalty)
        return infonce + penalty, (logits, psi, infonce, penalty)

    (critic_loss, (logits, psi, infonce, penalty)), critic_grads = jax.value_and_grad(
        critic_objective, has_aux=True
    )(state.critic_params)

    # Actor: a fresh action for the relabelled observation [s, g], scored by the fixed pre-update critic.
    obs = jnp.concatenate([batch.state, batch.goal], axis=-1)
    psi_fixed = jax.lax.stop_gradient(psi)
    sa_params_fixed = jax.lax.stop_gradient(state.critic_params["sa_encoder"])
    alpha = jnp.exp(state.log_alpha)

    def actor_objective(actor_params):
        mean, log_std = common.policy(config.network, state.action_size, actor_params, obs)
        action, log_prob = sample_tanh_gaussian(key, mean, log_std)
        phi = encoder.apply(sa_params_fixed, jnp.concatenate([batch.state, action], axis=-1))
        q = -jnp.sqrt(jnp.sum(jnp.square(phi - psi_fixed), axis=-1))
        return common.actor_loss(log_prob, q, alpha), (log_prob, q)

    (actor_loss_value, (log_prob, q)), actor_grads = jax.value_and_grad(actor_objective, has_aux=True)(
        state.actor_params
    )
    alpha_loss_value, alpha_grad = jax.value_and_grad(common.alpha_loss)(state.log_alpha, log_prob, target_entropy)

    actor_params, actor_opt_state = common.adam_step(config.policy_lr, actor_grads, state.actor_opt_state,
                                                     state.actor_params)
    log_alpha, alpha_opt_state = common.adam_step(config.alpha_lr, alpha_grad, state.alpha_opt_state, state.log_alpha)
    critic_params, critic_opt_state = common.adam_step(config.critic_lr, critic_grads, state.critic_opt_state,
                                                       state.critic_params)
    new_state = state.replace(
        actor_params=actor_params,
        log_alpha=log_alpha,
        critic_params=critic_params,
        actor_opt_state=actor_opt_state,
        alpha_opt_state=alpha_opt_state,
        critic_opt_state=critic_opt_state,
        step=state.step + 1,
    )

    batch_size = logits.shape[0]
    diagonal = jnp.diagonal(logits)
    metrics = {
        "critic_loss": critic_loss,
        "infonce_loss": infonce,
        "logsumexp_penalty": penalty,
        "actor_loss": actor_loss_value,
        "alpha_loss": alpha_loss_value,
        "alpha": alpha,
        "entropy": -jnp.mean(log_prob),
        "q_mean": jnp.mean(q),
        "logits_pos": jnp.mean(diagonal),
        "logits_neg": (jnp.sum(logits) - jnp.sum(diagonal)) / (batch_size * (batch_size - 1)),
        "logsumexp": jnp.mean(jax.nn.logsumexp(logits, axis=1)),
        "categorical_accuracy": jnp.mean(jnp.argmax(logits, axis=1) == jnp.arange(batch_size)),
    }
    return new_state, metrics
