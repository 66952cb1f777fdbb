"""SupplyChain-v0: the two-player supply-chain game in PettingZoo's usual module style.

``parallel_env(**params)`` returns a :class:`~smpc_gym.envs.supply_chain.parallel.
SupplyChainParallelEnv` (agents ``player_0``, ``player_1``); ``env(**params)`` returns the
AEC version (``parallel_to_aec``, which adds PettingZoo's ``OrderEnforcingWrapper``).
Out-of-bounds actions are clipped *and counted* by the env itself, so PettingZoo's
clip/assert-out-of-bounds wrappers are deliberately not applied. Both are registered with
PettingZoo as ``smpc/SupplyChain-v0``. Parameters (``p_max``, ``q_max``, ``raw_cost``,
``demand_intercept``, ``demand_slope``, ``demand_noise``, ``storage_cap``,
``perishable``, ``initial_stock``, ``max_cycles``, ``render_mode``, or ``config=``) are
documented on the env class; presets live in ``envs/supply_chain.yaml``.

Example::

    from smpc_gym import supply_chain_v0
    from smpc_gym.envs.supply_chain.policies import myopic_action

    env = supply_chain_v0.parallel_env(render_mode="ansi")
    obs, infos = env.reset(seed=0)
    while env.agents:
        obs, rewards, terms, truncs, infos = env.step(
            {a: myopic_action(a) for a in env.agents}
        )
    print(infos["player_0"]["ncr"], infos["player_1"]["ncr"])
"""

from __future__ import annotations

from typing import Any

from pettingzoo import AECEnv
from pettingzoo.utils.conversions import parallel_to_aec

from smpc_gym.envs.supply_chain.game import SupplyChainConfig
from smpc_gym.envs.supply_chain.parallel import SupplyChainParallelEnv

__all__ = ["SupplyChainConfig", "SupplyChainParallelEnv", "env", "parallel_env", "raw_env"]


def parallel_env(**params: Any) -> SupplyChainParallelEnv:
    """The PettingZoo ``ParallelEnv`` (see :class:`SupplyChainParallelEnv` for params)."""
    return SupplyChainParallelEnv(**params)


def raw_env(**params: Any) -> AECEnv:
    """The AEC env without extra wrappers beyond ``parallel_to_aec``'s order enforcing."""
    return parallel_to_aec(SupplyChainParallelEnv(**params))


def env(**params: Any) -> AECEnv:
    """The AEC version of :func:`parallel_env` (agents act in turn; a step completes when
    both have acted)."""
    return raw_env(**params)
