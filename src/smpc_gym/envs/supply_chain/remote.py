"""The remote world simulator: the SupplyChain game served to two players over TCP.

In a secure run (secure MADDPG) neither player may hold the game: it holds both players'
stock, costs and demand in the clear. The simulator is a process of its own that steps
the game with both players' actions and answers each player with *its own* part only
(observation, reward, termination flags and its own ``info`` figures). Each player
reaches it through a :class:`PlayerView`.

Where it should live: the simulator sees both players' game state, so it must run where
neither player can look inside it — on a third host (the dealer's host is a natural
choice; it holds no data either), never on a player's machine in a multi-machine run. In
a local run everything is on one machine anyway and it listens on 127.0.0.1.

The channel (no pickle, typed and authenticated)
------------------------------------------------
On connecting, the simulator sends a fresh 16-byte random *connection nonce*. After that
every message in either direction is one frame::

    header  ">4sBBBxQHH" (20 bytes): magic b"SCW1", version 1, message type, player,
            pad, sequence number (uint64), number of float64 values, number of int64 values
    payload the float64 values then the int64 values, big-endian
    mac     HMAC-SHA256(key, nonce || direction || header || payload) (32 bytes)

Each message type has a fixed payload shape (:data:`SHAPES`); a frame is rejected unless
the magic, version, type (allowed for its direction), player, lengths, MAC (checked with
``hmac.compare_digest`` before the payload is interpreted), sequence number (exactly the
next one of this connection, so replays and reorderings fail) and values (finite floats)
are all as expected. The key is 32 random bytes per run (``secrets.token_bytes``): the
local launcher passes it to its child processes and never logs it; a multi-machine run
reads it from a key file readable by its owner only (:func:`write_key_file`,
:func:`read_key_file`). What the channel does not do: it does not encrypt (someone on
the path sees actions and observations; run it through the same tunnel as the rest,
docs/security/transport.md) and it does not hide message timing or sizes.

Multi-machine use::

    python -m smpc_gym.envs.supply_chain.remote keygen world.key      # once; copy it to
    #   both players' hosts over a secure channel (e.g. scp), mode 0600
    python -m smpc_gym.envs.supply_chain.remote serve HOST:PORT --key-file world.key --seed 0

and each player runs with ``--world HOST:PORT`` and ``world_key_file: world.key``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import multiprocessing
import os
import secrets
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "INFO_KEYS",
    "SHAPES",
    "WorldChannelError",
    "WorldSimulatorGone",
    "PlayerView",
    "episode_seed",
    "new_key",
    "parse_address",
    "read_key_file",
    "serve_world",
    "start_world",
    "write_key_file",
]

N_PLAYERS = 2
AGENTS = ("player_0", "player_1")
N_FEATURES = 5
ACTION_DIM = 2
KEY_BYTES = 32
NONCE_BYTES = 16
MAC_BYTES = 32
MAGIC = b"SCW1"
VERSION = 1
HEADER = struct.Struct(">4sBBBxQHH")

#: the per-player ``info`` figures a step returns, in wire order (``ncr`` is NaN on the
#: wire except at the end of an episode, and then dropped from the dict)
INFO_KEYS = (
    "revenue",
    "cost",
    "units_sold",
    "units_received",
    "units_wasted",
    "leftover",
    "waste_cost",
    "unmet_demand",
    "clipped",
    "clipped_total",
    "cum_reward",
    "cum_waste",
    "cum_waste_cost",
    "ncr",
)

# message types
HELLO, RESET, STEP, CLOSE, OBS, TRANSITION = 1, 2, 3, 4, 5, 6
_NAMES = {HELLO: "hello", RESET: "reset", STEP: "step", CLOSE: "close", OBS: "obs"}
_NAMES[TRANSITION] = "transition"
#: message type -> (number of float64 values, number of int64 values)
SHAPES: dict[int, tuple[int, int]] = {
    HELLO: (0, 0),
    RESET: (0, 1),  # episode number
    STEP: (ACTION_DIM, 0),  # this player's action
    CLOSE: (0, 0),
    OBS: (N_FEATURES, 0),  # reset answer: this player's observation
    TRANSITION: (N_FEATURES + 1 + len(INFO_KEYS), 2),  # obs, reward, info | term, trunc
}
_TO_WORLD, _TO_PLAYER = b"W", b"P"
_ALLOWED = {_TO_WORLD: {HELLO, RESET, STEP, CLOSE}, _TO_PLAYER: {OBS, TRANSITION}}


class WorldChannelError(ValueError):
    """A frame on the world channel was rejected (bad key, malformed, replayed, ...)."""


class WorldSimulatorGone(ConnectionError):
    """The world simulator closed the connection or stopped answering."""


def new_key() -> bytes:
    """A fresh random channel key (32 bytes from the OS CSPRNG)."""
    return secrets.token_bytes(KEY_BYTES)


def write_key_file(path: str | Path) -> Path:
    """Write a new key (hex) to ``path`` with mode 0600; refuses to overwrite a file."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new_key().hex() + "\n")
    return p


