"""Encrypted MLPs with hand-written forward and backward passes on CrypTen shares.

CrypTen's own route (``crypten.nn`` modules + CrypTen autograd) evaluates one network at a
time and builds an autograd graph of many small secure ops. For MADDPG we know the whole
computation in advance, so this module does it by hand, on arithmetic shares
(``MPCTensor``), with these cost-saving rules:

* **Stacking.** A :class:`SharedMLP` holds ``P`` networks of identical shape as one
  tensor per layer (weights ``[P, in, out]``, biases ``[P, 1, out]``), and
  :func:`forward_stacked` concatenates several of them (e.g. both players' actors *and*
  their target actors) so that each layer is **one** batched Beaver matmul and each ReLU
  layer **one** secure comparison for all of them: the round count of one network, for the
  price (bytes) of all.
* **Fused Beaver products.** :func:`beaver_many` opens the masked operands of several
  independent products (e.g. ``dW = Hᵀ·dZ`` and ``dH = dZ·Wᵀ`` of the same layer) in a
  single communication round.
* **Exact comparisons.** ReLU signs use the dealer-assisted carry-tree sign test
  (:func:`ltz`, :mod:`smpc_gym.secure.compare`) over :data:`ACT_BITS` bits, exact for
  every pre-activation the products before it allow (raw ``|z| < 2^48``).
* **Finer activations.** Hidden activations are held with :data:`ACT_FRAC_BITS` (24)
  fractional bits, weights, outputs and gradients with CrypTen's 16: a ReLU then decides
  as a floating-point twin does unless its input is within ``2^-24`` of 0.
* **Reused comparisons.** The ReLU mask ``[z > 0]`` computed in the forward pass is kept
  in the cache and multiplies the gradient in the backward pass (no second comparison);
  ``σ(z)`` is kept for the sigmoid derivative ``σ(1 − σ)``.
* **Reused masks.** Told what the backward pass will compute (:class:`BackwardPlan`), the
  forward pass takes dealer correlations whose masks of ``h`` and ``W`` the backward's
  products ``hᵀ·dZ`` and ``dZ·Wᵀ`` reuse, and whose ReLU bits carry a second mask for the
  gradient: the backward pass then opens only gradients (each under a fresh mask), not
  ``h``, ``W``, ``dZ`` a second time or the 0/1 masks again.

Nothing here reveals anything: every input, weight, intermediate and gradient stays
secret-shared. Truncation after a fixed-point product is exact
(:mod:`smpc_gym.secure.trunc`: one round for all products of a :func:`beaver_many`
call), never CrypTen's local two-party truncation, which fails at random.

Layout convention: inputs are ``[P, B, in]`` (network ``p`` sees row block ``p``),
outputs ``[P, B, out]``. Plaintext ``torch.nn.Linear`` weights (``[out, in]``) are
transposed on import and export.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from smpc_gym.secure._crypten import crypten_module
from smpc_gym.secure.comm import phase

__all__ = [
    "ACT_BITS",
    "ACT_FRAC_BITS",
    "OUT_ACTS",
    "BackwardPlan",
    "MLPCache",
    "SharedMLP",
    "backward_stacked",
    "beaver_many",
    "correlation_source",
    "fast_dispatch",
    "forward_stacked",
    "frac_bits",
    "inject_again",
    "inject_bits",
    "lift",
    "ltz",
    "open_many",
    "relu",
    "relu_mask",
    "share_rounded",
    "sigmoid",
    "square",
    "square_raw",
    "wrap_shares",
]

#: Output activations a :class:`SharedMLP` supports.
OUT_ACTS = ("identity", "sigmoid")


def _crypten() -> Any:
    return crypten_module()


def share_rounded(x: torch.Tensor, src: int, bits: int | None = None) -> Any:
    """``crypten.cryptensor(x, src=src)`` with ``x`` rounded to the *nearest* grid point.

    CrypTen's encoder truncates toward zero (``(scale·x).long()``), so every value
    entering the protocol that way lands up to one unit of the grid closer to 0 than it
    is: a bias, not a rounding. Rounded in float64 first, the encoder's truncation is
    exact (for ``|x| < 2^(53 − bits)``). Only ``src``'s values matter; the other parties
    pass any tensor of the same shape (CrypTen ignores it). ``bits``: fractional bits
    (default CrypTen's 16). Secure MADDPG shares its inputs through this: initial weights
    at 16 bits, the networks' inputs (minibatches, observations for acting) at
    :data:`ACT_FRAC_BITS`.

    Raises:
        ValueError: if ``bits`` is not in ``[0, 30]``.
    """
    crypten = _crypten()
    if bits is not None and not (isinstance(bits, int) and 0 <= bits <= 30):
        raise ValueError(f"bits: bad value {bits!r}; expected an int in [0, 30]")
    kw = {} if bits is None else {"precision": bits}
    scale = float(crypten.encoder.FixedPointEncoder(precision_bits=bits).scale)
    return crypten.cryptensor(torch.round(x.double() * scale) / scale, src=src, **kw)


#: Fractional bits of the hidden activations of :func:`forward_stacked` (and of the
#: inputs secure MADDPG shares): ``2^-24``, where weights and gradients keep CrypTen's
#: ``2^-16``. A ReLU whose pre-activation lies within the rounding of 0 can decide
#: differently from a floating-point twin, and one flipped sample changes a whole row of
#: the layer's gradient (Adam passes it on at ``(1 − β₁)·lr·δ/√v̂``); at ``2^-16`` such
#: a flip moved a weight by more than 1e-3 on a few of 2,000 pre-trained updates, for a
#: perfect 16-bit fixed point as for the secure update. 8 more bits make the rounding
#: 256 times finer. The price is range: a hidden layer's raw product ``h·W`` is at
#: ``2^-40`` and must stay below ``2^62``, so ``|h·W| < 2^22``
#: (``docs/security/fixed-point.md``). No round more and the same party-to-party bytes;
#: truncations by ``2^24`` take 32-bit dealer words where ``2^16`` took 16-bit ones.
ACT_FRAC_BITS = 24


def frac_bits(x: Any) -> int:
    """The fractional bits of a fixed-point share ``x`` (0 for a 0/1 or integer share)."""
    return int(x._tensor.encoder.scale).bit_length() - 1


def lift(x: Any, bits: int) -> Any:
    """``x`` with ``bits`` fractional bits, ``bits >= frac_bits(x)``: exact and local (each
    share shifted left; the value is unchanged, its raw magnitude grows by the shift).

    Raises:
        ValueError: if ``bits`` is below ``x``'s fractional bits (that needs a truncation).
    """
    have = frac_bits(x)
    if bits == have:
        return x
    if bits < have:
        raise ValueError(f"lift to {bits} fractional bits: the share has {have}, more")
    enc = _crypten().encoder.FixedPointEncoder(precision_bits=bits)
    return wrap_shares(x._tensor.share << (bits - have), enc)


# ----------------------------------------------------------------------------- primitives


class _NoValidation:
    """Stand-in for ``crypten.debug``'s config: ``debug.validation_mode`` is a plain False."""

    class debug:  # noqa: N801 - mirrors the config path ``cfg.debug.validation_mode``
        validation_mode = False


@contextmanager
def fast_dispatch() -> Iterator[None]:
    """Skip two of CrypTen's per-call overheads while the block runs (results unchanged).

    * Every attribute access on a ``CrypTensor`` goes through ``validate_attribute``,
      which reads ``cfg.debug.validation_mode`` from CrypTen's OmegaConf config — two
      OmegaConf lookups, ~30 µs, thousands of times per MADDPG update (a fifth of its
      time in the profile). When validation mode is off (the default) this block points
      that check at a constant ``False``; when it is on, the check stays.
    * ``MPCTensor.shallow_copy`` and ``clone`` (behind every CrypTen operation that
      returns a new tensor: ``+``, ``cat``, indexing …) start from ``MPCTensor([])``,
      which builds and zero-shares a whole empty ``ArithmeticSharedTensor`` (CrypTen's
      ``tensor is []`` test never holds), ~0.2 ms each, hundreds of times per update;
      here they build the wrapper directly, as :func:`wrap_shares` does.

    CrypTen's config and methods are restored afterwards; every computation is the same.
    """
    crypten = _crypten()
    from crypten.mpc import MPCTensor

    debug = sys.modules.get("crypten.debug")
    swap_cfg = debug is not None and not crypten.cfg.debug.validation_mode
    saved_cfg = debug.cfg if swap_cfg else None  # type: ignore[union-attr]
    saved = MPCTensor.shallow_copy, MPCTensor.clone
    if swap_cfg:
        debug.cfg = _NoValidation  # type: ignore[union-attr]
    MPCTensor.shallow_copy = _shallow_copy  # type: ignore[method-assign]
    MPCTensor.clone = _clone  # type: ignore[method-assign]
    try:
        yield
    finally:
        MPCTensor.shallow_copy, MPCTensor.clone = saved  # type: ignore[method-assign]
        if swap_cfg:
            debug.cfg = saved_cfg  # type: ignore[union-attr]


def _bare_like(x: Any, inner: Any) -> Any:
    """An ``MPCTensor`` of ``x``'s ptype around ``inner``, without CrypTen's constructor."""
    from crypten.cryptensor import CrypTensor
    from crypten.mpc import MPCTensor

    res = MPCTensor.__new__(MPCTensor)
    CrypTensor.__init__(res)
    res._tensor = inner
    res.ptype = x.ptype
    return res


def _shallow_copy(self: Any) -> Any:
    return _bare_like(self, self._tensor)


def _clone(self: Any) -> Any:
    return _bare_like(self, self._tensor.clone())


def wrap_shares(share: torch.Tensor, encoder: Any) -> Any:
    """An arithmetic ``MPCTensor`` around this party's raw ``share`` (local, no PRZS).

    CrypTen's ``shallow_copy`` / ``MPCTensor.from_shares`` first build an empty shared
    tensor (a zero-sharing draw and several config lookups, ~0.5 ms) and then replace
    it; this builds the wrapper directly. ``encoder`` fixes the fixed-point scale.
    """
    from crypten.cryptensor import CrypTensor
    from crypten.mpc import MPCTensor
    from crypten.mpc.primitives.arithmetic import SENTINEL, ArithmeticSharedTensor
    from crypten.mpc.ptype import ptype

    ast = ArithmeticSharedTensor(src=SENTINEL)
    ast.share = share
    ast.encoder = encoder
    res = MPCTensor.__new__(MPCTensor)
    CrypTensor.__init__(res)
    res._tensor = ast
    res.ptype = ptype.arithmetic
    return res


def _matmul_triple(provider: Any, size0: torch.Size, size1: torch.Size, rank: int) -> tuple:
    """This party's raw shares of a Beaver matmul triple ``(a, b, c = a @ b)``.

    With the ``TFP`` provider this does what CrypTen's ``TrustedFirstParty`` does (party 0
    draws ``a``, ``b`` from its local generator, computes ``c`` and shares all three
    with ``src=0``, no communication), except that ``c`` is computed with
    :func:`smpc_gym.secure.ring.ring_matmul` (exact) and only by party 0
    (CrypTen computes it in every party and discards it in all but party 0).

    With the ``TTP`` provider (the dealer) the triple comes from the dealer's pooled
    matmul triples (:meth:`smpc_gym.secure.dealer.Pools.matmul_triple`: several of one
    shape per request, each party expanding its dealer seed into its shares of ``a``,
    ``b`` and, for party 1, ``c``). Any other provider is asked as usual.
    """
    from crypten.common.rng import generate_random_ring_element
    from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor
    from crypten.mpc.provider.tfp_provider import TrustedFirstParty
    from crypten.mpc.provider.ttp_provider import TrustedThirdParty

    from smpc_gym.secure.dealer import broadcast
    from smpc_gym.secure.ring import ring_matmul

    out_size = broadcast(size0[:-2], size1[:-2]) + (size0[-2], size1[-1])
    if (
        isinstance(provider, TrustedThirdParty)
        and _crypten().communicator.get().get_world_size() == 2
    ):
        from smpc_gym.secure.dealer import pools

        return tuple(pools().matmul_triple(size0, size1))
    if not isinstance(provider, TrustedFirstParty):
        return tuple(t.share for t in provider.generate_additive_triple(size0, size1, "matmul"))
    if rank == 0:
        a = generate_random_ring_element(size0)
        b = generate_random_ring_element(size1)
        c = ring_matmul(a, b)
        return tuple(ArithmeticSharedTensor(t, precision=0, src=0).share for t in (a, b, c))
    return tuple(
        ArithmeticSharedTensor(None, size=sz, precision=0, src=0).share
        for sz in (size0, size1, out_size)
    )


def open_many(shares: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Open several additively shared tensors to both parties in **one** exchange.

    Two parties: each sends its shares of all tensors as one flat int64 message and adds
    the other's (:func:`smpc_gym.secure.trunc._exchange`). CrypTen's ``reveal_batch``
    opens the same values with one gloo ``all_reduce`` per tensor, each several messages,
    and then waits for all of them; the bytes are the same (counted alike: sent plus
    received) and so is the round, but there is one message each way. Measured for four
    tensors of 512 elements: 0.4 ms against 4.1 ms (``reveal_batch``) and 0.8 ms (one
    ``all_reduce`` of the concatenation). Other world sizes use ``reveal_batch``.

    Reveals: the opened values, to both parties (in :func:`beaver_many`: masked operands).
    """
    from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor

    from smpc_gym.secure.trunc import _exchange

    comm = _crypten().communicator.get()
    if comm.get_world_size() != 2:
        return ArithmeticSharedTensor.reveal_batch(
            [ArithmeticSharedTensor.from_shares(s, precision=0) for s in shares]
        )
    flat = torch.cat([s.reshape(-1) for s in shares])
    total = flat + _exchange(flat, comm.get_rank())
    parts = total.split([s.numel() for s in shares])
    return [p.view(s.shape) for p, s in zip(parts, shares, strict=True)]


#: One product of :func:`beaver_many`: ``(op, x, y)`` or ``(op, x, y, shift)``.
BeaverOp = tuple[str, Any, Any] | tuple[str, Any, Any, int]


def beaver_many(ops: Sequence[BeaverOp]) -> list[Any]:
    """Several independent secure products ``x op y`` in **one** communication round.

    Each element of ``ops`` is ``(op, x, y)`` with ``op`` in ``{"mul", "matmul"}`` and
    ``x``, ``y`` fixed-point ``MPCTensor``s. For each product a Beaver triple
    ``(a, b, c = a op b)`` comes from the configured provider (TFP or TTP); all masked
    operands ``ε = x − a`` and ``δ = y − b`` are opened together in one exchange
    (:func:`open_many`), then party ``r`` computes its share of
    ``z = c + ε op (b + δ) + a op δ`` locally — two local products instead of CrypTen's
    three, the public ``ε op δ`` folded into party 0's ``b + δ`` — and truncates locally
    (2-party truncation). Matmuls use :func:`smpc_gym.secure.ring.ring_matmul` (exact
    ring products on the faster of two kernels). Same result as CrypTen's ``x.mul(y)`` /
    ``x.matmul(y)``, one round instead of ``len(ops)``, plus **one** round of exact
    truncation (:func:`smpc_gym.secure.trunc.trunc_many`) for all fixed-point products
    together: correct whenever every product's raw value is below 2^62, i.e. ``|x·y| <
    2^30`` at 16 fractional bits (CrypTen's local truncation fails at random instead).

    An op may carry a fourth element ``s`` (an int ``>= 0``): the product is then also
    divided by ``2^s`` in the same truncation (an exact public ``×2^−s`` for free).
    Operands of two fixed-point scales (a hidden activation at :data:`ACT_FRAC_BITS`
    times a weight at 16) give a product at the larger one: it is truncated by the
    smaller.

    Returns:
        The products, in the order of ``ops``, as ``MPCTensor``s.
    """
    return _beaver(ops, [None] * len(ops))[0]


def _beaver(
    ops: Sequence[BeaverOp], given: Sequence[tuple[torch.Tensor, ...] | None]
) -> tuple[list[Any], list[torch.Tensor]]:
    """:func:`beaver_many` with some triples given: ``given[k]`` is this party's raw
    ``(a, b, c)`` for ``ops[k]`` or None (taken from the provider as usual). Returns the
    products and the opened ``[x₀ − a₀, y₀ − b₀, x₁ − a₁, …]``."""
    crypten = _crypten()
    from smpc_gym.secure.ring import ring_matmul
    from smpc_gym.secure.trunc import trunc_many

    if not ops:
        return [], []
    from crypten.mpc.provider.ttp_provider import TrustedThirdParty

    from smpc_gym.secure.dealer import pools

    provider = crypten.mpc.get_default_provider()
    comm = crypten.communicator.get()
    # the dealer's pooled triples (two parties)
    pooled = isinstance(provider, TrustedThirdParty) and comm.get_world_size() == 2
    rank = comm.get_rank()
    triples = []
    masked = []
    shifts = [int(o[3]) if len(o) > 3 else 0 for o in ops]
    for (op, x, y, *_), mine in zip(ops, given, strict=True):
        if op not in ("mul", "matmul"):
            raise ValueError(f"beaver_many supports 'mul' and 'matmul', got {op!r}")
        xs, ys = x._tensor, y._tensor
        if mine is not None:
            a, b, c = mine
        elif op == "matmul":
            a, b, c = _matmul_triple(provider, xs.size(), ys.size(), rank)
        elif pooled and xs.size() == ys.size():
            a, b, c = pools().mul_triple(xs.size())
        else:
            a, b, c = (t.share for t in provider.generate_additive_triple(xs.size(), ys.size(), op))
        triples.append((a, b, c))
        masked += [xs.share - a, ys.share - b]  # raw shares: no encoding involved
    opened = open_many(masked)
    shares, encoders, cuts = [], [], []
    for k, (op, x, y, *_) in enumerate(ops):
        a, b, c = triples[k]
        eps, delta = opened[2 * k], opened[2 * k + 1]
        fn = ring_matmul if op == "matmul" else torch.mul
        b_plus = b + delta if rank == 0 else b  # party 0 carries ε op δ
        shares.append(c + fn(eps, b_plus) + fn(a, delta))
        sx, sy = x._tensor.encoder.scale, y._tensor.encoder.scale
        if sx > 1 and sy > 1:  # at sx·sy: truncated by the smaller scale, at the larger
            encoders.append(x._tensor.encoder if sx >= sy else y._tensor.encoder)
            cuts.append((k, int(min(sx, sy)) << shifts[k]))
        else:  # a 0/1 mask (scale 1) times a fixed-point value: no truncation
            encoders.append(x._tensor.encoder if sx > 1 else y._tensor.encoder)
            if shifts[k]:
                cuts.append((k, 1 << shifts[k]))
    done = trunc_many([(shares[k], d) for k, d in cuts])  # one round for all
    for (k, _), t in zip(cuts, done, strict=True):
        shares[k] = t
    return [wrap_shares(sh, enc) for sh, enc in zip(shares, encoders, strict=True)], opened


#: The range the activation functions' comparisons are exact on: ``|z| < 2^ACT_BITS``
#: raw. A hidden pre-activation ``z = h·W + b`` is at :data:`ACT_FRAC_BITS` (``|z| <
#: 2^24``), the output layer's (the sigmoid's input) at 16 (``|z| < 2^32``). Both hold
#: whenever the products before them are exact: every layer's raw ``h·W`` is at
#: ``2^-40`` and :func:`beaver_many`'s truncation needs it below ``2^62``, so ``|h·W| <
#: 2^22``, which leaves ``|b| < 2^23`` for the bias, and the sigmoid's breakpoints
#: (``≤ 16``) fit in the rest. A wrapped-around truncation would already have corrupted
#: ``z`` (and shows as a huge revealed loss).
ACT_BITS = 48


def square_raw(x: Any) -> torch.Tensor:
    """This party's share of ``x²`` **untruncated** (at the square of ``x``'s scale): one
    Beaver square, one opening.

    With the dealer the pair ``(r, r²)`` is pooled from its AES streams
    (:meth:`smpc_gym.secure.dealer.Pools.square`): the parties open ``e = x − r`` and
    compute ``x² = e² + 2·e·r + r²`` locally. Other providers use CrypTen's square.
    Reveals ``e``, ``x`` masked by a uniform ring element.
    """
    crypten = _crypten()
    comm = crypten.communicator.get()
    if correlation_source() != "TTP":
        protocol = getattr(crypten.mpc.primitives, crypten.cfg.mpc.protocol)
        return protocol.square(x._tensor.clone()).share
    from smpc_gym.secure.dealer import pools

    share = x._tensor.share
    r, s = pools().square(int(share.numel()))
    r, s = r.reshape(share.shape), s.reshape(share.shape)
    (e,) = open_many([share - r])
    out = s + 2 * e * r
    return out + e * e if comm.get_rank() == 0 else out


def square(x: Any) -> Any:
    """``x²`` at ``x``'s fixed-point scale: :func:`square_raw`, then one exact truncation
    (correct for ``|x²| < 2^30``)."""
    from smpc_gym.secure.trunc import trunc_many

    (out,) = trunc_many([(square_raw(x), int(x._tensor.encoder.scale))])
    return wrap_shares(out, x._tensor.encoder)


def ltz(z: Any, bits: int | None = None) -> Any:
    """``[z < 0]`` as an arithmetic 0/1 share (scale 1).

    The dealer-assisted carry-tree sign test of :mod:`smpc_gym.secure.compare`. With
    ``bits=None`` it is exact over the **whole ring** (``|z| < 2^47`` at 16 fractional
    bits): 7 rounds and under a seventh of the bytes of CrypTen's 64-bit comparison
    (``MPCTensor._ltz``). With ``bits=k`` it is exact for every raw ``z`` in
    ``[−2^k, 2^k)`` and wrong outside (the caller states why its values are in range):
    the carry tree runs over ``k`` bits instead of 63 (``k = 48``: each party sends 136
    bits per element instead of 182, same rounds).
    """
    from smpc_gym.secure.compare import LOW_BITS, sign_share

    crypten = _crypten()
    comm = crypten.communicator.get()
    if comm.get_world_size() != 2:
        raise ValueError(f"ltz is a two-party protocol, world size is {comm.get_world_size()}")
    out = sign_share(z._tensor.share, comm.get_rank(), LOW_BITS if bits is None else bits)
    return wrap_shares(out, crypten.encoder.FixedPointEncoder(precision_bits=0))


def relu_mask(z: Any) -> Any:
    """``[z > 0]`` as an arithmetic share of 0/1, for a pre-activation ``z``.

    Computed as ``1 − [z < 0]`` with :func:`ltz`, exact for ``|z| < 2^32`` at 16 fractional
    bits, ``2^24`` at :data:`ACT_FRAC_BITS` (raw
    ``2^ACT_BITS``: see :data:`ACT_BITS` for why every pre-activation is in range;
    ``z = 0`` counts as active, which differs from ``torch.relu`` only where the output
    is 0 either way).
    """
    return 1 - ltz(z, ACT_BITS)


def relu(z: Any) -> tuple[Any, Any]:
    """``(relu(z), [z > 0])`` for a pre-activation ``z`` (exact for raw ``|z| < 2^48``:
    :data:`ACT_BITS`): the activation, and its 0/1 mask as an arithmetic share (scale 1)
    for the backward pass (``z = 0`` counts as active, as in :func:`relu_mask`).

    With the dealer (``TTP``) or ``TFP`` the sign test's XOR-shared bit ``b = [z ≥ 0]``
    multiplies ``z`` directly (:func:`smpc_gym.secure.compare.sign_bits`, then *bit
    injection*): per element one correlation ``(r, A, rᴬ, A·r)`` with ``r`` a uniform
    bit XOR-shared between the parties, ``rᴬ`` the same bit additively shared and ``A`` a
    ring mask (:meth:`smpc_gym.secure.dealer.Pools.bit_mul`). The parties open
    ``e = b ⊕ r`` (one bit) and ``z − A`` in **one** exchange; then ``b = e + (1 − 2e)·r``
    and ``z·b = e·z + (1 − 2e)·((z − A)·r + A·r)`` are local. That is one round and
    8 bytes + 1 bit each way, plus 16 bytes from the dealer to party 0, where
    :func:`relu_mask`'s conversion to an arithmetic share and a Beaver product of ``z``
    and the mask take two rounds and 16 bytes + 1 bit each way plus 16 from the dealer.

    Reveals: ``e``, the bit masked by a uniform bit neither party knows, and ``z − A``,
    uniform. Under ``TFP`` party 0 draws ``r`` and ``A`` and could unmask both, as it can
    every Beaver operand there. Other providers: :func:`relu_mask` and a Beaver product.
    """
    h, mask, _ = _relu(z, 0)
    return h, mask


@dataclass
class _ReluReuse:
    """This party's material for multiplying a gradient by a ReLU's bit ``b = e ⊕ r`` in the
    backward pass (:func:`_relu` with ``back``): the public ``e`` (int64 0/1), its shares of
    ``r`` and of a second mask ``A'``, and of ``A'·r``; all ``[n_nets, B, out]``."""

    e: torch.Tensor
    r_a: torch.Tensor
    a2: torch.Tensor
    c2: torch.Tensor

    def split(self, sizes: Sequence[int]) -> list[_ReluReuse]:
        parts = [t.split(list(sizes)) for t in _fields(self)]
        return [_ReluReuse(*p) for p in zip(*parts, strict=True)]

    @staticmethod
    def cat(items: Sequence[_ReluReuse]) -> _ReluReuse:
        cols = zip(*(_fields(i) for i in items), strict=True)
        return _ReluReuse(*(torch.cat(list(t)) for t in cols))

    def times(self, g: Any) -> Any:
        """``g·b`` for a fixed-point share ``g [n_nets, B, out]`` (:func:`inject_again`)."""
        return wrap_shares(
            inject_again(g._tensor.share, self.e, self.r_a, self.a2, self.c2), g.encoder
        )


def _fields(item: Any) -> tuple[Any, ...]:
    """A dataclass's fields in order, not copied (``dataclasses.astuple`` deep-copies)."""
    return tuple(getattr(item, f.name) for f in dataclasses.fields(item))


def _relu(z: Any, back: int) -> tuple[Any, Any, _ReluReuse | None]:
    """:func:`relu`, and with ``back > 0`` (the dealer only) the correlations of the first
    ``back`` elements (flat order: the first ``back / (B·out)`` stacked networks of ``z
    [P, B, out]``) carry a second mask for their bit, returned as a :class:`_ReluReuse`
    shaped like those networks: the backward pass then multiplies the gradient by the bit
    with one opening instead of a Beaver product of the gradient and the 0/1 mask."""
    from smpc_gym.secure.compare import sign_bits

    crypten = _crypten()
    n = int(z.nelement())
    extra = None
    if back and correlation_source() == "TTP":
        from smpc_gym.secure.dealer import pools

        r, a, a2, r_a, c, c2 = pools().bit_mul_back(back)
        extra = (a2, c2)
        if back < n:
            rest = pools().bit_mul(n - back)
            r, a, r_a, c = (torch.cat([x, y]) for x, y in zip((r, a, r_a, c), rest, strict=True))
        corr: tuple[torch.Tensor, ...] | None = (r, a, r_a, c)
    else:
        corr = _bit_mul_correlations(n)
    if corr is None:
        with phase("forward.relu_compare"):
            mask = relu_mask(z)
        return beaver_many([("mul", z, mask)])[0], mask, None
    rank = crypten.communicator.get().get_rank()
    zs = z._tensor.share.reshape(-1)
    with phase("forward.relu_compare"):
        s = sign_bits(zs, rank, ACT_BITS)  # XOR share of [z < 0]
    b = s ^ 1 if rank == 0 else s  # [z ≥ 0]: party 0 flips its XOR share
    r_a = corr[2]  # this party's arithmetic share of the mask bit r
    h, e = inject_bits(zs, b, rank, corr)
    mask = (1 - 2 * e) * r_a + (e if rank == 0 else 0)  # b = e + (1 − 2e)·r
    bits_enc = crypten.encoder.FixedPointEncoder(precision_bits=0)
    reuse = None
    if extra is not None:
        shape = (-1, *z.size()[1:])
        reuse = _ReluReuse(*(t.reshape(shape) for t in (e[:back], r_a[:back], *extra)))
    return (
        wrap_shares(h.reshape(z.size()), z.encoder),
        wrap_shares(mask.reshape(z.size()), bits_enc),
        reuse,
    )


def inject_bits(
    values: torch.Tensor,
    bits: torch.Tensor,
    rank: int,
    corr: Sequence[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """This party's raw share of ``v·b`` for flat raw shares ``values`` of ``v`` and XOR
    shares ``bits`` (flat int64 0/1) of ``b``, and the opened ``e = b ⊕ r``: the bit
    injection of :func:`relu`, with one correlation ``corr = (r, A, rᴬ, A·r)`` per
    element (by default drawn here: :meth:`smpc_gym.secure.dealer.Pools.bit_mul` or
    party 0 under ``TFP``).

    One exchange: ``v − A`` and ``e`` are opened; then ``b = e + (1 − 2e)·r`` and
    ``v·b = e·v + (1 − 2e)·((v − A)·rᴬ + A·r)`` are local. Exact for every ring value
    ``v`` (no truncation). Reveals ``v − A`` (uniform) and ``e`` (``b`` masked by a
    uniform bit neither party knows)."""
    from smpc_gym.secure.ring import pack_bits, unpack_bits
    from smpc_gym.secure.trunc import _exchange

    n = int(values.numel())
    if corr is None:
        corr = _bit_mul_correlations(n)
        if corr is None:
            raise ValueError("bit injection needs two parties and the TTP or TFP provider")
    r, a, r_a, c = corr
    mine = torch.cat([values - a, pack_bits(bits ^ r)])
    theirs = _exchange(mine, rank)
    v_a = mine[:n] + theirs[:n]  # v − A
    e = unpack_bits(mine[n:] ^ theirs[n:], n)  # b ⊕ r
    return e * values + (1 - 2 * e) * (v_a * r_a + c), e


def inject_again(
    values: torch.Tensor, e: torch.Tensor, r_a: torch.Tensor, a2: torch.Tensor, c2: torch.Tensor
) -> torch.Tensor:
    """This party's raw share of ``v·b`` for a bit ``b = e ⊕ r`` that an earlier
    :func:`inject_bits` opened as ``e``, with a second mask ``A'`` for the same ``r``
    (this party's shares ``rᴬ``, ``A'``, ``A'·r``:
    :meth:`smpc_gym.secure.dealer.Pools.bit_mul_back`).

    One opening of ``v − A'`` (uniform: ``A'`` hides only this value), then local:
    ``e·v + (1 − 2e)·((v − A')·rᴬ + A'·r)``; no truncation, exact for every ring value.
    ``e`` is not sent again, so the bit costs nothing more to the parties, and the dealer
    sends ``rᴬ`` once for both products."""
    (d,) = open_many([values - a2])
    return e * values + (1 - 2 * e) * (d * r_a + c2)


def correlation_source() -> str | None:
    """Who deals the correlations of this module's two-party protocols in this session:
    ``"TTP"`` (the dealer's pools, :mod:`smpc_gym.secure.dealer`), ``"TFP"`` (party 0,
    the opt-out), or None (another provider or world size: the callers fall back to
    CrypTen's own triples)."""
    crypten = _crypten()
    from crypten.mpc.provider.tfp_provider import TrustedFirstParty
    from crypten.mpc.provider.ttp_provider import TrustedThirdParty

    if crypten.communicator.get().get_world_size() != 2:
        return None
    provider = crypten.mpc.get_default_provider()
    if isinstance(provider, TrustedThirdParty):
        return "TTP"
    return "TFP" if isinstance(provider, TrustedFirstParty) else None


def _bit_mul_correlations(n: int) -> tuple[torch.Tensor, ...] | None:
    """This party's ``(r, A, rᴬ, A·r)`` for :func:`relu`'s bit injection, or None if the
    provider cannot make them (two parties, ``TTP`` or ``TFP`` only)."""
    crypten = _crypten()
    from crypten.common.rng import generate_random_ring_element
    from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor

    from smpc_gym.secure.ring import draw_bits

    source = correlation_source()
    if source == "TTP":
        from smpc_gym.secure.dealer import pools

        return pools().bit_mul(n)
    if source is None:
        return None
    comm = crypten.communicator.get()
    cpu = torch.device("cpu")
    if comm.get_rank() == 0:  # party 0 deals: r₁ from the generator it shares with party 1
        r0 = draw_bits(n, crypten.generators["local"][cpu])
        r = r0 ^ draw_bits(n, crypten.generators["next"][cpu])
        a = generate_random_ring_element((n,))
        shared = [ArithmeticSharedTensor(t, precision=0, src=0) for t in (a, r, a * r)]
        return (r0, *(t.share for t in shared))
    r1 = draw_bits(n, crypten.generators["prev"][cpu])
    shared = [ArithmeticSharedTensor(None, size=(n,), precision=0, src=0) for _ in range(3)]
    return (r1, *(t.share for t in shared))


#: The piecewise-polynomial sigmoid on ``z ≥ 0``: per piece ``[lo, hi)``, the coefficients
#: of ``p(t) ≈ σ(c + t)``, ``c = (lo + hi)/2``, ``|t| ≤ (hi − lo)/2``, in powers ``t⁰ … t⁴``.
#: Each is the Chebyshev least-squares fit of degree 4 on its piece (400 nodes), converted to
#: powers of ``t``; the breakpoints were chosen greedily (from 0 outwards, in steps of 1/4,
#: each piece as wide as keeps the fit within 3e-6 of ``σ``). ``z < 0`` uses the mirror
#: image ``σ(−c + t) = 1 − σ(c − t)``, and ``|z| ≥ 16`` gives 0 or 1 (``σ(−16) ≈ 1.1e-7``
#: is below half a unit of the 16-bit grid). ``tests/test_secure_exact.py`` checks every
#: piece against ``torch.sigmoid`` in float64 (at most 3e-6 off).
# fmt: off
SIGMOID_PIECES: tuple[tuple[float, float, tuple[float, ...]], ...] = (
    (0.0, 1.0, (6.224590787734e-01, 2.349820341950e-01, -2.876012594876e-02,
                -1.571102911931e-02, 4.167856865490e-03)),
    (1.0, 2.0, (8.175744681931e-01, 1.491654202964e-01, -4.736456330143e-02,
                2.307295258404e-03, 3.112161524369e-03)),
    (2.0, 3.5, (9.399138300581e-01, 5.649215615959e-02, -2.486000873020e-02,
                6.112482946983e-03, -5.945920352864e-04)),
    (3.5, 5.25, (9.875682830060e-01, 1.226508891148e-02, -5.984351707008e-03,
                 1.958452557789e-03, -4.309724754749e-04)),
    (5.25, 7.75, (9.984985848381e-01, 1.489417267832e-03, -7.445406703814e-04,
                  2.716625589071e-04, -6.567788966749e-05)),
    (7.75, 12.75, (9.999641908149e-01, 3.094036469104e-05, -1.639820461484e-05,
                   8.580937160448e-06, -1.995630838728e-06)),
    (12.75, 16.0, (9.999994280037e-01, 5.601706356937e-07, -2.823999719110e-07,
                   1.120460476705e-07, -2.713468094588e-08)),
)
# fmt: on
#: Extra fractional bits the polynomial is evaluated with (``t`` and its powers at
#: ``2^-(16 + POLY_BITS)``, the coefficients too).
POLY_BITS = 10


@functools.lru_cache(maxsize=4)
def _sigmoid_table(scale: int) -> torch.Tensor:
    """The public integers each piece contributes, one row per piece: its centre at
    ``scale``, then its coefficients of ``t⁰ … t⁴`` at ``scale·2^POLY_BITS`` (int64,
    ``[pieces, 6]``; computed once per scale)."""
    at = scale << POLY_BITS
    return torch.tensor(
        [[round((lo + hi) / 2 * scale)] + [round(a * at) for a in co] for lo, hi, co in
         sigmoid_pieces()],
        dtype=torch.int64,
    )  # fmt: skip


def sigmoid_pieces() -> list[tuple[float, float, tuple[float, ...]]]:
    """All pieces of :data:`SIGMOID_PIECES` over ``[−16, 16)``, negative side mirrored, in
    order: ``(lo, hi, coefficients of t⁰ … t⁴ around the piece's centre)``."""
    neg = []
    for lo, hi, co in reversed(SIGMOID_PIECES):
        # σ(−c + t) = 1 − σ(c − t): negate the odd powers, and 1 − the constant
        mirrored = tuple((1.0 - a) if k == 0 else (a if k % 2 else -a) for k, a in enumerate(co))
        neg.append((-hi, -lo, mirrored))
    return neg + list(SIGMOID_PIECES)


def sigmoid(z: Any) -> Any:
    """Secure logistic function ``σ(z)``, within ~1e-5 of it for every ``|z| < 2^32``.

    A piecewise polynomial of degree 4 on 14 pieces of ``[−16, 16)`` (:func:`sigmoid_pieces`,
    each within 3e-6 of ``σ``), 0 below and 1 above:

    1. One batched comparison (:func:`ltz` over :data:`ACT_BITS` bits: exact for every
       pre-activation, ``|z| < 2^32``) of ``z`` against the 15 breakpoints gives
       ``b_j = [z < B_j]``; the piece indicators
       are differences of neighbours (local), ``below = b_0``, ``above = 1 − b_14``.
    2. ``t = inside·z − Σ_i ind_i·c_i`` (one Beaver round of a 0/1 share times ``z``, no
       truncation; the centres are public): ``|t| ≤ 2.5`` inside a piece, 0 outside, so
       no power below can grow with ``z``.
    3. ``t², t³, t⁴`` at :data:`POLY_BITS` extra fractional bits (two rounds of exactly
       truncated products).
    4. The piece's coefficients ``C_k = Σ_i ind_i·a_ik`` (+ ``above`` for ``C_0``) are
       local sums of the indicator shares times public integers; ``Σ_k C_k·t^k`` is one
       round of products left untruncated, summed, then truncated once, exactly, back
       to the 16-bit grid.

    7 + 1 + 2·2 + 1 + 1 = 14 rounds; the earlier ``exp`` and reciprocal route took 46.
    Accuracy: the fit's 3e-6 plus the coefficients' and powers' rounding at 2^-26 and one
    final rounding to the 2^-16 grid (measured: ``tests/test_secure_exact.py``).
    The derivative in the backward pass is ``σ(1 − σ)`` from the cached value.
    """
    from smpc_gym.secure.ring import ring_matmul
    from smpc_gym.secure.trunc import trunc_many

    crypten = _crypten()
    rank = crypten.communicator.get().get_rank()
    pieces = sigmoid_pieces()
    breaks = [lo for lo, _, _ in pieces] + [pieces[-1][1]]
    n_break = len(breaks)
    thr = torch.tensor(breaks, dtype=torch.float64).reshape((-1,) + (1,) * z.dim())
    b = ltz(crypten.stack([z] * n_break) - thr.expand((n_break, *z.size())), ACT_BITS)
    bit = b.share  # [n_break, ...] arithmetic 0/1 shares, scale 1
    ind = bit[1:] - bit[:-1]  # ind_i = [B_i <= z < B_(i+1)]
    inside = bit[-1] - bit[0]  # [B_0 <= z < B_last]
    above = (1 if rank == 0 else 0) - bit[-1]  # [z >= B_last]
    bits_enc = b.encoder
    scale = int(z.encoder.scale)
    fine = 1 << POLY_BITS
    at = scale * fine  # coefficients at 2^-26, as integers (scale-1 shares: no truncation)
    # this party's shares of Σ_i ind_i·(centre_i, a_i0 … a_i4): one local ring product
    table = _sigmoid_table(scale)
    picked = ring_matmul(table.t().contiguous(), ind.reshape(len(pieces), -1))
    centre, *coef = (row.reshape(ind.shape[1:]) for row in picked)

    (iz,) = beaver_many([("mul", wrap_shares(inside, bits_enc), z)])  # inside·z, exact
    t = wrap_shares((iz.share - centre) << POLY_BITS, z.encoder)  # t·2^10 at scale 2^16
    (t2,) = beaver_many([("mul", t, t, POLY_BITS)])
    t3, t4 = beaver_many([("mul", t2, t, POLY_BITS), ("mul", t2, t2, POLY_BITS)])
    terms = beaver_many(
        [("mul", wrap_shares(coef[k], bits_enc), p) for k, p in enumerate((t, t2, t3, t4), start=1)]
    )
    c0 = coef[0] + above * at  # σ = 1 above the last piece
    raw = sum(term.share for term in terms) + c0 * at  # everything at 2^-52
    (out,) = trunc_many([(raw, at * fine)])  # back to 2^-16, exactly
    return wrap_shares(out, z.encoder)


# ----------------------------------------------------------------------------- the MLP


@dataclass(frozen=True)
class BackwardPlan:
    """What the backward pass of a :func:`forward_stacked` call will compute.

    Told in advance, the forward pass takes correlations from the dealer whose masks the
    backward pass reuses (:func:`smpc_gym.secure.dealer.layer_triples`,
    :func:`smpc_gym.secure.dealer.bit_mul_back`): per layer it opens only the gradient
    ``dz`` (masked) where it would open ``h``, ``W`` and ``dz`` twice, and per ReLU only
    the gradient, not the 0/1 mask as well. Without the dealer the plan is ignored.

    Attributes:
        mlps: how many of the stacked MLPs, counted from the first, will be
            back-propagated (the rest, e.g. target networks, get plain triples).
        weight_grads: :func:`backward_stacked`'s ``weight_grads``.
        input_grad: whether :func:`backward_stacked` will get ``input_cols``.
    """

    mlps: int = 1
    weight_grads: bool = True
    input_grad: bool = False


@dataclass
class _LayerReuse:
    """This party's material of one layer's forward product ``h @ W`` that the backward
    pass reuses, all ``[n_nets, …]``: the opened ``h − A`` and ``W − B`` (public), its
    shares of the masks ``A``, ``B`` and ``E`` (of ``dz``), and of ``Aᵀ @ E`` and
    ``E @ Bᵀ`` (None where the plan leaves them out)."""

    eps_h: torch.Tensor
    delta_w: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    e: torch.Tensor
    c_w: torch.Tensor | None
    c_in: torch.Tensor | None

    def split(self, sizes: Sequence[int]) -> list[_LayerReuse]:
        cols = [[None] * len(sizes) if t is None else t.split(list(sizes)) for t in _fields(self)]
        return [_LayerReuse(*p) for p in zip(*cols, strict=True)]

    @staticmethod
    def cat(items: Sequence[_LayerReuse]) -> _LayerReuse:
        cols = zip(*(_fields(i) for i in items), strict=True)
        return _LayerReuse(*(None if t[0] is None else torch.cat(list(t)) for t in cols))  # type: ignore[arg-type]


@dataclass
class MLPCache:
    """What the forward pass keeps for the backward pass.

    Attributes:
        inputs: the input of every linear layer (``[P, B, in_l]``).
        weights: every layer's weights as the forward pass used them (the backward pass
            multiplies by these, not by the networks' weights at the time).
        masks: the ReLU masks ``[z_l > 0]`` of the hidden layers.
        out: the network output (``σ(z)`` for a sigmoid output).
        layers, relus: per layer / hidden layer, the correlations the backward pass
            reuses (:class:`BackwardPlan`), or empty.
    """

    inputs: list[Any] = field(default_factory=list)
    weights: list[Any] = field(default_factory=list)
    masks: list[Any] = field(default_factory=list)
    out: Any = None
    layers: list[_LayerReuse] = field(default_factory=list)
    relus: list[_ReluReuse] = field(default_factory=list)


class SharedMLP:
    """``P`` secret-shared MLPs of identical shape: Linear → ReLU → … → Linear → out_act.

    Args:
        weights: per layer, an ``MPCTensor`` ``[P, in, out]``.
        biases: per layer, an ``MPCTensor`` ``[P, 1, out]``.
        out_act: ``"identity"`` (critics) or ``"sigmoid"`` (actors; actions in unit
            scale, the caller multiplies by public action caps where it needs env units).
    """

    def __init__(self, weights: list[Any], biases: list[Any], out_act: str = "identity"):
        if out_act not in OUT_ACTS:
            raise ValueError(f"out_act must be one of {OUT_ACTS}, got {out_act!r}")
        if len(weights) != len(biases) or not weights:
            raise ValueError(
                f"need one bias per weight and at least one layer, got {len(weights)} "
                f"weights and {len(biases)} biases"
            )
        self.weights = list(weights)
        self.biases = list(biases)
        self.out_act = out_act

    # -- construction / export ---------------------------------------------------------
    @classmethod
    def from_plain(
        cls,
        nets: Sequence[nn.Module] | None,
        owners: Sequence[int],
        shapes: Sequence[tuple[int, int]],
        out_act: str = "identity",
        rank: int | None = None,
    ) -> SharedMLP:
        """Secret-share plaintext networks, network ``p`` contributed by party ``owners[p]``.

        In party ``r`` only the networks with ``owners[p] == r`` are read (others may be
        ``None`` in ``nets``); every party must call this with the same ``owners`` and
        ``shapes`` (``(in, out)`` per linear layer).
        """
        crypten = _crypten()
        rank = crypten.communicator.get().get_rank() if rank is None else rank
        per_net_w: list[list[Any]] = []
        per_net_b: list[list[Any]] = []
        for p, owner in enumerate(owners):
            mine = owner == rank
            linears = (
                [m for m in nets[p].modules() if isinstance(m, nn.Linear)]
                if mine and nets is not None
                else None
            )
            if linears is not None and len(linears) != len(shapes):
                raise ValueError(
                    f"network {p} has {len(linears)} linear layers, expected {len(shapes)}"
                )
            ws, bs = [], []
            for k, (din, dout) in enumerate(shapes):
                if linears is not None:
                    w = linears[k].weight.detach().t().contiguous().float()
                    b = linears[k].bias.detach().reshape(1, dout).float()
                    if tuple(w.shape) != (din, dout):
                        raise ValueError(
                            f"network {p} layer {k} is {tuple(w.shape)}, expected {(din, dout)}"
                        )
                else:
                    w, b = torch.zeros(din, dout), torch.zeros(1, dout)
                ws.append(share_rounded(w, owner))
                bs.append(share_rounded(b, owner))
            per_net_w.append(ws)
            per_net_b.append(bs)
        weights = [crypten.stack([w[k] for w in per_net_w]) for k in range(len(shapes))]
        biases = [crypten.stack([b[k] for b in per_net_b]) for k in range(len(shapes))]
        return cls(weights, biases, out_act)

    def parameters(self) -> list[Any]:
        """``[W_1, b_1, W_2, b_2, …]`` (shares)."""
        out = []
        for w, b in zip(self.weights, self.biases, strict=True):
            out += [w, b]
        return out

    def set_parameters(self, params: Sequence[Any]) -> None:
        """Replace the parameters (same order as :meth:`parameters`)."""
        self.weights = list(params[0::2])
        self.biases = list(params[1::2])

    def clone(self) -> SharedMLP:
        """A copy with cloned shares (e.g. a target network)."""
        return SharedMLP(
            [w.clone() for w in self.weights], [b.clone() for b in self.biases], self.out_act
        )

    @property
    def n_nets(self) -> int:
        """``P``, the number of stacked networks."""
        return int(self.weights[0].size(0))

    def reveal_net(self, p: int, dst: int | None) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Reveal network ``p``'s ``(weight [out, in], bias [out])`` per layer to ``dst``.

        Returns the plaintext in party ``dst`` (or in every party if ``dst`` is None) and
        ``None`` elsewhere. Only for the end of training, when the config allows it.
        """
        crypten = _crypten()
        rank = crypten.communicator.get().get_rank()
        out = []
        for w, b in zip(self.weights, self.biases, strict=True):
            wp = w[p].get_plain_text(dst=dst)
            bp = b[p].get_plain_text(dst=dst)
            if dst is None or dst == rank:
                out.append((wp.t().contiguous(), bp.reshape(-1)))
        return out if dst is None or dst == rank else None

    def shares(self) -> list[torch.Tensor]:
        """This party's raw int64 shares of every parameter (for checkpoints)."""
        return [p.share.clone() for p in self.parameters()]

    def load_shares(self, shares: Sequence[torch.Tensor]) -> None:
        """Overwrite this party's shares (the other party must load its matching file)."""
        params = self.parameters()
        if len(shares) != len(params):
            raise ValueError(f"expected {len(params)} share tensors, got {len(shares)}")
        for p, s in zip(params, shares, strict=True):
            if tuple(p.share.shape) != tuple(s.shape):
                raise ValueError(f"share shape {tuple(s.shape)} != {tuple(p.share.shape)}")
            p.share = s.clone()

    # -- compute ------------------------------------------------------------------------
    def forward(self, x: Any) -> tuple[Any, MLPCache]:
        """Forward pass of all ``P`` networks on ``x [P, B, in]``; see :func:`forward_stacked`."""
        outs, caches = forward_stacked([self], [x])
        return outs[0], caches[0]


def _columns(t: torch.Tensor, cols: slice | Sequence[slice], dim: int = 2) -> torch.Tensor:
    """``cols`` of raw shares ``t [P, …]`` along ``dim`` (the columns of ``t [P, B, n]``
    by default); a sequence gives one slice per network."""
    index: list[Any] = [slice(None)] * t.dim()
    if isinstance(cols, slice):
        index[dim] = cols
        return t[tuple(index)]
    parts = []
    for p, c in enumerate(cols):
        index[0], index[dim] = slice(p, p + 1), c
        parts.append(t[tuple(index)])
    return torch.cat(parts)


def _cat(tensors: Sequence[Any], dim: int = 0) -> Any:
    """``crypten.cat`` of arithmetic shares, done on the raw shares (the same words,
    without CrypTen's per-call dispatch) when they share one fixed-point scale."""
    if len(tensors) == 1:
        return tensors[0]
    enc = tensors[0]._tensor.encoder
    if any(t._tensor.encoder.scale != enc.scale for t in tensors):
        return _crypten().cat(list(tensors), dim=dim)
    return wrap_shares(torch.cat([t._tensor.share for t in tensors], dim), enc)


def _split(t: Any, sizes: Sequence[int], dim: int = 0) -> list[Any]:
    """``t`` cut into ``sizes`` along ``dim`` (views of the raw share, local)."""
    if len(sizes) == 1:
        return [t]
    enc = t._tensor.encoder
    return [wrap_shares(p, enc) for p in t._tensor.share.split(list(sizes), dim)]


def forward_stacked(
    mlps: Sequence[SharedMLP], xs: Sequence[Any], backward: BackwardPlan | None = None
) -> tuple[list[Any], list[MLPCache]]:
    """Forward several :class:`SharedMLP` of equal layer shapes as one stack.

    ``xs[k]`` is ``[P_k, B, in]`` for ``mlps[k]``, with at most :data:`ACT_FRAC_BITS`
    fractional bits (fewer are lifted exactly). Each layer costs one Beaver matmul round
    and each hidden ReLU one comparison with its multiplication fused in (:func:`relu`) for
    *all* networks together; hidden activations are at :data:`ACT_FRAC_BITS`, the outputs
    at the weights' 16 bits. ``backward`` says what the backward pass of the first
    ``backward.mlps`` MLPs will compute; with the dealer their correlations then carry
    the masks it reuses (:class:`BackwardPlan`).

    Returns:
        ``(outputs, caches)``, one per MLP.

    Raises:
        ValueError: if the MLPs' output activations differ, ``backward.mlps`` is not
            in ``[1, len(mlps)]``, or an input has more than :data:`ACT_FRAC_BITS`
            fractional bits.
    """
    acts = {m.out_act for m in mlps}
    if len(acts) != 1:
        raise ValueError(f"stacked MLPs must share the output activation, got {sorted(acts)}")
    if backward is not None and not 1 <= backward.mlps <= len(mlps):
        raise ValueError(
            f"BackwardPlan.mlps must be in [1, {len(mlps)}] (the stacked MLPs), got {backward.mlps}"
        )
    sizes = [m.n_nets for m in mlps]
    n_layers = len(mlps[0].weights)
    h = _cat([lift(x, ACT_FRAC_BITS) for x in xs])  # inputs at fewer bits: lifted, exactly
    g = 0
    if backward is not None and correlation_source() == "TTP":
        g = sum(sizes[: backward.mlps])  # the back-propagated networks, stacked first
    cache = MLPCache()
    for k in range(n_layers):
        w = _cat([m.weights[k] for m in mlps])
        b = _cat([m.biases[k] for m in mlps])
        cache.inputs.append(h)
        cache.weights.append(w)
        # h (ACT_FRAC_BITS) @ W (16 bits) is truncated to h's scale; the output layer's
        # by 2^shift more, back to W's scale (the sigmoid's and the loss's)
        last = k == n_layers - 1
        shift = frac_bits(h) - frac_bits(w) if last else 0
        if g:
            assert backward is not None
            flags = _layer_flags(backward, k)
            z, reuse = _layer_forward(h, w, g, flags, shift)
            cache.layers.append(reuse)
        else:
            (z,) = beaver_many([("matmul", h, w, shift)])
        if last:
            z = wrap_shares(z._tensor.share, w._tensor.encoder)  # the value is at W's scale
        z = z + lift(b, frac_bits(z))
        if not last:
            back = g * int(z.size(1)) * int(z.size(2))
            h, mask, relu_reuse = _relu(z, back)
            cache.masks.append(mask)
            if relu_reuse is not None:
                cache.relus.append(relu_reuse)
        else:
            with phase("forward.sigmoid"):
                h = sigmoid(z) if mlps[0].out_act == "sigmoid" else z
    cache.out = h
    outs = _split(h, sizes)
    caches = [
        MLPCache(
            inputs=[_split(t, sizes)[j] for t in cache.inputs],
            weights=[_split(t, sizes)[j] for t in cache.weights],
            masks=[_split(t, sizes)[j] for t in cache.masks],
            out=outs[j],
        )
        for j in range(len(mlps))
    ]
    if g:
        assert backward is not None
        mine = sizes[: backward.mlps]
        for reuse in cache.layers:
            for j, part in enumerate(reuse.split(mine)):
                caches[j].layers.append(part)
        for reuse_r in cache.relus:
            for j, part_r in enumerate(reuse_r.split(mine)):
                caches[j].relus.append(part_r)
    return outs, caches


def _layer_flags(plan: BackwardPlan, k: int) -> int:
    """The :func:`smpc_gym.secure.dealer.layer_triples` products layer ``k``'s backward
    pass needs under ``plan``: ``hᵀ @ dz`` for weight gradients, ``dz @ Wᵀ`` below the
    output layer's input (every layer but the first, and the first for ``input_cols``)."""
    from smpc_gym.secure.dealer import LAYER_INPUTS, LAYER_WEIGHTS

    flags = LAYER_WEIGHTS if plan.weight_grads else 0
    if k > 0 or plan.input_grad:
        flags |= LAYER_INPUTS
    return flags


def _layer_forward(h: Any, w: Any, g: int, flags: int, shift: int = 0) -> tuple[Any, _LayerReuse]:
    """``h @ W`` for the stack, the first ``g`` networks with a layer bundle
    (:meth:`smpc_gym.secure.dealer.Pools.layer_triple`), the rest with a plain matmul
    triple; one opening, one truncation, as :func:`beaver_many` (``shift``: its op's
    fourth element). Returns the product and the first ``g`` networks' :class:`_LayerReuse`."""
    from smpc_gym.secure.dealer import pools

    hs, ws = h._tensor.share, w._tensor.share
    a, bm, e, c1, c_w, c_in = pools().layer_triple(hs[:g].size(), ws[:g].size(), flags)
    triple: tuple[torch.Tensor, ...] = (a, bm, c1)
    if hs.size(0) > g:
        rest = pools().matmul_triple(hs[g:].size(), ws[g:].size())
        triple = tuple(torch.cat([x, y]) for x, y in zip(triple, rest, strict=True))
    (z,), (eps_h, delta_w) = _beaver([("matmul", h, w, shift)], [triple])
    reuse = _LayerReuse(eps_h[:g], delta_w[:g], a, bm, e, c_w, c_in)
    return z, reuse


def _layer_backward(
    reuse: _LayerReuse,
    dz: Any,
    weight_grads: bool,
    input_grad: bool,
    cols: slice | Sequence[slice] | None,
    scales: tuple[int, int],
) -> tuple[Any, Any]:
    """``(hᵀ @ dz, dz @ Wᵀ)`` of a layer from its forward's :class:`_LayerReuse` (either is
    None where not asked for), ``h`` and ``W`` as the forward pass had them: opens only
    ``dz − E``, then one exact truncation for both, by ``scales`` (``h``'s and ``W``'s
    fixed-point scales), so both are at ``dz``'s scale. ``cols`` keeps only those columns
    of ``dz @ Wᵀ`` (as :func:`_columns`), before the truncation.

    Raises ``ValueError`` if the forward's plan left out a product asked for (both parties
    raise at the same point: the plan is public).
    """
    from smpc_gym.secure.ring import ring_matmul
    from smpc_gym.secure.trunc import trunc_many

    c_w, c_in = reuse.c_w, reuse.c_in
    if (weight_grads and c_w is None) or (input_grad and c_in is None):
        raise ValueError(
            "backward_stacked asks for a gradient its forward's BackwardPlan left out "
            f"(weight_grads={weight_grads}, input gradient={input_grad})"
        )
    if not (weight_grads or input_grad):
        return None, None
    rank = _crypten().communicator.get().get_rank()
    dzs = dz._tensor.share
    (d,) = open_many([dzs - reuse.e])
    raw = []
    if c_w is not None and weight_grads:
        # hᵀ @ dz: hᵀ − Aᵀ and dz − E are opened; party 0 carries the public product
        e_plus = reuse.e + d if rank == 0 else reuse.e
        a_t = reuse.a.transpose(1, 2)
        raw.append(c_w + ring_matmul(reuse.eps_h.transpose(1, 2), e_plus) + ring_matmul(a_t, d))
    if c_in is not None and input_grad:
        bt, dt = reuse.b.transpose(1, 2), reuse.delta_w.transpose(1, 2)
        b_plus = bt + dt if rank == 0 else bt
        dh = c_in + ring_matmul(d, b_plus) + ring_matmul(reuse.e, dt)
        raw.append(dh if cols is None else _columns(dh, cols))
    cut = [scales[0]] if c_w is not None and weight_grads else []
    cut += [scales[1]] if c_in is not None and input_grad else []
    done = iter(trunc_many([(t, int(d)) for t, d in zip(raw, cut, strict=True)]))
    dw = wrap_shares(next(done), dz.encoder) if weight_grads else None
    dh_out = wrap_shares(next(done), dz.encoder) if input_grad else None
    return dw, dh_out


def _fresh_layer_backward(
    h: Any, w: Any, dz: Any, weight_grads: bool, input_grad: bool, cols: Any = None
) -> tuple[Any, Any]:
    """:func:`_layer_backward` without reused masks: ``hᵀ @ dz`` and ``dz @ Wᵀ`` (only
    ``W``'s ``cols`` input rows, if given) as fresh Beaver products in one round, both at
    ``dz``'s scale (truncated by ``h``'s and ``W``'s)."""
    ops = []
    if weight_grads:  # by h's scale: beaver_many's min(h, dz) and the rest as a shift
        ops.append(("matmul", h.transpose(1, 2), dz, max(0, frac_bits(h) - frac_bits(dz))))
    if input_grad:
        wc = w if cols is None else wrap_shares(_columns(w.share, cols, dim=1), w.encoder)
        ops.append(("matmul", dz, wc.transpose(1, 2), max(0, frac_bits(w) - frac_bits(dz))))
    res = [wrap_shares(r._tensor.share, dz._tensor.encoder) for r in beaver_many(ops)]
    dw = res.pop(0) if weight_grads else None
    return dw, (res[0] if input_grad else None)


def backward_stacked(
    mlps: Sequence[SharedMLP],
    caches: Sequence[MLPCache],
    grad_outs: Sequence[Any],
    weight_grads: bool = True,
    input_cols: slice | Sequence[slice] | None = None,
) -> tuple[list[list[Any]] | None, Any]:
    """Backward pass of several stacked MLPs (same stacking as :func:`forward_stacked`).

    Args:
        mlps, caches: as returned by / given to :func:`forward_stacked`.
        grad_outs: ``∂L/∂output`` per MLP, ``[P_k, B, out]`` (for a sigmoid output this is
            the gradient w.r.t. ``σ(z)``; the ``σ(1 − σ)`` factor is applied here).
        weight_grads: compute parameter gradients (False: only the input gradient, as in
            the actor update, which back-propagates through a critic it does not train).
        input_cols: if given, also return ``∂L/∂x[..., cols]`` (only those input columns
            are multiplied out). A sequence gives one slice per stacked network (all of
            equal width) — e.g. each player's own action columns of its critic input.

    Returns:
        ``(grads, input_grad)``: per MLP the list of gradients in :meth:`SharedMLP.parameters`
        order (or ``None``), and the input gradient ``[P, B, |cols|]`` (or ``None``).
        Each layer costs one round for ``dW`` and ``dH`` together (:func:`beaver_many`) plus
        one round for the ReLU mask. If the caches come from a forward pass with a
        :class:`BackwardPlan` (and the dealer), that round opens only ``dz`` (masked) and
        the ReLU's only the gradient (:func:`_layer_backward`, :class:`_ReluReuse`).

    The gradients are those of the cached forward pass: its inputs, ReLU masks and
    weights (``caches[k].weights``), even if a network's weights changed since.

    Raises:
        ValueError: with reused masks, if the call asks for a gradient the forward's
            :class:`BackwardPlan` left out.
    """
    sizes = [m.n_nets for m in mlps]
    n_layers = len(mlps[0].weights)
    # the forward's masks, reused (BackwardPlan) if every cache has them
    reused = all(len(c.layers) == n_layers and len(c.relus) == n_layers - 1 for c in caches)
    dz = _cat(list(grad_outs))
    if mlps[0].out_act == "sigmoid":
        s = _cat([c.out for c in caches])
        (ds,) = beaver_many([("mul", s, 1 - s)])  # σ(1 − σ)
        dz = beaver_many([("mul", dz, ds)])[0]
    dws: list[Any] = [None] * n_layers
    dbs: list[Any] = [None] * n_layers
    input_grad = None
    for k in reversed(range(n_layers)):
        cols = input_cols if k == 0 else None
        want_in = k > 0 or input_cols is not None
        if weight_grads:
            dbs[k] = dz.sum(1, keepdim=True)
        if reused:
            layer = _LayerReuse.cat([c.layers[k] for c in caches])
            scales = (1 << frac_bits(caches[0].inputs[k]), 1 << frac_bits(caches[0].weights[k]))
            dws[k], dh = _layer_backward(layer, dz, weight_grads, want_in, cols, scales)
        else:
            h = _cat([c.inputs[k] for c in caches])
            w = _cat([c.weights[k] for c in caches])  # the forward pass's
            dws[k], dh = _fresh_layer_backward(h, w, dz, weight_grads, want_in, cols)
        if k > 0:
            if reused:
                dz = _ReluReuse.cat([c.relus[k - 1] for c in caches]).times(dh)
            else:
                mask = _cat([c.masks[k - 1] for c in caches])
                dz = beaver_many([("mul", dh, mask)])[0]
        else:
            input_grad = dh
    grads = None
    if weight_grads:
        grads = []
        for j in range(len(mlps)):
            g = []
            for k in range(n_layers):
                g += [_split(dws[k], sizes)[j], _split(dbs[k], sizes)[j]]
            grads.append(g)
    return grads, input_grad
