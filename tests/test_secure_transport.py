"""Channels: the world simulator's authenticated typed frames, loopback binding, resume agreement.

* the world channel accepts nothing from a client with the old constant key, with no key,
  with a pickle payload (never executed), or with a malformed or replayed frame — and a
  rejected client changes nothing for the real players;
* a simulator that dies surfaces on the player as an error naming the simulator and its
  address (not a bare ``EOFError``);
* during a local secure MADDPG run every listening socket of the run's processes is on
  127.0.0.1 (read from ``/proc``);
* parties resumed at different steps (or with different configs) stop before the first
  secure operation with a message naming both sides' values.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import multiprocessing.connection
import os
import pickle
import socket
import stat
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from smpc_gym.envs.supply_chain import remote
from smpc_gym.envs.supply_chain.remote import (
    PlayerView,
    WorldSimulatorGone,
    new_key,
    read_key_file,
    start_world,
    write_key_file,
)

OLD_KEY = b"smpc-gym-world"


# ------------------------------------------------------------------------------ helpers
def _frame(key: bytes, nonce: bytes, kind: int, player: int, seq: int, f=(), i=()) -> bytes:
    """A world-channel frame as a client would send it, MAC'd under ``key``."""
    fb = np.asarray(f, ">f8").tobytes()
    ib = np.asarray(i, ">i8").tobytes()
    header = remote.HEADER.pack(remote.MAGIC, remote.VERSION, kind, player, seq, len(f), len(i))
    mac = hmac.new(key, nonce + b"W" + header + fb + ib, hashlib.sha256).digest()
    return header + fb + ib + mac


def _raw_client(address) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(address, timeout=10)
    nonce = b""
    while len(nonce) < remote.NONCE_BYTES:
        nonce += s.recv(remote.NONCE_BYTES - len(nonce))
    return s, nonce


def _closed_without_answer(s: socket.socket) -> bool:
    """The server closed the connection and sent nothing (a rejected client)."""
    s.settimeout(10)
    try:
        data = s.recv(1024)
    except ConnectionResetError:
        data = b""
    s.close()
    return data == b""


def _play_one_step(address, key) -> list[tuple]:
    """Both real players connect, reset and step once (in threads); returns their steps."""
    out: dict[int, tuple] = {}
    views = [PlayerView(address, i, key, timeout_s=20) for i in range(2)]

    def go(i: int) -> None:
        views[i].reset(0)
        out[i] = views[i].step(np.array([5.0, 5.0]))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    for v in views:
        v.close()
    return [out[0], out[1]]


@pytest.fixture
def world():
    key = new_key()
    proc, address = start_world({}, 3, key)
    yield proc, address, key
    proc.join(1)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)


class _Marker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


# ------------------------------------------------------------------------ world channel
def test_old_key_no_key_and_pickle_get_nothing_accepted(world, tmp_path: Path) -> None:
    _, address, key = world
    marker = tmp_path / "pwned"
    # the old attack: multiprocessing.connection with the constant authkey
    with pytest.raises((multiprocessing.AuthenticationError, AssertionError, EOFError, OSError)):
        c = multiprocessing.connection.Client(address, authkey=OLD_KEY)
        c.send(_Marker(marker))
    # a hello MAC'd with the old constant key
    s, nonce = _raw_client(address)
    s.sendall(_frame(OLD_KEY, nonce, remote.HELLO, 0, 0))
    assert _closed_without_answer(s)
    # a hello without any MAC, and one with a zero MAC
    s, nonce = _raw_client(address)
    s.sendall(_frame(key, nonce, remote.HELLO, 0, 0)[: -remote.MAC_BYTES])
    s.shutdown(socket.SHUT_WR)  # the frame ends where its MAC should start
    assert _closed_without_answer(s)
    s, nonce = _raw_client(address)
    s.sendall(_frame(key, nonce, remote.HELLO, 1, 0)[: -remote.MAC_BYTES] + bytes(32))
    assert _closed_without_answer(s)
    # a raw pickle whose __reduce__ would create the marker file
    s, _ = _raw_client(address)
    s.sendall(pickle.dumps(_Marker(marker)))
    assert _closed_without_answer(s)
    time.sleep(0.5)
    assert not marker.exists(), "a pickle payload was executed by the world simulator"
    # none of that took a player's slot or changed the game: the real players play
    steps = _play_one_step(address, key)
    for obs, reward, term, trunc, info in steps:
        assert obs.shape == (5,) and np.isfinite(reward) and not term and not trunc
        assert set(info) == set(remote.INFO_KEYS) - {"ncr"}


