"""Runs a list of grid points one after another with a live progress display."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gcrl_bench import budgets, registry
from gcrl_bench.config import derive_plan
from gcrl_bench.runner import EpochReport, ExecutionOptions, RunOutOfTime, StopOnSignal, run_isolated
from gcrl_bench.runspec import RunSpec


def run_grid(runs: list[RunSpec], out: Path, options: ExecutionOptions = ExecutionOptions()) -> list[str]:
    """Executes ``runs`` in order in this process; a run that fails is recorded (``failure.json``) and the
    grid goes on; an interrupted run (SIGTERM/SIGINT) stops the grid after writing its checkpoint.

    Returns:
      one line per failed run.
    Raises:
      budgets.TimeBudgetReached: ``options.deadline`` passed before a run started, or stopped one.
    """
    console = Console(stderr=True, soft_wrap=True)
    failures: list[str] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} env steps"),
        TextColumn("{task.fields[sps]}"),
        TextColumn("{task.fields[tag]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as progress, \
            StopOnSignal() as stop:
        for i, run in enumerate(runs, 1):
            stop.check(f"the sweep stopped before run {i}/{len(runs)} ({run.run_id})")
            if budgets.reached(options.deadline):
                raise budgets.TimeBudgetReached(len(runs) - i + 1, 0, failures)
            label = f"[{i}/{len(runs)}] {run.label}"
            total = derive_plan(run.loop, registry.task_spec(run.task)).total_env_steps
            bar = progress.add_task(label, total=total, sps="", tag="compiling")

            def on_phase(phase: str, bar=bar, label=label):
                progress.update(bar, tag=phase)
                if not console.is_terminal:  # logs (CI, clusters): one plain line per event
                    console.print(f"{label}: {phase}")

            def on_epoch(r: EpochReport, bar=bar, label=label):
                progress.update(bar, total=r.total_env_steps, completed=r.env_steps,
                                sps=f"{r.steps_per_second:,.0f} steps/s",
                                tag=f"epoch {r.epoch}/{r.num_epochs} time at goal {r.time_at_goal:.1f}")
                if not console.is_terminal:
                    console.print(f"{label}: epoch {r.epoch}/{r.num_epochs}, {r.env_steps:,}/{r.total_env_steps:,} "
                                  f"env steps, {r.steps_per_second:,.0f} steps/s, time at goal {r.time_at_goal:.1f}, "
                                  f"{r.elapsed_s:.0f}s")

            try:
                outcome = run_isolated(run, out, on_epoch=on_epoch, on_phase=on_phase, options=options)
            except RunOutOfTime:
                progress.update(bar, tag="stopped by the time budget")
                raise budgets.TimeBudgetReached(len(runs) - i, 1, failures) from None
            if outcome.status == "complete":
                done = f"done: score {outcome.score:.1f} (compile {outcome.compile_time_s:.0f}s)"
                progress.update(bar, tag=done)
                if not console.is_terminal:
                    console.print(f"{label}: {done}")
                for warning in outcome.warnings:
                    console.print(f"{label}: warning: {warning}")
            else:
                failures.append(f"{run.run_id}: {outcome.error}")
                progress.update(bar, tag="FAILED")
                console.print(f"{label}: FAILED: {outcome.error}")
    return failures
