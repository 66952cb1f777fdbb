"""The dealer (trusted third party): typed requests, no pickle, and pooled randomness.

The dealer is a process that holds no party's data. At start-up it sends each party a
256-bit key from ``os.urandom``; both then expand it into the same AES-256-CTR stream
(:mod:`smpc_gym.secure.prg`), so the dealer knows every party's random shares and can
hand party 0 the one share that makes a correlation hold (for a Beaver triple
``c₀ = a·b − c₁``). It never receives a share of any data, weight or opened value.
Every pooled correlation below comes from these streams. CrypTen's own request kinds
(``additive`` of mismatched shapes, ``square``, ``binary``, ``wraps``, ``B2A``) still
come from the 64-bit-seeded torch generator CrypTen sets up beside them.

**Wire format.** CrypTen's own dealer protocol pickles every request and reply
(``send_obj``/``recv_obj``). Ours sends one fixed-size int64 frame per request
(:data:`FRAME` words: a request code and integer arguments, :func:`encode` /
:func:`decode`) and receives one int64 tensor whose size both sides compute from the
frame (:func:`result_size`); the dealer checks its reply against that size before
sending. Nothing is unpickled on either side. :func:`install_client` routes CrypTen's
``TTPClient.ttp_request`` through it, and :func:`stop` ends the dealer with a frame
instead of CrypTen's pickled ``"terminate"``.

**Requests** (what the dealer returns to party 0):

* CrypTen's: ``additive`` (Beaver triple ``c₀`` for ``mul`` or ``matmul``; matmuls
  through the exact ring product :func:`smpc_gym.secure.ring.ring_matmul`),
  ``square``, ``binary``, ``wraps``, ``B2A``;
* ``trunc_pairs`` (exact truncation, :mod:`smpc_gym.secure.trunc`): ``t₀ = u·v − t₁
  mod 2^k`` packed ``k`` bits per element;
* ``carry_pairs`` (the sign test's carry tree, :mod:`smpc_gym.secure.compare`): per
  output of the tree, ``t₀ = ⊕ (u_i ∧ v_j) ⊕ t₁`` over the cross ANDs that output sums
  (:func:`smpc_gym.secure.carry.carry_layout`), one word per 64 elements;
* ``mul_flat`` / ``matmul_many``: many elementwise triples, or ``k`` matmul triples of
  one shape, in one reply (the pools below);
* ``square_flat``: Beaver squares ``(r, r²)`` (:func:`square_flat`);
* ``bit_mul``: correlations for multiplying a value by an XOR-shared bit
  (:func:`bit_mul`), as the ReLU does with its sign bit; ``bit_mul_back``: the same
  with a second mask for the same bit (:func:`bit_mul_back`), for a ReLU whose backward
  pass multiplies its gradient by that bit again;
* ``layer_many``: ``k`` matmul triples of a layer's forward product ``h @ W`` together
  with the triples of its backward products ``hᵀ @ dz`` and ``dz @ Wᵀ`` that reuse the
  forward's masks of ``h`` and ``W`` (:func:`layer_triples`);
* ``newton_triples``: the triples of ``k`` Newton steps ``y ← y·(A − B·(x·y)·y)/2`` on
  ``n`` elements, with each operand's mask shared by every product of that operand
  (:func:`newton_triples`): ``x`` and each step's ``y`` are then opened once, not
  once per product;
* ``cpu_usage``: the dealer process's own CPU seconds so far (user, system), in
  microseconds, and its minor page faults so far — for cost profiles only
  (:func:`dealer_usage`); it says nothing about any party's data.

**Pools.** A request costs a round trip. :class:`Pools` asks for correlations in bulk
(:data:`CHUNK` elements, or :data:`MATMUL_BATCH` matmul triples of a shape) and hands
them out in order. Both parties run the same program, so they consume the pools in the
same order and refill them at the same moments; each refill draws the party's shares
from its dealer generator exactly as the dealer does, so the streams stay aligned. What
is left of the old chunk is used first. The next refill of a pool is requested as soon
as the current one is taken (prefetch), so the dealer computes it while the parties
work.

What the dealer learns: the kinds and sizes of the requests (the networks' shapes),
nothing else. What party 0 learns from a reply: values masked by party 1's uniform
shares, which it never sees. The dealer must not collude with a party.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import resource
import time
from collections.abc import Sequence
from typing import Any

import torch

from smpc_gym.secure._crypten import crypten_module
from smpc_gym.secure.carry import carry_size, carry_t0
from smpc_gym.secure.comm import charge_dealer, dealer_bytes
from smpc_gym.secure.prg import KEY_BYTES, Stream, new_key
from smpc_gym.secure.ring import (
    PACK_WIDTHS,
    draw_bits,
    draw_ring,
    pack_words,
    packed_words,
    ring_matmul,
    unpack_words,
)

__all__ = [
    "CHUNK",
    "FRAME",
    "MATMUL_BATCH",
    "NEWTON_MAX_ITERS",
    "Pools",
    "LAYER_WEIGHTS",
    "LAYER_INPUTS",
    "bit_mul",
    "bit_mul_back",
    "broadcast",
    "carry_pairs",
    "dealer_bytes",
    "dealer_cpu_seconds",
    "dealer_usage",
    "decode",
    "encode",
    "install_client",
    "layer_triples",
    "newton_triples",
    "pools",
    "result_size",
    "serve",
    "square_flat",
    "stop",
    "trunc_pairs",
]

#: int64 words per request frame.
FRAME = 32
#: Elements per refill of a flat pool (truncation pairs, bit-pair words, mul triples).
CHUNK = 1 << 19
#: Matmul triples per refill of a shape's pool.
MATMUL_BATCH = 8
#: The most Newton steps one ``newton_triples`` request may cover.
NEWTON_MAX_ITERS = 32
#: ``layer_many`` flag: include the weight-gradient triple ``hᵀ @ dz``.
LAYER_WEIGHTS = 1
#: ``layer_many`` flag: include the input-gradient triple ``dz @ Wᵀ``.
LAYER_INPUTS = 2

_CODES = {
    "terminate": -1,
    "additive": 1,
    "square": 2,
    "binary": 3,
    "wraps": 4,
    "B2A": 5,
    "trunc_pairs": 6,
    "mul_flat": 8,
    "matmul_many": 9,
    "newton_triples": 10,
    "bit_mul": 11,
    "square_flat": 12,
    "cpu_usage": 13,
    "carry_pairs": 14,
    "layer_many": 15,
    "bit_mul_back": 16,
}
_NAMES = {v: k for k, v in _CODES.items()}
_OPS = {"mul": 1, "matmul": 2}
_OP_NAMES = {v: k for k, v in _OPS.items()}


# ----------------------------------------------------------------------------- wire format
def _size_words(size: Sequence[int]) -> list[int]:
    return [len(size), *(int(d) for d in size)]


def encode(func: str, args: Sequence[Any] = (), kwargs: dict | None = None) -> torch.Tensor:
    """One request as a :data:`FRAME`-word int64 frame.

    ``args`` are CrypTen's (sizes as ``torch.Size``/tuples, an op name for
    ``additive``) or ours (integers). Raises ``ValueError`` naming the request when it
    is not one the dealer serves (e.g. a convolution triple, or keyword arguments).
    """
    if func not in _CODES:
        raise ValueError(f"the dealer serves {sorted(_CODES)}, not {func!r}")
    if kwargs:
        raise ValueError(f"dealer request {func!r} takes no keyword arguments, got {kwargs}")
    words = [_CODES[func]]
    if func == "additive":
        size0, size1, op, *rest = args
        if op not in _OPS or rest:
            raise ValueError(
                f"the dealer's Beaver triples are for {sorted(_OPS)} without extra "
                f"arguments, got {op!r} {rest}"
            )
        words += [_OPS[op], *_size_words(size0), *_size_words(size1)]
    elif func == "binary":
        words += [*_size_words(args[0]), *_size_words(args[1])]
    elif func in ("square", "wraps", "B2A"):
        words += _size_words(args[0])
    elif func == "matmul_many":
        words += [int(args[0]), *_size_words(args[1]), *_size_words(args[2])]
    elif func == "layer_many":
        words += [int(args[0]), int(args[3]), *_size_words(args[1]), *_size_words(args[2])]
    else:  # integer arguments
        words += [int(a) for a in args]
    if len(words) > FRAME:
        raise ValueError(f"dealer request {func!r} has {len(words)} words, the frame {FRAME}")
    return torch.tensor(words + [0] * (FRAME - len(words)), dtype=torch.int64)


def decode(frame: torch.Tensor) -> tuple[str, list[Any]]:
    """Inverse of :func:`encode`: ``(func, args)`` with sizes as ``torch.Size``."""
    w = [int(x) for x in frame.tolist()]
    code = w[0]
    if code not in _NAMES:
        raise ValueError(f"unknown dealer request code {code}")
    func, pos = _NAMES[code], 1

    def size() -> torch.Size:
        nonlocal pos
        n = w[pos]
        if not 0 <= n <= 8:
            raise ValueError(f"dealer request {func!r}: bad tensor rank {n}")
        out = torch.Size(w[pos + 1 : pos + 1 + n])
        pos += 1 + n
        return out

    if func == "additive":
        op = _OP_NAMES.get(w[1])
        if op is None:
            raise ValueError(f"dealer request 'additive': unknown op code {w[1]}")
        pos = 2
        return func, [size(), size(), op]
    if func == "binary":
        return func, [size(), size()]
    if func in ("square", "wraps", "B2A"):
        return func, [size()]
    if func == "matmul_many":
        k, pos = w[1], 2
        return func, [k, size(), size()]
    if func == "layer_many":
        k, flags, pos = w[1], w[2], 3
        s0, s1 = size(), size()
        if len(s0) != 3 or len(s1) != 3 or s0[0] != s1[0] or s0[2] != s1[1]:
            raise ValueError(
                f"dealer request 'layer_many': sizes {tuple(s0)} and {tuple(s1)}; expected "
                "[P, B, in] and [P, in, out]"
            )
        if not 0 <= flags <= LAYER_WEIGHTS | LAYER_INPUTS:
            raise ValueError(f"dealer request 'layer_many': unknown flags {flags}")
        return func, [k, s0, s1, flags]
    if func == "trunc_pairs":
        if w[2] not in PACK_WIDTHS:
            raise ValueError(
                f"dealer request 'trunc_pairs': nbits = {w[2]}; expected one of {PACK_WIDTHS}"
            )
        return func, w[1:3]
    if func in ("mul_flat", "bit_mul", "bit_mul_back", "square_flat"):
        return func, w[1:2]
    if func == "carry_pairs":
        carry_size(w[2])  # raises on a bit count the sign test does not have
        return func, w[1:3]
    if func == "newton_triples":
        n, iters = w[1:3]
        if n < 1 or not 1 <= iters <= NEWTON_MAX_ITERS:
            raise ValueError(
                f"dealer request 'newton_triples': n = {n}, iters = {iters}; expected n >= 1 "
                f"and iters in [1, {NEWTON_MAX_ITERS}]"
            )
        return func, [n, iters]
    return func, []


def broadcast(size0: Sequence[int], size1: Sequence[int]) -> torch.Size:
    """NumPy broadcasting of two sizes (``torch.broadcast_shapes`` imports sympy on first
    use, seconds of start-up inside a timed protocol step)."""
    a, b = list(size0), list(size1)
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + a, [1] * (n - len(b)) + b
    out = []
    for x, y in zip(a, b, strict=True):
        if x != y and 1 not in (x, y):
            raise ValueError(f"sizes {tuple(size0)} and {tuple(size1)} do not broadcast")
        out.append(y if x == 1 else x)
    return torch.Size(out)


def _matmul_size(size0: Sequence[int], size1: Sequence[int]) -> torch.Size:
    if len(size0) < 2 or len(size1) < 2:
        raise ValueError(f"matmul triples need operands of rank >= 2, got {size0} and {size1}")
    return broadcast(size0[:-2], size1[:-2]) + torch.Size((size0[-2], size1[-1]))


def result_size(func: str, args: Sequence[Any]) -> torch.Size:
    """The size of the dealer's reply to a request (both sides compute it)."""
    if func == "additive":
        size0, size1, op = args
        if op == "mul":
            return broadcast(size0, size1)
        return _matmul_size(size0, size1)
    if func == "binary":
        return broadcast(args[0], args[1])
    if func in ("square", "wraps", "B2A"):
        return torch.Size(args[0])
    if func == "trunc_pairs":
        return torch.Size((packed_words(int(args[0]), int(args[1])),))
    if func in ("mul_flat", "square_flat"):
        return torch.Size((int(args[0]),))
    if func == "carry_pairs":
        return torch.Size((int(args[0]) * carry_size(int(args[1]))[1],))
    if func == "bit_mul":
        return torch.Size((2, int(args[0])))
    if func == "bit_mul_back":
        return torch.Size((3, int(args[0])))
    if func == "layer_many":
        k, s0, s1, flags = args
        return torch.Size((int(k) * sum(_layer_sizes(s0, s1, flags)),))
    if func == "newton_triples":
        n, iters = (int(a) for a in args)
        return torch.Size((iters, 3, n))
    if func == "matmul_many":
        return torch.Size((int(args[0]),)) + _matmul_size(args[1], args[2])
    if func == "cpu_usage":
        return torch.Size((3,))
    raise ValueError(f"no reply to dealer request {func!r}")