def read_key_file(path: str | Path) -> bytes:
    """Read a channel key written by :func:`write_key_file`.

    Raises:
        ValueError: if the file is readable or writable by group or others (it must be
            0600 or 0400), or does not hold at least 16 bytes as hex; the message names the
            file (never its content).
    """
    p = Path(path)
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        raise ValueError(
            f"world key file {p} has mode {mode:o}: it must be readable by its owner only "
            f"(chmod 600 {p})"
        )
    text = p.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"world key file {p} does not hold a hex key") from None
    if len(key) < 16:
        raise ValueError(f"world key file {p} holds {len(key)} bytes; at least 16 are needed")
    return key


def parse_address(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``[v6]:PORT`` allowed) as ``(host, port)``; errors name the value."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address must look like HOST:PORT (port 1-65535), got {text!r}")
    return host, int(port)


# ------------------------------------------------------------------------------- framing
class _Channel:
    """One authenticated, sequenced connection (either end)."""

    def __init__(self, sock: socket.socket, key: bytes, nonce: bytes, send_dir: bytes) -> None:
        if len(key) < 16:
            raise ValueError(f"the channel key must have at least 16 bytes, got {len(key)}")
        self.sock, self.key, self.nonce = sock, bytes(key), bytes(nonce)
        self.send_dir = send_dir
        self.recv_dir = _TO_PLAYER if send_dir == _TO_WORLD else _TO_WORLD
        self.send_seq = 0
        self.recv_seq = 0

    def _mac(self, direction: bytes, header: bytes, payload: bytes) -> bytes:
        return hmac.new(
            self.key, self.nonce + direction + header + payload, hashlib.sha256
        ).digest()

    def send(
        self,
        kind: int,
        player: int,
        f64: Sequence[float] | np.ndarray = (),
        i64: Sequence[int] = (),
    ) -> None:
        nf, ni = SHAPES[kind]
        f = np.asarray(f64, dtype=">f8").reshape(-1)
        i = np.asarray(i64, dtype=">i8").reshape(-1)
        if f.size != nf or i.size != ni:
            raise ValueError(
                f"{_NAMES[kind]} carries {nf} floats and {ni} ints, got {f.size}, {i.size}"
            )
        header = HEADER.pack(MAGIC, VERSION, kind, player, self.send_seq, nf, ni)
        payload = f.tobytes() + i.tobytes()
        self.sock.sendall(header + payload + self._mac(self.send_dir, header, payload))
        self.send_seq += 1

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("connection closed")
            buf += chunk
        return bytes(buf)

    def recv(self, player: int | None) -> tuple[int, int, np.ndarray, np.ndarray]:
        """Read, verify and decode one frame: ``(type, player, float64s, int64s)``."""
        header = self._read(HEADER.size)
        magic, version, kind, who, seq, nf, ni = HEADER.unpack(header)
        if magic != MAGIC or version != VERSION:
            raise WorldChannelError(f"not a world-channel frame (magic {magic!r}, v{version})")
        if kind not in _ALLOWED[self.recv_dir]:
            raise WorldChannelError(f"message type {kind} is not allowed in this direction")
        if (nf, ni) != SHAPES[kind]:
            raise WorldChannelError(
                f"{_NAMES[kind]} must carry {SHAPES[kind]} (floats, ints), got {(nf, ni)}"
            )
        payload = self._read(8 * (nf + ni))
        mac = self._read(MAC_BYTES)
        if not hmac.compare_digest(mac, self._mac(self.recv_dir, header, payload)):
            raise WorldChannelError(f"{_NAMES[kind]} frame failed authentication (wrong key?)")
        if seq != self.recv_seq:
            raise WorldChannelError(
                f"{_NAMES[kind]} frame has sequence number {seq}, expected {self.recv_seq} "
                "(replayed or reordered)"
            )
        if player is not None and who != player:
            raise WorldChannelError(f"frame from player {who} on player {player}'s connection")
        f = np.frombuffer(payload[: 8 * nf], dtype=">f8").astype(np.float64)
        i = np.frombuffer(payload[8 * nf :], dtype=">i8").astype(np.int64)
        self.recv_seq += 1
        return kind, who, f, i


