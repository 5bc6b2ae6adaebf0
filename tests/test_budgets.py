"""Compute budgets: a sweep's time budget (no run starts after it; running ones checkpoint and stop, and
resume on a rerun) and the opt-in stall rule that ends a run early."""

import json
import types

import pytest

from gcrl_bench import budgets, checkpoint, registry, results, runner
from gcrl_bench.budgets import TimeBudgetReached, stalled_at
from gcrl_bench.cli import main
from gcrl_bench.config import derive_plan
from gcrl_bench.errors import ConfigError
from gcrl_bench.executors import run_all
from gcrl_bench.runner import ExecutionOptions, execute

from sweep_helpers import cli_args, grid


# -- the stall rule, on hand-written score sequences --------------------------------------------------------

@pytest.mark.parametrize("scores,patience,expected", [
    ([1, 2, 2, 2], 2, 3),        # best 2 at index 1; indices 2 and 3 do not improve on it
    ([1, 1, 2, 2, 2], 3, None),  # 2 at index 2 resets the count; only two evaluations after it
    ([1, 1, 2, 2, 2], 2, 4),
    ([0, 0], 1, 1),              # equal is not an improvement
    ([3, 1, 2, 3, 4], 3, 3),     # below the best counts, even when rising: 1, 2, 3 do not beat 3
    ([3, 1, 2, 3, 4], 4, None),  # 4 beats 3 at index 4
    ([1, 2, 3, 4], 1, None),
    ([5], 1, None),              # the first evaluation sets the best
    ([], 1, None),
])
def test_stall_rule(scores, patience, expected):
    assert stalled_at(scores, patience) == expected


@pytest.mark.parametrize("patience", [0, -1, 1.5, True])
def test_stall_patience_below_one_is_refused(patience):
    with pytest.raises(ConfigError, match="--stop-if-stalled"):
        stalled_at([1, 2], patience)


def test_deadline_after_hours():
    assert budgets.deadline_after(None) is None
    assert budgets.deadline_after(1.5, now=1000.0) == 1000.0 + 5400.0
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="--time-budget"):
            budgets.deadline_after(bad)
    assert budgets.reached(0.0) and not budgets.reached(None) and not budgets.reached(2e9 * 10)


def test_budget_line():
    assert str(TimeBudgetReached(2)) == "time budget reached: 2 runs not started; rerun the same command to continue"
    assert str(TimeBudgetReached(1, 1)) == ("time budget reached: 1 run not started, 1 stopped after a checkpoint; "
                                            "rerun the same command to continue")


# -- a deadline already past: nothing starts (no training) ---------------------------------------------------

def test_a_past_deadline_starts_no_run(tmp_path):
    with pytest.raises(TimeBudgetReached) as info:
        run_all(grid((0, 1)), tmp_path, ExecutionOptions(deadline=1.0))
    assert (info.value.not_started, info.value.stopped, info.value.failures) == (2, 0, [])
    assert not (tmp_path / "runs").exists()


def test_cli_budget_spent_before_the_first_run_prints_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(cli_args(tmp_path / "r", "0,1", "--time-budget", "1e-9"))
    out = capsys.readouterr()
    assert exit_info.value.code == 3, out.err
    assert out.out.splitlines()[-1] == \
        "time budget reached: 2 runs not started; rerun the same command to continue"
    runs = tmp_path / "r" / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []
    assert (tmp_path / "r" / "scores.csv").exists()


@pytest.mark.parametrize("argv,needle", [(["--time-budget", "0"], "--time-budget 0.0"),
                                         (["--stop-if-stalled", "-2"], "--stop-if-stalled -2")])
def test_cli_bad_budget_values_are_one_line_errors(tmp_path, capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        main(cli_args(tmp_path / "r", "0", *argv))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err


# -- real tiny runs ------------------------------------------------------------------------------------------

def test_deadline_after_the_first_epoch_checkpoints_and_a_rerun_completes(tmp_path, monkeypatch):
    """The clock of gcrl_bench.budgets jumps past the deadline once run 0 has finished epoch 1: run 0
    checkpoints and stops (interrupted, not failed), run 1 never starts; the same sweep without a budget
    resumes run 0 after epoch 1 and runs run 1."""
    s0, s1 = grid((0, 1))
    clock = {"now": 100.0}
    monkeypatch.setattr(budgets, "time", types.SimpleNamespace(time=lambda: clock["now"]))
    real_epoch = runner._epoch

    def epoch_then_late(run, compiled, plan, folder, training, epoch, callbacks):
        real_epoch(run, compiled, plan, folder, training, epoch, callbacks)
        if epoch == 1:
            clock["now"] = 300.0

    monkeypatch.setattr(runner, "_epoch", epoch_then_late)
    options = ExecutionOptions(deadline=200.0)  # checkpoint.every_epochs=5: only the budget writes epoch 1's
    with pytest.raises(TimeBudgetReached) as info:
        run_all([s0, s1], tmp_path, options)
    assert (info.value.not_started, info.value.stopped, info.value.failures) == (1, 1, [])
    d0, d1 = tmp_path / "runs" / s0.run_id, tmp_path / "runs" / s1.run_id
    assert [p.name for p in checkpoint.folder(d0).glob("*.ckpt")] == ["epoch-000001.ckpt"]
    assert not (d0 / "summary.json").exists() and not (d0 / "failure.json").exists()
    assert [r["epoch"] for r in results.read_metrics(d0 / "metrics.jsonl")] == [1]
    assert not d1.exists()

    monkeypatch.undo()
    assert run_all([s0, s1], tmp_path, ExecutionOptions()) == []
    plan = derive_plan(s0.loop, registry.task_spec(s0.task))
    for d, resumed in ((d0, True), (d1, False)):
        summary = json.loads((d / "summary.json").read_text())
        assert summary["resumed"] is resumed and summary["num_evaluations"] == 3
        assert summary["env_steps"] == plan.total_env_steps and summary["stopped"] is None
        assert [r["epoch"] for r in results.read_metrics(d / "metrics.jsonl")] == [1, 2, 3]
    assert not checkpoint.folder(d0).exists()


def test_a_stalled_run_stops_early_and_says_so(tmp_path):
    run = grid((0,))[0]
    summary = execute(run, tmp_path, options=ExecutionOptions(stop_if_stalled=1))
    folder = tmp_path / "runs" / run.run_id
    rows = results.read_metrics(folder / "metrics.jsonl")
    scores = [r["eval/time_at_goal"] for r in rows]
    # With N=1 the run ends at the first evaluation that does not beat the best before it.
    assert summary["stopped"] == "stalled" and summary["stopped_epoch"] == len(rows) < run.loop.num_epochs
    assert stalled_at(scores, 1) == len(rows) - 1 and stalled_at(scores[:-1], 1) is None
    assert summary["status"] == "complete" and summary["num_evaluations"] == len(rows)
    assert summary["score"] == pytest.approx(results.run_score(rows))
    plan = derive_plan(run.loop, registry.task_spec(run.task))
    assert summary["env_steps"] == plan.prefill_env_steps + len(rows) * plan.env_steps_per_epoch
    assert json.loads((folder / "summary.json").read_text())["stopped_epoch"] == len(rows)
    assert not checkpoint.folder(folder).exists() and not (folder / "failure.json").exists()
    assert results.RunDir(folder).is_complete()
