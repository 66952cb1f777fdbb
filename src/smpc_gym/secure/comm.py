"""Communication helpers and accounting for party functions.

CrypTen counts the bytes and rounds that go through its communicator (8 bytes per ring
element, each party its own counter; see :meth:`PartyContext.comm_stats`). This module adds

* :func:`gather_tensors` — a ``gather`` of tensors of any dtype (CrypTen's own only takes
  int64), counted in the same counters;
* :func:`gather_comm_stats` — every party's counters, collected on one rank;
* :func:`io_bytes` — what this *process* actually pushed through ``write``-type system
  calls (``/proc/self/io``), a measured cross-check of the counted figures on Linux;
* :func:`phase` / :func:`profiling` — a per-phase profiler: wall time, the time spent
  inside CrypTen's communication calls (its own ``comm_time`` counter: sending, and
  waiting for the peer's data), bytes (and the part of them that was dealer traffic)
  and rounds, accumulated per named phase;
* :func:`charge_dealer` / :func:`dealer_bytes` — the running count of party 0's bytes
  that went to or came from the dealer (the dealer module charges it; only party 0
  talks to the dealer).

The profiler reveals nothing to anyone: each party measures its own clock and its own
counters, and the figures stay in that party's process unless the caller prints them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import torch


class _Context(Protocol):
    """What the gathers below read of a party's context
    (:class:`smpc_gym.secure.runtime.PartyContext`, which this module does not import:
    the runtime imports the dealer, and the dealer this module's byte counter)."""

    rank: int
    world_size: int

    @property
    def comm(self) -> Any: ...

    def comm_stats(self) -> dict[str, int]: ...


__all__ = [
    "PhaseProfile",
    "PhaseStats",
    "charge_dealer",
    "dealer_bytes",
    "gather_comm_stats",
    "gather_tensors",
    "io_bytes",
    "phase",
    "profiling",
]


#: What party 0's CrypTen byte counter has charged to the dealer link so far.
_DEALER_BYTES = {"party0": 0.0}


def charge_dealer(nbytes: float) -> None:
    """Record that ``nbytes`` of party 0's CrypTen byte count were dealer traffic (the
    dealer module calls this wherever it adds dealer words to that count)."""
    _DEALER_BYTES["party0"] += nbytes


def dealer_bytes() -> float:
    """Party 0: the bytes of its CrypTen counter (``comm_bytes``) that were dealer traffic,
    so far: every request frame and unpooled reply as it completes, and pooled replies'
    words as their correlations are handed out (:class:`smpc_gym.secure.dealer.Pools`).
    Only party 0 talks to the dealer: the rest of its count, and all of party 1's, is
    party-to-party traffic. 0 without a dealer (the ``TFP`` opt-out). Never reset; take
    differences."""
    return _DEALER_BYTES["party0"]


def gather_tensors(ctx: _Context, tensor: torch.Tensor, dst: int) -> list[torch.Tensor] | None:
    """Gather every party's ``tensor`` (same shape and dtype everywhere) on ``dst``.

    Returns the list in rank order on ``dst`` and ``None`` elsewhere. Counted in CrypTen's
    communicator statistics as ``nbytes / 8`` elements per transfer (one round).
    """
    import torch.distributed as dist

    comm = ctx.comm
    t = tensor.detach().contiguous()
    elems = t.numel() * t.element_size() / comm.BYTES_PER_ELEMENT
    if ctx.rank == dst:
        out = [torch.empty_like(t) for _ in range(ctx.world_size)]
        dist.gather(t, out, dst, group=comm.main_group)
        comm._log_communication(elems * (ctx.world_size - 1))
        return out
    dist.gather(t, [], dst, group=comm.main_group)
    comm._log_communication(elems)
    return None


def gather_comm_stats(ctx: _Context, dst: int = 0) -> list[dict[str, int]] | None:
    """Collective: every party's ``{"bytes", "rounds"}`` (rank order) on ``dst``, else None.

    The gather itself is not counted (it happens after the counters are read).
    """
    import torch.distributed as dist

    s = ctx.comm_stats()
    t = torch.tensor([s["bytes"], s["rounds"]], dtype=torch.int64)
    if ctx.rank == dst:
        out = [torch.empty_like(t) for _ in range(ctx.world_size)]
        dist.gather(t, out, dst, group=ctx.comm.main_group)
        return [{"bytes": int(x[0]), "rounds": int(x[1])} for x in out]
    dist.gather(t, [], dst, group=ctx.comm.main_group)
    return None


def io_bytes() -> dict[str, int]:
    """``{"written": wchar, "read": rchar}`` of this process from ``/proc/self/io``.

    These count bytes passed to ``write``/``read``-family system calls, which includes the
    TCP sockets gloo uses (and any file I/O, so take differences around a communication
    step). Returns ``{"written": -1, "read": -1}`` where ``/proc`` is unavailable.
    """
    try:
        with open("/proc/self/io") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return {"written": int(fields["wchar"]), "read": int(fields["rchar"])}
    except (OSError, KeyError, ValueError):
        return {"written": -1, "read": -1}


# ----------------------------------------------------------------------------- phase profile


@dataclass
class PhaseStats:
    """Totals of one named phase, *exclusive* of the phases nested inside it.

    Attributes:
        calls: how many times the phase was entered.
        wall_s: wall-clock seconds in the phase.
        comm_s: of those, seconds inside CrypTen's communication calls (its ``comm_time``
            counter: the time a send/receive/all-reduce took, which includes waiting for
            the peer to reach it — on a loaded machine, for the peer to be scheduled).
        bytes: CrypTen's byte counter (sent + received by this party, 8 per element).
        bytes_dealer: the part of ``bytes`` that was dealer traffic (:func:`dealer_bytes`;
            party 0 only, 0 in party 1 and without a dealer); ``bytes − bytes_dealer``
            went between the parties.
        rounds: CrypTen's round counter (one per communication call).
    """

    calls: int = 0
    wall_s: float = 0.0
    comm_s: float = 0.0
    bytes: int = 0
    rounds: int = 0
    bytes_dealer: float = 0.0

    @property
    def local_s(self) -> float:
        """Seconds outside communication calls: local compute plus Python/CrypTen overhead."""
        return self.wall_s - self.comm_s

    def add(self, other: PhaseStats) -> None:
        """Add ``other``'s totals to this one's (e.g. one update's phase into a run's)."""
        self.calls += other.calls
        self.wall_s += other.wall_s
        self.comm_s += other.comm_s
        self.bytes += other.bytes
        self.rounds += other.rounds
        self.bytes_dealer += other.bytes_dealer

    def as_dict(self) -> dict[str, float]:
        """``{"calls", "wall_s", "comm_s", "local_s", "bytes", "bytes_dealer", "rounds"}``."""
        return {
            "calls": self.calls,
            "wall_s": self.wall_s,
            "comm_s": self.comm_s,
            "local_s": self.local_s,
            "bytes": self.bytes,
            "bytes_dealer": self.bytes_dealer,
            "rounds": self.rounds,
        }


class PhaseProfile:
    """Per-phase totals collected while :func:`profiling` is active.

    A phase entered inside another is charged to itself only: the outer phase's figures
    exclude it, so the rows add up to the profiled block (plus what ran outside every
    phase, which the caller gets as its total minus :meth:`total`).
    """

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.phases: dict[str, PhaseStats] = {}
        # open phases: [name, (t, bytes, rounds, comm_s, dealer bytes) at entry, the same
        # totals of the phases nested in it so far]
        self._stack: list[list[Any]] = []

    def _counters(self) -> tuple[float, int, int, float, float]:
        c = self.comm
        return (
            time.perf_counter(),
            int(c.comm_bytes),
            int(c.comm_rounds),
            float(c.comm_time),
            _DEALER_BYTES["party0"],
        )

    def enter(self, name: str) -> None:
        """Open phase ``name`` (use :func:`phase` rather than calling this directly)."""
        self._stack.append([name, self._counters(), [0.0, 0, 0, 0.0, 0.0]])

    def exit(self) -> None:
        """Close the innermost open phase and charge it its exclusive figures."""
        name, start, child = self._stack.pop()
        inclusive = [b - a for a, b in zip(start, self._counters(), strict=True)]
        wall, nbytes, rounds, comm_s, dealt = (v - c for v, c in zip(inclusive, child, strict=True))
        self.phases.setdefault(name, PhaseStats()).add(
            PhaseStats(1, wall, comm_s, nbytes, rounds, dealt)
        )
        if self._stack:  # the parent excludes this phase's inclusive figures
            parent = self._stack[-1][2]
            for i, v in enumerate(inclusive):
                parent[i] += v

    def total(self) -> PhaseStats:
        """The sum over all phases."""
        out = PhaseStats()
        for st in self.phases.values():
            out.add(st)
        return out

    def as_dict(self) -> dict[str, dict[str, float]]:
        """Phase name → :meth:`PhaseStats.as_dict`."""
        return {k: v.as_dict() for k, v in self.phases.items()}


_ACTIVE: list[PhaseProfile] = []  # the profile phases are charged to (innermost last)


class phase:  # noqa: N801 - used like a function: ``with phase("forward"):``
    """Charge the enclosed block to phase ``name`` of the active :func:`profiling` block.

    Costs one list lookup when no profile is active, so it can stay on the hot path.
    """

    __slots__ = ("name", "_prof")

    def __init__(self, name: str) -> None:
        self.name = name
        self._prof: PhaseProfile | None = None

    def __enter__(self) -> None:
        if _ACTIVE:
            self._prof = _ACTIVE[-1]
            self._prof.enter(self.name)

    def __exit__(self, *exc: object) -> None:
        if self._prof is not None:
            self._prof.exit()
            self._prof = None


class profiling:  # noqa: N801 - a context manager used like a function
    """Collect :func:`phase` figures into a fresh :class:`PhaseProfile` for this block.

    ``comm`` is CrypTen's communicator (``PartyContext.comm``); its counters must be on
    (the runtime turns CrypTen's ``communicator.verbose`` on). Usage::

        with profiling(ctx.comm) as prof:
            party.update(idx)
        prof.as_dict()["forward"]["comm_s"]
    """

    def __init__(self, comm: Any) -> None:
        self.profile = PhaseProfile(comm)

    def __enter__(self) -> PhaseProfile:
        _ACTIVE.append(self.profile)
        return self.profile

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.remove(self.profile)
