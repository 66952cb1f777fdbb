"""secure_fed_dqn learns like fed_dqn: same seeds, same result up to fixed-point error."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import smpc_gym  # noqa: F401  (registers GreedyMouse-v0)
from smpc_gym.agents.base import NullHooks, get_algorithm
from smpc_gym.agents.fed_dqn import Config as FedConfig
from smpc_gym.agents.fed_dqn import FedDQN
from smpc_gym.agents.secure_fed_dqn import Config, SecureFedDQN
from smpc_gym.federated.dp import epsilon_for
from smpc_gym.federated.fedavg import flatten_state
from smpc_gym.federated.repository import ModelRepository

SMALL = dict(
    holders=2,
    num_envs=2,
    sync_every=100,
    hidden=[32, 32],
    batch_size=32,
    learning_starts=200,
    buffer_size=5000,
    target_update_every=200,
    eps_decay_steps=1000,
    log_every=400,
)
ENV = {"obs_mode": "features"}


class _Rows(NullHooks):
    def __init__(self, run_dir=None) -> None:
        self.rows: list[tuple[int, dict]] = []
        if run_dir is not None:
            self.run_dir = run_dir

    def log(self, step, metrics) -> None:
        self.rows.append((step, dict(metrics)))


def _returns(algo, episodes: int = 6, max_steps: int = 200) -> np.ndarray:
    env = gym.make("GreedyMouse-v0", max_episode_steps=max_steps, **ENV)
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=100 + ep)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(algo.act(obs))
            total += float(r)
            done = term or trunc
        out.append(total)
    return np.array(out)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("server_lr", [1.0, pytest.param(0.5, marks=pytest.mark.slow)])
def test_same_seeds_same_weights_as_fed_dqn(tmp_path, server_lr: float) -> None:
    """Also with a server step size: secure_fed_dqn's coordinator scales the revealed mean."""
    torch.set_num_threads(1)
    steps = 1200
    plain = FedDQN(FedConfig(**SMALL, server_lr=server_lr), ENV, seed=3)
    plain.train(steps, NullHooks())
    secure = SecureFedDQN(Config(**SMALL, server_lr=server_lr, timeout_s=60), ENV, seed=3)
    hooks = _Rows(run_dir=tmp_path)
    secure.train(steps, hooks)
    assert secure.env_steps == plain.env_steps == steps
    assert secure.rounds == plain.rounds == steps // (SMALL["holders"] * SMALL["sync_every"])
    wa = flatten_state(plain.global_learner.get_weights())
    wb = flatten_state(secure.global_learner.get_weights())
    diff = (wa - wb).abs()
    # 16-bit fixed point: each round's aggregate is rounded to 2^-16 / sum of weights
    assert float(diff.mean()) <= 1e-5 and float(diff.max()) <= 1e-3
    assert (
        float(
            (
                wa
                - flatten_state(
                    FedDQN(FedConfig(**SMALL), ENV, seed=4).global_learner.get_weights()
                )
            )
            .abs()
            .mean()
        )
        > 1e-2
    )
    # the holders' local learners are the same too (they loaded the same aggregates)
    for la, lb in zip(plain.learners, secure.learners, strict=True):
        assert la.env_steps == lb.env_steps and la.grad_steps == lb.grad_steps
    # evaluation returns within noise (identical episodes)
    ra, rb = _returns(plain), _returns(secure)
    se = math.sqrt((ra.var() + rb.var()) / len(ra)) + 1e-9
    assert abs(ra.mean() - rb.mean()) <= 3 * se + 1.0
    # logged rows, securely aggregated statistics, and the repository
    assert [s for s, _ in hooks.rows] == [400, 800, 1200]
    assert hooks.rows[-1][1]["dp_epsilon"] == math.inf and "loss" in hooks.rows[-1][1]
    repo = ModelRepository(tmp_path / "repository")
    assert repo.rounds() == list(range(secure.rounds + 1))
    final = flatten_state(repo.load())
    assert torch.equal(final, wb)


def test_registry_and_config_errors() -> None:
    assert get_algorithm("secure_fed_dqn") is SecureFedDQN
    with pytest.raises(ValueError, match="holders must be >= 2"):
        Config(holders=1)
    with pytest.raises(ValueError, match="'loud'"):
        Config(dp_mode="loud")
    with pytest.raises(ValueError, match="aggregation must be"):
        Config(aggregation="median")


@pytest.mark.timeout(600)
def test_local_dp_reports_epsilon_per_holder(tmp_path) -> None:
    cfg = Config(**SMALL, dp_mode="local", clip_norm=0.5, noise_multiplier=1.5, timeout_s=60)
    algo = SecureFedDQN(cfg, ENV, seed=0)
    hooks = _Rows(run_dir=tmp_path)
    algo.train(800, hooks)
    expected = epsilon_for(1.5, algo.rounds, 1e-5)
    assert algo.rounds == 4 and math.isfinite(expected)
    assert hooks.rows[-1][1]["dp_epsilon"] == pytest.approx(expected)
    assert set(algo.privacy) == {0, 1}
    assert all(v["epsilon"] == pytest.approx(expected) for v in algo.privacy.values())


@pytest.mark.slow  # the secure equivalence tests cover the same round
@pytest.mark.timeout(300)
def test_plain_aggregation_is_fed_dqn(tmp_path) -> None:
    """The shared federated round's plain baseline (updates sent in the clear) gives
    fed_dqn's weights up to float rounding, with a server step size too."""
    torch.set_num_threads(1)
    steps, small = 400, {**SMALL, "learning_starts": 50, "server_lr": 0.5}
    ref = FedDQN(FedConfig(**small), ENV, seed=5)
    ref.train(steps, NullHooks())
    plain = SecureFedDQN(Config(**small, aggregation="plain", timeout_s=60), ENV, seed=5)
    plain.train(steps, _Rows(run_dir=tmp_path))
    assert plain.env_steps == ref.env_steps == steps and plain.rounds == ref.rounds == 2
    trained, got = (flatten_state(a.global_learner.get_weights()) for a in (ref, plain))
    assert torch.allclose(got, trained, rtol=0, atol=1e-5)  # float32 vs float64 sums only
    start = flatten_state(FedDQN(FedConfig(**small), ENV, seed=5).global_learner.get_weights())
    assert not torch.allclose(start, trained, rtol=0, atol=1e-3)  # the rounds did learn
