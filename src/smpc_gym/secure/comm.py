"""Communication helpers and accounting for party functions.

CrypTen counts the bytes and rounds that go through its communicator (8 bytes per ring
element, each party its own counter; see :meth:`PartyContext.comm_stats`). This module adds

* :func:`gather_tensors` — a ``gather`` of tensors of any dtype (CrypTen's own only takes
  int64), counted in the same counters;
* :func:`gather_comm_stats` — every party's counters, collected on one rank;
* :func:`io_bytes` — what this *process* actually pushed through ``write``-type system
  calls (``/proc/self/io``), a measured cross-check of the counted figures on Linux.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from smpc_gym.secure.runtime import PartyContext

__all__ = ["gather_comm_stats", "gather_tensors", "io_bytes"]


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
