"""Goal-conditioned TD3 (Fujimoto et al. 2018) with hindsight experience replay (Andrychowicz et al. 2017).

Registered as ``td3_her``. Learns from the sparse success reward of s_{t+1} recomputed after relabelling
(the relabeller's ``next_reward``; see :mod:`gcrl_bench.algorithms.sac` for why s_{t+1}), with
time-limit-cut tuples (mask 0) left out of the critic loss.

Networks (all :class:`gcrl_bench.networks.ResidualMLP` with ``config.network``):

- actor:        [state, goal] -> |A|, deterministic policy mu = tanh(output)
- twin critics: [state, goal, action] -> Q
- target copies of the actor and of both critics, Polyak-averaged

One gradient step (:func:`update`) follows the TD3 paper's Algorithm 1:

1. critics regress to the clipped double-Q target with target policy smoothing (:func:`td3_target`);
2. every ``policy_delay``-th step only (counted by ``state.step``, chosen with ``lax.cond`` inside the
   compiled step): the actor ascends Q_1(s, mu(s, g), g) with the *updated* critics, then the target
   actor and target critics move by Polyak averaging towards the online ones.

The target actor is the Polyak average of the online actor, as in the TD3 paper. JaxGCRL's TD3 instead
blends the online actor's old and new parameters (docs/tasks.md §7.6 quirk); that is not reproduced.

Exploration (:func:`act` with ``deterministic=False``): tanh(mu) + clip(N(0, 0.4^2), -0.5, 0.5), clipped
to [-1, 1] (JaxGCRL's TD3 defaults, §7.6). Evaluation uses the deterministic tanh(mu).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from gcrl_bench import diagnostics as diag
from gcrl_bench.algorithms import common, td
from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import RelabelConfig, TaskSpec, Transition
from gcrl_bench.networks import NetworkConfig, ResidualMLP

Array = jax.Array
Params = dict


@dataclasses.dataclass(frozen=True)
class TD3Config:
    """TD3+HER hyperparameters. The paper gives none for its baselines (docs/tasks.md §7.6: NOT FOUND); defaults
    are JaxGCRL's TD3 (§7.6), which match the TD3 paper's except for the discount.

    Attributes:
      network: depth, width and switches of the actor and of both critics (the one builder).
      policy_lr: Adam learning rate of the actor (JaxGCRL and Fujimoto et al. 2018: 3e-4).
      critic_lr: Adam learning rate of the twin critics (JaxGCRL: 3e-4).
      discount: gamma of the TD target (JaxGCRL discounting: 0.9; Fujimoto et al.: 0.99 on dense tasks).
      tau: Polyak rate of the target actor and critics (JaxGCRL and Fujimoto et al.: 0.005).
      policy_noise: std of the target policy smoothing noise (Fujimoto et al. §5.3 and JaxGCRL: 0.2).
      noise_clip: the smoothing noise is clipped to +-noise_clip (Fujimoto et al. and JaxGCRL: 0.5).
      policy_delay: the actor and the targets are updated every policy_delay-th critic step (Fujimoto et
        al. §5.2 and JaxGCRL: 2).
      exploration_noise: std of the Gaussian noise added to tanh(mu) when collecting (JaxGCRL: 0.4;
        Fujimoto et al.: 0.1).
      exploration_clip: the exploration noise is clipped to +-exploration_clip (JaxGCRL: 0.5).
      relabel: hindsight relabelling. strategy: ``final`` (the reference), ``future`` (Andrychowicz et
        al. 2017; default) or ``none``. fraction: the fraction of tuples relabelled, the others keeping the
        commanded goal (default 0.8 = HER's k = 4). gamma is unused.
    """

    network: NetworkConfig = NetworkConfig()
    policy_lr: float = 3e-4
    critic_lr: float = 3e-4
    discount: float = 0.9
    tau: float = 0.005
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_delay: int = 2
    exploration_noise: float = 0.4
    exploration_clip: float = 0.5
    relabel: RelabelConfig = RelabelConfig("future", 0.99, 0.8)

    def __post_init__(self):
        owner = "td3"
        if not isinstance(self.network, NetworkConfig):
            raise ConfigError(f"{owner} network must be a NetworkConfig, got {type(self.network).__name__}")
        for name in ("policy_lr", "critic_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{owner} {name} {getattr(self, name)!r} must be positive; for example 3e-4")
        if not 0.0 < self.discount < 1.0:
            raise ConfigError(f"{owner} discount {self.discount!r} must lie in (0, 1); for example 0.9 or 0.99")
        if not 0.0 < self.tau <= 1.0:
            raise ConfigError(f"{owner} tau {self.tau!r} must lie in (0, 1]; for example 0.005")
        for name in ("policy_noise", "noise_clip", "exploration_noise", "exploration_clip"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{owner} {name} {getattr(self, name)!r} must be >= 0")
        if not isinstance(self.policy_delay, int) or isinstance(self.policy_delay, bool) or self.policy_delay < 1:
            raise ConfigError(f"{owner} policy_delay {self.policy_delay!r} must be a positive integer; the TD3 paper uses 2")
        common.check_relabel(owner, self.relabel, td.HER_STRATEGIES)


@struct.dataclass
class TD3State:
    """Everything TD3 learns, as one pytree.

    Attributes:
      actor_params, target_actor_params: the deterministic actor and its Polyak average.
      critic_params, target_critic_params: both critics stacked along a leading axis of 2, and their
        Polyak averages.
      actor_opt_state, critic_opt_state: Adam states.
      step: () int32 critic steps taken; the actor moves on steps 0, d, 2d, ... (d = policy_delay).
      action_size: |A| (static).
    """

    actor_params: Params
    target_actor_params: Params
    critic_params: Params
    target_critic_params: Params
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    step: Array
    action_size: int = struct.field(pytree_node=False)


# ---------------------------------------------------------------------------------------------------------
# Losses and targets (pure; B = batch size)


def smoothed_target_action(key: Array, target_mu: Array, noise: float, clip: float) -> Array:
    """Target policy smoothing (Fujimoto et al. 2018, §5.3): clip(mu'(s') + clip(eps, -c, c), -1, 1),
    eps ~ N(0, noise^2). Shapes (B, |A|)."""
    eps = jnp.clip(noise * jax.random.normal(key, target_mu.shape, target_mu.dtype), -clip, clip)
    return jnp.clip(target_mu + eps, -1.0, 1.0)


def td3_target(next_reward: Array, discount: Array, next_q: Array, gamma: float) -> Array:
    """Clipped double-Q target (Fujimoto et al. 2018, §4.2, Eq. 10): y = r + gamma * d * min_i Q'_i(s', a~').

    Args:
      next_reward: (B,) r, the sparse success of s_{t+1}.
      discount: (B,) d, 0 where s_{t+1} is terminal.
      next_q: (2, B) target critics at (s', a~', g), a~' the smoothed target action.
    Example: r = 1, d = 1, Q' = (4, 3), gamma = 0.9: 1 + 0.9 * 3 = 3.7.
    """
    return next_reward + gamma * discount * jnp.min(next_q, axis=0)


def deterministic_actor_loss(q1: Array) -> Array:
    """Deterministic policy gradient objective (Silver et al. 2014; Fujimoto et al. 2018 Algorithm 1):
    -mean_b Q_1(s_b, mu(s_b, g_b), g_b), the first critic only."""
    return -jnp.mean(q1)


# ---------------------------------------------------------------------------------------------------------
# Networks


def _actor(config: TD3Config, action_size: int) -> nn.Module:
    return ResidualMLP(config.network, action_size)


def _mu(config: TD3Config, action_size: int, actor_params: Params, obs: Array) -> Array:
    """The deterministic policy tanh(actor(obs)), (B, |A|) in [-1, 1]."""
    return jnp.tanh(_actor(config, action_size).apply(actor_params, obs))


# ---------------------------------------------------------------------------------------------------------
# The algorithm's functions


def init(config: TD3Config, spec: TaskSpec, key: Array) -> TD3State:
    """Fresh actor and twin critics, target copies equal to them, and Adam states for ``spec``."""
    actor_key, critic_key = jax.random.split(key)
    actor_params = _actor(config, spec.action_size).init(actor_key, jnp.zeros((1, spec.observation_size)))
    critic_params = td.init_twin_critics(config.network, spec, critic_key)
    return TD3State(
        actor_params=actor_params,
        target_actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=critic_params,
        actor_opt_state=common.adam_init(config.policy_lr, actor_params),
        critic_opt_state=common.adam_init(config.critic_lr, critic_params),
        step=jnp.zeros((), jnp.int32),
        action_size=spec.action_size,
    )


def act(config: TD3Config, state: TD3State, obs: Array, key: Array, deterministic: bool) -> Array:
    """Actions (B, |A|) in [-1, 1]: tanh(mu) for evaluation; plus clipped Gaussian noise for collection."""
    mu = _mu(config, state.action_size, state.actor_params, obs)
    if deterministic:
        return mu
    noise = config.exploration_noise * jax.random.normal(key, mu.shape, mu.dtype)
    return jnp.clip(mu + jnp.clip(noise, -config.exploration_clip, config.exploration_clip), -1.0, 1.0)


def critic_target(config: TD3Config, state: TD3State, batch: Transition, key: Array) -> Array:
    """(B,) clipped double-Q targets of the batch (:func:`td3_target`) with the smoothed target action of
    the target actor (:func:`smoothed_target_action`, noise drawn with ``key``), scored by the target critics."""
    next_reward, _ = td.td_batch_parts(batch)
    next_obs = jnp.concatenate([batch.next_state, batch.goal], axis=-1)
    target_mu = _mu(config, state.action_size, state.target_actor_params, next_obs)
    next_action = smoothed_target_action(key, target_mu, config.policy_noise, config.noise_clip)
    next_q = td.twin_q(config.network, state.target_critic_params, batch.next_state, batch.goal, next_action)
    return td3_target(next_reward, batch.discount, next_q, config.discount)


def actor_objective(config: TD3Config, action_size: int, actor_params: Params, critic_params: Params,
                    batch: Transition) -> Array:
    """() the deterministic actor loss (:func:`deterministic_actor_loss`) of mu([state, goal]) under the first
    critic of ``critic_params``."""
    obs = jnp.concatenate([batch.state, batch.goal], axis=-1)
    action = _mu(config, action_size, actor_params, obs)
    q1 = td.twin_q(config.network, critic_params, batch.state, batch.goal, action)[0]
    return deterministic_actor_loss(q1)


def update(config: TD3Config, state: TD3State, batch: Transition, key: Array) -> tuple[TD3State, dict[str, Array]]:
    """One critic step, and on every policy_delay-th step an actor step and the target updates."""
    next_reward, mask = td.td_batch_parts(batch)
    target = critic_target(config, state, batch, key)

    def critic_objective(critic_params):
        q = td.twin_q(config.network, critic_params, batch.state, batch.goal, batch.action)
        return td.td_loss(q, target, mask), q

    (critic_loss, q_data), critic_grads = jax.value_and_grad(critic_objective, has_aux=True)(state.critic_params)
    critic_params, critic_opt_state = common.adam_step(
        config.critic_lr, critic_grads, state.critic_opt_state, state.critic_params
    )
    state = state.replace(critic_params=critic_params, critic_opt_state=critic_opt_state)

    def actor_and_targets(s: TD3State) -> tuple[TD3State, Array]:
        loss, grads = jax.value_and_grad(actor_objective, argnums=2)(
            config, state.action_size, s.actor_params, jax.lax.stop_gradient(s.critic_params), batch)
        actor_params, actor_opt_state = common.adam_step(config.policy_lr, grads, s.actor_opt_state, s.actor_params)
        return s.replace(
            actor_params=actor_params,
            actor_opt_state=actor_opt_state,
            target_actor_params=td.polyak_update(s.target_actor_params, actor_params, config.tau),
            target_critic_params=td.polyak_update(s.target_critic_params, s.critic_params, config.tau),
        ), loss

    def skip(s: TD3State) -> tuple[TD3State, Array]:  # the loss is still reported (a forward pass)
        return s, actor_objective(config, state.action_size, s.actor_params, s.critic_params, batch)

    delayed = state.step % config.policy_delay == 0
    state, actor_loss_value = jax.lax.cond(delayed, actor_and_targets, skip, state)
    state = state.replace(step=state.step + 1)
    metrics = {
        "critic_loss": critic_loss,
        "actor_loss": actor_loss_value,  # with the updated critics, on every step
        "actor_updated": delayed.astype(jnp.float32),
        "q_data": td.masked_mean(jnp.mean(q_data, axis=0), mask),
        "target_mean": td.masked_mean(target, mask),
        "reward_mean": td.masked_mean(next_reward, mask),
        "valid_fraction": jnp.mean(mask),
    }
    return state, metrics


def diagnostics(config: TD3Config, previous: TD3State, state: TD3State, batch: Transition,
                key: Array) -> dict[str, Array]:
    """Per-layer statistics of the actor and of each twin critic (``critic_0``, ``critic_1``) and the
    critics' Q mean, spread and TD error, on one probe batch (:mod:`gcrl_bench.diagnostics`). Gradients: the
    actor loss (:func:`actor_objective`) and the TD loss against :func:`critic_target` at ``state``'s
    parameters."""
    actor_grads = jax.grad(actor_objective, argnums=2)(config, state.action_size, state.actor_params,
                                                       state.critic_params, batch)
    obs = jnp.concatenate([batch.state, batch.goal], axis=-1)
    _, stats = diag.network_statistics("actor", config.network, previous.actor_params, state.actor_params,
                                       actor_grads, obs)
    stats.update(td.twin_critic_diagnostics(config.network, previous.critic_params, state.critic_params,
                                            critic_target(config, state, batch, key), batch))
    return stats
