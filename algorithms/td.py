"""Pieces shared by the temporal-difference baselines (SAC, TD3): twin critics, masked TD loss, Polyak
averaging, and the relabelling strategies they accept.

A goal-conditioned critic Q(s, a, g) is one :class:`gcrl_bench.networks.ResidualMLP` on the input
``[state, goal, action]`` with one output; the twin critics of SAC and TD3 are two independently
initialised copies whose parameters are stacked along a leading axis of length 2, so both are evaluated
by one ``vmap`` over the parameters (one program, not two).

Every TD loss is weighted by the relabeller's per-tuple ``mask`` (:class:`gcrl_bench.interface.Transition`):
a tuple cut by the time limit has no stored successor, so it contributes nothing to the critic.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gcrl_bench import diagnostics as diag
from gcrl_bench.interface import TaskSpec, Transition
from gcrl_bench.networks import NetworkConfig, ResidualMLP

Array = jax.Array
Params = dict

NUM_CRITICS = 2

# The hindsight relabelling strategies the TD baselines accept (Andrychowicz et al. 2017's HER, and none).
HER_STRATEGIES = ("none", "final", "future")


def critic_network(network: NetworkConfig) -> nn.Module:
    """Q(s, a, g): ``[state, goal, action]`` -> one value."""
    return ResidualMLP(network, 1)


def init_twin_critics(network: NetworkConfig, spec: TaskSpec, key: Array) -> Params:
    """Two independently initialised critics, every leaf stacked along a leading axis of length 2."""
    dummy = jnp.zeros((1, spec.state_size + spec.goal_size + spec.action_size))
    return jax.vmap(lambda k: critic_network(network).init(k, dummy))(jax.random.split(key, NUM_CRITICS))


def twin_q(network: NetworkConfig, params: Params, state: Array, goal: Array, action: Array) -> Array:
    """(2, B) values of both critics at (state (B, S), goal (B, G), action (B, |A|))."""
    x = jnp.concatenate([state, goal, action], axis=-1)
    return jax.vmap(critic_network(network).apply, in_axes=(0, None))(params, x)[..., 0]


def masked_mean(x: Array, mask: Array) -> Array:
    """sum(mask * x) / max(sum(mask), 1) over the batch (B,): the mean over valid tuples only."""
    return jnp.sum(mask * x) / jnp.maximum(jnp.sum(mask), 1.0)


def td_loss(q: Array, target: Array, mask: Array) -> Array:
    """Twin-critic TD loss: sum over critics i of 0.5 * masked mean_b (Q_i(s_b, a_b, g_b) - y_b)^2.

    Haarnoja et al. 2018 ("Soft Actor-Critic Algorithms and Applications", Eq. 5) and Fujimoto et al.
    2018 (TD3, Algorithm 1), each critic regressed to the same target; tuples with mask 0 are left out.

    Args:
      q: (2, B) values of both critics at the batch's (s, a, g).
      target: (B,) regression target, held fixed.
      mask: (B,) 1.0 for valid TD tuples.
    Example: q = [[1, 2], [0, 2]], target = [1, 0], mask = [1, 0] gives 0.5 * (0 + 1) = 0.5.
    """
    err = jnp.square(q - jax.lax.stop_gradient(target)[None, :])
    return 0.5 * jnp.sum(jax.vmap(masked_mean, in_axes=(0, None))(err, mask))


def polyak_update(target: Params, online: Params, tau: float) -> Params:
    """Soft target update theta' <- tau * theta + (1 - tau) * theta' (Lillicrap et al. 2016; Haarnoja et
    al. 2018 Algorithm 1; Fujimoto et al. 2018 Algorithm 1). tau = 1 copies the online parameters."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def td_batch_parts(batch: Transition) -> tuple[Array, Array]:
    """(next_reward, mask) of a relabelled batch; both are required by the TD methods.

    Raises:
      ValueError: for a hand-built batch without them (the shared relabeller always fills both).
    """
    if batch.next_reward is None or batch.mask is None:
        raise ValueError(
            "a TD update needs Transition.next_reward and Transition.mask; build batches with "
            "gcrl_bench.relabel.relabel_window or pass both fields"
        )
    return batch.next_reward, batch.mask


def twin_critic_diagnostics(network: NetworkConfig, previous: Params, params: Params, target: Array,
                            batch: Transition) -> dict[str, Array]:
    """Per-layer statistics (:func:`gcrl_bench.diagnostics.network_statistics`) and Q mean, spread and TD
    error (:func:`gcrl_bench.diagnostics.value_statistics`) of each twin critic, ``critic_0`` and ``critic_1``.

    Args:
      previous, params: the stacked twin critic parameters at the start and at the end of the epoch.
      target: (B,) TD targets of the probe batch; the gradients are those of :func:`td_loss` at ``params``.
      batch: the probe batch (its mask selects the valid tuples).
    """
    _, mask = td_batch_parts(batch)
    x = jnp.concatenate([batch.state, batch.goal, batch.action], axis=-1)
    grads = jax.grad(lambda p: td_loss(twin_q(network, p, batch.state, batch.goal, batch.action), target, mask))(params)
    stats = {}
    for i in range(NUM_CRITICS):
        name = f"critic_{i}"
        q, net = diag.network_statistics(name, network, diag.twin(previous, i), diag.twin(params, i),
                                         diag.twin(grads, i), x)
        stats.update(net)
        stats.update(diag.value_statistics(name, q[..., 0], target, mask))
    return stats
