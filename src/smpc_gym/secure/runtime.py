"""The party runtime: real OS processes that talk over ``torch.distributed`` (gloo).

Every secure algorithm in the package runs as a *party function* ``fn(ctx, *args)``
executed once per party. :class:`PartyContext` hands it the initialised CrypTen module,
its rank and world size, a barrier and CrypTen's communication counters.

Two ways to run parties:

* :func:`launch_local` spawns all parties on this machine (``spawn`` start method; a free
  TCP port on 127.0.0.1 is the rendezvous), plus the dealer process (CrypTen's trusted
  third party, rank ``world_size``) under the default ``provider="TTP"``, and returns the
  per-rank results in rank order.
* :func:`run_party` makes *this* process party ``config.rank`` of a group that meets at
  ``config.rendezvous`` (``tcp://HOST:PORT``, hosted by rank 0): start it once per
  machine. Under ``provider="TTP"`` one more process runs :func:`run_ttp_dealer` (on a
  machine that holds no party's data). :meth:`PartyConfig.from_env` reads ``SMPC_RANK``
  / ``SMPC_WORLD_SIZE`` / ``SMPC_RENDEZVOUS`` / ``SMPC_TIMEOUT`` / ``SMPC_PROVIDER``.

Where things listen: rank 0 hosts the rendezvous store (``torch.distributed.TCPStore``)
on a socket bound to the rendezvous *host* only (torch's own store binds to every
interface, whatever host the address names); with a loopback rendezvous every gloo
socket is put on the loopback interface too (``GLOO_SOCKET_IFNAME``, unless the user set
it). In a two-party group rank 0 also listens on the rendezvous host for the parties'
direct channel (:mod:`smpc_gym.secure.channel`), until rank 1 has connected. Gloo
authenticates nothing and encrypts nothing, nor does that channel: across machines run
them inside a tunnel (docs/security/transport.md).

Failure model: every process group is created with ``timeout=config.timeout_s``, so a
party whose peer died or hangs gets an error from gloo instead of blocking forever (a
peer that is killed usually closes its sockets, which fails the others at once). The
local launcher also watches its children's process sentinels: as soon as one party
raises or dies, the others are terminated and :class:`PartyError` names the rank and the
cause (the root cause first; the peers' resulting communication errors after it). If the
launcher itself dies, its parties notice within a second and stop. Their results come
back as ``torch.save`` data read with ``weights_only=True``, never as arbitrary pickle.

Threat model (docs/security/trust-model.md): semi-honest parties that look at everything
they hold. The default provider ``"TTP"`` is a dealer process that holds no data: it
sends each party correlated randomness (its shares of Beaver triples, of random bits and
of wrap counts) and never receives a share of any data, so no computing party can unmask
an opened value. ``"tfp_player0_sees_all"`` is CrypTen's trusted *first* party: rank 0
generates every triple in the clear and therefore can read every opened operand (all
other parties' inputs, every weight and gradient) — an explicit opt-out, never a default.
The old spelling ``"TFP"`` is refused with a message naming the new one.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import hashlib
import io
import ipaddress
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from smpc_gym.secure._crypten import crypten_module

T = TypeVar("T")

#: The dealer (CrypTen's trusted third party, run by this runtime): holds no data.
DEFAULT_PROVIDER = "TTP"
#: CrypTen's trusted first party: rank 0 generates every Beaver triple and so can unmask
#: every opened value. Spelt out so that nobody selects it by accident.
TFP_PROVIDER = "tfp_player0_sees_all"
PROVIDERS = (DEFAULT_PROVIDER, TFP_PROVIDER)
#: provider name -> CrypTen's ``cfg.mpc.provider``
_CRYPTEN_PROVIDER = {DEFAULT_PROVIDER: "TTP", TFP_PROVIDER: "TFP"}

__all__ = [
    "DEFAULT_PROVIDER",
    "PROVIDERS",
    "TFP_PROVIDER",
    "AgreementError",
    "PartyConfig",
    "PartyContext",
    "PartyError",
    "ProviderError",
    "check_agreement",
    "free_port",
    "keep_freed_memory",
    "launch_local",
    "resolve_provider",
    "run_party",
    "run_ttp_dealer",
]


#: How long the dealer waits for the next request (a week: as long as a run lasts).
DEALER_WAIT_S = 7 * 24 * 3600.0


class ProviderError(ValueError, argparse.ArgumentTypeError):
    """A provider name that is not accepted (a ``ValueError``; as an ``argparse`` type its
    message is shown as it is)."""


def resolve_provider(name: str) -> str:
    """The canonical provider name for ``name`` (one of :data:`PROVIDERS`).

    ``"TTP"`` (any case) is the dealer; ``"tfp_player0_sees_all"`` (any case) is the
    trusted first party. ``"TFP"`` is refused: it used to be the default and silently let
    player 0 read everything.

    Raises:
        ProviderError: a ``ValueError`` naming the bad value and the accepted ones.
    """
    raw = str(name)
    low = raw.strip().lower()
    if low == "tfp":
        raise ProviderError(
            f"provider {raw!r} is no longer accepted: under CrypTen's trusted first party, "
            "player 0 generates every Beaver triple in the clear and can unmask every "
            "opened value (the other players' data, every weight and gradient). Use the "
            f"default {DEFAULT_PROVIDER!r} (a dealer process that holds no data) or, "
            f"knowingly, {TFP_PROVIDER!r}"
        )
    for p in PROVIDERS:
        if low == p.lower():
            return p
    raise ProviderError(f"provider must be one of {PROVIDERS}, got {raw!r}")


class PartyError(RuntimeError):
    """A party failed, died or timed out; the message names the rank(s) and the cause."""

    def __init__(self, message: str, ranks: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        #: ranks whose failure is the root cause (the dead / raising parties)
        self.ranks = ranks


@dataclass
class PartyConfig:
    """How a group of parties is formed.

    Attributes:
        world_size: number of computing parties (>= 2; the TTP dealer is not counted).
        rank: this process's rank in ``[0, world_size)``; ``None`` when launched locally
            (the launcher assigns ranks). The TTP dealer has rank ``world_size``.
        rendezvous: ``"tcp://HOST:PORT"`` hosted by rank 0; ``None`` locally (the
            launcher picks a free port on 127.0.0.1).
        timeout_s: a party that dies or hangs makes the others fail within this many
            seconds (used for every ``torch.distributed`` process group and for joining).
        provider: Beaver-triple provider: ``"TTP"`` (default: an extra dealer process that
            holds no data) or ``"tfp_player0_sees_all"`` (rank 0 generates the triples and
            can read every opened value); see :func:`resolve_provider`.
        torch_threads: ``torch.set_num_threads`` in every party.
    """

    world_size: int
    rank: int | None = None
    rendezvous: str | None = None
    timeout_s: float = 120.0
    provider: str = DEFAULT_PROVIDER
    torch_threads: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.world_size, int) or self.world_size < 2:
            raise ValueError(
                f"world_size must be an integer >= 2 (secure computation needs at least two "
                f"parties), got {self.world_size!r}"
            )
        if self.rank is not None and not (0 <= self.rank <= self.world_size):
            raise ValueError(
                f"rank must be in [0, {self.world_size - 1}] (or {self.world_size} for the TTP "
                f"dealer), got {self.rank!r}"
            )
        if self.rendezvous is not None and not self.rendezvous.startswith(("tcp://", "file://")):
            raise ValueError(
                f"rendezvous must look like 'tcp://HOST:PORT' (or 'file:///path'), "
                f"got {self.rendezvous!r}"
            )
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {self.timeout_s!r}")
        self.provider = resolve_provider(self.provider)
        if self.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {self.torch_threads!r}")

    @classmethod
    def from_env(
        cls,
        env: dict[str, str] | None = None,
        *,
        world_size: int | None = None,
        rank: int | None = None,
        rendezvous: str | None = None,
        timeout_s: float | None = None,
        provider: str | None = None,
    ) -> PartyConfig:
        """Build a config from ``SMPC_*`` environment variables; explicit arguments win.

        Reads ``SMPC_RANK``, ``SMPC_WORLD_SIZE``, ``SMPC_RENDEZVOUS``, ``SMPC_TIMEOUT``
        (seconds) and ``SMPC_PROVIDER``. ``world_size`` is required (argument or variable);
        a malformed value raises ``ValueError`` naming the variable and the value.
        """
        env = dict(os.environ if env is None else env)

        def _get(name: str, conv: Callable[[str], Any]) -> Any:
            raw = env.get(name)
            if raw is None or raw == "":
                return None
            try:
                return conv(raw)
            except ValueError:
                raise ValueError(
                    f"environment variable {name}={raw!r} is not a valid {conv.__name__}"
                ) from None

        ws = world_size if world_size is not None else _get("SMPC_WORLD_SIZE", int)
        if ws is None:
            raise ValueError(
                "world size unknown: pass world_size (--world-size) or set SMPC_WORLD_SIZE"
            )
        kwargs: dict[str, Any] = {"world_size": ws}
        r = rank if rank is not None else _get("SMPC_RANK", int)
        if r is not None:
            kwargs["rank"] = r
        rv = rendezvous if rendezvous is not None else _get("SMPC_RENDEZVOUS", str)
        if rv is not None:
            kwargs["rendezvous"] = rv
        t = timeout_s if timeout_s is not None else _get("SMPC_TIMEOUT", float)
        if t is not None:
            kwargs["timeout_s"] = t
        p = provider if provider is not None else _get("SMPC_PROVIDER", str)
        if p is not None:
            kwargs["provider"] = p
        return cls(**kwargs)


class PartyContext:
    """What a party function receives: rank, world size, config and initialised CrypTen."""

    def __init__(self, config: PartyConfig, crypten: ModuleType) -> None:
        assert config.rank is not None
        self.config = config
        self.rank: int = config.rank
        self.world_size: int = config.world_size
        self.crypten = crypten
        #: per-party protocol state reused across calls for as long as this context lives
        #: (e.g. secure aggregation's pairwise keys and preallocated buffers); keyed by the
        #: owning module's name
        self.scratch: dict[str, Any] = {}

    @property
    def comm(self) -> Any:
        """CrypTen's communicator (counts bytes/rounds of everything sent through it)."""
        return self.crypten.communicator.get()

    def comm_stats(self) -> dict[str, int]:
        """This party's ``{"bytes": int, "rounds": int}`` since the last reset.

        These are CrypTen's communicator counters (bytes this party sent/received through
        CrypTen's communicator, counted as CrypTen does: 8 bytes per ring element). Every
        party keeps its own; :func:`smpc_gym.secure.comm.gather_comm_stats` collects all.
        """
        stats = self.comm.get_communication_stats()
        return {"bytes": int(stats["bytes"]), "rounds": int(stats["rounds"])}

    def reset_comm_stats(self) -> None:
        """Zero this party's communication counters."""
        self.comm.reset_communication_stats()

    def barrier(self) -> None:
        """Block until every computing party (not the TTP dealer) reaches the barrier."""
        self.comm.barrier()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago (for local rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


#: rank 0's listening socket of the rendezvous store (kept open while the store lives),
#: with the inode its descriptor had when it was handed to the store
_STORE_SOCKETS: list[tuple[socket.socket, int]] = []


def _close_store_sockets() -> None:
    """Close the rendezvous store's listening sockets, unless the store closed them.

    The store's server owns the descriptor it was handed and may close it when CrypTen
    shuts down; closing the number again would then fail (``EBADF``) or, had the number
    been reused by then, close some other file of this process. A descriptor is closed
    here only if it still refers to the socket it was (same inode); otherwise the
    Python object lets go of the number without closing it.
    """
    while _STORE_SOCKETS:
        sock, inode = _STORE_SOCKETS.pop()
        try:
            same = os.fstat(sock.fileno()).st_ino == inode
        except OSError:  # closed underneath (EBADF)
            same = False
        if same:
            sock.close()
        else:
            sock.detach()


def _is_loopback(host: str) -> bool:
    """True if ``host`` resolves only to loopback addresses (127.0.0.0/8, ::1)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addrs = {ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos}
    return bool(addrs) and all(a.is_loopback for a in addrs)


def _loopback_ifname() -> str | None:
    """Name of the loopback network interface (Linux: flag IFF_LOOPBACK), if found."""
    for _, name in socket.if_nameindex():
        try:
            flags = int(Path(f"/sys/class/net/{name}/flags").read_text(), 16)
        except (OSError, ValueError):
            continue
        if flags & 0x8:  # IFF_LOOPBACK
            return name
    return None


def _parse_tcp(rendezvous: str) -> tuple[str, int]:
    """``("HOST", PORT)`` of a ``tcp://HOST:PORT`` address (``[v6]`` brackets allowed)."""
    from urllib.parse import urlparse

    u = urlparse(rendezvous)
    if u.scheme != "tcp" or not u.hostname or u.port is None:
        raise ValueError(f"rendezvous must look like 'tcp://HOST:PORT', got {rendezvous!r}")
    return u.hostname, int(u.port)


def _bound_store(rendezvous: str, rank: int, world_size: int, timeout: Any) -> Any:
    """The rendezvous ``TCPStore``; on rank 0 its server listens on the given host only.

    torch's ``tcp://`` rendezvous binds the store's server to every interface (``::``)
    whatever host the address names. Here rank 0 binds a socket to ``HOST:PORT`` itself
    and hands it to the store (``master_listen_fd``); the other ranks are plain clients.
    """
    import torch.distributed as dist

    host, port = _parse_tcp(rendezvous)
    if rank != 0:
        return dist.TCPStore(host, port, world_size, False, timeout)
    family, stype, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, stype, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise OSError(f"rank 0 cannot host the rendezvous at {rendezvous}: {exc}") from exc
    sock.listen(128)
    _STORE_SOCKETS.append((sock, os.fstat(sock.fileno()).st_ino))
    return dist.TCPStore(
        host, port, world_size, True, timeout, master_listen_fd=sock.fileno(), multi_tenant=True
    )


@contextmanager
def _dist_timeout(timeout_s: float, groups_s: float | None = None) -> Iterator[None]:
    """Make CrypTen's ``init_process_group`` / ``new_group`` calls use our timeout and store.

    ``groups_s`` (default ``timeout_s``) is the process groups' timeout, ``timeout_s``
    the rendezvous store's.

    CrypTen creates its process groups without a timeout (torch's default is 30 minutes);
    we patch the two functions on the ``torch.distributed`` module for the duration of
    ``crypten.init()`` so a dead or hung peer fails the others within ``timeout_s``. A
    ``tcp://`` rendezvous is replaced by :func:`_bound_store` (rank 0 listens on the
    given host only).
    """
    import torch.distributed as dist

    td = datetime.timedelta(seconds=timeout_s)
    tg = datetime.timedelta(seconds=timeout_s if groups_s is None else groups_s)
    orig_init, orig_new = dist.init_process_group, dist.new_group

    @functools.wraps(orig_init)
    def init_pg(*a: Any, **kw: Any) -> Any:
        kw.setdefault("timeout", tg)
        method = kw.get("init_method")
        if isinstance(method, str) and method.startswith("tcp://") and "store" not in kw:
            kw.pop("init_method")
            kw["store"] = _bound_store(method, int(kw["rank"]), int(kw["world_size"]), td)
        return orig_init(*a, **kw)

    @functools.wraps(orig_new)
    def new_group(*a: Any, **kw: Any) -> Any:
        kw.setdefault("timeout", tg)
        return orig_new(*a, **kw)

    dist.init_process_group, dist.new_group = init_pg, new_group  # type: ignore[assignment]
    try:
        yield
    finally:
        dist.init_process_group, dist.new_group = orig_init, orig_new  # type: ignore[assignment]


def _set_dist_env(config: PartyConfig, rank: int) -> None:
    """CrypTen's rendezvous variables; gloo on the loopback interface for a local address."""
    assert config.rendezvous is not None
    os.environ.update(
        {
            "RENDEZVOUS": config.rendezvous,
            "WORLD_SIZE": str(config.world_size),
            "RANK": str(rank),
            "DISTRIBUTED_BACKEND": "gloo",
        }
    )
    if config.rendezvous.startswith("tcp://") and "GLOO_SOCKET_IFNAME" not in os.environ:
        host, _ = _parse_tcp(config.rendezvous)
        lo = _loopback_ifname() if _is_loopback(host) else None
        if lo is not None:
            os.environ["GLOO_SOCKET_IFNAME"] = lo


#: glibc ``mallopt`` parameters (``<malloc.h>``) and the values set by
#: :func:`keep_freed_memory`.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest allowed
_TRIM_THRESHOLD_BYTES = 1 << 30

_MALLOC = {"tuned": False}


def keep_freed_memory() -> bool:
    """Keep freed memory in this process's heap instead of handing it back to the system
    (glibc only; elsewhere a no-op). Returns whether it was set.

    A secure update allocates and frees many multi-megabyte tensors (pool chunks of
    2^19 words, gathered bit rows, opened vectors). glibc serves allocations above its
    ``mmap`` threshold with fresh mappings and trims the heap's top when it is freed, so
    every such tensor's pages are zeroed by the kernel on first touch again. With the
    threshold at glibc's maximum (32 MB) and trimming only above 1 GB, they are reused:
    a process keeps its peak heap (the cost benchmark, an SGD and an Adam learner per
    process on the paper networks: ~0.9 GB per party, ~0.4 GB for the dealer, peaks
    within 5% of what they are without this). Freed memory holding shares or masks
    stays in the process that held them, as it did before until the allocator reused
    or returned it; nothing reaches another party.
    """
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES) == 1 and ok
    except (OSError, AttributeError):
        return False
    _MALLOC["tuned"] = ok
    return ok


