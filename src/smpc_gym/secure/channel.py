"""The two parties' direct channel: one socket connection for every exchange of the protocols.

Every round of this package's two-party protocols is an *exchange*: each party sends the
other a vector of int64 words of the same length and waits for the other's
(:func:`smpc_gym.secure.trunc._exchange`: openings, truncation bits, the sign test's
bits). Through ``torch.distributed`` (gloo) each exchange is an ``isend`` and an ``irecv``
handed to gloo's I/O thread, several times slower than a plain socket for the small
messages most rounds send, and costlier in CPU (``benchmarks/exchange.py`` times both in
one run; an update makes a few hundred exchanges). This
module keeps one TCP connection between party 0 and party 1 and exchanges on it from the
calling thread: the socket is non-blocking, and the party sends and receives in one loop
(``select`` when neither can go on), so both directions flow at once whatever the size.

**Set-up** (:func:`connect`, called by the runtime right after ``crypten.init()`` in a
two-party group). Party 0 listens on the rendezvous host (the address it already hosts
the rendezvous store on: 127.0.0.1 locally) on a port the system picks, and sends the
port and a fresh 32-byte token from ``os.urandom`` to party 1 over the group's gloo
connection. Party 1 connects and sends the token first; party 0 accepts only a
connection that presents it (any other is closed) and then closes its listening socket.
Both tell each other over gloo whether they got the channel; if either did not (e.g. a
firewall between the hosts), both keep exchanging through gloo and a warning says why.

**On one machine** (a loopback rendezvous host, as in a local launch: gloo's own peer
connections then run on this machine too) party 0 listens on a Unix-domain socket
instead, in a fresh directory only its user can enter (``tempfile.mkdtemp``, mode
0700), and sends its path in place of the port; the token is checked the same way, and
party 0 removes the socket file and the directory once party 1 is connected. The words
are the same; the kernel moves them with about a third of the system time loopback TCP
takes for the exchanges of an update (hundreds of kilobytes each: 0.3 ms of system time
per 2 MB exchange against 0.8–1.0 ms, measured with two processes on this machine).

**What it carries and reveals.** Exactly what gloo would carry: the same words, in the
same order, counted the same way in CrypTen's communicator (bytes and rounds). Like gloo
it authenticates the peer only by the token sent over the group's own (unauthenticated)
gloo connection, and it encrypts nothing: across machines it needs the same private
network or tunnel gloo does (``docs/security/transport.md``). Nothing is pickled: the
bytes on the wire are the int64 words themselves.

**Failures.** A peer that closes the connection raises ``ConnectionError``; a peer that
sends nothing for the group's timeout (``PartyConfig.timeout_s``) raises ``TimeoutError``
naming the wait, so a dead or hung party stops the other as gloo's own timeout does.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import select
import shutil
import socket
import tempfile
import time
import warnings
from typing import Any

import torch

__all__ = ["PATH_WORDS", "TOKEN_BYTES", "PeerChannel", "close", "connect", "current", "is_loopback"]

#: Bytes of the token party 1 presents when it connects.
TOKEN_BYTES = 32
#: Socket buffer size asked for each direction (the kernel may cap it).
BUFFER_BYTES = 4 << 20
#: The longest the set-up waits for the peer's connection.
CONNECT_TIMEOUT_S = 20.0
#: Words of the set-up offer that carry a Unix-domain socket's path (UTF-8, zero-padded;
#: a path must fit in ``sun_path``'s 108 bytes, less its terminating zero).
PATH_WORDS = 14

_state: dict[str, PeerChannel | None] = {"channel": None}


class PeerChannel:
    """A connected, non-blocking TCP socket to the other party.

    Args:
        sock: the connected socket (this object owns it).
        timeout_s: the longest :meth:`exchange` waits without progress.
        peer: the other party's rank (for error messages).
    """

    def __init__(self, sock: socket.socket, timeout_s: float, peer: int) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):  # send small exchanges at once
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            sock.setsockopt(socket.SOL_SOCKET, opt, BUFFER_BYTES)
        sock.setblocking(False)
        self.sock = sock
        self.timeout_s = float(timeout_s)
        self.peer = peer

    def exchange(self, words: torch.Tensor) -> torch.Tensor:
        """Send ``words`` (int64) and receive the peer's words of the same shape."""
        data = words.contiguous()
        out = torch.empty_like(data)
        send = data.numpy().data.cast("B")
        recv = out.numpy().data.cast("B")
        n, sent, got = len(send), 0, 0
        sock, waited_since = self.sock, time.monotonic()
        try:
            while sent < n or got < n:
                moved = False
                if sent < n:
                    try:
                        sent += sock.send(send[sent:])
                        moved = True
                    except BlockingIOError:
                        pass
                if got < n:
                    try:
                        k = sock.recv_into(recv[got:])
                    except BlockingIOError:
                        k = -1
                    if k == 0:
                        raise ConnectionResetError("end of stream")
                    if k > 0:
                        got += k
                        moved = True
                if moved:
                    waited_since = time.monotonic()
                    continue
                left = self.timeout_s - (time.monotonic() - waited_since)
                if left <= 0:
                    raise TimeoutError(
                        f"party {self.peer} sent nothing for {self.timeout_s:.0f} s during an "
                        f"exchange ({got} of {n} bytes received, {sent} of {n} sent): timed out"
                    )
                select.select([sock] if got < n else [], [sock] if sent < n else [], [], left)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ConnectionError(
                f"party {self.peer} closed the connection during an exchange ({got} of {n} "
                f"bytes received, {sent} of {n} sent): {exc}"
            ) from exc
        return out

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


