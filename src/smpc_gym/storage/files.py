"""Files that are written atomically and verified when read back.

This is the one place in smpc_gym that writes a file meant to be read again (checkpoints,
``model.pt``, secure MADDPG share files, model-repository entries, run metadata):

* :func:`atomic_write_bytes` — a temporary file in the same folder, ``fsync``,
  ``os.replace``, then ``fsync`` of the folder. A crash or Ctrl-C during a write leaves the
  previous file intact (or no file), never a half-written one. Files are created with the
  normal permissions (``0666`` minus the umask, so ``0644`` usually); only key material is
  created ``0600``.
* **Verified files** (:func:`write_verified` / :func:`read_verified`): one file that
  carries its own hash manifest. Its first line is :data:`MAGIC`, its second a canonical
  JSON header ``{"bytes": N, "sha256": "<hex>"}``, then the ``N`` data bytes. Header and
  data reach the disk in one atomic write, so they always belong together. On reading,
  the magic, the header (which must be byte-for-byte canonical), the length and the
  SHA-256 are all checked: changing any single byte of the file is detected.
* **Signed JSON manifests** (:func:`write_signed_json` / :func:`read_signed_json`): a
  JSON object with an ``"hmac"`` field, the HMAC-SHA256 of the rest under a secret key
  the owner keeps (:func:`load_or_create_key`, a ``0600`` file). A plain hash only
  detects accidents: whoever can rewrite a file can rewrite its hash too. An HMAC can
  only be recomputed by someone holding the key.
* :func:`confined_path` — a name read from a manifest, resolved inside its folder or
  refused (absolute paths, ``..`` and symbolic links leading out).

Every failure raises a subclass of :class:`IntegrityError` whose message names the file
and says what was expected. What a check reveals: nothing beyond what the reader already
holds (hashes are of the reader's own files).

Ground layer: imports only the standard library.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MAGIC",
    "DamagedFileError",
    "ForgedFileError",
    "IntegrityError",
    "UnsafePathError",
    "UnverifiedFileError",
    "atomic_write_bytes",
    "canonical_json",
    "confined_path",
    "load_or_create_key",
    "newest_good_file",
    "read_signed_json",
    "read_verified",
    "sha256_hex",
    "verify_bytes",
    "write_signed_json",
    "write_verified",
]

#: First line of every verified file (format version 1).
MAGIC = b"smpc_gym verified file 1\n"
#: Longest header line accepted (the header is about 100 bytes).
_MAX_HEADER = 1024
#: Bytes of a new HMAC key (256 bits, stored as hex).
_KEY_BYTES = 32
#: Domain separation: the HMAC of a manifest never equals an HMAC of anything else.
_HMAC_DOMAIN = b"smpc_gym signed manifest 1\n"


class IntegrityError(ValueError):
    """A file read back is not what was written (damaged, forged, unverified, unsafe)."""


class UnverifiedFileError(IntegrityError):
    """The file carries no hash (written by another program or an older version)."""


class DamagedFileError(IntegrityError):
    """The file's bytes do not match the hash, length or format recorded for them."""


class ForgedFileError(IntegrityError):
    """A signed manifest's HMAC does not match (edited without the key, or another key)."""


class UnsafePathError(IntegrityError):
    """A name read from a manifest points outside the folder it must stay in."""


