"""Loop configuration: derived quantities and the constraint errors."""

import dataclasses

import pytest

from gcrl_bench.config import PRESETS, LoopConfig, derive_plan, get_preset
from gcrl_bench.errors import ConfigError, UnknownNameError
from gcrl_bench.interface import TaskSpec

ANT = TaskSpec(name="ant_like", state_size=29, goal_size=2, goal_indices=(0, 1), action_size=8, success_threshold=0.5,
               episode_length=1000, env_step_seconds=0.05, backend="spring")


def test_paper_arithmetic_matches_the_reference():
    # docs/tasks.md §6.2: 17 prefill steps of 512 x 62, 31 training steps per epoch for 100M / 100 epochs
    plan = derive_plan(get_preset("paper").loop_for("ant_big_maze"), ANT)
    assert plan.prefill_steps == 17
    assert plan.prefill_env_steps == 17 * 31_744 == 539_648
    assert plan.env_steps_per_training_step == 31_744
    assert plan.training_steps_per_epoch == 31
    assert plan.tuples_per_step == 512 * 999
    assert plan.grad_steps_total == 100 * 31 * 800
    assert get_preset("paper").loop_for("ant_u5_maze").total_env_steps == 400_000_000
    assert get_preset("paper").loop_for("ant_u5_maze").num_epochs == 400


@pytest.mark.parametrize(
    "change,needle",
    [
        (dict(updates_per_step=2000), "use updates_per_step <= 999"),
        (dict(min_replay_rows=500), "use min_replay_rows >= 1000"),
        (dict(max_replay_rows=1050), "use max_replay_rows >= 1062"),
        (dict(total_env_steps=600_000), "use total_env_steps >= 3714048"),
        (dict(batch_size=0), "batch_size must be a positive integer, got 0"),
        (dict(reset_mode="sometimes"), "reset_mode must be 'first' or 'fresh'"),
    ],
)
def test_constraint_errors_name_values_and_a_fix(change, needle):
    with pytest.raises(ConfigError) as err:
        derive_plan(dataclasses.replace(LoopConfig(), **change), ANT)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_every_preset_is_valid_for_an_ant_sized_task():
    for preset in PRESETS.values():
        assert preset.description
        derive_plan(preset.loop_for("ant_big_maze"), ANT)


def test_unknown_preset_lists_known():
    with pytest.raises(UnknownNameError, match="known presets: paper, quick, control, smoke, quickstart"):
        get_preset("fast")
