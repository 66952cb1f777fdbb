"""Exact products in the ring Z/2^64 (int64 with wrap-around), on whichever of two exact
kernels is faster in this process.

Every Beaver matmul multiplies int64 shares, and the product must be exact mod 2^64.
Two kernels compute the same words:

* **torch's int64 matmul** (``torch.matmul`` on int64 tensors wraps around mod 2^64). In
  older torch releases it had no optimised kernel and was ~25× slower than a float64
  matmul of the same shape; in torch 2.13 on this project's 2-core machine it runs as
  fast as the float64 one (a 2×128×128 @ 2×128×128 product: ~0.3 ms on one thread).
* **the float64 limb product** (:func:`limb_matmul`), written for those older releases:

  * each operand, read as an unsigned 64-bit word, is split into three limbs of 22, 22
    and 20 bits: ``x = x₀ + x₁·2^22 + x₂·2^44``;
  * ``x·y mod 2^64 = s₀ + s₁·2^22 + s₂·2^44 (mod 2^64)`` with ``s₀ = x₀y₀``,
    ``s₁ = x₀y₁ + x₁y₀``, ``s₂ = x₀y₂ + x₁y₁ + x₂y₀`` — the limb pairs with ``i + j ≥ 3``
    are multiples of 2^66 and vanish;
  * the limbs are laid side by side, ``X = [x₀ x₁ x₂]`` (along K) and ``Y = [y₂; y₁; y₀]``,
    so ``s₂ = X·Y``, ``s₁ = X[:, :2K]·Y[K:]`` and ``s₀ = X[:, :K]·Y[2K:]``: three float64
    matmuls (6K multiply-adds per output, six limb products);
  * every limb product is below 2^44 and ``s₂ < K·1.5·2^44``, ``s₁ < 2K·2^44``, so for
    ``K ≤ 256`` every partial sum is an integer below 2^53, which float64 holds exactly
    (whatever order BLAS adds in);
  * the sums are converted back to int64 and shifted/added with int64 wrap-around
    (= arithmetic mod 2^64).

  It does six float64 products' work per ring product, so where torch's int64 kernel is
  fast it is ~8× slower (2.4 against 0.3 ms for the product above).

:func:`ring_backend` times both once per process on that product and :func:`ring_matmul`
uses the faster from then on. The choice changes the time, never a word of the result:
``tests/test_secure_maddpg_primitives`` checks both kernels against each other bit for bit
on full-range words, and torch's against products computed with Python integers.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# pack_bits/unpack_bits read int64 words as bytes, lowest byte first
assert sys.byteorder == "little", "smpc_gym's bit packing assumes a little-endian machine"

__all__ = [
    "MAX_K",
    "MIN_FLOAT_DIM",
    "draw_bits",
    "draw_ring",
    "limb_matmul",
    "pack_bits",
    "PACK_WIDTHS",
    "pack_words",
    "packed_words",
    "BACKEND_TRIALS",
    "ring_backend",
    "ring_matmul",
    "unpack_bits",
    "unpack_words",
]

#: The largest contraction length for which :func:`limb_matmul`'s float64 sums stay exact:
#: ``2K · 2^44 < 2^53``.
MAX_K = 256
#: Below this many rows of ``x`` or columns of ``y`` :func:`limb_matmul` uses the int64 matmul.
MIN_FLOAT_DIM = 16

_M22 = (1 << 22) - 1
_M20 = (1 << 20) - 1


def ring_matmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``torch.matmul(x, y)`` for int64 ``x``, ``y`` (≥ 2-D, broadcastable), exact mod 2^64,
    on the kernel :func:`ring_backend` picked for this process (same words either way).

    Raises:
        ValueError: if the inputs are not int64 or have fewer than 2 dimensions.
    """
    _check_ring_operands(x, y)
    if ring_backend() == "int64":
        return torch.matmul(x, y)
    return _limb_product(x, y)


#: Timed calls of each kernel in :func:`ring_backend`, alternating.
BACKEND_TRIALS = 7


