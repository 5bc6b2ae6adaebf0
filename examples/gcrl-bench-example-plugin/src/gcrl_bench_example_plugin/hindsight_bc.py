"""``hindsight_bc``: goal-conditioned behaviour cloning on hindsight-relabelled goals, deterministic policy.

Every action the agent took is a correct action for reaching the states that followed it (Ghosh et al.
2021, "Learning to Reach Goals via Iterated Supervised Learning"). The shared relabeller replaces each
tuple's goal by a later state of the same episode (the ``future`` strategy, uniform over the rest of the
episode); the policy pi(s, g) = tanh(f(s, g)) is regressed onto the action taken:

    L(theta) = mean_i || tanh(f_theta(s_i, g_i)) - a_i ||^2

GCSL maximises the likelihood of a_i; with a fixed-variance Gaussian that is this squared error. Data are
collected with Gaussian exploration noise around the policy (``exploration_std``), clipped to [-1, 1].
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import Algorithm, RelabelConfig, TaskSpec, Transition
from gcrl_bench.networks import NetworkConfig, ResidualMLP
from gcrl_bench.registry import register_algorithm


@dataclasses.dataclass(frozen=True)
class HindsightBCConfig:
    """Hyperparameters of hindsight behaviour cloning.

    Attributes:
      network: depth, width and switches of the policy network (set by --depths/--widths).
      relabel: hindsight goals: ``future`` (a uniform later state of the same episode) for every tuple
        (fraction 1.0); ``geometric`` and ``final`` also work, ``none`` (the commanded goals) is refused.
      learning_rate: Adam learning rate of the policy (3e-4, the common Adam default in goal-conditioned RL).
      exploration_std: standard deviation of the Gaussian noise added to collected actions.
    """

    network: NetworkConfig = NetworkConfig()
    relabel: RelabelConfig = RelabelConfig(strategy="future", fraction=1.0)
    learning_rate: float = 3e-4
    exploration_std: float = 0.3

    def __post_init__(self):
        if not isinstance(self.relabel, RelabelConfig):
            raise ConfigError(f"hindsight_bc relabel must be a RelabelConfig, got {type(self.relabel).__name__}")
        if self.relabel.strategy == "none":
            raise ConfigError("hindsight_bc relabel.strategy 'none' clones the commanded goals instead of hindsight "
                              "ones; use future, geometric or final")


@struct.dataclass
class HindsightBCState:
    """Attributes:
      params: flax parameters of the policy network.
      opt_state: Adam state.
      action_size: |A| (static).
    """

    params: dict
    opt_state: optax.OptState
    action_size: int = struct.field(pytree_node=False)


def bc_loss(predicted: jax.Array, taken: jax.Array) -> jax.Array:
    """Squared-error behaviour cloning loss mean_i ||predicted_i - taken_i||^2: the GCSL objective (Ghosh et
    al. 2021, §4) for a Gaussian policy of fixed variance, up to constants. Shapes (B, |A|) -> ()."""
    return jnp.mean(jnp.sum(jnp.square(predicted - taken), axis=-1))


def _policy(config: HindsightBCConfig, action_size: int) -> ResidualMLP:
    return ResidualMLP(config.network, action_size)


def init(config: HindsightBCConfig, spec: TaskSpec, key: jax.Array) -> HindsightBCState:
    params = _policy(config, spec.action_size).init(key, jnp.zeros((1, spec.observation_size)))
    return HindsightBCState(params=params, opt_state=optax.adam(config.learning_rate).init(params),
                            action_size=spec.action_size)


def act(config: HindsightBCConfig, state: HindsightBCState, obs: jax.Array, key: jax.Array,
        deterministic: bool) -> jax.Array:
    """Actions (B, |A|) in [-1, 1] for observations (B, observation_size)."""
    action = jnp.tanh(_policy(config, state.action_size).apply(state.params, obs))
    if deterministic:
        return action
    noise = config.exploration_std * jax.random.normal(key, action.shape)
    return jnp.clip(action + noise, -1.0, 1.0)


def update(config: HindsightBCConfig, state: HindsightBCState, batch: Transition,
           key: jax.Array) -> tuple[HindsightBCState, dict[str, jax.Array]]:
    """One Adam step on the behaviour cloning loss of a relabelled batch."""
    obs = jnp.concatenate([batch.state, batch.goal], axis=-1)
    policy = _policy(config, state.action_size)

    def loss_fn(params):
        return bc_loss(jnp.tanh(policy.apply(params, obs)), batch.action)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = optax.adam(config.learning_rate).update(grads, state.opt_state)
    new = state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state)
    return new, {"bc_loss": loss, "grad_norm": optax.global_norm(grads)}


ALGORITHM = Algorithm(
    name="hindsight_bc",
    config_cls=HindsightBCConfig,
    init=init,
    act=act,
    update=update,
    description="example plugin: goal-conditioned behaviour cloning on hindsight goals (GCSL-style, MSE)",
)


def register() -> None:
    """Entry point (group ``gcrl_bench.algorithms``)."""
    register_algorithm(ALGORITHM)
