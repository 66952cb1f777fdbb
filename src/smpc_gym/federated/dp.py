"""Differential privacy for federated updates: clipping, Gaussian noise, (ε, δ) accounting.

Mechanism (DP-FedAvg / user-level DP, McMahan et al. 2018): each holder's update Δ_i is
clipped to L2 norm ``C`` (:func:`clip_update`), then Gaussian noise of standard deviation
``σ·C`` (``σ`` = ``noise_multiplier``) is added either

* **locally** on the holder, to its own clipped update (:meth:`DPConfig` ``mode="local"``):
  the guarantee holds even against whoever sees that one update; or
* **centrally**, once, to the revealed *sum* of clipped updates (``mode="central"``): the
  sum has sensitivity ``C`` when one holder is added or removed, so the same ``σ`` gives
  the same per-holder (ε, δ) with ``sqrt(N)`` times less total noise, but the party that
  adds the noise (the coordinator, who sees the sum before noising) must be trusted.

Accounting: one round is a Gaussian mechanism with noise multiplier ``σ`` on that holder's
data; a holder that takes part in every round is not subsampled (rate 1), one that is
sampled with probability ``q`` per round gets Poisson-subsampling amplification.
:class:`PrivacyAccountant` keeps one accountant per holder and reports (ε, δ) for each.

We use Google's ``dp-accounting`` library rather than Opacus': it is a standalone accounting
library (Opacus' accountants live beside its per-sample-gradient engine, which we do not use),
it offers both the Rényi-DP accountant (``"rdp"``, the standard, slightly loose bound) and the
privacy-loss-distribution accountant (``"pld"``, numerically tight), and it is what
TensorFlow Privacy now points users to. ``tests/test_dp.py`` checks its figures against the
library's own documented example, a closed-form hand computation, and Opacus.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

__all__ = [
    "ACCOUNTANTS",
    "DP_MODES",
    "DPConfig",
    "PrivacyAccountant",
    "add_gaussian_noise",
    "clip_update",
    "epsilon_for",
    "noise_multiplier_for",
    "privatize_local",
]

DP_MODES = ("off", "local", "central")
ACCOUNTANTS = ("rdp", "pld")


@dataclass
class DPConfig:
    """Differential-privacy settings of a federated run.

    Attributes:
        mode: ``"off"``, ``"local"`` (each holder noises its clipped update) or
            ``"central"`` (noise once on the revealed sum of clipped updates).
        clip_norm: L2 bound ``C`` on each holder's update (> 0).
        noise_multiplier: ``σ``; the noise standard deviation is ``σ·C`` (>= 0; 0 means
            clipping only, ε = ∞).
        delta: the δ at which ε is reported (0 < δ < 1).
        accountant: ``"rdp"`` or ``"pld"`` (see the module docstring).
    """

    mode: str = "off"
    clip_norm: float = 1.0
    noise_multiplier: float = 1.0
    delta: float = 1e-5
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        if self.mode not in DP_MODES:
            raise ValueError(f"DP mode must be one of {DP_MODES}, got {self.mode!r}")
        if not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0, got {self.clip_norm!r}")
        if not self.noise_multiplier >= 0:
            raise ValueError(f"noise_multiplier must be >= 0, got {self.noise_multiplier!r}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta!r}")
        if self.accountant not in ACCOUNTANTS:
            raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {self.accountant!r}")

    @property
    def noise_std(self) -> float:
        """Standard deviation ``σ·C`` of the Gaussian noise."""
        return self.noise_multiplier * self.clip_norm


def clip_update(update: torch.Tensor, max_norm: float) -> tuple[torch.Tensor, float]:
    """Scale ``update`` so that its L2 norm is at most ``max_norm``.

    Returns:
        ``(clipped, original_norm)``; the update is unchanged when already within the bound.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
    norm = float(torch.linalg.vector_norm(update.detach().to(torch.float64)))
    if not math.isfinite(norm):
        raise ValueError("cannot clip an update containing NaN or inf")
    if norm <= max_norm:
        return update.clone(), norm
    return update * (max_norm / norm), norm


def add_gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """``x + N(0, std²)`` elementwise, drawn from ``generator`` (never global RNG state)."""
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std!r}")
    if std == 0:
        return x.clone()
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float64) * std
    return (x.to(torch.float64) + noise).to(x.dtype)


