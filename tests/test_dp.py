"""DP for federated updates: clipping, noise, and the accountant's figures."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm

from smpc_gym.federated.dp import (
    DPConfig,
    PrivacyAccountant,
    add_gaussian_noise,
    clip_update,
    epsilon_for,
    noise_multiplier_for,
    privatize_local,
)


def test_clipping_bounds_the_norm_and_keeps_direction() -> None:
    g = torch.Generator().manual_seed(0)
    u = torch.randn(1000, generator=g) * 5
    clipped, n0 = clip_update(u, 2.0)
    assert n0 == pytest.approx(float(u.norm()), rel=1e-6)
    assert float(clipped.norm()) == pytest.approx(2.0, rel=1e-6)
    assert torch.nn.functional.cosine_similarity(clipped, u, dim=0) > 0.999999
    small = u / u.norm() * 0.5
    same, _ = clip_update(small, 2.0)
    assert torch.equal(same, small)  # within the bound: untouched
    with pytest.raises(ValueError, match="max_norm must be > 0, got -1"):
        clip_update(u, -1)
    with pytest.raises(ValueError, match="NaN"):
        clip_update(torch.tensor([float("nan")]), 1.0)


def test_local_noise_has_the_configured_std_and_comes_from_the_generator() -> None:
    cfg = DPConfig(mode="local", clip_norm=1.0, noise_multiplier=3.0)
    u = torch.zeros(200_000)
    a, _ = privatize_local(u, cfg, torch.Generator().manual_seed(1))
    b, _ = privatize_local(u, cfg, torch.Generator().manual_seed(1))
    c, _ = privatize_local(u, cfg, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.std()) == pytest.approx(3.0, rel=0.01)
    central = DPConfig(mode="central", clip_norm=1.0, noise_multiplier=3.0)
    big = torch.full((100,), 10.0)
    sent, _ = privatize_local(big, central, torch.Generator().manual_seed(1))
    assert float(sent.norm()) == pytest.approx(1.0, rel=1e-6)  # central: clip only
    assert torch.equal(add_gaussian_noise(big, 0.0, torch.Generator()), big)


def test_documented_example_of_dp_accounting() -> None:
    """dp-accounting's own test: σ = 4.530877117, one unsampled Gaussian step is
    exactly (1, 1e-6)-DP under its RDP accountant."""
    assert epsilon_for(4.530877117, 1, 1e-6) == pytest.approx(1.0, abs=1e-3)


def _exact_gaussian_epsilon(sigma: float, steps: int, delta: float) -> float:
    """Hand computation: T Gaussian steps of noise σ (sensitivity 1) compose to one
    Gaussian with μ = sqrt(T)/σ, whose exact privacy curve (Balle & Wang 2018) is
    δ(ε) = Φ(μ/2 − ε/μ) − e^ε Φ(−μ/2 − ε/μ)."""
    mu = math.sqrt(steps) / sigma

    def gap(eps: float) -> float:
        return norm.cdf(mu / 2 - eps / mu) - math.exp(eps) * norm.cdf(-mu / 2 - eps / mu) - delta

    return brentq(gap, 0.0, 100.0)


def _rdp_hand_bound(sigma: float, steps: int, delta: float) -> float:
    """Hand computation of the classic RDP bound: RDP(α) = Tα/(2σ²) and
    ε = min_α RDP(α) + log(1/δ)/(α − 1) (Mironov 2017, Prop. 3)."""
    return min(
        steps * a / (2 * sigma**2) + math.log(1 / delta) / (a - 1)
        for a in [1 + i / 100 for i in range(1, 100_000)]
    )


@pytest.mark.parametrize("sigma,steps,delta", [(1.0, 10, 1e-5), (4.0, 100, 1e-5), (2.0, 1, 1e-6)])
def test_accountants_against_hand_computation(sigma, steps, delta) -> None:
    exact = _exact_gaussian_epsilon(sigma, steps, delta)
    pld = epsilon_for(sigma, steps, delta, accountant="pld")
    rdp = epsilon_for(sigma, steps, delta, accountant="rdp")
    assert pld == pytest.approx(exact, rel=0.01)  # PLD is tight for the Gaussian
    assert exact <= rdp <= _rdp_hand_bound(sigma, steps, delta) + 1e-6  # RDP is a valid bound
    assert rdp < 1.5 * exact  # ... and not a vacuous one


def test_subsampled_rdp_agrees_with_opacus() -> None:
    from opacus.accountants import RDPAccountant

    for sigma, q, steps in [(1.1, 0.01, 1000), (0.8, 0.05, 200)]:
        opacus = RDPAccountant()
        opacus.history = [(sigma, q, steps)]
        ours = epsilon_for(sigma, steps, 1e-5, sampling_rate=q)
        assert ours == pytest.approx(opacus.get_epsilon(1e-5), rel=0.02)
        assert ours < epsilon_for(sigma, steps, 1e-5)  # subsampling amplifies privacy


def test_calibration_inverts_the_accountant() -> None:
    for eps in (1.0, 4.0, 8.0):
        sigma = noise_multiplier_for(eps, 50, 1e-5)
        assert epsilon_for(sigma, 50, 1e-5) == pytest.approx(eps, rel=0.01)
    assert noise_multiplier_for(math.inf, 50, 1e-5) == 0.0
    assert noise_multiplier_for(1.0, 50, 1e-5) > noise_multiplier_for(8.0, 50, 1e-5)


def test_per_holder_accounting() -> None:
    acc = PrivacyAccountant(DPConfig(mode="local", noise_multiplier=2.0), holders=[1, 2, 3])
    for _ in range(10):
        acc.step()
    acc.step([1])  # holder 1 took part in one more round
    rep = acc.report()
    assert rep[2]["epsilon"] == pytest.approx(epsilon_for(2.0, 10, 1e-5))
    assert rep[1]["epsilon"] > rep[2]["epsilon"] == rep[3]["epsilon"]
    assert rep[1]["rounds"] == 11 and rep[1]["delta"] == 1e-5
    off = PrivacyAccountant(DPConfig(mode="off"), holders=[1])
    off.step()
    assert off.epsilon(1) == math.inf
    with pytest.raises(ValueError, match="unknown holder 9"):
        acc.step([9])


def test_config_errors_name_the_value() -> None:
    with pytest.raises(ValueError, match="'loud'"):
        DPConfig(mode="loud")
    with pytest.raises(ValueError, match="delta must be in"):
        DPConfig(delta=0)
    with pytest.raises(ValueError, match="'moments'"):
        DPConfig(accountant="moments")