# --------------------------------------------------------------------------- writing
def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: not every platform allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o666) -> Path:
    """Write ``data`` to ``path`` atomically and durably; return the path.

    The data goes to a temporary file ``.<name>.<random>.tmp`` in the same folder (created
    if missing), which is flushed, ``fsync`` ed and moved over ``path`` with
    ``os.replace``; the folder is ``fsync`` ed too. Readers see the old file or the new
    one, never a mixture. The file is created with ``mode`` minus the process umask
    (``0644`` for the default ``0666`` and the usual umask ``022``); pass ``0o600`` for
    key material only.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, mode)  # the kernel applies the umask, unlike mkstemp's 0600
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
    return path


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """The one byte string a JSON object is stored as (sorted keys, indent 1, newline).

    Readers re-serialise what they parsed and compare, so a file that parses to the
    same object but differs in any byte (e.g. a newline turned into a tab) is refused.
    """
    return (json.dumps(obj, sort_keys=True, indent=1, allow_nan=True) + "\n").encode()


def _header(data: bytes) -> bytes:
    return json.dumps({"bytes": len(data), "sha256": sha256_hex(data)}, sort_keys=True).encode()


def write_verified(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write ``data`` as a verified file (magic, hash header, data)."""
    return atomic_write_bytes(path, MAGIC + _header(data) + b"\n" + data)


# --------------------------------------------------------------------------- reading
def verify_bytes(path: str | os.PathLike[str], data: bytes, sha256: str, size: int) -> None:
    """Raise :class:`DamagedFileError` unless ``data`` (read from ``path``) has
    ``size`` bytes and SHA-256 ``sha256``."""
    if len(data) != size:
        raise DamagedFileError(
            f"{path} is damaged: expected {size} bytes, found {len(data)} (truncated or "
            "extended); refusing to load it"
        )
    digest = sha256_hex(data)
    if not hmac.compare_digest(digest, str(sha256)):
        raise DamagedFileError(
            f"{path} is damaged: its SHA-256 is {digest}, expected {sha256} as recorded when "
            "it was written; refusing to load it"
        )


def read_verified(path: str | os.PathLike[str]) -> bytes:
    """The data of a verified file written by :func:`write_verified`, checked.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnverifiedFileError: the file does not start with :data:`MAGIC`.
        DamagedFileError: the header is malformed, or the data's length or SHA-256
            differs from the header's. Every message names the file.
    """
    path = Path(path)
    blob = path.read_bytes()
    if not blob.startswith(MAGIC):
        raise UnverifiedFileError(
            f"{path} is not a verified smpc_gym file: it should start with {MAGIC!r} but "
            f"starts with {blob[: len(MAGIC)]!r} (written by another program or an older "
            "smpc_gym without a hash, or its first bytes are damaged); refusing to load it"
        )
    end = blob.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER)
    if end < 0:
        raise DamagedFileError(
            f"{path} is damaged: no header line within {_MAX_HEADER} bytes after the magic"
        )
    raw = blob[len(MAGIC) : end]
    try:
        header = json.loads(raw)
        ok = (
            isinstance(header, dict)
            and set(header) == {"bytes", "sha256"}
            and type(header["bytes"]) is int
            and isinstance(header["sha256"], str)
        )
    except (ValueError, UnicodeDecodeError):
        ok = False
    if not ok or raw != json.dumps(header, sort_keys=True).encode():
        raise DamagedFileError(
            f"{path} is damaged: its header {raw[:200]!r} is not the expected "
            '{"bytes": N, "sha256": "<64 hex digits>"}; refusing to load it'
        )
    data = blob[end + 1 :]
    verify_bytes(path, data, header["sha256"], header["bytes"])
    return data