# ----------------------------------------------------------------------------- simulator
def episode_seed(seed: int, episode: int) -> int:
    """The game seed of episode ``episode`` of a run seeded ``seed`` (both players agree)."""
    return int(np.random.SeedSequence([int(seed), 7, int(episode)]).generate_state(1)[0])


def _hello(
    sock: socket.socket,
    peer: Any,
    key: bytes,
    chans: dict[int, _Channel],
    lock: threading.Lock,
    both: threading.Event,
    hello_timeout: float,
) -> None:
    """Authenticate one new connection; register it as its player or close it."""
    try:
        sock.settimeout(hello_timeout)
        nonce = secrets.token_bytes(NONCE_BYTES)
        sock.sendall(nonce)
        ch = _Channel(sock, key, nonce, _TO_PLAYER)
        kind, player, _, _ = ch.recv(None)
        with lock:
            if kind != HELLO or player not in range(N_PLAYERS) or player in chans:
                raise WorldChannelError(
                    f"expected a hello from a new player, got type {kind}, player {player}"
                )
            sock.settimeout(None)
            chans[player] = ch
            if len(chans) == N_PLAYERS:
                both.set()
    except (WorldChannelError, EOFError, OSError) as exc:
        print(f"world simulator: rejected a connection from {peer}: {exc}", file=sys.stderr)
        with contextlib.suppress(OSError):
            sock.close()


def _accept_players(
    listener: socket.socket, key: bytes, hello_timeout: float
) -> dict[int, _Channel]:
    """Accept connections (each authenticated in its own thread) until both players are in.

    A connection that sends nothing, garbage or a frame under another key is closed after
    at most ``hello_timeout`` seconds and never delays the others.
    """
    chans: dict[int, _Channel] = {}
    lock, both = threading.Lock(), threading.Event()
    listener.settimeout(0.2)
    while not both.is_set():
        try:
            sock, peer = listener.accept()
        except TimeoutError:
            continue
        threading.Thread(
            target=_hello,
            args=(sock, peer, key, chans, lock, both, hello_timeout),
            daemon=True,
        ).start()
    return chans


