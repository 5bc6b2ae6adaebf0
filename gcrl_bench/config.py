"""Configuration of the shared online loop, its derived quantities, and the named presets.

The loop is the paper's (docs/tasks.md §6.2): every *training step* collects ``unroll_length`` steps in each of
``num_envs`` environments, inserts them into the trajectory buffer, samples one window of
``window_length`` consecutive steps per environment, relabels goals inside each window, shuffles the
tuples and runs ``updates_per_step`` gradient steps on batches of ``batch_size``. An *epoch* is
``training_steps_per_epoch`` training steps compiled into one program, followed by an evaluation.

All derived quantities come from :func:`derive_plan`, which rejects inconsistent values with one clear
line naming the constraint, the values and a valid nearby choice.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, Mapping

from gcrl_bench.errors import ConfigError, UnknownNameError
from gcrl_bench.interface import TaskSpec


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Hyperparameters of the shared online loop (defaults: the paper's Table 7 and train.py).

    Attributes:
      total_env_steps: environment steps of the whole run, prefill included (paper: 100M-400M per task).
      num_epochs: evaluations during the run; one after each epoch (paper: 1 per ~1M env steps).
      num_envs: parallel training environments (paper: 512).
      unroll_length: env steps collected per environment per training step (paper: 62).
      batch_size: tuples per gradient step (paper: 512).
      updates_per_step: gradient steps per training step (paper: 800, i.e. UTD 1:40).
      min_replay_rows: time rows collected before training starts, per environment (paper: 1000).
      max_replay_rows: buffer capacity in time rows per environment; FIFO beyond it (paper: 10000).
      window_length: consecutive time rows per sampled window; relabelled goals come from the same
        window (paper: the episode length, 1000). 0 means "the task's episode length".
      windows_per_step: windows sampled per training step; 0 means one per environment (the paper's
        choice: a random permutation of the environments). More windows allow more gradient steps per
        training step when episodes are short.
      num_eval_envs: parallel evaluation episodes after each epoch (paper: 128).
      reset_mode: ``first``: a training environment restarts from its own first reset after an episode
        ends (the reference's auto-reset semantics, docs/tasks.md §1.4); ``fresh``: it samples a new start
        and goal every episode. Evaluation always samples fresh starts and goals.
    """

    total_env_steps: int = 100_000_000
    num_epochs: int = 100
    num_envs: int = 512
    unroll_length: int = 62
    batch_size: int = 512
    updates_per_step: int = 800
    min_replay_rows: int = 1000
    max_replay_rows: int = 10_000
    window_length: int = 0
    windows_per_step: int = 0
    num_eval_envs: int = 128
    reset_mode: Literal["first", "fresh"] = "first"


