"""Independent DDPG learners with no data sharing (NDS) on the SupplyChain game.

The baseline of Mukherjee et al. (2023): each player learns from its own data only.
Actor i sees its own 5 features (5 → 128 → 128 → 2) and critic i its own features and
own action (5 + 2 = 7 → 128 → 128 → 1). Everything else — config and paper defaults,
replay (each player's own columns), index sampling, update order, exploration, the
loop — is :mod:`smpc_gym.agents.maddpg` with ``DataSharing("nds")``, so EDE and NDS
differ in exactly one thing: what the networks are allowed to see.

Because the two players' minibatches use the same indices, NDS is "two independent
DDPG learners that happen to sample the same time steps"; nothing of player j enters
player i's networks (a test checks that player j's columns do not change player i's
update).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from smpc_gym.agents.maddpg import MADDPG
from smpc_gym.agents.maddpg import Config as _MADDPGConfig


@dataclass
class Config(_MADDPGConfig):
    """NDS hyper-parameters: the same fields and paper defaults as ``maddpg.Config``."""


class NDS(MADDPG):
    """Independent DDPG learners (no data sharing), one per player.

    Same training loop, replay, noise and update order as :class:`~smpc_gym.agents.maddpg.MADDPG`;
    the networks see only their own player's features and action.
    """

    name: ClassVar[str] = "nds"
    Config: ClassVar[type] = Config
    sharing_mode: ClassVar[str] = "nds"
