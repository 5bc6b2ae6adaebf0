"""Goal-conditioned Soft Actor-Critic (Haarnoja et al. 2018), with or without hindsight relabelling.

Registered twice: ``sac`` learns from the commanded goals only (relabel strategy ``none``) and
``sac_her`` relabels with HER (Andrychowicz et al. 2017) through the shared relabeller. Both learn from the
sparse success reward recomputed after relabelling (docs/tasks.md §0.9), as the relabeller's
``next_reward``: 1 where s_{t+1} lies within the success radius of the goal. That is the textbook reward
r(s_t, a_t, g); the reference tests s_t instead (docs/tasks.md §9.9), which rewards a tuple for where it
started rather than for where its action led. With r on s_{t+1} the return of an episode is its time at
goal, the evaluation metric.

Networks (all :class:`gcrl_bench.networks.ResidualMLP` with ``config.network``):

- actor:        [state, goal] -> mean, raw log-std (2 x |A|), the tanh-Gaussian actor of
  :mod:`gcrl_bench.algorithms.common` (CRL's)
- twin critics: [state, goal, action] -> Q, two independent copies, plus Polyak-averaged target copies

One gradient step (:func:`update`): the critics regress to the soft target computed with the target
critics and a fresh next action of the current actor; the actor and the temperature are updated with the
pre-update critics; then the target critics move by Polyak averaging towards the new critics.
Time-limit-cut tuples (mask 0) are left out of the critic loss.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from gcrl_bench import diagnostics as diag
from gcrl_bench.algorithms import common, td
from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import RelabelConfig, TaskSpec, Transition
from gcrl_bench.networks import NetworkConfig, sample_tanh_gaussian, split_policy_output

Array = jax.Array
Params = dict


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC hyperparameters. The paper gives none for its baselines (docs/tasks.md §7.6: NOT FOUND); defaults are
    JaxGCRL's SAC (§7.6) where it sets one, else the SAC paper's.

    Attributes:
      network: depth, width and switches of the actor and of both critics (the one builder).
      policy_lr: Adam learning rate of the actor (JaxGCRL sac.py learning_rate: 1e-4).
      critic_lr: Adam learning rate of the twin critics (JaxGCRL: the same 1e-4).
      alpha_lr: Adam learning rate of log alpha (JaxGCRL: 3e-4).
      discount: gamma of the TD target (JaxGCRL discounting: 0.9; Haarnoja et al. use 0.99 on dense tasks).
      tau: Polyak rate of the target critics (JaxGCRL and Haarnoja et al.: 0.005).
      entropy_param: target entropy is -entropy_param * |A| (brax's SAC, on which JaxGCRL builds: 0.5;
        Haarnoja et al. 2018b use 1.0).
      relabel: hindsight relabelling. strategy: ``none`` (plain SAC, the commanded goals; default),
        ``final`` (the last state of the episode in the window; the reference's HER) or ``future`` (a
        uniform later state of the same episode; Andrychowicz et al. 2017). fraction: the fraction of
        tuples relabelled once a strategy is on, the others keeping the commanded goal (default 0.8 =
        HER's k = 4; 1.0 relabels every tuple, as the reference does). gamma is unused.
    """

    network: NetworkConfig = NetworkConfig()
    policy_lr: float = 1e-4
    critic_lr: float = 1e-4
    alpha_lr: float = 3e-4
    discount: float = 0.9
    tau: float = 0.005
    entropy_param: float = 0.5
    relabel: RelabelConfig = RelabelConfig("none", 0.99, 0.8)

    def __post_init__(self):
        owner = type(self).__name__
        if not isinstance(self.network, NetworkConfig):
            raise ConfigError(f"{owner} network must be a NetworkConfig, got {type(self.network).__name__}")
        for name in ("policy_lr", "critic_lr", "alpha_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{owner} {name} {getattr(self, name)!r} must be positive; for example 3e-4")
        if not 0.0 < self.discount < 1.0:
            raise ConfigError(f"{owner} discount {self.discount!r} must lie in (0, 1); for example 0.9 or 0.99")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"{owner} tau {self.tau!r} must lie in (0, 1]; for example 0.005")
        if not self.entropy_param >= 0:
            raise ConfigError(f"{owner} entropy_param {self.entropy_param!r} must be >= 0; for example 0.5")
        common.check_relabel(owner, self.relabel, td.HER_STRATEGIES)