def serve_world(
    env_kwargs: Mapping[str, Any],
    seed: int,
    address: tuple[str, int],
    key: bytes,
    *,
    ready: Any = None,
    hello_timeout: float = 10.0,
) -> None:
    """Serve one game to two players at ``address`` until both close (or one drops).

    Accepts connections until each player has sent a valid hello (connections that fail
    authentication or send anything else are closed and logged to stderr; they change
    nothing). Then loops: both players send ``reset(episode)`` or ``step(action)``; the
    game is reset (seeded from ``seed`` and the episode number) or stepped with both
    actions; each player gets only its own part. A rejected frame during play stops the
    simulator (closing both connections, so both players get a clear error).

    Args:
        env_kwargs: the game's parameters (``supply_chain_v0.parallel_env`` keywords).
        seed: the run's seed.
        address: ``(host, port)`` to listen on; port 0 picks a free one.
        key: the run's channel key (at least 16 bytes).
        ready: optional connection/queue with ``send``/``put``: gets the bound port.
        hello_timeout: seconds a new connection has to authenticate.
    """
    from smpc_gym import supply_chain_v0

    env = supply_chain_v0.parallel_env(**dict(env_kwargs))
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    listener.listen(8)
    if ready is not None:
        port = listener.getsockname()[1]
        (ready.put if hasattr(ready, "put") else ready.send)(int(port))
    chans: dict[int, _Channel] = {}
    try:
        chans = _accept_players(listener, key, hello_timeout)
        listener.close()
        while True:
            msgs = {i: chans[i].recv(i) for i in range(N_PLAYERS)}
            kinds = {m[0] for m in msgs.values()}
            if kinds == {CLOSE}:
                break
            if len(kinds) != 1:
                names = {i: _NAMES[m[0]] for i, m in msgs.items()}
                raise WorldChannelError(f"players out of step: {names}")
            kind = kinds.pop()
            if kind == RESET:
                episodes = {int(m[3][0]) for m in msgs.values()}
                if len(episodes) != 1:
                    raise WorldChannelError(f"players reset different episodes: {episodes}")
                obs, _ = env.reset(seed=episode_seed(seed, episodes.pop()))
                for i, a in enumerate(AGENTS):
                    chans[i].send(OBS, i, obs[a])
            elif kind == STEP:
                acts = {}
                for i, a in enumerate(AGENTS):
                    act = msgs[i][2]
                    if not np.all(np.isfinite(act)):
                        raise WorldChannelError(f"player {i} sent a non-finite action {act}")
                    acts[a] = act.astype(np.float32)
                obs, rew, term, trunc, infos = env.step(acts)
                for i, a in enumerate(AGENTS):
                    info = [float(infos[a].get(k, np.nan)) for k in INFO_KEYS]
                    f = [*np.asarray(obs[a], np.float64), float(rew[a]), *info]
                    chans[i].send(TRANSITION, i, f, [int(bool(term[a])), int(bool(trunc[a]))])
            else:
                raise WorldChannelError(f"unexpected {_NAMES[kind]} during play")
    except (EOFError, ConnectionError):
        pass  # a player left: nothing more to serve
    finally:
        with contextlib.suppress(OSError):
            listener.close()
        for ch in chans.values():
            with contextlib.suppress(OSError):
                ch.sock.close()
        env.close()


def start_world(
    env_kwargs: Mapping[str, Any],
    seed: int,
    key: bytes,
    address: tuple[str, int] | None = None,
    timeout_s: float = 60.0,
) -> tuple[Any, tuple[str, int]]:
    """Start :func:`serve_world` in a new process; returns ``(process, address)``.

    ``address`` defaults to 127.0.0.1 with a free port (chosen by the simulator itself, so
    no other process can take it in between). Returns once the simulator listens.
    """
    host, port = address or ("127.0.0.1", 0)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=serve_world,
        args=(dict(env_kwargs), int(seed), (host, int(port)), bytes(key)),
        kwargs={"ready": child},
        daemon=True,
        name="smpc-world",
    )
    proc.start()
    child.close()
    if not parent.poll(timeout_s):
        proc.terminate()
        raise TimeoutError(f"the world simulator did not start listening on {host} in {timeout_s}s")
    try:
        bound = int(parent.recv())
    except EOFError:
        proc.join(5)
        raise WorldSimulatorGone(
            f"the world simulator could not listen on {host}:{port} (exit code {proc.exitcode})"
        ) from None
    finally:
        parent.close()
    return proc, (host, bound)


