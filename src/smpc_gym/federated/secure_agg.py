"""Secure aggregation: only the sum (or mean) of the holders' updates is revealed.

Roles and ranks
---------------
A round runs in one process group (see :mod:`smpc_gym.secure.runtime`) of
``world_size = n_holders + 1`` parties: **rank 0 is the model coordinator**, ranks
``1..n_holders`` are the **data holders**. The coordinator holds no update; it is an extra
party rather than one of the holders because a coordinator that also held an update could
subtract its own from the revealed sum, which for two holders *is* the other holder's
update. As an extra party it learns the aggregate and nothing else. (Secure aggregation
needs no Beaver triples; the process group still gets the runtime's default dealer.)

Protocol (:class:`SecureAggregator`, :func:`secure_sum`)
--------------------------------------------------------
0. *Setup, once per party context*: each party draws a fresh 256-bit key with
   ``os.urandom`` and sends it to the next party in the ring (rank ``i+1 mod P``); it
   receives the previous party's key. Party ``i`` thus shares ``k(i-1, i)`` with its
   previous and ``k(i, i+1)`` with its next neighbour — the pairwise-seed layout of
   CrypTen's ``PRZS``, but with full 256-bit keys from the OS CSPRNG (CrypTen's own pairwise
   seeds are 64-bit Mersenne-Twister seeds). Like CrypTen's seed exchange, this assumes
   private point-to-point channels (run gloo over a VPN/TLS tunnel across machines).
1. *Offline (mask) phase* — :meth:`SecureAggregator.prepare`, independent of the data:
   ``z_i = G(k(i-1, i), ν) - G(k(i, i+1), ν)`` with ``G`` AES-256-CTR whose 16-byte
   initial counter block is ``ν = (aggregator instance, round, 0)``, so every round of every
   aggregator uses a distinct keystream under each key (a mask is never reused). The ``z_i``
   sum to zero in the int64 ring, and ``z_i`` is uniformly random to anyone lacking one of
   party *i*'s two keys. The keystream is written straight into a preallocated int64
   buffer (no intermediate copies; buffers are reused across rounds).
2. *Online phase* — :meth:`SecureAggregator.sum`: each party encodes its update in
   CrypTen's fixed point (16 fractional bits by default): ``e_i = round(x_i * 2**16)`` (a
   party without an update uses ``e_i = 0``) and adds it into the mask buffer in place:
   ``s_i = e_i + z_i``. The ``s_i`` form an additive secret sharing of ``sum_i e_i``:
   exactly how ``crypten.cryptensor(x, src=i)`` masks an input, but all holders' inputs ride
   on *one* zero-sharing, so there is no per-holder communication at all. One extra ring
   element with ``e = 0`` rides along: its revealed value must be 0, which detects parties
   whose masks are out of step (e.g. aggregators created in different orders) instead of
   returning a silently wrong sum.
3. The shares are summed onto the coordinator with one ``reduce`` (``dst=0``), or onto all
   parties with ``all_reduce`` (``dst=None``), in place in the mask buffer (counted in
   CrypTen's communication counters), and decoded there.

If :meth:`~SecureAggregator.prepare` was not called, :meth:`~SecureAggregator.sum` makes
the mask itself (the *total* cost). Calling it ahead — e.g. before local training, as
:mod:`smpc_gym.federated.rounds` does — leaves only the online phase on the critical path,
as in any offline/online MPC protocol. :func:`secure_sum` keeps one aggregator per vector
length in ``ctx.scratch``, so buffers and keys are reused across calls.

Cost: one ``reduce`` of ``d + 1`` int64 values (8 bytes per parameter per holder) and two
AES-CTR keystreams of ``8 d`` bytes per party: the same traffic pattern as a plaintext
reduction (which sends 4-byte floats), hence the benchmark's small ratio. Two keystreams per
party is the minimum for this construction: a holder's mask must depend on keys shared with
two *different* parties, or its single key-partner could unmask it.

What is revealed to whom (semi-honest, non-colluding parties)
-------------------------------------------------------------
* The coordinator (``dst=0``) learns ``sum_i x_i`` (and, for :func:`secure_weighted_mean`,
  ``sum_i w_i``); it never receives an individual ``x_i`` or an individual share in the clear
  (``tests/test_secure_aggregation.py`` instruments what it receives and decrypts).
* A holder learns nothing from the protocol beyond what it may deduce from the aggregate;
  partial sums that pass through it in the reduction tree are masked by pairwise seeds it
  does not hold, except that a party through which all *other* shares pass may learn the
  aggregate itself — which the coordinator publishes as the next global model anyway.
* Collusion: two parties that are a holder's ring neighbours (ranks ``i-1`` and ``i+1``)
  together know both its seeds and can unmask its update. This is the same guarantee as
  CrypTen's own input sharing (it uses the same zero-sharing); deployments that must
  tolerate collusion need a dealer or Bonawitz et al.'s full protocol.
* Dropouts: a holder that dies breaks the gloo process group, so the round cannot finish
  in that group; :mod:`smpc_gym.federated.rounds` abandons it or re-runs it without the
  failed holder, per configuration.

Baselines in the same module: :func:`plaintext_allreduce_mean` (each process all-reduces
its update in the clear: the communication baseline of the benchmark) and
:func:`plaintext_mean` (in one process).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from smpc_gym.secure.runtime import PartyContext

__all__ = [
    "COORDINATOR",
    "RING_BITS",
    "SecureAggregator",
    "holder_ranks",
    "plaintext_allreduce_mean",
    "plaintext_mean",
    "prepare_secure_sum",
    "secure_mean",
    "secure_sum",
    "secure_weighted_mean",
    "zero_share",
]

#: The coordinator's rank in an aggregation group.
COORDINATOR = 0
#: Supported share rings: int64 (CrypTen's) and int32.
RING_BITS = (64, 32)

_SCRATCH = __name__  # key of this module's state in ``PartyContext.scratch``


def holder_ranks(world_size: int) -> list[int]:
    """The data holders' ranks in a group whose rank 0 is the coordinator."""
    return list(range(1, world_size))


