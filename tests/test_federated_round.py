"""The one federated round (``federated.rounds.holder_update`` / ``aggregate_updates``)
as secure_fed_dqn's plain-aggregation baseline uses it: holders send their updates in the
clear, so the result is fed_dqn's to float rounding (the secure path is checked against
fed_dqn in ``test_secure_fed_dqn.py``)."""

from __future__ import annotations

import pytest
import torch

from smpc_gym.agents.base import NullHooks
from smpc_gym.agents.fed_dqn import Config as FedConfig
from smpc_gym.agents.fed_dqn import FedDQN
from smpc_gym.agents.secure_fed_dqn import Config, SecureFedDQN
from smpc_gym.federated.fedavg import flatten_state

SMALL = dict(
    holders=2,
    num_envs=2,
    sync_every=100,
    hidden=[16],
    batch_size=16,
    learning_starts=100,
    buffer_size=1000,
    target_update_every=100,
    log_every=200,
)
ENV = {"obs_mode": "features"}


@pytest.mark.timeout(300)
def test_plain_aggregation_is_fed_dqn(tmp_path) -> None:
    torch.set_num_threads(1)
    steps = 400
    ref = FedDQN(FedConfig(**SMALL, server_lr=0.5), ENV, seed=5)
    ref.train(steps, NullHooks())
    hooks = NullHooks()
    hooks.run_dir = tmp_path  # type: ignore[attr-defined]
    plain = SecureFedDQN(
        Config(**SMALL, server_lr=0.5, aggregation="plain", timeout_s=60), ENV, seed=5
    )
    plain.train(steps, hooks)
    assert plain.env_steps == ref.env_steps == steps and plain.rounds == ref.rounds == 2
    wa = flatten_state(ref.global_learner.get_weights())
    wb = flatten_state(plain.global_learner.get_weights())
    assert float((wa - wb).abs().max()) <= 1e-5  # float32 vs float64 averaging only
    assert (
        float(
            (
                wa
                - flatten_state(
                    FedDQN(FedConfig(**SMALL), ENV, seed=6).global_learner.get_weights()
                )
            )
            .abs()
            .max()
        )
        > 1e-3
    )
