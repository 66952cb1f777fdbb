"""Emulated network links on this machine: one network namespace per party, bounded runs.

:class:`Testbed` makes ``n`` Linux network namespaces, node ``k`` at ``10.78.0.<k+1>/24``
with loopback and one link interface. Traffic never leaves this machine: the namespaces
have no other interface and no route anywhere else. Two link kinds:

* ``rtt_ms == 0`` — **kernel path**: a veth pair per node into a bridge in one more
  namespace (the "switch"). No added delay (a veth round trip is tens of microseconds).
* ``rtt_ms > 0`` — **delay path**: a TUN interface per node and a relay thread in the
  calling process that moves IPv4 packets between them, holding each ``rtt_ms / 2``, so
  a round trip takes ``rtt_ms`` more. (This kernel has no ``netem`` qdisc, hence the
  userspace delay.) The relay is Python: on a loaded machine it tops out at a few hundred
  Mbit/s and can deliver late (:attr:`Testbed.late_s_max`), which adds to the measured
  time; use it for WAN-like links, not for emulating fast LANs.

Bandwidth: each node's sends (its uplink) run at ``rate_mbit``, so each direction
between two nodes does. On the kernel path a ``tbf`` qdisc on the node's interface
limits them. On the delay path the relay paces them itself (:func:`schedule`): a packet
leaves its sender's uplink only once the packets before it have, ``size / rate`` each,
and then takes the one-way delay, as on a real link. (A ``tbf`` there would have to
allow a burst of at least two 65 kB packets, and the bucket refills while a protocol
waits out the RTT: at 25 Mbit/s that let ~40 ms worth of each round's bytes through at
once, and the bytes' share of an update's time looked ~20% smaller than on a real
link.)

Needs root (``CAP_NET_ADMIN``), ``ip``, ``tc`` and ``/dev/net/tun``; :func:`unavailable`
says why a testbed cannot be made. Everything made is removed on exit (``try/finally``):
the namespaces are deleted (their interfaces with them) and the TUN interfaces vanish
with the relay's descriptors.

Usage::

    with Testbed(3, rate_mbit=100, rtt_ms=40) as tb:
        subprocess.run(tb.exec_prefix(0) + ["python", "server.py", tb.ip(0)], timeout=60)
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import itertools
import os
import selectors
import shutil
import struct
import subprocess
import threading
import time
from dataclasses import dataclass

__all__ = ["Testbed", "schedule", "unavailable"]

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_MTU = 65000
_SUBNET = "10.78.0"


def unavailable() -> str | None:
    """``None`` if a :class:`Testbed` can be made here, else the reason it cannot."""
    if os.name != "posix" or not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun on this machine"
    if os.geteuid() != 0:
        return "making network namespaces needs root (CAP_NET_ADMIN)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the '{tool}' command (iproute2) is not installed"
    return None


def _run(*cmd: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")


@dataclass
class _Node:
    ns: str
    ifname: str
    fd: int  # the TUN descriptor on the delay path, -1 on the kernel path
    ip: str


def schedule(
    free_at: float, now: float, nbytes: int, rate_bytes_s: float | None, delay_s: float
) -> tuple[float, float]:
    """One packet through the delay path's emulated uplink: ``(free_at', due)``.

    ``free_at``: when the sender's uplink finishes the packets before this one; ``now``:
    when the relay read this one (``nbytes`` long). The packet starts when the uplink is
    free, takes ``nbytes / rate_bytes_s`` to send (no limit: ``None``, no time), and is
    delivered ``delay_s`` (the one-way delay) after it is sent; ``free_at'`` is when it
    is sent, the uplink's next free moment.
    """
    if rate_bytes_s is None:
        return free_at, now + delay_s
    sent = max(now, free_at) + nbytes / rate_bytes_s
    return sent, sent + delay_s


class Testbed:
    """``n`` namespaces joined by emulated links of ``rate_mbit`` and ``rtt_ms``.

    Args:
        n: number of nodes (namespaces), at most 250.
        rate_mbit: per-node send rate in Mbit/s (``tbf`` on the kernel path, the relay's
            pacing on the delay path); ``None`` = no limit.
        rtt_ms: added round-trip time in milliseconds (``rtt_ms / 2`` each way); >= 0.
        tag: short label in the namespace names (several testbeds may coexist).
    """

    def __init__(
        self, n: int, rate_mbit: float | None = None, rtt_ms: float = 0.0, tag: str = ""
    ) -> None:
        if not 2 <= n <= 250:
            raise ValueError(f"a testbed needs 2..250 nodes, got n={n!r}")
        if rate_mbit is not None and not rate_mbit > 0:
            raise ValueError(f"rate_mbit must be > 0 or None (no limit), got {rate_mbit!r}")
        if not rtt_ms >= 0:
            raise ValueError(f"rtt_ms must be >= 0, got {rtt_ms!r}")
        self.n, self.rate_mbit, self.rtt_ms = n, rate_mbit, float(rtt_ms)
        self._id = f"{tag[:4]}{os.getpid() % 100000}"
        self.nodes: list[_Node] = []
        self._hub: str | None = None  # the bridge's namespace (kernel path)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.relayed_packets = 0
        self.late_s_max = 0.0  # worst delivery lateness of the relay (scheduling)

    # -- addresses -----------------------------------------------------------------------
    def ip(self, k: int) -> str:
        """Node ``k``'s address."""
        return f"{_SUBNET}.{k + 1}"

    def ifname(self, k: int) -> str:
        """Node ``k``'s interface name (for ``GLOO_SOCKET_IFNAME``)."""
        return self.nodes[k].ifname

    def exec_prefix(self, k: int) -> list[str]:
        """Command prefix that runs a program inside node ``k``'s namespace."""
        return ["ip", "netns", "exec", self.nodes[k].ns]

    # -- set-up and tear-down ------------------------------------------------------------
    def __enter__(self) -> Testbed:
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(f"cannot emulate links here: {reason}")
        try:
            if self.rtt_ms == 0:
                self._hub = f"smpc{self._id}hub"
                _run("ip", "netns", "add", self._hub)
                _run("ip", "-n", self._hub, "link", "add", "br0", "type", "bridge")
                _run("ip", "-n", self._hub, "link", "set", "br0", "up")
            for k in range(self.n):
                self._add_node(k)
            if self._hub is None:
                self._thread = threading.Thread(target=self._relay, name="netns-relay", daemon=True)
                self._thread.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_node(self, k: int) -> None:
        ns, ifname = f"smpc{self._id}n{k}", f"st{self._id}n{k}"[:15]
        _run("ip", "netns", "add", ns)
        if self._hub is not None:  # kernel path: veth into the bridge
            self.nodes.append(_Node(ns, ifname, -1, self.ip(k)))
            peer = f"sh{self._id}n{k}"[:15]
            _run("ip", "link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", peer,
                 "netns", self._hub)  # fmt: skip
            _run(
                "ip", "-n", self._hub, "link", "set", peer, "mtu", str(_MTU), "master", "br0", "up"
            )
        else:  # delay path: a TUN interface read by the relay
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
            self.nodes.append(_Node(ns, ifname, fd, self.ip(k)))
            flags = _IFF_TUN | _IFF_NO_PI
            fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", ifname.encode(), flags))
            _run("ip", "link", "set", ifname, "netns", ns)
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", ns, "addr", "add", f"{self.ip(k)}/24", "dev", ifname)
        _run("ip", "-n", ns, "link", "set", ifname, "mtu", str(_MTU), "up")
        if self.rate_mbit is not None and self._hub is not None:  # the relay paces its own
            # burst >= one packet (else tbf drops it); queue up to 2 s instead of dropping
            burst = max(2 * _MTU, int(self.rate_mbit * 1e6 / 8 * 0.001))
            _run(
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", ifname, "root", "tbf",
                "rate", f"{self.rate_mbit}mbit", "burst", str(burst), "latency", "2000ms",
            )  # fmt: skip

    def close(self) -> None:
        """Stop the relay, close the TUN descriptors, delete the namespaces (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        for node in self.nodes:
            if node.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(node.fd)
            subprocess.run(["ip", "netns", "del", node.ns], capture_output=True, timeout=20)
        if self._hub is not None:
            subprocess.run(["ip", "netns", "del", self._hub], capture_output=True, timeout=20)
            self._hub = None
        self.nodes = []

    # -- the relay -----------------------------------------------------------------------
    def _relay(self) -> None:
        """Move IPv4 packets between the TUN interfaces, each paced by its sender's uplink
        and then held ``rtt_ms / 2`` (:func:`schedule`)."""
        delay = self.rtt_ms / 2000.0
        rate = None if self.rate_mbit is None else self.rate_mbit * 1e6 / 8
        by_ip = {bytes(int(x) for x in n.ip.split(".")): n.fd for n in self.nodes}
        free_at = dict.fromkeys(by_ip, 0.0)  # per sender: its uplink's next free moment
        sel = selectors.DefaultSelector()
        for node in self.nodes:
            sel.register(node.fd, selectors.EVENT_READ)
        queue: list[tuple[float, int, int, bytes]] = []
        seq = itertools.count()
        try:
            while not self._stop.is_set():
                now = time.perf_counter()
                timeout = min(0.05, max(0.0, queue[0][0] - now)) if queue else 0.05
                for key, _ in sel.select(timeout):
                    while True:
                        try:
                            pkt = os.read(key.fd, _MTU + 100)
                        except BlockingIOError:
                            break
                        if len(pkt) < 20 or pkt[0] >> 4 != 4:
                            continue  # IPv4 only (IPv6 router chatter is dropped)
                        dst, src = by_ip.get(pkt[16:20]), pkt[12:16]
                        if dst is not None and src in free_at:
                            free_at[src], due = schedule(
                                free_at[src], time.perf_counter(), len(pkt), rate, delay
                            )
                            heapq.heappush(queue, (due, next(seq), dst, pkt))
                now = time.perf_counter()
                while queue and queue[0][0] <= now:
                    due, _, dst, pkt = heapq.heappop(queue)
                    self.late_s_max = max(self.late_s_max, now - due)
                    with contextlib.suppress(OSError):  # receiver full: dropped, TCP resends
                        os.write(dst, pkt)
                    self.relayed_packets += 1
        finally:
            sel.close()
