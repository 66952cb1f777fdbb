"""Secure coordinate median / trimmed mean / Krum on CrypTen shares match the plaintext
rules (real party processes: rank 0 the coordinator, ranks 1..N the holders)."""

from __future__ import annotations

import pytest
import torch

from smpc_gym.federated.robust import coordinate_median, krum, krum_scores, trimmed_mean
from smpc_gym.federated.secure_agg import COORDINATOR
from smpc_gym.federated.secure_robust import (
    secure_coordinate_median,
    secure_krum,
    secure_krum_shares,
    secure_trimmed_mean,
)
from smpc_gym.secure.runtime import launch_local

N, D = 4, 64
# fixed-point error: inputs are rounded to 2**-16, comparisons are exact on the ring and
# the trimmed mean's 1/(N-2f) is one more fixed-point multiplication
TOL = 4 * 2.0**-16


def _updates() -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    u = 3.0 * torch.randn(N, D, generator=g, dtype=torch.float64)
    u[2, :5] = 1e4  # an outlier holder in a few coordinates
    u[:, 7] = 1.25  # all equal: ties in the sorting network
    return u


def _party(ctx):
    mine = None if ctx.rank == COORDINATOR else _updates()[ctx.rank - 1]
    med = secure_coordinate_median(ctx, mine, D)
    trim = secure_trimmed_mean(ctx, mine, D, f=1)
    return med, trim


@pytest.mark.slow  # 6 processes; the plaintext rules are tested in test_robust.py
def test_secure_median_and_trimmed_mean_match_plaintext() -> None:
    results = launch_local(_party, N + 1)
    med, trim = results[COORDINATOR]
    u = _updates()
    assert torch.allclose(med, coordinate_median(u), atol=TOL, rtol=0)
    assert torch.allclose(trim, trimmed_mean(u, 1), atol=TOL, rtol=0)
    # only the coordinator learns the output
    assert all(r == (None, None) for r in results[1:])


def test_bad_arguments() -> None:
    from smpc_gym.federated.secure_robust import run_secure_robust

    with pytest.raises(ValueError, match="'median', 'trimmed_mean' or 'krum'"):
        run_secure_robust(torch.zeros(3, 2), rule="bulyan")
    with pytest.raises(ValueError, match=r"krum with f=1 .* needs N >= 5, got N=4"):
        run_secure_robust(torch.zeros(4, 2), rule="krum", f=1)
    with pytest.raises(ValueError, match=r"\(N >= 2, D\)"):
        run_secure_robust(torch.zeros(1, 2))


# ----------------------------------------------------------------------------- Krum

KRUM_N, KRUM_F = 5, 1
KRUM_TOL = 1.5 * 2.0**-16


def _krum_cases() -> list[torch.Tensor]:
    """Hand-made and random (N, D) inputs, built identically in every process."""
    central = torch.tensor(
        [[1.1, 1.0], [0.9, 1.0], [1.0, 1.0], [1.0, 1.1], [100.0, 100.0]], dtype=torch.float64
    )  # test_robust's hand-worked case: row 2 wins (score 0.02 vs 0.03)
    # rows 1, 3, 4 equal (score 0): a three-way tie that must go to the lowest index, 1
    ties = torch.tensor([[5.0, 5.0], [0.0, 0.0], [9.0, 9.0], [0.0, 0.0], [0.0, 0.0]])
    g = torch.Generator().manual_seed(3)
    rand = 0.5 * torch.randn(KRUM_N, 32, generator=g, dtype=torch.float64)
    rand[3] = -8.0 * rand[:3].mean(0)  # a sign-flipping attacker
    return [central, ties.double(), rand]


def _krum_party(ctx):
    central, ties, rand = _krum_cases()
    outs = []
    for u in (central, rand):
        mine = None if ctx.rank == COORDINATOR else u[ctx.rank - 1]
        outs.append(secure_krum(ctx, mine, u.shape[1], KRUM_F))
    # the shared variant keeps the selection secret; revealed here (to rank 0) to test it
    mine = None if ctx.rank == COORDINATOR else ties[ctx.rank - 1]
    sel, hot = secure_krum_shares(ctx, mine, 2, KRUM_F)
    return outs, hot.get_plain_text(dst=0), sel.get_plain_text(dst=0)


@pytest.mark.slow  # 7 processes
@pytest.mark.timeout(120)
def test_secure_krum_matches_plaintext_choice_and_output() -> None:
    results = launch_local(_krum_party, KRUM_N + 1)
    outs, hot, sel = results[COORDINATOR]
    central, ties, rand = _krum_cases()
    for u, got in zip((central, rand), outs, strict=True):
        ref, idx = krum(u, KRUM_F, return_index=True)
        # precondition: the winner is not within fixed-point error of a runner-up (else
        # the comparison below would not be meaningful)
        s = krum_scores(u, KRUM_F)
        assert bool((torch.cat([s[:idx], s[idx + 1 :]]) - s[idx] > 1e-3).all())
        # the output is the selected row as encoded: CrypTen's encoder truncates to 2**-16
        # (error < 2**-16) and decodes to float32 (a few 1e-7 more) ...
        assert torch.allclose(got, ref, atol=KRUM_TOL, rtol=0), (idx, got, ref)
        for j in range(KRUM_N):  # ... and no other row
            if j != idx:
                assert not torch.allclose(got, u[j], atol=1e-3)
    assert krum(rand, KRUM_F, return_index=True)[1] != 3  # the attacker is not chosen
    # ties go to the lowest index, like torch.argmin in the plaintext rule
    ref, idx = krum(ties, KRUM_F, return_index=True)
    assert idx == 1
    assert torch.equal(hot, torch.eye(KRUM_N)[idx].to(hot.dtype))  # exactly one-hot
    assert torch.allclose(sel.double(), ref, atol=KRUM_TOL, rtol=0)
    # only the coordinator learns the outputs
    assert all(r[0] == [None, None] and r[1] is None and r[2] is None for r in results[1:])