def _init_crypten(config: PartyConfig, rank: int) -> ModuleType:
    """Set CrypTen's env vars and config, then ``crypten.init()`` with our timeouts."""
    import torch

    torch.set_num_threads(config.torch_threads)
    _set_dist_env(config, rank)
    crypten = crypten_module()
    crypten.cfg.mpc.provider = _CRYPTEN_PROVIDER[config.provider]
    crypten.cfg.communicator.verbose = True  # count bytes and rounds
    with _dist_timeout(config.timeout_s):
        crypten.init()
        if config.provider == "TTP":
            from smpc_gym.secure.dealer import install_client

            # typed frames to the dealer, never CrypTen's pickled messages; and this
            # party's AES stream key from the dealer
            install_client()
        rendezvous = config.rendezvous or ""
        if config.world_size == 2 and rendezvous.startswith("tcp://"):
            from smpc_gym.secure.channel import connect

            # the two parties' exchanges on one direct TCP connection, not through gloo
            host, _ = _parse_tcp(rendezvous)
            connect(rank, host, config.timeout_s, crypten.communicator.get().main_group)
    keep_freed_memory()
    return crypten


def _shutdown_crypten(crypten: ModuleType) -> None:
    """Tear the process groups down (rank 0 also tells the TTP dealer to stop)."""
    with contextlib.suppress(Exception):  # best effort: the peers may already be gone
        if crypten.is_initialized():
            from smpc_gym.secure.dealer import stop

            stop()  # rank 0: a typed "terminate" frame to the dealer
    with contextlib.suppress(Exception):
        from smpc_gym.secure.channel import close

        close()
    with contextlib.suppress(Exception):
        if crypten.is_initialized():
            crypten.uninit()
    _close_store_sockets()