def current() -> PeerChannel | None:
    """This process's channel to the other party, or None (then exchanges go through gloo)."""
    return _state["channel"]


def close() -> None:
    """Close and forget this process's channel (the runtime calls it at shutdown)."""
    ch, _state["channel"] = _state["channel"], None
    if ch is not None:
        ch.close()


def connect(rank: int, host: str, timeout_s: float, group: Any) -> PeerChannel | None:
    """Set up the channel between party 0 (listening on ``host``) and party 1.

    Both parties call this once, after ``crypten.init()``; ``group`` is the two parties'
    gloo group (CrypTen's ``main_group``), used to pass the port (or, for a loopback
    ``host``, the Unix-domain socket's path) and the token, and to agree.
    Returns the channel (also kept for :func:`current`) or None if either party could not
    connect, in which case a ``RuntimeWarning`` names the reason and exchanges stay on gloo.
    """
    import torch.distributed as dist

    close()
    ch: PeerChannel | None = None
    reason = ""
    wait = min(float(timeout_s), CONNECT_TIMEOUT_S)
    tok = slice(1, 1 + TOKEN_BYTES // 8)  # the offer: port, token, Unix socket path
    words = tok.stop + PATH_WORDS
    if rank == 0:
        token = os.urandom(TOKEN_BYTES)
        port, path, folder, listener = 0, b"", None, None
        try:
            if is_loopback(host):  # both parties on this machine: a Unix-domain socket
                folder = tempfile.mkdtemp(prefix="smpc-peer-")  # mode 0700
                path = os.path.join(folder, "peer.sock").encode()
                if len(path) >= 8 * PATH_WORDS:
                    raise OSError(f"socket path {path!r} is longer than {8 * PATH_WORDS - 1} bytes")
                listener = socket.socket(socket.AF_UNIX)
                listener.bind(path)
                port = -1
            else:
                listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
                listener.bind((host, 0))
                port = int(listener.getsockname()[1])
            listener.listen(4)
        except OSError as exc:
            port, reason = 0, f"party 0 cannot listen on {host}: {exc}"
            if listener is not None:
                listener.close()
        offer = torch.zeros(words, dtype=torch.int64)
        offer[0] = port
        offer[tok] = torch.frombuffer(bytearray(token), dtype=torch.int64)
        offer.numpy()[tok.stop :].view("u1")[: len(path)] = list(path)
        dist.send(offer, 1, group=group)
        if port and listener is not None:
            ch, reason = _accept(listener, token, wait, timeout_s)
            listener.close()
        if folder is not None:  # the connection outlives its name
            shutil.rmtree(folder, ignore_errors=True)
    else:
        offer = torch.empty(words, dtype=torch.int64)
        dist.recv(offer, 0, group=group)
        port, token = int(offer[0]), offer[tok].numpy().tobytes()
        path = offer[tok.stop :].numpy().tobytes().rstrip(b"\0")
        where = path.decode(errors="replace") if port == -1 else f"{host}:{port}"
        if port:
            sock = None
            try:
                if port == -1:
                    sock = socket.socket(socket.AF_UNIX)
                    sock.settimeout(wait)
                    sock.connect(path)
                else:
                    sock = socket.create_connection((host, port), timeout=wait)
                sock.sendall(token)
                ch = PeerChannel(sock, timeout_s, peer=0)
            except OSError as exc:
                if sock is not None:
                    sock.close()
                reason = f"party 1 cannot connect to {where}: {exc}"
        else:
            reason = f"party 0 could not listen on {host}"
    agreed = torch.tensor([1 if ch is not None else 0])
    dist.all_reduce(agreed, op=dist.ReduceOp.MIN, group=group)  # both got it, or neither uses it
    if int(agreed) == 0:
        if ch is not None:
            ch.close()
        warnings.warn(
            "the parties' direct channel could not be set up "
            f"({reason or 'the other party could not connect'}); exchanging through gloo",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    _state["channel"] = ch
    return ch


def is_loopback(host: str) -> bool:
    """True if ``host`` names this machine's loopback interface (``127.0.0.0/8``,
    ``::1`` or ``localhost``): then both parties run here (gloo's peer connections need
    it too) and the channel is a Unix-domain socket."""
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    return False


def _accept(
    listener: socket.socket, token: bytes, wait: float, timeout_s: float
) -> tuple[PeerChannel | None, str]:
    """Party 0: the first connection that presents ``token`` within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, f"no connection presenting the token within {wait:.0f} s"
        listener.settimeout(left)
        try:
            sock, _ = listener.accept()
        except TimeoutError:
            continue  # the deadline is checked above
        except OSError as exc:
            return None, f"party 0 accepted no connection: {exc}"
        sock.settimeout(max(deadline - time.monotonic(), 0.1))
        got = b""
        try:
            while len(got) < TOKEN_BYTES:
                part = sock.recv(TOKEN_BYTES - len(got))
                if not part:
                    break
                got += part
        except OSError:
            pass
        if len(got) == TOKEN_BYTES and hmac.compare_digest(got, token):
            sock.settimeout(None)
            return PeerChannel(sock, timeout_s, peer=1), ""
        sock.close()  # not our peer: keep waiting for it
