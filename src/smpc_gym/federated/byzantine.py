"""Byzantine data-holder behaviours: what a malicious holder sends instead of its update.

:func:`byzantine_updates` turns the honest holders' updates ``(N, D)`` and a set of
Byzantine indices into the updates the coordinator receives:

* ``"sign_flip"`` — a Byzantine holder sends ``-scale ×`` its own honest update.
* ``"gaussian"`` — it sends ``N(0, std²)`` noise in every coordinate (a crashed or
  garbage-sending holder; large ``std`` moves the plain mean arbitrarily far).
* ``"alie"`` — "A little is enough" (Baruch, Baruch & Goldberg, NeurIPS 2019): every
  Byzantine holder sends ``μ - z·σ`` (per-coordinate mean and standard deviation of the
  honest updates), with ``z = Φ⁻¹((N - s)/N)`` and ``s = ⌊N/2 + 1⌋ - f`` the number of
  honest holders the attacker needs "on its side". The shift is small enough to stay inside
  the spread of honest updates, so median/Krum/Bulyan accept it; it is the attack that
  defeats the rules designed against the other two. (The attackers are omniscient: they
  know every honest update, the strongest assumption of the paper.)
* ``"none"`` — honest behaviour (for baselines).

Randomness comes from the passed-in ``torch.Generator`` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import torch

__all__ = ["ATTACKS", "alie_z", "byzantine_updates"]

#: Behaviours accepted by :func:`byzantine_updates`.
ATTACKS = ("none", "sign_flip", "gaussian", "alie")


def alie_z(n: int, f: int) -> float:
    """Baruch et al.'s ``z_max = Φ⁻¹((n - s) / n)`` with ``s = ⌊n/2 + 1⌋ - f``."""
    if not 0 <= f < n:
        raise ValueError(f"need 0 <= f < n, got n={n}, f={f}")
    s = math.floor(n / 2 + 1) - f
    p = (n - s) / n
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(NormalDist().inv_cdf(p))


def byzantine_updates(
    attack: str,
    honest: torch.Tensor,
    byzantine: Sequence[int],
    generator: torch.Generator,
    *,
    scale: float = 1.0,
    std: float = 10.0,
    z: float | None = None,
) -> torch.Tensor:
    """The ``(N, D)`` updates the coordinator receives when holders ``byzantine`` attack.

    Args:
        attack: one of :data:`ATTACKS`.
        honest: ``(N, D)`` updates every holder *would* send if honest (row i = holder i).
        byzantine: indices of the Byzantine holders (``f = len(byzantine)``).
        generator: randomness of the ``"gaussian"`` attack.
        scale: sign-flip multiplier (``-scale × own update``; > 0).
        std: standard deviation of the ``"gaussian"`` attack (> 0).
        z: ALIE's deviation in honest standard deviations (default :func:`alie_z`).

    Returns:
        A new float64 ``(N, D)`` tensor; honest rows are copied unchanged.
    """
    if attack not in ATTACKS:
        raise ValueError(f"unknown Byzantine attack {attack!r}; choose one of {ATTACKS}")
    if not torch.is_tensor(honest) or honest.dim() != 2:
        raise ValueError(
            f"honest must be a 2-D (N, D) tensor, got shape {tuple(getattr(honest, 'shape', ()))}"
        )
    n = honest.shape[0]
    byz = sorted({int(i) for i in byzantine})
    if len(byz) != len(list(byzantine)) or any(not 0 <= i < n for i in byz):
        raise ValueError(f"byzantine must be distinct indices in [0, {n}), got {list(byzantine)}")
    if len(byz) >= n:
        raise ValueError(f"at least one holder must be honest; got f={len(byz)} of N={n}")
    out = honest.detach().to(torch.float64).clone()
    if attack == "none" or not byz:
        return out
    if attack == "sign_flip":
        if not scale > 0:
            raise ValueError(f"sign-flip scale must be > 0, got {scale!r}")
        out[byz] = -scale * out[byz]
    elif attack == "gaussian":
        if not std > 0:
            raise ValueError(f"gaussian attack std must be > 0, got {std!r}")
        noise = torch.randn((len(byz), out.shape[1]), generator=generator, dtype=torch.float64)
        out[byz] = std * noise
    else:  # alie
        good = [i for i in range(n) if i not in set(byz)]
        h = out[good]
        mu = h.mean(0)
        sigma = h.std(0, unbiased=len(good) > 1) if len(good) > 1 else torch.zeros_like(mu)
        zz = alie_z(n, len(byz)) if z is None else float(z)
        out[byz] = (mu - zz * sigma).expand(len(byz), -1)
    return out
