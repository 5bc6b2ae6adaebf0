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

Variants (``CRLConfig.energy`` / ``contrastive_loss`` / ``logsumexp_penalty``; the defaults are the
paper's L2 energy, forward InfoNCE and 0.1):

- energies, (B, R) x (B, R) -> (B, B) logits: :func:`l2_energy` (-||phi - psi||), :func:`l2_squared_energy`
  (-||phi - psi||^2), :func:`dot_energy` (phi . psi), :func:`cosine_energy` (cosine similarity of the
  per-row L2-normalised phi and psi divided by a learned temperature);
- critic objectives on the (B, B) logits: :func:`infonce_forward_loss` (softmax over goals per row),
  :func:`infonce_backward_loss` (softmax over states per column), :func:`infonce_symmetric_loss` (their
  mean), :func:`binary_nce_loss` (sigmoid cross-entropy, diagonal positive);
- :func:`logsumexp_penalty` with any coefficient >= 0 (0 switches it off).

Every energy works with every objective, so none of the combinations is refused: each objective and the
penalty are defined for any real logits, and the cosine energy carries its own temperature in the critic
parameters. One pairing is weaker by construction: the L2 energies give logits <= 0, so under binary NCE a
positive pair's probability sigmoid(L) never exceeds 1/2 (the negatives can still be pushed to 0).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from gcrl_bench import diagnostics as diag
from gcrl_bench.algorithms import common
from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import RelabelConfig, TaskSpec, Transition
from gcrl_bench.networks import NetworkConfig, ResidualMLP, sample_tanh_gaussian, split_policy_output

Array = jax.Array
Params = dict

Energy = Literal["l2", "l2_squared", "dot", "cosine"]
ContrastiveLoss = Literal["fwd_infonce", "bwd_infonce", "sym_infonce", "binary_nce"]
MatmulPrecision = Literal["highest", "high", "default"]
ENERGIES: tuple[str, ...] = typing.get_args(Energy)
CONTRASTIVE_LOSSES: tuple[str, ...] = typing.get_args(ContrastiveLoss)
MATMUL_PRECISIONS: tuple[str, ...] = typing.get_args(MatmulPrecision)

# The cosine energy's temperature tau at initialisation (logits = cos / tau): CLIP's 0.07 (Radford et al.
# 2021), so a logit spans [-14.3, 14.3] at the start. It is learned as log tau with the encoders.
COSINE_TEMPERATURE_INIT = 0.07


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
      energy: critic score of a (phi, psi) pair (Table 7: L2): "l2" -||phi - psi||_2, "l2_squared"
        -||phi - psi||_2^2, "dot" phi . psi, "cosine" cos(phi, psi) / tau with a learned temperature tau
        (starting at COSINE_TEMPERATURE_INIT = 0.07); the functions are in gcrl_bench.algorithms.crl.
      contrastive_loss: critic objective on the (B, B) logits (Table 7: InfoNCE): "fwd_infonce" a softmax
        over goals per row, "bwd_infonce" a softmax over states per column, "sym_infonce" the mean of the
        two, "binary_nce" the sigmoid cross-entropy of every pair, the diagonal positive (mean over the B^2
        pairs).
      matmul_precision: precision of the float32 matmuls of the energy (the (B, B) x (B, R) products of the
        L2 energies' gradients, the logits of "dot" and "cosine"), as jax.lax.Precision: "highest" full
        float32 (6 bfloat16 passes on TPU), "high" 3 bfloat16 passes on TPU and TF32 on GPUs that have it,
        "default" the backend's fastest (TF32 on recent NVIDIA GPUs, one bfloat16 pass on TPU). A CPU
        computes float32 in full at every setting. The L2 gradient subtracts two such products, so TF32's
        10-bit mantissa loses precision there that the plain formula does not: hence "highest".
    """

    network: NetworkConfig = NetworkConfig()
    repr_dim: int = 64
    policy_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    logsumexp_penalty: float = 0.1
    relabel: RelabelConfig = RelabelConfig("geometric", 0.99, 1.0)
    entropy_param: float = 0.5
    energy: Energy = "l2"
    contrastive_loss: ContrastiveLoss = "fwd_infonce"
    matmul_precision: MatmulPrecision = "highest"

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
        for name, allowed in (("energy", ENERGIES), ("contrastive_loss", CONTRASTIVE_LOSSES),
                              ("matmul_precision", MATMUL_PRECISIONS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"crl {name} {value!r} is not available; use one of {', '.join(allowed)} "
                                  f"(default {allowed[0]!r})")


@struct.dataclass
class CRLState:
    """Everything CRL learns, as one pytree.

    Attributes:
      actor_params: flax params of the actor network.
      critic_params: ``{"sa_encoder": phi params, "goal_encoder": psi params}``, plus
        ``"log_temperature"``: () float32 log tau when ``energy`` is "cosine".
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


def _precision(name: str) -> jax.lax.Precision:
    """The jax.lax.Precision of a ``matmul_precision`` name ("highest", "high" or "default")."""
    return jax.lax.Precision(name)


def l2_energy(phi: Array, psi: Array, precision: str = "highest") -> Array:
    """Logits L[i, k] = -||phi_i - psi_k||_2 (paper §3 "L2 energy"; no epsilon, no temperature).

    Args:
      phi: (B, R) state-action representations.
      psi: (B, R) goal representations.
      precision: ``matmul_precision`` of the gradient's two matmuls ("highest", "high" or "default").
    Returns:
      (B, B) logits; row i scores every goal of the batch for tuple i, the diagonal being its own goal.

    The value is computed exactly as written, from the (B, B, R) differences. The gradient is the same
    function's exact gradient written with two (B, B) x (B, R) matmuls (see :func:`_l2_energy_bwd`): XLA's
    CPU backend differentiates the broadcast form into a reduction over the (B, B, R) tensor that took
    longer than all the network layers together (about 170 ms per step at B = 512).
    Example: phi = [[0, 0]], psi = [[3, 4]] gives [[-5]].
    """
    return _l2_energy(phi, psi, precision)


def _pairwise_differences(phi: Array, psi: Array) -> Array:
    """(B, B) sum_r (phi_ir - psi_kr)^2, from the (B, B, R) differences (no cancellation)."""
    return jnp.sum(jnp.square(phi[:, None, :] - psi[None, :, :]), axis=-1)


def _l2_energy_value(phi: Array, psi: Array) -> Array:
    return -jnp.sqrt(_pairwise_differences(phi, psi))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _l2_energy(phi: Array, psi: Array, precision: str) -> Array:
    return _l2_energy_value(phi, psi)


def _l2_energy_fwd(phi: Array, psi: Array, precision: str) -> tuple[Array, tuple[Array, Array, Array]]:
    logits = _l2_energy_value(phi, psi)
    return logits, (phi, psi, logits)


def _difference_products(h: Array, phi: Array, psi: Array, precision: str) -> tuple[Array, Array]:
    """``(sum_k h_ik (phi_i - psi_k), sum_i h_ik (psi_k - phi_i))`` for h (B, B), phi and psi (B, R), with two
    (B, B) x (B, R) matmuls at ``precision``: ``(rowsum(h) phi - h @ psi, colsum(h) psi - h^T @ phi)``."""
    p = _precision(precision)
    dphi = jnp.sum(h, axis=1, keepdims=True) * phi - jnp.matmul(h, psi, precision=p)
    dpsi = jnp.sum(h, axis=0)[:, None] * psi - jnp.matmul(h.T, phi, precision=p)
    return dphi, dpsi


def _l2_energy_bwd(precision: str, residuals: tuple[Array, Array, Array], g: Array) -> tuple[Array, Array]:
    """With d_ik = ||phi_i - psi_k|| = -L[i, k] and h_ik = g_ik / L[i, k] = -g_ik / d_ik::

        dphi_i = sum_k g_ik * -(phi_i - psi_k) / d_ik = phi_i * sum_k h_ik - (h @ psi)_i
        dpsi_k = sum_i g_ik *  (phi_i - psi_k) / d_ik = psi_k * sum_i h_ik - (h^T @ phi)_k

    Each is a difference of two terms that nearly cancel when the rows are close: in float32 the result is
    exact to about eps * (|phi_i| sum_k |h_ik| + sum_k |h_ik| |psi_k|) (eps = 2^-23), a relative error of
    about eps |phi| / d for a pair at distance d, which the plain broadcast gradient does not have. TF32
    matmuls (10-bit mantissa, eps = 2^-10) would multiply that error by about 2^13, so the matmuls run at
    ``precision``, "highest" by default.
    Like the plain autodiff of the square root, it is not finite where a distance is exactly 0.
    """
    phi, psi, logits = residuals
    return _difference_products(g / logits, phi, psi, precision)


_l2_energy.defvjp(_l2_energy_fwd, _l2_energy_bwd)


def l2_squared_energy(phi: Array, psi: Array, precision: str = "highest") -> Array:
    """Logits L[i, k] = -||phi_i - psi_k||_2^2.

    Args and returns as :func:`l2_energy`. The value comes from the (B, B, R) differences; the gradient,
    dphi_i = -2 sum_k g_ik (phi_i - psi_k) and dpsi_k = 2 sum_i g_ik (phi_i - psi_k), is written with two
    matmuls at ``precision`` like the L2 energy's (h = -2 g in :func:`_l2_energy_bwd`'s notation); it is
    finite everywhere, 0 for identical rows.
    Example: phi = [[0, 0]], psi = [[3, 4]] gives [[-25]].
    """
    return _l2_squared_energy(phi, psi, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _l2_squared_energy(phi: Array, psi: Array, precision: str) -> Array:
    return -_pairwise_differences(phi, psi)


def _l2_squared_energy_fwd(phi: Array, psi: Array, precision: str) -> tuple[Array, tuple[Array, Array]]:
    return -_pairwise_differences(phi, psi), (phi, psi)


def _l2_squared_energy_bwd(precision: str, residuals: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    phi, psi = residuals
    return _difference_products(-2.0 * g, phi, psi, precision)


_l2_squared_energy.defvjp(_l2_squared_energy_fwd, _l2_squared_energy_bwd)


def dot_energy(phi: Array, psi: Array, precision: str = "highest") -> Array:
    """Logits L[i, k] = phi_i . psi_k, i.e. phi @ psi^T (B, B), one matmul at ``precision`` (its autodiff
    gradient's matmuls inherit it). Example: phi = [[1, 2]], psi = [[3, 4]] gives [[11]]."""
    return jnp.matmul(phi, psi.T, precision=_precision(precision))


def l2_normalise_rows(x: Array) -> Array:
    """Each row of x (B, R) divided by its own L2 norm (a row of norm below 1e-12 by 1e-12 instead, so a
    zero row stays 0 with a finite gradient). Example: [[3, 4], [0, 2]] -> [[0.6, 0.8], [0, 1]]."""
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), 1e-24))


def cosine_energy(phi: Array, psi: Array, log_temperature: Array, precision: str = "highest") -> Array:
    """Logits L[i, k] = cos(phi_i, psi_k) / tau = (phi_i / ||phi_i||) . (psi_k / ||psi_k||) / tau.

    Args:
      phi, psi: (B, R) representations; each row is normalised on its own (:func:`l2_normalise_rows`).
      log_temperature: () log tau, learned with the encoders (``critic_params["log_temperature"]``,
        initialised to log COSINE_TEMPERATURE_INIT = log 0.07).
      precision: ``matmul_precision`` of the (B, R) x (R, B) matmul.
    Returns:
      (B, B) logits in [-1 / tau, 1 / tau], unchanged when a row of phi or psi is scaled by a positive
      number.

    Normalising by the norm of the whole (B, R) batch instead of each row's is a known mistake that does
    not train: the logits are then phi . psi divided by one batch-wide constant, not cosines, so each
    sample's own scale still sets its scores.
    Example: phi = [[3, 4]], psi = [[0, 2]], tau = 0.5: cos = 0.8, logit 1.6.
    """
    cos = jnp.matmul(l2_normalise_rows(phi), l2_normalise_rows(psi).T, precision=_precision(precision))
    return cos * jnp.exp(-log_temperature)


def energy_logits(energy: str, critic_params: Params, phi: Array, psi: Array, precision: str = "highest") -> Array:
    """The (B, B) logits of ``energy`` (a ``CRLConfig.energy`` value) for phi, psi (B, R);
    ``critic_params["log_temperature"]`` is read for "cosine" only."""
    if energy == "l2":
        return l2_energy(phi, psi, precision)
    if energy == "l2_squared":
        return l2_squared_energy(phi, psi, precision)
    if energy == "dot":
        return dot_energy(phi, psi, precision)
    if energy == "cosine":
        return cosine_energy(phi, psi, critic_params["log_temperature"], precision)
    raise ConfigError(f"crl energy {energy!r} is not available; use one of {', '.join(ENERGIES)}")


def pair_energy(energy: str, critic_params: Params, phi: Array, psi: Array) -> Array:
    """The score (B,) of each matched pair (phi_i, psi_i) under ``energy``: the diagonal of
    :func:`energy_logits`, computed row by row without the (B, B) matrix (the actor's Q).
    Example: l2, phi = [[0, 0], [1, 1]], psi = [[3, 4], [1, 1]] gives [-5, 0]."""
    if energy == "l2":
        return -jnp.sqrt(jnp.sum(jnp.square(phi - psi), axis=-1))
    if energy == "l2_squared":
        return -jnp.sum(jnp.square(phi - psi), axis=-1)
    if energy == "dot":
        return jnp.sum(phi * psi, axis=-1)
    if energy == "cosine":
        cos = jnp.sum(l2_normalise_rows(phi) * l2_normalise_rows(psi), axis=-1)
        return cos * jnp.exp(-critic_params["log_temperature"])
    raise ConfigError(f"crl energy {energy!r} is not available; use one of {', '.join(ENERGIES)}")


def infonce_forward_loss(logits: Array) -> Array:
    """Forward InfoNCE (paper §3; Oord et al. 2018): mean_i [-L[i, i] + logsumexp_k L[i, k]].

    A softmax over goals within each row: tuple i must pick its own goal among the batch's goals.
    Example: for L = [[0, -1], [-1, 0]] each row loses log(1 + e^-1) = 0.3133.
    """
    return jnp.mean(-jnp.diagonal(logits) + jax.nn.logsumexp(logits, axis=1))


def infonce_backward_loss(logits: Array) -> Array:
    """Backward InfoNCE: mean_k [-L[k, k] + logsumexp_i L[i, k]], the forward loss of L^T.

    A softmax over states within each column: goal k must pick its own (s, a) among the batch's.
    Example: for L = [[-1, -3], [-2, -4]] the columns lose 1 + log(e^-1 + e^-2) and 4 + log(e^-3 + e^-4).
    """
    return jnp.mean(-jnp.diagonal(logits) + jax.nn.logsumexp(logits, axis=0))


def infonce_symmetric_loss(logits: Array) -> Array:
    """Symmetric InfoNCE: (:func:`infonce_forward_loss` + :func:`infonce_backward_loss`) / 2."""
    return 0.5 * (infonce_forward_loss(logits) + infonce_backward_loss(logits))


def binary_nce_loss(logits: Array) -> Array:
    """Binary NCE: the sigmoid cross-entropy of every pair, label 1 on the diagonal and 0 elsewhere, averaged
    over the B^2 pairs: (1 / B^2) [sum_i softplus(-L[i, i]) + sum_{i != k} softplus(L[i, k])].

    Averaging over all pairs weighs the B positives 1 / B^2 each and the B (B - 1) negatives as much, so
    the negatives carry (B - 1) / B of the loss (the weighting of the reference implementations;
    Eysenbach et al. 2022 write the classes as two expectations of equal weight).
    Example: L = [[0, 0], [0, 0]] loses log 2 = 0.6931 on every pair.
    """
    eye = jnp.eye(logits.shape[0], dtype=logits.dtype)
    return jnp.mean(jax.nn.softplus(jnp.where(eye > 0, -logits, logits)))


def contrastive_loss(name: str, logits: Array) -> Array:
    """The critic objective ``name`` (a ``CRLConfig.contrastive_loss`` value) on the (B, B) logits."""
    if name == "fwd_infonce":
        return infonce_forward_loss(logits)
    if name == "bwd_infonce":
        return infonce_backward_loss(logits)
    if name == "sym_infonce":
        return infonce_symmetric_loss(logits)
    if name == "binary_nce":
        return binary_nce_loss(logits)
    raise ConfigError(f"crl contrastive_loss {name!r} is not available; use one of {', '.join(CONTRASTIVE_LOSSES)}")


def logsumexp_penalty(logits: Array, coef: float) -> Array:
    """Logsumexp regulariser of the paper's critic: coef * mean_i (logsumexp_k (L[i, k] + 1e-6))^2.

    It pins the row normalisers near 0 (the InfoNCE loss is invariant to adding a constant per row). It is
    taken over rows whatever the objective; ``coef`` = 0 switches it off (the value is then exactly 0).
    """
    return coef * jnp.mean(jnp.square(jax.nn.logsumexp(logits + 1e-6, axis=1)))


# ---------------------------------------------------------------------------------------------------------
# Networks (the actor is common.actor_network)


def _encoder(config: CRLConfig) -> nn.Module:
    return ResidualMLP(config.network, config.repr_dim)


# ---------------------------------------------------------------------------------------------------------
# The algorithm's functions


def init(config: CRLConfig, spec: TaskSpec, key: Array) -> CRLState:
    """Fresh actor, encoders (and log tau = log 0.07 for the cosine energy), log alpha = 0 and Adam states
    for ``spec``."""
    actor_key, sa_key, goal_key = jax.random.split(key, 3)
    actor_params = common.init_actor(config.network, spec, actor_key)
    encoder = _encoder(config)
    critic_params = {
        "sa_encoder": encoder.init(sa_key, jnp.zeros((1, spec.state_size + spec.action_size))),
        "goal_encoder": encoder.init(goal_key, jnp.zeros((1, spec.goal_size))),
    }
    if config.energy == "cosine":
        critic_params["log_temperature"] = jnp.asarray(math.log(COSINE_TEMPERATURE_INIT), jnp.float32)
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


def critic_objective(config: CRLConfig, critic_params: Params, batch: Transition) -> tuple[Array, tuple]:
    """The critic loss: the configured contrastive objective plus the logsumexp penalty over the (B, B)
    logits of phi([state, action]) against psi(goal).

    Returns:
      ``(loss, (logits (B, B), psi (B, R), contrastive value, penalty))``.
    """
    encoder = _encoder(config)
    phi = encoder.apply(critic_params["sa_encoder"], jnp.concatenate([batch.state, batch.action], axis=-1))
    psi = encoder.apply(critic_params["goal_encoder"], batch.goal)
    logits = energy_logits(config.energy, critic_params, phi, psi, config.matmul_precision)
    infonce = contrastive_loss(config.contrastive_loss, logits)
    penalty = logsumexp_penalty(logits, config.logsumexp_penalty)
    return infonce + penalty, (logits, psi, infonce, penalty)


def actor_objective(config: CRLConfig, action_size: int, actor_params: Params, critic_fixed: Params, psi_fixed: Array,
                    alpha: Array, batch: Transition, key: Array) -> tuple[Array, tuple[Array, Array]]:
    """The actor loss of a fresh action a~ ~ pi(. | [state, goal]) drawn with ``key``, scored by the fixed
    critic ``critic_fixed`` against the fixed goal representations ``psi_fixed`` (B, R).

    Returns:
      ``(loss, (log pi(a~) (B,), Q (B,)))``.
    """
    obs = jnp.concatenate([batch.state, batch.goal], axis=-1)
    mean, log_std = common.policy(config.network, action_size, actor_params, obs)
    action, log_prob = sample_tanh_gaussian(key, mean, log_std)
    phi = _encoder(config).apply(critic_fixed["sa_encoder"], jnp.concatenate([batch.state, action], axis=-1))
    q = pair_energy(config.energy, critic_fixed, phi, psi_fixed)
    return common.actor_loss(log_prob, q, alpha), (log_prob, q)


def update(config: CRLConfig, state: CRLState, batch: Transition, key: Array) -> tuple[CRLState, dict[str, Array]]:
    """One gradient step on a relabelled batch: actor and alpha with the pre-update critic, then the critic.

    Uses ``batch.state`` (B, state_size), ``batch.action`` (B, |A|) and ``batch.goal`` (B, goal_size).
    Returns the new state and scalar metrics: ``infonce_loss`` holds the value of the configured
    ``contrastive_loss`` whichever it is (one column name across variants), ``critic_loss`` adds the
    logsumexp penalty; the cosine energy adds ``temperature`` (tau before the step).
    """
    target_entropy = common.target_entropy(config.entropy_param, state.action_size)

    # Critic: the contrastive objective (forward InfoNCE by default) + logsumexp penalty over the (B, B) logits.
    (critic_loss, (logits, psi, infonce, penalty)), critic_grads = jax.value_and_grad(
        critic_objective, argnums=1, has_aux=True
    )(config, state.critic_params, batch)

    # Actor: a fresh action for the relabelled observation [s, g], scored by the fixed pre-update critic.
    psi_fixed = jax.lax.stop_gradient(psi)
    critic_fixed = jax.lax.stop_gradient(state.critic_params)
    alpha = jnp.exp(state.log_alpha)
    (actor_loss_value, (log_prob, q)), actor_grads = jax.value_and_grad(actor_objective, argnums=2, has_aux=True)(
        config, state.action_size, state.actor_params, critic_fixed, psi_fixed, alpha, batch, key
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
    if config.energy == "cosine":
        metrics["temperature"] = jnp.exp(state.critic_params["log_temperature"])
    return new_state, metrics


def diagnostics(config: CRLConfig, previous: CRLState, state: CRLState, batch: Transition,
                key: Array) -> dict[str, Array]:
    """Per-layer statistics of the actor, sa_encoder (phi) and goal_encoder (psi), and the representation
    statistics of phi and psi, on one probe batch (:mod:`gcrl_bench.diagnostics`).

    Gradients are those of :func:`critic_objective` (encoders) and :func:`actor_objective` (actor) at
    ``state``'s parameters; ``previous`` (the state at the start of the epoch) gives the update ratios.
    """
    (_, (_, psi, _, _)), critic_grads = jax.value_and_grad(critic_objective, argnums=1, has_aux=True)(
        config, state.critic_params, batch)
    alpha = jnp.exp(state.log_alpha)
    (_, (log_prob, _)), actor_grads = jax.value_and_grad(actor_objective, argnums=2, has_aux=True)(
        config, state.action_size, state.actor_params, state.critic_params, psi, alpha, batch, key)
    obs = jnp.concatenate([batch.state, batch.goal], axis=-1)
    out, stats = diag.network_statistics("actor", config.network, previous.actor_params, state.actor_params,
                                         actor_grads, obs)
    _, log_std = split_policy_output(out)
    stats.update(diag.policy_statistics("actor", log_prob, log_std))
    inputs = {"sa_encoder": jnp.concatenate([batch.state, batch.action], axis=-1), "goal_encoder": batch.goal}
    for name, x in inputs.items():
        z, net = diag.network_statistics(name, config.network, previous.critic_params[name],
                                         state.critic_params[name], critic_grads[name], x)
        stats.update(net)
        stats.update(diag.representation_statistics(name, z, cosine=name == "goal_encoder"))
    return stats
