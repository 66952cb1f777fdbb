"""The carry tree's layout: which masked bit rows the sign test's rounds send and which
cross ANDs each output sums — a public function of the bit width, computed alike by the
parties (:mod:`smpc_gym.secure.compare`) and the dealer (:mod:`smpc_gym.secure.dealer`),
and the dealer's correlation for it (:func:`carry_t0`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch

__all__ = ["LOW_BITS", "CarryRound", "carry_layout", "carry_size", "carry_t0", "xor_terms"]

#: Bits below the sign bit that the carry tree runs over for the whole ring.
LOW_BITS = 63


class CarryRound(NamedTuple):
    """One round of the carry tree (:func:`carry_layout`)."""

    #: masked bit rows each party sends
    rows: int
    #: ``[outputs, 3, 2]`` int64: output ``o`` is the XOR of the cross ANDs ``p[i] ∧ q[j]``
    #: over its (up to 3) pairs ``(i, j)``; ``(rows, rows)`` is padding
    terms: torch.Tensor
    #: the same outputs as runs of consecutive outputs with the same number ``k`` of real
    #: terms: ``(first, last + 1, i, j)`` with ``i``, ``j`` the ``k`` rows of each term,
    #: term by term (``[k·count]``), so :func:`xor_terms` gathers no padding
    runs: tuple[tuple[int, int, torch.Tensor, torch.Tensor], ...]


def _runs(
    rows: int, terms: torch.Tensor
) -> tuple[tuple[int, int, torch.Tensor, torch.Tensor], ...]:
    real = (terms[..., 0] != rows).sum(1).tolist()
    runs, o = [], 0
    while o < len(real):
        e = o
        while e < len(real) and real[e] == real[o]:
            e += 1
        k = real[o]
        idx = terms[o:e, :k].permute(2, 1, 0).reshape(2, -1)  # term-major, then output
        runs.append((o, e, idx[0].contiguous(), idx[1].contiguous()))
        o = e
    return tuple(runs)


@functools.cache
def carry_layout(nbits: int) -> tuple[CarryRound, ...]:
    """The rounds of :func:`~smpc_gym.secure.compare.carry_shares` over ``nbits`` bits, a
    public function of ``nbits`` that the parties and the dealer both compute.

    Per round a :class:`CarryRound` ``(rows, terms, runs)``. Each party sends ``rows``
    masked bit rows; ``terms`` is ``[outputs, 3, 2]`` int64: output ``o`` of the round is
    the XOR of the cross ANDs ``p[i] ∧ q[j]`` over its (up to 3) pairs ``(i, j)`` (``i`` a
    row party 0 sent, ``j`` one party 1 sent; ``(rows, rows)`` is padding and reads zero
    rows). The row and output orders are the ones
    :func:`~smpc_gym.secure.compare.carry_shares` builds:

    * leaves (``k = nbits // 2`` pairs of bits, an odd top bit): rows ``[hi (k), lo (k),
      both (k), top]``; outputs ``[G (k), P of pairs 1…k−1, G of top]``;
    * each tree level (``k`` pairs of groups): rows ``[P_hi (k), G_lo (k), P_lo of pairs
      1…k−1]``; outputs ``[G (k), P of pairs 1…k−1]``.
    """
    if not isinstance(nbits, int) or not 1 <= nbits <= LOW_BITS:
        raise ValueError(f"bits: bad value {nbits!r}; expected an int in [1, {LOW_BITS}]")
    k, odd = divmod(nbits, 2)
    rounds = []
    rows = 3 * k + odd
    pad = (rows, rows)
    terms = [[(m, m), (2 * k + m, k + m), (k + m, 2 * k + m)] for m in range(k)]
    terms += [[(m, k + m), (k + m, m), pad] for m in range(1, k)]
    terms += [[(3 * k, 3 * k), pad, pad]] * odd
    rounds.append(_round(rows, terms))
    groups = k + odd
    while groups > 1:
        k, odd = divmod(groups, 2)
        rows = 3 * k - 1
        pad = (rows, rows)
        terms = [[(m, k + m), (k + m, m), pad] for m in range(k)]
        terms += [[(m, 2 * k + m - 1), (2 * k + m - 1, m), pad] for m in range(1, k)]
        rounds.append(_round(rows, terms))
        groups = k + odd
    return tuple(rounds)


def _round(rows: int, terms: list) -> CarryRound:
    t = torch.tensor(terms, dtype=torch.int64)
    return CarryRound(rows, t, _runs(rows, t))


@functools.cache
def carry_size(nbits: int) -> tuple[int, int]:
    """``(rows, outputs)`` of the whole carry tree over ``nbits`` bits: per 64 elements,
    each party sends ``rows`` words and the dealer's correlation holds ``rows`` mask words
    per party plus ``outputs`` words of ``t``."""
    layout = carry_layout(nbits)
    return sum(r.rows for r in layout), sum(int(r.terms.shape[0]) for r in layout)


def xor_terms(left: torch.Tensor, right: torch.Tensor, rnd: CarryRound) -> torch.Tensor:
    """``[outputs, W]``: per output of round ``rnd`` the XOR of ``left[i] ∧ right[j]`` over
    its terms (``rnd.terms``; ``left``, ``right`` are ``[rows, W]``).

    Gathered run by run (``rnd.runs``): one ``index_select`` per side for all the run's
    terms (on flat row indices: 1.5-2.7x faster than advanced indexing), no padding rows
    (a level of the tree has two real terms per output and gathered a third, zero one)."""
    out = []
    for first, end, i, j in rnd.runs:
        pick = left.index_select(0, i)
        pick &= right.index_select(0, j)
        n = end - first
        acc = pick[:n]
        for k in range(n, pick.shape[0], n):
            acc ^= pick[k : k + n]
        out.append(acc)
    return out[0] if len(out) == 1 else torch.cat(out)


def carry_t0(u: torch.Tensor, v: torch.Tensor, t1: torch.Tensor, nbits: int) -> torch.Tensor:
    """Party 0's ``t`` words of the carry tree's correlation: for every output ``o`` of
    every round, ``t₀[o] ⊕ t₁[o] = ⊕ u[i] ∧ v[j]`` over its terms (:func:`carry_layout`).

    ``u``, ``v``: the parties' mask rows ``[rows, W]`` (round after round); ``t1``: party
    1's ``[outputs, W]``.
    """
    out, r0 = [], 0
    for rnd in carry_layout(nbits):
        out.append(xor_terms(u[r0 : r0 + rnd.rows], v[r0 : r0 + rnd.rows], rnd))
        r0 += rnd.rows
    return torch.cat(out) ^ t1