def _check_input(
    ctx: PartyContext, update: torch.Tensor | None, numel: int | None
) -> tuple[int, torch.Tensor | None]:
    if update is not None:
        if not torch.is_tensor(update) or update.dim() != 1:
            raise ValueError(
                "update must be a 1-D tensor (use flatten_state for state dicts), got "
                f"{type(update).__name__} of shape {tuple(getattr(update, 'shape', ()))}"
            )
        if numel is not None and numel != update.numel():
            raise ValueError(f"update has {update.numel()} elements but numel={numel}")
        return update.numel(), update
    if numel is None:
        raise ValueError("a party without an update must pass numel (the update length)")
    return numel, None


@dataclass
class _PairwiseKeys:
    """This party's AES keys shared with its previous / next ring neighbour."""

    prev: bytes
    next: bytes
    instances: int = 0  # aggregators (and zero_share calls) created so far

    def new_instance(self) -> int:
        i = self.instances
        if i >= 2**32:
            raise RuntimeError("more than 2**32 mask instances on one key pair; re-key")
        self.instances += 1
        return i


def _pairwise_keys(ctx: PartyContext) -> _PairwiseKeys:
    """The party's pairwise keys, exchanged on first use (collective: every party must get
    here in the same call; afterwards purely local)."""
    state = ctx.scratch.setdefault(_SCRATCH, {})
    keys = state.get("keys")
    if keys is None:
        comm = ctx.comm
        nxt, prv = (ctx.rank + 1) % ctx.world_size, (ctx.rank - 1) % ctx.world_size
        mine = os.urandom(32)  # OS CSPRNG, never a seeded PRNG
        req = comm.isend(torch.frombuffer(bytearray(mine), dtype=torch.int64), nxt)
        got = comm.recv(torch.empty(4, dtype=torch.int64), prv)
        req.wait()
        keys = state["keys"] = _PairwiseKeys(prev=got.numpy().tobytes(), next=mine)
    return keys


