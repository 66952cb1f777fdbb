"""Exact two-party sign test with a dealer-supplied correlation: ``[x < 0]`` over the whole ring,
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
   for activations). For ``k = 48`` each party sends 136 bits per element instead of 182
   (6 rounds either way; ``k ≤ 32`` would save one).
2. **The carry tree.** Per bit ``j``: generate ``g_j = L₀_j ∧ L₁_j`` and propagate
   ``p_j = L₀_j ⊕ L₁_j`` (free: each party's bit is its XOR share). Adjacent groups
   combine as ``G = G_hi ⊕ (P_hi ∧ G_lo)``, ``P = P_hi ∧ P_lo``: 63 → 32 → … → 1 groups
   in 6 levels, the last group's ``G`` being ``c``. The bits are *bit-sliced*: row ``j``
   holds bit ``j`` of 64 elements per int64 word, so every level sends only the live
   groups, densely packed.
3. **ANDs from one correlation.** Every AND reduces to *cross ANDs* ``p ∧ q`` of a bit
   ``p`` party 0 holds and a bit ``q`` party 1 holds (an AND of XOR-shared bits is two
   local ANDs and two cross ANDs). Party 0 masks each of its bit rows once with a random
   ``u`` and sends ``e = p ⊕ u``; party 1 sends ``f = q ⊕ v``. Then
   ``p ∧ q = (p ∧ f) ⊕ (e ∧ v) ⊕ (u ∧ v)``: the first term party 0 computes, the
   second party 1. A row is sent once however many ANDs read it (a leaf's ``a_hi`` is
   read by three, a level's ``P_hi`` by two), and the tree only ever needs the XOR of
   an output's cross ANDs (a leaf's ``G`` sums three), so the dealer hands out one
   ``t₀``/``t₁`` per *output*, ``t₀ ⊕ t₁ = ⊕ u ∧ v`` over its terms
   (:func:`~smpc_gym.secure.carry.carry_layout`,
   :func:`~smpc_gym.secure.carry.carry_t0`). Per element over 63 bits each party sends
   182 bits and the dealer 119 to party 0, where one dealer pair per cross AND
   (``t₀ ⊕ t₁ = u ∧ v``, each operand sent once per AND) took 268 of each.
4. **Back to arithmetic.** ``sᵢ = msb(xᵢ) ⊕ cᵢ`` are XOR shares of the sign; the
   arithmetic 0/1 share is ``s₀ + s₁ − 2·s₀s₁``, the product from one arithmetic pair
   (:func:`smpc_gym.secure.trunc.private_product`).

Cost: 7 party-to-party rounds for any number of elements (the pairs of bits, 5 tree
levels, 1 conversion; CrypTen's comparison takes 8), and pooled dealer correlations
where CrypTen's makes one request per AND level. The leaves are pairs of bits, whose
``G`` and ``P`` come from the parties' own bits in one round (:func:`carry_shares`).
Over 63 bits: ~23 bytes sent by each party plus ~15 bytes from the dealer to party 0
per element. ``tests/test_secure_compare.py`` counts party 0's bytes on 4,011 elements
against CrypTen's ``_ltz`` on the same shares.

What is revealed: party 1 sees only ``e = p ⊕ u`` and party 0 only ``f = q ⊕ v``,
each row masked by its own uniform bits from a generator the receiver does not hold
(a mask is used for one sent row only, though several ANDs read it); the outputs are
masked by ``t₀``/``t₁``. The dealer (``TTP``, the default) learns only how many
elements and which bit width were asked for. Under the ``tfp_player0_sees_all`` opt-out
party 0 draws party 1's ``v`` too (as it does for every Beaver triple there), so it
could unmask party 1's bits.
"""

from __future__ import annotations

import torch

from smpc_gym.secure._crypten import crypten_module
from smpc_gym.secure.carry import (
    LOW_BITS,
    CarryRound,
    carry_layout,
    carry_size,
    carry_t0,
    xor_terms,
)
from smpc_gym.secure.ring import draw_ring, unpack_bits
from smpc_gym.secure.trunc import _exchange, private_product

__all__ = [
    "LOW_BITS",
    "and_round",
    "carry_pairs",
    "carry_shares",
    "rows_of",
    "sign_bits",
    "sign_share",
]