@dataclasses.dataclass(frozen=True)
class SACHERConfig(SACConfig):
    """SAC with hindsight experience replay: :class:`SACConfig` with HER on by default.

    Attributes:
      network, policy_lr, critic_lr, alpha_lr, discount, tau, entropy_param: as in :class:`SACConfig`.
      relabel: default strategy ``future`` (Andrychowicz et al. 2017 found it best) with fraction 0.8
        (HER's k = 4); the reference uses ``final`` on every tuple, which ``--set relabel.strategy=final
        --set relabel.fraction=1`` reproduces.
    """

    relabel: RelabelConfig = RelabelConfig("future", 0.99, 0.8)


@struct.dataclass
class SACState:
    """Everything SAC learns, as one pytree.

    Attributes:
      actor_params: flax params of the actor.
      critic_params: both critics' params, stacked along a leading axis of length 2.
      target_critic_params: Polyak averages of ``critic_params`` (start equal to them).
      log_alpha: () float32 log of the entropy temperature (starts at 0, alpha = 1, as brax's SAC).
      actor_opt_state, critic_opt_state, alpha_opt_state: Adam states.
      step: () int32 number of gradient steps taken.
      action_size: |A| (static).
    """

    actor_params: Params
    critic_params: Params
    target_critic_params: Params
    log_alpha: Array
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    step: Array
    action_size: int = struct.field(pytree_node=False)


# ---------------------------------------------------------------------------------------------------------
# Losses (pure; B = batch size). The actor and temperature losses are common.actor_loss, with Q the min of
# the twin critics, and common.alpha_loss (Eq. 18).


def soft_td_target(
    next_reward: Array, discount: Array, next_q: Array, next_log_prob: Array, alpha: Array, gamma: float
) -> Array:
    """Soft Bellman target (Haarnoja et al. 2018b, Eqs. 3 and 5, with twin critics as in their §5):

        y = r + gamma * d * (min_i Q'_i(s', a') - alpha * log pi(a' | s', g)),   a' ~ pi(. | s', g)

    Args:
      next_reward: (B,) r, the sparse success of s_{t+1}.
      discount: (B,) d, 0 where s_{t+1} is terminal.
      next_q: (2, B) target critics at (s', a', g).
      next_log_prob: (B,) log pi(a' | s', g).
      alpha: () temperature.
    Example: r = 0, d = 1, Q' = (2, 3), log pi = -1, alpha = 0.5, gamma = 0.9: 0.9 * (2 + 0.5) = 2.25.
    """
    soft_value = jnp.min(next_q, axis=0) - alpha * next_log_prob
    return next_reward + gamma * discount * soft_value


# ---------------------------------------------------------------------------------------------------------
# The algorithm's functions


def init(config: SACConfig, spec: TaskSpec, key: Array) -> SACState:
    """Fresh actor, twin critics (target copies equal), log alpha = 0 and Adam states for ``spec``."""
    actor_key, critic_key = jax.random.split(key)
    actor_params = common.init_actor(config.network, spec, actor_key)
    critic_params = td.init_twin_critics(config.network, spec, critic_key)
    log_alpha = jnp.zeros((), jnp.float32)
    return SACState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=critic_params,
        log_alpha=log_alpha,
        actor_opt_state=common.adam_init(config.policy_lr, actor_params),
        critic_opt_state=common.adam_init(config.critic_lr, critic_params),
        alpha_opt_state=common.adam_init(config.alpha_lr, log_alpha),
        step=jnp.zeros((), jnp.int32),
        action_size=spec.action_size,
    )


def act(config: SACConfig, state: SACState, obs: Array, key: Array, deterministic: bool) -> Array:
    """Actions (B, |A|) in [-1, 1]: tanh(mean + std * N(0, I)) for collection, tanh(mean) for evaluation."""
    return common.act(config.network, state.action_size, state.actor_params, obs, key, deterministic)


def critic_target(config: SACConfig, state: SACState, batch: Transition, key: Array) -> Array:
    """(B,) soft TD targets of the batch (:func:`soft_td_target`): a fresh next action a' ~ pi(. | s', g)
    drawn with ``key`` from the current actor, scored by the target critics."""
    next_reward, _ = td.td_batch_parts(batch)
    next_obs = jnp.concatenate([batch.next_state, batch.goal], axis=-1)
    next_mean, next_log_std = common.policy(config.network, state.action_size, state.actor_params, next_obs)
    next_action, next_log_prob = sample_tanh_gaussian(key, next_mean, next_log_std)
    next_q = td.twin_q(config.network, state.target_critic_params, batch.next_state, batch.goal, next_action)
    return soft_td_target(next_reward, batch.discount, next_q, next_log_prob, jnp.exp(state.log_alpha), config.discount)


