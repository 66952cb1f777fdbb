"""The parties' direct channel (``smpc_gym.secure.channel``).

* in a two-party launch the runtime sets it up (a Unix-domain socket on one machine, its
  name removed once connected) and every exchange goes through it: each
  party receives exactly the other's words, for sizes from one word to far more than the
  socket buffers hold (both directions must flow at once), counted as one round each;
* party 0 takes only the connection that presents the token (a stranger that connects
  first is dropped) and then stops listening;
* a peer that goes silent raises ``TimeoutError``, one that closes raises
  ``ConnectionError``, each naming the party;
* if the channel cannot be set up the parties agree to stay on gloo, with a warning, and
  the exchanges still work.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import torch

from smpc_gym.secure import channel
from smpc_gym.secure.runtime import PartyConfig, launch_local

SIZES = (1, 3, 4096, 600_000)  # 600,000 words = 4.8 MB: more than a socket buffer


def _exchanges(ctx) -> dict:
    from smpc_gym.secure.trunc import _exchange

    ch = channel.current()
    out = {"channel": ch is not None, "ok": True}
    if ch is not None:  # a local launch: a Unix-domain socket, its name already removed
        out["family"], out["name_left"] = ch.sock.family.name, None
        if ch.sock.family == socket.AF_UNIX:
            name = ch.sock.getsockname() if ctx.rank == 0 else ch.sock.getpeername()
            out["name_left"] = os.path.exists(os.path.dirname(name) or name)
    for n in SIZES:
        mine = torch.arange(n, dtype=torch.int64) * (7 if ctx.rank == 0 else 11) - ctx.rank
        ctx.reset_comm_stats()
        theirs = _exchange(mine, ctx.rank)
        stats = ctx.comm_stats()
        want = torch.arange(n, dtype=torch.int64) * (11 if ctx.rank == 0 else 7) - (1 - ctx.rank)
        out["ok"] &= bool(torch.equal(theirs, want))
        out[f"stats_{n}"] = [stats["rounds"], stats["bytes"]]
    return out


def test_two_parties_exchange_through_the_channel_in_both_directions_at_once() -> None:
    res = launch_local(
        _exchanges,
        2,
        config=PartyConfig(world_size=2, timeout_s=60, provider="tfp_player0_sees_all"),
    )
    for rank, r in enumerate(res):
        assert r["channel"], f"party {rank} exchanged through gloo"
        assert r["family"] == "AF_UNIX", r  # loopback rendezvous: both on this machine
        assert not r["name_left"], "the socket's directory outlived the set-up"
        assert r["ok"], f"party {rank} received the wrong words"
        for n in SIZES:  # one round, sent + received words at 8 bytes each
            assert r[f"stats_{n}"] == [1, 16 * n], (rank, n)


def test_loopback_hosts_are_recognised() -> None:
    for host in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"):
        assert channel.is_loopback(host), host
    for host in ("10.78.0.1", "192.0.2.1", "example.org", "0.0.0.0", "::"):
        assert not channel.is_loopback(host), host


def _pair(timeout_s: float = 1.0) -> tuple[channel.PeerChannel, socket.socket]:
    a, b = socket.socketpair()
    return channel.PeerChannel(a, timeout_s, peer=1), b


def test_a_silent_peer_times_out_and_a_closed_one_fails() -> None:
    ch, other = _pair(timeout_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="party 1 sent nothing for 0 s.*timed out"):
        ch.exchange(torch.zeros(4, dtype=torch.int64))
    assert time.monotonic() - t0 < 5
    other.close()
    with pytest.raises(ConnectionError, match="party 1 closed the connection"):
        ch.exchange(torch.zeros(4, dtype=torch.int64))
    ch.close()


def test_party_0_takes_only_the_connection_that_presents_the_token() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    token = bytes(range(channel.TOKEN_BYTES))
    peer: dict[str, socket.socket] = {}

    def clients() -> None:
        stranger = socket.create_connection(("127.0.0.1", port))
        stranger.sendall(b"x" * channel.TOKEN_BYTES)  # a wrong token, first in line
        time.sleep(0.2)
        real = socket.create_connection(("127.0.0.1", port))
        real.sendall(token)
        peer["real"], peer["stranger"] = real, stranger

    t = threading.Thread(target=clients)
    t.start()
    ch, reason = channel._accept(listener, token, wait=10.0, timeout_s=5.0)
    t.join()
    listener.close()
    assert ch is not None and reason == ""
    peer["real"].sendall(torch.tensor([42], dtype=torch.int64).numpy().tobytes())
    got = ch.exchange(torch.tensor([7], dtype=torch.int64))
    assert int(got) == 42 and peer["real"].recv(8) == torch.tensor([7]).numpy().tobytes()
    assert peer["stranger"].recv(1) == b""  # dropped
    ch.close()
    for s in peer.values():
        s.close()
    # nobody presenting the token: no channel, and the reason says so
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    ch, reason = channel._accept(listener, token, wait=0.3, timeout_s=5.0)
    listener.close()
    assert ch is None and "no connection presenting the token" in reason


def _unreachable(ctx) -> dict:
    from smpc_gym.secure.trunc import _exchange

    # 192.0.2.1 (TEST-NET-1) is no address of this machine: party 0 cannot listen on it
    with pytest.warns(RuntimeWarning, match="party 0 (cannot|could not) listen on 192.0.2.1"):
        got = channel.connect(ctx.rank, "192.0.2.1", 10.0, ctx.comm.main_group)
    theirs = _exchange(torch.tensor([ctx.rank + 5]), ctx.rank)
    return {"none": got is None and channel.current() is None, "theirs": int(theirs)}


def test_parties_that_cannot_connect_stay_on_gloo_together() -> None:
    res = launch_local(
        _unreachable,
        2,
        config=PartyConfig(world_size=2, timeout_s=60, provider="tfp_player0_sees_all"),
    )
    assert [r["none"] for r in res] == [True, True]
    assert [r["theirs"] for r in res] == [6, 5]