@functools.cache
def ring_backend() -> str:
    """``"int64"`` (torch's int64 matmul) or ``"limbs"`` (:func:`limb_matmul`): the faster
    of the two on one 2×128×128 @ 2×128×128 product (the paper networks' hidden layer for
    both players), measured once per process on its first ring product. Both are exact;
    only the time differs.

    Each kernel's time is the fastest of :data:`BACKEND_TRIALS` calls, the two kernels'
    calls alternating after an untimed one each: on a loaded machine a call that loses
    the CPU takes several times longer, and a few timed calls of each in a row (tried
    first) picked the kernel ~8× slower in one of the two parties of a benchmark run."""
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.empty(2, 128, 128, dtype=torch.int64).random_(-(2**63), None, generator=g)
        for _ in range(2)
    )
    kernels: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "int64": torch.matmul,
        "limbs": limb_matmul,
    }
    best = dict.fromkeys(kernels, float("inf"))
    for fn in kernels.values():
        fn(x, y)
    for _ in range(BACKEND_TRIALS):
        for name, fn in kernels.items():
            start = time.perf_counter()
            fn(x, y)
            best[name] = min(best[name], time.perf_counter() - start)
    return "int64" if best["int64"] <= best["limbs"] else "limbs"


def _check_ring_operands(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dtype != torch.int64 or y.dtype != torch.int64:
        raise ValueError(f"ring_matmul needs int64 tensors, got {x.dtype} and {y.dtype}")
    if x.dim() < 2 or y.dim() < 2:
        raise ValueError(
            f"ring_matmul needs tensors with >= 2 dims, got shapes {tuple(x.shape)}, "
            f"{tuple(y.shape)}"
        )


def limb_matmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The ring product on float64 BLAS: three float64 matmuls of 22/22/20-bit limbs (see
    the module doc), equal bit for bit to the int64 ``torch.matmul``.

    Raises:
        ValueError: if the inputs are not int64 or have fewer than 2 dimensions.

    A contraction longer than :data:`MAX_K` is split into chunks of at most ``MAX_K``
    (the float64 sums of one chunk are exact; the chunks are added in the ring).
    Products with a thin side (fewer than :data:`MIN_FLOAT_DIM` rows of ``x`` or columns
    of ``y``) use the int64 matmul, which is faster there than splitting into limbs.
    """
    _check_ring_operands(x, y)
    return _limb_product(x, y)


def _limb_product(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:func:`limb_matmul` on operands already checked."""
    k = x.shape[-1]
    if k > MAX_K:  # split the contraction: a sum of ring products is a ring product
        out = _limb_product(x[..., :MAX_K], y[..., :MAX_K, :])
        for j in range(MAX_K, k, MAX_K):
            out = out + _limb_product(x[..., j : j + MAX_K], y[..., j : j + MAX_K, :])
        return out
    if x.shape[-2] < MIN_FLOAT_DIM or y.shape[-1] < MIN_FLOAT_DIM:
        return torch.matmul(x, y)
    X = torch.cat([x & _M22, (x >> 22) & _M22, (x >> 44) & _M20], dim=-1).to(torch.float64)
    Y = torch.cat([(y >> 44) & _M20, (y >> 22) & _M22, y & _M22], dim=-2).to(torch.float64)
    assert k <= MAX_K, f"contraction length {k} > {MAX_K}: float64 sums would not be exact"
    s2 = torch.matmul(X, Y).to(torch.int64)
    s1 = torch.matmul(X[..., : 2 * k], Y[..., k:, :]).to(torch.int64)
    s0 = torch.matmul(X[..., :k], Y[..., 2 * k :, :]).to(torch.int64)
    return s0 + (s1 << 22) + (s2 << 44)


# ----------------------------------------------------------------------------- random words, bit packing
def draw_bits(n: int, generator: Any, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """``n`` uniform bits (0/1 of ``dtype``: int64, or uint8 for bit arithmetic without
    the widening) from ``generator`` (the same call in every process that shares the
    generator gives the same bits, whatever ``dtype``): a ``torch.Generator`` (CrypTen's,
    for the ``TFP`` opt-out) or the dealer's AES stream (:class:`smpc_gym.secure.prg.Stream`)."""
    if not isinstance(generator, torch.Generator):  # a Stream
        return generator.bits(n, dtype)
    return torch.randint(0, 2, (n,), generator=generator, dtype=torch.int64).to(dtype)


def draw_ring(n: int, generator: Any) -> torch.Tensor:
    """``n`` uniform ring elements (int64) from ``generator`` (as in :func:`draw_bits`)."""
    if not isinstance(generator, torch.Generator):  # a Stream
        return generator.ring(n)
    # random_ from -2^63 with no upper bound draws all 64 bits (every int64, uniformly);
    # randint's exclusive bound would leave out 2^63 - 1, and it is ~1.6x slower
    return torch.empty(n, dtype=torch.int64).random_(-(2**63), None, generator=generator)


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """0/1 int64 vector → int64 words, 64 bits per word (zero-padded): bit ``i`` of word
    ``w`` is ``bits[64·w + i]``.

    numpy's ``packbits`` on bytes (little-endian words; checked at import): ~10× faster
    than shifting and summing ``[n/64, 64]`` int64 blocks, which profiled at a tenth of
    a secure Adam update.
    """
    n = int(bits.numel())
    packed = np.packbits(bits.reshape(-1).to(torch.uint8).numpy(), bitorder="little")
    out = np.zeros(8 * ((n + 63) // 64), dtype=np.uint8)
    out[: packed.size] = packed
    return torch.from_numpy(out.view(np.int64))


def unpack_bits(words: torch.Tensor, n: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: the first ``n`` bits as a 0/1 vector of ``dtype``
    (int64, or uint8 without the widening)."""
    raw = words.reshape(-1).contiguous().numpy().view(np.uint8)
    return torch.from_numpy(np.unpackbits(raw, count=int(n), bitorder="little")).to(dtype)


_DTYPES = {8: torch.int8, 16: torch.int16, 32: torch.int32, 64: torch.int64}
#: The widths :func:`pack_words` packs to: whole bytes.
PACK_WIDTHS = (8, 16, 24, 32, 40, 48, 56, 64)


def packed_words(n: int, nbits: int) -> int:
    """How many int64 words :func:`pack_words` makes of ``n`` values at ``nbits`` bits."""
    return -(-int(n) * int(nbits) // 64)


def pack_words(values: torch.Tensor, nbits: int) -> torch.Tensor:
    """int64 vector → its values mod 2^nbits packed densely into int64 words
    (``nbits`` in :data:`PACK_WIDTHS`: ``nbits / 8`` bytes per value, the low bytes of
    each, in the machine's byte order), for sending."""
    if nbits not in PACK_WIDTHS:
        raise ValueError(f"nbits must be one of {PACK_WIDTHS}, got {nbits}")
    if nbits == 64:
        return values.contiguous()
    if nbits in _DTYPES:
        half = 1 << (nbits - 1)
        low = ((values & ((1 << nbits) - 1)) ^ half) - half  # signed, in the small range
        small = low.to(_DTYPES[nbits]).view(torch.uint8)
    else:  # the value's low bytes (byte order: the machine's, as the views above)
        raw = values.contiguous().view(torch.uint8).view(-1, 8)
        small = raw[:, _low_bytes(nbits // 8)].reshape(-1)
    pad = (-small.numel()) % 8
    if pad:
        small = torch.cat([small, small.new_zeros(pad)])
    return small.view(torch.int64).clone()


def unpack_words(words: torch.Tensor, n: int, nbits: int) -> torch.Tensor:
    """Inverse of :func:`pack_words`: ``n`` int64 values congruent mod 2^nbits."""
    if nbits == 64:
        return words[:n]
    if nbits in _DTYPES:
        return words.contiguous().view(_DTYPES[nbits])[:n].to(torch.int64)
    width = nbits // 8
    out = torch.zeros(n, 8, dtype=torch.uint8)
    out[:, _low_bytes(width)] = words.contiguous().view(torch.uint8)[: n * width].view(n, width)
    return out.view(torch.int64).reshape(n)


def _low_bytes(width: int) -> slice:
    """Where an int64's ``width`` low bytes sit in its 8 bytes in memory."""
    return slice(0, width) if sys.byteorder == "little" else slice(8 - width, 8)
