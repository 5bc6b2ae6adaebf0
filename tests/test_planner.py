"""The launch planner: parameter and FLOP arithmetic by hand, counts equal to a real state's, and the
``run --dry-run`` table and memory refusal (shapes only: nothing compiles, nothing is written)."""

import jax
import numpy as np
import pytest
from flax import serialization

from gcrl_bench import planner, registry
from cli_helpers import run_cli
from gcrl_bench.config import get_preset
from gcrl_bench.networks import NetworkConfig
from gcrl_bench.runspec import RunSpec

NET = NetworkConfig(depth=4, width=8)


def _run(algo: str, network: NetworkConfig = NET) -> RunSpec:
    algorithm = registry.get_algorithm(algo)
    return RunSpec(algo=algo, task="point_u_maze", seed=0, algo_config=algorithm.config_cls(network=network),
                   loop=get_preset("smoke").loop_for("point_u_maze"), preset="smoke")


@pytest.fixture(scope="module")
def crl_plan():
    [plan] = planner.plan_runs([_run("crl")], isolated=False)
    return plan


def test_crl_depth4_width8_by_hand(crl_plan):
    # point_u_maze: state 4, goal 2, action 2, observation 6; CRL repr_dim 64; smoke batch 128.
    spec = registry.task_spec("point_u_maze")
    assert (spec.state_size, spec.goal_size, spec.action_size) == (4, 2, 2)
    nets = {n.name: n for n in crl_plan.networks}
    assert set(nets) == {"actor", "critic.sa_encoder", "critic.goal_encoder"}
    # params: (in + 1) w  +  depth (w + 1) w  +  2 w (depth + 1)  +  (w + 1) out
    #   actor        (6+1)8 + 4*9*8 + 2*8*5 + 9*4   = 56 + 288 + 80 + 36  = 460
    #   sa_encoder   (6+1)8 + 288 + 80 + 9*64       = 56 + 288 + 80 + 576 = 1000
    #   goal_encoder (2+1)8 + 288 + 80 + 576        = 24 + 288 + 80 + 576 = 968
    assert {k: n.params for k, n in nets.items()} == {"actor": 460, "critic.sa_encoder": 1000, "critic.goal_encoder": 968}
    assert (nets["actor"].in_dim, nets["actor"].out_dim) == (6, 4)
    # forward FLOPs 2 x 128 x (in w + depth w^2 + w out); x3 for forward + backward
    #   actor 2*128*(48 + 256 + 32) = 86,016; sa 2*128*(48 + 256 + 512) = 208,896; goal 2*128*(16+256+512) = 200,704
    assert nets["actor"].flops == 3 * 86_016
    assert nets["critic.sa_encoder"].flops == 3 * 208_896
    assert nets["critic.goal_encoder"].flops == 3 * 200_704
    assert crl_plan.flops_per_grad_step == 1_486_848
    # memory terms: 4-byte params (the default L2 energy has no temperature parameter); activations
    # 128 x 8 x (4 + 2) x 4 B x 2 per network, three networks
    assert crl_plan.memory["parameters"] == 4 * (460 + 1000 + 968)
    assert crl_plan.memory["activations"] == 3 * 128 * 8 * 6 * 4 * 2


def test_param_counts_equal_the_initialised_state():
    for algo in ("crl", "sac"):
        run = _run(algo)
        [plan] = planner.plan_runs([run], isolated=False)
        algorithm = registry.get_algorithm(algo)
        state = algorithm.init(run.algo_config, registry.task_spec("point_u_maze"), jax.random.PRNGKey(0))
        real = serialization.to_state_dict(state)
        counted = sum(n.params for n in plan.networks)
        entries = planner.params_entries(real)
        real_count = sum(int(np.size(x)) for x in jax.tree.leaves(entries))
        scalars = sum(int(np.size(x)) for x in jax.tree.leaves(entries) if np.ndim(x) == 0)
        assert counted + scalars == real_count
        assert plan.memory["parameters"] == sum(np.asarray(x).nbytes for x in jax.tree.leaves(entries))
        opt = {k: v for k, v in real.items() if k.endswith("opt_state")}
        grads = 4 * sum(n.params for n in plan.networks if n.trained)
        assert plan.memory["optimiser"] == sum(np.asarray(x).nbytes for x in jax.tree.leaves(opt)) + grads


