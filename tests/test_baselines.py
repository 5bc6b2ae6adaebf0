"""SAC, TD3+HER, GCSL, GCBC: losses and targets by hand, masking, policy delay, configs, contracts."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gcrl_bench import registry
from gcrl_bench.algorithms import common, gcsl, sac, td, td3
from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import RelabelConfig, TaskSpec, Transition
from gcrl_bench.networks import NetworkConfig, ResidualMLP, split_policy_output, tanh_gaussian_log_prob

SPEC = TaskSpec(
    name="tiny", state_size=5, goal_size=2, goal_indices=(0, 1), action_size=3, success_threshold=0.5,
    episode_length=10, env_step_seconds=0.05, backend="none", benchmark=False,
)
NET = NetworkConfig(depth=4, width=16)
BATCH = 6
NAMES = ("sac", "sac_her", "td3_her", "gcsl", "gcbc")


def _batch(key, batch=BATCH):
    ks = jax.random.split(key, 6)
    state = jax.random.normal(ks[0], (batch, SPEC.state_size))
    return Transition(
        state=state,
        action=jax.random.uniform(ks[1], (batch, SPEC.action_size), minval=-0.99, maxval=0.99),
        goal=jax.random.normal(ks[2], (batch, SPEC.goal_size)),
        next_state=state + 0.1 * jax.random.normal(ks[3], (batch, SPEC.state_size)),
        future_state=state,
        reward=jnp.zeros(batch),
        discount=jnp.ones(batch).at[1].set(0.0),
        next_reward=(jax.random.uniform(ks[4], (batch,)) < 0.5).astype(jnp.float32),
        mask=jnp.ones(batch).at[2].set(0.0),
    )


def _config(name, **kw):
    return registry.get_algorithm(name).config_cls(network=NET, **kw)


_init = jax.jit(lambda name, config, key: registry.get_algorithm(name).init(config, SPEC, key), static_argnums=(0, 1))
_update = jax.jit(lambda name, config, s, b, k: registry.get_algorithm(name).update(config, s, b, k), static_argnums=(0, 1))
_act = jax.jit(lambda name, config, s, o, k, d: registry.get_algorithm(name).act(config, s, o, k, d), static_argnums=(0, 1, 5))


# ------------------------------------------------------------------------------------- shared TD pieces


def test_td_loss_hand_computed_and_masked():
    q = jnp.array([[1.0, 2.0], [0.0, 2.0]])
    target = jnp.array([1.0, 0.0])
    # critic 0: errors (0, 4); critic 1: errors (1, 4); mask keeps tuple 0 only: 0.5 * (0 + 1)
    assert float(td.td_loss(q, target, jnp.array([1.0, 0.0]))) == pytest.approx(0.5)
    # no mask: 0.5 * ((0 + 4) / 2 + (1 + 4) / 2) = 2.25
    assert float(td.td_loss(q, target, jnp.ones(2))) == pytest.approx(2.25)
    # the target is held fixed: no gradient flows into it
    assert float(jnp.abs(jax.grad(lambda t: td.td_loss(q, t, jnp.ones(2)))(target)).sum()) == 0.0
    # an all-zero mask gives 0, not NaN
    assert float(td.td_loss(q, target, jnp.zeros(2))) == 0.0


def test_polyak_update_hand_computed():
    target = {"w": jnp.array([0.0, 10.0]), "b": jnp.array(4.0)}
    online = {"w": jnp.array([1.0, 0.0]), "b": jnp.array(2.0)}
    new = td.polyak_update(target, online, 0.1)
    np.testing.assert_allclose(np.asarray(new["w"]), [0.1, 9.0], rtol=1e-6)
    assert float(new["b"]) == pytest.approx(3.8)
    copied = td.polyak_update(target, online, 1.0)
    np.testing.assert_array_equal(np.asarray(copied["w"]), [1.0, 0.0])


def test_td_methods_refuse_a_batch_without_mask():
    batch = _batch(jax.random.PRNGKey(0)).replace(mask=None)
    with pytest.raises(ValueError, match="mask"):
        td.td_batch_parts(batch)


# -------------------------------------------------------------------------------------------------- SAC


def test_soft_td_target_hand_computed():
    next_q = jnp.array([[2.0, 1.0, 5.0], [3.0, 0.5, 5.0]])
    y = sac.soft_td_target(
        next_reward=jnp.array([0.0, 1.0, 1.0]), discount=jnp.array([1.0, 1.0, 0.0]), next_q=next_q,
        next_log_prob=jnp.array([-1.0, 2.0, 0.0]), alpha=jnp.array(0.5), gamma=0.9,
    )
    # 0.9 * (min(2, 3) + 0.5); 1 + 0.9 * (0.5 - 1.0); terminal: 1
    np.testing.assert_allclose(np.asarray(y), [2.25, 1.0 - 0.45, 1.0], rtol=1e-6)


def test_sac_update_target_and_masked_critic_step():
    config = _config("sac")
    state = _init("sac", config, jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1))
    key = jax.random.PRNGKey(2)
    new_state, metrics = _update("sac", config, state, batch, key)

    # the soft target, recomputed by hand from the same key (the first of key's two sub-keys)
    actor = ResidualMLP(NET, 2 * SPEC.action_size)
    mean, log_std = split_policy_output(actor.apply(state.actor_params, jnp.concatenate([batch.next_state, batch.goal], -1)))
    u = mean + jnp.exp(log_std) * jax.random.normal(jax.random.split(key)[0], mean.shape)
    next_q = td.twin_q(NET, state.target_critic_params, batch.next_state, batch.goal, jnp.tanh(u))
    soft_v = np.min(np.asarray(next_q), axis=0) - 1.0 * np.asarray(tanh_gaussian_log_prob(u, mean, log_std))
    target = np.asarray(batch.next_reward) + 0.9 * np.asarray(batch.discount) * soft_v
    valid = np.asarray(batch.mask) > 0
    # one sampled pre-tanh value is about -8, where log(1 - tanh(u)^2 + 1e-6) differs between the compiled
    # and the eager computation in the third digit; a wrong key or a missing term is off by far more
    assert float(metrics["target_mean"]) == pytest.approx(target[valid].mean(), rel=5e-3)

    # the critic moved by one Adam step on the masked TD loss alone
    def loss(params):
        return td.td_loss(td.twin_q(NET, params, batch.state, batch.goal, batch.action), jnp.asarray(target), batch.mask)

    opt = optax.adam(config.critic_lr)
    updates, _ = opt.update(jax.grad(loss)(state.critic_params), opt.init(state.critic_params))
    expected = optax.apply_updates(state.critic_params, updates)
    for got, want in zip(jax.tree.leaves(new_state.critic_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-6)
    # Polyak: target = 0.995 * old target + 0.005 * new critic
    for t_new, t_old, c_new in zip(jax.tree.leaves(new_state.target_critic_params),
                                   jax.tree.leaves(state.target_critic_params), jax.tree.leaves(new_state.critic_params)):
        np.testing.assert_allclose(np.asarray(t_new), 0.995 * np.asarray(t_old) + 0.005 * np.asarray(c_new), rtol=1e-5, atol=1e-7)
    # temperature: Adam's first step moves log alpha by about lr
    assert abs(float(new_state.log_alpha)) == pytest.approx(config.alpha_lr, rel=0.05)


def test_sac_masked_tuple_does_not_touch_the_critic():
    # changing the successor and reward of the mask-0 tuple (index 2) changes nothing in the critic step
    config = _config("sac")
    state = _init("sac", config, jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1))
    other = batch.replace(next_state=batch.next_state.at[2].add(50.0), next_reward=batch.next_reward.at[2].set(7.0))
    a, _ = _update("sac", config, state, batch, jax.random.PRNGKey(2))
    b, _ = _update("sac", config, state, other, jax.random.PRNGKey(2))
    for x, y in zip(jax.tree.leaves(a.critic_params), jax.tree.leaves(b.critic_params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-8)
    # while the same change on a valid tuple (index 0) does
    third = batch.replace(next_reward=batch.next_reward.at[0].set(7.0))
    c, _ = _update("sac", config, state, third, jax.random.PRNGKey(2))
    assert any(not np.allclose(x, y) for x, y in zip(jax.tree.leaves(a.critic_params), jax.tree.leaves(c.critic_params)))


# -------------------------------------------------------------------------------------------------- TD3


def test_td3_target_hand_computed():
    y = td3.td3_target(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0]), jnp.array([[4.0, 9.0], [3.0, 8.0]]), 0.9)
    np.testing.assert_allclose(np.asarray(y), [1.0 + 0.9 * 3.0, 0.0], rtol=1e-6)
    assert float(td3.deterministic_actor_loss(jnp.array([1.0, 3.0]))) == -2.0


def test_smoothed_target_action_clips_noise_and_action():
    key = jax.random.PRNGKey(0)
    mu = jnp.array([[0.0, 0.9, -0.95]] * 400)
    out = np.asarray(td3.smoothed_target_action(key, mu, 0.2, 0.5))
    eps = np.clip(0.2 * np.asarray(jax.random.normal(key, mu.shape)), -0.5, 0.5)
    np.testing.assert_allclose(out, np.clip(np.asarray(mu) + eps, -1, 1), rtol=1e-6)
    assert np.all(np.abs(out - np.asarray(mu)) <= 0.5 + 1e-6) and np.all(np.abs(out) <= 1.0)
    assert np.any(np.abs(eps) == 0.5)  # 400 x 3 draws of N(0, 0.2): some beyond 2.5 sigma are clipped
    assert np.std(out[:, 0]) == pytest.approx(0.2, rel=0.15)


def test_td3_update_target_with_clipped_double_q_and_smoothing():
    config = _config("td3_her")
    state = _init("td3_her", config, jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1))
    key = jax.random.PRNGKey(3)
    _, metrics = _update("td3_her", config, state, batch, key)
    actor = ResidualMLP(NET, SPEC.action_size)
    mu = jnp.tanh(actor.apply(state.target_actor_params, jnp.concatenate([batch.next_state, batch.goal], -1)))
    eps = jnp.clip(0.2 * jax.random.normal(key, mu.shape), -0.5, 0.5)
    next_q = np.asarray(td.twin_q(NET, state.target_critic_params, batch.next_state, batch.goal, jnp.clip(mu + eps, -1, 1)))
    target = np.asarray(batch.next_reward) + 0.9 * np.asarray(batch.discount) * next_q.min(axis=0)
    valid = np.asarray(batch.mask) > 0
    assert float(metrics["target_mean"]) == pytest.approx(target[valid].mean(), rel=1e-4, abs=1e-5)


def test_td3_policy_delay_moves_actor_and_targets_every_second_step():
    config = _config("td3_her")
    s0 = _init("td3_her", config, jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1))

    def same(a, b):
        return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    s1, m1 = _update("td3_her", config, s0, batch, jax.random.PRNGKey(2))  # step 0: actor + targets
    s2, m2 = _update("td3_her", config, s1, batch, jax.random.PRNGKey(3))  # step 1: critics only
    s3, m3 = _update("td3_her", config, s2, batch, jax.random.PRNGKey(4))  # step 2: actor + targets
    assert [float(m["actor_updated"]) for m in (m1, m2, m3)] == [1.0, 0.0, 1.0]
    assert not same(s1.actor_params, s0.actor_params) and not same(s1.target_actor_params, s0.target_actor_params)
    assert not same(s1.target_critic_params, s0.target_critic_params)
    assert same(s2.actor_params, s1.actor_params) and same(s2.target_actor_params, s1.target_actor_params)
    assert same(s2.target_critic_params, s1.target_critic_params) and not same(s2.critic_params, s1.critic_params)
    assert not same(s3.actor_params, s2.actor_params)
    # the target actor is the Polyak average of the *target* and the new online actor (TD3 paper)
    for t1, t0, a1 in zip(jax.tree.leaves(s1.target_actor_params), jax.tree.leaves(s0.target_actor_params),
                          jax.tree.leaves(s1.actor_params)):
        np.testing.assert_allclose(np.asarray(t1), 0.995 * np.asarray(t0) + 0.005 * np.asarray(a1), rtol=1e-5, atol=1e-7)
    assert int(s3.step) == 3


def test_td3_exploration_noise_is_clipped_gaussian():
    config = _config("td3_her")
    state = _init("td3_her", config, jax.random.PRNGKey(0))
    obs = jnp.tile(jax.random.normal(jax.random.PRNGKey(1), (1, SPEC.observation_size)), (2000, 1))
    mu = np.asarray(_act("td3_her", config, state, obs, jax.random.PRNGKey(2), True))
    noisy = np.asarray(_act("td3_her", config, state, obs, jax.random.PRNGKey(2), False))
    actor = ResidualMLP(NET, SPEC.action_size)
    np.testing.assert_allclose(mu, np.tanh(np.asarray(actor.apply(state.actor_params, obs))), rtol=1e-6, atol=1e-7)
    inside = np.abs(mu[0]) < 0.5  # dimensions where the [-1, 1] clip cannot bind
    diff = (noisy - mu)[:, inside]
    assert np.all(np.abs(noisy - mu) <= 0.5 + 1e-6) and np.all(np.abs(noisy) <= 1.0)
    # N(0, 0.4) clipped at 0.5: P(|eps| >= 0.5) = 2 * (1 - Phi(1.25)) = 0.211, std of the clipped law 0.33
    assert np.mean(np.isclose(np.abs(diff), 0.5)) == pytest.approx(0.211, abs=0.03)
    assert np.std(diff) == pytest.approx(0.33, abs=0.02)


# ----------------------------------------------------------------------------------------- GCSL / GCBC


def test_taken_action_log_prob_hand_computed():
    one = common.taken_action_log_prob(jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.zeros((1, 1)))
    assert float(one[0]) == pytest.approx(-0.5 * math.log(2 * math.pi) - math.log(1 + 1e-6), abs=1e-6)
    # a = tanh(0.5), mean 0.2, std e^-1: log N(0.5; 0.2, e^-1) - log(1 - tanh(0.5)^2 + 1e-6)
    a = math.tanh(0.5)
    z = (0.5 - 0.2) / math.exp(-1.0)
    want = -0.5 * z * z + 1.0 - 0.5 * math.log(2 * math.pi) - math.log(1 - a * a + 1e-6)
    got = common.taken_action_log_prob(jnp.array([[a]]), jnp.array([[0.2]]), jnp.array([[-1.0]]))
    assert float(got[0]) == pytest.approx(want, rel=1e-4)
    # two dimensions add; a saturated action is clipped to 1 - 1e-6 and stays finite
    both = common.taken_action_log_prob(jnp.array([[0.0, a]]), jnp.array([[0.0, 0.2]]), jnp.array([[0.0, -1.0]]))
    assert float(both[0]) == pytest.approx(float(one[0]) + want, rel=1e-4)
    edge = common.taken_action_log_prob(jnp.array([[1.0]]), jnp.array([[0.0]]), jnp.array([[0.0]]))
    u = math.atanh(np.float32(1 - 1e-6))
    assert np.isfinite(float(edge[0]))
    # 1 - tanh(u)^2 = 2e-6 is computed in float32 here (a few percent off inside the log, 0.04 outside)
    want_edge = -0.5 * u * u - 0.5 * math.log(2 * math.pi) - math.log(1 - math.tanh(u) ** 2 + 1e-6)
    assert float(edge[0]) == pytest.approx(want_edge, abs=0.1)


def test_supervised_policy_loss_hand_computed():
    taken = jnp.array([-1.0, -3.0])
    assert float(gcsl.supervised_policy_loss(taken, None, 0.7)) == pytest.approx(2.0)
    assert float(gcsl.supervised_policy_loss(taken, jnp.array([2.0, 0.0]), 0.5)) == pytest.approx(2.5)


def test_gcsl_learns_the_taken_action_on_a_fixed_batch():
    # maximum likelihood first widens the policy (log pi of the taken actions starts near -500: they lie
    # many initial standard deviations away), then pulls tanh(mean) onto the taken actions and narrows it.
    # Measured (400 steps, lr 3e-3): log pi -496 -> -2.4 after 40 steps -> +1.3; error 0.60 -> 0.40.
    config = gcsl.GCSLConfig(network=NET, policy_lr=3e-3)
    state = _init("gcsl", config, jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1), batch=16)

    @jax.jit
    def train(state):
        return jax.lax.scan(lambda s, k: gcsl.update(config, s, batch, k), state, jax.random.split(jax.random.PRNGKey(2), 400))

    state, metrics = train(state)
    log_prob, error, log_std = (np.asarray(metrics[k]) for k in ("log_prob_taken", "action_error", "log_std"))
    assert log_prob[0] < -100 and log_prob[-1] > log_prob[40] + 2.5 and log_prob[-1] > 0.0
    assert error[-1] < 0.75 * error[0]
    assert log_std[-1] < log_std[40] - 0.5  # narrowing once the mean fits


# ------------------------------------------------------------------------------------ configs, registry


def test_registered_relabelling_per_algorithm():
    relabel = {name: _config(name).relabel for name in NAMES}
    assert relabel["sac"].strategy == "none"
    assert relabel["sac_her"] == RelabelConfig("future", 0.99, 0.8)
    assert relabel["td3_her"] == RelabelConfig("future", 0.99, 0.8)
    assert relabel["gcsl"] == RelabelConfig("future", 0.99, 1.0)
    assert relabel["gcbc"] == RelabelConfig("geometric", 0.99, 1.0)
    assert _config("sac_her", relabel=RelabelConfig("final", 0.99, 1.0)).relabel == (
        RelabelConfig("final", 0.99, 1.0))
    assert not _config("gcsl").entropy_bonus and _config("gcbc").entropy_bonus


def test_defaults_and_their_sources():
    s, t = sac.SACConfig(), td3.TD3Config()
    assert (s.policy_lr, s.critic_lr, s.alpha_lr, s.discount, s.tau, s.entropy_param) == (1e-4, 1e-4, 3e-4, 0.9, 0.005, 0.5)
    assert (t.policy_lr, t.discount, t.tau, t.policy_noise, t.noise_clip, t.policy_delay) == (3e-4, 0.9, 0.005, 0.2, 0.5, 2)
    assert (t.exploration_noise, t.exploration_clip) == (0.4, 0.5)
    for name in NAMES:
        hash(_config(name))


@pytest.mark.parametrize("cls, field, value", [
    (sac.SACConfig, "discount", 1.0), (sac.SACConfig, "tau", 0.0),
    (sac.SACHERConfig, "fraction", lambda: RelabelConfig("future", 0.99, 0.0)),
    (sac.SACConfig, "strategy", lambda: RelabelConfig("episode")), (td3.TD3Config, "policy_delay", 0),
    (td3.TD3Config, "policy_noise", -0.1), (gcsl.GCSLConfig, "relabel", lambda: RelabelConfig("final")),
    (gcsl.GCBCConfig, "policy_lr", 0.0),
])
def test_bad_config_values_are_config_errors(cls, field, value):
    # a relabelling value is built inside the check: RelabelConfig validates itself on construction
    with pytest.raises(ConfigError, match=field):
        cls(**{"relabel" if callable(value) else field: value() if callable(value) else value})


@pytest.mark.parametrize("name", NAMES)
def test_contract_shapes_finite_and_deterministic(name):
    config = _config(name)
    state = _init(name, config, jax.random.PRNGKey(0))
    obs = 3.0 * jax.random.normal(jax.random.PRNGKey(1), (32, SPEC.observation_size))
    for deterministic in (False, True):
        a = _act(name, config, state, obs, jax.random.PRNGKey(2), deterministic)
        assert a.shape == (32, SPEC.action_size) and bool(jnp.all(jnp.abs(a) <= 1.0))
        np.testing.assert_array_equal(a, _act(name, config, state, obs, jax.random.PRNGKey(2), deterministic))
    stochastic = [_act(name, config, state, obs, jax.random.PRNGKey(k), False) for k in (2, 3)]
    assert not np.allclose(*stochastic)

    def run(seed):
        s = state
        for k in jax.random.split(jax.random.PRNGKey(seed), 3):
            s, m = _update(name, config, s, _batch(k), k)
        return s, m

    s, m = run(5)
    again, _ = run(5)
    assert int(s.step) == 3
    for key, value in m.items():
        assert value.shape == () and bool(jnp.isfinite(value)), key
    for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(again)):
        assert bool(jnp.all(jnp.isfinite(a)))
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
