"""Byzantine-robust aggregation on secret shares: coordinate median, trimmed mean, Krum.

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

Krum (:func:`secure_krum`, :func:`secure_krum_shares`)
-----------------------------------------------------
1. *Distances*: the ``N(N-1)/2`` pairwise differences are local; their squares are one
   batched Beaver squaring (one opening) and the sum over D is local. No truncation: the
   squared distances stay on the ring at scale ``2**32`` and are treated as integers
   (precision 0), so they are *exactly* the distances of the fixed-point inputs and ties
   stay ties. (Range: every holder checks ``||x||² < 2**28 / (N - f - 2)`` so that scores
   cannot wrap; clip updates first.)
2. *Scores*: per holder, the ranks of its ``N - 1`` distances from one batched comparison
   of all pairs (ties broken by position), ``[rank < N - f - 2]`` from a second, and the
   score ``Σ [rank < k] · d`` by one exact multiplication (comparison bits are 0/1
   integers). Two comparison layers whatever N is (a sorting network would need N - 1).
3. *Argmin*: one batched comparison of all score pairs (strict ``<``, so a tie goes to the
   lower index, like ``torch.argmin`` in :func:`smpc_gym.federated.robust.krum`); the
   one-hot of the winner is the AND of its ``N - 1`` "wins" bits (a ``log2 N``-deep
   multiplication tree).
4. *Selection*: ``Σ_j onehot_j · x_j`` — one exact multiplication round; revealed on the
   coordinator (:func:`secure_krum`) or kept as shares with the one-hot
   (:func:`secure_krum_shares`, nothing revealed) for further secure computation.

What Krum reveals, and why only that. The coordinator must apply the aggregate, and Krum's
aggregate *is* one holder's update, so that update is revealed — inherent to the rule
(like the median's per-coordinate values), not to the protocol; a deployment that cannot
accept it should prefer the secure mean or median. Everything else stays on shares:

* *not the distance matrix*: with ``x_{i*}`` known, ``||x_j - x_{i*}||`` puts every other
  holder's update on a known sphere, and the full matrix fixes the updates' geometry up to
  one rigid motion — far more than the rule needs;
* *not the scores*: each is a sum of such distances, a weaker form of the same leak;
* *not the winner's index*: the coordinator learns one update but not *whose* it is. With
  the index it could link the update to a holder round after round — the
  "plaintext update of one holder" case of the gradient-inversion benchmark; without it
  the update is one of N (the unlinkability secure aggregation also buys). Hiding it costs
  the oblivious selection, one multiplication of ``N × D`` values.

Cost: ``O(N² D)`` multiplications (the squaring), ``O(N³)`` compared elements in 3
comparison layers, about 50–75 communication rounds for N = 3–5
(``benchmarks/robust_aggregation.py --secure-only``). ``tests/test_secure_robust.py``
checks choice and output against :func:`smpc_gym.federated.robust.krum` on hand-made
inputs (a central point, a three-way tie) and random ones with an attacker.

What is revealed to whom (semi-honest): the coordinator learns the median (or trimmed
mean, or Krum-selected update) vector only; holders learn nothing. Beaver triples come
from the runtime's default provider, a dealer process that holds no data
(``provider="TTP"``); with ``PartyConfig(provider="tfp_player0_sees_all")`` rank 0 — the
coordinator — would make them and could read every opened value. Like any median, the output value of
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
    "SECURE_RULES",
    "oblivious_argmin",
    "oblivious_sort",
    "pairwise_sq_distances",
    "plaintext_gather_rule",
    "run_secure_robust",
    "secure_coordinate_median",
    "secure_krum",
    "secure_krum_shares",
    "secure_rule",
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


def _check_krum(ctx: PartyContext, f: int) -> int:
    n = ctx.world_size - 1
    if not isinstance(f, int) or f < 0:
        raise ValueError(f"krum: f (Byzantine holders) must be an integer >= 0, got {f!r}")
    if n < 2 * f + 3:
        raise ValueError(f"krum with f={f} Byzantine holders needs N >= {2 * f + 3}, got N={n}")
    return n


def pairwise_sq_distances(ctx: PartyContext, rows: list[Any]) -> tuple[Any, list[tuple]]:
    """Shared squared L2 distances ``||x_i - x_j||²`` of all pairs ``i < j`` (collective).

    The differences are local; the squares are *one* batched Beaver squaring of all
    ``N(N-1)/2 × D`` differences (square triples: one opening) and the sum over D is local.
    No truncation: the result stays on the ring at scale ``2**(2·precision)`` and is wrapped
    as a precision-0 (integer) tensor, so comparisons on it and multiplications by 0/1
    comparison results are exact and ties stay ties. Returns ``(d2, pairs)`` with ``d2`` a
    shared ``(P,)`` vector in the order of ``pairs``.
    """
    crypten = ctx.crypten
    beaver = crypten.mpc.primitives.beaver
    n = len(rows)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    x = crypten.stack(rows)
    ii = torch.tensor([p[0] for p in pairs])
    jj = torch.tensor([p[1] for p in pairs])
    diff = x[ii] - x[jj]  # (P, D), local
    sq = beaver.square(diff._tensor)  # one round, no truncation: scale 2**(2 precision)
    d2 = crypten.mpc.MPCTensor.from_shares(sq.share.sum(1), precision=0)
    return d2, pairs


def _pair_index(m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All pairs ``a < b`` of ``range(m)`` as two index tensors."""
    a, b = torch.triu_indices(m, m, offset=1)
    return a, b


