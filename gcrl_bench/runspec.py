"""One fully specified run (algorithm x task x network x seed x loop) and its deterministic run id.

Low in the package: it imports the configuration and results-format modules only (no training loop),
so that the command line, the executors and the run-folder loader can build and name runs without
importing :mod:`gcrl_bench.runner`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any

from gcrl_bench import results
from gcrl_bench.config import LoopConfig

if TYPE_CHECKING:
    from gcrl_bench.networks import NetworkConfig


def config_hash(payload: dict) -> str:
    """First 10 hex digits of the SHA-256 of ``payload`` as sorted-key JSON."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


def run_id(algo: str, task: str, depth: int, width: int, seed: int, identity: dict) -> str:
    """Deterministic id: readable fields plus a hash of everything that defines the run
    (``<algo>__<task>__d<depth>_w<width>_s<seed>__<config_hash(identity)>``)."""
    return f"{algo}__{task}__d{depth}_w{width}_s{seed}__{config_hash(identity)}"


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One fully specified run.

    Attributes:
      algo, task: registry names.
      seed: root PRNG seed.
      algo_config: the algorithm's frozen config (its ``network`` field holds depth/width/switches).
      loop: the loop configuration.
      preset: the preset the loop came from (recorded, not used).
    """

    algo: str
    task: str
    seed: int
    algo_config: Any
    loop: LoopConfig
    preset: str

    @property
    def network(self) -> "NetworkConfig":
        return self.algo_config.network

    def identity(self) -> dict:
        """Everything that determines the run's results (its id is a hash of this)."""
        return {
            "format_version": results.FORMAT_VERSION,
            "algo": self.algo,
            "task": self.task,
            "seed": self.seed,
            "algo_config": results.jsonable(self.algo_config),
            "loop_config": results.jsonable(self.loop),
        }

    @property
    def run_id(self) -> str:
        n = self.network
        return run_id(self.algo, self.task, n.depth, n.width, self.seed, self.identity())

    @property
    def label(self) -> str:
        """``<algo> <task> d<depth> w<width> s<seed>``, for progress lines and logs."""
        n = self.network
        return f"{self.algo} {self.task} d{n.depth} w{n.width} s{self.seed}"