# ----------------------------------------------------------------------------- generation
def trunc_pairs(gen0: Stream, gen1: Stream, n: int, nbits: int) -> torch.Tensor:
    """Party 0's packed ``t₀`` for ``n`` truncation pairs: ``u`` from ``gen0``; ``v``
    then ``t₁`` from ``gen1`` (the parties' draw order in :class:`Pools`)."""
    u = draw_bits(int(n), gen0)
    v = draw_bits(int(n), gen1)
    t1 = draw_ring(int(n), gen1)
    return pack_words(u * v - t1, int(nbits))


def carry_pairs(gen0: Stream, gen1: Stream, n_words: int, nbits: int) -> torch.Tensor:
    """Party 0's ``t₀`` words ``[outputs, n_words]`` (flat) for the carry tree over
    ``nbits`` bits of ``64·n_words`` elements (:func:`smpc_gym.secure.carry.carry_t0`):
    ``u`` ``[rows, n_words]`` from ``gen0``, then ``v`` (the same) and ``t₁``
    ``[outputs, n_words]`` from ``gen1``, row by row (the pools' order and layout: the
    tree's rows are contiguous, so neither side transposes)."""
    m = int(n_words)
    rows, outs = carry_size(int(nbits))
    u = draw_ring(m * rows, gen0).view(rows, m)
    v = draw_ring(m * rows, gen1).view(rows, m)
    t1 = draw_ring(m * outs, gen1).view(outs, m)
    return carry_t0(u, v, t1, int(nbits)).reshape(-1)