class AgreementError(RuntimeError):
    """The parties disagree on something they must share (resume step, config, code)."""


def check_agreement(ctx: PartyContext, facts: Mapping[str, int | str]) -> None:
    """Collective: every computing party compares ``facts`` with everyone else's.

    Call it before the first secure operation with what must be identical across the
    parties (e.g. the resume step, a hash of the run's config, the code version). Each
    value is sent as a fixed-width record (int64 numbers; strings as at most 64 UTF-8
    bytes, longer ones by their SHA-256), gathered by every party with one
    ``all_gather`` under the group's timeout; nothing is unpickled. Only these facts are
    revealed, to every party.

    Raises:
        AgreementError: on every party, naming each disagreeing fact and every party's
            value (so both sides see both values).
    """
    import torch
    import torch.distributed as dist

    names = sorted(facts)
    width = 1 + 8  # tag + 64 bytes as 8 int64 words
    row = torch.zeros(len(names), width, dtype=torch.int64)
    for k, name in enumerate(names):
        value = facts[name]
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError(f"fact {name!r} must be an int or a str, got {value!r}")
        if isinstance(value, int):
            row[k, 0], row[k, 1] = 0, value
            continue
        raw = value.encode()
        if len(raw) > 64:
            raw = b"sha256:" + hashlib.sha256(raw).hexdigest()[:57].encode()
        row[k, 0] = 1 + len(raw)
        row[k, 1:] = torch.frombuffer(bytearray(raw.ljust(64, b"\0")), dtype=torch.int64)
    rows = [torch.empty_like(row) for _ in range(ctx.world_size)]
    dist.all_gather(rows, row, group=ctx.comm.main_group)

    def decode(r: torch.Tensor) -> int | str:
        if int(r[0]) == 0:
            return int(r[1])
        return r[1:].numpy().tobytes()[: int(r[0]) - 1].decode(errors="replace")

    bad = []
    for k, name in enumerate(names):
        values = [decode(rows[p][k]) for p in range(ctx.world_size)]
        if any(v != values[0] for v in values):
            who = ", ".join(f"party {p}: {v!r}" for p, v in enumerate(values))
            bad.append(f"{name} ({who})")
    if bad:
        raise AgreementError(
            f"party {ctx.rank}: the parties disagree on " + "; ".join(bad) + " - every "
            "party must start from the same step, config and code version (resume all "
            "parties from the same checkpoint)"
        )