def _keystream_into(key: bytes, nonce: bytes, zeros: bytes, out: torch.Tensor) -> None:
    """Write the AES-256-CTR keystream of ``len(zeros)`` bytes into ``out``'s memory
    (``out`` needs 15 bytes of slack past that: OpenSSL's ``update_into`` contract)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    enc.update_into(zeros, memoryview(out.numpy()).cast("B"))  # type: ignore[arg-type]


def _zero_share_into(
    keys: _PairwiseKeys,
    instance: int,
    round_: int,
    zeros: bytes,
    out: torch.Tensor,
    tmp: torch.Tensor,
) -> torch.Tensor:
    """``out[:m] = G(k_prev, ν) - G(k_next, ν)`` in ``out``'s integer ring (``m`` =
    ``len(zeros)`` / the element size), in place."""
    if not 0 <= round_ < 2**32:
        raise RuntimeError(f"round {round_} out of range for the 32-bit nonce field; re-key")
    m = len(zeros) // out.element_size()
    nonce = struct.pack(">II", instance, round_) + bytes(8)  # 64-bit block counter from 0
    _keystream_into(keys.prev, nonce, zeros, out)
    _keystream_into(keys.next, nonce, zeros, tmp)
    return out[:m].sub_(tmp[:m])


def zero_share(ctx: PartyContext, n: int) -> torch.Tensor:
    """This party's share of a fresh pseudo-random sharing of zero (collective, no
    communication after the one-off key exchange): the shares of all parties sum to 0 in
    the int64 ring, each is ``G(k_prev, ν) - G(k_next, ν)`` with ``G`` AES-256-CTR under
    the 256-bit pairwise keys and a nonce ``ν`` never used before. Every party must call it
    (and create aggregators) in the same order."""
    keys = _pairwise_keys(ctx)
    out = torch.empty(n + 2, dtype=torch.int64)
    tmp = torch.empty(n + 2, dtype=torch.int64)
    # instance numbers are shared with SecureAggregator, so nonces never repeat
    return _zero_share_into(keys, keys.new_instance(), 0, bytes(8 * n), out, tmp).clone()


class SecureAggregator:
    """Secure sum of one fixed-length vector per party, reusable round after round.

    Collective: every party of the group constructs one with the same ``numel`` (in the
    same order relative to other aggregators) and calls :meth:`sum` the same number of
    times. Holds the preallocated buffers (mask, keystream, encoding scratch) so a round
    allocates only its output. See the module docstring for the protocol.

    Args:
        ctx: this party's runtime context (its pairwise keys are exchanged on first use).
        numel: the vector length ``d``.
        ring_bits: 64 (default: CrypTen's int64 ring, ``|x| < 2**(62 - precision) / P``)
            or 32 (an int32 ring: half the bytes on the wire and half the keystream, the
            same perfect hiding of values in that ring, but only
            ``|x| < 2**(30 - precision) / P`` — about ``16384 / P`` with 16 fractional
            bits, checked). All parties must use the same.
    """

    def __init__(self, ctx: PartyContext, numel: int, *, ring_bits: int = 64) -> None:
        if not isinstance(numel, int) or numel < 0:
            raise ValueError(f"numel must be an integer >= 0, got {numel!r}")
        if ring_bits not in RING_BITS:
            raise ValueError(f"ring_bits must be one of {RING_BITS}, got {ring_bits!r}")
        self.ctx = ctx
        self.numel = numel
        self.ring_bits = ring_bits
        dtype = torch.int64 if ring_bits == 64 else torch.int32
        self._keys = _pairwise_keys(ctx)
        self.instance = self._keys.new_instance()
        #: masks consumed so far (the round number of the next mask)
        self.rounds = 0
        self._prepared = False
        m = numel + 1  # the update plus one integrity element (always 0)
        self._zeros = bytes(ring_bits // 8 * m)
        slack = 128 // ring_bits  # 16 bytes of slack for update_into
        self._mask = torch.empty(m + slack, dtype=dtype)
        self._work = torch.empty(m + slack, dtype=dtype)
        self._scratch: dict[torch.dtype, torch.Tensor] = {}

    @property
    def prepared(self) -> bool:
        """Whether the next round's mask has been made (offline phase done)."""
        return self._prepared

    def prepare(self) -> None:
        """Offline phase: make the next round's mask (no communication; independent of the
        data). Idempotent until the mask is consumed by :meth:`sum`."""
        if not self._prepared:
            _zero_share_into(
                self._keys, self.instance, self.rounds, self._zeros, self._mask, self._work
            )
            self._prepared = True

    def sum(
        self, update: torch.Tensor | None, *, dst: int | None = COORDINATOR
    ) -> torch.Tensor | None:
        """Online phase: reveal ``sum`` of every party's ``update`` on ``dst`` only.

        Args:
            update: this party's private 1-D vector of length ``numel``, or ``None`` for a
                party with no input (the coordinator).
            dst: the rank that learns the sum, or ``None`` for every party.

        Returns:
            The float64 sum on ``dst`` (every party if ``dst is None``), ``None`` elsewhere.
            Each input is rounded to ``2**-precision`` (CrypTen's
            ``cfg.encoder.precision_bits``, 16 by default), so the sum's error is at most
            ``n_parties * 2**-(precision + 1)``; inputs must satisfy
            ``|x| < 2**(ring_bits - 2 - precision) / world_size`` (checked) to avoid ring
            wrap-around.
        """
        n, x = _check_input(self.ctx, update, self.numel)
        if n != self.numel:
            raise ValueError(f"this aggregator sums {self.numel}-vectors, got {n}")
        precision = int(self.ctx.crypten.cfg.encoder.precision_bits)
        scale = float(2**precision)
        if x is not None:
            x = x.detach()
            if x.dtype not in (torch.float32, torch.float64):  # e.g. ints, float16
                x = x.to(torch.float64)
            limit = 2.0 ** (self.ring_bits - 2 - precision) / self.ctx.world_size
            if n:
                lo, hi = torch.aminmax(x)
                peak = max(-float(lo), float(hi))
                if not peak < limit:  # also catches NaN
                    raise ValueError(
                        f"party {self.ctx.rank}: |update| reaches {peak:.3g}, too large for "
                        f"{precision}-bit fixed point in a {self.ring_bits}-bit ring with "
                        f"{self.ctx.world_size} parties (limit {limit:.3g})"
                    )
        self.prepare()  # no-op when the offline phase already ran
        share = self._mask[: n + 1]
        if x is not None and n:
            # Scaling by a power of two is exact in float32/64, and so is rounding, so
            # encoding in the input's own dtype gives the same integers as float64.
            tmp = self._scratch.get(x.dtype)
            if tmp is None:
                tmp = self._scratch[x.dtype] = torch.empty(n, dtype=x.dtype)
            torch.mul(x, scale, out=tmp).round_()
            enc = self._work[:n]
            enc.copy_(tmp)  # float -> ring integers into the (free) keystream buffer
            share[:n].add_(enc)
        self._prepared = False  # the mask is consumed: never reused
        self.rounds += 1
        revealed = _reveal_in_place(self.ctx, share, dst)
        if revealed is None:
            return None
        if int(revealed[n]) != 0:
            raise RuntimeError(
                f"secure aggregation masks are out of step on party {self.ctx.rank} (the "
                "integrity element revealed non-zero): every party must create aggregators "
                "and call sum()/zero_share() in the same order with the same lengths"
            )
        return revealed[:n].to(torch.float64).mul_(1.0 / scale)  # exact: power of two


def _reveal_in_place(
    ctx: PartyContext, share: torch.Tensor, dst: int | None
) -> torch.Tensor | None:
    """Sum ``share`` over the parties onto ``dst`` (all if ``None``) *in place*.

    CrypTen's communicator would first clone the (scratch) buffer, which for a fresh
    multi-megabyte allocation costs page faults comparable to the transfer itself; the
    bytes are counted in CrypTen's counters exactly as its own ``reduce``/``all_reduce``
    count them.
    """
    import torch.distributed as dist

    comm = ctx.comm
    n = share.nelement() * share.element_size() / 8  # CrypTen counts 8-byte elements
    if ctx.crypten.cfg.communicator.verbose:
        if dst is None:
            comm._log_communication(2 * n)  # ring all-reduce: send and receive one tensor
        else:
            comm._log_communication(n * (ctx.world_size - 1 if ctx.rank == dst else 1))
    if dst is None:
        dist.all_reduce(share, group=comm.main_group)
        return share
    dist.reduce(share, dst, group=comm.main_group)
    return share if ctx.rank == dst else None


def _aggregator(ctx: PartyContext, numel: int, ring_bits: int = 64) -> SecureAggregator:
    aggs = ctx.scratch.setdefault(_SCRATCH, {}).setdefault("aggregators", {})
    agg = aggs.get((numel, ring_bits))
    if agg is None:
        agg = aggs[(numel, ring_bits)] = SecureAggregator(ctx, numel, ring_bits=ring_bits)
    return agg


def prepare_secure_sum(ctx: PartyContext, numel: int, *, ring_bits: int = 64) -> None:
    """Offline phase of the next :func:`secure_sum` of a ``numel``-vector (collective in
    order, no communication after the one-off key exchange): call it while waiting for the
    data, e.g. before local training."""
    _aggregator(ctx, numel, ring_bits).prepare()


def secure_sum(
    ctx: PartyContext,
    update: torch.Tensor | None,
    *,
    numel: int | None = None,
    dst: int | None = COORDINATOR,
    ring_bits: int = 64,
) -> torch.Tensor | None:
    """Sum every party's 1-D ``update`` revealing only the sum (collective: all parties call).

    Args:
        ctx: this party's runtime context.
        update: this party's private vector, or ``None`` for a party with no input (the
            coordinator); it must then pass ``numel``.
        numel: the vector length (checked against ``update`` when both are given).
        dst: rank that learns the sum (default the coordinator), or ``None`` for all.
        ring_bits: 64 (default) or 32 (half the traffic, small range; see
            :class:`SecureAggregator`).

    Returns:
        The float64 sum on ``dst`` (every party if ``dst is None``), ``None`` elsewhere; see
        :meth:`SecureAggregator.sum` for the fixed-point error and range. Uses this
        context's cached :class:`SecureAggregator` for ``numel`` (buffers and keys reused).
    """
    n, x = _check_input(ctx, update, numel)
    return _aggregator(ctx, n, ring_bits).sum(x, dst=dst)


def secure_mean(
    ctx: PartyContext,
    update: torch.Tensor | None,
    n_holders: int,
    *,
    numel: int | None = None,
    dst: int | None = COORDINATOR,
) -> torch.Tensor | None:
    """Unweighted mean over ``n_holders`` of the revealed :func:`secure_sum` (float64)."""
    if n_holders < 1:
        raise ValueError(f"n_holders must be >= 1, got {n_holders}")
    s = secure_sum(ctx, update, numel=numel, dst=dst)
    return None if s is None else s / n_holders


def secure_weighted_mean(
    ctx: PartyContext,
    update: torch.Tensor | None,
    weight: float | None,
    *,
    numel: int | None = None,
    dst: int | None = COORDINATOR,
) -> tuple[torch.Tensor, float] | None:
    """FedAvg on shares: reveals ``sum_i w_i x_i / sum_i w_i`` and ``sum_i w_i`` only.

    Each holder shares ``[w_i * x_i, w_i]`` in one vector; the coordinator (or everyone if
    ``dst is None``) gets ``(weighted_mean, total_weight)``; other parties get ``None``.
    A party without an update passes ``update=None, weight=None`` and ``numel``.
    """
    if (update is None) != (weight is None):
        raise ValueError("pass both update and weight, or neither (coordinator)")
    if weight is not None and not weight >= 0:
        raise ValueError(f"weight must be >= 0, got {weight!r}")
    if update is not None and weight is not None:
        w = torch.tensor([float(weight)], dtype=torch.float64)
        s = secure_sum(ctx, torch.cat([update.detach().to(torch.float64) * w, w]), dst=dst)
    else:
        if numel is None:
            raise ValueError("a party without an update must pass numel (the update length)")
        s = secure_sum(ctx, None, numel=numel + 1, dst=dst)
    if s is None:
        return None
    total = float(s[-1])
    if total <= 0:
        raise ValueError(f"the holders' weights sum to {total}; need a positive total")
    return s[:-1] / total, total


def plaintext_allreduce_mean(
    ctx: PartyContext, update: torch.Tensor | None, n_holders: int, *, numel: int | None = None
) -> torch.Tensor:
    """Baseline: all-reduce the updates *in the clear* over the same process group.

    Every party (holders and coordinator, which contributes zeros) ends with the mean; no
    privacy at all. Runs on CrypTen's communicator so its bytes/rounds are counted alike.
    """
    n, x = _check_input(ctx, update, numel)
    # (the communicator's all_reduce works on a copy, so the caller's tensor is untouched)
    t = x.detach().to(torch.float32) if x is not None else torch.zeros(n)
    return ctx.comm.all_reduce(t) / n_holders


def plaintext_mean(
    updates: Sequence[torch.Tensor], weights: Sequence[float] | None = None
) -> torch.Tensor:
    """(Weighted) mean of 1-D updates in one process: the reference for secure aggregation."""
    if len(updates) == 0:
        raise ValueError("need at least one update")
    stacked = torch.stack([u.detach().to(torch.float64) for u in updates])
    if weights is None:
        return stacked.mean(0)
    w = torch.as_tensor(list(weights), dtype=torch.float64)
    if len(w) != len(updates) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"need one weight >= 0 per update with a positive sum, got {list(weights)}"
        )
    return (w[:, None] * stacked).sum(0) / w.sum()