def square_flat(gen0: Stream, gen1: Stream, n: int) -> torch.Tensor:
    """Party 0's ``s₀ = r² − s₁`` for ``n`` Beaver squares: each stream draws its share of
    ``r``, then party 1's ``s₁``."""
    r = draw_ring(int(n), gen0) + draw_ring(int(n), gen1)
    return r * r - draw_ring(int(n), gen1)


def bit_mul(gen0: Stream, gen1: Stream, n: int) -> torch.Tensor:
    """Party 0's ``[r₀ᴬ, c₀]`` ``[2, n]`` for ``n`` bit-times-value correlations.

    Each generator draws a bit ``rᵢ`` and a ring mask ``Aᵢ`` per element, then party 1
    its arithmetic shares ``r₁ᴬ`` of ``r = r₀ ⊕ r₁`` and ``c₁`` of ``A·r``
    (``A = A₀ + A₁``); party 0 gets ``r₀ᴬ = r − r₁ᴬ`` and ``c₀ = A·r − c₁``.
    """
    n = int(n)
    r = draw_bits(n, gen0) ^ draw_bits(n, gen1)  # each stream: its bits, then its mask
    a = draw_ring(n, gen0) + draw_ring(n, gen1)
    r_a1, c1 = draw_ring(n, gen1), draw_ring(n, gen1)
    return torch.stack([r - r_a1, a * r - c1])


def bit_mul_back(gen0: Stream, gen1: Stream, n: int) -> torch.Tensor:
    """Party 0's ``[r₀ᴬ, c₀, c₀']`` ``[3, n]``: :func:`bit_mul`'s correlation with a second
    mask ``A'`` for the same bit ``r``.

    Each generator draws its bit ``rᵢ``, mask ``Aᵢ`` and mask ``A'ᵢ`` per element, then
    party 1 its shares ``r₁ᴬ``, ``c₁`` of ``A·r`` and ``c₁'`` of ``A'·r``. The ReLU uses
    ``(r, A)`` in the forward pass and ``(r, A')`` to multiply its gradient by the same
    bit in the backward pass; each mask hides one value.
    """
    n = int(n)
    r = draw_bits(n, gen0) ^ draw_bits(n, gen1)
    a = draw_ring(n, gen0) + draw_ring(n, gen1)
    a2 = draw_ring(n, gen0) + draw_ring(n, gen1)
    r_a1, c1, c1b = (draw_ring(n, gen1) for _ in range(3))
    return torch.stack([r - r_a1, a * r - c1, a2 * r - c1b])


