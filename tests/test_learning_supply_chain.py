"""Slow learning check: MADDPG with explicit data exchange (EDE) beats independent
learners (NDS) on the default SupplyChain, on total NCR and on wastage.

Same schedule, training seeds and evaluation episodes as the default run of
``benchmarks/supply_chain_agents.py`` (10,000 env steps per run, training seed 0,
100 greedy evaluation episodes on one batched game seeded 12345, identical for every
policy), so the figures this test checks are the ones in the README table.
Run with ``pytest -m slow tests/test_learning_supply_chain.py`` (several minutes per
training run on a busy 2-core machine).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smpc_gym.agents.base import NullHooks
from smpc_gym.agents.common.supply_chain_eval import (
    myopic_policy,
    random_policy,
    run_episodes,
    summarize,
)
from smpc_gym.agents.maddpg import MADDPG
from smpc_gym.agents.nds import NDS

STEPS = 10_000
SEEDS = (0,)
EVAL_EPISODES = 100
EVAL_SEED = 12345


def _train_and_eval(cls: type[MADDPG]) -> dict[str, float]:
    per_seed = []
    for seed in SEEDS:
        algo = cls(cls.Config(), {}, seed)
        algo.train(STEPS, NullHooks())
        per_seed.append(summarize(run_episodes(algo.policy, {}, EVAL_EPISODES, EVAL_SEED)))
    return {
        key: float(np.mean([s[key] for s in per_seed]))
        for key in ("total_ncr", "total_wastage_units", "total_reward")
    }


@pytest.mark.slow
def test_ede_beats_nds_on_ncr_and_wastage_and_both_beat_random() -> None:
    torch.set_num_threads(1)
    ede = _train_and_eval(MADDPG)
    nds = _train_and_eval(NDS)
    rnd = summarize(run_episodes(random_policy({}, EVAL_SEED + 1), {}, EVAL_EPISODES, EVAL_SEED))
    myo = summarize(run_episodes(myopic_policy(), {}, EVAL_EPISODES, EVAL_SEED))
    print(f"\nEDE {ede}\nNDS {nds}")
    print(f"random total_ncr {rnd['total_ncr']:.1f}  myopic total_ncr {myo['total_ncr']:.1f}")

    # the paper's claim: sharing data gives more revenue and less waste
    assert ede["total_ncr"] > nds["total_ncr"]
    assert ede["total_wastage_units"] < nds["total_wastage_units"]
    # both learners beat uniform random play; EDE also beats the myopic benchmark
    assert ede["total_ncr"] > rnd["total_ncr"] and nds["total_ncr"] > rnd["total_ncr"]
    assert ede["total_ncr"] > myo["total_ncr"]
