"""XLA settings that depend on which tasks a process will run.

MJX tasks on a CPU: with XLA's concurrency-optimized scheduler (the default), programs that nest an MJX
step inside two loops (a substep scan inside a rollout or training scan) at a few hundred parallel
environments can stop making progress: every XLA thread waits and the run never finishes (seen with
jaxlib 0.10.2 at 256 environments and 2 or more env steps per call; 16 environments ran). Turning that
scheduler off avoids it. It also makes the brax (spring) tasks' CPU stepping 10-35% slower, so it is
turned on only for processes that run an MJX task. GPUs ignore the flag.

XLA reads ``XLA_FLAGS`` once, when JAX starts its backend, so :func:`configure_for` must run before the
first JAX computation in the process; the CLI calls it right after resolving the task names (importing
gcrl_bench and loading the registry do not start the backend).
"""

from __future__ import annotations

import os
import sys
from typing import Iterable

from gcrl_bench.interface import TaskSpec

MJX_CPU_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def _backend_started() -> bool:
    """Whether JAX has started a backend (JAX has no public query; an unknown layout counts as not started)."""
    try:
        from jax._src import xla_bridge

        return bool(getattr(xla_bridge, "_backends", {}))
    except ImportError:
        return False


def configure_for(specs: Iterable[TaskSpec]) -> bool:
    """Adds :data:`MJX_CPU_FLAG` to ``XLA_FLAGS`` when any task runs on MJX; returns whether it is in effect.

    Leaves an explicit user setting of the same flag alone. If JAX's backend already started without the
    flag, says so on stderr (one line) and returns False.
    """
    if not any(spec.backend == "mjx" for spec in specs):
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" in flags:
        return MJX_CPU_FLAG in flags.split()
    if _backend_started():
        print(f"gcrl-bench: warning: JAX started before the MJX tasks were configured; if a large CPU run of an MJX "
              f"task hangs, set XLA_FLAGS={MJX_CPU_FLAG}", file=sys.stderr)
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {MJX_CPU_FLAG}".strip()
    return True
