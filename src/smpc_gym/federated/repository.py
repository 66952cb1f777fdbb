"""The model repository: a versioned, authenticated store of global models (one file per round).

Layout of a repository directory::

    manifest.json           {"format": 2, "config_hash": ..., "rounds": [entry, ...], "hmac": ...}
    round_000000.pt         the global state_dict after round 0 (torch.save)
    round_000001.pt         ...

and, outside it, the owner's key file (default ``<directory>.key`` beside the directory,
created ``0600``; pass ``key_file=`` to keep it elsewhere). Each manifest entry holds
``round``, ``file``, ``sha256`` (of the file's bytes), ``bytes``, ``metrics`` (a JSON
object) and ``saved_at`` (UTC ISO time).

Guarantees:

* **Atomic writes** (:func:`smpc_gym.storage.atomic_write_bytes`). The model file is
  written first, then the manifest that makes it visible. A writer killed at any moment
  leaves either the old manifest (which does not mention the half-written round) or the
  new one (whose file is complete): the previous version always loads.
* **Authenticated manifest.** The manifest carries an HMAC-SHA256 of its contents under
  the owner's secret key (:func:`smpc_gym.storage.write_signed_json`). Someone who can
  write the directory but not read the key cannot swap a model and update its hash:
  the manifest then fails authentication (:class:`ForgedManifestError`). Anyone holding
  the key can; the key is the trust anchor, so keep it where only the owner reads it
  and do not copy it along with the directory.
* **Verified loads.** :meth:`ModelRepository.load` reads the file once, checks its length
  and SHA-256 against the authenticated manifest and refuses a mismatch (tampered or
  truncated file) with :class:`IntegrityError` naming the file and both hashes; only then
  is it deserialised, with ``torch.load(weights_only=True)`` (tensors and plain
  containers only, never arbitrary pickle).
* **Confined entries.** A manifest entry's file must be a plain name inside the
  directory: absolute paths, ``..`` and symbolic links leading out are refused
  (:class:`UnsafeEntryError`).
* **One run per repository.** The manifest records the hash of the run's configuration;
  opening it with a different configuration is refused.

A repository has one writer at a time (the coordinator); readers may run concurrently.
Format-1 manifests (unauthenticated, before this version) are refused with a message.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from smpc_gym import storage

__all__ = [
    "ForgedManifestError",
    "IntegrityError",
    "ModelRepository",
    "RepositoryError",
    "UnsafeEntryError",
    "config_hash",
]

_FORMAT = 2
_MANIFEST = "manifest.json"


class RepositoryError(RuntimeError):
    """The repository is missing, inconsistent, or used with the wrong configuration."""


class IntegrityError(RepositoryError, storage.IntegrityError):
    """A model file or the manifest is not what the owner wrote (damaged or changed)."""


class ForgedManifestError(IntegrityError, storage.ForgedFileError):
    """The manifest's HMAC does not verify under the owner's key."""


class UnsafeEntryError(IntegrityError, storage.UnsafePathError):
    """A manifest entry names a file outside the repository directory."""


def config_hash(config: Any) -> str:
    """SHA-256 of a configuration (dataclass, mapping, ...) as canonical, sorted JSON."""
    import dataclasses

    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def default_key_file(root: str | os.PathLike[str]) -> Path:
    """Where a repository's key lives unless given: ``<root>.key`` beside ``root``."""
    base = Path(root).resolve()
    return base.with_name(base.name + ".key")


