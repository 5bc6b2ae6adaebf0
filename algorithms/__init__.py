"""Built-in algorithms; each registers itself with :mod:`gcrl_bench.registry` on import of this package."""

from gcrl_bench.algorithms import crl
from gcrl_bench.interface import Algorithm, RelabelConfig
from gcrl_bench.registry import register_algorithm

register_algorithm(
    Algorithm(
        name="crl",
        config_cls=crl.CRLConfig,
        init=crl.init,
        act=crl.act,
        update=crl.update,
        relabel=lambda config: RelabelConfig("geometric", config.gamma, 1.0),
        description="Contrastive RL: InfoNCE critic with L2 energy, tanh-Gaussian actor (Wang et al. 2025)",
    )
)
