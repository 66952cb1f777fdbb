"""PATE: the moments accountant against hand computation, noisy argmax, the pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smpc_gym.studies import pate

LOG_INV_DELTA = math.log(1e5)


def test_q_bound_by_hand() -> None:
    # counts [10, 2, 0], gamma 0.5: gaps 4 and 5
    q = pate.q_noisy_max([10, 2, 0], 0.5)
    assert q == pytest.approx((2 + 4) * math.exp(-4) / 4 + (2 + 5) * math.exp(-5) / 4)
    assert pate.q_noisy_max([3, 3, 3], 0.1) == 1.0  # capped


def test_data_independent_moment_by_hand() -> None:
    assert pate.logmgf_data_independent(0.1, 2) == pytest.approx(2 * 0.01 * 2 * 3)
    # for large gamma the pure-DP bound 2*gamma*lambda is smaller
    assert pate.logmgf_data_independent(2.0, 3) == pytest.approx(2 * 2.0 * 3)


@pytest.mark.parametrize(
    ("queries", "gamma", "expected", "best_lambda"),
    [
        # alpha = T * 2 g^2 l (l + 1); eps(l) = (alpha + ln 1e5) / l, worked by hand:
        # T=100, g=0.05: eps(l) = 0.5 (l + 1) + ln(1e5) / l -> l = 5: 3 + ln(1e5)/5
        (100, 0.05, 3.0 + LOG_INV_DELTA / 5, 5),
        # T=1000, g=0.05: eps(l) = 5 (l + 1) + ln(1e5)/l: l=1 21.51, l=2 20.76, l=3 25.8
        (1000, 0.05, 15.0 + LOG_INV_DELTA / 2, 2),
        # T=10, g=0.1: eps(l) = 0.2 (l + 1) + ln(1e5)/l: l=7 3.245, l=8 3.239 (capped at 8)
        (10, 0.1, 1.8 + LOG_INV_DELTA / 8, 8),
    ],
)
def test_data_independent_epsilon_by_hand(
    queries: int, gamma: float, expected: float, best_lambda: int
) -> None:
    counts = np.full((queries, 4), 5)  # a four-way tie: q is capped, no data-dependent gain
    r = pate.pate_epsilon(counts, gamma, delta=1e-5, moments=8)
    assert r["eps_data_independent"] == pytest.approx(expected)
    assert r["lambda_data_independent"] == best_lambda
    assert r["eps_data_dependent"] == pytest.approx(expected)


def test_data_dependent_epsilon_by_hand_for_unanimous_teachers() -> None:
    gamma, queries = 0.1, 200
    counts = np.tile([50, 0, 0], (queries, 1))
    q = 2 * (2 + 5) * math.exp(-5) / 4
    assert q < (math.exp(0.2) - 1) / (math.exp(0.4) - 1)  # Theorem 3 applies
    best = math.inf
    for lam in range(1, 9):
        t = (1 - q) * ((1 - q) / (1 - math.exp(0.2) * q)) ** lam + q * math.exp(0.2 * lam)
        alpha = min(math.log(t), 2 * gamma**2 * lam * (lam + 1))
        best = min(best, (queries * alpha + LOG_INV_DELTA) / lam)
    r = pate.pate_epsilon(counts, gamma)
    assert r["eps_data_dependent"] == pytest.approx(best)
    assert r["eps_data_dependent"] < r["eps_data_independent"]


def test_theorem3_falls_back_when_q_is_large() -> None:
    g, lam = 0.1, 3
    assert pate.logmgf_data_dependent(0.46, g, lam) == pate.logmgf_data_independent(g, lam)
    assert pate.logmgf_data_dependent(0.0, g, lam) == pytest.approx(0.0)


def test_gnmax_epsilon_by_hand() -> None:
    # eps(l) = T l / sigma^2 + ln(1e5)/(l - 1): l=2 -> 11.71, l=8 -> 2.445, l=16 -> 2.3675
    r = pate.gnmax_epsilon(10, 10.0, orders=[2, 8, 16])
    assert r["eps_data_independent"] == pytest.approx(1.6 + LOG_INV_DELTA / 15)
    assert r["lambda_data_independent"] == 16


def test_noisy_argmax_distribution() -> None:
    rng = np.random.default_rng(0)
    counts = np.tile([5, 3, 0], (20_000, 1))
    # almost no noise: always the winner
    assert (pate.noisy_argmax(counts, rng, gamma=1e4) == 0).all()
    # huge noise: close to uniform
    freq = np.bincount(pate.noisy_argmax(counts, rng, gamma=1e-4), minlength=3) / 20_000
    assert np.allclose(freq, 1 / 3, atol=0.02)
    # moderate noise: P(label != winner) is below the paper's bound q
    g = 0.5
    wrong = float((pate.noisy_argmax(counts, rng, gamma=g) != 0).mean())
    assert 0 < wrong <= pate.q_noisy_max([5, 3, 0], g) + 3 * math.sqrt(0.25 / 20_000)
    gn = pate.noisy_argmax(counts, rng, sigma=1.0)
    assert 0.8 < float((gn == 0).mean()) < 1.0
    with pytest.raises(ValueError, match="exactly one of gamma"):
        pate.noisy_argmax(counts, rng)


def test_vote_counts_and_errors() -> None:
    votes = np.array([[0, 1, 1], [0, 2, 1], [1, 2, 1]])
    assert pate.vote_counts(votes, 3).tolist() == [[2, 1, 0], [0, 1, 2], [0, 3, 0]]
    with pytest.raises(ValueError, match=r"votes must be in \[0, 2\)"):
        pate.vote_counts(votes, 2)
    with pytest.raises(ValueError, match="mechanism must be one of"):
        pate.PATEConfig(mechanism="exp")


def test_pipeline_reports_its_accounting() -> None:
    cfg = pate.PATEConfig(
        num_teachers=3,
        teacher_steps=2000,
        teacher_envs=8,
        num_queries=60,
        gamma=0.2,
        student_epochs=30,
        eval_steps=20,
        eval_envs=4,
    )
    r = pate.run_pate(cfg, seed=1)
    assert r["queries"] == 60
    assert 1 / 3 <= r["teacher_agreement"] <= 1.0
    assert 0.0 <= r["label_accuracy"] <= 1.0
    assert r["eps_data_dependent"] <= r["eps_data_independent"] + 1e-9
    # 60 queries at gamma 0.2: the data-independent bound by hand (moments 1..8)
    hand = min(
        (60 * min(2 * 0.04 * lam * (lam + 1), 0.4 * lam) + LOG_INV_DELTA) / lam
        for lam in range(1, 9)
    )
    assert r["eps_data_independent"] == pytest.approx(hand)


@pytest.mark.slow
def test_student_beats_random_with_little_noise() -> None:
    cfg = pate.PATEConfig(num_teachers=20, teacher_steps=20_000, num_queries=1000, gamma=1.0)
    r = pate.run_pate(cfg, seed=0)
    assert r["student_reward_per_step"] > r["random_reward_per_step"] + 2.0
