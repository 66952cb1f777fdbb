"""Exact two-party sign test with dealer-supplied bit pairs: ``[x < 0]`` over the whole ring,
or, cheaper, over a stated range ``[-2^k, 2^k)``.

CrypTen's comparison (``MPCTensor._ltz``) turns each 64-bit additive share into XOR
shares and adds them with a 64-bit parallel-prefix adder: six levels of ANDs on whole
64-bit words, every level sending every word, about 450 bytes per element over both
parties, then a bit-to-arithmetic conversion. Only the *carry into the sign bit* is
needed, and each party knows its own share in the clear. This module computes just that
carry, bit-sliced, in a halving tree:

1. **The sign as a carry.** Read each party's share ``xᵢ`` as a 64-bit word, ``Lᵢ`` its
   low 63 bits. Then ``msb(x) = msb(x₀) ⊕ msb(x₁) ⊕ c`` with
   ``c = [L₀ + L₁ ≥ 2^63]``, the carry out of the low 63 bits. For a two's-complement
   ring element ``[x < 0] = msb(x)``: exact for **every** ``x`` in the ring.

   **Bounded inputs.** If ``x`` is known to lie in ``[-2^k, 2^k)`` (``k < 63``), bit
   ``k`` of ``x`` already is its sign (two's complement: every bit from ``k`` up is 1
   for such a negative ``x``, 0 for a non-negative one), and bit ``k`` of a sum of two
   words depends only on bits ``0 … k`` of the words: ``[x < 0] = x₀_k ⊕ x₁_k ⊕ c``
   with ``c`` the carry out of the low ``k`` bits. The same tree over ``k`` bits
   (``sign_share(…, bits=k)``) is exact for every ``x`` in that range and says nothing
   useful outside it; the callers state their range (:data:`smpc_gym.secure.mpc_nn.ACT_BITS`
   for activations). For ``k = 48`` it takes 200 cross ANDs per element instead of 268
   (6 rounds either way; ``k ≤ 32`` would save one).
2. **The carry tree.** Per bit ``j``: generate ``g_j = L₀_j ∧ L₁_j`` and propagate
   ``p_j = L₀_j ⊕ L₁_j`` (free: each party's bit is its XOR share). Adjacent groups
   combine as ``G = G_hi ⊕ (P_hi ∧ G_lo)``, ``P = P_hi ∧ P_lo``: 63 → 32 → … → 1 groups
   in 6 levels, the last group's ``G`` being ``c``. The bits are *bit-sliced*: row ``j``
   holds bit ``j`` of 64 elements per int64 word, so every level sends only the live
   groups, densely packed.
3. **ANDs from one correlation.** Every AND reduces to *cross ANDs* ``p ∧ q`` of a bit
   ``p`` party 0 holds and a bit ``q`` party 1 holds (an AND of XOR-shared bits is two
   local ANDs and two cross ANDs). For each, a dealer pair gives party 0 a random bit
   ``u`` and ``t₀``, party 1 a random bit ``v`` and ``t₁``, with ``t₀ ⊕ t₁ = u ∧ v``.
   Party 0 sends ``e = p ⊕ u``, party 1 sends ``f = q ⊕ v``; then
   ``p ∧ q = (p ∧ f ⊕ t₀) ⊕ (e ∧ v ⊕ t₁)``, each bracket computed by one party.
4. **Back to arithmetic.** ``sᵢ = msb(xᵢ) ⊕ cᵢ`` are XOR shares of the sign; the
   arithmetic 0/1 share is ``s₀ + s₁ − 2·s₀s₁``, the product from one arithmetic pair
   (:func:`smpc_gym.secure.trunc.private_product`).

Cost: 7 party-to-party rounds for any number of elements (the pairs of bits, 5 tree
levels, 1 conversion; CrypTen's comparison takes 8), and 2 dealer requests where
CrypTen's makes one per AND level. The leaves are pairs of bits, whose ``G`` and ``P``
come from the parties' own bits in one round (:func:`carry_shares`). 268 cross ANDs per
element: ~34 bytes sent by each party plus ~34 bytes from the dealer to party 0. Counted on 4,014 elements (``tests/test_secure_compare.py``),
party 0's sent+received bytes are 4.5× fewer than CrypTen's with the dealer, 5.7× fewer
under ``tfp_player0_sees_all``.

What is revealed: party 1 sees only ``e = p ⊕ u`` and party 0 only ``f = q ⊕ v``,
each masked by a uniform bit from a generator the receiver does not hold; the outputs
are masked by ``t₀``/``t₁``. The dealer (``TTP``, the default) learns only how many pairs
were asked for. Under the ``tfp_player0_sees_all`` opt-out party 0 draws party 1's
``v`` too (as it does for every Beaver triple there), so it could unmask party 1's bits.
"""

