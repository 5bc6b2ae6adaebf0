"""Per-layer and representation diagnostics (gcrl_bench.diagnostics): every statistic by hand on a
one-block network with set weights, effective rank of known matrices, each warning on a constructed row,
and a depth-8 CRL run that records diag/... for every block of every network."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from gcrl_bench import diagnostics as diag
from gcrl_bench import registry
from gcrl_bench.cli import cli
from gcrl_bench.config import get_preset
from gcrl_bench.networks import NetworkConfig, ResidualMLP
from gcrl_bench.runner import ExecutionOptions, execute
from gcrl_bench.runspec import RunSpec
from gcrl_bench.training import Trainer, compile_trainer

BLOCK_STATS = ("grad_norm", "param_norm", "update_ratio", "input_norm", "branch_norm", "branch_ratio", "act_mean",
               "act_std", "dead_fraction")

# -- one residual block with set weights (width 2, relu, no LayerNorm) ----------------------------------------
# input unit: Dense(I, 0) -> relu; the block's four units: Dense(I, [0, -10]) -> relu; output Dense([[1], [1]], 0).
CONFIG = NetworkConfig(depth=4, width=2, layer_norm=False, activation="relu")
X = jnp.array([[1.0, 2.0], [3.0, -1.0]])


def _params(scale: float = 1.0):
    eye = jnp.eye(2)
    unit = {"Dense_0": {"kernel": eye[None], "bias": jnp.array([[0.0, -10.0]])}}
    blocks = {f"_Unit_{j}": unit for j in range(4)}
    p = {"params": {"input": {"Dense_0": {"kernel": eye, "bias": jnp.zeros(2)}}, "blocks": blocks,
                    "output": {"kernel": jnp.ones((2, 1)), "bias": jnp.zeros(1)}}}
    return jax.tree.map(lambda x: scale * x, p)


def test_forward_statistics_by_hand_and_output_equals_the_network():
    out, stats = diag.forward_statistics("net", CONFIG, _params(), X)
    # input unit: relu(X) = [[1, 2], [3, 0]] is the block input x. Unit 1: pre [[1, -8], [3, -10]], out
    # [[1, 0], [3, 0]]; units 2-4: pre [[1, -10], [3, -10]], the same out. Branch h = [[1, 0], [3, 0]].
    s = {k.split("/")[-1]: np.asarray(v) for k, v in stats.items()}
    assert all(v.shape == (1,) for v in s.values())
    input_norm = (math.sqrt(5.0) + 3.0) / 2
    np.testing.assert_allclose(s["input_norm"], [input_norm], rtol=1e-6)
    np.testing.assert_allclose(s["branch_norm"], [2.0], rtol=1e-6)  # (1 + 3) / 2
    np.testing.assert_allclose(s["branch_ratio"], [2.0 / input_norm], rtol=1e-6)
    np.testing.assert_allclose(s["act_mean"], [1.0], rtol=1e-6)  # values {1, 0, 3, 0} in every unit
    np.testing.assert_allclose(s["act_std"], [math.sqrt(1.5)], rtol=1e-6)
    np.testing.assert_allclose(s["dead_fraction"], [0.5])  # the second unit of each of the 4 layers
    # x + h = [[2, 2], [6, 0]] -> output [[4], [6]], as the real network computes.
    np.testing.assert_allclose(out, [[4.0], [6.0]], rtol=1e-6)
    np.testing.assert_allclose(out, ResidualMLP(CONFIG, 1).apply(_params(), X), rtol=1e-6)


def test_forward_statistics_match_the_network_with_layer_norm_and_swish():
    config = NetworkConfig(depth=8, width=8)
    net = ResidualMLP(config, 3)
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 4))
    params = net.init(jax.random.PRNGKey(0), x)
    out, stats = diag.forward_statistics("n", config, params, x)
    np.testing.assert_allclose(out, net.apply(params, x), rtol=1e-5, atol=1e-6)
    assert stats["n/blocks/input_norm"].shape == (2,)


def test_parameter_statistics_by_hand():
    before, after = _params(), _params(1.1)
    stats = {k: np.asarray(v) for k, v in diag.parameter_statistics("net", before, after, before).items()}
    # input: kernel I, bias 0 -> sqrt(2); block: 4 x (I and [0, -10]) -> sqrt(4 * 102); output: ones(2) -> sqrt(2).
    np.testing.assert_allclose(stats["net/input/grad_norm"], math.sqrt(2.0), rtol=1e-6)
    np.testing.assert_allclose(stats["net/blocks/grad_norm"], [math.sqrt(408.0)], rtol=1e-6)
    np.testing.assert_allclose(stats["net/output/param_norm"], 1.1 * math.sqrt(2.0), rtol=1e-6)
    np.testing.assert_allclose(stats["net/blocks/param_norm"], [1.1 * math.sqrt(408.0)], rtol=1e-6)
    for group in ("input", "blocks", "output"):
        np.testing.assert_allclose(stats[f"net/{group}/update_ratio"], 0.1, rtol=1e-5)


def test_dead_units_per_activation():
    pre = jnp.array([[-4.0, -2.0, 4.0], [-5.0, -4.0, -5.0]])
    np.testing.assert_array_equal(diag._dead(NetworkConfig(activation="swish"), pre), [True, False, False])
    np.testing.assert_array_equal(diag._dead(NetworkConfig(activation="relu"), pre), [True, True, False])
    np.testing.assert_array_equal(diag._dead(NetworkConfig(activation="tanh"), pre), [True, False, True])


def test_effective_rank_of_known_matrices():
    u, v = jnp.array([1.0, 2.0, -1.0, 0.5]), jnp.array([3.0, 0.0, 1.0])
    np.testing.assert_allclose(diag.effective_rank(jnp.outer(u, v)), 1.0, rtol=1e-5)
    for k in (2, 3, 5):
        np.testing.assert_allclose(diag.effective_rank(3.0 * jnp.eye(8)[:, :k]), k, rtol=1e-5)
    # singular values 3 and 1: p = (3/4, 1/4).
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    np.testing.assert_allclose(diag.effective_rank(jnp.diag(jnp.array([3.0, 1.0]))), expected, rtol=1e-5)
    np.testing.assert_allclose(diag.effective_rank(jnp.zeros((4, 3))), 1.0)


def test_representation_and_value_statistics_by_hand():
    z = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    s = diag.representation_statistics("g", z, cosine=True)
    np.testing.assert_allclose(s["g/output/repr_norm_mean"], 2.0)
    np.testing.assert_allclose(s["g/output/repr_norm_max"], 3.0)
    np.testing.assert_allclose(s["g/output/mean_pairwise_cosine"], 1.0 / 3.0, rtol=1e-6)  # cosines 0, 1, 0
    v = diag.value_statistics("c", jnp.array([1.0, 2.0, 30.0]), jnp.array([1.0, 1.0, 1.0]), jnp.array([1.0, 1.0, 0.0]))
    np.testing.assert_allclose([v["c/output/q_mean"], v["c/output/q_std"], v["c/output/td_error"]], [1.5, 0.5, 0.5])
    p = diag.policy_statistics("a", jnp.array([1.0, 3.0]), jnp.array([[-1.0, -2.0], [-3.0, -4.0]]))
    np.testing.assert_allclose([p["a/output/entropy"], p["a/output/log_std_mean"]], [-2.0, -2.5])


def test_flatten_names_every_block():
    row = diag.flatten({"diag/actor/blocks/grad_norm": np.array([1.0, 2.0, 3.0]), "diag/actor/input/param_norm": 4.0,
                        "critic_loss": 5.0})
    assert row == {"diag/actor/block_000/grad_norm": 1.0, "diag/actor/block_001/grad_norm": 2.0,
                   "diag/actor/block_002/grad_norm": 3.0, "diag/actor/input/param_norm": 4.0}


def _row(**values):
    return {"epoch": 3, **{f"diag/{k.replace('__', '/')}": v for k, v in values.items()}}


def test_each_warning_on_a_constructed_row():
    assert diag.run_warnings(_row(sa_encoder__output__effective_rank=2.0, actor__output__log_std_mean=-3.0,
                                  actor__block_000__grad_norm=10.0, actor__block_001__grad_norm=1.0)) == []
    (w,) = diag.run_warnings(_row(sa_encoder__output__effective_rank=1.2))
    assert w.startswith("representation collapse: diag/sa_encoder/output/effective_rank = 1.2 < 1.5 at epoch 3")
    (w,) = diag.run_warnings(_row(critic_0__block_000__grad_norm=1e-4, critic_0__block_001__grad_norm=0.5,
                                  critic_0__block_002__grad_norm=1.0))
    assert w.startswith("vanishing gradients in critic_0: first/last block grad_norm = 0.0001 < 0.001")
    (w,) = diag.run_warnings(_row(actor__block_000__grad_norm=2e3, actor__block_001__grad_norm=1.0))
    assert w.startswith("exploding gradients in actor: first/last block grad_norm = 2e+03 > 1000")
    (w,) = diag.run_warnings(_row(actor__output__log_std_mean=-4.8))
    assert w.startswith("policy entropy collapse: diag/actor/output/log_std_mean = -4.8 < -4.5")
    # One block: no first/last ratio.
    assert diag.run_warnings(_row(actor__block_000__grad_norm=1e9)) == []


def _crl_run(depth: int) -> RunSpec:
    loop = get_preset("smoke").loop_for("point_u_maze")
    loop = dataclasses.replace(loop, num_epochs=2, total_env_steps=loop.total_env_steps // loop.num_epochs * 2)
    config = registry.get_algorithm("crl").config_cls(network=NetworkConfig(depth=depth, width=32))
    return RunSpec("crl", "point_u_maze", 0, config, loop, "smoke")


@pytest.mark.parametrize("name", ["crl", "sac", "sac_her", "td3_her", "gcsl", "gcbc"])
def test_every_algorithm_reports_every_block_of_every_network_and_off_reports_none(name):
    algo = registry.get_algorithm(name)
    config = algo.config_cls(network=NetworkConfig(depth=12, width=8))
    trainer = Trainer(registry.get_task("point_u_maze"), algo, config, _crl_run(4).loop)
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    _, metrics = jax.eval_shape(trainer.epoch, state)
    nets = {"crl": ["actor", "goal_encoder", "sa_encoder"]}.get(
        name, ["actor"] if name.startswith("gc") else ["actor", "critic_0", "critic_1"])
    assert diag.networks(metrics) == nets
    for net in nets:
        for stat in BLOCK_STATS:
            assert metrics[f"diag/{net}/blocks/{stat}"].shape == (3,)
    _, off = jax.eval_shape(dataclasses.replace(trainer, diagnostics=False).epoch, state)
    assert not [k for k in off if k.startswith("diag/")]
    assert set(off) == {k for k in metrics if not k.startswith("diag/")}


def test_a_depth_8_crl_run_records_every_block_of_every_network(tmp_path):
    run = _crl_run(8)
    summary = execute(run, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "runs" / run.run_id / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert diag.networks(row) == ["actor", "goal_encoder", "sa_encoder"]
        for net in ("actor", "goal_encoder", "sa_encoder"):
            for block in ("block_000", "block_001"):
                for stat in BLOCK_STATS:
                    assert np.isfinite(row[f"diag/{net}/{block}/{stat}"]), (net, block, stat)
            assert f"diag/{net}/block_002/grad_norm" not in row
            for group in ("input", "output"):
                assert row[f"diag/{net}/{group}/param_norm"] > 0
            assert 0 < row[f"diag/{net}/block_001/update_ratio"] < 1
        for net in ("sa_encoder", "goal_encoder"):
            assert 1.0 <= row[f"diag/{net}/output/effective_rank"] <= 64
        assert -5 <= row["diag/actor/output/log_std_mean"] <= 2
    summary_file = json.loads((tmp_path / "runs" / run.run_id / "summary.json").read_text())
    assert summary_file["warnings"] == summary["warnings"] == diag.run_warnings(rows[-1])
    assert ExecutionOptions(diagnostics=False).diagnostics is False

    result = CliRunner().invoke(cli, ["inspect", str(tmp_path / "runs" / run.run_id)])
    assert result.exit_code == 0, result.output
    table = result.output.splitlines()
    assert table[0] == "epoch 2" and "warnings" in result.output
    for net in ("actor", "goal_encoder", "sa_encoder"):
        assert net in table
    (line,) = [l for l in table[table.index("sa_encoder"):] if l.startswith("block_001")][:1]
    assert float(line.split()[1]) == pytest.approx(rows[-1]["diag/sa_encoder/block_001/grad_norm"], rel=1e-3)


def test_inspect_table_lists_groups_in_order_and_the_warnings():
    row = {"epoch": 4, **diag.flatten({"diag/actor/blocks/grad_norm": np.array([1e-5, 1.0]),
                                       "diag/actor/input/grad_norm": 3.0, "diag/actor/output/grad_norm": 2.0,
                                       "diag/actor/output/log_std_mean": -4.9})}
    lines = diag.format_table(row).splitlines()
    assert [l.split()[0] for l in lines[4:8]] == ["input", "block_000", "block_001", "output"]
    assert lines[:4] == ["epoch 4", "", "actor", lines[3]] and lines[3].split()[:2] == ["group", "grad"]
    assert lines[8] == "  log_std_mean = -4.9"
    assert lines[-2].startswith("  vanishing gradients in actor") and lines[-1].startswith("  policy entropy collapse")
    assert "no diagnostics" in diag.format_table({"epoch": 1, "train/critic_loss": 1.0})


def test_diagnostics_leave_the_training_unchanged():
    """The probe's keys are folded out of the loop's key, which is not advanced: the state after an epoch
    is the same, bit for bit, with and without diagnostics."""
    task, algo = registry.get_task("point_u_maze"), registry.get_algorithm("crl")
    config = algo.config_cls(network=NetworkConfig(depth=8, width=16))
    loop = _crl_run(4).loop
    states = []
    for on in (True, False):
        compiled = compile_trainer(Trainer(task, algo, config, loop, diagnostics=on), jax.random.PRNGKey(0))
        state, metrics = compiled.epoch(compiled.prefill(compiled.init(jax.random.PRNGKey(0))))
        assert any(k.startswith("diag/") for k in metrics) == on
        states.append(jax.device_get(state))
    for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[1])):
        np.testing.assert_array_equal(a, b)