# -------------------------------------------------------------------------------- player
class PlayerView:
    """One player's window on the world: its own observation, reward and info only.

    Holds no environment object and no reference to the other player: it sends this
    player's action to the simulator and receives this player's part of the result.
    :attr:`received` keeps every decoded answer (tests check it carries nothing of the
    other player).

    Raises (from any call):
        WorldSimulatorGone: the simulator at ``address`` closed the connection (it died,
            was stopped, or rejected a frame); the message names the simulator's address.
        TimeoutError: no answer within ``timeout_s``.
        WorldChannelError: a frame from the simulator failed verification.
    """

    def __init__(
        self, address: tuple[str, int], player: int, key: bytes, timeout_s: float = 60.0
    ) -> None:
        if player not in range(N_PLAYERS):
            raise ValueError(f"player must be 0 or 1, got {player!r}")
        self.player = int(player)
        self.agent = AGENTS[self.player]
        self.address = (str(address[0]), int(address[1]))
        self.timeout_s = float(timeout_s)
        self.received: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                sock = socket.create_connection(self.address, timeout=timeout_s)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"player {player}: no world simulator at {self._where} after {timeout_s}s"
                    ) from None
                time.sleep(0.1)
        sock.settimeout(timeout_s)
        self._chan = _Channel(sock, key, b"", _TO_WORLD)
        try:
            self._chan.nonce = self._chan._read(NONCE_BYTES)
            self._chan.send(HELLO, self.player)
        except (EOFError, OSError) as exc:
            raise self._gone(exc) from None

    @property
    def _where(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def _gone(self, exc: BaseException) -> Exception:
        if isinstance(exc, socket.timeout):
            return TimeoutError(
                f"player {self.player}: the world simulator at {self._where} did not answer "
                f"within {self.timeout_s}s"
            )
        return WorldSimulatorGone(
            f"player {self.player}: the world simulator at {self._where} closed the "
            f"connection ({type(exc).__name__}: {exc}); it died, was stopped or rejected a "
            "message (see its log)"
        )

    def _call(
        self, kind: int, f64: Sequence[float] | np.ndarray, i64: Sequence[int], want: int
    ) -> Any:
        try:
            self._chan.send(kind, self.player, f64, i64)
            got, _, f, i = self._chan.recv(self.player)
        except (EOFError, OSError) as exc:
            raise self._gone(exc) from None
        if got != want:
            raise WorldChannelError(
                f"expected {_NAMES[want]} from the simulator, got {_NAMES[got]}"
            )
        return f, i

    def reset(self, episode: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Start episode number ``episode``; returns this player's ``(obs, info)``."""
        f, _ = self._call(RESET, (), (int(episode),), OBS)
        out: tuple[np.ndarray, dict[str, Any]] = (f.astype(np.float32), {})
        self.received.append(out)
        return out

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Send this player's action; returns its ``(obs, reward, terminated, truncated, info)``."""
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != (ACTION_DIM,) or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be {ACTION_DIM} finite numbers, got {action!r}")
        f, i = self._call(STEP, a, (), TRANSITION)
        obs = f[:N_FEATURES].astype(np.float32)
        info = {k: float(v) for k, v in zip(INFO_KEYS, f[N_FEATURES + 1 :], strict=True)}
        if np.isnan(info["ncr"]):
            del info["ncr"]
        out = (obs, float(f[N_FEATURES]), bool(i[0]), bool(i[1]), info)
        self.received.append(out)
        return out

    def close(self) -> None:
        """Tell the simulator this player is done (best effort) and close the connection."""
        with contextlib.suppress(OSError, ValueError):
            self._chan.send(CLOSE, self.player)
        with contextlib.suppress(OSError):
            self._chan.sock.close()


# ---------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> None:
    """``keygen PATH`` or ``serve HOST:PORT --key-file PATH --seed N [--env JSON]``."""
    ap = argparse.ArgumentParser(prog="python -m smpc_gym.envs.supply_chain.remote")
    sub = ap.add_subparsers(dest="cmd", required=True)
    kg = sub.add_parser("keygen", help="write a new 0600 key file")
    kg.add_argument("path")
    sv = sub.add_parser("serve", help="serve the game to the two players")
    sv.add_argument("address", help="HOST:PORT to listen on (a tunnel/VPN address)")
    sv.add_argument("--key-file", required=True)
    sv.add_argument("--seed", type=int, required=True, help="the run's seed")
    sv.add_argument("--env", default="{}", help="game parameters as a JSON object")
    args = ap.parse_args(argv)
    if args.cmd == "keygen":
        print(f"wrote {write_key_file(args.path)} (mode 0600)")
        return
    env_kwargs = json.loads(args.env)
    if not isinstance(env_kwargs, dict):
        raise SystemExit(f"--env must be a JSON object, got {args.env!r}")
    serve_world(env_kwargs, args.seed, parse_address(args.address), read_key_file(args.key_file))


if __name__ == "__main__":
    main()