def run_party(fn: Callable[..., T], config: PartyConfig, args: tuple = ()) -> T:
    """Run ``fn(ctx, *args)`` as party ``config.rank`` and return its result.

    Use this once per machine (or per process) for multi-machine runs; all parties must
    use the same ``world_size``, ``rendezvous`` and ``provider``. Any failure (in ``fn``,
    in a peer, or a timeout) is raised as :class:`PartyError` naming this rank, with the
    original exception chained.
    """
    if config.rank is None or config.rank >= config.world_size:
        raise ValueError(
            f"run_party needs a computing-party rank in [0, {config.world_size - 1}], "
            f"got {config.rank!r} (the TTP dealer runs run_ttp_dealer instead)"
        )
    if config.rendezvous is None:
        raise ValueError("run_party needs a rendezvous address like 'tcp://HOST:PORT'")
    crypten = None
    try:
        crypten = _init_crypten(config, config.rank)
        result = fn(PartyContext(config, crypten), *args)
    except Exception as exc:
        raise PartyError(
            f"party {config.rank} failed: {type(exc).__name__}: {exc}", (config.rank,)
        ) from exc
    finally:
        if crypten is not None:
            _shutdown_crypten(crypten)
    return result


def run_ttp_dealer(config: PartyConfig) -> None:
    """Run the dealer (CrypTen's trusted third party, rank ``world_size``) until told to stop.

    Only needed with ``provider="TTP"`` (the default). What the dealer holds: one seed per
    party (it drew them and sent each to its party; they expand to that party's shares of
    all correlated randomness) and, from party 0, the *shapes* of the triples requested.
    It computes each triple ``(a, b, c = a·b)`` in the clear and sends party 0 its share of
    ``c``. It never receives a share of any data, weight or opened value, so it learns
    nothing about them; it must not collude with a party (with a party's shares and the
    dealer's ``a``, ``b`` the opened ``x − a`` gives ``x``).

    Run it in a process (and, across machines, on a host) of its own: ``python train.py
    --algo secure_maddpg --dealer HOST:PORT`` joins the parties' rendezvous as the dealer.
    """
    if config.rendezvous is None:
        raise ValueError("the TTP dealer needs a rendezvous address like 'tcp://HOST:PORT'")
    cfg = dataclasses.replace(config, rank=config.world_size, provider=DEFAULT_PROVIDER)
    try:
        import torch

        torch.set_num_threads(cfg.torch_threads)
        _set_dist_env(cfg, cfg.world_size)
        crypten = crypten_module()
        crypten.cfg.mpc.provider = "TTP"
        from smpc_gym.secure.dealer import serve

        keep_freed_memory()
        # The dealer waits for requests for as long as the parties run (they may go
        # minutes without one: pre-training, full pools); a dead party closes its
        # connection, which ends the wait, and the parties keep their own timeout.
        with _dist_timeout(cfg.timeout_s, groups_s=DEALER_WAIT_S):
            serve()  # typed frames until rank 0 sends "terminate"
    except Exception as exc:
        raise PartyError(
            f"TTP dealer (rank {cfg.world_size}) failed: {type(exc).__name__}: {exc}",
            (cfg.world_size,),
        ) from exc
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()


