"""GCSL and GCBC: online goal-conditioned supervised learning of the actions actually taken.

Both collect online with their own stochastic policy and learn, by maximum likelihood, the action a_t
taken in s_t for a hindsight goal g reached later in the same episode (docs/tasks.md §0.9). They are
one loss and one module with two registered configs:

- ``gcsl`` (Ghosh et al. 2019, "Learning to Reach Goals via Iterated Supervised Learning"): goals
  uniform over the later states of the episode (relabel strategy ``future``), loss -log pi(a_t | s_t, g).
  Ghosh et al. use a discretised action space; here the policy is the continuous tanh-Gaussian head
  shared by every algorithm, and the policy is not conditioned on the remaining horizon (their
  optional variant).
- ``gcbc``: the objective of the authors' train_GCSL.py (docs/tasks.md §7.6): geometric future goals
  (gamma = 0.99, as CRL) and -log pi(a_t | s_t, g) plus an entropy bonus alpha * log pi(a~ | s_t, g) on
  fresh samples a~, with alpha tuned towards the target entropy -0.5 |A| as in CRL.

The likelihood of a taken action a in (-1, 1)^|A| under the tanh-Gaussian is computed at
u = atanh(clip(a, -1 + 1e-6, 1 - 1e-6)) with the change-of-variables term (see
:func:`gcrl_bench.algorithms.common.taken_action_log_prob`). Actor: the tanh-Gaussian actor of
:mod:`gcrl_bench.algorithms.common`, [state, goal] -> mean, raw log-std, one
:class:`gcrl_bench.networks.ResidualMLP` with ``config.network``. Collection samples tanh(mean + std * eps),
evaluation uses tanh(mean).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from gcrl_bench import diagnostics as diag
from gcrl_bench.algorithms import common
from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import RelabelConfig, TaskSpec, Transition
from gcrl_bench.networks import NetworkConfig, sample_tanh_gaussian, split_policy_output

Array = jax.Array
Params = dict


@dataclasses.dataclass(frozen=True)
class GCSLConfig:
    """GCSL hyperparameters (Ghosh et al. 2019 relabelling and loss; optimiser settings of CRL's actor).

    Attributes:
      network: depth, width and switches of the policy network (the one builder).
      policy_lr: Adam learning rate of the policy (train_GCSL.py, CRL's actor: 3e-4).
      relabel: hindsight relabelling (fraction 1.0, every tuple): strategy ``future`` (a uniform later
        state of the same episode: Ghosh et al.; default) or ``geometric`` (offset k >= 1 with
        P(k) ~ gamma^k: train_GCSL.py, gamma = 0.99).
      entropy_bonus: add alpha * log pi of fresh samples to the loss, alpha tuned automatically (GCSL:
        off, plain maximum likelihood as in Ghosh et al.).
      alpha_lr: Adam learning rate of log alpha when entropy_bonus is on (train_GCSL.py: 3e-4).
      entropy_param: target entropy -entropy_param * |A| when entropy_bonus is on (train_GCSL.py: 0.5).
    """

    network: NetworkConfig = NetworkConfig()
    policy_lr: float = 3e-4
    relabel: RelabelConfig = RelabelConfig("future", 0.99, 1.0)
    entropy_bonus: bool = False
    alpha_lr: float = 3e-4
    entropy_param: float = 0.5

    def __post_init__(self):
        owner = type(self).__name__
        if not isinstance(self.network, NetworkConfig):
            raise ConfigError(f"{owner} network must be a NetworkConfig, got {type(self.network).__name__}")
        for name in ("policy_lr", "alpha_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{owner} {name} {getattr(self, name)!r} must be positive; for example 3e-4")
        common.check_relabel(owner, self.relabel, ("future", "geometric"))
        if not isinstance(self.entropy_bonus, bool):
            raise ConfigError(f"{owner} entropy_bonus {self.entropy_bonus!r} must be true or false")
        if not self.entropy_param >= 0:
            raise ConfigError(f"{owner} entropy_param {self.entropy_param!r} must be >= 0; for example 0.5")


@dataclasses.dataclass(frozen=True)
class GCBCConfig(GCSLConfig):
    """GCBC: :class:`GCSLConfig` with the defaults of the authors' train_GCSL.py (docs/tasks.md §7.6).

    Attributes:
      network, policy_lr, alpha_lr, entropy_param: as in :class:`GCSLConfig`.
      relabel: default strategy ``geometric`` with gamma = 0.99 on every tuple (CRL's relabelling).
      entropy_bonus: default on (train_GCSL.py's actor loss keeps CRL's entropy term).
    """

    relabel: RelabelConfig = RelabelConfig("geometric", 0.99, 1.0)
    entropy_bonus: bool = True


@struct.dataclass
class GCSLState:
    """Everything GCSL / GCBC learns, as one pytree.

    Attributes:
      actor_params: flax params of the policy.
      log_alpha: () float32 log entropy temperature (starts at 0; stays there without entropy_bonus).
      actor_opt_state, alpha_opt_state: Adam states.
      step: () int32 number of gradient steps taken.
      action_size: |A| (static).
    """

    actor_params: Params
    log_alpha: Array
    actor_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    step: Array
    action_size: int = struct.field(pytree_node=False)


# ---------------------------------------------------------------------------------------------------------
# Losses (pure; B = batch size)


def supervised_policy_loss(log_prob_taken: Array, log_prob_sampled: Array | None, alpha: Array | float) -> Array:
    """Goal-conditioned maximum likelihood of the taken actions, with an optional entropy bonus:

        mean_b [alpha * log pi(a~_b | s_b, g_b)] - mean_b [log pi(a_b | s_b, g_b)]

    GCSL (Ghosh et al. 2019, Algorithm 1 / Eq. 2 with hindsight goals) is the second term alone
    (``log_prob_sampled`` None); GCBC as in train_GCSL.py adds the first, with alpha held fixed.

    Args:
      log_prob_taken: (B,) log-likelihood of the actions taken in the environment.
      log_prob_sampled: (B,) log pi of fresh reparameterised samples a~, or None.
      alpha: () entropy temperature (ignored without samples).
    Example: taken [-1, -3], sampled [2, 0], alpha 0.5: 0.5 * 1 + 2 = 2.5.
    """
    loss = -jnp.mean(log_prob_taken)
    if log_prob_sampled is not None:
        loss = loss + alpha * jnp.mean(log_prob_sampled)
    return loss


# ---------------------------------------------------------------------------------------------------------
# The algorithm's functions


def init(config: GCSLConfig, spec: TaskSpec, key: Array) -> GCSLState:
    """A fresh policy, log alpha = 0 and Adam states for ``spec``."""
    actor_params = common.init_actor(config.network, spec, key)
    log_alpha = jnp.zeros((), jnp.float32)
    return GCSLState(
        actor_params=actor_params,
        log_alpha=log_alpha,
        actor_opt_state=common.adam_init(config.policy_lr, actor_params),
        alpha_opt_state=common.adam_init(config.alpha_lr, log_alpha),
        step=jnp.zeros((), jnp.int32),
        action_size=spec.action_size,
    )


def act(config: GCSLConfig, state: GCSLState, obs: Array, key: Array, deterministic: bool) -> Array:
    """Actions (B, |A|) in [-1, 1]: tanh(mean + std * N(0, I)) for collection, tanh(mean) for evaluation."""
    return common.act(config.network, state.action_size, state.actor_params, obs, key, deterministic)


def objective(config: GCSLConfig, action_size: int, actor_params: Params, alpha: Array, batch: Transition,
              key: Array) -> tuple[Array, tuple]:
    """The policy loss (:func:`supervised_policy_loss`) of the batch's taken actions under pi(. | [state, goal]),
    with the entropy bonus of fresh samples drawn with ``key`` when ``config.entropy_bonus``.

    Returns:
      ``(loss, (log pi(a_taken) (B,), log pi(a~) (B,) or None, mean (B, |A|), log_std (B, |A|)))``.
    """
    obs = jnp.concatenate([batch.state, batch.goal], axis=-1)
    mean, log_std = common.policy(config.network, action_size, actor_params, obs)
    log_prob_taken = common.taken_action_log_prob(batch.action, mean, log_std)
    if config.entropy_bonus:
        _, log_prob_sampled = sample_tanh_gaussian(key, mean, log_std)
    else:
        log_prob_sampled = None
    loss = supervised_policy_loss(log_prob_taken, log_prob_sampled, alpha)
    return loss, (log_prob_taken, log_prob_sampled, mean, log_std)


def update(config: GCSLConfig, state: GCSLState, batch: Transition, key: Array) -> tuple[GCSLState, dict[str, Array]]:
    """One gradient step of the policy (and of alpha with entropy_bonus) on a relabelled batch.

    Uses ``batch.state``, ``batch.goal`` and ``batch.action`` (the action taken in the environment).
    """
    alpha = jnp.exp(state.log_alpha)
    (loss, (log_prob_taken, log_prob_sampled, mean, log_std)), grads = jax.value_and_grad(
        objective, argnums=2, has_aux=True)(config, state.action_size, state.actor_params, alpha, batch, key)
    actor_params, actor_opt_state = common.adam_step(config.policy_lr, grads, state.actor_opt_state, state.actor_params)
    state = state.replace(actor_params=actor_params, actor_opt_state=actor_opt_state, step=state.step + 1)
    metrics = {
        "loss": loss,
        "log_prob_taken": jnp.mean(log_prob_taken),
        "action_error": jnp.mean(jnp.abs(jnp.tanh(mean) - batch.action)),
        "log_std": jnp.mean(log_std),
    }
    if config.entropy_bonus:
        target_entropy = common.target_entropy(config.entropy_param, state.action_size)
        value, grad = jax.value_and_grad(common.alpha_loss)(state.log_alpha, log_prob_sampled, target_entropy)
        log_alpha, alpha_opt_state = common.adam_step(config.alpha_lr, grad, state.alpha_opt_state, state.log_alpha)
        state = state.replace(log_alpha=log_alpha, alpha_opt_state=alpha_opt_state)
        metrics.update(alpha_loss=value, alpha=alpha, entropy=-jnp.mean(log_prob_sampled))
    return state, metrics


def diagnostics(config: GCSLConfig, previous: GCSLState, state: GCSLState, batch: Transition,
                key: Array) -> dict[str, Array]:
    """Per-layer statistics of the policy (``actor``) with the gradient of its loss (:func:`objective`) at
    ``state``'s parameters, and its entropy on fresh samples drawn with ``key``, on one probe batch
    (:mod:`gcrl_bench.diagnostics`)."""
    alpha = jnp.exp(state.log_alpha)
    grads = jax.grad(lambda p: objective(config, state.action_size, p, alpha, batch, key)[0])(state.actor_params)
    obs = jnp.concatenate([batch.state, batch.goal], axis=-1)
    out, stats = diag.network_statistics("actor", config.network, previous.actor_params, state.actor_params,
                                         grads, obs)
    mean, log_std = split_policy_output(out)
    _, log_prob = sample_tanh_gaussian(key, mean, log_std)
    stats.update(diag.policy_statistics("actor", log_prob, log_std))
    return stats
