"""Byzantine-robust aggregation on secret shares: coordinate median and trimmed mean.

Roles are those of :mod:`smpc_gym.federated.secure_agg`: a process group of
``n_holders + 1`` parties, **rank 0 the coordinator** (no update), ranks ``1..n_holders``
the data holders. Each holder secret-shares its update with
``crypten.cryptensor(x, src=rank)`` in its own process; the parties then sort the N shared
values of every coordinate with an **oblivious odd-even transposition sorting network**
and reveal only the requested order statistic to the coordinator:

* :func:`secure_coordinate_median` — the per-coordinate median (mean of the two middle
  values for even N), equal to :func:`smpc_gym.federated.robust.coordinate_median` up to
  fixed-point error;
* :func:`secure_trimmed_mean` — the mean of sorted ranks ``f … N-f-1``
  (:func:`smpc_gym.federated.robust.trimmed_mean`).

Network: N layers; layer ``ℓ`` compare-exchanges the pairs ``(i, i+1)`` with
``i ≡ ℓ (mod 2)``. All pairs of a layer and all D coordinates are processed as *one* batched
comparison (``a > b`` on shares: arithmetic→binary conversion and a carry circuit) and *one*
multiplication (``c·(a-b)``, Beaver triples): ``lo = a - c(a-b)``, ``hi = b + c(a-b)``.
The access pattern is fixed (it does not depend on the data), so the parties learn nothing
but the revealed output. Cost: ``N(N-1)/2`` compare-exchanges per coordinate; rounds grow
linearly in N and not at all in D. ``benchmarks/robust_aggregation.py`` (its secure part) and
``tests/test_secure_robust.py`` measure it against the plaintext rule (each holder sends its
update to the coordinator in the clear, which then sorts).

What is revealed to whom (semi-honest): the coordinator learns the median (or trimmed
mean) vector only; holders learn nothing. Beaver triples come from CrypTen's default TFP
provider, i.e. from rank 0, which is the coordinator — trusted not to misuse them; pass
``PartyConfig(provider="TTP")`` for a separate dealer. Like any median, the output value of
a coordinate *is* one holder's value (odd N), which is inherent to the rule, not the protocol.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from smpc_gym.federated.secure_agg import COORDINATOR

if TYPE_CHECKING:
    from smpc_gym.secure.runtime import PartyConfig, PartyContext

__all__ = [
    "oblivious_sort",
    "run_secure_robust",
    "secure_coordinate_median",
    "secure_trimmed_mean",
    "share_updates",
]


def share_updates(ctx: PartyContext, update: torch.Tensor | None, numel: int) -> list[Any]:
    """Secret-share every holder's update (collective). Returns the N shared ``(numel,)``
    vectors in holder order; ``update`` is this party's (``None`` on the coordinator)."""
    crypten = ctx.crypten
    rows = []
    for src in range(1, ctx.world_size):
        if ctx.rank == src:
            if update is None or update.shape != (numel,):
                raise ValueError(
                    f"holder {src} must pass a ({numel},) update, got "
                    f"{None if update is None else tuple(update.shape)}"
                )
            x = update.detach().to(torch.float64)
        else:
            x = torch.zeros(numel, dtype=torch.float64)
        rows.append(crypten.cryptensor(x, src=src))
    return rows


def oblivious_sort(ctx: PartyContext, rows: list[Any]) -> list[Any]:
    """Sort shared vectors coordinate-wise, ascending (odd-even transposition network)."""
    crypten = ctx.crypten
    rows = list(rows)
    n = len(rows)
    for layer in range(n):
        starts = list(range(layer % 2, n - 1, 2))
        if not starts:
            continue
        a = crypten.stack([rows[i] for i in starts])
        b = crypten.stack([rows[i + 1] for i in starts])
        diff = a - b
        c = diff > 0
        d = c * diff
        lo, hi = a - d, b + d
        for k, i in enumerate(starts):
            rows[i], rows[i + 1] = lo[k], hi[k]
    return rows


