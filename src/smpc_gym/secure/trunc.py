"""Exact two-party fixed-point truncation: no wrap-around, ever, for ``|x| < 2^62``.

CrypTen's two-party truncation divides each party's share locally. It is wrong (by about
``2^64 / d``, i.e. ``2^48`` at 16 fractional bits) whenever the two shares wrap around
the ring, which happens with probability about ``|x| / 2^63`` per element. This module
replaces it with a protocol that is correct for every ``|x| < 2^62`` (raw ring units):

1. **Known MSB.** Party 0 adds ``2^62`` to its share, so the shared value
   ``x' = x + 2^62`` lies in ``(0, 2^63)``: its top bit is 0. Read as unsigned 64-bit
   words, the shares then wrap (``x'₀ + x'₁ = x' + w·2^64``) exactly when at least one
   share has its top bit set: ``w = a₀ OR a₁`` with ``aᵢ = msb(x'ᵢ)``, a bit each party
   knows of its own share.
2. **Local shift.** Each party shifts its share logically: ``yᵢ = x'ᵢ >>> f``. Then
   ``y₀ + y₁ − w·2^(64−f) − 2^(62−f) = ⌊x / 2^f⌋ − c`` with ``c ∈ {0, 1}`` the carry of
   the two discarded low parts. With shares uniform, ``P(c = 1) = 1 − (x mod 2^f + 1)/2^f``,
   so party 0 also adds 1: the result ``⌊x / 2^f⌋ + 1 − c`` is ``x / 2^f`` rounded
   *stochastically* to one of its two neighbours, unbiased (plain ``⌊·⌋ − c`` is 1 unit
   low on average, which drifts Adam's state over many steps).
3. **One OR of two private bits.** ``w = a₀ + a₁ − a₀·a₁``; the cross product is computed
   with a correlated pair from the dealer: party 0 holds a random bit ``u`` and ``t₀``,
   party 1 a random bit ``v`` and ``t₁``, with ``t₀ + t₁ = u·v (mod 2^k)``. Party 0
   sends ``e = a₀ ⊕ u``, party 1 sends ``g = a₁ ⊕ v`` (one bit each, bit-packed, one
   round); with ``a₀ = e + u(1 − 2e)`` and ``a₁ = g + v(1 − 2g)`` each party computes its
   additive share of ``a₀·a₁`` locally. Only ``w mod 2^f`` matters (it is multiplied by
   ``2^(64−f)``), so ``k = f`` bits suffice; the pairs are dealt at ``f`` rounded up to
   whole bytes (``k = 8·⌈f/8⌉``), each truncation of a batch at its own width.

Cost: one round and ``⌈N/64⌉`` words each way for ``N`` truncations done together
(:func:`trunc_many` batches any number of tensors into that one round). What is
revealed: party 1 sees ``e = a₀ ⊕ u`` and party 0 sees ``g = a₁ ⊕ v``, each a bit masked
by a uniform bit it does not know: nothing. The dealer sends ``t₀`` and receives nothing.

Where the correlated pairs come from:

* ``TTP`` provider (a dealer process holding no data): ``u`` comes from the generator
  party 0 shares with the dealer, ``v`` and ``t₁`` from the one party 1 shares with it
  (as CrypTen's own dealer does for Beaver triples); the dealer recomputes them and sends
  ``t₀`` (``k/8`` bytes per element) to party 0. The dealer process must be
  :class:`smpc_gym.secure.dealer.DealerServer`.
* ``TFP`` provider (the explicit opt-out in which party 0 is trusted with all correlated
  randomness): party 0 plays the dealer, drawing ``v`` and ``t₁`` from the generator it
  shares with party 1 (``u`` from its own), with no communication; as with TFP's Beaver
  triples, party 0 could unmask party 1's bit if it cheated.

:func:`exact_truncation` is a context in which CrypTen's own ``ArithmeticSharedTensor
.div_`` by a public power of two (every fixed-point multiplication CrypTen does for us)
also uses this protocol, so nothing in its scope truncates locally. :func:`set_mode`
switches back to CrypTen's local truncation for cost comparisons (``"local"``).
``STATS`` counts what was truncated how, so tests can check that nothing fell through.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from smpc_gym.secure._crypten import crypten_module
from smpc_gym.secure.channel import current
from smpc_gym.secure.ring import (
    draw_bits,
    draw_ring,
    pack_bits,
    unpack_bits,
)

__all__ = [
    "MAX_ABS_RAW",
    "MODES",
    "STATS",
    "count_local_wraps",
    "exact_truncation",
    "get_mode",
    "local_trunc",
    "mul_public",
    "private_product",
    "set_mode",
    "trunc_many",
]

#: Truncation is exact for shared raw values with ``|x| < MAX_ABS_RAW`` (= 2^62): values
#: below 2^(62 − 32) = 2^30 for a product of two 16-bit fixed-point numbers.
MAX_ABS_RAW = 1 << 62
#: ``"exact"`` (this module's protocol) or ``"local"`` (CrypTen's: fails at random).
MODES = ("exact", "local")
_mode = {"value": "exact"}
#: Counters: ``exact`` elements, ``local`` elements, ``rounds`` of exact truncation, and
#: ``would_wrap``: exact truncations that CrypTen's local one would have got wrong (counted
#: only under :func:`count_local_wraps`).
STATS = {"exact": 0, "local": 0, "rounds": 0, "would_wrap": 0}
_count = {"on": False}


def count_local_wraps(on: bool) -> None:
    """Benchmarks only: count in ``STATS["would_wrap"]`` the exact truncations that local
    truncation would have got wrong. **This reveals every truncated value to both
    parties** (they exchange their full shares, uncounted): never in training."""
    _count["on"] = bool(on)


def set_mode(mode: str) -> None:
    """Choose how :func:`trunc_many` truncates: ``"exact"`` (default) or ``"local"``.

    ``"local"`` is CrypTen's two-party truncation, kept only to measure what the
    protection costs and what it prevents; never use it for training.
    """
    if mode not in MODES:
        raise ValueError(f"truncation mode must be one of {MODES}, got {mode!r}")
    _mode["value"] = mode


def get_mode() -> str:
    """The current truncation mode (see :func:`set_mode`)."""
    return _mode["value"]


# ----------------------------------------------------------------------------- helpers
def _bits_for(f: int) -> int:
    """The width of a truncation pair's ``t`` for a truncation by ``2^f``: ``f`` rounded
    up to whole bytes (only ``w mod 2^f`` is used)."""
    return 8 * -(-f // 8)


def _log2_exact(d: int) -> int | None:
    d = int(d)
    if d > 1 and d & (d - 1) == 0:
        return d.bit_length() - 1
    return None


def local_trunc(share: torch.Tensor, d: int | torch.Tensor) -> torch.Tensor:
    """CrypTen's two-party truncation of one party's share (fails at random: see above)."""
    return share.div(d, rounding_mode="trunc")


# ----------------------------------------------------------------------------- randomness
def _correlated(n: int, nbits: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This party's ``(bit, t)`` of ``n`` pairs with ``t₀ + t₁ = u·v (mod 2^nbits)``
    (``bit`` uint8 0/1, ``t`` int64)."""
    crypten = crypten_module()
    from crypten.mpc.provider.tfp_provider import TrustedFirstParty
    from crypten.mpc.provider.ttp_provider import TrustedThirdParty

    provider = crypten.mpc.get_default_provider()
    if isinstance(provider, TrustedThirdParty):
        from smpc_gym.secure.dealer import pools

        return pools().trunc_pairs(n, nbits)
    if isinstance(provider, TrustedFirstParty):
        # party 0's "next" generator is party 1's "prev" generator (CrypTen's PRZS seeds)
        byte = torch.uint8
        if rank == 0:
            u = draw_bits(n, crypten.generators["local"][torch.device("cpu")], byte)
            shared = crypten.generators["next"][torch.device("cpu")]
            v = draw_bits(n, shared, byte)
            t1 = draw_ring(n, shared)
            return u, (u & v) - t1
        shared = crypten.generators["prev"][torch.device("cpu")]
        v = draw_bits(n, shared, byte)
        return v, draw_ring(n, shared)
    raise ValueError(
        f"exact truncation needs the TTP or TFP provider, got {type(provider).__name__}"
    )


