"""The dealer's pseudo-random streams: AES-256-CTR under a key from ``os.urandom``.

The dealer (``TTP``) and each party expand one shared secret into the same stream; from
it the party draws its shares of every pooled correlation (:mod:`smpc_gym.secure.dealer`)
and the dealer recomputes them to send party 0 the one share that makes a correlation
hold. The stream must be unpredictable to the *other* party: party 0 receives values
such as the sign test's ``t₀ = (u ∧ v) ⊕ t₁``, where ``u`` is its own and ``v``, ``t₁``
are party 1's stream, so wherever ``u = 0`` it reads party 1's output ``t₁`` in the
clear.

CrypTen seeds a ``torch.Generator`` (Mersenne Twister, MT19937) with 64 bits for this.
MT19937's output is linear over GF(2) in its state: a party that reads enough of the
other's output (the sign test's correlations hand it millions of bits per update) can solve for
the state and predict every later mask of the other party. AES-CTR is a pseudo-random
function: its output reveals nothing about its key or about other positions of the
stream. It is also faster here (OpenSSL's AES-NI: ~0.7 ms for 2^19 ring elements, the
torch generator ~2–4 ms).

Each key is 256 bits from the dealer's ``os.urandom``, sent once to its party at
start-up (:func:`smpc_gym.secure.dealer.serve`, :func:`smpc_gym.secure.dealer.install_client`),
over the same channel CrypTen sends its seed on, and used for one stream only (counter
from 0). Nothing else is derived from it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

__all__ = ["KEY_BYTES", "Stream", "new_key"]

#: Bytes of a stream key (AES-256).
KEY_BYTES = 32


_ZEROS = {"buf": memoryview(b"")}


def _zeros(nbytes: int) -> memoryview:
    """``nbytes`` zero bytes, read-only, from one buffer that grows to the largest request
    (the plaintext every stream encrypts; CTR mode turns it into the keystream)."""
    if len(_ZEROS["buf"]) < nbytes:
        _ZEROS["buf"] = memoryview(bytes(nbytes))
    return _ZEROS["buf"][:nbytes]


def new_key() -> bytes:
    """A fresh stream key from the operating system's CSPRNG."""
    return os.urandom(KEY_BYTES)


class Stream:
    """An AES-256-CTR keystream read as ring elements and bits, in order of the calls.

    Two ``Stream`` objects with one key return the same values for the same sequence of
    calls (that is how the dealer and a party stay aligned).

    Raises:
        ValueError: if ``key`` is not :data:`KEY_BYTES` bytes.
    """

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
            raise ValueError(f"a stream key is {KEY_BYTES} bytes, got {key!r:.40}")
        self._enc: Any = Cipher(algorithms.AES(bytes(key)), modes.CTR(bytes(16))).encryptor()

    def ring(self, n: int) -> torch.Tensor:
        """The next ``n`` uniform ring elements (int64; 8 bytes of keystream each)."""
        n = int(n)
        if n <= 0:
            return torch.empty(0, dtype=torch.int64)
        # encrypted straight into the tensor's memory (update_into wants 15 spare bytes):
        # the copy out of an immutable bytes object took ~5x the encryption's time. The
        # plaintext is zeros from one buffer kept for all streams of the process: a fresh
        # ``bytes(8·n)`` per draw (4-8 MB for a pool's refill) was zeroed page by page,
        # and on a VM those first touches cost more than the encryption (~7 ms instead
        # of ~1.2 ms for 2^20 elements)
        out = torch.empty(n + 2, dtype=torch.int64)
        self._enc.update_into(_zeros(8 * n), out.numpy().view(np.uint8))
        return out[:n]

    def bits(self, n: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        """The next ``n`` uniform bits (0/1 of ``dtype``), 64 per ring element drawn."""
        from smpc_gym.secure.ring import unpack_bits

        return unpack_bits(self.ring((int(n) + 63) // 64), int(n), dtype)
