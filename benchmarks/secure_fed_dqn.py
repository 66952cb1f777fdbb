"""secure_fed_dqn vs fed_dqn with the same seeds: final-weight error, returns, wall time.

Trains ``fed_dqn`` (all holders in one process, plaintext FedAvg) and ``secure_fed_dqn``
(holders as party processes, secure aggregation) with identical configs and seeds, then
prints the per-parameter MAE / max error of the final global weights, both policies'
greedy evaluation return on the same episodes, and both wall times with their ratio
(the secure time includes starting the N + 1 processes).

``--provider`` picks where the Beaver triples come from: ``TTP`` (default, a dealer
process that holds no data, so N + 2 processes) or ``tfp_player0_sees_all`` (the opt-out:
rank 0, the coordinator, deals them and could unmask every opened value).

JSON keys (``--json``): ``provider, holders, steps, rounds, weight_mae, weight_max_err,
fed_return_mean, secure_return_mean, fed_seconds, secure_seconds, secure_vs_fed``
(``provider`` is the canonical provider name).

Usage: ``python benchmarks/secure_fed_dqn.py [--holders 2] [--steps 1600]
[--provider TTP|tfp_player0_sees_all] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

import smpc_gym  # noqa: F401
from smpc_gym.agents.base import NullHooks
from smpc_gym.agents.fed_dqn import Config as FedConfig
from smpc_gym.agents.fed_dqn import FedDQN
from smpc_gym.agents.secure_fed_dqn import Config, SecureFedDQN
from smpc_gym.federated.fedavg import flatten_state
from smpc_gym.secure.runtime import DEFAULT_PROVIDER, PROVIDERS, resolve_provider

ENV = {"obs_mode": "features"}


def _returns(algo, episodes: int, max_steps: int = 300) -> float:  # noqa: ANN001
    env = gym.make("GreedyMouse-v0", max_episode_steps=max_steps, **ENV)
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=1000 + ep)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(algo.act(obs))
            total += float(r)
            done = term or trunc
        out.append(total)
    return float(np.mean(out))


def main() -> None:
    """Run both, print the comparison (or one JSON object with ``--json``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--holders", type=int, default=2)
    p.add_argument("--steps", type=int, default=1600)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument(
        "--provider",
        type=resolve_provider,
        default=DEFAULT_PROVIDER,
        help=f"Beaver-triple provider, one of {PROVIDERS} (default {DEFAULT_PROVIDER})",
    )
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    kw = dict(
        holders=a.holders,
        num_envs=2,
        sync_every=100,
        hidden=[32, 32],
        batch_size=32,
        learning_starts=200,
        buffer_size=5000,
        target_update_every=200,
        eps_decay_steps=max(1, a.steps // 2),
        log_every=10**9,
    )
    t = time.perf_counter()
    fed = FedDQN(FedConfig(**kw), ENV, seed=a.seed)
    fed.train(a.steps, NullHooks())
    t_fed = time.perf_counter() - t
    t = time.perf_counter()
    sec = SecureFedDQN(
        Config(**kw, segment_steps=max(a.steps, 100), provider=a.provider), ENV, seed=a.seed
    )
    sec.train(a.steps, NullHooks())
    t_sec = time.perf_counter() - t
    wa = flatten_state(fed.global_learner.get_weights())
    wb = flatten_state(sec.global_learner.get_weights())
    res = {
        "provider": a.provider,
        "holders": a.holders,
        "steps": a.steps,
        "rounds": sec.rounds,
        "weight_mae": float((wa - wb).abs().mean()),
        "weight_max_err": float((wa - wb).abs().max()),
        "fed_return_mean": _returns(fed, a.episodes),
        "secure_return_mean": _returns(sec, a.episodes),
        "fed_seconds": t_fed,
        "secure_seconds": t_sec,
        "secure_vs_fed": t_sec / t_fed,
    }
    if a.json:
        print(json.dumps(res, indent=1))
        return
    for k, v in res.items():
        print(f"{k:>20}: {v:.6g}" if isinstance(v, float) else f"{k:>20}: {v}")


if __name__ == "__main__":
    main()
