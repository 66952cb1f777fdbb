"""The secure building blocks against their plaintext definitions (one 2-party launch).

* ``mpc_nn.ltz`` (the carry-tree sign test) agrees with CrypTen's ``_ltz`` and with
  ``z < 0`` on fixed-point values;
* a stacked ``SharedMLP`` forward/backward matches torch autograd, also when the forward
  pass is told the backward's plan and the backward reuses its masks (exactly the
  openings of ``h``, ``W``, the second ``dz`` and the ReLU masks fewer);
* ``SecureAdam`` / ``SecureSGD`` track ``torch.optim.Adam`` / ``SGD`` over 15 steps on
  gradients spanning three orders of magnitude.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from smpc_gym.secure.runtime import PartyConfig, launch_local


def _autograd_error(nets, x, gout, y, grads, gin, cols) -> float:
    """The largest error of a secure forward/backward of two sigmoid MLPs (outputs ``y``,
    parameter gradients ``grads[0]``, input gradient ``gin`` of columns ``cols[p]``)
    against torch autograd on the plaintext networks."""
    errs = []
    for p in range(2):
        xp = x[p].clone().requires_grad_(True)
        nets[p].zero_grad()
        o = torch.sigmoid(nets[p](xp))
        o.backward(gout[p])
        errs.append(float((y.get_plain_text()[p] - o.detach()).abs().max()))
        for k, prm in enumerate(nets[p].parameters()):
            got = grads[0][k].get_plain_text()[p]
            got = got.t() if k % 2 == 0 else got.reshape(-1)
            errs.append(float((got - prm.grad).abs().max()))
        errs.append(float((gin.get_plain_text()[p] - xp.grad[:, cols[p]]).abs().max()))
    return max(errs)


def _party(ctx):
    from smpc_gym.secure import mpc_nn, optim

    c = ctx.crypten
    g = torch.Generator().manual_seed(0)
    out = {}
    # sign test
    z = torch.randn(3, 41, generator=g) * 50
    z[0, :4] = torch.tensor([0.0, 1.0, -1.0, -30000.0])
    zs = c.cryptensor(z, src=0)
    packed = mpc_nn.ltz(zs).get_plain_text()
    encoded = torch.round(z * 2**16)
    out["ltz_vs_truth"] = int((packed != (encoded < 0).float()).sum())
    out["ltz_vs_crypten"] = int((packed != zs._ltz().get_plain_text()).sum())
    # stacked MLP vs autograd
    nets = [
        nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 2))
        for _ in range(2)
    ]
    for p in nets[0].parameters():
        torch.nn.init.normal_(p, std=0.4, generator=g)
    for p in nets[1].parameters():
        torch.nn.init.normal_(p, std=0.4, generator=g)
    mlp = mpc_nn.SharedMLP.from_plain(
        nets, [0, 1], [(6, 12), (12, 12), (12, 2)], "sigmoid", ctx.rank
    )
    x = torch.rand(2, 9, 6, generator=g)
    gout = torch.randn(2, 9, 2, generator=g)
    y, cache = mlp.forward(c.cryptensor(x, src=0))
    grads, gin = mpc_nn.backward_stacked(
        [mlp], [cache], [c.cryptensor(gout, src=1)], input_cols=slice(0, 6)
    )
    out["mlp_max_err"] = _autograd_error(nets, x, gout, y, grads, gin, [slice(0, 6)] * 2)
    # the same with a BackwardPlan, the networks stacked with two others (say, targets)
    # that are not back-propagated: outputs and gradients as before, fewer bytes
    others = [
        nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 2))
        for _ in range(2)
    ]
    for p in (q for n in others for q in n.parameters()):
        torch.nn.init.normal_(p, std=0.4, generator=g)
    shape = [(6, 12), (12, 12), (12, 2)]
    targets = mpc_nn.SharedMLP.from_plain(others, [0, 1], shape, "sigmoid", ctx.rank)
    x2 = torch.rand(2, 9, 6, generator=g)
    cols = [slice(0, 3), slice(3, 6)]  # one slice per network, as the actor update asks
    errs, spent = [], {}
    for name, plan in (("fresh", None), ("reused", mpc_nn.BackwardPlan(1, True, True))):
        (y, y2), (cache, _) = mpc_nn.forward_stacked(
            [mlp, targets], [c.cryptensor(x, src=0), c.cryptensor(x2, src=0)], plan
        )
        gs = c.cryptensor(gout, src=1)
        # the gradients are the forward pass's, whatever happens to the weights after it
        moved = mlp.clone()
        moved.weights[1] = moved.weights[1] + 0.5
        ctx.reset_comm_stats()
        grads, gin = mpc_nn.backward_stacked([moved], [cache], [gs], input_cols=cols)
        spent[name] = ctx.comm_stats()
        errs.append(_autograd_error(nets, x, gout, y, grads, gin, cols))
        for p in range(2):  # the stacked networks that were not back-propagated
            o2 = torch.sigmoid(others[p](x2[p])).detach()
            errs.append(float((y2.get_plain_text()[p] - o2).abs().max()))
    out["plan_max_err"] = max(errs)
    out["plan_bytes"] = (spent["fresh"]["bytes"], spent["reused"]["bytes"])
    out["plan_rounds"] = (spent["fresh"]["rounds"], spent["reused"]["rounds"])
    # the reused masks belong to the forward's weights and to what its plan asked for
    (_, _), (cache, _) = mpc_nn.forward_stacked(
        [mlp, targets],
        [c.cryptensor(x, src=0), c.cryptensor(x2, src=0)],
        mpc_nn.BackwardPlan(1, weight_grads=False, input_grad=True),
    )
    try:
        mpc_nn.backward_stacked([mlp], [cache], [c.cryptensor(gout, src=1)], input_cols=cols)
    except ValueError as err:
        out["plan_mismatch"] = str(err)
    try:
        mpc_nn.forward_stacked([mlp], [c.cryptensor(x, src=0)], mpc_nn.BackwardPlan(2))
    except ValueError as err:
        out["plan_range"] = str(err)
    # hidden activations at ACT_FRAC_BITS: inputs shared at 2^-24, weights at 2^-16
    gf = torch.Generator().manual_seed(1)  # its own draws: the optimisers' data stay as they were
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.5, generator=gf)
    fine = mpc_nn.SharedMLP.from_plain([net], [0], [(4, 16), (16, 3)], "identity", ctx.rank)
    xf = torch.rand(1, 32, 4, generator=gf) * 2 - 1
    xs = mpc_nn.share_rounded(xf, 1, mpc_nn.ACT_FRAC_BITS)
    (yf,), (cf,) = mpc_nn.forward_stacked([fine], [xs])
    act = 2.0**mpc_nn.ACT_FRAC_BITS
    x64 = torch.round(xf.double() * act) / act  # what was shared
    w1, b1 = (
        torch.round(t.detach().double() * 2**16) / 2**16 for t in (net[0].weight, net[0].bias)
    )
    h1 = torch.relu(x64 @ w1.t() + b1)
    out["hidden_bits"] = [mpc_nn.frac_bits(t) for t in (xs, cf.inputs[1], yf)]
    # decoded from the raw ring values in float64 (get_plain_text's float32 holds a value
    # near 2 only to 2^-22)
    got = cf.inputs[1]._tensor.reveal().double() / act
    out["hidden_err"] = float((got - h1).abs().max())
    try:
        mpc_nn.lift(yf, 8)
    except ValueError as err:
        out["lift_down"] = str(err)
    # optimisers
    for name in ("adam", "sgd"):
        theta = torch.randn(500, generator=g)
        scales = torch.logspace(-3.5, -0.5, 500)
        ref = theta.clone().requires_grad_(True)
        if name == "adam":
            opt = torch.optim.Adam([ref], lr=1e-3)
            sec = optim.SecureAdam(1e-3, grad_scale=64)
        else:
            opt = torch.optim.SGD([ref], lr=1e-2, momentum=0.9)
            sec = optim.SecureSGD(1e-2, 0.9, grad_scale=64)
        ps = c.cryptensor(theta, src=0)
        for _ in range(15):
            grad = torch.randn(500, generator=g) * scales
            ref.grad = grad.clone()
            opt.step()
            (ps,) = sec.step([ps], [c.cryptensor(grad * 64, src=1)])
        out[f"{name}_mae"] = float((ps.get_plain_text() - ref.detach()).abs().mean())
    return out


@pytest.fixture(scope="module")
def results():
    return launch_local(_party, 2, config=PartyConfig(world_size=2, timeout_s=120))


@pytest.fixture(scope="module")
def result(results):
    return results[0]


def test_packed_sign_test_matches_crypten_and_truth(result) -> None:
    assert result["ltz_vs_crypten"] == 0
    assert result["ltz_vs_truth"] == 0


def test_stacked_mlp_forward_backward_match_autograd(result) -> None:
    assert result["mlp_max_err"] < 5e-3


def test_hidden_activations_carry_act_frac_bits(result) -> None:
    """Inputs shared at 2^-24 and hidden activations held there, the output back at the
    weights' 2^-16: a hidden ReLU output is within 2 units of 2^-24 of the float64 layer
    on what was shared (held at 2^-16, it is off by up to 2^-16 = 256 such units)."""
    assert result["hidden_bits"] == [24, 24, 16]
    assert result["hidden_err"] <= 2.0**-23
    assert "lift to 8 fractional bits: the share has 16" in result["lift_down"]


def test_backward_plan_reuses_the_forward_masks_exactly(results) -> None:
    result = results[1]  # party 1's bytes: party to party only (party 0's add the dealer's)
    assert result["plan_max_err"] < 5e-3
    # party 1 sends and receives 8 bytes per opened element. The plan saves, per network
    # (batch 9), the openings of: layer 3 (12 -> 2): h 9·12, W 12·2 and the second dz 9·2;
    # the ReLU after layer 2: its mask 9·12; layer 2 (12 -> 12): h 9·12, W 12·12, dz
    # 9·12; the ReLU after layer 1: 9·12; layer 1 (6 -> 12, weights and input columns):
    # h 9·6, W's 3 input columns 3·12, dz 9·12. The truncations and their rounds stay.
    per_net = (108 + 24 + 18) + 108 + (108 + 144 + 108) + 108 + (54 + 36 + 108)
    fresh, reused = result["plan_bytes"]
    assert fresh - reused == 2 * per_net * 16, result["plan_bytes"]
    assert result["plan_rounds"][0] == result["plan_rounds"][1], result["plan_rounds"]


def test_backward_plan_refuses_unplanned_gradients_and_bad_counts(result) -> None:
    assert "asks for a gradient its forward's BackwardPlan left out" in result["plan_mismatch"]
    assert "weight_grads=True" in result["plan_mismatch"]
    assert "BackwardPlan.mlps must be in [1, 1]" in result["plan_range"]
    assert "got 2" in result["plan_range"]


def test_secure_optimisers_track_torch(result) -> None:
    # 15 steps of lr 1e-3 move a parameter by up to 1.5e-2; the secure runs stay within
    # a few percent of a step on average
    assert result["adam_mae"] < 1e-4
    assert result["sgd_mae"] < 1e-4


@pytest.mark.parametrize(
    ("xshape", "yshape"),
    [
        ((2, 128, 128), (2, 128, 128)),  # hidden layer forward, paper networks
        ((2, 128, 128), (2, 128, 2)),  # thin output layer (int64 path)
        ((4, 128, 14), (4, 14, 128)),  # critic input layer
        ((2, 128, 256), (2, 256, 64)),  # K = MAX_K, the largest exact float64 contraction
        ((3, 20, 700), (700, 33)),  # K > MAX_K: split into chunks, broadcast batch
        ((16, 16), (3, 16, 16)),
    ],
)
def test_ring_matmul_kernels_agree_bit_for_bit(xshape, yshape) -> None:
    """The float64-limb matmul, torch's int64 matmul and ``ring_matmul`` (whichever of the
    two this process picked) give the same words on full-range inputs."""
    from smpc_gym.secure.ring import MAX_K, limb_matmul, ring_matmul

    assert MAX_K == 256
    g = torch.Generator().manual_seed(sum(xshape) + sum(yshape))
    lo, hi = -(2**63), 2**63 - 1
    x = torch.randint(lo, hi, xshape, generator=g, dtype=torch.int64)
    y = torch.randint(lo, hi, yshape, generator=g, dtype=torch.int64)
    want = torch.matmul(x, y)
    assert torch.equal(limb_matmul(x, y), want)
    assert torch.equal(ring_matmul(x, y), want)
    # extreme words: every limb at its maximum (-1) and the sign bit alone (-2^63)
    for v in (-1, -(2**63), 2**63 - 1):
        xe, ye = torch.full(xshape, v, dtype=torch.int64), torch.full(yshape, -1, dtype=torch.int64)
        assert torch.equal(limb_matmul(xe, ye), torch.matmul(xe, ye))


@pytest.mark.parametrize(("m", "k", "n"), [(3, 5, 4), (17, 130, 16), (20, 300, 2)])
def test_both_ring_kernels_equal_python_integers_mod_2_64(m, k, n) -> None:
    """Each kernel against products of Python integers reduced mod 2^64 (the reference the
    bit-for-bit comparison above leans on): full-range words, sums that wrap many times."""
    from smpc_gym.secure.ring import limb_matmul

    g = torch.Generator().manual_seed(m * k * n)
    x = torch.empty(m, k, dtype=torch.int64).random_(-(2**63), None, generator=g)
    y = torch.empty(k, n, dtype=torch.int64).random_(-(2**63), None, generator=g)
    xl, yl = x.tolist(), y.tolist()
    want = [
        [
            (s + 2**63) % 2**64 - 2**63
            for s in [sum(xl[i][t] * yl[t][j] for t in range(k)) for j in range(n)]
        ]
        for i in range(m)
    ]
    assert torch.matmul(x, y).tolist() == want
    assert limb_matmul(x, y).tolist() == want


def test_ring_backend_is_one_of_the_two_exact_kernels() -> None:
    from smpc_gym.secure.ring import ring_backend

    assert ring_backend() in ("int64", "limbs")
    assert ring_backend() == ring_backend()  # chosen once per process


def test_ring_matmul_rejects_non_int64_and_vectors() -> None:
    from smpc_gym.secure.ring import limb_matmul, ring_matmul

    for fn in (ring_matmul, limb_matmul):
        with pytest.raises(ValueError, match="int64"):
            fn(torch.ones(2, 2), torch.ones(2, 2))
        with pytest.raises(ValueError, match=">= 2 dims"):
            fn(torch.ones(2, dtype=torch.int64), torch.ones(2, 2, dtype=torch.int64))


def test_fast_dispatch_swaps_only_the_debug_check_and_copies_and_restores_them() -> None:
    """``fast_dispatch`` replaces CrypTen's validation-mode lookup (not at all when
    validation mode is on) and ``MPCTensor``'s copy constructors only while it runs."""
    import sys

    from smpc_gym.secure._crypten import crypten_module
    from smpc_gym.secure.mpc_nn import fast_dispatch

    crypten = crypten_module()
    from crypten.mpc import MPCTensor

    debug = sys.modules["crypten.debug"]
    saved = debug.cfg
    methods = MPCTensor.shallow_copy, MPCTensor.clone
    with fast_dispatch():
        assert debug.cfg is not saved
        assert debug.cfg.debug.validation_mode is False
        assert MPCTensor.shallow_copy is not methods[0] and MPCTensor.clone is not methods[1]
    assert debug.cfg is saved
    assert (MPCTensor.shallow_copy, MPCTensor.clone) == methods
    with pytest.raises(RuntimeError, match="boom"), fast_dispatch():
        raise RuntimeError("boom")
    assert debug.cfg is saved
    assert (MPCTensor.shallow_copy, MPCTensor.clone) == methods
    with crypten.cfg.temp_override({"debug.validation_mode": True}), fast_dispatch():
        assert debug.cfg is saved


def test_stack_players_is_split_players_inverse_and_matches_the_stacked_layout() -> None:
    from smpc_gym.agents import secure_maddpg as sm

    nets = [nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)) for _ in range(2)]
    per = [[p.detach().clone() for p in net.parameters()] for net in nets]
    flat = sm.stack_players(per)

    class Stacked:  # the shapes of a stacked SharedMLP: W (P, in, out), b (P, 1, out)
        def parameters(self):
            return [
                torch.empty(2, 3, 4),
                torch.empty(2, 1, 4),
                torch.empty(2, 4, 2),
                torch.empty(2, 1, 2),
            ]

    back = sm.split_players(flat, Stacked())
    for mine, theirs in zip(per, back, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert torch.equal(a, b)
    # the first block is W_1 as (P, in, out): player 0's W_1ᵀ, then player 1's
    w1 = flat[: 2 * 12].reshape(2, 3, 4)
    assert torch.equal(w1[1], nets[1][0].weight.detach().t())
