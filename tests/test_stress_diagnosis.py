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
from typing import Any

import pytest
import torch
from script_loader import ROOT, load_script

from smpc_gym.agents import maddpg

UNIT, COL, SAMPLE = 5, 7, 11


@pytest.fixture(scope="module")
def stress() -> Any:
    return load_script(ROOT / "benchmarks/secure_maddpg_stress.py", siblings=True)


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


def _critic_preactivations(nets: maddpg.Nets, batch, sharing, layer: int) -> torch.Tensor:
    """``z`` of critic 0's layer ``layer`` on the critic-loss inputs."""
    seen: dict[str, torch.Tensor] = {}
    lin = [m for m in nets.critics[0] if isinstance(m, torch.nn.Linear)][layer]
    hook = lin.register_forward_hook(lambda m, i, z: seen.setdefault("z", z.detach()))
    obs = [b.obs for b in batch]
    acts = [b.action for b in batch]
    with torch.no_grad():
        nets.critics[0](sharing.critic_input(0, obs, acts, nets.inv_high))
    hook.remove()
    return seen["z"]


def _setup(stress: Any, optimizer: str = "sgd") -> tuple[Any, ...]:
    cfg, env = stress.preset_config([])
    cfg = dataclasses.replace(cfg, optimizer=optimizer)
    high = maddpg.action_caps(env)
    twin = stress._twin(cfg, *stress._nets(cfg, high, None), high)
    sharing = maddpg.DataSharing("ede")
    batch = [maddpg.PlayerBatch(**d) for d in stress._synthetic(cfg.batch_size, high)]
    return twin, batch, cfg.plain(), sharing


@pytest.mark.parametrize("layer", [1, 0])
def test_relu_flip_accounts_for_the_gradient_a_flipped_decision_moves(
    stress: Any, layer: int
) -> None:
    """One decision of critic 0's second ReLU is put 5e-7 from 0, on one side and then the
    other; told the gradient's move, the diagnosis must find that decision and say what
    flipping it does to a weight of its own row (layer 1) and of the layer below (through
    the backward pass)."""
    twin, batch, pc, sharing = _setup(stress)
    z = _critic_preactivations(twin[0], batch, sharing, 1)[:, UNIT]
    if layer == 1:
        where = ("critics", 0, 1, UNIT * 128 + COL, "weight")
    else:  # a unit the sample reaches in the layer below, so the flip moves its gradient
        below = _critic_preactivations(twin[0], batch, sharing, 0)[SAMPLE]
        unit = int(torch.nonzero(below > 0)[0])
        where = ("critics", 0, 0, unit * 14 + 3, "weight")

    def account(offset: float, gap: float | None = None) -> dict[str, Any]:
        """The diagnosis with sample SAMPLE's pre-activation at unit UNIT set to ``offset``."""
        state = _state(twin[0], stress)
        state["nets"]["critics"][0][1][1][UNIT] += offset - z[SAMPLE]
        return stress._relu_flip(state, twin, batch, pc, sharing, where, gap)

    on, off = account(5e-7), account(-5e-7)
    moved = off["grad_replayed"] - on["grad_replayed"]  # the decision flipped for real
    assert moved != 0.0
    for offset, gap in ((5e-7, moved), (-5e-7, -moved)):
        told = account(offset, gap)
        # among the decisions nearest 0 (the planted one is among them: others of the
        # ~200,000 may lie as near), the planted one is found to account for the gap
        assert told["nearest"]["abs_preactivation"] <= 5.5e-7
        closest = told["closest"]
        assert (closest["relu"], closest["sample"], closest["unit"]) == (
            "critics[0] relu 1 (pass 0)",
            SAMPLE,
            UNIT,
        )
        assert closest["abs_preactivation"] == pytest.approx(5e-7, rel=0.1)
        assert closest["grad_change"] == pytest.approx(gap, rel=1e-2)


def test_relu_flip_replays_the_gradient_the_optimiser_stepped_on(stress: Any) -> None:
    twin, batch, pc, sharing = _setup(stress, "adam")  # the stress run's default
    state = _state(twin[0], stress)
    stepped = copy.deepcopy(twin)
    maddpg.maddpg_update(*stepped, batch, pc, sharing)
    layers = {("critics", 0): 14, ("critics", 1): 128, ("critics", 2): 128}
    layers.update({("actors", 0): 10, ("actors", 1): 128, ("actors", 2): 128})
    for (kind, k), fan_in in layers.items():
        i = (UNIT if k < 2 else 0) * fan_in + COL
        out = stress._relu_flip(state, twin, batch, pc, sharing, (kind, 1, k, i, "weight"), None, 1)
        weight = stress._linears(getattr(stepped[0], kind)[1])[k].weight
        opt = getattr(stepped[1], kind)[1]
        b1 = opt.param_groups[0]["betas"][0]
        grad = float(opt.state[weight]["m"].reshape(-1)[i]) / (1 - b1)  # m = (1 − β₁)·g at t = 1
        assert out["grad_replayed"] == pytest.approx(grad, rel=1e-4, abs=1e-9), (kind, k)
        assert out["decisions"] == 128 * 128 * 2 * 2 * 2 + 128 * 128 * 2 * 2  # 3 passes
