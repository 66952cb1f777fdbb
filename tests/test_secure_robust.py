"""Secure coordinate median / trimmed mean on CrypTen shares match the plaintext rules."""

from __future__ import annotations

import pytest
import torch

from smpc_gym.federated.robust import coordinate_median, trimmed_mean
from smpc_gym.federated.secure_agg import COORDINATOR
from smpc_gym.federated.secure_robust import secure_coordinate_median, secure_trimmed_mean
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

    with pytest.raises(ValueError, match="'median' or 'trimmed_mean'"):
        run_secure_robust(torch.zeros(3, 2), rule="krum")
    with pytest.raises(ValueError, match=r"\(N >= 2, D\)"):
        run_secure_robust(torch.zeros(1, 2))