def test_a_hello_from_another_connection_is_not_accepted(world) -> None:
    """A valid hello captured on one connection does not authenticate another (nonce)."""
    _, address, key = world
    s1, n1 = _raw_client(address)
    good = _frame(key, n1, remote.HELLO, 0, 0)
    s2, n2 = _raw_client(address)
    assert n1 != n2
    s2.sendall(good)
    assert _closed_without_answer(s2)
    s1.close()


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda b: b"XXXX" + b[4:], id="bad-magic"),
        pytest.param(lambda b: b[:4] + bytes([9]) + b[5:], id="bad-version"),
        pytest.param(lambda b: b[:5] + bytes([77]) + b[6:], id="unknown-type"),
        pytest.param(lambda b: b[:5] + bytes([remote.OBS]) + b[6:], id="wrong-direction"),
        pytest.param(lambda b: b[:16] + struct.pack(">HH", 3, 0) + b[20:], id="bad-lengths"),
        pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="flipped-mac-bit"),
        pytest.param(lambda b: b[:8] + struct.pack(">Q", 5) + b[16:], id="wrong-seq"),
    ],
)
def test_malformed_frames_are_rejected(world, mangle) -> None:
    _, address, key = world
    s, nonce = _raw_client(address)
    with contextlib.suppress(OSError):  # the server may have closed already
        s.sendall(mangle(_frame(key, nonce, remote.HELLO, 0, 0)))
        s.shutdown(socket.SHUT_WR)
    assert _closed_without_answer(s)


def test_replayed_frame_stops_the_simulator_and_both_players_get_a_clear_error(world) -> None:
    proc, address, key = world
    raw, nonce = _raw_client(address)
    raw.sendall(_frame(key, nonce, remote.HELLO, 0, 0))
    view = PlayerView(address, 1, key, timeout_s=20)
    reset0 = _frame(key, nonce, remote.RESET, 0, 1, i=[0])
    raw.sendall(reset0)
    view.reset(0)  # player 1 gets its answer: both resets were accepted
    raw.settimeout(10)
    assert len(raw.recv(4096)) > 0  # player 0's answer
    raw.sendall(reset0)  # the same frame again
    with pytest.raises(WorldSimulatorGone, match=rf"world simulator at 127\.0\.0\.1:{address[1]}"):
        view.step(np.array([1.0, 1.0]))
    raw.close()
    proc.join(10)
    assert proc.exitcode not in (None, 0)  # it stopped on the rejected frame


def test_killed_simulator_is_named_not_a_bare_eof(world) -> None:
    proc, address, key = world
    views = [PlayerView(address, i, key, timeout_s=20) for i in range(2)]
    proc.kill()
    proc.join(5)
    for v in views:
        with pytest.raises(WorldSimulatorGone) as exc:
            v.reset(0)
        msg = str(exc.value)
        assert f"player {v.player}" in msg and f"127.0.0.1:{address[1]}" in msg
        assert "world simulator" in msg


def test_player_view_rejects_a_fake_simulator_without_the_key() -> None:
    """A server that does not know the key cannot feed a player data."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    address = srv.getsockname()
    fake_key = new_key()

    def serve() -> None:
        c, _ = srv.accept()
        nonce = os.urandom(remote.NONCE_BYTES)
        c.sendall(nonce)
        time.sleep(0.3)  # hello and reset arrive
        header = remote.HEADER.pack(remote.MAGIC, remote.VERSION, remote.OBS, 0, 0, 5, 0)
        body = np.zeros(5, ">f8").tobytes()
        mac = hmac.new(fake_key, nonce + b"P" + header + body, hashlib.sha256).digest()
        c.sendall(header + body + mac)
        time.sleep(1)
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    view = PlayerView(address, 0, new_key(), timeout_s=10)
    with pytest.raises(remote.WorldChannelError, match="authentication"):
        view.reset(0)
    t.join(5)
    srv.close()


def test_key_file_is_owner_only(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "world.key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(read_key_file(path)) == remote.KEY_BYTES
    with pytest.raises(FileExistsError):
        write_key_file(path)
    path.chmod(0o644)
    with pytest.raises(ValueError, match=r"world\.key has mode 644"):
        read_key_file(path)


# ---------------------------------------------------------------------------- listening
def _children(pid: int) -> set[int]:
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        nxt = set()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat_line = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat_line.rsplit(")", 1)[1].split()[1])
            if ppid in frontier and int(d) not in out:
                nxt.add(int(d))
        out |= nxt
        frontier = nxt
    return out


def _listening(pids: set[int]) -> set[tuple[int, str, int]]:
    """``(pid, address, port)`` of every listening TCP socket the processes hold."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    out = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        with open(table) as f:
            rows = f.read().splitlines()[1:]
        for row in rows:
            cols = row.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A = LISTEN
                continue
            hexaddr, hexport = cols[1].split(":")
            raw = bytes.fromhex(hexaddr)
            if v6:
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                addr = socket.inet_ntop(socket.AF_INET6, words)
            else:
                addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
            out.add((inodes[cols[9]], addr, int(hexport, 16)))
    return out


