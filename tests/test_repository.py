"""Model repository: verified loads, atomic writes, a writer killed mid-write."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from smpc_gym.federated.repository import (
    IntegrityError,
    ModelRepository,
    RepositoryError,
    default_key_file,
)
from smpc_gym.storage import load_or_create_key, write_signed_json


def _sd(seed: int, n: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(n, 8, generator=g),
        "b": torch.randn(8, generator=g),
        "steps": torch.tensor(seed),
    }


def test_save_load_roundtrip_and_manifest(tmp_path) -> None:
    repo = ModelRepository(tmp_path, config={"lr": 1e-3, "holders": 4})
    assert repo.latest_round() is None
    with pytest.raises(RepositoryError, match="no model yet"):
        repo.load()
    for r in range(3):
        repo.save(r, _sd(r), metrics={"return": float(r) * 2})
    assert repo.rounds() == [0, 1, 2]
    loaded = repo.load()
    for k, v in _sd(2).items():
        assert torch.equal(loaded[k], v)
    assert torch.equal(repo.load(0)["w"], _sd(0)["w"])
    m = json.loads((tmp_path / "manifest.json").read_text())
    e = m["rounds"][1]
    assert e["sha256"] == hashlib.sha256((tmp_path / e["file"]).read_bytes()).hexdigest()
    assert e["metrics"] == {"return": 2.0} and len(m["config_hash"]) == 64
    assert repo.metrics()[2] == {"round": 2, "return": 4.0}
    with pytest.raises(RepositoryError, match=r"round 7 is not in .*stored rounds: \[0, 1, 2\]"):
        repo.load(7)
    # reopening with the same config works, with another config is refused
    assert ModelRepository(tmp_path, config={"holders": 4, "lr": 1e-3}).latest_round() == 2
    with pytest.raises(RepositoryError, match="config hash"):
        ModelRepository(tmp_path, config={"lr": 1e-2, "holders": 4})


def test_tampered_file_is_refused(tmp_path) -> None:
    repo = ModelRepository(tmp_path)
    path = repo.save(0, _sd(0))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(data))
    with pytest.raises(
        IntegrityError, match=r"round_000000\.pt of round 0 fails verification.*SHA-256"
    ):
        repo.load(0)


def test_truncated_file_is_refused(tmp_path) -> None:
    repo = ModelRepository(tmp_path)
    repo.save(0, _sd(0))
    path = repo.save(1, _sd(1))
    full = path.stat().st_size
    path.write_bytes(path.read_bytes()[: full // 3])
    with pytest.raises(
        IntegrityError, match=rf"round_000001\.pt.*expected {full} bytes, found {full // 3}"
    ):
        repo.load()
    assert torch.equal(repo.load(0)["w"], _sd(0)["w"])  # the other rounds are unaffected


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_arbitrary_pickle_is_never_executed(tmp_path) -> None:
    """Even with a matching hash (an attacker who also rewrote the manifest),
    weights_only loading refuses non-tensor objects."""
    repo = ModelRepository(tmp_path)
    path = repo.save(0, _sd(0))
    payload = pickle.dumps({"w": _Evil()}, protocol=2)
    path.write_bytes(payload)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["rounds"][0]["sha256"] = hashlib.sha256(payload).hexdigest()
    m["rounds"][0]["bytes"] = len(payload)
    del m["hmac"]
    key = load_or_create_key(default_key_file(tmp_path))  # the attacker even has the key
    write_signed_json(tmp_path / "manifest.json", m, key)
    with pytest.raises(pickle.UnpicklingError):
        repo.load(0)


_WRITER = textwrap.dedent(
    """
    import os, sys, time, torch
    from smpc_gym.federated.repository import ModelRepository
    import smpc_gym.federated.repository as R

    root, phase = sys.argv[1], sys.argv[2]
    repo = ModelRepository(root)
    repo.save(0, {"w": torch.full((1000,), 1.0)})
    orig_replace = os.replace
    calls = []

    def slow_replace(src, dst):
        calls.append(dst)
        # phase "model": stop before the new model file is in place;
        # phase "manifest": the new model is in place, stop before the manifest is.
        if (phase == "model" and len(calls) == 1) or (phase == "manifest" and len(calls) == 2):
            print("PAUSED", flush=True)
            time.sleep(60)
        return orig_replace(src, dst)

    R.storage.files.os.replace = slow_replace
    if phase == "bytes":
        print("PAUSED", flush=True)   # killed while streaming a big file
        for r in range(1, 1000):
            repo.save(r, {"w": torch.full((4_000_000,), float(r))})
    else:
        repo.save(1, {"w": torch.full((1000,), 2.0)})
    """
)


@pytest.mark.parametrize("phase", ["model", "manifest", "bytes"])
@pytest.mark.timeout(120)
def test_writer_killed_mid_write_leaves_previous_version_loadable(tmp_path, phase) -> None:
    p = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path), phase],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "PAUSED", p.stderr.read()
    if phase == "bytes":
        time.sleep(1.0)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    repo = ModelRepository(tmp_path)
    latest = repo.latest_round()
    assert latest is not None
    sd = repo.load()  # verified: whatever the manifest names is complete
    assert torch.all(sd["w"] == (1.0 if latest == 0 else float(latest)))
    if phase != "bytes":
        assert latest == 0 and torch.all(sd["w"] == 1.0)
    assert not list(tmp_path.glob(".*.tmp"))  # stale temp files are cleaned on reopen
