"""Compute budgets of a sweep: a wall-clock time budget and the opt-in early stop of a stalled run.

Time budget (``gcrl-bench run --time-budget HOURS``): the sweep's deadline is an absolute wall-clock
time (``time.time()`` seconds, so that it means the same in worker processes, Ray tasks and SLURM jobs),
fixed when the sweep starts. Once it has passed, no new run starts, and a running run writes its
checkpoint at its next epoch boundary and stops (``interrupted``, not ``failed``): rerunning the same
command resumes it and starts the others.

Stall rule (``--stop-if-stalled N``): a run whose evaluation score (``eval/time_at_goal``, one value per
epoch) has not strictly improved on its best so far for ``N`` consecutive evaluations ends after that
evaluation. The run is complete (summary.json, counted in reports like any other; its score is computed
as usual from the evaluations it has) and its summary says ``"stopped": "stalled"`` with
``"stopped_epoch"``, so that a report can note that it stopped early. The last planned epoch is never
"stopped early".
"""

from __future__ import annotations

import math
import time
from typing import Sequence

from gcrl_bench.errors import ConfigError, GcrlBenchError


def deadline_after(hours: float | None, now: float | None = None) -> float | None:
    """The deadline of a sweep given ``--time-budget HOURS`` (None: no budget).

    Args:
      hours: the budget in hours (> 0), or None.
      now: the sweep's start as ``time.time()`` (default: now).
    Returns:
      the deadline as ``time.time()`` seconds, or None.
    Raises:
      ConfigError: ``hours`` is not a positive finite number.
    """
    if hours is None:
        return None
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise ConfigError(f"--time-budget {hours!r}: give a positive number of hours, e.g. --time-budget 2.5")
    return (time.time() if now is None else now) + hours * 3600.0


def reached(deadline: float | None) -> bool:
    """Whether the deadline (``time.time()`` seconds; None: none) has passed."""
    return deadline is not None and time.time() >= deadline


def stalled_at(scores: Sequence[float], patience: int) -> int | None:
    """The index of the evaluation at which a run counts as stalled, or None.

    The first score sets the best; each later score that is not strictly greater than the best so far
    counts as one evaluation without improvement, and a strictly greater one resets the count. The run is
    stalled at the first index where the count reaches ``patience``. Examples: ``[1, 2, 2, 2]`` with
    patience 2 stalls at index 3; ``[1, 1, 2, 2, 2]`` with patience 3 does not stall.

    Args:
      scores: the evaluation scores in order (``eval/time_at_goal`` of each metrics row).
      patience: N of ``--stop-if-stalled N`` (>= 1).
    Raises:
      ConfigError: ``patience`` < 1.
    """
    check_patience(patience)
    best, without = -math.inf, 0
    for i, score in enumerate(scores):
        if i == 0 or score > best:
            best, without = score, 0
        else:
            without += 1
            if without >= patience:
                return i
    return None


def check_patience(patience: int) -> None:
    """Refuses a ``--stop-if-stalled`` value below 1 (0 in :class:`~gcrl_bench.runner.ExecutionOptions`
    means the rule is off and is never passed here)."""
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ConfigError(f"--stop-if-stalled {patience!r}: give a number of evaluations >= 1, e.g. "
                          "--stop-if-stalled 5 (leave it out to train every planned epoch)")


class TimeBudgetReached(GcrlBenchError):
    """The sweep's time budget stopped it: some runs were not started, some stopped at an epoch boundary
    after writing their checkpoint. Rerunning the same command continues the sweep.

    Attributes:
      not_started: runs that did not start.
      stopped: runs that stopped at an epoch boundary (checkpoint written).
      failures: one line per run that failed before the budget was reached.
    """

    def __init__(self, not_started: int, stopped: int = 0, failures: Sequence[str] = ()):
        self.not_started, self.stopped, self.failures = not_started, stopped, list(failures)
        parts = [f"{not_started} run{'' if not_started == 1 else 's'} not started"]
        if stopped:
            parts.append(f"{stopped} stopped after a checkpoint")
        message = f"time budget reached: {', '.join(parts)}; rerun the same command to continue"
        if self.failures:
            message += f" ({len(self.failures)} run(s) failed: {'; '.join(self.failures)})"
        super().__init__(message)