def test_every_listening_socket_of_a_local_secure_run_is_on_loopback(tmp_path: Path) -> None:
    from smpc_gym.agents import secure_maddpg as sm
    from smpc_gym.agents.base import NullHooks

    cfg = sm.Config(
        hidden=8, batch_size=8, learning_starts=8, log_every=1000, share_dir=str(tmp_path)
    )
    algo = sm.SecureMADDPG(cfg, {}, 2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            algo.train(10, NullHooks())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    seen: set[tuple[int, str, int]] = set()
    pids_seen: set[int] = set()
    while t.is_alive():
        kids = _children(os.getpid())
        pids_seen |= kids
        seen |= _listening(kids)
        time.sleep(0.5)
    t.join()
    assert not errors, errors
    assert algo.env_steps == 10 and algo.updates == 3
    listeners = {p for p, _, _ in seen}
    # the world simulator, both parties (rendezvous store, gloo) and the dealer listen
    assert len(listeners) >= 3, seen
    off = sorted(s for s in seen if s[1] != "127.0.0.1")
    assert not off, f"sockets listening off loopback: {off}"


# ----------------------------------------------------------------------------- resume
def _resume_party(ctx, job, steps, lrs):
    import dataclasses

    from smpc_gym.agents import secure_maddpg as sm

    job = dataclasses.replace(
        job,
        resume_step=steps[ctx.rank],
        cfg=dataclasses.replace(job.cfg, critic_lr=lrs[ctx.rank]),
    )
    return sm.party_main(ctx, job)


def _mismatch(tmp_path: Path, steps, lrs) -> str:
    from smpc_gym.agents import secure_maddpg as sm
    from smpc_gym.secure.runtime import PartyConfig, PartyError, launch_local

    job = sm.PartyJob(
        cfg=sm.Config(hidden=8),
        env_kwargs={},
        seed=1,
        total_steps=200,
        world_address=("127.0.0.1", 9),  # never reached: the check comes first
        world_key=new_key(),
        share_dir=str(tmp_path),
        resume_step=None,
        checkpoint_every=0,
    )
    cfg = PartyConfig(world_size=2, timeout_s=30)
    with pytest.raises(PartyError) as exc:
        launch_local(_resume_party, 2, (job, steps, lrs), config=cfg, deadline_s=120)
    return str(exc.value)


def test_parties_resumed_at_different_steps_stop_naming_both(tmp_path: Path) -> None:
    msg = _mismatch(tmp_path, (110, 80), (1e-3, 2e-3))
    assert "resume_step (party 0: 110, party 1: 80)" in msg, msg
    assert "config_hash (party 0: '" in msg, msg
    assert "FixedPointOverflow" not in msg and "code_version" not in msg


def test_run_facts_cover_config_seed_and_code_but_not_local_paths() -> None:
    from smpc_gym.agents import secure_maddpg as sm

    def facts(**kw):
        base = dict(
            cfg=sm.Config(hidden=8),
            env_kwargs={},
            seed=1,
            total_steps=200,
            world_address=("127.0.0.1", 9),
            world_key=b"k" * 32,
            share_dir="/a",
            resume_step=None,
            checkpoint_every=0,
        )
        return sm.run_facts(sm.PartyJob(**{**base, **kw}))

    ref = facts()
    assert ref["resume_step"] == -1 and ref["code_version"].startswith("0.")
    assert facts(share_dir="/b", cfg=sm.Config(hidden=8, share_dir="/x")) == ref
    assert facts(cfg=sm.Config(hidden=16))["config_hash"] != ref["config_hash"]
    assert facts(seed=2)["config_hash"] != ref["config_hash"]
    assert facts(env_kwargs={"demand_intercept": 3.0})["config_hash"] != ref["config_hash"]
    assert facts(resume_step=80)["resume_step"] == 80


# -------------------------------------------------------------------------------- CLI
def test_cli_dealer_and_world_flags_are_checked(capsys) -> None:
    from smpc_gym.training.cli import main

    argv = ["--algo", "secure_maddpg", "--env", "supply_chain", "--world", "no-port"]
    assert main(argv) == 2
    assert "--world: address must look like HOST:PORT" in capsys.readouterr().err
    assert main(["--dealer", "127.0.0.1:29500", "--algo", "secure_maddpg"]) == 2
    assert "--dealer runs only the dealer" in capsys.readouterr().err
    assert main(["--dealer", "127.0.0.1:99999"]) == 2
    assert "--dealer" in capsys.readouterr().err
