"""Secure MADDPG: the EDE update of :mod:`smpc_gym.agents.maddpg` under two-party CrypTen.

A package read top to bottom, one job per module:

* :mod:`.config` — :class:`Config` and :class:`FixedPointOverflow`;
* :mod:`.update` — the secure networks (:class:`SecureNets`) and the secure update
  (:func:`secure_update`, line-by-line twin of :func:`maddpg.maddpg_update`);
* :mod:`.party` — the party process (:class:`Party`, :func:`party_main`) and its share
  files;
* :mod:`.algorithm` — the runner-facing algorithm (:class:`SecureMADDPG`).

Every public name is importable from this package (``from smpc_gym.agents.secure_maddpg
import Config``); the algorithm registry names ``smpc_gym.agents.secure_maddpg:SecureMADDPG``.

Who holds what (README.md, "Secure MADDPG", has the full threat model):

* Player ``i`` is party ``i``, a separate OS process (CrypTen over ``torch.distributed``).
  It holds its own observations, actions, rewards and replay columns in the clear, and
  reaches the game only through a :class:`~smpc_gym.envs.supply_chain.remote.PlayerView`,
  which carries *its* action to the world simulator and *its* observation/reward/info
  back — nothing else ever arrives (typed frames, HMAC-authenticated with a per-run key).
* All network weights (both actors, both critics, their targets) and the optimiser states
  are secret-shared from start to end; each party checkpoints its own shares.
* Revealed: player i's action to player i only (``get_plain_text(dst=i)``); minibatch
  indices are never sent at all — both parties draw them from the sampler seeded with the
  run's (public) seed; with ``reveal_losses`` the scalar losses to both parties; with
  ``reveal_final_weights="owner"`` each player's own actor and critic to that player at
  the end. Every reveal goes through :meth:`Party.reveal`, which records it.

* Beaver triples and other correlated randomness come from a dealer process that holds
  no data (``provider: TTP``, the default); ``provider: tfp_player0_sees_all`` lets
  player 0 generate them and so read every opened value (docs/security/trust-model.md).
* Before the first secure operation both parties compare their resume step, a hash of
  the run's config and the code version (:func:`run_facts`); a mismatch stops both.

The world simulator (:mod:`smpc_gym.envs.supply_chain.remote`) stands in for the physical
supply chain: a third process owned by neither party that steps the game with both
players' actions and answers each player with its own part only. In a deployment each
player's side of the world is its own business (its stock, its customers); the simulator
exists so the two parties never need each other's actions in the clear to run an episode.
It holds both players' game state, so across machines it must run on a host neither
player controls (``world_address``).
"""

from smpc_gym.agents.secure_maddpg.algorithm import SecureMADDPG
from smpc_gym.agents.secure_maddpg.config import (
    ACTION_DIM,
    AGENTS,
    N_FEATURES,
    N_PLAYERS,
    Config,
    FixedPointOverflow,
)
from smpc_gym.agents.secure_maddpg.config import _episode_seed as _episode_seed
from smpc_gym.agents.secure_maddpg.party import (
    Party,
    PartyJob,
    code_version,
    load_share_file,
    party_main,
    run_facts,
    share_file,
)

# private helpers that benchmarks and tests reach through the package
from smpc_gym.agents.secure_maddpg.party import _atomic_save as _atomic_save
from smpc_gym.agents.secure_maddpg.party import _seeds as _seeds
from smpc_gym.agents.secure_maddpg.update import (
    SecureNets,
    make_optimisers,
    plaintext_optimisers,
    secure_update,
    share_batch,
    split_players,
    stack_players,
    warm_start_optimisers,
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
    "plaintext_optimisers",
    "run_facts",
    "secure_update",
    "share_batch",
    "share_file",
    "split_players",
    "stack_players",
    "warm_start_optimisers",
]