# ----------------------------------------------------------------------------- local launch


def _to_launcher(msg: tuple) -> bytes:
    """A party's outcome as bytes the launcher reads without unpickling code.

    ``torch.save`` of plain containers, tensors and numbers (numpy arrays as tagged
    dicts, :func:`smpc_gym.storage.payload.encode`), read back with
    ``torch.load(weights_only=True)``; tensors travel by value (multiprocessing's own
    pickler would pass them through shared memory, gone once the party has exited).
    """
    import torch

    from smpc_gym.storage import payload

    buf = io.BytesIO()
    torch.save(payload.encode(msg), buf)
    return buf.getvalue()


def _from_party(data: bytes) -> tuple:
    """Inverse of :func:`_to_launcher` (``weights_only``: no arbitrary pickle is run)."""
    import torch

    from smpc_gym.storage import payload

    return payload.decode(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))


def _exit_with_launcher(launcher_pid: int, what: str, every_s: float = 0.5) -> None:
    """Stop this process soon after the launcher dies (a daemon thread).

    ``daemon=True`` only stops the parties when the launcher exits normally; killed (a
    signal, an out-of-memory kill), it would leave them computing, and writing into its
    log files, on their own.
    """

    def watch() -> None:
        while os.getppid() == launcher_pid:
            time.sleep(every_s)
        with contextlib.suppress(Exception):
            print(f"{what}: the launcher (pid {launcher_pid}) is gone; stopping", flush=True)
        os._exit(1)

    threading.Thread(target=watch, name="smpc-launcher-watch", daemon=True).start()


