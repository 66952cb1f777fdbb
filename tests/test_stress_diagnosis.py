"""``benchmarks/secure_maddpg_stress.py``'s account of its worst update: one ReLU decision.

The stress run reports, at its worst weight, what flipping the ReLU decision of the
sample whose pre-activation is nearest 0 would change in that weight's gradient. Here the
flip is made for real in plaintext (a bias moved so that one sample's pre-activation
crosses 0 and nothing else does), and the reported change must be the gradients'
difference; the replayed gradient must be the one the update's optimiser stepped on.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from smpc_gym.agents import maddpg

ROOT = Path(__file__).resolve().parents[1]
UNIT, COL, SAMPLE = 5, 7, 11


@pytest.fixture(scope="module")
def stress() -> Any:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(
            "secure_maddpg_stress", ROOT / "benchmarks/secure_maddpg_stress.py"
        )
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.pop(0)


def _state(nets: maddpg.Nets, stress: Any) -> dict[str, Any]:
    """The revealed-state layout of a plaintext twin (no optimiser state yet)."""
    return {
        "nets": {
            kind: [
                [
                    (lin.weight.detach().clone(), lin.bias.detach().clone())
                    for lin in stress._linears(n)
                ]
                for n in getattr(nets, kind)
            ]
            for kind in stress.NET_KINDS
        },
        "opts": {"actors": None, "critics": None},
    }


def _critic_preactivations(nets: maddpg.Nets, batch, sharing) -> torch.Tensor:
    """``z`` of critic 0's second layer on the critic-loss inputs."""
    seen: dict[str, torch.Tensor] = {}
    lin = [m for m in nets.critics[0] if isinstance(m, torch.nn.Linear)][1]
    hook = lin.register_forward_hook(lambda m, i, z: seen.setdefault("z", z.detach()))
    obs = [b.obs for b in batch]
    acts = [b.action for b in batch]
    with torch.no_grad():
        nets.critics[0](sharing.critic_input(0, obs, acts, nets.inv_high))
    hook.remove()
    return seen["z"]


def test_relu_flip_accounts_for_the_gradient_a_flipped_decision_moves(stress: Any) -> None:
    cfg, env = stress.preset_config([])
    high = maddpg.action_caps(env)
    twin = stress._twin(cfg, *stress._nets(cfg, high, None), high)
    sharing = maddpg.DataSharing("ede")
    data = stress._synthetic(cfg.batch_size, high)
    batch = [maddpg.PlayerBatch(**d) for d in data]
    pc = cfg.plain()
    z = _critic_preactivations(twin[0], batch, sharing)[:, UNIT]
    where = ("critics", 0, 1, UNIT * 128 + COL, "weight")

    def account(offset: float, gap: float | None = None) -> dict[str, Any]:
        """The diagnosis with sample SAMPLE's pre-activation at unit UNIT set to ``offset``."""
        state = _state(twin[0], stress)
        state["nets"]["critics"][0][1][1][UNIT] += offset - z[SAMPLE]
        out = stress._relu_flip(state, twin, batch, pc, sharing, where, gap)
        assert out is not None
        return out

    on, off = account(2e-6), account(-2e-6)
    # the sample put nearest 0 is the one found, on either side of it
    assert (on["sample"], off["sample"]) == (SAMPLE, SAMPLE)
    assert on["min_abs_preactivation"] == pytest.approx(2e-6, rel=0.1)
    assert on["flip_grad_change"] != 0.0
    # flipping it for real moves the gradient by what the diagnosis said, both ways
    moved = off["grad_replayed"] - on["grad_replayed"]
    assert moved == pytest.approx(on["flip_grad_change"], rel=1e-2)
    assert -moved == pytest.approx(off["flip_grad_change"], rel=1e-2)
    # given that move as the gap to explain, the same sample comes closest, nearest 0
    told = account(2e-6, gap=moved)
    assert (told["closest_sample"], told["closest_rank"]) == (SAMPLE, 0)
    assert told["closest_flip_grad_change"] == on["flip_grad_change"]


def test_relu_flip_replays_the_gradient_the_optimiser_stepped_on(stress: Any) -> None:
    cfg, env = stress.preset_config([])
    cfg = dataclasses.replace(cfg, optimizer="adam")  # as the stress run's default
    high = maddpg.action_caps(env)
    twin = stress._twin(cfg, *stress._nets(cfg, high, None), high)
    sharing = maddpg.DataSharing("ede")
    batch = [maddpg.PlayerBatch(**d) for d in stress._synthetic(cfg.batch_size, high)]
    pc = cfg.plain()
    state = _state(twin[0], stress)
    stepped = copy.deepcopy(twin)
    maddpg.maddpg_update(*stepped, batch, pc, sharing)
    for kind, k in (("critics", 0), ("critics", 1), ("actors", 0), ("actors", 1)):
        i = UNIT * (14 if kind == "critics" and k == 0 else 10 if k == 0 else 128) + COL
        where = (kind, 1, k, i, "weight")
        out = stress._relu_flip(state, twin, batch, pc, sharing, where)
        assert out is not None
        net = getattr(stepped[0], kind)[1]
        opt = getattr(stepped[1], kind)[1]
        weight = stress._linears(net)[k].weight
        b1 = opt.param_groups[0]["betas"][0]
        grad = float(opt.state[weight]["m"].reshape(-1)[i]) / (1 - b1)  # m = (1 − β₁)·g at t = 1
        assert out["grad_replayed"] == pytest.approx(grad, rel=1e-4, abs=1e-9), (kind, k)
    # the output layer has no ReLU after it
    assert (
        stress._relu_flip(state, twin, batch, pc, sharing, ("critics", 1, 2, 3, "weight")) is None
    )