def _exchange(words: torch.Tensor, rank: int, log: bool = True) -> torch.Tensor:
    """Send ``words`` to the other party and receive its (same-sized) words: one round.

    Over the parties' direct channel (:mod:`smpc_gym.secure.channel`) when the runtime
    set one up, else through gloo; counted alike either way.
    """
    comm = crypten_module().communicator.get()
    t0 = time.perf_counter()
    channel = current()
    if channel is not None:
        out = channel.exchange(words)
    else:
        import torch.distributed as dist

        other = 1 - rank
        out = torch.empty_like(words)
        reqs = [
            dist.isend(words.contiguous(), other, group=comm.main_group),
            dist.irecv(out, other, group=comm.main_group),
        ]
        for r in reqs:
            if r is None:  # torch returns None only to a process outside the group
                raise RuntimeError("this process is not in the parties' process group")
            r.wait()
    if log:
        comm._log_communication(2 * words.numel())  # one round: sent + received words
        comm._log_communication_time(time.perf_counter() - t0)
    return out


# ----------------------------------------------------------------------------- protocol
def private_product(a: torch.Tensor, nbits: int, rank: int) -> torch.Tensor:
    """This party's additive share (mod ``2^nbits``) of ``a₀·a₁``, elementwise, where
    ``a`` is this party's *private* 0/1 vector (bool or any integer dtype): one round, one bit
    each way. Returns int64.

    With a correlated pair (``u``, ``t₀``) / (``v``, ``t₁``), ``t₀ + t₁ = u·v``: party 0
    sends ``e = a₀ ⊕ u``, party 1 sends ``g = a₁ ⊕ v``, and since ``a₀ = e + u(1 − 2e)``,
    ``a₁ = g + v(1 − 2g)``, ``a₀a₁ = eg + g(1−2e)u + e(1−2g)v + (1−2e)(1−2g)uv``: each
    party computes its terms locally. Each sent bit is masked by a uniform bit the
    receiver does not know.
    """
    bit, t = _correlated(int(a.numel()), nbits, rank)  # bit: uint8
    return _product(a, bit, t, rank)