def secure_coordinate_median(
    ctx: PartyContext, update: torch.Tensor | None, numel: int, dst: int = COORDINATOR
) -> torch.Tensor | None:
    """Collective: the coordinate median of the holders' updates, revealed on ``dst`` only
    (float64; ``None`` elsewhere)."""
    rows = oblivious_sort(ctx, share_updates(ctx, update, numel))
    n = len(rows)
    med = rows[n // 2] if n % 2 == 1 else (rows[n // 2 - 1] + rows[n // 2]) * 0.5
    out = med.get_plain_text(dst=dst)
    return None if ctx.rank != dst else out.to(torch.float64)


def secure_trimmed_mean(
    ctx: PartyContext, update: torch.Tensor | None, numel: int, f: int, dst: int = COORDINATOR
) -> torch.Tensor | None:
    """Collective: the coordinate-wise ``f``-trimmed mean, revealed on ``dst`` only."""
    n = ctx.world_size - 1
    if not 0 <= 2 * f < n:
        raise ValueError(f"trimmed mean with f={f} needs N >= {2 * f + 1} holders, got N={n}")
    rows = oblivious_sort(ctx, share_updates(ctx, update, numel))
    acc = rows[f]
    for r in rows[f + 1 : n - f]:
        acc = acc + r
    out = (acc * (1.0 / (n - 2 * f))).get_plain_text(dst=dst)
    return None if ctx.rank != dst else out.to(torch.float64)


def _plaintext_gather_median(ctx: PartyContext, update: torch.Tensor | None, numel: int) -> Any:
    from smpc_gym.federated.robust import coordinate_median
    from smpc_gym.secure.comm import gather_tensors

    x = update if update is not None else torch.zeros(numel, dtype=torch.float64)
    got = gather_tensors(ctx, x.to(torch.float64), dst=COORDINATOR)
    if got is None:
        return None
    return coordinate_median(torch.stack(got[1:]), 0)


def _party(ctx: PartyContext, updates: torch.Tensor, rule: str, f: int) -> dict[str, Any]:
    numel = updates.shape[1]
    # each holder only ever touches its own row
    mine = None if ctx.rank == COORDINATOR else updates[ctx.rank - 1].clone()
    ctx.barrier()
    ctx.comm.reset_communication_stats()
    t0 = time.perf_counter()
    plain = _plaintext_gather_median(ctx, mine, numel)
    t_plain = time.perf_counter() - t0
    plain_stats = ctx.comm_stats()
    ctx.barrier()
    ctx.comm.reset_communication_stats()
    t0 = time.perf_counter()
    if rule == "median":
        out = secure_coordinate_median(ctx, mine, numel)
    else:
        out = secure_trimmed_mean(ctx, mine, numel, f)
    t_secure = time.perf_counter() - t0
    stats = ctx.comm_stats()
    return {
        "result": out,
        "plain_result": plain,
        "secure_s": t_secure,
        "plain_s": t_plain,
        "bytes": stats["bytes"],
        "rounds": stats["rounds"],
        "plain_bytes": plain_stats["bytes"],
        "plain_rounds": plain_stats["rounds"],
    }


def run_secure_robust(
    updates: torch.Tensor,
    rule: str = "median",
    f: int = 0,
    config: PartyConfig | None = None,
) -> dict[str, Any]:
    """Run the secure rule over ``N = len(updates)`` holder processes plus a coordinator.

    For measurement and tests: holder ``i`` receives row ``i`` (in a real deployment each
    holder computes its own). Also runs the plaintext baseline (gather to the coordinator,
    then :func:`~smpc_gym.federated.robust.coordinate_median`) in the same group.

    Returns ``{"result", "plain_result", "secure_s", "plain_s", "bytes", "rounds",
    "plain_bytes", "plain_rounds"}``: the coordinator's outputs and wall times, and the
    coordinator's communication counters (bytes it sent and received, rounds).
    """
    from smpc_gym.secure.runtime import PartyConfig, launch_local

    if rule not in ("median", "trimmed_mean"):
        raise ValueError(f"secure rule must be 'median' or 'trimmed_mean', got {rule!r}")
    if updates.dim() != 2 or updates.shape[0] < 2:
        raise ValueError(f"updates must be (N >= 2, D), got shape {tuple(updates.shape)}")
    world = updates.shape[0] + 1
    cfg = config if config is not None else PartyConfig(world_size=world)
    res = launch_local(_party, world, (updates.detach().to(torch.float64), rule, f), config=cfg)
    return res[COORDINATOR]
