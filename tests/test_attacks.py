"""Gradient inversion: it works on a plain single-holder update before it is shown to fail
under secure aggregation and strong DP."""

from __future__ import annotations

import pytest
import torch

from smpc_gym.agents.base import torch_generator
from smpc_gym.agents.dqn import make_q_network
from smpc_gym.federated.dp import noise_multiplier_for
from smpc_gym.studies import attacks

CFG = attacks.AttackConfig(iterations=300, restarts=1)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.set_num_threads(1)
    return make_q_network(14, 8, (64, 64), torch_generator(0))


def test_action_inference_and_analytic_candidates_are_exact_for_one_sample(model) -> None:
    (b,), _ = attacks.sample_holder_batches(model, 1, 1, seed=3)
    g = attacks.loss_gradient(model, b.obs, b.actions, b.targets)
    assert attacks.infer_actions(g) == [int(b.actions[0])]
    cands = attacks.first_layer_candidates(g)
    assert cands.shape[0] > 0
    assert torch.allclose(cands, b.obs.expand_as(cands), atol=1e-4)


def test_attack_reconstructs_a_plain_single_holder_update(model) -> None:
    batches, prior = attacks.sample_holder_batches(model, 1, 2, seed=3)
    r = attacks.attack_scenario(model, batches, prior, "plain", CFG, torch_generator(1))
    assert r["normalized_mse"] < 0.1, r
    assert r["action_accuracy"] == 1.0


def test_attack_fails_on_a_secure_sum_of_eight_holders(model) -> None:
    batches, prior = attacks.sample_holder_batches(model, 8, 4, seed=3)
    r = attacks.attack_scenario(model, batches, prior, "secure", CFG, torch_generator(1))
    assert r["normalized_mse"] > 0.5, r
    # and the same holder's batch alone would have been recovered
    plain = attacks.attack_scenario(model, batches[:1], prior, "plain", CFG, torch_generator(1))
    assert plain["normalized_mse"] < 0.2 * r["normalized_mse"], (plain, r)


def test_attack_fails_under_strong_local_dp(model) -> None:
    batches, prior = attacks.sample_holder_batches(model, 1, 2, seed=3)
    sigma = noise_multiplier_for(1.0, 1, 1e-5)
    r = attacks.attack_scenario(
        model, batches, prior, "dp", CFG, torch_generator(1), dp_noise_multiplier=sigma
    )
    assert r["normalized_mse"] > 0.5, r
    assert r["gradient_distance"] > 0.5


def test_scoring_matches_by_hungarian_assignment() -> None:
    true = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    rec = torch.tensor([[1.0, 1.0], [0.0, 0.1]])
    r = attacks.score_reconstruction(
        rec, torch.tensor([3, 2]), true, torch.tensor([2, 3]), torch.tensor([0.5, 0.5])
    )
    assert r["mse"] == pytest.approx(0.01 / 4)
    assert r["action_accuracy"] == 1.0
    assert r["baseline_mse"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="scenario must be"):
        attacks.attack_scenario(torch.nn.Linear(2, 2), [], true, "leak", CFG, torch_generator(0))