def carry_pairs(words: int, nbits: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This party's ``(mask [rows, words], t [outputs, words])`` for the carry tree over
    ``nbits`` bits of ``64·words`` elements (:func:`~smpc_gym.secure.carry.carry_layout`,
    :func:`~smpc_gym.secure.carry.carry_t0`).

    With the ``TTP`` provider the dealer sends party 0's ``t`` and everything else comes
    from the stream each party shares with it, through the pools of
    :mod:`smpc_gym.secure.dealer`. With ``TFP`` party 0 draws party 1's ``v`` and ``t₁``
    itself from the generator it shares with party 1.
    """
    crypten = crypten_module()
    from crypten.mpc.provider.tfp_provider import TrustedFirstParty
    from crypten.mpc.provider.ttp_provider import TrustedThirdParty

    provider = crypten.mpc.get_default_provider()
    cpu = torch.device("cpu")
    rows, outs = carry_size(nbits)
    if isinstance(provider, TrustedThirdParty):
        from smpc_gym.secure.dealer import pools

        mask, t = pools().carry_pairs(words, nbits)
        return mask.contiguous(), t.contiguous()  # column slices of row-major pools
    if isinstance(provider, TrustedFirstParty):

        def draw(n: int, gen: torch.Generator) -> torch.Tensor:
            return draw_ring(n * words, gen).view(n, words)

        if rank == 0:
            u = draw(rows, crypten.generators["local"][cpu])
            shared = crypten.generators["next"][cpu]
            v = draw(rows, shared)
            return u, carry_t0(u, v, draw(outs, shared), nbits)
        shared = crypten.generators["prev"][cpu]
        v = draw(rows, shared)
        return v, draw(outs, shared)
    raise ValueError(f"the sign test needs the TTP or TFP provider, got {type(provider).__name__}")


def and_round(
    mine: torch.Tensor,
    rank: int,
    mask: torch.Tensor,
    t: torch.Tensor,
    rnd: CarryRound,
) -> torch.Tensor:
    """XOR shares of one round's outputs (each a XOR of cross ANDs,
    :func:`~smpc_gym.secure.carry.carry_layout`) in one exchange.

    Party 0 passes its rows ``p``, party 1 its rows ``q`` (``mine``, ``[rows, W]`` packed
    bits); ``mask``, ``t`` are this party's part of the round's correlation. Each party
    sends its rows once, masked (``e = p ⊕ u``, ``f = q ⊕ v``), however many ANDs read
    them; then ``p ∧ q = (p ∧ f) ⊕ (e ∧ v) ⊕ (u ∧ v)``, the first term party 0's, the
    second party 1's, and the third, summed over an output's terms, is ``t₀ ⊕ t₁``.
    ``rnd``: the round (:func:`~smpc_gym.secure.carry.carry_layout`).
    """
    got = _exchange((mine ^ mask).reshape(-1), rank).reshape(mine.shape)
    out = xor_terms(mine, got, rnd) if rank == 0 else xor_terms(got, mask, rnd)
    out ^= t  # a fresh tensor
    return out


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


def carry_shares(low: torch.Tensor, rank: int, nbits: int = LOW_BITS) -> torch.Tensor:
    """XOR shares (int64 0/1, one per element) of ``[L₀ + L₁ ≥ 2^nbits]`` for this party's
    words ``low`` (its low ``nbits`` bits are ``Lᵢ``, the higher bits must be 0);
    ``⌈log₂ nbits⌉`` rounds, one pooled dealer correlation (:func:`carry_pairs`).

    The leaves are pairs of bits, whose ``(G, P)`` come straight from the parties' own
    bits in one round: with party 0's bits ``a`` and party 1's ``b``,
    ``G = a_hi·b_hi ⊕ (a_hi·a_lo)·b_lo ⊕ a_lo·(b_hi·b_lo)`` and
    ``P = a_hi·a_lo ⊕ b_hi·b_lo ⊕ a_hi·b_lo ⊕ a_lo·b_hi``. Each party sends each of its
    rows once (``a_hi``, ``a_lo``, ``a_hi·a_lo``), though two or three ANDs read it; a
    tree level likewise sends ``P_hi``, ``G_lo`` and ``P_lo`` once each for its two ANDs
    ``P_hi ∧ G_lo`` and ``P_hi ∧ P_lo`` (:func:`~smpc_gym.secure.carry.carry_layout`,
    :func:`and_round`)."""
    n = int(low.numel())
    rows = rows_of(low, nbits)  # [nbits, W]
    w = rows.shape[1]
    mask_all, t_all = carry_pairs(w, nbits, rank)
    layout = carry_layout(nbits)
    r0 = o0 = 0

    def run(mine: torch.Tensor, step: int) -> torch.Tensor:
        nonlocal r0, o0
        rnd = layout[step]
        n_rows, terms = rnd.rows, rnd.terms
        assert mine.shape[0] == n_rows, (step, mine.shape, n_rows)
        outs = int(terms.shape[0])
        mask, t = mask_all[r0 : r0 + n_rows], t_all[o0 : o0 + outs]
        r0, o0 = r0 + n_rows, o0 + outs
        return and_round(mine, rank, mask, t, rnd)

    k = nbits // 2
    lo, hi = rows[0 : 2 * k : 2], rows[1 : 2 * k : 2]  # each pair's low and high bit
    both = lo & hi  # this party's own a_hi·a_lo (or b_hi·b_lo)
    top = rows[2 * k :]  # the odd top bit, if any: its generate a·b is one cross AND
    out = run(torch.cat([hi, lo, both, top]), 0)
    g = out[:k]
    # P of pair 0 is never read (a placeholder); a pair's P adds the party's own a_hi·a_lo
    p = torch.cat([hi[:1], out[k : 2 * k - 1] ^ both[1:]])
    if nbits % 2:
        g = torch.cat([g, out[-1:]])
        p = torch.cat([p, top])  # p = a ⊕ b: each party's own bit is its share
    step = 1
    while g.shape[0] > 1:
        m = g.shape[0]
        k = m // 2
        g_lo, g_hi, p_lo, p_hi = (
            g[0 : 2 * k : 2],
            g[1 : 2 * k : 2],
            p[0 : 2 * k : 2],
            p[1 : 2 * k : 2],
        )
        # ANDs of XOR-shared rows: x∧y = x₀y₀ ⊕ x₁y₁ ⊕ x₀y₁ ⊕ x₁y₀: the first two local,
        # the cross terms from the round (G: P_hi ∧ G_lo for all k pairs; P: P_hi ∧ P_lo
        # for pairs 1…k−1, the lowest pair's P is never read)
        out = run(torch.cat([p_hi, g_lo, p_lo[1:]]), step)
        step += 1
        new_g = g_hi ^ (p_hi & g_lo) ^ out[:k]
        new_p = torch.cat([p_hi[:1], (p_hi[1:] & p_lo[1:]) ^ out[k:]])
        if m % 2:  # an odd top row passes up unchanged
            new_g = torch.cat([new_g, g[-1:]])
            new_p = torch.cat([new_p, p[-1:]])
        g, p = new_g, new_p
    assert step == len(layout) and r0 == mask_all.shape[0] and o0 == t_all.shape[0]
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
