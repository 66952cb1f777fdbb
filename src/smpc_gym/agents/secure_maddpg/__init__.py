"""Secure MADDPG (being split into a package; see :mod:`.party` for now)."""

from smpc_gym.agents.secure_maddpg.party import (
    ACTION_DIM,
    AGENTS,
    N_FEATURES,
    N_PLAYERS,
    Config,
    FixedPointOverflow,
    Party,
    PartyJob,
    SecureMADDPG,
    SecureNets,
    code_version,
    load_share_file,
    make_optimisers,
    party_main,
    run_facts,
    secure_update,
    share_batch,
    share_file,
)
from smpc_gym.agents.secure_maddpg.party import (
    _atomic_save as _atomic_save,
)
from smpc_gym.agents.secure_maddpg.party import (
    _episode_seed as _episode_seed,
)
from smpc_gym.agents.secure_maddpg.party import (
    _seeds as _seeds,
)

__all__ = [
    "ACTION_DIM",
    "AGENTS",
    "N_FEATURES",
    "N_PLAYERS",
    "Config",
    "FixedPointOverflow",
    "Party",
    "PartyJob",
    "SecureMADDPG",
    "SecureNets",
    "code_version",
    "load_share_file",
    "make_optimisers",
    "party_main",
    "run_facts",
    "secure_update",
    "share_batch",
    "share_file",
]
