"""CRL: losses against hand-computed values, the policy head against numpy, init/act/update contracts."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gcrl_bench.algorithms import common, crl
from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import RelabelConfig, TaskSpec, Transition
from gcrl_bench.networks import (
    NetworkConfig,
    ResidualMLP,
    sample_tanh_gaussian,
    split_policy_output,
    squash_log_std,
    tanh_gaussian_log_prob,
)

SPEC = TaskSpec(
    name="tiny", state_size=5, goal_size=2, goal_indices=(0, 1), action_size=3, success_threshold=0.5,
    episode_length=10, env_step_seconds=0.05, backend="none", benchmark=False,
)
CONFIG = crl.CRLConfig(network=NetworkConfig(depth=4, width=16), repr_dim=8)
BATCH = 6


def _batch(key, batch=BATCH):
    ks = jax.random.split(key, 3)
    zeros = jnp.zeros((batch, SPEC.state_size))
    return Transition(
        state=jax.random.normal(ks[0], (batch, SPEC.state_size)),
        action=jax.random.uniform(ks[1], (batch, SPEC.action_size), minval=-1, maxval=1),
        goal=jax.random.normal(ks[2], (batch, SPEC.goal_size)),
        next_state=zeros, future_state=zeros, reward=jnp.zeros(batch), discount=jnp.ones(batch),
    )


_update = jax.jit(crl.update, static_argnums=0)
_act = jax.jit(crl.act, static_argnums=(0, 4))
_init = jax.jit(crl.init, static_argnums=(0, 1))


# ----------------------------------------------------------------------------------------------- losses


def test_l2_energy_hand_computed():
    phi = jnp.array([[0.0, 0.0], [3.0, 4.0]])
    psi = jnp.array([[0.0, 1.0], [0.0, 4.0]])
    # |phi_0 - psi_0| = 1, |phi_0 - psi_1| = 4, |phi_1 - psi_0| = sqrt(9 + 9), |phi_1 - psi_1| = 3
    expected = -np.array([[1.0, 4.0], [math.sqrt(18.0), 3.0]])
    np.testing.assert_allclose(np.asarray(crl.l2_energy(phi, psi)), expected, rtol=1e-6)


def test_l2_energy_gradient_is_the_exact_gradient():
    phi = jax.random.normal(jax.random.PRNGKey(0), (5, 4))
    psi = jax.random.normal(jax.random.PRNGKey(1), (5, 4))
    weights = jax.random.normal(jax.random.PRNGKey(2), (5, 5))

    def plain(phi, psi):  # the broadcast form, differentiated by autodiff
        return -jnp.sqrt(jnp.sum(jnp.square(phi[:, None, :] - psi[None, :, :]), axis=-1))

    got = jax.grad(lambda a, b: jnp.sum(weights * crl.l2_energy(a, b)), (0, 1))(phi, psi)
    want = jax.grad(lambda a, b: jnp.sum(weights * plain(a, b)), (0, 1))(phi, psi)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-6)
    # and by hand for one entry: d L[0, 1] / d phi_0 = -(phi_0 - psi_1) / |phi_0 - psi_1|
    one_hot = jnp.zeros((5, 5)).at[0, 1].set(1.0)
    g_phi = jax.grad(lambda a: jnp.sum(one_hot * crl.l2_energy(a, psi)))(phi)
    diff = np.asarray(phi[0] - psi[1])
    np.testing.assert_allclose(np.asarray(g_phi[0]), -diff / np.linalg.norm(diff), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g_phi[1:]), 0.0, atol=1e-7)


def test_infonce_forward_hand_computed():
    logits = jnp.array([[0.0, -1.0], [-1.0, 0.0]])
    # each row: -0 + log(e^0 + e^-1) = log(1 + 1/e) = 0.313262
    assert float(crl.infonce_forward_loss(logits)) == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    # asymmetric 2x2: row 0 = -(-1) + log(e^-1 + e^-3); row 1 = -(-4) + log(e^-2 + e^-4)
    logits = jnp.array([[-1.0, -3.0], [-2.0, -4.0]])
    row0 = 1 + math.log(math.exp(-1) + math.exp(-3))
    row1 = 4 + math.log(math.exp(-2) + math.exp(-4))
    assert float(crl.infonce_forward_loss(logits)) == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_infonce_forward_is_a_softmax_over_goals_per_row():
    logits = np.random.default_rng(0).normal(size=(3, 3))
    log_softmax_rows = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    reference = -np.mean(np.diag(log_softmax_rows))
    assert float(crl.infonce_forward_loss(jnp.asarray(logits))) == pytest.approx(reference, rel=1e-5)
    # adding a constant to one row changes nothing; adding it to one column does
    shifted_row = logits.copy()
    shifted_row[1] += 5.0
    assert float(crl.infonce_forward_loss(jnp.asarray(shifted_row))) == pytest.approx(reference, rel=1e-5)
    shifted_col = logits.copy()
    shifted_col[:, 1] += 5.0
    assert abs(float(crl.infonce_forward_loss(jnp.asarray(shifted_col))) - reference) > 0.1


def test_critic_scoring_every_pair_high_loses_to_a_perfect_diagonal_critic():
    batch = 8
    # every pair at distance 0: all logits equal to the highest possible value
    same = jnp.zeros((batch, 4))
    everything_high = crl.infonce_forward_loss(crl.l2_energy(same + 1.0, same + 1.0))
    assert float(everything_high) == pytest.approx(math.log(batch), rel=1e-6)
    # each phi_i sits on its own psi_i, other goals 10 apart
    spread = 10.0 / math.sqrt(2) * jnp.eye(batch)
    perfect = crl.infonce_forward_loss(crl.l2_energy(spread, spread))
    assert float(perfect) < 1e-3 < float(everything_high)
    # accuracy of the perfect critic is 1: the diagonal is every row's argmax
    assert bool(jnp.all(jnp.argmax(crl.l2_energy(spread, spread), axis=1) == jnp.arange(batch)))


def test_logsumexp_penalty_hand_computed():
    logits = jnp.array([[0.0, -1.0], [-1.0, 0.0]])
    lse = 1e-6 + math.log(1 + math.exp(-1))  # logsumexp(L + 1e-6) = 1e-6 + logsumexp(L), both rows
    assert float(crl.logsumexp_penalty(logits, 0.1)) == pytest.approx(0.1 * lse**2, rel=1e-5)
    logits = jnp.array([[0.0, 0.0], [-3.0, -3.0]])  # rows: log 2 and -3 + log 2
    expected = 0.5 * 0.1 * ((math.log(2) + 1e-6) ** 2 + (-3 + math.log(2) + 1e-6) ** 2)
    assert float(crl.logsumexp_penalty(logits, 0.1)) == pytest.approx(expected, rel=1e-5)
    assert float(crl.logsumexp_penalty(logits, 0.0)) == 0.0


def test_actor_loss_hand_computed():
    log_prob = jnp.array([1.0, -1.0])
    q = jnp.array([-2.0, -4.0])
    # mean(0.5 * 1 + 2, 0.5 * -1 + 4) = mean(2.5, 3.5)
    assert float(common.actor_loss(log_prob, q, jnp.array(0.5))) == pytest.approx(3.0)


def test_alpha_loss_value_and_gradient():
    log_alpha = jnp.array(math.log(2.0))
    log_prob = jnp.array([-1.0, -3.0])
    # -log pi - target = [1 + 2, 3 + 2] = [3, 5], mean 4, alpha 2: loss 8 = d loss / d log alpha
    value, (g_log_alpha, g_log_prob) = jax.value_and_grad(common.alpha_loss, (0, 1))(log_alpha, log_prob, -2.0)
    assert float(value) == pytest.approx(8.0, rel=1e-6)
    assert float(g_log_alpha) == pytest.approx(8.0, rel=1e-6)
    assert np.all(np.asarray(g_log_prob) == 0.0)  # the entropy term is held fixed
    # entropy above target (-log pi > target) makes the gradient positive: alpha shrinks under descent
    assert float(jax.grad(common.alpha_loss)(jnp.array(0.0), jnp.array([-5.0]), -4.0)) > 0


# ------------------------------------------------------------------------------------------ policy head


def test_squash_log_std_range_and_values():
    raw = jnp.array([-100.0, 0.0, 100.0])
    np.testing.assert_allclose(np.asarray(squash_log_std(raw)), [-5.0, -1.5, 2.0], atol=1e-6)


def test_tanh_gaussian_log_prob_against_numpy():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(4, 3))
    mean = rng.normal(size=(4, 3))
    log_std = rng.uniform(-2, 1, size=(4, 3))
    std = np.exp(log_std)
    gauss = -0.5 * ((u - mean) / std) ** 2 - np.log(std * np.sqrt(2 * np.pi))
    reference = np.sum(gauss - np.log(1 - np.tanh(u) ** 2 + 1e-6), axis=-1)
    got = tanh_gaussian_log_prob(jnp.asarray(u), jnp.asarray(mean), jnp.asarray(log_std))
    np.testing.assert_allclose(np.asarray(got), reference, rtol=1e-5)


def test_tanh_gaussian_log_prob_is_a_density_in_one_dimension():
    # integrate pi(a) over a in (-1, 1) numerically: the change of variables must give total mass ~1
    a = np.linspace(-1 + 1e-4, 1 - 1e-4, 200001)
    u = np.arctanh(a)
    density = np.exp(np.asarray(tanh_gaussian_log_prob(jnp.asarray(u[:, None]), jnp.array([0.3]), jnp.array([-0.5]))))
    assert np.trapezoid(density, a) == pytest.approx(1.0, abs=2e-3)


def test_sample_tanh_gaussian_reparameterised():
    mean = jnp.array([[0.2, -1.0, 3.0]])
    log_std = jnp.array([[-1.0, 0.0, -5.0]])
    key = jax.random.PRNGKey(3)
    action, log_prob = sample_tanh_gaussian(key, mean, log_std)
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    np.testing.assert_allclose(np.asarray(action), np.tanh(np.asarray(u)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(log_prob), np.asarray(tanh_gaussian_log_prob(u, mean, log_std)), rtol=1e-6)


# ---------------------------------------------------------------------------------- config and contract


def test_config_defaults_are_the_papers():
    c = crl.CRLConfig()
    assert (c.repr_dim, c.policy_lr, c.critic_lr, c.alpha_lr) == (64, 3e-4, 3e-4, 3e-4)
    assert (c.logsumexp_penalty, c.relabel.gamma, c.entropy_param, c.energy, c.contrastive_loss) == (
        0.1, 0.99, 0.5, "l2", "fwd_infonce",
    )
    assert c.network == NetworkConfig(depth=4, width=256)
    hash(c)  # static jit argument


@pytest.mark.parametrize(
    "field, build", [("repr_dim", lambda: crl.CRLConfig(repr_dim=0)), ("policy_lr", lambda: crl.CRLConfig(policy_lr=0.0)),
                     ("gamma", lambda: crl.CRLConfig(relabel=RelabelConfig("geometric", 1.0))),
                     ("energy", lambda: crl.CRLConfig(energy="l1")),
                     ("contrastive_loss", lambda: crl.CRLConfig(contrastive_loss="nce"))]
)
def test_bad_config_values_are_config_errors(field, build):
    with pytest.raises(ConfigError, match=field):
        build()


def test_registered_with_geometric_relabelling():
    from gcrl_bench import registry

    algorithm = registry.get_algorithm("crl")
    assert algorithm.config_cls is crl.CRLConfig
    assert crl.CRLConfig().relabel == RelabelConfig("geometric", 0.99, 1.0)
    assert crl.CRLConfig(relabel=RelabelConfig(gamma=0.9)).relabel == RelabelConfig("geometric", 0.9, 1.0)


def test_init_shapes():
    state = _init(CONFIG, SPEC, jax.random.PRNGKey(0))
    p = state.actor_params["params"]
    assert p["input"]["Dense_0"]["kernel"].shape == (SPEC.observation_size, 16)
    assert p["output"]["kernel"].shape == (16, 2 * SPEC.action_size)
    sa = state.critic_params["sa_encoder"]["params"]
    goal = state.critic_params["goal_encoder"]["params"]
    assert sa["input"]["Dense_0"]["kernel"].shape == (SPEC.state_size + SPEC.action_size, 16)
    assert goal["input"]["Dense_0"]["kernel"].shape == (SPEC.goal_size, 16)
    assert sa["output"]["kernel"].shape == goal["output"]["kernel"].shape == (16, CONFIG.repr_dim)
    assert float(state.log_alpha) == 0.0 and int(state.step) == 0
    # the two encoders are initialised independently
    assert not np.allclose(sa["output"]["kernel"], goal["output"]["kernel"])


def test_act_shapes_range_and_determinism():
    state = _init(CONFIG, SPEC, jax.random.PRNGKey(0))
    obs = 3.0 * jax.random.normal(jax.random.PRNGKey(1), (64, SPEC.observation_size))
    a1 = _act(CONFIG, state, obs, jax.random.PRNGKey(2), False)
    a2 = _act(CONFIG, state, obs, jax.random.PRNGKey(2), False)
    a3 = _act(CONFIG, state, obs, jax.random.PRNGKey(3), False)
    assert a1.shape == (64, SPEC.action_size)
    assert bool(jnp.all(jnp.abs(a1) <= 1.0))
    np.testing.assert_array_equal(np.asarray(a1), np.asarray(a2))
    assert not np.allclose(a1, a3)


def test_deterministic_act_is_tanh_of_the_mean():
    state = _init(CONFIG, SPEC, jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (8, SPEC.observation_size))
    out = ResidualMLP(CONFIG.network, 2 * SPEC.action_size).apply(state.actor_params, obs)
    mean, _ = split_policy_output(out)
    for key in (0, 1):  # the key does not matter
        action = _act(CONFIG, state, obs, jax.random.PRNGKey(key), True)
        np.testing.assert_allclose(np.asarray(action), np.tanh(np.asarray(mean)), rtol=1e-6, atol=1e-7)


def _run_updates(seed: int, n: int = 4):
    state = _init(CONFIG, SPEC, jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    metrics = []
    for k in keys:
        data_key, update_key = jax.random.split(k)
        state, m = _update(CONFIG, state, _batch(data_key), update_key)
        metrics.append(m)
    return state, metrics


def test_update_runs_without_nan_and_is_deterministic():
    state, metrics = _run_updates(seed=1)
    again, metrics_again = _run_updates(seed=1)
    other, _ = _run_updates(seed=2)
    assert int(state.step) == 4
    expected_keys = {
        "critic_loss", "infonce_loss", "logsumexp_penalty", "actor_loss", "alpha_loss", "alpha", "entropy",
        "q_mean", "logits_pos", "logits_neg", "logsumexp", "categorical_accuracy",
    }
    for m in metrics:
        assert set(m) == expected_keys
        for name, value in m.items():
            assert value.shape == (), name
            assert bool(jnp.isfinite(value)), name
    for leaf in jax.tree.leaves(state):
        assert bool(jnp.all(jnp.isfinite(leaf)))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(state.log_alpha), np.asarray(other.log_alpha))
    # alpha moved from 1 after the first step (Adam's first step is lr in size)
    assert float(metrics[0]["alpha"]) == 1.0
    assert abs(float(metrics[1]["alpha"]) - 1.0) == pytest.approx(3e-4, rel=0.05)
    assert float(metrics[0]["critic_loss"]) == pytest.approx(
        float(metrics[0]["infonce_loss"] + metrics[0]["logsumexp_penalty"]), rel=1e-6
    )


def test_update_metrics_match_the_losses_on_the_batch():
    state = _init(CONFIG, SPEC, jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(5))
    _, metrics = _update(CONFIG, state, batch, jax.random.PRNGKey(6))
    encoder = ResidualMLP(CONFIG.network, CONFIG.repr_dim)

    @jax.jit
    def logits_of(params):
        phi = encoder.apply(params["sa_encoder"], jnp.concatenate([batch.state, batch.action], -1))
        return crl.l2_energy(phi, encoder.apply(params["goal_encoder"], batch.goal))

    logits = np.asarray(logits_of(state.critic_params))
    assert float(metrics["infonce_loss"]) == pytest.approx(float(crl.infonce_forward_loss(logits)), rel=1e-5)
    assert float(metrics["logits_pos"]) == pytest.approx(np.mean(np.diag(logits)), rel=1e-5)
    off = logits[~np.eye(BATCH, dtype=bool)]
    assert float(metrics["logits_neg"]) == pytest.approx(off.mean(), rel=1e-5)
    accuracy = np.mean(np.argmax(logits, axis=1) == np.arange(BATCH))
    assert float(metrics["categorical_accuracy"]) == pytest.approx(accuracy)


def test_critic_step_uses_only_the_critic_loss():
    # the actor's loss must not leak gradient into the encoders: the new critic equals one Adam step on
    # the InfoNCE + penalty gradient alone
    state = _init(CONFIG, SPEC, jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(5))
    new_state, _ = _update(CONFIG, state, batch, jax.random.PRNGKey(6))
    encoder = ResidualMLP(CONFIG.network, CONFIG.repr_dim)

    def critic_loss(params):
        phi = encoder.apply(params["sa_encoder"], jnp.concatenate([batch.state, batch.action], -1))
        psi = encoder.apply(params["goal_encoder"], batch.goal)
        logits = crl.l2_energy(phi, psi)
        return crl.infonce_forward_loss(logits) + crl.logsumexp_penalty(logits, CONFIG.logsumexp_penalty)

    @jax.jit
    def adam_step(params):
        optimiser = optax.adam(CONFIG.critic_lr)
        updates, _ = optimiser.update(jax.grad(critic_loss)(params), optimiser.init(params))
        return optax.apply_updates(params, updates)

    expected = adam_step(state.critic_params)
    for got, want in zip(jax.tree.leaves(new_state.critic_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)
    # the actor did move
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(new_state.actor_params), jax.tree.leaves(state.actor_params))]
    assert any(moved)


def test_critic_learns_to_pick_its_goal_on_a_fixed_batch():
    # goals are a function of the state: a few dozen steps must beat chance (1 / BATCH) by a wide margin
    config = crl.CRLConfig(network=NetworkConfig(depth=4, width=32), repr_dim=8, critic_lr=3e-3)
    state = crl.init(config, SPEC, jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1), batch=16)
    batch = batch.replace(goal=batch.state[:, :2])

    @jax.jit
    def train(state):
        def body(s, key):
            return crl.update(config, s, batch, key)

        return jax.lax.scan(body, state, jax.random.split(jax.random.PRNGKey(2), 60))

    _, metrics = train(state)
    assert float(metrics["critic_loss"][-1]) < float(metrics["critic_loss"][0]) - 0.5
    assert float(metrics["categorical_accuracy"][-1]) >= 0.75
