"""The model repository: a versioned, verified store of global models (one file per round).

Layout of a repository directory::

    manifest.json           {"format": 1, "config_hash": ..., "rounds": [entry, ...]}
    round_000000.pt         the global state_dict after round 0 (torch.save)
    round_000001.pt         ...

Each manifest entry holds ``round``, ``file``, ``sha256`` (of the file's bytes), ``bytes``,
``metrics`` (a JSON object) and ``saved_at`` (UTC ISO time).

Guarantees:

* **Atomic writes.** Every file (model first, then manifest) is written to a temporary file
  in the same directory, flushed, ``fsync`` ed and moved into place with ``os.replace``;
  the directory is ``fsync`` ed too. A writer killed at any moment leaves either the old
  manifest (which does not mention the half-written round) or the new one (whose file is
  complete): the previous version always loads.
* **Verified loads.** :meth:`ModelRepository.load` reads the file once, checks its SHA-256
  against the manifest and refuses a mismatch (tampered or truncated file) with
  :class:`IntegrityError` naming the file and both hashes; only then is it deserialised,
  with ``torch.load(weights_only=True)`` (tensors and plain containers only, never
  arbitrary pickle).
* **One run per repository.** The manifest records the hash of the run's configuration;
  opening it with a different configuration is refused.

A repository has one writer at a time (the coordinator); readers may run concurrently.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["IntegrityError", "ModelRepository", "RepositoryError", "config_hash"]

_FORMAT = 1
_MANIFEST = "manifest.json"


class RepositoryError(RuntimeError):
    """The repository is missing, inconsistent, or used with the wrong configuration."""


class IntegrityError(RepositoryError):
    """A model file does not match the SHA-256 recorded in the manifest."""


def config_hash(config: Any) -> str:
    """SHA-256 of a configuration (dataclass, mapping, ...) as canonical, sorted JSON."""
    import dataclasses

    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/filesystem allows it
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same dir, fsync, replace."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


class ModelRepository:
    """Versioned store of global models with a SHA-256 manifest (see the module docstring).

    Args:
        root: directory (created if missing).
        config: the run's configuration; its :func:`config_hash` is stored in a new
            manifest and must match an existing one. ``None`` skips the check.
    """

    def __init__(self, root: str | os.PathLike[str], config: Any = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
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
        path = self.root / _MANIFEST
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RepositoryError(f"cannot read manifest {path}: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
            raise RepositoryError(
                f"{path} is not a format-{_FORMAT} model-repository manifest "
                f"(format={manifest.get('format') if isinstance(manifest, dict) else None!r})"
            )
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        atomic_write_bytes(self.root / _MANIFEST, data)

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
        atomic_write_bytes(self.root / name, data)  # 1. the model
        manifest = self._read_manifest() or {
            "format": _FORMAT,
            "config_hash": self.config_hash,
            "rounds": [],
        }
        entry = {
            "round": round_,
            "file": name,
            "sha256": hashlib.sha256(data).hexdigest(),
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
            IntegrityError: the file's SHA-256 differs from the manifest's (tampered or
                truncated file); the message names the file and both hashes.
        """
        if round_ is None:
            round_ = self.latest_round()
            if round_ is None:
                raise RepositoryError(f"the repository {self.root} holds no model yet")
        e = self.entry(round_)
        path = self.root / e["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RepositoryError(
                f"model file {path} of round {round_} is unreadable: {exc}"
            ) from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != e["sha256"]:
            raise IntegrityError(
                f"model file {path} fails verification: SHA-256 {digest} != manifest's "
                f"{e['sha256']} ({len(data)} bytes on disk, {e['bytes']} recorded); the file "
                "was modified or truncated, refusing to load it"
            )
        obj = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        if not isinstance(obj, dict):
            raise RepositoryError(f"{path} does not hold a state_dict (got {type(obj).__name__})")
        return obj

    def metrics(self) -> list[dict[str, Any]]:
        """``[{"round": r, **metrics}, ...]`` for every stored round, ascending."""
        m = self._read_manifest() or {"rounds": []}
        return [{"round": e["round"], **e["metrics"]} for e in m["rounds"]]