def _product(a: torch.Tensor, bit: torch.Tensor, t: torch.Tensor, rank: int) -> torch.Tensor:
    """:func:`private_product` with the correlated pairs ``(bit, t)`` given."""
    n = int(a.numel())
    mine = a.to(torch.uint8) ^ bit
    theirs = unpack_bits(_exchange(pack_bits(mine), rank), n, torch.uint8)
    e, g = (mine, theirs) if rank == 0 else (theirs, mine)
    # (1 − 2e)(1 − 2g) = 1 − 2(e ⊕ g) = ±1; party 0's eg + g(1 − 2e)u = g·(e ⊕ u), party
    # 1's e(1 − 2g)v = ±(e ∧ v) by g. The bits stay uint8 (int8 for the signs) and only
    # the two products with int64 words widen them: ~30% less time than the same
    # arithmetic on int64 bits, and the same words.
    sign = (e ^ g).to(torch.int8).mul_(-2).add_(1)
    if rank == 0:
        small = (g & (e ^ bit)).to(torch.int64)
    else:
        small = (e & bit).to(torch.int8).mul_(g.to(torch.int8).mul_(-2).add_(1)).to(torch.int64)
    return small.add_(t * sign)


def trunc_many(items: Sequence[tuple[torch.Tensor, int]]) -> list[torch.Tensor]:
    """Truncate several shared tensors in **one** round: ``share_i / d_i`` for each item.

    Each item is ``(share, d)``: this party's int64 share of a value ``x`` and a public
    power of two ``d = 2^f`` (``1 ≤ f ≤ 61``). The result shares ``⌊x / d⌋`` or
    ``⌊x / d⌋ + 1`` (unbiased stochastic rounding: error below one unit) for every
    ``|x| < 2^62`` (see the module doc); both parties must call
    it with the same shapes and divisors. In ``"local"`` mode (:func:`set_mode`) it is
    CrypTen's local truncation instead.

    Raises:
        ValueError: if a divisor is not a power of two in ``[2, 2^61]``, or the world
            size is not 2.
    """
    crypten = crypten_module()
    comm = crypten.communicator.get()
    if comm.get_world_size() != 2:
        raise ValueError(
            f"trunc_many is a two-party protocol, world size is {comm.get_world_size()}"
        )
    fs = []
    for share, d in items:
        f = _log2_exact(d)
        if f is None or f > 61:
            raise ValueError(f"truncation divisor must be a power of two in [2, 2^61], got {d}")
        if share.dtype != torch.int64:
            raise ValueError(f"shares must be int64, got {share.dtype}")
        fs.append(f)
    if not items:
        return []
    if _mode["value"] == "local":
        STATS["local"] += sum(int(s.numel()) for s, _ in items)
        return [local_trunc(s, d) for s, d in items]
    rank = comm.get_rank()
    flat = torch.cat([s.reshape(-1) for s, _ in items])
    n = int(flat.numel())
    if n == 0:
        return [s.clone() for s, _ in items]
    if _count["on"]:  # benchmark diagnostics: reveals the values (see count_local_wraps)
        f_el = torch.cat(
            [
                torch.full((int(s.numel()),), f, dtype=torch.int64)
                for (s, _), f in zip(items, fs, strict=True)
            ]
        )
        other = _exchange(flat, rank, log=False)
        x, d_el = flat + other, torch.ones_like(f_el) << f_el
        local = local_trunc(flat, d_el) + local_trunc(other, d_el)  # type: ignore[arg-type]
        want = torch.div(x, d_el, rounding_mode="floor")
        # without a wrap local truncation is off by at most 2 units; a wrap, by ~2^(64-f)
        STATS["would_wrap"] += int(((local - want).abs() > 4).sum())
    if rank == 0:
        flat = flat + MAX_ABS_RAW  # x' = x + 2^62 has top bit 0
    a = (flat < 0).view(torch.uint8)  # msb of this party's share read as unsigned
    # additive share of w = a₀ OR a₁ = a₀ + a₁ − a₀a₁ (mod 2^nbits; only mod 2^f is used):
    # each item's pairs at its own width (consecutive items of one width in one draw), the
    # masked bits of all in one exchange
    runs: list[list[int]] = []  # [elements, width]
    for (share, _), f in zip(items, fs, strict=True):
        k = _bits_for(f)
        if runs and runs[-1][1] == k:
            runs[-1][0] += int(share.numel())
        else:
            runs.append([int(share.numel()), k])
    pairs = [_correlated(m, k, rank) for m, k in runs if m]
    bit, t = pairs[0] if len(pairs) == 1 else (torch.cat(p) for p in zip(*pairs, strict=True))
    w = a - _product(a, bit, t, rank)
    STATS["exact"] += n
    STATS["rounds"] += 1
    res, start = [], 0
    for (share, _), f in zip(items, fs, strict=True):
        k = int(share.numel())
        part = slice(start, start + k)
        start += k
        # logical shift by f (the shift count and masks are Python ints: no per-element
        # tensors of shift counts), minus the wrap, and for party 0 the 2^62 offset; + 1
        # makes the carry's rounding unbiased
        out = ((flat[part] >> f) & ((1 << (64 - f)) - 1)) - (w[part] << (64 - f))
        if rank == 0:
            out -= (1 << 62 >> f) - 1
        res.append(out.reshape(share.shape))
    return res


