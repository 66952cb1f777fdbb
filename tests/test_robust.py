"""Robust aggregation rules on hand-made inputs, and the Byzantine behaviours."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch

from smpc_gym.federated import robust
from smpc_gym.federated.byzantine import alie_z, byzantine_updates


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_median_and_trimmed_mean_ignore_an_outlier_the_mean_does_not() -> None:
    x = _t([[1, 2], [2, 3], [3, 4], [1000, -1000], [2, 2]])
    assert torch.equal(robust.coordinate_median(x, 1), _t([[2, 2]])[0])
    assert torch.allclose(robust.trimmed_mean(x, 1), _t([[7 / 3, 7 / 3]])[0])
    assert robust.mean(x)[0] > 100  # the baseline is dragged away
    # even N: average of the two middle values
    assert torch.equal(robust.coordinate_median(_t([[1], [2], [4], [100]])), _t([[3]])[0])


def test_trimmed_mean_with_f0_is_the_mean() -> None:
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(robust.trimmed_mean(x, 0), x.mean(0))


def test_krum_picks_the_most_central_vector() -> None:
    # scores with N - f - 2 = 2 nearest neighbours: (1, 1) has 0.01 + 0.01, the others
    # 0.01 + 0.02 (hand-computed); the outlier scores ~2e4
    x = _t([[1.1, 1.0], [0.9, 1.0], [1.0, 1.0], [1.0, 1.1], [100.0, 100.0]])
    scores = robust.krum_scores(x, 1)
    assert torch.allclose(scores[:4], _t([[0.03, 0.03, 0.02, 0.03]])[0])
    agg, idx = robust.krum(x, 1, return_index=True)
    assert idx == 2 and torch.equal(agg, x[2])
    # multi-Krum with m = N - f averages the four honest ones
    assert torch.allclose(robust.multi_krum(x, 1), x[:4].mean(0))
    assert torch.allclose(robust.multi_krum(x, 1, m=1), x[2])


def test_bulyan_selection_and_trimming_by_hand() -> None:
    # column 0 drives the iterated-Krum selection (worked by hand in the docstring-style
    # comment below); column 1 checks the per-coordinate "beta closest to the median".
    col0 = [0.0, 1.0, 2.0, 3.0, 4.0, 10.0, 100.0]
    col1 = [0.0, 0.01, 0.02, 0.09, 0.025, 0.0, 0.0]
    x = torch.tensor([col0, col1], dtype=torch.float64).T
    # iteration 1 (4 neighbours): scores 30, 15, 10, 15, 30, 230, ... -> row 2;
    # then rows 1, 3, 0/4 ...: the two far rows (10 and 100) are never selected
    sel = robust.bulyan_select(x, 1)
    assert sel[0] == 2
    assert sorted(sel) == [0, 1, 2, 3, 4]
    # theta = 5 selected, beta = 3: col0 median 2 -> {2, 1, 3}; col1 median 0.02 ->
    # {0.02, 0.025, 0.01}
    agg = robust.bulyan(x, 1)
    assert torch.allclose(agg, torch.tensor([2.0, (0.02 + 0.025 + 0.01) / 3], dtype=torch.float64))


@pytest.mark.parametrize(
    ("rule", "n", "f", "need"),
    [
        ("krum", 4, 1, 5),
        ("multi_krum", 6, 2, 7),
        ("bulyan", 6, 1, 7),
        ("bulyan", 10, 2, 11),
        ("trimmed_mean", 2, 1, 3),
        ("median", 4, 2, 5),
    ],
)
def test_too_few_holders_is_an_error_naming_the_minimum(
    rule: str, n: int, f: int, need: int
) -> None:
    x = torch.zeros(n, 3)
    with pytest.raises(ValueError, match=rf"needs N >= {need} updates, got N={n}"):
        robust.aggregate(rule, x, f)
    robust.aggregate(rule, torch.zeros(need, 3), f)  # the minimum itself is fine


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="unknown aggregation rule 'avg'"):
        robust.aggregate("avg", torch.zeros(3, 2), 0)
    with pytest.raises(ValueError, match="2-D"):
        robust.coordinate_median(torch.zeros(3), 0)
    with pytest.raises(ValueError, match="NaN"):
        robust.krum(torch.full((5, 2), float("nan")), 1)
    with pytest.raises(ValueError, match="f .* >= 0"):
        robust.trimmed_mean(torch.zeros(3, 2), -1)


def test_rules_tolerate_f_gaussian_attackers_where_the_mean_fails() -> None:
    g = torch.Generator().manual_seed(1)
    honest = 1.0 + 0.1 * torch.randn(7, 50, generator=g, dtype=torch.float64)
    sent = byzantine_updates("gaussian", honest, [3], g, std=100.0)
    truth = honest.mean(0)
    assert float((robust.mean(sent) - truth).norm()) > 50
    for rule in ("median", "trimmed_mean", "krum", "multi_krum", "bulyan"):
        err = float((robust.aggregate(rule, sent, 1) - truth).norm())
        assert err < 0.1 * math.sqrt(50), (rule, err)


def test_byzantine_behaviours() -> None:
    g = torch.Generator().manual_seed(0)
    honest = torch.randn(5, 4, generator=g, dtype=torch.float64)
    flipped = byzantine_updates("sign_flip", honest, [0, 2], g, scale=3.0)
    assert torch.equal(flipped[[0, 2]], -3.0 * honest[[0, 2]])
    assert torch.equal(flipped[[1, 3, 4]], honest[[1, 3, 4]])
    a = byzantine_updates("gaussian", honest, [1], torch.Generator().manual_seed(5), std=7.0)
    b = byzantine_updates("gaussian", honest, [1], torch.Generator().manual_seed(5), std=7.0)
    assert torch.equal(a, b) and not torch.equal(a[1], honest[1])
    # ALIE: mu - z sigma of the honest rows, z = Phi^-1((n - s)/n), s = floor(n/2 + 1) - f
    z = alie_z(5, 1)
    assert z == pytest.approx(NormalDist().inv_cdf((5 - 2) / 5))
    alie = byzantine_updates("alie", honest, [4], g)
    good = honest[:4]
    assert torch.allclose(alie[4], good.mean(0) - z * good.std(0))
    assert torch.equal(byzantine_updates("none", honest, [1], g), honest)
    with pytest.raises(ValueError, match="unknown Byzantine attack 'flip'"):
        byzantine_updates("flip", honest, [1], g)
    with pytest.raises(ValueError, match="at least one holder must be honest"):
        byzantine_updates("sign_flip", honest, range(5), g)
    with pytest.raises(ValueError, match="distinct indices"):
        byzantine_updates("sign_flip", honest, [7], g)