def _party_main(
    fn: Callable[..., Any],
    config: PartyConfig,
    args: tuple,
    conn: Any,
    is_ttp: bool,
    launcher_pid: int | None = None,
) -> None:
    """Entry point of a spawned party: run, then send ``("ok", result)`` or ``("err", ...)``.

    The outcome is sent to the launcher *before* tearing the process groups down, so a
    failure is reported at once even if the teardown blocks on a dead peer. The party
    stops by itself if the launcher dies (``launcher_pid``).
    """
    if launcher_pid is not None:
        _exit_with_launcher(launcher_pid, "TTP dealer" if is_ttp else f"party {config.rank}")
    crypten = None
    try:
        if is_ttp:
            run_ttp_dealer(config)
            conn.send_bytes(_to_launcher(("ok", None)))
        else:
            crypten = _init_crypten(config, int(config.rank))  # type: ignore[arg-type]
            result = fn(PartyContext(config, crypten), *args)
            conn.send_bytes(_to_launcher(("ok", result)))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the launcher
        cause = exc.__cause__ if isinstance(exc, PartyError) and exc.__cause__ else exc
        with contextlib.suppress(Exception):
            msg = ("err", f"{type(cause).__name__}: {cause}", traceback.format_exc())
            conn.send_bytes(_to_launcher(msg))
        conn.close()
        os._exit(1)  # skip the teardown: the launcher terminates the group
    conn.close()
    if crypten is not None:
        _shutdown_crypten(crypten)


