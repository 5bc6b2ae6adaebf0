"""The shared algorithm pieces (gcrl_bench.algorithms.common) by hand, and the one relabelling field of every
algorithm config: RelabelConfig's validation, each algorithm's accepted strategies, config.json round trip."""

import ast
import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gcrl_bench import registry, results
from gcrl_bench.algorithms import common, crl, gcsl, sac, td, td3
from gcrl_bench.errors import ConfigError
from gcrl_bench.interface import Algorithm, RelabelConfig, TaskSpec
from gcrl_bench.networks import NetworkConfig, ResidualMLP
from gcrl_bench.rundirs import config_from_dict

SPEC = TaskSpec(
    name="tiny", state_size=5, goal_size=2, goal_indices=(0, 1), action_size=3, success_threshold=0.5,
    episode_length=10, env_step_seconds=0.05, backend="none", benchmark=False,
)
NET = NetworkConfig(depth=4, width=16)
ALGORITHMS = Path(__file__).resolve().parents[1] / "algorithms"


# ------------------------------------------------------------------------------------ tanh-Gaussian actor


def test_taken_action_log_prob_at_a_set_point():
    u = np.array([0.3, -1.2])
    mean, log_std = np.array([0.1, -0.5]), np.array([-0.5, 0.2])
    # per dimension: -0.5 z^2 - log_std - 0.5 log(2 pi) - log(1 - tanh(u)^2 + 1e-6), z = (u - mean) / std
    #   dim 0: z = 0.2 e^0.5 = 0.32974:  -0.05437 + 0.5 - 0.91894 + 0.08868 = -0.38462
    #   dim 1: z = -0.7 e^-0.2 = -0.57311: -0.16423 - 0.2 - 0.91894 + 1.18738 = -0.09579
    want = sum(-0.5 * ((x - m) / math.exp(s)) ** 2 - s - 0.5 * math.log(2 * math.pi)
               - math.log(1 - math.tanh(x) ** 2 + 1e-6) for x, m, s in zip(u, mean, log_std))
    assert want == pytest.approx(-0.38462 - 0.09579, abs=1e-4)
    got = common.taken_action_log_prob(jnp.tanh(jnp.asarray(u, jnp.float32))[None], jnp.asarray(mean, jnp.float32)[None],
                                       jnp.asarray(log_std, jnp.float32)[None])
    assert got.shape == (1,)
    assert float(got[0]) == pytest.approx(want, rel=1e-4)


def test_taken_action_log_prob_clips_saturated_actions():
    # a = +-1 is read as +-(1 - 1e-6): finite, and symmetric for a zero-mean policy
    edge = common.taken_action_log_prob(jnp.array([[1.0], [-1.0]]), jnp.zeros((2, 1)), jnp.zeros((2, 1)))
    assert np.all(np.isfinite(np.asarray(edge)))
    assert float(edge[0]) == pytest.approx(float(edge[1]), rel=1e-6)