def mul_public(x: Any, s: float, wide: bool = False) -> Any:
    """``x · s`` for a share ``x`` and a public float ``s``, without 16-bit quantisation of ``s``.

    Multiplies the shares by the integer ``q = round(s·2^k)`` and truncates by ``2^k``
    (exactly, :func:`trunc_many`); ``k ∈ [0, 46]`` keeps ``q`` near ``2^16``, so the
    relative error of ``s`` is about ``2^-16`` even for ``s = 1e-4`` (CrypTen's ``x * s``
    would encode ``s`` with 16 bits: an 8% error there). Correct while the raw product
    ``x·2^16·q`` stays below 2^62, i.e. ``|x·s| < 2^29`` (and ``|x| < 2^29`` for ``s < 1``).

    ``wide=True`` lifts the bound to ``|x| < 2^45`` (``|x·s| < 2^45``) for one more round:
    ``x`` is first split into a high part ``⌊x_raw / 2^24⌋`` and the low 24 bits, each
    multiplied by ``q`` and truncated (together, one round); the result is within two
    units of the grid.
    """
    import math

    if s == 0:
        return x * 0
    k = int(min(max(16 - math.ceil(math.log2(abs(s))), 0), 46))
    q = int(round(s * (1 << k)))
    out = x.clone()
    if not wide:
        raw = out.share * q  # ring multiplication by a public integer
        out.share = trunc_many([(raw, 1 << k)])[0] if k else raw
        return out
    split = 24
    (hi,) = trunc_many([(out.share, 1 << split)])
    lo_q = (out.share - (hi << split)) * q  # the low part is below 2^(split + 1) raw units
    hi_q = hi * q
    todo = ([(lo_q, 1 << k)] if k else []) + ([(hi_q, 1 << (k - split))] if k > split else [])
    done = trunc_many(todo)
    lo_part = done[0] if k else lo_q
    hi_part = done[-1] if k > split else hi_q << (split - k)
    out.share = lo_part + hi_part
    return out


# ----------------------------------------------------------------------------- CrypTen hook
@contextmanager
def exact_truncation() -> Iterator[None]:
    """Make CrypTen's two-party ``ArithmeticSharedTensor.div_`` by a public power of two
    use :func:`trunc_many` while the block runs (restored afterwards).

    Every CrypTen fixed-point multiplication (``x * y``, ``x.square()``, the exp and
    reciprocal approximations, ``x.div(2**k)``) truncates through ``div_``. Divisors that
    are not powers of two keep CrypTen's local truncation and are counted in
    ``STATS["local"]`` (nothing on the secure MADDPG paths divides by one). Nested use
    is fine.
    """
    crypten_module()
    from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor

    original = ArithmeticSharedTensor.div_
    if getattr(original, "_smpc_exact", False):
        yield
        return

    def div_(self: Any, y: Any) -> Any:
        if isinstance(y, float) and y.is_integer():
            y = int(y)
        if isinstance(y, int) and _log2_exact(y) is not None and y <= 1 << 61:
            (self.share,) = trunc_many([(self.share, y)])
            return self
        if isinstance(y, int) and y > 1:
            STATS["local"] += int(self.share.numel())
        return original(self, y)

    div_._smpc_exact = True  # type: ignore[attr-defined]
    ArithmeticSharedTensor.div_ = div_  # type: ignore[method-assign]
    try:
        yield
    finally:
        ArithmeticSharedTensor.div_ = original  # type: ignore[method-assign]