def _layer_shapes(
    size0: Sequence[int], size1: Sequence[int], flags: int
) -> list[tuple[int, ...] | None]:
    """The shapes of one :func:`layer_triples` bundle's products, in reply order: ``A @
    B`` ``[P, batch, out]``, ``Aᵀ @ E`` ``[P, in, out]`` (flag :data:`LAYER_WEIGHTS`),
    ``E @ Bᵀ`` ``[P, batch, in]`` (flag :data:`LAYER_INPUTS`); None where ``flags``
    leave one out."""
    p, batch, n_in = (int(d) for d in size0)
    n_out = int(size1[2])
    return [
        (p, batch, n_out),
        (p, n_in, n_out) if flags & LAYER_WEIGHTS else None,
        (p, batch, n_in) if flags & LAYER_INPUTS else None,
    ]


def _layer_sizes(size0: Sequence[int], size1: Sequence[int], flags: int) -> list[int]:
    """Elements of the products :func:`_layer_shapes` has, in reply order."""
    return [math.prod(s) for s in _layer_shapes(size0, size1, flags) if s is not None]


def _layer_draws(
    gen: Stream, k: int, size0: Sequence[int], size1: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One stream's masks of ``k`` layer bundles, in the parties' order: ``A`` ``[k, P,
    batch, in]``, ``B`` ``[k, P, in, out]``, ``E`` ``[k, P, batch, out]``."""
    out = (*size0[:2], size1[2])
    return (
        draw_ring_sized((k, *size0), gen),
        draw_ring_sized((k, *size1), gen),
        draw_ring_sized((k, *out), gen),
    )


def _layer_products(
    a: torch.Tensor, b: torch.Tensor, e: torch.Tensor, flags: int
) -> list[torch.Tensor]:
    """The products of layer bundles (:func:`_layer_sizes`' order), flattened per bundle."""
    k = a.shape[0]
    prods = [ring_matmul(a, b)]
    if flags & LAYER_WEIGHTS:
        prods.append(ring_matmul(a.transpose(-1, -2).contiguous(), e))
    if flags & LAYER_INPUTS:
        prods.append(ring_matmul(e, b.transpose(-1, -2).contiguous()))
    return [p.reshape(k, -1) for p in prods]


def layer_triples(
    gen0: Stream, gen1: Stream, k: int, size0: Any, size1: Any, flags: int
) -> torch.Tensor:
    """Party 0's ``c₀`` of ``k`` layer bundles for ``h [P, batch, in] @ W [P, in, out]``.

    Each generator draws the masks ``A`` (of ``h``), ``B`` (of ``W``) and ``E`` (of the
    backward's ``dz [P, batch, out]``), then party 1 its shares ``c₁`` of the products
    (:func:`_layer_sizes`): the forward's ``A @ B`` and, as ``flags`` ask, ``Aᵀ @ E`` for
    ``dW = hᵀ @ dz`` and ``E @ Bᵀ`` for ``dh = dz @ Wᵀ``. The backward then opens only
    ``dz − E``: ``h − A`` and ``W − B`` were opened by the forward and are the same values
    (``hᵀ − Aᵀ`` and ``Wᵀ − Bᵀ``), so nothing new is revealed. Reply: per bundle its
    products' ``c₀`` flat and concatenated, ``[k · Σ sizes]``.
    """
    k, flags = int(k), int(flags)
    m0, m1 = _layer_draws(gen0, k, size0, size1), _layer_draws(gen1, k, size0, size1)
    a, b, e = (x + y for x, y in zip(m0, m1, strict=True))
    prods = torch.cat(_layer_products(a, b, e, flags), dim=1)
    return (prods - draw_ring(prods.numel(), gen1).view(prods.shape)).reshape(-1)


def newton_triples(gen0: Stream, gen1: Stream, n: int, iters: int) -> torch.Tensor:
    """Party 0's ``c₀`` ``[iters, 3, n]`` for ``iters`` Newton steps on ``n`` elements.

    Each generator draws the masks ``M`` ``[1 + 3·iters, n]`` (``A = M[0]`` for ``x``;
    per step ``k``: ``B_k = M[1 + 3k]`` for ``y``, ``C_k`` for ``x·y``, ``D_k`` for
    ``w = A − B·u``), then party 1's ``c₁``; step ``k``'s products are ``A·B_k``, ``C_k·B_k``
    and ``B_k·D_k`` (``x·y``, ``(x·y)·y``, ``y·w``), the parties' order in
    :meth:`Pools.newton_triples`.
    """
    n, iters = int(n), int(iters)
    rows = 1 + 3 * iters
    masks = (draw_ring(rows * n, gen0) + draw_ring(rows * n, gen1)).view(rows, n)
    a, b, c, d = masks[0], masks[1::3], masks[2::3], masks[3::3]
    products = torch.stack([a * b, c * b, b * d], dim=1)  # [iters, 3, n]
    return products - draw_ring(3 * iters * n, gen1).view(iters, 3, n)


def _triples_c0(
    gen0: Stream, gen1: Stream, size0: Any, size1: Any, product: Any, out: Any
) -> torch.Tensor:
    """``c₀ = (a₀ + a₁)·(b₀ + b₁) − c₁``: each generator draws ``a``, then ``b`` (then
    party 1's ``c₁``), in the parties' order."""
    a = draw_ring_sized(size0, gen0) + draw_ring_sized(size0, gen1)
    b = draw_ring_sized(size1, gen0) + draw_ring_sized(size1, gen1)
    return product(a, b) - draw_ring_sized(out, gen1)


def draw_ring_sized(size: Any, gen: Stream | torch.Generator) -> torch.Tensor:
    """Uniform ring elements of ``size`` from ``gen`` (a flat draw, reshaped)."""
    size = torch.Size(size)
    return draw_ring(size.numel(), gen).reshape(size)


# ----------------------------------------------------------------------------- server
def serve() -> None:
    """Run the dealer in this process until party 0 sends ``terminate``.

    Initialises CrypTen as the dealer rank (the caller has set its environment), sends
    each party its seed (CrypTen's ``TTPServer`` set-up), then answers typed frames from
    party 0. A frame it cannot decode, or a reply of the wrong size, raises. The caller
    gives the dealer's process groups a long timeout: the parties may go minutes without
    a request, and their own timeout applies to their side of every exchange.
    """
    crypten_module()
    import torch.distributed as dist
    from crypten.mpc.provider.ttp_provider import TTPServer

    class _Dealer(TTPServer):  # only its generator set-up and triple recipes are used
        def __init__(self) -> None:
            import crypten
            import crypten.communicator as comm

            crypten.init()
            self.ttp_group = comm.get().ttp_group
            self.comm_group = comm.get().ttp_comm_group
            self.device = "cpu"
            self._setup_generators()

        def answer(self, func: str, args: list[Any]) -> torch.Tensor:
            gens = self._get_generators(device="cpu")  # CrypTen's, for its own kinds
            if func == "additive" and args[2] == "matmul":  # any number of parties
                a = self._get_additive_PRSS(args[0])
                b = self._get_additive_PRSS(args[1])
                c = ring_matmul(a, b)
                return c - self._get_additive_PRSS(c.size(), remove_rank=True)
            if func in ("additive", "square", "binary", "wraps", "B2A"):
                return getattr(self, func)(*args)  # CrypTen's recipes
            if func == "cpu_usage":
                use = resource.getrusage(resource.RUSAGE_SELF)
                return torch.tensor(
                    [round(use.ru_utime * 1e6), round(use.ru_stime * 1e6), use.ru_minflt]
                )
            if len(gens) != 2:
                raise ValueError(f"dealer request {func!r} is two-party only, not {len(gens)}")
            g0, g1 = self.streams
            if func == "trunc_pairs":
                return trunc_pairs(g0, g1, args[0], args[1])
            if func == "carry_pairs":
                return carry_pairs(g0, g1, args[0], args[1])
            if func == "mul_flat":
                n = (int(args[0]),)
                return _triples_c0(g0, g1, n, n, torch.mul, n)
            if func == "newton_triples":
                return newton_triples(g0, g1, args[0], args[1])
            if func == "bit_mul":
                return bit_mul(g0, g1, args[0])
            if func == "bit_mul_back":
                return bit_mul_back(g0, g1, args[0])
            if func == "layer_many":
                return layer_triples(g0, g1, *args)
            if func == "square_flat":
                return square_flat(g0, g1, args[0])
            k, s0, s1 = args  # matmul_many
            out = (k, *_matmul_size(s0, s1))
            return _triples_c0(g0, g1, (k, *s0), (k, *s1), ring_matmul, out)

    dealer = _Dealer()
    # one AES stream key per party, sent once (CrypTen's seeds went the same way)
    keys = [new_key() for _ in range(len(dealer._get_generators(device="cpu")))]
    sent = [dist.isend(_key_words(k), dst=p, group=dealer.ttp_group) for p, k in enumerate(keys)]
    for req in sent:
        if req is not None:
            req.wait()
    dealer.streams = [Stream(k) for k in keys]
    group = dealer.comm_group
    while True:
        frame = torch.empty(FRAME, dtype=torch.int64)
        # waits as long as the dealer's groups allow (runtime.DEALER_WAIT_S): the parties
        # may go minutes without a request; a party that dies closes the connection
        dist.recv(frame, src=0, group=group)
        func, args = decode(frame)
        if func == "terminate":
            return
        reply = dealer.answer(func, args).contiguous()
        want = result_size(func, args)
        if reply.size() != want or reply.dtype != torch.int64:
            raise RuntimeError(f"dealer reply to {func} {args}: {reply.size()}, expected {want}")
        dist.send(reply, dst=0, group=group)


# ----------------------------------------------------------------------------- client
def _request(func: str, args: Sequence[Any], kwargs: dict | None = None) -> torch.Tensor:
    """Party 0: send one typed request, receive the reply (one counted round)."""
    return _Reply(func, args, kwargs).result()


@functools.cache
def _sender() -> concurrent.futures.ThreadPoolExecutor:
    """This process's one dealer-request sender thread (made on first use)."""
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="smpc-dealer-send"
    )


def _send_later(frame: torch.Tensor, dst: int, group: Any) -> concurrent.futures.Future:
    """Party 0: send ``frame`` to the dealer from this process's one sender thread.

    gloo's ``isend`` is not always quick: while gloo's I/O thread reads a multi-megabyte
    reply on the same connection, the call waits for it (a prefetched refill's reply is
    often arriving when the next request goes out). Measured in party 0 (``cProfile``,
    7 Adam updates of the cost benchmark): 14 requests per update, 3.2 ms each inside
    ``isend``, ~45 ms of a ~0.45 s update with party 1 waiting too. The sender thread
    waits instead (the call releases the GIL). One thread keeps the frames in the order
    they were handed over, so the dealer answers them in that order and every reply
    still lands in its own buffer; the frame tensor stays referenced by the future's
    work item until it is sent.
    """
    import torch.distributed as dist

    return _sender().submit(dist.send, frame, dst, group)


class _Reply:
    """Party 0: a request sent now whose reply is read later (:meth:`result`).

    The reply buffer is posted with ``irecv`` and the frame is handed to the sender
    thread (:func:`_send_later`), so the dealer computes the reply while the parties go
    on; requests and replies keep their order (one sender, one channel, answered in
    turn), so a later synchronous :func:`_request` still gets its own reply. A failed
    send is raised by :meth:`result`. Counted like :func:`_request` (one round, the frame
    plus the reply), with the time spent waiting in :meth:`result`; a ``pooled`` reply's
    words are counted by :class:`Pools` as its correlations are handed out instead.
    """

    def __init__(
        self,
        func: str,
        args: Sequence[Any],
        kwargs: dict | None = None,
        pooled: bool = False,
    ) -> None:
        crypten = crypten_module()
        import torch.distributed as dist

        self.pooled = pooled
        self._comm = crypten.communicator.get()
        self._frame = encode(func, args, kwargs)  # kept alive until sent
        ttp, group = self._comm.get_ttp_rank(), self._comm.ttp_comm_group
        self.reply = torch.empty(result_size(*decode(self._frame)), dtype=torch.int64)
        work = dist.irecv(self.reply, src=ttp, group=group)
        if work is None:  # torch returns None only to a process outside the group
            raise RuntimeError("this process is not in the dealer's process group")
        self._works = [work]
        self._sent: concurrent.futures.Future | None = _send_later(self._frame, ttp, group)

    def result(self) -> torch.Tensor:
        """The reply (waits for it the first time; raises if the request was not sent)."""
        if self._sent is not None or self._works:
            t0 = time.perf_counter()
            sent, self._sent = self._sent, None
            if sent is not None:
                sent.result()
            for w in self._works:
                w.wait()
            self._works = []
            words = FRAME + (0 if self.pooled else self.reply.numel())
            self._comm._log_communication(words)
            charge_dealer(words * self._comm.BYTES_PER_ELEMENT)
            self._comm._log_communication_time(time.perf_counter() - t0)
        return self.reply


def dealer_usage() -> tuple[float, float, int]:
    """Party 0, ``TTP`` provider: the dealer process's CPU seconds so far, ``(user,
    system)``, and its minor page faults so far (one counted round trip, answered after
    every request sent before it).

    For cost profiles: the dealer shares the machine with the parties in a local run, so
    its CPU belongs in the update's budget; page faults (first touches of memory the
    process had not used yet) are a large part of the system time on some machines.
    """
    user_us, sys_us, faults = (int(x) for x in _request("cpu_usage", ()).tolist())
    return user_us / 1e6, sys_us / 1e6, faults


def dealer_cpu_seconds() -> tuple[float, float]:
    """Party 0, ``TTP`` provider: the dealer's CPU seconds so far, ``(user, system)``
    (:func:`dealer_usage` without the page faults)."""
    user_s, sys_s, _ = dealer_usage()
    return user_s, sys_s


def _typed_ttp_request(self: Any, func_name: str, device: Any, *args: Any, **kwargs: Any) -> Any:
    """CrypTen's ``TTPClient.ttp_request`` over typed frames (see the module doc)."""
    if device is not None and torch.device(device).type != "cpu":
        raise ValueError(f"the dealer serves CPU tensors only, got device {device}")
    return _request(func_name, args, kwargs)


def install_client() -> None:
    """Route CrypTen's dealer requests (``TTPClient.ttp_request``) through :func:`_request`.

    Call after ``crypten.init()`` with the TTP provider, in every party: it also
    receives this party's stream key from the dealer (:func:`serve`), so the dealer
    must be running.
    """
    crypten_module()
    import torch.distributed as dist
    from crypten.mpc.provider.ttp_provider import TTPClient

    client = TTPClient.get()  # receives CrypTen's seed first
    type(client).ttp_request = _typed_ttp_request
    # then this party's AES stream key (serve() sends it right after the seeds)
    words = torch.empty(KEY_BYTES // 8, dtype=torch.int64)
    comm = crypten_module().communicator.get()
    dist.recv(words, src=comm.get_ttp_rank(), group=client.ttp_group)
    client._smpc_stream = Stream(words.numpy().tobytes())


def _key_words(key: bytes) -> torch.Tensor:
    """A stream key as int64 words, for sending."""
    return torch.frombuffer(bytearray(key), dtype=torch.int64)


def stop() -> None:
    """Party 0: tell the dealer to stop (a ``terminate`` frame), and keep CrypTen's
    shutdown from sending its pickled one. A no-op elsewhere or without a dealer."""
    crypten = crypten_module()
    comm = crypten.communicator.get()
    if comm is None or not getattr(comm, "ttp_initialized", False):
        return
    comm.ttp_initialized = False
    if comm.get_rank() == 0:
        from crypten.mpc.provider.ttp_provider import TTPClient

        found = getattr(TTPClient.get(), "_smpc_pools", None)
        if found is not None:
            found.drain()  # read every prefetched reply before the dealer stops
        # through the sender thread too: after every earlier frame
        _send_later(encode("terminate"), comm.get_ttp_rank(), comm.ttp_comm_group).result()


class Pools:
    """This party's pooled dealer correlations (see the module doc). One per CrypTen
    session (:func:`pools`); every method is called by both parties in the same order.

    **Prefetch.** Whenever a pool is refilled, the next refill of the same pool is started
    at once (``prefetch``, on by default): both parties draw their shares of it then, and
    party 0 sends the request without waiting for the reply (:class:`_Reply`), which it
    reads when the pool runs dry again. The dealer's work then overlaps the parties'
    instead of stalling party 0 (and party 1, waiting on party 0) at every refill. Both
    parties draw, and party 0 asks, at the same points of the same program, so the three
    streams stay aligned exactly as without prefetch. Costs one extra chunk per pool.

    **Counting.** A refill serves many products, often over several updates, so its reply
    is not counted in party 0's bytes when it arrives (the request's round and frame
    are): party 0 counts the reply's words of every correlation as it hands it out
    (:meth:`_used`). Bytes per update are then what the update's correlations cost, not
    which refills happened to fall into it (counted on arrival, a 4-update window's
    figure moved by ±8 MB with the refills' timing).
    """

    def __init__(self, rank: int, generator: Stream, prefetch: bool = True) -> None:
        self.rank = rank
        self.gen = generator
        self.prefetch = prefetch
        self.flat: dict[tuple, list[Any]] = {}  # key -> [tensors, position]
        self.mats: dict[tuple, list[Any]] = {}
        self.ahead: dict[tuple, Any] = {}  # key -> the next refill, started

    def _used(self, words: float) -> None:
        """Count ``words`` of dealer replies as used (party 0's bytes; no round)."""
        if self.rank == 0:
            comm = crypten_module().communicator.get()
            comm.comm_bytes += words * comm.BYTES_PER_ELEMENT
            charge_dealer(words * comm.BYTES_PER_ELEMENT)

    def _next(self, key: tuple, start: Any) -> Any:
        """The next refill of pool ``key``: the prefetched one if started, else ``start()``
        now; then, with prefetch, the one after it is started."""
        started = self.ahead.pop(key, None)
        fresh = (started if started is not None else start())()
        if self.prefetch:
            self.ahead[key] = start()
        return fresh

    def _batched(self, key: tuple, start: Any) -> tuple[Any, int]:
        """``(batch, i)``: the current refill of the batched pool ``key`` (:data:`MATMUL_BATCH`
        bundles of one shape, from ``start``) and the index of the next unused bundle in
        it, which is then taken; a used-up batch is replaced by the next refill."""
        entry = self.mats.get(key)
        if entry is None or entry[1] >= MATMUL_BATCH:
            entry = [self._next(key, start), 0]
            self.mats[key] = entry
        batch, i = entry
        entry[1] = i + 1
        return batch, i

    def _take(
        self, key: tuple, n: int, refill: Any, chunk: int = CHUNK, dim: int = 0
    ) -> list[torch.Tensor]:
        """The next ``n`` elements of pool ``key`` (along ``dim`` of each of its tensors),
        refilled by ``refill(m)``."""
        entry = self.flat.get(key)
        if entry is not None and entry[1] + n <= entry[0][0].shape[dim]:
            parts, pos = entry
            entry[1] = pos + n
            return [p.narrow(dim, pos, n) for p in parts]
        # what is left of the old chunk is used first, then the prefetched refill, then
        # (if a request outgrows both) refills made now; only the n elements handed out
        # are copied, never a whole chunk
        have = 0 if entry is None else entry[0][0].shape[dim] - entry[1]
        pieces = (
            [[p.narrow(dim, entry[1], have) for p in entry[0]]]
            if entry is not None and have
            else []
        )
        while True:
            fresh = self._next(key, lambda: refill(max(n, chunk)))
            need = n - have
            if fresh[0].shape[dim] >= need:
                pieces.append([f.narrow(dim, 0, need) for f in fresh])
                self.flat[key] = [fresh, need]
                break
            pieces.append(fresh)
            have += fresh[0].shape[dim]
        if len(pieces) == 1:
            return pieces[0]
        return [torch.cat(cols, dim) for cols in zip(*pieces, strict=True)]

    def trunc_pairs(self, n: int, nbits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(bit, t)`` of ``n`` truncation pairs (``t₀ + t₁ = u·v mod 2^nbits``)."""

        def refill(m: int) -> Any:
            bits = draw_bits(m, self.gen, torch.uint8)
            if self.rank == 0:
                reply = _Reply("trunc_pairs", (m, nbits), pooled=True)
                return lambda: [bits, unpack_words(reply.result(), m, nbits)]
            t = draw_ring(m, self.gen)
            return lambda: [bits, t]

        bit, t = self._take(("trunc", nbits), n, refill)
        self._used(n * nbits / 64)  # t₀ packed nbits per element
        return bit, t

    def carry_pairs(self, n_words: int, nbits: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mask [rows, n_words], t [outputs, n_words])``: this party's carry-tree
        correlation over ``nbits`` bits of ``64·n_words`` elements (a refill holds about
        :data:`CHUNK` words in all, row by row; what is handed out are views of its
        columns)."""
        rows, outs = carry_size(nbits)

        def refill(m: int) -> Any:
            mask = draw_ring(m * rows, self.gen).view(rows, m)
            if self.rank == 0:
                reply = _Reply("carry_pairs", (m, nbits), pooled=True)
                return lambda: [mask, reply.result().view(outs, m)]
            t = draw_ring(m * outs, self.gen).view(outs, m)
            return lambda: [mask, t]

        chunk = max(1, CHUNK // (rows + outs))
        mask, t = self._take(("carry", nbits), n_words, refill, chunk, dim=1)
        self._used(n_words * outs)
        return mask, t

    def mul_triple(self, size: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This party's raw shares ``(a, b, c)`` of an elementwise triple of ``size``."""
        size = torch.Size(size)

        def refill(m: int) -> Any:
            a, b = draw_ring(m, self.gen), draw_ring(m, self.gen)
            if self.rank == 0:
                reply = _Reply("mul_flat", (m,), pooled=True)
                return lambda: [a, b, reply.result()]
            c = draw_ring(m, self.gen)
            return lambda: [a, b, c]

        a, b, c = self._take(("mul",), size.numel(), refill)
        self._used(size.numel())
        return a.reshape(size), b.reshape(size), c.reshape(size)

    def square(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This party's shares ``(r, s)`` of ``n`` Beaver squares, ``s`` of ``r²``."""

        def refill(m: int) -> Any:
            r = draw_ring(m, self.gen)
            if self.rank == 0:
                reply = _Reply("square_flat", (m,), pooled=True)
                return lambda: [r, reply.result()]
            s = draw_ring(m, self.gen)
            return lambda: [r, s]

        r, s = self._take(("square",), n, refill)
        self._used(n)
        return r, s

    def bit_mul(self, n: int) -> tuple[torch.Tensor, ...]:
        """This party's ``(r, A, rᴬ, c)`` of ``n`` bit-times-value correlations
        (:func:`bit_mul`): its XOR share of the bit ``r``, its shares of the mask ``A``,
        of ``r`` as a ring element and of ``A·r``."""

        def refill(m: int) -> Any:
            r, a = draw_bits(m, self.gen), draw_ring(m, self.gen)
            if self.rank == 0:
                reply = _Reply("bit_mul", (m,), pooled=True)
                return lambda: [r, a, *reply.result()]
            r_a, c = draw_ring(m, self.gen), draw_ring(m, self.gen)
            return lambda: [r, a, r_a, c]

        out = tuple(self._take(("bitmul",), n, refill))
        self._used(2 * n)
        return out

    def bit_mul_back(self, n: int) -> tuple[torch.Tensor, ...]:
        """This party's ``(r, A, A', rᴬ, c, c')`` of ``n`` :func:`bit_mul_back`
        correlations: :meth:`bit_mul`'s, plus shares of a second mask ``A'`` and of
        ``A'·r`` for the same bit."""

        def refill(m: int) -> Any:
            r, a, a2 = draw_bits(m, self.gen), draw_ring(m, self.gen), draw_ring(m, self.gen)
            if self.rank == 0:
                reply = _Reply("bit_mul_back", (m,), pooled=True)
                return lambda: [r, a, a2, *reply.result()]
            r_a, c, c2 = (draw_ring(m, self.gen) for _ in range(3))
            return lambda: [r, a, a2, r_a, c, c2]

        out = tuple(self._take(("bitmul_back",), n, refill))
        self._used(3 * n)
        return out

    def layer_triple(self, size0: Any, size1: Any, flags: int) -> tuple[torch.Tensor, ...]:
        """This party's raw shares ``(A, B, E, c)`` of one :func:`layer_triples` bundle
        for ``[P, batch, in] @ [P, in, out]``: the masks, and ``c`` the products' shares
        in :func:`_layer_sizes`' order (``None`` where ``flags`` leave one out).

        Pooled like :meth:`matmul_triple` (:data:`MATMUL_BATCH` per refill, prefetched).
        """
        size0, size1, flags = torch.Size(size0), torch.Size(size1), int(flags)
        key = ("layer", tuple(size0), tuple(size1), flags)
        sizes = _layer_sizes(size0, size1, flags)

        def start() -> Any:
            k = MATMUL_BATCH
            masks = _layer_draws(self.gen, k, size0, size1)
            if self.rank == 0:
                reply = _Reply("layer_many", (k, size0, size1, flags), pooled=True)
                return lambda: (*masks, reply.result().view(k, -1))
            c = draw_ring(k * sum(sizes), self.gen).view(k, -1)
            return lambda: (*masks, c)

        (a, b, e, c), i = self._batched(key, start)
        self._used(sum(sizes))
        parts = iter(c[i].split(sizes))
        shapes = _layer_shapes(size0, size1, flags)
        prods = [None if sh is None else next(parts).view(sh) for sh in shapes]
        return (a[i], b[i], e[i], *prods)

    def newton_triples(self, n: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This party's shares ``(masks [1 + 3·iters, n], c [iters, 3, n])`` of the
        shared-mask triples of ``iters`` Newton steps (:func:`newton_triples`).

        One bundle per refill, prefetched: the next one of the same ``(n, iters)`` is
        started as soon as this one is taken (each optimiser asks for its own ``n``).
        """
        n, iters = int(n), int(iters)
        rows = 1 + 3 * iters

        def start() -> Any:
            masks = draw_ring(rows * n, self.gen).view(rows, n)
            if self.rank == 0:
                reply = _Reply("newton_triples", (n, iters), pooled=True)
                return lambda: (masks, reply.result())
            c = draw_ring(3 * iters * n, self.gen).view(iters, 3, n)
            return lambda: (masks, c)

        self._used(3 * iters * n)
        return self._next(("newton", n, iters), start)

    def _matmul_batch(self, size0: torch.Size, size1: torch.Size) -> Any:
        """Start a refill of :data:`MATMUL_BATCH` matmul triples; returns its finisher."""
        k = MATMUL_BATCH
        a = draw_ring_sized((k, *size0), self.gen)
        b = draw_ring_sized((k, *size1), self.gen)
        if self.rank == 0:
            reply = _Reply("matmul_many", (k, size0, size1), pooled=True)
            return lambda: (a, b, reply.result())
        c = draw_ring_sized((k, *_matmul_size(size0, size1)), self.gen)
        return lambda: (a, b, c)

    def matmul_triple(self, size0: Any, size1: Any) -> tuple[torch.Tensor, ...]:
        """This party's raw shares ``(a, b, c = a @ b)`` of a matmul triple."""
        size0, size1 = torch.Size(size0), torch.Size(size1)
        key = ("matmul", tuple(size0), tuple(size1))
        (a, b, c), i = self._batched(key, lambda: self._matmul_batch(size0, size1))
        self._used(c[i].numel())
        return a[i], b[i], c[i]

    def drain(self) -> None:
        """Read every started refill's reply (party 0, before the dealer is stopped)."""
        for started in self.ahead.values():
            started()
        self.ahead.clear()


def pools() -> Pools:
    """This party's :class:`Pools` for the current CrypTen session (TTP provider)."""
    crypten = crypten_module()
    from crypten.mpc.provider.ttp_provider import TTPClient

    client = TTPClient.get()
    found = getattr(client, "_smpc_pools", None)
    if found is None:
        found = Pools(crypten.communicator.get().get_rank(), client._smpc_stream)
        client._smpc_pools = found
    return found