from __future__ import annotations

import torch

from smpc_gym.secure._crypten import crypten_module
from smpc_gym.secure.ring import draw_ring, unpack_bits
from smpc_gym.secure.trunc import _exchange, private_product

__all__ = [
    "LOW_BITS",
    "bit_pairs",
    "carry_shares",
    "cross_and",
    "rows_of",
    "sign_bits",
    "sign_share",
]

#: Bits below the sign bit that the carry tree runs over for the whole ring.
LOW_BITS = 63


def bit_pairs(n_words: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This party's ``(mask, t)`` words for ``64·n_words`` cross-AND pairs.

    Packed 64 pairs per int64 word: party 0 gets ``(u, t₀)``, party 1 ``(v, t₁)`` with
    ``t₀ ⊕ t₁ = u ∧ v``. With the ``TTP`` provider the dealer sends ``t₀`` (one word per
    64 pairs) and everything else comes from the generator each party shares with it,
    through the pools of :mod:`smpc_gym.secure.dealer`.
    With ``TFP`` party 0 draws ``v`` and ``t₁`` itself from the generator it shares with
    party 1.
    """
    crypten = crypten_module()
    from crypten.mpc.provider.tfp_provider import TrustedFirstParty
    from crypten.mpc.provider.ttp_provider import TrustedThirdParty

    provider = crypten.mpc.get_default_provider()
    cpu = torch.device("cpu")
    if isinstance(provider, TrustedThirdParty):
        from smpc_gym.secure.dealer import pools

        return pools().bit_pairs(n_words)
    if isinstance(provider, TrustedFirstParty):
        if rank == 0:
            u = draw_ring(n_words, crypten.generators["local"][cpu])
            shared = crypten.generators["next"][cpu]
            v = draw_ring(n_words, shared)
            return u, (u & v) ^ draw_ring(n_words, shared)
        shared = crypten.generators["prev"][cpu]
        v = draw_ring(n_words, shared)
        return v, draw_ring(n_words, shared)
    raise ValueError(f"the sign test needs the TTP or TFP provider, got {type(provider).__name__}")


def cross_and(
    mine: torch.Tensor, rank: int, pairs: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """XOR shares of ``p ∧ q`` (bitwise, packed words) in one round.

    Party 0 passes its bits ``p``, party 1 its bits ``q`` (same shape); ``pairs`` are this
    party's mask and ``t`` words of the same size (from :func:`bit_pairs`).
    """
    mask, t = (x.reshape(mine.shape) for x in pairs)
    sent = mine ^ mask
    got = _exchange(sent.reshape(-1), rank).reshape(mine.shape)
    if rank == 0:  # p ∧ f ⊕ t₀
        return (mine & got) ^ t
    return (got & mask) ^ t  # e ∧ v ⊕ t₁


def rows_of(words: torch.Tensor, nbits: int) -> torch.Tensor:
    """Bit-slice int64 ``words`` (``n`` of them): ``[nbits, ⌈n/64⌉]`` int64, row ``j``
    packing bit ``j`` of 64 consecutive words (bit ``i`` of word ``b`` of row ``j`` is
    bit ``j`` of ``words[64·b + i]``; zero-padded).

    A 64×64 bit-matrix transpose per block of 64 words, vectorised over all blocks: six
    rounds of masked swaps (half-blocks of 32, 16, … 1 bits), a few tensor operations
    over the ``n`` words each.
    """
    n = int(words.numel())
    pad = (-n) % 64
    a = words.reshape(-1)
    a = torch.cat([a, a.new_zeros(pad)]) if pad else a.clone()
    blocks = a.numel() // 64
    j, m = 32, (1 << 32) - 1
    while j:
        v = a.view(blocks, 64 // (2 * j), 2, j)
        lo, hi = v[:, :, 0, :], v[:, :, 1, :]  # rows k and k + j (bit j of k clear)
        t = ((lo >> j) ^ hi) & m  # lo's high j-bit fields against hi's low fields
        lo ^= t << j
        hi ^= t
        j //= 2
        m ^= m << j
        m &= (1 << 64) - 1
        if m >= 1 << 63:  # as a signed int64 constant
            m -= 1 << 64
    return a.view(blocks, 64).t()[:nbits].contiguous()


def _carry_pairs(words: int, nbits: int = LOW_BITS) -> int:
    """How many cross-AND words the carry tree of :func:`carry_shares` uses."""
    k = nbits // 2
    # the leaves (pairs of bits): G from 3 cross ANDs, P from 2 (not for the lowest
    # pair); an odd top bit: its generate
    leaves = 3 * k + 2 * max(k - 1, 0) + nbits % 2
    return (leaves + _tree_pairs(k + nbits % 2)) * words


def _tree_pairs(m: int) -> int:
    """Cross-AND words per word of the halving tree over ``m`` groups."""
    total = 0
    while m > 1:
        k = m // 2
        total += 2 * k + 2 * (k - 1)  # G for every pair, P for all but the lowest pair
        m = k + m % 2
    return total


def carry_shares(low: torch.Tensor, rank: int, nbits: int = LOW_BITS) -> torch.Tensor:
    """XOR shares (int64 0/1, one per element) of ``[L₀ + L₁ ≥ 2^nbits]`` for this party's
    words ``low`` (its low ``nbits`` bits are ``Lᵢ``, the higher bits must be 0);
    ``⌈log₂ nbits⌉`` rounds, one dealer request.

    The leaves are pairs of bits, whose ``(G, P)`` come straight from the parties' own
    bits in one round: with party 0's bits ``a`` and party 1's ``b``,
    ``G = a_hi·b_hi ⊕ (a_hi·a_lo)·b_lo ⊕ a_lo·(b_hi·b_lo)`` and
    ``P = a_hi·a_lo ⊕ b_hi·b_lo ⊕ a_hi·b_lo ⊕ a_lo·b_hi``: 5 cross ANDs of bits each
    party knows, where a generate round then a combine round took 6 cross ANDs and two
    rounds."""
    n = int(low.numel())
    rows = rows_of(low, nbits)  # [nbits, W]
    w = rows.shape[1]
    mask_all, t_all = bit_pairs(_carry_pairs(w, nbits), rank)
    used = 0

    def take(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal used
        out = (mask_all[used : used + k * w], t_all[used : used + k * w])
        used += k * w
        return out

    k = nbits // 2
    lo, hi = rows[0 : 2 * k : 2], rows[1 : 2 * k : 2]  # each pair's low and high bit
    both = lo & hi  # this party's own a_hi·a_lo (or b_hi·b_lo)
    top = rows[2 * k :]  # the odd top bit, if any: its generate a·b is one cross AND
    # party 0 feeds the left factor of each cross AND, party 1 the right one
    if rank == 0:
        mine = torch.cat([hi, both, lo, hi[1:], lo[1:], top])
    else:
        mine = torch.cat([hi, lo, both, lo[1:], hi[1:], top])
    cross = cross_and(mine, rank, take(_carry_pairs(1, nbits) - _tree_pairs(k + nbits % 2)))
    g = cross[:k] ^ cross[k : 2 * k] ^ cross[2 * k : 3 * k]
    q = 3 * k + max(k - 1, 0)
    p = torch.cat(
        [hi[:1], cross[3 * k : q] ^ cross[q : q + k - 1] ^ both[1:]]
    )  # P of pair 0: unread
    if nbits % 2:
        g = torch.cat([g, cross[-1:]])
        p = torch.cat([p, top])  # p = a ⊕ b: each party's own bit is its share
    while g.shape[0] > 1:
        m = g.shape[0]
        k = m // 2
        g_lo, g_hi, p_lo, p_hi = (
            g[0 : 2 * k : 2],
            g[1 : 2 * k : 2],
            p[0 : 2 * k : 2],
            p[1 : 2 * k : 2],
        )
        # ANDs of XOR-shared rows: x∧y = x₀y₀ ⊕ x₁y₁ ⊕ x₀y₁ ⊕ x₁y₀; the cross terms of
        # G_hi·… are P_hi ∧ G_lo for all k pairs, of P, P_hi ∧ P_lo for pairs 1..k-1.
        xs = torch.cat([p_hi, p_hi[1:]])
        ys = torch.cat([g_lo, p_lo[1:]])
        n_and = xs.shape[0]
        # party 0 feeds x₀ (paired with party 1's y₁) and y₀ (with party 1's x₁)
        mine = torch.cat([xs, ys]) if rank == 0 else torch.cat([ys, xs])
        cross = cross_and(mine, rank, take(2 * n_and))
        ands = (xs & ys) ^ cross[:n_and] ^ cross[n_and:]
        new_g = g_hi ^ ands[:k]
        new_p = torch.cat([p_hi[:1], ands[k:]])  # the lowest pair's P is never read
        if m % 2:  # an odd top row passes up unchanged
            new_g = torch.cat([new_g, g[-1:]])
            new_p = torch.cat([new_p, p[-1:]])
        g, p = new_g, new_p
    return unpack_bits(g[0], n)  # one bit-sliced row back to n values


def sign_share(share: torch.Tensor, rank: int, bits: int = LOW_BITS) -> torch.Tensor:
    """This party's arithmetic share (int64, scale 1) of ``[x < 0]`` for its int64 share of
    ``x``: exact for every ring element with the default ``bits = 63`` (7 rounds), and for
    every ``x`` in ``[-2^bits, 2^bits)`` with a smaller ``bits`` (see the module doc).

    Raises:
        ValueError: if ``bits`` is not in ``[1, 63]``.
    """
    s = sign_bits(share, rank, bits)
    both = private_product(s, 64, rank)  # additive share of s₀·s₁
    return (s - 2 * both).reshape(share.shape)


def sign_bits(share: torch.Tensor, rank: int, bits: int = LOW_BITS) -> torch.Tensor:
    """This party's **XOR** share (flat int64 0/1) of ``[x < 0]``: :func:`sign_share`
    without its last round (the conversion to an arithmetic share), for a caller that
    consumes the bit directly (:func:`smpc_gym.secure.mpc_nn.relu`). 6 rounds.

    Raises:
        ValueError: if ``bits`` is not in ``[1, 63]``.
    """
    if not isinstance(bits, int) or not 1 <= bits <= LOW_BITS:
        raise ValueError(f"bits: bad value {bits!r}; expected an int in [1, {LOW_BITS}]")
    flat = share.reshape(-1)
    low = flat & ((1 << bits) - 1)
    c = carry_shares(low, rank, bits)
    return ((flat >> bits) & 1) ^ c  # XOR share of bit `bits` of x: its sign in range