def oblivious_ranks(ctx: PartyContext, v: Any) -> Any:
    """Shared ranks (0 = smallest; ties: lower position first) along the last dim of a
    shared ``(..., m)`` tensor, from *one* batched comparison of all ``m(m-1)/2`` pairs.

    For a pair ``a < b``, ``c = [v_b < v_a]``; then ``rank_a = Σ_b c_ab + Σ_{b<a}(1 - c_ba)``,
    a public linear map of the comparison bits (exact: bits are precision-0 integers). The
    ranks are a permutation of ``0..m-1`` in every row.
    """
    m = v.size(-1)
    a, b = _pair_index(m)
    c = v[..., b] < v[..., a]  # (..., P) bits, scale 1
    first = torch.zeros(len(a), m, dtype=torch.int64)
    first[torch.arange(len(a)), a] = 1
    second = torch.zeros(len(a), m, dtype=torch.int64)
    second[torch.arange(len(a)), b] = 1
    # rank = c @ (first - second) + (number of pairs in which the element is second)
    return c.matmul(first - second) + second.sum(0)


def _krum_scores_on_shares(
    ctx: PartyContext, d2: Any, pairs: list[tuple[int, int]], n: int, k: int
) -> Any:
    """Shared Krum scores ``(N,)``: per holder, the sum of its ``k`` smallest distances to
    the others. Ranks within each row (one comparison layer), ``[rank < k]`` (a second
    one), then one exact multiplication — whatever ``N`` is."""
    index = {p: t for t, p in enumerate(pairs)}
    idx = torch.tensor(
        [[index[(min(i, j), max(i, j))] for j in range(n) if j != i] for i in range(n)]
    )
    rows = d2[idx]  # (N, N-1): holder i's distances to every other holder
    nearest = oblivious_ranks(ctx, rows) < k  # (N, N-1) bits
    return (nearest * rows).sum(1)


def oblivious_argmin(ctx: PartyContext, values: Any) -> Any:
    """One-hot (precision 0, shared) of the *first* minimum of a shared ``(N,)`` vector.

    One batched comparison of all pairs (``c = [v_b < v_a]`` for ``a < b``: strict, so a
    tie goes to the lower index — ``torch.argmin``'s rule), then candidate ``j``'s indicator
    is the product of its ``N - 1`` "wins" bits (a multiplication tree of
    ``ceil(log2(N-1))`` rounds, much cheaper than another comparison). Exactly one
    candidate wins all its pairs: the lowest-index minimum.
    """
    n = values.size(0)
    a, b = _pair_index(n)
    c = values[b] < values[a]  # (P,)
    pair_of = {(int(x), int(y)): t for t, (x, y) in enumerate(zip(a, b, strict=True))}
    idx, sign, offset = [], [], []
    for j in range(n):
        row_i, row_s, row_o = [], [], []
        for t in range(n):
            if t == j:
                continue
            row_i.append(pair_of[(min(j, t), max(j, t))])
            if j < t:  # j is first: it wins unless t is strictly smaller (c = 1)
                row_s.append(-1)
                row_o.append(1)
            else:  # j is second: it wins iff it is strictly smaller (c = 1)
                row_s.append(1)
                row_o.append(0)
        idx.append(row_i)
        sign.append(row_s)
        offset.append(row_o)
    wins = c[torch.tensor(idx)] * torch.tensor(sign) + torch.tensor(offset)  # (N, N-1)
    while wins.size(1) > 1:  # AND of the bits: pairwise products, one round per level
        w = wins.size(1)
        prod = wins[:, 0 : w - 1 : 2] * wins[:, 1:w:2]
        wins = prod if w % 2 == 0 else ctx.crypten.cat([prod, wins[:, w - 1 : w]], dim=1)
    return wins[:, 0]


