"""Files read back are verified: any changed byte of a checkpoint, ``model.pt``, share file
or repository entry is refused naming the file; repository manifests are authenticated and
confined; ``--resume`` falls back past a damaged latest checkpoint; permissions are normal."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from smpc_gym import storage
from smpc_gym.agents import secure_maddpg
from smpc_gym.agents.base import load_algorithm
from smpc_gym.federated.repository import (
    ForgedManifestError,
    IntegrityError,
    ModelRepository,
    RepositoryError,
    UnsafeEntryError,
    default_key_file,
)
from smpc_gym.storage import payload
from smpc_gym.training.checkpoint import resume_checkpoint
from smpc_gym.training.cli import main
from smpc_gym.training.config import ConfigError
from smpc_gym.training.run import list_checkpoints

RUN = ["--algo", "random", "--env", "greedy_mouse", "--seed", "3", "--quiet", "--no-tensorboard"]
RUN += ["--set", "env.max_episode_steps=50", "--set", "log_every=50", "--eval-episodes", "2"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished tiny run: checkpoints at 100, 200, 300 and model.pt."""
    out = tmp_path_factory.mktemp("integrity") / "run"
    assert main([*RUN, "--steps", "300", "--checkpoint-every", "100", "--out", str(out)]) == 0
    return out


_WHITESPACE = b" \t\n\r"


def _flips(size: int, every: bool) -> list[int]:
    """Every position, or ~600 spread over the file (first and last byte included)."""
    if every or size <= 600:
        return list(range(size))
    return sorted({0, size - 1, *np.linspace(0, size - 1, 600).astype(int).tolist()})


def _changed(byte: int, i: int) -> int:
    """Another value for ``byte``: JSON whitespace becomes other whitespace (a change a
    parser would not notice), anything else gets one bit flipped (a different bit per
    position)."""
    if byte in _WHITESPACE:
        return _WHITESPACE[(_WHITESPACE.index(byte) + 1 + i % 3) % 4]
    return byte ^ (1 << (i % 8))


def _assert_every_flip_detected(
    path: Path, load, error: type[Exception], name: str, every: bool = True
) -> int:
    """Change one byte at a time (every byte, or ~600 spread positions), call ``load``;
    each must raise ``error`` with ``name`` in the message. Restores the file; returns
    the number of positions tried."""
    original = path.read_bytes()
    positions = _flips(len(original), every)
    try:
        for i in positions:
            damaged = bytearray(original)
            damaged[i] = _changed(damaged[i], i)
            path.write_bytes(bytes(damaged))
            with pytest.raises(error) as info:
                load()
            assert name in str(info.value), (i, str(info.value))
    finally:
        path.write_bytes(original)
    load()  # the restored file loads again
    return len(positions)


