"""Built-in algorithms; each registers itself with :mod:`gcrl_bench.registry` on import of this package.

Each algorithm module (crl, sac, td3, gcsl) depends only on the shared modules ``common`` (tanh-Gaussian
actor, Adam step, SAC's actor and temperature losses) and ``td`` (twin critics and TD losses of SAC and
TD3), never on another algorithm.
"""

from gcrl_bench.algorithms import crl, gcsl, sac, td3
from gcrl_bench.interface import Algorithm
from gcrl_bench.registry import register_algorithm

register_algorithm(
    Algorithm(
        name="crl",
        config_cls=crl.CRLConfig,
        init=crl.init,
        act=crl.act,
        update=crl.update,
        diagnostics=crl.diagnostics,
        description="Contrastive RL: InfoNCE critic with L2 energy, tanh-Gaussian actor (Wang et al. 2025)",
    )
)
register_algorithm(
    Algorithm(
        name="sac",
        config_cls=sac.SACConfig,
        init=sac.init,
        act=sac.act,
        update=sac.update,
        diagnostics=sac.diagnostics,
        description="SAC on the commanded goals, sparse success reward (Haarnoja et al. 2018)",
    )
)
register_algorithm(
    Algorithm(
        name="sac_her",
        config_cls=sac.SACHERConfig,
        init=sac.init,
        act=sac.act,
        update=sac.update,
        diagnostics=sac.diagnostics,
        description="SAC with hindsight relabelling (HER 'future', k = 4), sparse success reward",
    )
)
register_algorithm(
    Algorithm(
        name="td3_her",
        config_cls=td3.TD3Config,
        init=td3.init,
        act=td3.act,
        update=td3.update,
        diagnostics=td3.diagnostics,
        description="TD3 with hindsight relabelling (HER 'future', k = 4), sparse success reward (Fujimoto et al. 2018)",
    )
)
register_algorithm(
    Algorithm(
        name="gcsl",
        config_cls=gcsl.GCSLConfig,
        init=gcsl.init,
        act=gcsl.act,
        update=gcsl.update,
        diagnostics=gcsl.diagnostics,
        description="GCSL: max likelihood of taken actions, uniform future-state goals (Ghosh et al. 2019)",
    )
)
register_algorithm(
    Algorithm(
        name="gcbc",
        config_cls=gcsl.GCBCConfig,
        init=gcsl.init,
        act=gcsl.act,
        update=gcsl.update,
        diagnostics=gcsl.diagnostics,
        description="GCBC: max likelihood of taken actions, geometric future goals, entropy bonus",
    )
)