def newest_good_file(
    candidates: Iterable[str | os.PathLike[str]],
) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest candidate that passes :func:`read_verified`, and the ones skipped.

    ``candidates`` are ordered oldest first (e.g. checkpoints by step). Returns
    ``(path, skipped)`` where ``skipped`` lists ``(path, reason)`` for every newer
    candidate that failed, newest first; ``path`` is ``None`` if none passed.
    """
    skipped: list[tuple[Path, str]] = []
    for p in reversed([Path(c) for c in candidates]):
        try:
            read_verified(p)
        except (IntegrityError, OSError) as exc:
            skipped.append((p, str(exc)))
        else:
            return p, skipped
    return None, skipped


# --------------------------------------------------------------------------- HMAC
def load_or_create_key(path: str | os.PathLike[str]) -> bytes:
    """The secret HMAC key stored in ``path``, created (``0600``) if missing.

    The key is 32 random bytes stored as 64 hex digits. Keep the file away from the
    data it authenticates: whoever can read it can forge manifests. An existing key
    file readable or writable by group or others is refused (like ssh does).
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(_KEY_BYTES) + "\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(tmp, path)  # unlike os.replace, never overwrites a key
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _fsync_dir(path.parent)
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise IntegrityError(f"key file {path} is not a regular file")
    if os.name == "posix" and st.st_mode & 0o077:
        raise IntegrityError(
            f"key file {path} has permissions {stat.S_IMODE(st.st_mode):04o}; a key must be "
            f"readable by its owner only (run: chmod 600 {path})"
        )
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise IntegrityError(
            f"key file {path} does not hold a key: expected {2 * _KEY_BYTES} hex digits"
        )
    return key


def _mac(key: bytes, body: Mapping[str, Any]) -> str:
    msg = _HMAC_DOMAIN + canonical_json(dict(body))
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def write_signed_json(path: str | os.PathLike[str], obj: Mapping[str, Any], key: bytes) -> Path:
    """Atomically write the JSON object ``obj`` with an ``"hmac"`` field under ``key``."""
    if "hmac" in obj:
        raise ValueError("a signed JSON object may not contain the key 'hmac' itself")
    return atomic_write_bytes(path, canonical_json({**obj, "hmac": _mac(key, obj)}))


def read_signed_json(path: str | os.PathLike[str], key: bytes) -> dict[str, Any]:
    """Read a file written by :func:`write_signed_json` and check its HMAC.

    Raises:
        FileNotFoundError: no file at ``path``.
        DamagedFileError: not JSON, not a JSON object, no ``"hmac"``, or not in the
            canonical form it was written in.
        ForgedFileError: the HMAC does not match under ``key``.
    """
    path = Path(path)
    blob = path.read_bytes()
    try:
        obj = json.loads(blob)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedFileError(f"{path} is damaged: not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("hmac"), str):
        raise DamagedFileError(
            f"{path} is not a signed manifest: expected a JSON object with an 'hmac' field"
        )
    if canonical_json(obj) != blob:
        raise DamagedFileError(
            f"{path} is damaged: its bytes differ from the canonical JSON it was written as "
            "(edited by hand or corrupted); refusing to trust it"
        )
    body = {k: v for k, v in obj.items() if k != "hmac"}
    if not hmac.compare_digest(_mac(key, body), obj["hmac"]):
        raise ForgedFileError(
            f"{path} fails authentication: its HMAC-SHA256 does not match under the owner's "
            "key (it was changed by someone without the key, or is checked with another "
            "key); refusing to trust it"
        )
    return body


# --------------------------------------------------------------------------- paths
def confined_path(root: str | os.PathLike[str], name: str) -> Path:
    """``root / name``, refused unless it stays inside ``root``.

    ``name`` must be a relative path without ``..`` components; after resolving
    symbolic links the result must still lie inside ``root`` (resolved too).

    Raises:
        UnsafePathError: naming ``name``, ``root`` and what was wrong.
    """
    root = Path(root)
    if not isinstance(name, str) or not name:
        raise UnsafePathError(f"entry {name!r} in {root}: expected a non-empty relative file name")
    rel = Path(name)
    if rel.is_absolute() or name.startswith(("/", "\\")) or ":" in name:
        raise UnsafePathError(
            f"entry {name!r} in {root} is an absolute path; entries must be relative to it"
        )
    if ".." in rel.parts or "\\" in name:
        raise UnsafePathError(
            f"entry {name!r} in {root} climbs out with '..' (or a backslash); entries must "
            "stay inside the folder"
        )
    base = root.resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(
            f"entry {name!r} in {root} leads to {target} through a symbolic link, outside "
            f"{base}; refusing to follow it"
        )
    return base / rel