_COMM_HINTS = ("connection", "closed", "reset by peer", "timed out", "timeout", "gloo", "socket")


def _looks_like_comm_error(msg: str) -> bool:
    low = msg.lower()
    return any(h in low for h in _COMM_HINTS)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "was still running"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code} without returning a result"


def launch_local(
    fn: Callable[..., T],
    world_size: int,
    args: tuple = (),
    *,
    config: PartyConfig | None = None,
    deadline_s: float | None = None,
) -> list[T]:
    """Spawn ``world_size`` parties on this machine, run ``fn(ctx, *args)`` in each.

    Each party initialises ``torch.distributed`` (gloo) and CrypTen on a fresh
    127.0.0.1 rendezvous, sets its torch threads and runs ``fn``; with
    ``provider="TTP"`` (the default) a dealer process (rank ``world_size``) is started too. ``fn`` must
    be a module-level function and ``args`` picklable (``spawn`` start method: the
    launcher hands its own children their arguments). Results come back as tensors,
    numpy arrays, numbers, strings, bytes and containers of these, read with
    ``torch.load(weights_only=True)``: the launcher never unpickles a party's code.
    Parties stop by themselves if the launcher dies.

    Returns:
        The per-rank results, in rank order.

    Raises:
        PartyError: if any party raises, dies (e.g. is killed) or hangs past
            ``timeout_s`` (a hung peer makes the others' communication time out); the
            other parties are then terminated. The message names the failing rank(s) and
            the cause. ``deadline_s`` (optional) bounds the whole run's wall time.
    """
    base = config if config is not None else PartyConfig(world_size=world_size)
    if base.world_size != world_size:
        raise ValueError(
            f"world_size={world_size} disagrees with config.world_size={base.world_size}"
        )
    rendezvous = base.rendezvous or f"tcp://127.0.0.1:{free_port()}"
    ctx = multiprocessing.get_context("spawn")
    n_procs = world_size + (1 if base.provider == "TTP" else 0)
    procs, conns = [], []
    for rank in range(n_procs):
        is_ttp = rank == world_size
        cfg = dataclasses.replace(base, rank=rank, rendezvous=rendezvous)
        parent_conn, child_conn = ctx.Pipe(duplex=False)
        p = ctx.Process(
            target=_party_main,
            args=(fn, cfg, args, child_conn, is_ttp, os.getpid()),
            name=f"smpc-party-{rank}" if not is_ttp else "smpc-ttp-dealer",
            daemon=True,
        )
        p.start()
        child_conn.close()
        procs.append(p)
        conns.append(parent_conn)

    def name(rank: int) -> str:
        return f"TTP dealer (rank {rank})" if rank == world_size else f"party {rank}"

    results: dict[int, Any] = {}
    errors: dict[int, tuple[str, str]] = {}  # rank -> (summary, traceback)
    dead: dict[int, str] = {}
    start = time.monotonic()
    first_failure: float | None = None
    grace = 1.0  # after a first failure, collect the others' errors this long
    pending = set(range(n_procs))
    try:
        while pending:
            now = time.monotonic()
            if first_failure is not None and now - first_failure > grace:
                break
            if deadline_s is not None and now - start > deadline_s:
                for r in pending:
                    errors.setdefault(r, (f"still running after the {deadline_s}s deadline", ""))
                break
            waitables: list[Any] = []
            for r in pending:
                waitables += [conns[r], procs[r].sentinel]
            multiprocessing.connection.wait(waitables, timeout=0.2)
            for r in list(pending):
                if conns[r].poll():
                    try:
                        msg = _from_party(conns[r].recv_bytes())
                    except (EOFError, OSError):
                        msg = None
                    except pickle.UnpicklingError as exc:  # weights_only refused a type
                        msg = (
                            "err",
                            f"its result holds a type the launcher does not load ({exc}); "
                            "return tensors, numpy arrays, numbers, strings and containers",
                            "",
                        )
                    if msg is not None and msg[0] == "ok":
                        results[r] = msg[1]
                        pending.discard(r)
                        continue
                    if msg is not None:
                        errors[r] = (msg[1], msg[2])
                    else:  # pipe closed without a message: the process died
                        procs[r].join(1.0)
                        dead[r] = _describe_exit(procs[r].exitcode)
                    pending.discard(r)
                    first_failure = first_failure or time.monotonic()
                elif not procs[r].is_alive():
                    procs[r].join(0.1)
                    dead[r] = _describe_exit(procs[r].exitcode)
                    pending.discard(r)
                    first_failure = first_failure or time.monotonic()
    finally:
        failed = bool(errors or dead or pending)
        # the dealer serves until rank 0 stops it: still running is its normal state
        hung = (
            sorted(r for r in pending if procs[r].is_alive() and r != world_size)
            if (errors or dead)
            else []
        )
        for p in procs:
            if failed and p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=base.timeout_s if not failed else 5.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)
        for c in conns:
            c.close()

    if errors or dead:
        # Root causes first: parties that died, then errors that are not peer-comm fallout.
        root = sorted(dead) + sorted(r for r in errors if not _looks_like_comm_error(errors[r][0]))
        if not root:
            root = hung or sorted(errors)
        parts = [f"{name(r)} {dead[r]}" for r in sorted(dead)]
        parts += [
            f"{name(r)} did not respond (still running when the others failed; terminated)"
            for r in hung
        ]
        parts += [f"{name(r)} raised {errors[r][0]}" for r in root if r in errors]
        parts += [
            f"{name(r)} then failed: {errors[r][0].splitlines()[0][:200]}"
            for r in sorted(errors)
            if r not in root
        ]
        detail = "".join(
            f"\n--- traceback of {name(r)} ---\n{errors[r][1]}" for r in root if r in errors
        )
        raise PartyError("; ".join(parts) + detail, tuple(root))
    return [results[r] for r in range(world_size)]