def test_actor_init_policy_and_act():
    key = jax.random.PRNGKey(4)
    params = common.init_actor(NET, SPEC, key)
    # the same parameters as one init of the residual MLP with 2 |A| outputs on a (1, observation_size) input
    reference = ResidualMLP(NET, 2 * SPEC.action_size).init(key, jnp.zeros((1, SPEC.observation_size)))
    jax.tree.map(np.testing.assert_array_equal, params, reference)

    obs = jax.random.normal(jax.random.PRNGKey(5), (7, SPEC.observation_size))
    mean, log_std = common.policy(NET, SPEC.action_size, params, obs)
    assert mean.shape == log_std.shape == (7, SPEC.action_size)
    assert bool(jnp.all((log_std >= -5.0) & (log_std <= 2.0)))
    out = ResidualMLP(NET, 2 * SPEC.action_size).apply(params, obs)
    np.testing.assert_allclose(np.asarray(mean), np.asarray(out[:, :SPEC.action_size]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(log_std), -5.0 + 3.5 * (np.tanh(np.asarray(out[:, SPEC.action_size:])) + 1.0),
                               rtol=1e-5, atol=1e-6)

    k = jax.random.PRNGKey(6)
    det = common.act(NET, SPEC.action_size, params, obs, k, True)
    np.testing.assert_allclose(np.asarray(det), np.tanh(np.asarray(mean)), rtol=1e-6)
    # collection: tanh(mean + std * eps), eps one normal draw from the key
    sto = common.act(NET, SPEC.action_size, params, obs, k, False)
    eps = jax.random.normal(k, mean.shape)
    np.testing.assert_allclose(np.asarray(sto), np.tanh(np.asarray(mean + jnp.exp(log_std) * eps)), rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------------------------- optimiser, losses


def test_adam_step_hand_computed_and_equal_to_optax():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
    g1 = {"w": jnp.array([0.5, -3.0]), "b": jnp.array(0.0)}
    g2 = {"w": jnp.array([1.0, 1.0]), "b": jnp.array(2.0)}
    state = common.adam_init(lr, params)
    p1, state = common.adam_step(lr, g1, state, params)
    # first step: m_hat = g, v_hat = g^2, so each parameter moves by -lr * g / (|g| + eps); b (g = 0) stays
    np.testing.assert_allclose(np.asarray(p1["w"]), [0.9, -1.9], rtol=1e-6)
    assert float(p1["b"]) == 0.5
    p2, state = common.adam_step(lr, g2, state, p1)
    # second step by Kingma and Ba's Algorithm 1
    for name in ("w", "b"):
        a, b = np.asarray(g1[name], np.float64), np.asarray(g2[name], np.float64)
        m = (1 - b1) * (b1 * a + b)
        v = (1 - b2) * (b2 * a * a + b * b)
        want = np.asarray(p1[name], np.float64) - lr * (m / (1 - b1**2)) / (np.sqrt(v / (1 - b2**2)) + eps)
        np.testing.assert_allclose(np.asarray(p2[name]), want, rtol=1e-5)
    # bit for bit optax's adam
    tx = optax.adam(lr)
    s = tx.init(params)
    u, s = tx.update(g1, s)
    q1 = optax.apply_updates(params, u)
    u, s = tx.update(g2, s)
    q2 = optax.apply_updates(q1, u)
    jax.tree.map(np.testing.assert_array_equal, p2, q2)
    jax.tree.map(np.testing.assert_array_equal, state, s)


def test_alpha_loss_value_and_gradients():
    log_alpha = jnp.array(math.log(0.5))
    log_prob = jnp.array([0.5, -2.5, 1.0])
    # -log pi - target (-1.5) = [1, 4, 0.5], mean 11/6; times alpha 0.5: 11/12
    value, (g_alpha, g_log_prob) = jax.value_and_grad(common.alpha_loss, (0, 1))(log_alpha, log_prob, -1.5)
    assert float(value) == pytest.approx(11 / 12, rel=1e-6)
    assert float(g_alpha) == pytest.approx(11 / 12, rel=1e-6)  # d(e^x c)/dx = e^x c
    assert np.all(np.asarray(g_log_prob) == 0.0)


def test_actor_loss_and_target_entropy():
    # mean(0.25 * [2, -4] - [1, -3]) = mean(-0.5, 2) = 0.75
    assert float(common.actor_loss(jnp.array([2.0, -4.0]), jnp.array([1.0, -3.0]), jnp.array(0.25))) == pytest.approx(0.75)
    assert common.target_entropy(0.5, 8) == -4.0  # the ant: -0.5 * 8
    assert common.target_entropy(1.0, 3) == -3.0


# -------------------------------------------------------------------------------------------- RelabelConfig


def test_relabel_config_defaults_and_valid_edges():
    assert RelabelConfig() == RelabelConfig("geometric", 0.99, 1.0)
    assert RelabelConfig("none", 0.5, 1).fraction == 1
    assert RelabelConfig("final", 1e-3, 1e-3).gamma == 1e-3


@pytest.mark.parametrize("kwargs, needle", [
    ({"strategy": "episode"}, "relabel.strategy 'episode' is unknown; use one of geometric, future, final, none"),
    ({"gamma": 1.0}, "relabel.gamma 1.0 must be a number in (0, 1)"),
    ({"gamma": 0.0}, "relabel.gamma 0.0 must be"),
    ({"gamma": "0.9"}, "relabel.gamma '0.9' must be a number"),
    ({"gamma": True}, "relabel.gamma True must be a number"),
    ({"fraction": 0.0}, "relabel.fraction 0.0 must be a number in (0, 1]"),
    ({"fraction": 1.5}, "relabel.fraction 1.5 must be"),
    ({"fraction": -0.2}, "relabel.fraction -0.2 must be"),
])
def test_relabel_config_rejects_bad_values_in_one_line(kwargs, needle):
    with pytest.raises(ConfigError) as info:
        RelabelConfig(**kwargs)
    message = str(info.value)
    assert needle in message and "\n" not in message


@pytest.mark.parametrize("cls, accepted", [
    (crl.CRLConfig, {"geometric"}),
    (sac.SACConfig, {"none", "final", "future"}),
    (sac.SACHERConfig, {"none", "final", "future"}),
    (td3.TD3Config, {"none", "final", "future"}),
    (gcsl.GCSLConfig, {"future", "geometric"}),
    (gcsl.GCBCConfig, {"future", "geometric"}),
])
def test_each_algorithm_accepts_its_strategies(cls, accepted):
    for strategy in ("geometric", "future", "final", "none"):
        relabel = RelabelConfig(strategy, 0.9, 0.5)
        if strategy in accepted:
            assert cls(relabel=relabel).relabel == relabel
        else:
            with pytest.raises(ConfigError, match=f"relabel.strategy '{strategy}' is not accepted"):
                cls(relabel=relabel)


def test_relabel_field_must_be_a_relabel_config():
    with pytest.raises(ConfigError, match="crl relabel must be a gcrl_bench.interface.RelabelConfig, got str"):
        crl.CRLConfig(relabel="geometric")
    with pytest.raises(ConfigError, match="td3 relabel.strategy 'geometric' is not accepted by td3; use one of none, final, future"):
        common.check_relabel("td3", RelabelConfig("geometric"), td.HER_STRATEGIES)


def test_registered_defaults_are_unchanged():
    expected = {
        "crl": RelabelConfig("geometric", 0.99, 1.0),
        "sac": RelabelConfig("none", 0.99, 0.8),  # 0.8 applies once a strategy is switched on
        "sac_her": RelabelConfig("future", 0.99, 0.8),
        "td3_her": RelabelConfig("future", 0.99, 0.8),
        "gcsl": RelabelConfig("future", 0.99, 1.0),
        "gcbc": RelabelConfig("geometric", 0.99, 1.0),
    }
    for name, relabel in expected.items():
        assert registry.get_algorithm(name).config_cls().relabel == relabel, name


@pytest.mark.parametrize("name", ["crl", "sac", "sac_her", "td3_her", "gcsl", "gcbc"])
def test_relabel_field_round_trips_through_config_json(name):
    cls = registry.get_algorithm(name).config_cls
    config = cls(network=NET, relabel=dataclasses.replace(cls().relabel, gamma=0.9, fraction=0.5))
    values = json.loads(json.dumps(results.jsonable(config)))
    assert values["relabel"] == {"strategy": cls().relabel.strategy, "gamma": 0.9, "fraction": 0.5}
    back = config_from_dict(cls, values, "config.json algo_config")
    assert back == config and isinstance(back.relabel, RelabelConfig)


def test_conformance_kit_names_a_missing_relabel_field():
    from gcrl_bench.testing import ConformanceError, check_algorithm

    @dataclasses.dataclass(frozen=True)
    class NoRelabel:
        """Attributes:
          network: the network.
        """

        network: NetworkConfig = NetworkConfig()

    algorithm = Algorithm(name="no_relabel", config_cls=NoRelabel, init=lambda *a: None, act=lambda *a: None,
                          update=lambda *a: None)
    task = type("T", (), {"spec": SPEC})()
    with pytest.raises(ConformanceError, match="needs a `relabel: RelabelConfig` field"):
        check_algorithm(algorithm, task=task)


# ------------------------------------------------------------------------------------------- module layout


@pytest.mark.parametrize("module", ["crl", "sac", "td3", "gcsl"])
def test_no_algorithm_imports_another(module):
    tree = ast.parse((ALGORITHMS / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    others = {f"gcrl_bench.algorithms.{m}" for m in ("crl", "sac", "td3", "gcsl")} - {f"gcrl_bench.algorithms.{module}"}
    assert not imported & others
    assert "gcrl_bench.algorithms.common" in imported
