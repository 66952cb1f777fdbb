"""Files written atomically and verified when read back, and the saved-algorithm format.

Ground layer (like :mod:`smpc_gym.envs` and :mod:`smpc_gym.secure`): it imports nothing
from federated, agents, studies or training, which all use it.

* :mod:`smpc_gym.storage.files` — the one atomic write, verified files with their own
  SHA-256 header, HMAC-signed JSON manifests with an owner's key, confined paths, and the
  :class:`IntegrityError` family raised on every failed check.
* :mod:`smpc_gym.storage.payload` — the ``model.pt``/checkpoint format and verified
  ``torch.save`` files (``weights_only`` loading after the hash check).
"""

from __future__ import annotations

from smpc_gym.storage import files as _files
from smpc_gym.storage.files import *  # noqa: F403 - the public names listed in files.__all__

__all__ = list(_files.__all__)
