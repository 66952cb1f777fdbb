"""Secure aggregation: only the sum (or mean) of the holders' updates is revealed.

Roles and ranks
---------------
A round runs in one process group (see :mod:`smpc_gym.secure.runtime`) of
``world_size = n_holders + 1`` parties: **rank 0 is the model coordinator**, ranks
``1..n_holders`` are the **data holders**. The coordinator holds no update; it is an extra
party rather than one of the holders because a coordinator that also held an update could
subtract its own from the revealed sum, which for two holders *is* the other holder's
update. As an extra party it learns the aggregate and nothing else. (It is also rank 0, the
party CrypTen's default "TFP" provider trusts with Beaver triples, so all trust sits in one
place; secure aggregation itself needs no triples.)

Protocol (:func:`secure_sum`)
-----------------------------
1. Each party encodes its update in CrypTen's fixed point (16 fractional bits by default,
   int64 ring): ``e_i = round(x_i * 2**16)``; a party without an update uses ``e_i = 0``.
2. Each party adds its share of a pseudo-random sharing of zero (:func:`zero_share`,
   CrypTen's ``PRZS`` construction ``z_i = G(k(i-1, i)) - G(k(i, i+1))`` from the pairwise
   generators CrypTen agreed at ``init``, with AES-256-CTR as the stream ``G``; the ``z_i``
   sum to zero). ``s_i = e_i + z_i`` is uniformly random in the ring to anyone
   who lacks both of party *i*'s pairwise seeds, so the ``s_i`` form an additive
   secret sharing of ``sum_i e_i``. This is exactly how ``crypten.cryptensor(x, src=i)``
   masks an input, but all holders' inputs ride on *one* zero-sharing instead of one
   sharing per holder, so there is no per-holder communication at all.
3. The shares are summed onto the coordinator with one ``reduce`` (``dst=0``), or onto all
   parties with ``all_reduce`` (``dst=None``), and decoded there.

Cost: one ``reduce`` of ``d`` int64 values (8 bytes per parameter per holder) and two
pseudo-random ring vectors per party: the same traffic pattern as a plaintext
reduction (which sends 4-byte floats), hence the benchmark's small ratio.

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

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from smpc_gym.secure.runtime import PartyContext

__all__ = [
    "COORDINATOR",
    "holder_ranks",
    "plaintext_allreduce_mean",
    "plaintext_mean",
    "secure_mean",
    "secure_sum",
    "secure_weighted_mean",
    "zero_share",
]

#: The coordinator's rank in an aggregation group.
COORDINATOR = 0


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


def secure_sum(
    ctx: PartyContext,
    update: torch.Tensor | None,
    *,
    numel: int | None = None,
    dst: int | None = COORDINATOR,
) -> torch.Tensor | None:
    """Sum every party's 1-D ``update`` revealing only the sum (collective: all parties call).

    Args:
        ctx: this party's runtime context.
        update: this party's private vector, or ``None`` for a party with no input (the
            coordinator); it must then pass ``numel``.
        numel: the vector length (checked against ``update`` when both are given).
        dst: rank that learns the sum (default the coordinator), or ``None`` for all.

    Returns:
        The float64 sum on ``dst`` (every party if ``dst is None``), ``None`` elsewhere.
        Fixed-point error: each input is rounded to ``2**-precision`` (CrypTen's
        ``cfg.encoder.precision_bits``, 16 by default), so the error of the sum is at most
        ``n_parties * 2**-(precision + 1)``. Inputs must satisfy
        ``|sum| < 2**(62 - precision)`` to avoid ring wrap-around.
    """
    n, x = _check_input(ctx, update, numel)
    crypten = ctx.crypten
    ast = crypten.mpc.primitives.ArithmeticSharedTensor
    precision = int(crypten.cfg.encoder.precision_bits)
    scale = float(2**precision)
    if x is not None:
        limit = 2.0 ** (62 - precision) / ctx.world_size
        peak = float(x.detach().abs().max()) if n else 0.0
        if not peak < limit:
            raise ValueError(
                f"party {ctx.rank}: |update| reaches {peak:.3g}, too large for "
                f"{precision}-bit fixed point with {ctx.world_size} parties (limit {limit:.3g})"
            )
        # Scaling by a power of two is exact in any float format, so encoding in the
        # input's own dtype gives the same integers as float64, several times faster.
        xf = x.detach() if x.is_floating_point() else x.detach().to(torch.float64)
        encoded = (xf * scale).round_().to(torch.int64)
    else:
        encoded = torch.zeros(n, dtype=torch.int64)
    share = zero_share(ctx, n)  # this party's share of a sharing of zero
    share += encoded
    revealed = ast.from_shares(share, precision=precision).reveal(dst=dst)
    if revealed is None:
        return None
    return revealed.to(torch.float64) / scale


def _aes_ctr_stream(key: bytes, n: int) -> torch.Tensor:
    """``n`` pseudo-random int64 ring elements: AES-256-CTR keystream under ``key``."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    enc = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()
    out = bytearray(8 * n + 15)  # update_into wants room for a block of slack
    enc.update_into(bytes(8 * n), out)
    return torch.frombuffer(out, dtype=torch.int64, count=n)


def zero_share(ctx: PartyContext, n: int) -> torch.Tensor:
    """This party's share of a pseudo-random sharing of zero (the shares of all parties sum
    to 0 in the int64 ring): ``G(k_prev) - G(k_next)``.

    ``k_prev`` / ``k_next`` are fresh 256-bit keys drawn from the pairwise generators that
    ``crypten.init()`` agreed with the previous / next party (each pair draws in lockstep,
    so party i's ``k_next`` is party i+1's ``k_prev``), and ``G`` is AES-256 in counter
    mode. This is CrypTen's own ``PRZS`` construction with a cryptographic, hardware-
    accelerated stream instead of Mersenne-Twister output: MT's state can be recovered from
    its outputs, and with small inputs the high bits of a share *are* mask bits. Falls back
    to CrypTen's ``PRZS`` when the ``cryptography`` package is missing.
    """
    crypten = ctx.crypten
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return crypten.mpc.primitives.ArithmeticSharedTensor.PRZS((n,)).share
    cpu = torch.device("cpu")
    keys = []
    for side in ("prev", "next"):
        g = crypten.generators[side][cpu]
        k = torch.randint(-(2**63), 2**63 - 1, (4,), generator=g, dtype=torch.int64)
        keys.append(k.numpy().tobytes())
    share = _aes_ctr_stream(keys[0], n)
    share -= _aes_ctr_stream(keys[1], n)
    return share


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
    t = x.detach().to(torch.float32).clone() if x is not None else torch.zeros(n)
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
