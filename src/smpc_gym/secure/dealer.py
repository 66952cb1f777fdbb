"""Our dealer: CrypTen's trusted-third-party server plus exact-truncation and sign-test pairs.

:class:`DealerServer` is CrypTen's ``TTPServer`` (Beaver triples, squares, binary
triples, wrap counts, B2A bits; a process that holds no party's data and receives no
party's values) with two more requests. ``bit_pairs`` serves the sign test of
:mod:`smpc_gym.secure.compare` (``t₀ = (u ∧ v) ⊕ t₁`` for packed random words, one
word per 64 pairs). ``trunc_pairs`` serves
:mod:`smpc_gym.secure.trunc`: for ``n`` truncations it recomputes party 0's random bits
``u`` (from the generator it shares with party 0), party 1's bits ``v`` and masks ``t₁``
(from the generator it shares with party 1), and returns ``t₀ = u·v − t₁ mod 2^k`` to
party 0, ``k/8`` bytes per element. What the dealer learns: only the sizes requested.
What party 0 learns from ``t₀``: a uniformly masked value (``t₁`` is uniform and
unknown to it).
"""

from __future__ import annotations

import torch

from smpc_gym.secure._crypten import crypten_module

__all__ = ["DealerServer", "bit_pairs", "server_class", "trunc_pairs"]


def trunc_pairs(gen0: torch.Generator, gen1: torch.Generator, n: int, nbits: int) -> torch.Tensor:
    """Party 0's packed ``t₀`` for ``n`` truncation pairs (see the module doc).

    Draws exactly what the parties draw in :func:`smpc_gym.secure.trunc._correlated`, in
    the same order: ``u`` from ``gen0``; ``v`` then ``t₁`` from ``gen1``.
    """
    from smpc_gym.secure.trunc import draw_bits, draw_ring, pack_words

    u = draw_bits(int(n), gen0)
    v = draw_bits(int(n), gen1)
    t1 = draw_ring(int(n), gen1)
    return pack_words(u * v - t1, int(nbits))


def bit_pairs(gen0: torch.Generator, gen1: torch.Generator, n_words: int) -> torch.Tensor:
    """Party 0's ``t₀`` words for ``64·n_words`` cross-AND pairs of
    :func:`smpc_gym.secure.compare.bit_pairs`: ``t₀ = (u ∧ v) ⊕ t₁``, drawing ``u`` from
    ``gen0``, then ``v`` and ``t₁`` from ``gen1`` (the parties' order)."""
    from smpc_gym.secure.trunc import draw_ring

    u = draw_ring(int(n_words), gen0)
    v = draw_ring(int(n_words), gen1)
    return (u & v) ^ draw_ring(int(n_words), gen1)


def server_class() -> type:
    """CrypTen's ``TTPServer`` subclass with the ``trunc_pairs`` request."""
    crypten_module()
    from crypten.mpc.provider.ttp_provider import TTPServer

    class _DealerServer(TTPServer):
        """CrypTen's ``TTPServer`` with the ``trunc_pairs`` request (serves until told to stop)."""

        def trunc_pairs(self, n: int, nbits: int) -> torch.Tensor:
            gens = self._get_generators(device=self.device)
            return trunc_pairs(gens[0], gens[1], n, nbits)

        def bit_pairs(self, n_words: int) -> torch.Tensor:
            gens = self._get_generators(device=self.device)
            return bit_pairs(gens[0], gens[1], n_words)

    return _DealerServer


def DealerServer() -> object:  # noqa: N802 - constructs the server like a class would
    """Run the dealer (blocks until rank 0 sends ``terminate``), as ``TTPServer()`` does."""
    return server_class()()