def secure_krum_shares(
    ctx: PartyContext, update: torch.Tensor | None, numel: int, f: int
) -> tuple[Any, Any]:
    """Collective: Krum on shares; reveals nothing.

    Returns ``(selected, one_hot)``: the shared ``(numel,)`` update with the lowest Krum
    score (ties: lowest holder index, as :func:`smpc_gym.federated.robust.krum`) and the
    shared one-hot ``(N,)`` of its holder (precision 0), for further secure computation.
    Needs ``N >= 2f + 3`` holders.
    """
    n = _check_krum(ctx, f)
    if update is not None:
        # scores live on the ring at scale 2**(2p) and must stay below 2**62:
        # k * ||x_i - x_j||² <= 4 k max ||x||² < 2**(62 - 2p)
        p = int(ctx.crypten.cfg.encoder.precision_bits)
        k = n - f - 2
        sq = float(update.detach().to(torch.float64).pow(2).sum())
        limit = 2.0 ** (60 - 2 * p) / k
        if not sq < limit:
            raise ValueError(
                f"holder {ctx.rank}: ||update||² = {sq:.3g} is too large for Krum on shares "
                f"with {p}-bit fixed point and {k} neighbours (limit {limit:.3g}); clip updates"
            )
    rows = share_updates(ctx, update, numel)
    d2, pairs = pairwise_sq_distances(ctx, rows)
    scores = _krum_scores_on_shares(ctx, d2, pairs, n, n - f - 2)
    hot = oblivious_argmin(ctx, scores)
    # oblivious selection: one-hot (scale 1) x updates: exact, one multiplication round
    selected = (hot.unsqueeze(1) * ctx.crypten.stack(rows)).sum(0)
    return selected, hot


def secure_krum(
    ctx: PartyContext, update: torch.Tensor | None, numel: int, f: int, dst: int = COORDINATOR
) -> torch.Tensor | None:
    """Collective: Krum's selected update, revealed on ``dst`` only (float64; ``None``
    elsewhere). Not revealed to anyone: the distances, the scores and *which* holder was
    selected (see the module docstring for why)."""
    selected, _ = secure_krum_shares(ctx, update, numel, f)
    out = selected.get_plain_text(dst=dst)
    return None if ctx.rank != dst else out.to(torch.float64)


def plaintext_gather_rule(
    ctx: PartyContext, update: torch.Tensor | None, numel: int, rule: str, f: int
) -> torch.Tensor | None:
    """The plaintext baseline in the same processes (collective): every holder sends its
    update to the coordinator in the clear, which applies
    :func:`smpc_gym.federated.robust.aggregate` (``rule``, ``f``). Coordinator: the
    aggregate; others: ``None``."""
    from smpc_gym.federated.robust import aggregate
    from smpc_gym.secure.comm import gather_tensors

    x = update if update is not None else torch.zeros(numel, dtype=torch.float64)
    got = gather_tensors(ctx, x.to(torch.float64), dst=COORDINATOR)
    if got is None:
        return None
    return aggregate(rule, torch.stack(got[1:]), f)


SECURE_RULES = ("median", "trimmed_mean", "krum")


def secure_rule(
    ctx: PartyContext, update: torch.Tensor | None, numel: int, rule: str, f: int
) -> torch.Tensor | None:
    """Dispatch to the secure version of ``rule`` (one of :data:`SECURE_RULES`); the result
    is revealed to the coordinator only."""
    if rule == "median":
        return secure_coordinate_median(ctx, update, numel)
    if rule == "trimmed_mean":
        return secure_trimmed_mean(ctx, update, numel, f)
    if rule == "krum":
        return secure_krum(ctx, update, numel, f)
    raise ValueError(f"secure rule must be one of {SECURE_RULES}, got {rule!r}")


def _party(ctx: PartyContext, updates: torch.Tensor, rule: str, f: int) -> dict[str, Any]:
    numel = updates.shape[1]
    # each holder only ever touches its own row
    mine = None if ctx.rank == COORDINATOR else updates[ctx.rank - 1].clone()
    ctx.barrier()
    ctx.comm.reset_communication_stats()
    t0 = time.perf_counter()
    plain = plaintext_gather_rule(ctx, mine, numel, rule, f)
    t_plain = time.perf_counter() - t0
    plain_stats = ctx.comm_stats()
    ctx.barrier()
    ctx.comm.reset_communication_stats()
    t0 = time.perf_counter()
    out = secure_rule(ctx, mine, numel, rule, f)
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
    then the plaintext rule, :func:`plaintext_gather_rule`) in the same group.

    Returns ``{"result", "plain_result", "secure_s", "plain_s", "bytes", "rounds",
    "plain_bytes", "plain_rounds"}``: the coordinator's outputs and wall times, and the
    coordinator's communication counters (bytes it sent and received, rounds).
    """
    from smpc_gym.secure.runtime import PartyConfig, launch_local

    if rule not in SECURE_RULES:
        raise ValueError(f"secure rule must be 'median', 'trimmed_mean' or 'krum', got {rule!r}")
    if updates.dim() != 2 or updates.shape[0] < 2:
        raise ValueError(f"updates must be (N >= 2, D), got shape {tuple(updates.shape)}")
    from smpc_gym.federated.robust import min_holders

    need = min_holders(rule, f)
    if updates.shape[0] < need:
        raise ValueError(
            f"{rule} with f={f} Byzantine holders needs N >= {need}, got N={updates.shape[0]}"
        )
    world = updates.shape[0] + 1
    cfg = config if config is not None else PartyConfig(world_size=world)
    res = launch_local(_party, world, (updates.detach().to(torch.float64), rule, f), config=cfg)
    return res[COORDINATOR]