# --------------------------------------------------------------------------- files.py
def test_atomic_write_uses_normal_permissions_and_keys_are_private(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        f = storage.atomic_write_bytes(tmp_path / "sub" / "a.bin", b"x")
        assert stat.S_IMODE(f.stat().st_mode) == 0o644  # not mkstemp's 0600
        os.umask(0o027)
        g = storage.write_verified(tmp_path / "b.bin", b"y")
        assert stat.S_IMODE(g.stat().st_mode) == 0o640  # the umask is honoured
        key_path = tmp_path / "k.key"
        key = storage.load_or_create_key(key_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600 and len(key) == 32
    assert storage.load_or_create_key(key_path) == key  # created once, then reused
    key_path.chmod(0o644)
    with pytest.raises(storage.IntegrityError, match=r"k\.key has permissions 0644.*chmod 600"):
        storage.load_or_create_key(key_path)


def test_verified_file_round_trip_and_messages(tmp_path) -> None:
    path = storage.write_verified(tmp_path / "v.bin", b"hello")
    assert storage.read_verified(path) == b"hello"
    blob = path.read_bytes()
    path.write_bytes(blob[:-2])
    with pytest.raises(storage.DamagedFileError, match=r"v\.bin is damaged: expected 5 bytes"):
        storage.read_verified(path)
    path.write_bytes(blob + b"!")
    with pytest.raises(storage.DamagedFileError, match="expected 5 bytes, found 6"):
        storage.read_verified(path)
    path.write_bytes(b"hello")
    with pytest.raises(storage.UnverifiedFileError, match=r"v\.bin is not a verified smpc_gym"):
        storage.read_verified(path)


def test_newest_good_file_skips_damaged_newer_files(tmp_path) -> None:
    paths = [storage.write_verified(tmp_path / f"c{i}", bytes([i]) * 10) for i in range(4)]
    paths[3].write_bytes(paths[3].read_bytes()[:-1])
    paths[2].write_bytes(b"junk")
    good, skipped = storage.newest_good_file(paths)
    assert good == paths[1]
    assert [p for p, _ in skipped] == [paths[3], paths[2]]
    assert "damaged" in skipped[0][1] and "not a verified" in skipped[1][1]
    assert storage.newest_good_file([]) == (None, [])


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../outside.pt", "a/../../outside.pt", "..", "C:/x.pt", "a\\..\\b.pt", ""],
)
def test_confined_path_refuses_escapes(tmp_path, name) -> None:
    with pytest.raises(storage.UnsafePathError, match="entry"):
        storage.confined_path(tmp_path, name)


def test_confined_path_refuses_symlink_out(tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.pt").write_bytes(b"x")
    (root / "link.pt").symlink_to(tmp_path / "secret.pt")
    with pytest.raises(storage.UnsafePathError, match="symbolic link, outside"):
        storage.confined_path(root, "link.pt")
    assert storage.confined_path(root, "sub/ok.pt") == root.resolve() / "sub" / "ok.pt"


# --------------------------------------------------------------------------- each kind
def test_every_changed_byte_of_a_checkpoint_and_model_pt_is_detected(run_dir) -> None:
    model = run_dir / "model.pt"
    n = _assert_every_flip_detected(
        model, lambda: load_algorithm(model), storage.IntegrityError, str(model)
    )
    assert n == model.stat().st_size  # literally every byte
    ckpt = list_checkpoints(run_dir)[0][1]  # the same format: 600 spread positions
    n = _assert_every_flip_detected(
        ckpt, lambda: load_algorithm(ckpt), storage.IntegrityError, str(ckpt), every=False
    )
    assert n >= min(600, ckpt.stat().st_size)


def test_every_changed_byte_of_a_share_file_is_detected(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    state = {
        "rank": 1,
        "env_steps": 40,
        "nets": {"actors": [torch.randint(-(2**40), 2**40, (8, 5), generator=g)]},
        "sampler": torch.Generator().manual_seed(1).get_state(),
    }
    path = secure_maddpg.share_file(tmp_path, 1, 40)
    secure_maddpg._atomic_save(state, path)
    back = secure_maddpg.load_share_file(tmp_path, 1, 40)
    assert torch.equal(back["nets"]["actors"][0], state["nets"]["actors"][0])
    assert stat.S_IMODE(path.stat().st_mode) & 0o044  # readable like other run files
    n = _assert_every_flip_detected(
        path,
        lambda: secure_maddpg.load_share_file(tmp_path, 1, 40),
        storage.IntegrityError,
        str(path),
        every=False,
    )
    assert n >= min(600, path.stat().st_size)


def _repo(tmp_path: Path) -> tuple[ModelRepository, Path]:
    root = tmp_path / "repo"
    repo = ModelRepository(root)
    g = torch.Generator().manual_seed(0)
    repo.save(0, {"w": torch.randn(4, 3, generator=g)}, metrics={"ret": 1.5})
    repo.save(1, {"w": torch.randn(4, 3, generator=g)})
    return repo, root


def test_every_changed_byte_of_a_repository_entry_is_detected(tmp_path) -> None:
    repo, root = _repo(tmp_path)
    model = root / "round_000001.pt"
    _assert_every_flip_detected(model, lambda: repo.load(1), IntegrityError, str(model))
    manifest = root / "manifest.json"
    n = _assert_every_flip_detected(
        manifest,
        lambda: repo.load(1),
        IntegrityError,
        str(manifest),  # re-reads the manifest
    )
    assert n == manifest.stat().st_size


def test_swapped_weights_with_recomputed_hash_are_refused(tmp_path) -> None:
    repo, root = _repo(tmp_path)
    # The attacker writes other weights and fixes the plain hash and length, but has no key.
    (root / "round_000000.pt").write_bytes((root / "round_000001.pt").read_bytes())
    m = json.loads((root / "manifest.json").read_text())
    m["rounds"][0].update({k: m["rounds"][1][k] for k in ("sha256", "bytes")})
    (root / "manifest.json").write_bytes(storage.canonical_json(m))  # canonical form, old HMAC
    with pytest.raises(ForgedManifestError, match=r"manifest\.json fails authentication"):
        repo.load(0)
    # ... or signs it with a key of their own.
    del m["hmac"]
    storage.write_signed_json(root / "manifest.json", m, b"k" * 32)
    with pytest.raises(ForgedManifestError, match=r"repo\.key"):
        ModelRepository(root)
    assert default_key_file(root) == tmp_path / "repo.key"
    assert stat.S_IMODE((tmp_path / "repo.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("name", ["/etc/hostname", "../repo.key", "sub/../../x.pt"])
def test_manifest_entries_stay_in_the_repository(tmp_path, name) -> None:
    repo, root = _repo(tmp_path)
    m = storage.read_signed_json(root / "manifest.json", storage.load_or_create_key(repo.key_file))
    m["rounds"][0]["file"] = name  # even a correctly signed entry may not point outside
    storage.write_signed_json(root / "manifest.json", m, storage.load_or_create_key(repo.key_file))
    with pytest.raises(UnsafeEntryError, match=f"round 0: entry '{name}'"):
        repo.load(0)


def test_symlinked_model_file_leading_out_is_refused(tmp_path) -> None:
    repo, root = _repo(tmp_path)
    outside = tmp_path / "elsewhere.pt"
    outside.write_bytes((root / "round_000000.pt").read_bytes())  # same bytes, same hash
    (root / "round_000000.pt").unlink()
    (root / "round_000000.pt").symlink_to(outside)
    with pytest.raises(UnsafeEntryError, match="symbolic link, outside"):
        repo.load(0)


def test_repository_key_handling(tmp_path) -> None:
    root = tmp_path / "r"
    with pytest.raises(RepositoryError, match="inside the repository"):
        ModelRepository(root, key_file=root / "k.key")
    key_file = tmp_path / "keys" / "mine.key"
    ModelRepository(root, key_file=key_file).save(0, {"w": torch.ones(2)})
    assert torch.equal(ModelRepository(root, key_file=key_file).load()["w"], torch.ones(2))
    with pytest.raises(ForgedManifestError):  # the default key is another key
        ModelRepository(root)
    key = storage.load_or_create_key(key_file)
    assert torch.equal(ModelRepository(root, key=key).load()["w"], torch.ones(2))


def test_unsigned_format_1_manifest_is_refused(tmp_path) -> None:
    root = tmp_path / "old"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"format": 1, "rounds": []}))
    with pytest.raises(IntegrityError, match="format-1 manifest without authentication"):
        ModelRepository(root)


# --------------------------------------------------------------------------- resume
def test_resume_falls_back_past_a_damaged_latest_checkpoint(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main([*RUN, "--steps", "300", "--checkpoint-every", "100", "--out", str(out)]) == 0
    ckpts = [p for _, p in list_checkpoints(out)]
    assert [s for s, _ in list_checkpoints(out)] == [100, 200, 300]
    latest = ckpts[-1]
    latest.write_bytes(latest.read_bytes()[:-100])  # torn
    capsys.readouterr()
    assert main(["--out", str(out), "--resume", "--steps", "400", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"skipping damaged checkpoint {latest}" in err
    assert f"newest good one, {ckpts[1]}" in err
    assert (out / "checkpoints" / (latest.name + ".damaged")).is_file()
    assert load_algorithm(out / "model.pt").env_steps == 400
    assert [s for s, _ in list_checkpoints(out)][-1] == 400


def test_resume_refuses_when_no_checkpoint_is_good(tmp_path, capsys) -> None:
    paths = [storage.write_verified(tmp_path / f"ckpt-{i}.pt", b"x") for i in range(2)]
    for p in paths:
        p.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="no checkpoint passes verification") as info:
        resume_checkpoint(paths)
    assert all(str(p) in str(info.value) for p in paths)
    assert resume_checkpoint([]) is None


def test_payload_refuses_other_formats(tmp_path) -> None:
    with pytest.raises(ValueError, match="payload format must be"):
        payload.write_payload(tmp_path / "x.pt", {"format": "other"})