def actor_objective(config: SACConfig, action_size: int, actor_params: Params, critic_fixed: Params, alpha: Array,
                    batch: Transition, key: Array) -> tuple[Array, tuple[Array, Array]]:
    """The actor loss of a fresh action a~ ~ pi(. | [state, goal]) drawn with ``key``, scored by the min of
    the fixed twin critics ``critic_fixed``: ``(loss, (log pi(a~) (B,), min Q (B,)))``."""
    obs = jnp.concatenate([batch.state, batch.goal], axis=-1)
    mean, log_std = common.policy(config.network, action_size, actor_params, obs)
    action, log_prob = sample_tanh_gaussian(key, mean, log_std)
    q = jnp.min(td.twin_q(config.network, critic_fixed, batch.state, batch.goal, action), axis=0)
    return common.actor_loss(log_prob, q, alpha), (log_prob, q)


def update(config: SACConfig, state: SACState, batch: Transition, key: Array) -> tuple[SACState, dict[str, Array]]:
    """One gradient step on a relabelled batch (module docstring). Returns the new state and scalar metrics."""
    next_reward, mask = td.td_batch_parts(batch)
    k_next, k_actor = jax.random.split(key)
    alpha = jnp.exp(state.log_alpha)
    target_entropy = common.target_entropy(config.entropy_param, state.action_size)

    # Critic target: a fresh next action from the current actor, scored by the target critics.
    target = critic_target(config, state, batch, k_next)

    def critic_objective(critic_params):
        q = td.twin_q(config.network, critic_params, batch.state, batch.goal, batch.action)
        return td.td_loss(q, target, mask), q

    (critic_loss, q_data), critic_grads = jax.value_and_grad(critic_objective, has_aux=True)(state.critic_params)

    # Actor: a fresh action for [s, g], scored by the pre-update critics (held fixed).
    critic_fixed = jax.lax.stop_gradient(state.critic_params)
    (actor_loss_value, (log_prob, q_pi)), actor_grads = jax.value_and_grad(actor_objective, argnums=2, has_aux=True)(
        config, state.action_size, state.actor_params, critic_fixed, alpha, batch, k_actor
    )
    alpha_loss_value, alpha_grad = jax.value_and_grad(common.alpha_loss)(state.log_alpha, log_prob, target_entropy)

    actor_params, actor_opt_state = common.adam_step(
        config.policy_lr, actor_grads, state.actor_opt_state, state.actor_params
    )
    critic_params, critic_opt_state = common.adam_step(
        config.critic_lr, critic_grads, state.critic_opt_state, state.critic_params
    )
    log_alpha, alpha_opt_state = common.adam_step(config.alpha_lr, alpha_grad, state.alpha_opt_state, state.log_alpha)
    new_state = state.replace(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=td.polyak_update(state.target_critic_params, critic_params, config.tau),
        log_alpha=log_alpha,
        actor_opt_state=actor_opt_state,
        critic_opt_state=critic_opt_state,
        alpha_opt_state=alpha_opt_state,
        step=state.step + 1,
    )
    metrics = {
        "critic_loss": critic_loss,
        "actor_loss": actor_loss_value,
        "alpha_loss": alpha_loss_value,
        "alpha": alpha,
        "entropy": -jnp.mean(log_prob),
        "q_data": td.masked_mean(jnp.mean(q_data, axis=0), mask),
        "q_policy": jnp.mean(q_pi),
        "target_mean": td.masked_mean(target, mask),
        "reward_mean": td.masked_mean(next_reward, mask),
        "valid_fraction": jnp.mean(mask),
    }
    return new_state, metrics


def diagnostics(config: SACConfig, previous: SACState, state: SACState, batch: Transition,
                key: Array) -> dict[str, Array]:
    """Per-layer statistics of the actor and of each twin critic (``critic_0``, ``critic_1``), the critics'
    Q mean, spread and TD error, and the policy's entropy, on one probe batch (:mod:`gcrl_bench.diagnostics`).
    Gradients: the actor loss (:func:`actor_objective`) and the TD loss (:func:`gcrl_bench.algorithms.td.td_loss`
    against :func:`critic_target`) at ``state``'s parameters."""
    k_next, k_actor = jax.random.split(key)
    alpha = jnp.exp(state.log_alpha)
    (_, (log_prob, _)), actor_grads = jax.value_and_grad(actor_objective, argnums=2, has_aux=True)(
        config, state.action_size, state.actor_params, state.critic_params, alpha, batch, k_actor)
    obs = jnp.concatenate([batch.state, batch.goal], axis=-1)
    out, stats = diag.network_statistics("actor", config.network, previous.actor_params, state.actor_params,
                                         actor_grads, obs)
    stats.update(diag.policy_statistics("actor", log_prob, split_policy_output(out)[1]))
    stats.update(td.twin_critic_diagnostics(config.network, previous.critic_params, state.critic_params,
                                            critic_target(config, state, batch, k_next), batch))
    return stats