class ModelRepository:
    """Versioned store of global models with an authenticated manifest (module docstring).

    Args:
        root: directory (created if missing).
        config: the run's configuration; its :func:`config_hash` is stored in a new
            manifest and must match an existing one. ``None`` skips the check.
        key: the secret HMAC key (32 bytes) to sign and check the manifest with.
        key_file: where the key is kept when ``key`` is not given (created ``0600`` with
            a fresh random key if missing); default :func:`default_key_file` (``<root>.key``
            beside the directory, never inside it).

    Raises:
        RepositoryError: the configuration differs from the repository's.
        IntegrityError: the manifest is damaged, forged (:class:`ForgedManifestError`) or
            an unauthenticated format-1 manifest.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        config: Any = None,
        *,
        key: bytes | None = None,
        key_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.key_file = None if key is not None else Path(key_file or default_key_file(root))
        if key is None:
            assert self.key_file is not None
            if self.key_file.resolve().parent == self.root.resolve():
                raise RepositoryError(
                    f"key file {self.key_file} is inside the repository {self.root}: whoever "
                    "can change the repository could then forge its manifest; keep it outside"
                )
            key = storage.load_or_create_key(self.key_file)
        if not isinstance(key, bytes) or len(key) < 16:
            raise ValueError("key must be at least 16 secret bytes (32 recommended)")
        self._key = key
        self.config_hash = None if config is None else config_hash(config)
        manifest = self._read_manifest()
        if manifest is None:
            manifest = {"format": _FORMAT, "config_hash": self.config_hash, "rounds": []}
            self._write_manifest(manifest)
        elif (
            self.config_hash is not None
            and manifest.get("config_hash") is not None
            and manifest["config_hash"] != self.config_hash
        ):
            raise RepositoryError(
                f"{self.root / _MANIFEST} belongs to a run with config hash "
                f"{manifest['config_hash'][:16]}..., not this run's {self.config_hash[:16]}...; "
                "use another directory or the same configuration"
            )
        self._manifest = manifest
        self._remove_stale_temp_files()

    # ------------------------------------------------------------------ manifest
    def _read_manifest(self) -> dict[str, Any] | None:
        """The authenticated manifest, or ``None`` if there is none yet."""
        path = self.root / _MANIFEST
        if not path.exists():
            return None
        try:
            manifest = storage.read_signed_json(path, self._key)
        except storage.ForgedFileError as exc:
            where = f"key file {self.key_file}" if self.key_file else "the key given"
            raise ForgedManifestError(f"{exc} (checked with {where})") from None
        except storage.IntegrityError as exc:
            old = _unsigned_format(path)
            if old is not None:
                raise IntegrityError(
                    f"{path} is a format-{old} manifest without authentication; this version "
                    f"reads only format {_FORMAT} (HMAC-signed). Re-create the repository "
                    "(its models cannot be trusted without a signature)"
                ) from None
            raise IntegrityError(str(exc)) from None
        except OSError as exc:
            raise RepositoryError(f"cannot read manifest {path}: {exc}") from exc
        if manifest.get("format") != _FORMAT or not isinstance(manifest.get("rounds"), list):
            raise RepositoryError(
                f"{path} is not a format-{_FORMAT} model-repository manifest "
                f"(format={manifest.get('format')!r})"
            )
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        storage.write_signed_json(self.root / _MANIFEST, manifest, self._key)

    def _remove_stale_temp_files(self) -> None:
        for p in self.root.glob(".*.tmp"):  # left by a writer that was killed
            with contextlib.suppress(OSError):
                p.unlink()

    @property
    def manifest(self) -> dict[str, Any]:
        """A copy of the manifest (re-read from disk)."""
        m = self._read_manifest()
        return json.loads(json.dumps(m))

    def rounds(self) -> list[int]:
        """The stored round numbers, ascending."""
        m = self._read_manifest() or {"rounds": []}
        return sorted(e["round"] for e in m["rounds"])

    def latest_round(self) -> int | None:
        """The newest stored round, or ``None`` if the repository is empty."""
        r = self.rounds()
        return r[-1] if r else None

    def entry(self, round_: int) -> dict[str, Any]:
        """The manifest entry of ``round_`` (``RepositoryError`` naming the stored rounds)."""
        m = self._read_manifest() or {"rounds": []}
        for e in m["rounds"]:
            if e["round"] == round_:
                return dict(e)
        raise RepositoryError(
            f"round {round_} is not in {self.root / _MANIFEST}; stored rounds: {self.rounds()}"
        )

    # ------------------------------------------------------------------ save / load
    def save(
        self,
        round_: int,
        state_dict: Mapping[str, torch.Tensor],
        metrics: Mapping[str, Any] | None = None,
    ) -> Path:
        """Store the global model of ``round_`` (atomically) and record it in the manifest.

        Re-saving an existing round replaces it. Returns the model file's path.
        """
        if not isinstance(round_, int) or round_ < 0:
            raise ValueError(f"round must be an integer >= 0, got {round_!r}")
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buf)
        data = buf.getvalue()
        name = f"round_{round_:06d}.pt"
        storage.atomic_write_bytes(self.root / name, data)  # 1. the model
        manifest = self._read_manifest() or {
            "format": _FORMAT,
            "config_hash": self.config_hash,
            "rounds": [],
        }
        entry = {
            "round": round_,
            "file": name,
            "sha256": storage.sha256_hex(data),
            "bytes": len(data),
            "metrics": json.loads(json.dumps(dict(metrics or {}), default=float)),
            "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        manifest["rounds"] = [e for e in manifest["rounds"] if e["round"] != round_] + [entry]
        manifest["rounds"].sort(key=lambda e: e["round"])
        self._write_manifest(manifest)  # 2. the manifest that makes it visible
        self._manifest = manifest
        return self.root / name

    def load(self, round_: int | None = None) -> dict[str, torch.Tensor]:
        """Load the model of ``round_`` (default: the latest), verifying its SHA-256.

        Raises:
            RepositoryError: the repository is empty or the round is unknown / missing.
            IntegrityError: the file's length or SHA-256 differs from the authenticated
                manifest's (tampered or truncated file); the message names the file and
                both hashes. :class:`UnsafeEntryError` if the entry points outside.
        """
        if round_ is None:
            round_ = self.latest_round()
            if round_ is None:
                raise RepositoryError(f"the repository {self.root} holds no model yet")
        e = self.entry(round_)
        try:
            path = storage.confined_path(self.root, e.get("file") or "")
        except storage.UnsafePathError as exc:
            raise UnsafeEntryError(f"round {round_}: {exc}") from None
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RepositoryError(
                f"model file {path} of round {round_} is unreadable: {exc}"
            ) from exc
        try:
            storage.verify_bytes(path, data, e["sha256"], e["bytes"])
        except storage.IntegrityError as exc:
            raise IntegrityError(
                f"model file {path} of round {round_} fails verification against "
                f"{self.root / _MANIFEST}: {exc}"
            ) from None
        obj = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        if not isinstance(obj, dict):
            raise RepositoryError(f"{path} does not hold a state_dict (got {type(obj).__name__})")
        return obj

    def metrics(self) -> list[dict[str, Any]]:
        """``[{"round": r, **metrics}, ...]`` for every stored round, ascending."""
        m = self._read_manifest() or {"rounds": []}
        return [{"round": e["round"], **e["metrics"]} for e in m["rounds"]]


def _unsigned_format(path: Path) -> int | None:
    """The ``format`` of an old unsigned manifest at ``path`` (else ``None``)."""
    try:
        old = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if isinstance(old, dict) and "hmac" not in old and isinstance(old.get("format"), int):
        return int(old["format"])
    return None