def privatize_local(
    update: torch.Tensor, config: DPConfig, generator: torch.Generator
) -> tuple[torch.Tensor, float]:
    """What a holder sends under ``config``: clipped (unless ``mode="off"``) and, in local
    mode, noised. Returns ``(update_to_send, original_norm)``."""
    if config.mode == "off":
        return update.clone(), float(torch.linalg.vector_norm(update.detach().double()))
    clipped, norm = clip_update(update, config.clip_norm)
    if config.mode == "local":
        clipped = add_gaussian_noise(clipped, config.noise_std, generator)
    return clipped, norm


def _event(noise_multiplier: float, steps: int, sampling_rate: float):  # noqa: ANN202
    import dp_accounting

    ev = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling_rate < 1.0:
        ev = dp_accounting.PoissonSampledDpEvent(sampling_rate, ev)
    return dp_accounting.SelfComposedDpEvent(ev, steps)


def _new_accountant(kind: str):  # noqa: ANN202
    import dp_accounting

    if kind == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    if kind == "pld":
        return dp_accounting.pld.PLDAccountant()
    raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {kind!r}")


def epsilon_for(
    noise_multiplier: float,
    steps: int,
    delta: float,
    sampling_rate: float = 1.0,
    accountant: str = "rdp",
) -> float:
    """ε after ``steps`` Gaussian rounds with noise multiplier ``σ`` (∞ when ``σ == 0``).

    ``sampling_rate`` is the Poisson probability that the holder takes part in a round.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not 0 < sampling_rate <= 1:
        raise ValueError(f"sampling_rate must be in (0, 1], got {sampling_rate!r}")
    if steps == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    acc = _new_accountant(accountant)
    acc.compose(_event(noise_multiplier, steps, sampling_rate))
    return float(acc.get_epsilon(delta))


def noise_multiplier_for(
    target_epsilon: float,
    steps: int,
    delta: float,
    sampling_rate: float = 1.0,
    accountant: str = "rdp",
) -> float:
    """Smallest ``σ`` whose ε after ``steps`` rounds is at most ``target_epsilon``
    (``0`` for ``target_epsilon = ∞``); uses dp-accounting's calibration search."""
    if math.isinf(target_epsilon):
        return 0.0
    if not target_epsilon > 0:
        raise ValueError(f"target_epsilon must be > 0, got {target_epsilon!r}")
    import dp_accounting

    return float(
        dp_accounting.calibrate_dp_mechanism(
            lambda: _new_accountant(accountant),
            lambda s: _event(s, steps, sampling_rate),
            target_epsilon,
            delta,
            dp_accounting.ExplicitBracketInterval(1e-3, 1e4),
            tol=1e-4,
        )
    )


class PrivacyAccountant:
    """Per-holder (ε, δ) bookkeeping over federated rounds.

    Call :meth:`step` once per round for the holders that took part (their clipped update
    entered the aggregate under noise multiplier ``config.noise_multiplier``), then
    :meth:`epsilon` / :meth:`report`. With ``mode="off"`` or ``σ = 0`` ε is ``inf``.
    """

    def __init__(self, config: DPConfig, holders: Iterable[int]) -> None:
        self.config = config
        self.rounds: dict[int, int] = {int(h): 0 for h in holders}
        self.sampling_rate = 1.0

    def step(self, holders: Iterable[int] | None = None, sampling_rate: float = 1.0) -> None:
        """Record one round for ``holders`` (default: all)."""
        if sampling_rate != self.sampling_rate and any(self.rounds.values()):
            raise ValueError(
                f"sampling_rate changed from {self.sampling_rate} to {sampling_rate}; "
                "this accountant assumes one rate per run"
            )
        self.sampling_rate = sampling_rate
        for h in self.rounds if holders is None else holders:
            if int(h) not in self.rounds:
                raise ValueError(f"unknown holder {h!r}; holders: {sorted(self.rounds)}")
            self.rounds[int(h)] += 1

    def epsilon(self, holder: int) -> float:
        """ε of ``holder`` at ``config.delta`` after the rounds recorded so far."""
        steps = self.rounds[int(holder)]
        if self.config.mode == "off" and steps > 0:
            return math.inf
        return epsilon_for(
            self.config.noise_multiplier,
            steps,
            self.config.delta,
            self.sampling_rate,
            self.config.accountant,
        )

    def report(self) -> dict[int, dict[str, float]]:
        """``{holder: {"epsilon": ε, "delta": δ, "rounds": n}}`` for every holder."""
        cache: dict[int, float] = {}
        out = {}
        for h, n in self.rounds.items():
            if n not in cache:
                cache[n] = self.epsilon(h)
            out[h] = {"epsilon": cache[n], "delta": self.config.delta, "rounds": float(n)}
        return out