def test_sac_counts_twin_critics_and_a_forward_only_target():
    [plan] = planner.plan_runs([_run("sac")], isolated=False)
    nets = {n.name: n for n in plan.networks}
    # critic input [state, goal, action] = 4 + 2 + 2 = 8, output 1, two stacked copies
    one = (8 + 1) * 8 + 4 * 9 * 8 + 2 * 8 * 5 + 9 * 1
    assert nets["critic"].params == 2 * one and nets["critic"].copies == 2
    forward = 2 * 128 * (8 * 8 + 4 * 64 + 8 * 1)
    assert nets["critic"].flops == 3 * 2 * forward
    assert not nets["target_critic"].trained and nets["target_critic"].flops == 2 * forward


def test_refusal_names_the_largest_term():
    plan = planner.RunPlan(run_id="r", networks=(), flops_per_grad_step=0,
                           memory={"parameters": 10, "replay buffer": 3_000_000_000, "activations": 5},
                           env_steps=1, grad_steps=1)
    planner.check_fits(plan, 4_000_000_000)
    with pytest.raises(planner.ConfigError) as info:
        planner.check_fits(plan, 1_000_000_000)
    line = str(info.value)
    assert "\n" not in line
    assert "run r" in line and "3.0 GB" in line and "1.0 GB" in line
    assert "largest term is replay buffer" in line and "max_replay_rows" in line


def test_device_memory_override(monkeypatch):
    monkeypatch.setenv(planner.DEVICE_MEMORY_ENV, "123456")
    assert planner.device_memory_bytes() == 123456
    monkeypatch.setenv(planner.DEVICE_MEMORY_ENV, "lots")
    with pytest.raises(planner.ConfigError, match="GCRL_BENCH_DEVICE_MEMORY"):
        planner.device_memory_bytes()


def test_dry_run_refuses_a_run_too_large_for_the_device(capsys, tmp_path):
    out = tmp_path / "results"
    code, stdout, err = run_cli(capsys, "run", "--algos", "crl", "--tasks", "point_u_maze", "--dry-run",
                                "--widths", "65536", "--preset", "smoke", "--out", str(out))
    assert code != 0
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    # width 65536: each network has ~4 x 65536^2 = 17.2G parameters; Adam's two moments and the gradient
    # (3 x 4 bytes per parameter) are the largest term
    assert "crl__point_u_maze__d4_w65536" in lines[0] and "largest term is optimiser" in lines[0]
    assert "--widths" in lines[0]
    assert not out.exists()


def test_dry_run_prints_one_row_per_run_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "results"
    code, stdout, err = run_cli(capsys, "run", "--algos", "crl,sac", "--tasks", "point_u_maze", "--depths", "4,8",
                                "--widths", "8", "--seeds", "0,1", "--preset", "smoke", "--dry-run", "--out", str(out))
    assert code == 0, err
    assert not out.exists()
    lines = stdout.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("run ") and "GFLOP/grad step" in l)
    rows = lines[header + 1: header + 9]
    assert len(rows) == 8 and all(r.split()[0].startswith(("crl__", "sac__")) for r in rows)
    d4 = next(r for r in rows if r.startswith("crl__point_u_maze__d4_w8_s1"))
    assert "actor 460" in d4 and "0.00149" in d4  # 1,486,848 FLOPs (test_crl_depth4_width8_by_hand)
    assert lines[header + 9].startswith("total: 8 runs, 57,600 env steps, 640 gradient steps")