@dataclasses.dataclass(frozen=True)
class LoopPlan:
    """Quantities derived once from a LoopConfig and a task (see :func:`derive_plan`).

    Attributes:
      window_length: rows per sampled window.
      windows_per_step: windows sampled per training step.
      prefill_steps: collection steps (of unroll_length rows) before training starts.
      prefill_env_steps: env steps spent on prefill (num_envs x unroll_length x prefill_steps).
      env_steps_per_training_step: num_envs x unroll_length.
      training_steps_per_epoch: training steps compiled into one epoch.
      env_steps_per_epoch: env steps collected per epoch.
      total_env_steps: env steps the run actually takes (prefill + epochs), <= the requested total.
      tuples_per_step: relabelled tuples available per training step (windows x (window_length - 1)).
      grad_steps_total: gradient steps over the run.
    """

    window_length: int
    windows_per_step: int
    prefill_steps: int
    prefill_env_steps: int
    env_steps_per_training_step: int
    training_steps_per_epoch: int
    env_steps_per_epoch: int
    total_env_steps: int
    tuples_per_step: int
    grad_steps_total: int


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def derive_plan(loop: LoopConfig, spec: TaskSpec) -> LoopPlan:
    """Checks a LoopConfig against a task and derives the loop's quantities.

    Raises:
      ConfigError: one line naming the violated constraint, the values and a valid choice.
    """
    for f in ("total_env_steps", "num_epochs", "num_envs", "unroll_length", "batch_size",
              "updates_per_step", "min_replay_rows", "max_replay_rows", "num_eval_envs"):
        _positive(f, getattr(loop, f))
    if loop.reset_mode not in ("first", "fresh"):
        raise ConfigError(f"reset_mode must be 'first' or 'fresh', got {loop.reset_mode!r}")
    window = loop.window_length or spec.episode_length
    if window < 2:
        raise ConfigError(f"window_length must be at least 2, got {window}")
    if loop.min_replay_rows < window:
        raise ConfigError(
            f"min_replay_rows ({loop.min_replay_rows}) is smaller than window_length ({window}): a window "
            f"could not be sampled after prefill; use min_replay_rows >= {window}"
        )
    if loop.max_replay_rows < loop.min_replay_rows + loop.unroll_length:
        raise ConfigError(
            f"max_replay_rows ({loop.max_replay_rows}) must hold min_replay_rows + unroll_length "
            f"({loop.min_replay_rows} + {loop.unroll_length}); use max_replay_rows >= "
            f"{loop.min_replay_rows + loop.unroll_length}"
        )
    if loop.windows_per_step < 0:
        raise ConfigError(f"windows_per_step must be >= 0 (0 = one per environment), got {loop.windows_per_step}")
    windows = loop.windows_per_step or loop.num_envs
    tuples = windows * (window - 1)
    needed = loop.batch_size * loop.updates_per_step
    if needed > tuples:
        fit = max(1, tuples // loop.batch_size)
        more = -(-needed // (window - 1))
        smaller = tuples // loop.updates_per_step
        batch = f" or batch_size <= {smaller}" if smaller >= 1 else ""
        raise ConfigError(
            f"batch_size x updates_per_step ({loop.batch_size} x {loop.updates_per_step} = {needed}) exceeds the "
            f"{tuples} relabelled tuples of one training step (windows x (window_length - 1) = "
            f"{windows} x {window - 1}); use updates_per_step <= {fit}, windows_per_step >= {more}{batch}"
        )
    prefill_steps = math.ceil(loop.min_replay_rows / loop.unroll_length)
    per_step = loop.num_envs * loop.unroll_length
    prefill_env_steps = prefill_steps * per_step
    remaining = loop.total_env_steps - prefill_env_steps
    steps_per_epoch = remaining // (loop.num_epochs * per_step) if remaining > 0 else 0
    if steps_per_epoch < 1:
        minimum = prefill_env_steps + loop.num_epochs * per_step
        raise ConfigError(
            f"total_env_steps ({loop.total_env_steps}) leaves no training step per epoch after prefill "
            f"({prefill_env_steps} env steps) for {loop.num_epochs} epochs of num_envs x unroll_length = {per_step}; "
            f"use total_env_steps >= {minimum} or fewer epochs"
        )
    total = prefill_env_steps + loop.num_epochs * steps_per_epoch * per_step
    return LoopPlan(
        window_length=window,
        windows_per_step=windows,
        prefill_steps=prefill_steps,
        prefill_env_steps=prefill_env_steps,
        env_steps_per_training_step=per_step,
        training_steps_per_epoch=steps_per_epoch,
        env_steps_per_epoch=steps_per_epoch * per_step,
        total_env_steps=total,
        tuples_per_step=tuples,
        grad_steps_total=loop.num_epochs * steps_per_epoch * loop.updates_per_step,
    )


# ------------------------------------------------------------------------------------------------------
# Presets

# The sanity task's short episodes (100 steps) call for short windows and more windows per step; this loop
# learns point_u_maze at width 64 in about a minute on a 2-core CPU (tests/test_learning.py).
SANITY_LOOP: Mapping[str, Any] = dict(
    total_env_steps=198_400, num_epochs=10, num_envs=64, unroll_length=10, batch_size=256, updates_per_step=40,
    windows_per_step=256, min_replay_rows=100, max_replay_rows=1000, num_eval_envs=64,
)

# The README's quick start: the sanity task's loop with half its env steps and 8 evaluations (0.1M env
# steps, 5,760 gradient steps of batch 256), so that CRL and GCSL with 3 seeds each finish, report included,
# in about 5 minutes on a 2-core CPU.
QUICKSTART_LOOP: Mapping[str, Any] = dict(SANITY_LOOP, total_env_steps=99_200, num_epochs=8)

# The depth-scaling control task point_big_maze (tasks/point_momentum.py): 200-step episodes, 0.2M env
# steps, 60 gradient steps of batch 256 per 640 env steps (17,400 in all). Measured at width 64 on a 2-core
# CPU: depth 4 scores 28.0 / 37.8 / 45.3 (seeds 0-2, time at goal of 200), depth 16 scores 34.3 (seed 0),
# so at this budget depth 16 is NOT separated from depth 4 (tests/test_depth_control.py, xfail).
CONTROL_LOOP: Mapping[str, Any] = dict(
    total_env_steps=200_000, num_epochs=10, num_envs=64, unroll_length=10, batch_size=256, updates_per_step=60,
    windows_per_step=256, min_replay_rows=200, max_replay_rows=3000, num_eval_envs=128,
)

# Total env steps per task for the paper's protocol (docs/tasks.md §1.6, inferred from the authors' analysis).
PAPER_BUDGETS: dict[str, int] = {
    "humanoid": 100_000_000,
    "ant_big_maze": 100_000_000,
    "ant_u4_maze": 100_000_000,
    "arm_push_easy": 100_000_000,
    "arm_push_hard": 100_000_000,
    "arm_binpick_hard": 100_000_000,
    "ant_hardest_maze": 200_000_000,
    "ant_u5_maze": 400_000_000,
    "humanoid_u_maze": 400_000_000,
    "humanoid_big_maze": 400_000_000,
    "humanoid_paper_dt": 100_000_000,  # humanoid at the paper's as-run 0.03 s step (not one of the ten, §3.9)
}


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named, documented loop configuration.

    Attributes:
      name: preset name used on the command line.
      description: what it is for and what it costs.
      loop: the loop configuration.
      per_task: task name -> LoopConfig fields that differ for that task (per-task budgets, or loop
        sizes for tasks with short episodes).
    """

    name: str
    description: str
    loop: LoopConfig
    per_task: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def loop_for(self, task: str) -> LoopConfig:
        return dataclasses.replace(self.loop, **self.per_task.get(task, {}))


QUICK_LOOP = LoopConfig(
    total_env_steps=1_600_000, num_epochs=8, num_envs=64, unroll_length=50, batch_size=256,
    updates_per_step=100, min_replay_rows=1000, max_replay_rows=3000, num_eval_envs=32,
)
"""The ``quick`` preset's loop on the ten tasks (also the other presets' loop for tasks they do not size)."""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="paper",
            description=(
                "The paper's protocol: Table 7 hyperparameters (512 envs, batch 512, UTD 1:40, replay 1k-10k rows, "
                "128 eval envs) and the per-task budgets (100M/200M/400M env steps, one evaluation per ~1M). "
                "GPU-sized: hours per run."
            ),
            loop=LoopConfig(),
            per_task={t: {"total_env_steps": n, "num_epochs": n // 1_000_000} for t, n in PAPER_BUDGETS.items()},
        ),
        Preset(
            name="quick",
            description=(
                "A laptop-sized real run: 64 envs, batch 256, 100 gradient steps per 3,200 env steps, 8 epochs "
                "of ~0.2M env steps on the ten tasks; the sanity task gets 64 envs, 100-step windows, UTD 1:16 "
                "and 0.2M env steps. Minutes (sanity task) to tens of minutes (ant mazes) on a CPU."
            ),
            loop=QUICK_LOOP,
            per_task={"point_u_maze": SANITY_LOOP},
        ),
        Preset(
            name="control",
            description=(
                "The depth-scaling control on point_big_maze: CONTROL_LOOP (64 envs, batch 256, 17,400 gradient "
                "steps, 0.2M env steps, 128 eval episodes); 2-5 min per run on a 2-core CPU. At this budget depth 16 "
                "does not yet separate from depth 4. Other tasks get the quick preset's loop."
            ),
            loop=QUICK_LOOP,
            per_task={"point_big_maze": CONTROL_LOOP, "point_u_maze": SANITY_LOOP},
        ),
        Preset(
            name="smoke",
            description=(
                "Checks that everything runs end to end: 16 envs, 250-row windows, 2 short epochs, 16 eval "
                "episodes. About a minute per run on a CPU; learns nothing on the ten tasks."
            ),
            loop=LoopConfig(
                total_env_steps=16 * (250 + 2 * 2 * 50), num_epochs=2, num_envs=16, unroll_length=50,
                batch_size=128, updates_per_step=20, min_replay_rows=250, max_replay_rows=1000,
                window_length=250, num_eval_envs=16,
            ),
        ),
        Preset(
            name="quickstart",
            description=(
                "The README's quick start: QUICKSTART_LOOP on the sanity task point_u_maze (64 envs, batch 256, "
                "UTD 1:16, 0.1M env steps, 8 evaluations of 64 episodes): learning curves within about half a "
                "minute per run on a CPU; the other tasks get the quick preset's loop."
            ),
            loop=QUICK_LOOP,
            per_task={"point_u_maze": QUICKSTART_LOOP},
        ),
    )
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
