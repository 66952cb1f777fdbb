"""A run folder's checkpoints: which one ``--resume`` continues from.

Checkpoints (``checkpoints/ckpt-<step>.pt``) and ``model.pt`` are verified files written
by :func:`smpc_gym.agents.base.save_algorithm`: atomic, with a SHA-256 header checked on
every load (see :mod:`smpc_gym.storage`). :func:`resume_checkpoint` picks the newest one
that passes the check; a damaged newer one is named, moved aside (``.damaged``) and
skipped, so a torn or corrupted latest checkpoint costs the steps since the previous one,
not the run.

The file functions the runner uses are re-exported here, so the training layer has one
place to import them from.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from smpc_gym.agents.base import load_algorithm, save_algorithm
from smpc_gym.storage.files import atomic_write_bytes, newest_good_file
from smpc_gym.storage.payload import read_payload, versions
from smpc_gym.training.config import ConfigError

__all__ = [
    "atomic_write_bytes",
    "load_algorithm",
    "read_payload",
    "resume_checkpoint",
    "save_algorithm",
    "versions",
]

#: Suffix given to a checkpoint found damaged on resume.
DAMAGED_SUFFIX = ".damaged"


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def resume_checkpoint(checkpoints: list[Path], warn: Callable[[str], None] = _warn) -> Path | None:
    """The newest checkpoint of ``checkpoints`` (oldest first) that passes verification.

    Each newer checkpoint that fails is reported through ``warn`` with its reason and
    the checkpoint used instead, then renamed to ``<name>.damaged`` (kept for
    inspection, out of the way of later checkpoints). Returns ``None`` when
    ``checkpoints`` is empty.

    Raises:
        ConfigError: there are checkpoints but none is good; the message names each
            one and why it was refused.
    """
    good, skipped = newest_good_file(checkpoints)
    if skipped and good is None:
        reasons = "; ".join(f"{p}: {why}" for p, why in skipped)
        raise ConfigError(
            f"--resume: no checkpoint passes verification, refusing to resume ({reasons}). "
            "Start again with --overwrite, or restore a checkpoint from a backup."
        )
    for bad, why in skipped:
        moved = bad.with_name(bad.name + DAMAGED_SUFFIX)
        try:
            bad.replace(moved)
        except OSError:
            moved = bad
        warn(
            f"--resume: skipping damaged checkpoint {bad} ({why}); resuming from the newest "
            f"good one, {good}" + (f"; the damaged file is kept as {moved}" if moved != bad else "")
        )
    return good
