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
  waiting for the peer's data), bytes and rounds, accumulated per named phase.

The profiler reveals nothing to anyone: each party measures its own clock and its own
counters, and the figures stay in that party's process unless the caller prints them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from smpc_gym.secure.runtime import PartyContext

__all__ = [
    "PhaseProfile",
    "PhaseStats",
    "gather_comm_stats",
    "gather_tensors",
    "io_bytes",
    "phase",
    "profiling",
]


def gather_tensors(ctx: PartyContext, tensor: torch.Tensor, dst: int) -> list[torch.Tensor] | None:
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


def gather_comm_stats(ctx: PartyContext, dst: int = 0) -> list[dict[str, int]] | None:
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
        rounds: CrypTen's round counter (one per communication call).
    """

    calls: int = 0
    wall_s: float = 0.0
    comm_s: float = 0.0
    bytes: int = 0
    rounds: int = 0

    @property
    def local_s(self) -> float:
        """Seconds outside communication calls: local compute plus Python/CrypTen overhead."""
        return self.wall_s - self.comm_s

    def as_dict(self) -> dict[str, float]:
        """``{"calls", "wall_s", "comm_s", "local_s", "bytes", "rounds"}``."""
        return {
            "calls": self.calls,
            "wall_s": self.wall_s,
            "comm_s": self.comm_s,
            "local_s": self.local_s,
            "bytes": self.bytes,
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
        # open phases: [name, t0, bytes0, rounds0, comm_s0, child wall, comm, bytes, rounds]
        self._stack: list[list[Any]] = []

    def _counters(self) -> tuple[float, int, int, float]:
        c = self.comm
        return (
            time.perf_counter(),
            int(c.comm_bytes),
            int(c.comm_rounds),
            float(c.comm_time),
        )

    def enter(self, name: str) -> None:
        """Open phase ``name`` (use :func:`phase` rather than calling this directly)."""
        t, b, r, c = self._counters()
        self._stack.append([name, t, b, r, c, 0.0, 0.0, 0, 0])

    def exit(self) -> None:
        """Close the innermost open phase and charge it its exclusive figures."""
        name, t0, b0, r0, c0, cw, cc, cb, cr = self._stack.pop()
        t, b, r, c = self._counters()
        wall, comm_s, nbytes, rounds = t - t0, c - c0, b - b0, r - r0
        st = self.phases.setdefault(name, PhaseStats())
        st.calls += 1
        st.wall_s += wall - cw
        st.comm_s += comm_s - cc
        st.bytes += nbytes - cb
        st.rounds += rounds - cr
        if self._stack:  # the parent excludes this phase's inclusive figures
            parent = self._stack[-1]
            parent[5] += wall
            parent[6] += comm_s
            parent[7] += nbytes
            parent[8] += rounds

    def total(self) -> PhaseStats:
        """The sum over all phases."""
        out = PhaseStats()
        for st in self.phases.values():
            out.calls += st.calls
            out.wall_s += st.wall_s
            out.comm_s += st.comm_s
            out.bytes += st.bytes
            out.rounds += st.rounds
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
