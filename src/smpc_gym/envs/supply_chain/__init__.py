"""SupplyChain: the two-player (upstream / downstream) pricing-and-ordering game.

``game`` holds the pure batched dynamics, ``parallel`` the PettingZoo env, ``render`` the
ansi table and pygame dashboard, ``policies`` the baseline policies.
"""

from smpc_gym.envs.supply_chain.game import (
    PLAYER_NAMES,
    ScalarSupplyChainGame,
    StepResult,
    SupplyChainConfig,
    SupplyChainGame,
)

__all__ = [
    "PLAYER_NAMES",
    "ScalarSupplyChainGame",
    "StepResult",
    "SupplyChainConfig",
    "SupplyChainGame",
]
