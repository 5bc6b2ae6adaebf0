"""CRL variants: energies and critic objectives against hand-computed values, the energies' gradients, the
matmul precision, and one update step of every variant."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gcrl_bench import results
from gcrl_bench.algorithms import crl
from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import TaskSpec, Transition
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.overrides import Override, apply_overrides, resolve_overrides

SPEC = TaskSpec(
    name="tiny", state_size=5, goal_size=2, goal_indices=(0, 1), action_size=3, success_threshold=0.5,
    episode_length=10, env_step_seconds=0.05, backend="none", benchmark=False,
)
BATCH = 6
EPS32 = float(np.finfo(np.float32).eps)


def softplus(x: float) -> float:
    return math.log(1.0 + math.exp(x))


def logits_of(energy, phi, psi, log_temperature=0.0, precision="highest"):
    params = {"log_temperature": jnp.asarray(log_temperature, jnp.float32)}
    return crl.energy_logits(energy, params, jnp.asarray(phi, jnp.float32), jnp.asarray(psi, jnp.float32), precision)


# ----------------------------------------------------------------------------------------------- energies


def test_l2_squared_energy_hand_computed():
    phi = jnp.array([[0.0, 0.0], [3.0, 4.0]])
    psi = jnp.array([[0.0, 1.0], [0.0, 4.0]])
    # squared distances: (0,0)-(0,1) = 1, (0,0)-(0,4) = 16, (3,4)-(0,1) = 9 + 9, (3,4)-(0,4) = 9
    np.testing.assert_allclose(np.asarray(crl.l2_squared_energy(phi, psi)), -np.array([[1.0, 16.0], [18.0, 9.0]]),
                               rtol=1e-6)


def test_dot_energy_hand_computed_on_a_3x2_batch():
    phi = jnp.array([[1.0, 2.0], [3.0, 4.0], [0.0, -1.0]])
    psi = jnp.array([[1.0, 0.0], [2.0, -1.0]])
    # [1*1 + 2*0, 1*2 - 2*1], [3, 6 - 4], [0, 0 + 1]
    np.testing.assert_allclose(np.asarray(crl.dot_energy(phi, psi)), [[1.0, 0.0], [3.0, 2.0], [0.0, 1.0]], rtol=1e-6)


def test_cosine_energy_hand_computed():
    phi = jnp.array([[3.0, 4.0], [0.0, 2.0]])  # rows normalise to (0.6, 0.8) and (0, 1)
    psi = jnp.array([[1.0, 0.0], [0.0, 5.0]])  # (1, 0) and (0, 1)
    got = crl.cosine_energy(phi, psi, jnp.log(0.5))  # tau = 0.5: logits are twice the cosines
    np.testing.assert_allclose(np.asarray(got), [[1.2, 1.6], [0.0, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(crl.l2_normalise_rows(phi)), [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)


def test_cosine_energy_is_invariant_to_scaling_a_row_and_normalises_each_row_on_its_own():
    phi = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    psi = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    log_t = jnp.log(0.2)
    base = np.asarray(crl.cosine_energy(phi, psi, log_t))
    for row, factor in ((0, 7.0), (2, 0.01)):
        scaled = phi.at[row].multiply(factor)
        np.testing.assert_allclose(np.asarray(crl.cosine_energy(scaled, psi, log_t)), base, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(crl.cosine_energy(phi, psi.at[row].multiply(factor), log_t)), base,
                                   rtol=1e-5, atol=1e-6)
    # every entry is a cosine divided by tau = 0.2: in [-5, 5]
    assert np.all(np.abs(base) <= 5.0 + 1e-5)
    # normalising over the whole batch instead would not be invariant: scaling row 0 changes row 1's logits
    batch_wide = lambda a: (a / jnp.linalg.norm(a)) @ (psi / jnp.linalg.norm(psi)).T
    assert not np.allclose(np.asarray(batch_wide(phi.at[0].multiply(7.0)))[1], np.asarray(batch_wide(phi))[1])


def test_cosine_of_a_zero_row_is_zero_with_a_finite_gradient():
    phi = jnp.array([[0.0, 0.0], [1.0, 1.0]])
    psi = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    logits = crl.cosine_energy(phi, psi, jnp.array(0.0))
    np.testing.assert_allclose(np.asarray(logits[0]), 0.0)
    grads = jax.grad(lambda a, b: jnp.sum(crl.cosine_energy(a, b, jnp.array(0.0))), (0, 1))(phi, psi)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


@pytest.mark.parametrize("energy", crl.ENERGIES)
def test_pair_energy_is_the_diagonal_of_the_logits(energy):
    phi = jax.random.normal(jax.random.PRNGKey(3), (5, 4))
    psi = jax.random.normal(jax.random.PRNGKey(4), (5, 4))
    params = {"log_temperature": jnp.log(jnp.float32(0.3))}
    diagonal = jnp.diagonal(crl.energy_logits(energy, params, phi, psi))
    np.testing.assert_allclose(np.asarray(crl.pair_energy(energy, params, phi, psi)), np.asarray(diagonal),
                               rtol=1e-5, atol=1e-6)


def test_pair_energy_hand_computed():
    phi = jnp.array([[0.0, 0.0], [1.0, 1.0]])
    psi = jnp.array([[3.0, 4.0], [1.0, 1.0]])
    params = {"log_temperature": jnp.array(0.0)}
    np.testing.assert_allclose(np.asarray(crl.pair_energy("l2", params, phi, psi)), [-5.0, 0.0])
    np.testing.assert_allclose(np.asarray(crl.pair_energy("l2_squared", params, phi, psi)), [-25.0, 0.0])
    np.testing.assert_allclose(np.asarray(crl.pair_energy("dot", params, phi, psi)), [0.0, 2.0])
    np.testing.assert_allclose(np.asarray(crl.pair_energy("cosine", params, phi, psi)), [0.0, 1.0], rtol=1e-6)


# ------------------------------------------------------------------------- gradients and matmul precision


def _plain_l2(phi, psi):
    return -jnp.linalg.norm(phi[:, None] - psi[None], axis=-1)


def _plain_l2_squared(phi, psi):
    return -jnp.sum(jnp.square(phi[:, None] - psi[None]), axis=-1)


def _weighted_grads(fn, phi, psi, weights):
    return jax.grad(lambda a, b: jnp.sum(weights * fn(a, b)), (0, 1))(phi, psi)


@pytest.mark.parametrize("precision", crl.MATMUL_PRECISIONS)
def test_l2_custom_gradient_equals_autodiff_of_the_plain_formula(precision):
    phi = jax.random.normal(jax.random.PRNGKey(0), (7, 4))
    psi = jax.random.normal(jax.random.PRNGKey(1), (7, 4))
    weights = jax.random.normal(jax.random.PRNGKey(2), (7, 7))
    got = _weighted_grads(lambda a, b: crl.l2_energy(a, b, precision), phi, psi, weights)
    want = _weighted_grads(_plain_l2, phi, psi, weights)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", crl.MATMUL_PRECISIONS)
@pytest.mark.parametrize("gap", [1e-2, 1e-3, 1e-4])
def test_l2_custom_gradient_on_nearly_equal_rows_is_within_float32_rounding(precision, gap):
    # psi_i = phi_i + gap * noise: the diagonal distances are ~gap, and the two matmul terms of the custom
    # gradient cancel to about |phi| / gap of their size. The difference from the plain gradient must stay
    # within 4 float32 roundings of those terms: eps * (rowsum|h| |phi| + |h| @ |psi|), h = weights / L.
    phi = 3.0 * jax.random.normal(jax.random.PRNGKey(5), (8, 4)) + 5.0
    psi = phi + gap * jax.random.normal(jax.random.PRNGKey(6), (8, 4))
    weights = jax.random.normal(jax.random.PRNGKey(7), (8, 8))
    got = _weighted_grads(lambda a, b: crl.l2_energy(a, b, precision), phi, psi, weights)
    want = _weighted_grads(_plain_l2, phi, psi, weights)
    p, s, w = (np.asarray(x, np.float64) for x in (phi, psi, weights))
    h = np.abs(w / np.linalg.norm(p[:, None] - s[None], axis=-1))
    bound_phi = EPS32 * (h.sum(1, keepdims=True) * np.abs(p) + h @ np.abs(s))
    bound_psi = EPS32 * (h.sum(0)[:, None] * np.abs(s) + h.T @ np.abs(p))
    for g, wt, bound in zip(got, want, (bound_phi, bound_psi)):
        assert np.all(np.isfinite(np.asarray(g)))
        error = np.abs(np.asarray(g, np.float64) - np.asarray(wt, np.float64))
        assert np.all(error <= 4.0 * bound + 1e-6), float(np.max(error / (bound + 1e-12)))
    # the bound is far from vacuous: a tenth of the gradient's size even at the closest rows
    assert float(np.max(bound_phi)) < 0.1 * float(np.max(np.abs(np.asarray(want[0]))))


@pytest.mark.parametrize("precision", crl.MATMUL_PRECISIONS)
def test_l2_squared_gradient_equals_autodiff_and_is_zero_for_identical_rows(precision):
    phi = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    psi = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    weights = jax.random.normal(jax.random.PRNGKey(2), (5, 5))
    got = _weighted_grads(lambda a, b: crl.l2_squared_energy(a, b, precision), phi, psi, weights)
    want = _weighted_grads(_plain_l2_squared, phi, psi, weights)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
    # identical inputs, only the diagonal weighted: every difference is 0, so is the gradient (no epsilon)
    same = _weighted_grads(lambda a, b: crl.l2_squared_energy(a, b, precision), phi, phi, jnp.eye(5))
    for g in same:
        np.testing.assert_array_equal(np.asarray(g), 0.0)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="a CPU computes float32 in full at every precision")
def test_matmul_precision_changes_nothing_on_cpu():
    phi = jax.random.normal(jax.random.PRNGKey(0), (16, 8))
    psi = jax.random.normal(jax.random.PRNGKey(1), (16, 8))
    weights = jax.random.normal(jax.random.PRNGKey(2), (16, 16))
    for energy in crl.ENERGIES:
        grads = [jax.jit(lambda a, b, p=p: _weighted_grads(
            lambda x, y: logits_of(energy, x, y, -1.0, p), a, b, weights))(phi, psi) for p in crl.MATMUL_PRECISIONS]
        for other in grads[1:]:
            for a, b in zip(grads[0], other):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("energy, objective", list(itertools.product(crl.ENERGIES, crl.CONTRASTIVE_LOSSES)))
def test_critic_gradients_are_finite(energy, objective):
    phi = jax.random.normal(jax.random.PRNGKey(8), (6, 4))
    psi = jax.random.normal(jax.random.PRNGKey(9), (6, 4))

    def loss(a, b, log_t):
        logits = crl.energy_logits(energy, {"log_temperature": log_t}, a, b)
        return crl.contrastive_loss(objective, logits) + crl.logsumexp_penalty(logits, 0.1)

    grads = jax.grad(loss, (0, 1, 2))(phi, psi, jnp.log(jnp.float32(0.07)))
    for g in grads:
        assert bool(jnp.all(jnp.isfinite(g)))
    assert float(jnp.max(jnp.abs(grads[0]))) > 0
    if energy == "cosine":
        assert float(grads[2]) != 0.0  # the temperature is learned
    else:
        assert float(grads[2]) == 0.0


# ------------------------------------------------------------------------------------------- objectives

ASYMMETRIC = jnp.array([[-1.0, -3.0], [-2.0, -4.0]])


def test_backward_infonce_hand_computed():
    # column 0: -(-1) + log(e^-1 + e^-2); column 1: -(-4) + log(e^-3 + e^-4)
    col0 = 1 + math.log(math.exp(-1) + math.exp(-2))
    col1 = 4 + math.log(math.exp(-3) + math.exp(-4))
    assert float(crl.infonce_backward_loss(ASYMMETRIC)) == pytest.approx((col0 + col1) / 2, rel=1e-6)


def test_backward_infonce_is_a_softmax_over_states_per_column():
    logits = np.random.default_rng(1).normal(size=(3, 3))
    log_softmax_cols = logits - np.log(np.exp(logits).sum(axis=0, keepdims=True))
    reference = -np.mean(np.diag(log_softmax_cols))
    assert float(crl.infonce_backward_loss(jnp.asarray(logits))) == pytest.approx(reference, rel=1e-5)
    assert float(crl.infonce_forward_loss(jnp.asarray(logits.T))) == pytest.approx(reference, rel=1e-5)
    shifted_col = logits.copy()
    shifted_col[:, 2] += 5.0  # a constant per column changes nothing, per row it does
    assert float(crl.infonce_backward_loss(jnp.asarray(shifted_col))) == pytest.approx(reference, rel=1e-5)
    shifted_row = logits.copy()
    shifted_row[2] += 5.0
    assert abs(float(crl.infonce_backward_loss(jnp.asarray(shifted_row))) - reference) > 0.1


def test_symmetric_infonce_hand_computed():
    rows = (1 + math.log(math.exp(-1) + math.exp(-3))) + (4 + math.log(math.exp(-2) + math.exp(-4)))
    cols = (1 + math.log(math.exp(-1) + math.exp(-2))) + (4 + math.log(math.exp(-3) + math.exp(-4)))
    assert float(crl.infonce_symmetric_loss(ASYMMETRIC)) == pytest.approx((rows / 2 + cols / 2) / 2, rel=1e-6)


def test_binary_nce_hand_computed():
    # positives (diagonal -1, -4): softplus(1), softplus(4); negatives (-3, -2): softplus(-3), softplus(-2)
    expected = (softplus(1) + softplus(4) + softplus(-3) + softplus(-2)) / 4
    assert float(crl.binary_nce_loss(ASYMMETRIC)) == pytest.approx(expected, rel=1e-6)
    assert float(crl.binary_nce_loss(jnp.zeros((2, 2)))) == pytest.approx(math.log(2), rel=1e-6)
    # 3x3: diagonal 2, off-diagonal 0: (3 softplus(-2) + 6 log 2) / 9
    logits = 2.0 * jnp.eye(3)
    assert float(crl.binary_nce_loss(logits)) == pytest.approx((3 * softplus(-2) + 6 * math.log(2)) / 9, rel=1e-6)


def test_contrastive_loss_dispatches_by_name():
    for name, fn in (("fwd_infonce", crl.infonce_forward_loss), ("bwd_infonce", crl.infonce_backward_loss),
                     ("sym_infonce", crl.infonce_symmetric_loss), ("binary_nce", crl.binary_nce_loss)):
        assert float(crl.contrastive_loss(name, ASYMMETRIC)) == float(fn(ASYMMETRIC))
    with pytest.raises(ConfigError, match="contrastive_loss 'nce'"):
        crl.contrastive_loss("nce", ASYMMETRIC)


@pytest.mark.parametrize("objective", crl.CONTRASTIVE_LOSSES)
def test_every_pair_high_loses_to_a_perfect_diagonal_on_logits(objective):
    batch = 4
    everything_high = crl.contrastive_loss(objective, jnp.full((batch, batch), 5.0))
    perfect = crl.contrastive_loss(objective, 10.0 * jnp.eye(batch) - 5.0)  # diagonal 5, the rest -5
    assert float(perfect) < 0.01 < float(everything_high)


@pytest.mark.parametrize("energy, objective", list(itertools.product(crl.ENERGIES, crl.CONTRASTIVE_LOSSES)))
def test_every_pair_high_loses_to_a_perfect_diagonal_critic(energy, objective):
    batch = 4
    log_t = math.log(crl.COSINE_TEMPERATURE_INIT)
    # every (s, a) and every goal at the same point: all pairs get the same, highest score
    same = jnp.full((batch, 3), 2.0)
    high = logits_of(energy, same, same, log_t)
    assert float(jnp.max(high) - jnp.min(high)) < 1e-5
    # each phi_i on its own psi_i, the others orthogonal at length 3
    spread = jnp.pad(3.0 * jnp.eye(batch), ((0, 0), (0, 1)))
    perfect = logits_of(energy, spread, spread, log_t)
    assert bool(jnp.all(jnp.argmax(perfect, axis=1) == jnp.arange(batch)))
    assert float(crl.contrastive_loss(objective, perfect)) < float(crl.contrastive_loss(objective, high))


# -------------------------------------------------------------------------------------------- the config


def test_every_variant_is_a_valid_config_and_none_is_refused():
    for energy, objective, precision in itertools.product(crl.ENERGIES, crl.CONTRASTIVE_LOSSES, crl.MATMUL_PRECISIONS):
        config = crl.CRLConfig(energy=energy, contrastive_loss=objective, matmul_precision=precision,
                               logsumexp_penalty=0.0)
        hash(config)
    assert crl.CRLConfig().matmul_precision == "highest"


@pytest.mark.parametrize("field, value", [("energy", "cos"), ("contrastive_loss", "infonce"),
                                          ("matmul_precision", "tf32")])
def test_unknown_variant_is_one_config_error_line(field, value):
    with pytest.raises(ConfigError) as info:
        crl.CRLConfig(**{field: value})
    message = str(info.value)
    assert "\n" not in message and field in message and repr(value) in message
    default = getattr(crl.CRLConfig(), field)
    assert repr(default) in message  # names the default and ...
    for allowed in {"energy": crl.ENERGIES, "contrastive_loss": crl.CONTRASTIVE_LOSSES,
                    "matmul_precision": crl.MATMUL_PRECISIONS}[field]:
        assert allowed in message  # ... every accepted value


def test_set_overrides_reach_the_variant_fields_and_config_json_records_them():
    items = [Override(k, v, f"--set {k}={v}") for k, v in (("energy", "cosine"), ("contrastive_loss", "sym_infonce"),
                                                            ("logsumexp_penalty", "0"), ("matmul_precision", "high"))]
    changes = resolve_overrides(items, {"crl": crl.CRLConfig})["crl"]
    config = apply_overrides(crl.CRLConfig(), changes, "crl")
    assert (config.energy, config.contrastive_loss, config.logsumexp_penalty, config.matmul_precision) == (
        "cosine", "sym_infonce", 0.0, "high")
    recorded = results.jsonable(config)
    assert (recorded["energy"], recorded["contrastive_loss"], recorded["matmul_precision"]) == (
        "cosine", "sym_infonce", "high")
    assert results.jsonable(crl.CRLConfig())["matmul_precision"] == "highest"
    with pytest.raises(ConfigError, match="matmul_precision"):
        resolve_overrides([Override("matmul_precision", "tf32", "--set matmul_precision=tf32")], {"crl": crl.CRLConfig})


# ------------------------------------------------------------------------------------ one update per variant


def _batch(key, batch=BATCH):
    ks = jax.random.split(key, 3)
    zeros = jnp.zeros((batch, SPEC.state_size))
    return Transition(
        state=jax.random.normal(ks[0], (batch, SPEC.state_size)),
        action=jax.random.uniform(ks[1], (batch, SPEC.action_size), minval=-1, maxval=1),
        goal=jax.random.normal(ks[2], (batch, SPEC.goal_size)),
        next_state=zeros, future_state=zeros, reward=jnp.zeros(batch), discount=jnp.ones(batch),
    )


VARIANTS = [
    dict(energy="l2_squared"), dict(energy="dot"), dict(energy="cosine"),
    dict(contrastive_loss="bwd_infonce"), dict(contrastive_loss="sym_infonce"), dict(contrastive_loss="binary_nce"),
    dict(energy="cosine", contrastive_loss="binary_nce"), dict(logsumexp_penalty=0.0),
    dict(matmul_precision="default"),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()))
def test_one_update_step_per_variant_runs_and_changes_the_parameters(variant):
    config = crl.CRLConfig(network=NetworkConfig(depth=4, width=16), repr_dim=8, **variant)
    state = crl.init(config, SPEC, jax.random.PRNGKey(0))
    new_state, metrics = jax.jit(crl.update, static_argnums=0)(config, state, _batch(jax.random.PRNGKey(1)),
                                                               jax.random.PRNGKey(2))
    for name, value in metrics.items():
        assert value.shape == () and bool(jnp.isfinite(value)), name
    for leaf in jax.tree.leaves(new_state):
        assert bool(jnp.all(jnp.isfinite(leaf)))
    for part in ("sa_encoder", "goal_encoder"):
        old_kernel = state.critic_params[part]["params"]["output"]["kernel"]
        new_kernel = new_state.critic_params[part]["params"]["output"]["kernel"]
        assert not np.allclose(np.asarray(old_kernel), np.asarray(new_kernel)), part
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(new_state.actor_params),
                                                   jax.tree.leaves(state.actor_params))]
    assert any(moved)
    assert float(metrics["critic_loss"]) == pytest.approx(
        float(metrics["infonce_loss"] + metrics["logsumexp_penalty"]), rel=1e-6)
    if config.logsumexp_penalty == 0.0:
        assert float(metrics["logsumexp_penalty"]) == 0.0
    if config.energy == "cosine":
        assert set(state.critic_params) == {"sa_encoder", "goal_encoder", "log_temperature"}
        assert float(metrics["temperature"]) == pytest.approx(crl.COSINE_TEMPERATURE_INIT, rel=1e-6)
        # Adam's first step moves log tau by the learning rate
        step = float(new_state.critic_params["log_temperature"] - state.critic_params["log_temperature"])
        assert abs(step) == pytest.approx(config.critic_lr, rel=0.05)
    else:
        assert set(state.critic_params) == {"sa_encoder", "goal_encoder"} and "temperature" not in metrics


def test_update_uses_the_configured_energy_and_objective():
    # the reported objective is the chosen one on the pre-update critic's logits
    config = crl.CRLConfig(network=NetworkConfig(depth=4, width=16), repr_dim=8, energy="dot",
                           contrastive_loss="binary_nce")
    state = crl.init(config, SPEC, jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1))
    _, metrics = jax.jit(crl.update, static_argnums=0)(config, state, batch, jax.random.PRNGKey(2))
    encoder = crl._encoder(config)
    phi = encoder.apply(state.critic_params["sa_encoder"], jnp.concatenate([batch.state, batch.action], -1))
    psi = encoder.apply(state.critic_params["goal_encoder"], batch.goal)
    logits = np.asarray(phi) @ np.asarray(psi).T
    sig_ce = np.log1p(np.exp(np.where(np.eye(BATCH, dtype=bool), -logits, logits)))
    assert float(metrics["infonce_loss"]) == pytest.approx(float(sig_ce.mean()), rel=1e-4)
    assert float(metrics["logits_pos"]) == pytest.approx(float(np.mean(np.diag(logits))), rel=1e-4, abs=1e-6)
