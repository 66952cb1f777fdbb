"""The trust model, tested as an attack: can a party unmask a Beaver opening?

Semi-honest parties look at everything they hold. Each party process below is
instrumented to record its whole view of a small secure layer (``X @ W`` and ``X * X``
through :func:`smpc_gym.secure.mpc_nn.beaver_many`, the primitive every secure network
here uses): every ring tensor it held in the clear (its own inputs to a sharing, which
under a trusted first party include the triples), its shares of every Beaver triple, and
every opened masked operand ``ε = x − a`` / ``δ = y − b``. It then tries every held tensor
of the right shape as the mask: ``ε + candidate == encode(x)`` recovers the operand.

Player 1 owns ``X`` (think: its observations), player 0 owns ``W`` (its weights). Under
the default dealer (``TTP``) neither party recovers the other's value; the same code
under ``tfp_player0_sees_all`` lets player 0 read player 1's ``X`` — so the test can fail.

The same attack on a network's forward *and backward* pass with a ``BackwardPlan``, whose
backward reuses the forward's masks of ``X`` and ``W`` and opens only the gradients
(masked by the layer bundles' ``E`` and the ReLU correlations' second mask): neither
party recovers the other's inputs, weights or output gradient; with the bundles' ``E``
sabotaged to a mask everyone knows (zero), player 0 reads player 1's gradient.
"""

from __future__ import annotations

import pytest
import torch

from smpc_gym.secure.runtime import (
    DEFAULT_PROVIDER,
    TFP_PROVIDER,
    PartyConfig,
    launch_local,
    resolve_provider,
)

SCALE = 2**16
B, IN, OUT = 4, 3, 2


def _secrets() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    x = torch.rand(B, IN, generator=g) * 4 - 2  # player 1's private features
    w = torch.rand(IN, OUT, generator=g) * 2 - 1  # player 0's private weights
    return x, w


def _instrumented_layer(ctx) -> dict:
    """Run beaver_many on private X (player 1) and W (player 0), recording this party's view."""
    from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor

    from smpc_gym.secure import mpc_nn

    rank = ctx.rank
    crypten = ctx.crypten
    held: list[torch.Tensor] = []  # ring tensors this process held in the clear
    opened: list[torch.Tensor] = []

    orig_init = ArithmeticSharedTensor.__init__

    def init(self, tensor=None, *a, **kw):
        src = kw.get("src", a[3] if len(a) > 3 else 0)
        orig_init(self, tensor, *a, **kw)
        if src == rank and torch.is_tensor(tensor) and tensor.dtype == torch.int64:
            held.append(tensor.detach().clone())  # e.g. a trusted first party's triple

    orig_open = mpc_nn.open_many

    def open_many(shares):
        out = orig_open(shares)
        opened.extend(t.detach().clone() for t in out)
        return out

    orig_triple = mpc_nn._matmul_triple
    provider = crypten.mpc.get_default_provider()
    orig_additive = provider.generate_additive_triple

    def matmul_triple(*a, **kw):
        out = orig_triple(*a, **kw)  # this party's raw shares
        held.extend(t.detach().clone() for t in out)
        return out

    def additive(*a, **kw):
        out = orig_additive(*a, **kw)
        held.extend(t.share.detach().clone() for t in out)
        return out

    ArithmeticSharedTensor.__init__ = init
    mpc_nn.open_many = open_many
    mpc_nn._matmul_triple = matmul_triple
    provider.generate_additive_triple = additive
    try:
        x, w = _secrets()
        X = crypten.cryptensor(x if rank == 1 else torch.zeros_like(x), src=1)
        W = crypten.cryptensor(w if rank == 0 else torch.zeros_like(w), src=0)
        xw, xx = mpc_nn.beaver_many([("matmul", X, W), ("mul", X, X)])
    finally:
        ArithmeticSharedTensor.__init__ = orig_init
        mpc_nn.open_many = orig_open
        mpc_nn._matmul_triple = orig_triple
        provider.generate_additive_triple = orig_additive
    return {
        "held": held,
        "opened": opened,
        "xw": xw.get_plain_text(),
        "xx": xx.get_plain_text(),
    }


HIDDEN = 4  # _planned_secrets: W and two columns made from it


def _planned_secrets() -> tuple[torch.Tensor, ...]:
    """``(X, W1 [IN, HIDDEN], W2 [HIDDEN, OUT], G [1, B, OUT])``: player 1's features and
    output gradient, player 0's two layers (the first made from ``_secrets``' ``W``)."""
    x, w = _secrets()
    g = torch.Generator().manual_seed(12)
    w2 = torch.rand(HIDDEN, OUT, generator=g) - 0.5
    grad = torch.rand(1, B, OUT, generator=g) - 0.5
    w1 = torch.cat([w, w[:, :1] * 0.5, w[:, 1:2] - 0.25], dim=1)
    return x, w1, w2, grad


def _planned_backward(ctx, sabotage: bool) -> dict:
    """Player 1's ``X`` and output gradient ``G`` through player 0's two-layer network,
    forward with a ``BackwardPlan`` and backward; records this party's view: opened
    values, its shares of every triple, layer bundle and ReLU correlation."""
    from smpc_gym.secure import dealer, mpc_nn

    rank, crypten = ctx.rank, ctx.crypten
    held: list[torch.Tensor] = []
    opened: list[torch.Tensor] = []
    orig_open, orig_triple = mpc_nn.open_many, mpc_nn._matmul_triple
    orig_layer, orig_bits = dealer.Pools.layer_triple, dealer.Pools.bit_mul_back

    def open_many(shares):
        out = orig_open(shares)
        opened.extend(t.detach().clone() for t in out)
        return out

    def matmul_triple(*a, **kw):
        out = orig_triple(*a, **kw)  # this party's raw shares
        held.extend(t.detach().clone() for t in out)
        return out

    def layer_triple(self, *a):
        out = orig_layer(self, *a)
        if sabotage:  # E = 0 in both parties: dz is then "masked" by a known value
            out = (out[0], out[1], torch.zeros_like(out[2]), *out[3:])
        held.extend(t.clone() for t in out if t is not None)
        return out

    def bit_mul_back(self, n):
        out = orig_bits(self, n)
        held.extend(t.clone() for t in out)
        return out

    mpc_nn.open_many, mpc_nn._matmul_triple = open_many, matmul_triple
    dealer.Pools.layer_triple, dealer.Pools.bit_mul_back = layer_triple, bit_mul_back
    try:
        x, w1, w2, grad = _planned_secrets()

        def mine(t: torch.Tensor, owner: int) -> object:
            return crypten.cryptensor(t if rank == owner else torch.zeros_like(t), src=owner)

        mlp = mpc_nn.SharedMLP(
            [mine(w1[None], 0), mine(w2[None], 0)],
            [mine(torch.zeros(1, 1, HIDDEN), 0), mine(torch.zeros(1, 1, OUT), 0)],
        )
        plan = mpc_nn.BackwardPlan(1, weight_grads=True, input_grad=True)
        (y,), (cache,) = mpc_nn.forward_stacked([mlp], [mine(x[None], 1)], plan)
        grads, gin = mpc_nn.backward_stacked(
            [mlp], [cache], [mine(grad, 1)], input_cols=slice(0, IN)
        )
    finally:
        mpc_nn.open_many, mpc_nn._matmul_triple = orig_open, orig_triple
        dealer.Pools.layer_triple, dealer.Pools.bit_mul_back = orig_layer, orig_bits
    return {
        "held": held,
        "opened": opened,
        "y": y.get_plain_text(),
        "gin": gin.get_plain_text(),
        "dw2": grads[0][2].get_plain_text(),
    }


def _recovers(view: dict, target: torch.Tensor) -> bool:
    """Does ``opened + candidate`` equal the encoded target for any pair in the view, at
    either fixed-point scale the networks use (weights and gradients at 2^-16, inputs and
    hidden activations at ``ACT_FRAC_BITS``)?"""
    from smpc_gym.secure.mpc_nn import ACT_FRAC_BITS

    for scale in (SCALE, 2**ACT_FRAC_BITS):
        enc = torch.round(target * scale).to(torch.int64)
        for e in view["opened"]:
            if e.shape != enc.shape:
                continue
            for cand in [*view["held"], torch.zeros_like(e)]:
                if cand.shape == e.shape and ((e + cand - enc).abs() <= 1).all():
                    return True
    return False


def _run(provider: str) -> list[dict]:
    cfg = PartyConfig(world_size=2, provider=provider, timeout_s=60)
    return launch_local(_instrumented_layer, 2, config=cfg, deadline_s=240)


@pytest.fixture(scope="module")
def views() -> dict[str, list[dict]]:
    return {p: _run(p) for p in (DEFAULT_PROVIDER, TFP_PROVIDER)}


def test_products_are_correct_under_both_providers(views) -> None:
    x, w = _secrets()
    for provider, out in views.items():
        for party in out:
            assert torch.allclose(party["xw"], x @ w, atol=1e-3), provider
            assert torch.allclose(party["xx"], x * x, atol=1e-3), provider
            # one matmul and one mul: four masked operands opened
            assert len(party["opened"]) == 4, provider


def test_no_party_unmasks_an_opening_under_the_default_dealer(views) -> None:
    x, w = _secrets()
    p0, p1 = views[DEFAULT_PROVIDER]
    assert p0["held"] and p1["held"]  # the instrumentation saw the triples
    assert not _recovers(p0, x), "player 0 reconstructed player 1's X under the dealer"
    assert not _recovers(p1, w), "player 1 reconstructed player 0's W under the dealer"


def test_player0_unmasks_player1_data_under_the_trusted_first_party(views) -> None:
    x, w = _secrets()
    p0, p1 = views[TFP_PROVIDER]
    assert _recovers(p0, x), "the attack should read X under tfp_player0_sees_all"
    assert not _recovers(p1, w)


@pytest.fixture(scope="module")
def planned() -> dict[str, list[dict]]:
    cfg = PartyConfig(world_size=2, timeout_s=60)
    return {
        name: launch_local(_planned_backward, 2, (sabotage,), config=cfg, deadline_s=240)
        for name, sabotage in (("dealer", False), ("sabotaged", True))
    }


def test_reused_masks_unmask_nothing_in_the_backward_pass(planned) -> None:
    x, w1, w2, grad = _planned_secrets()
    w1.requires_grad_(True)
    w2.requires_grad_(True)
    xr = x[None].clone().requires_grad_(True)
    y = torch.relu(xr @ w1) @ w2
    y.backward(grad)
    p0, p1 = planned["dealer"]
    for party in (p0, p1):  # the planned pass is correct ...
        assert torch.allclose(party["y"], y.detach(), atol=1e-3)
        assert torch.allclose(party["gin"], xr.grad, atol=1e-3)
        assert torch.allclose(party["dw2"][0], w2.grad, atol=1e-3)
    assert len(p0["held"]) > 6  # the instrumentation saw the bundles and correlations
    # ... and opens: the forward's X − A, W − B (two layers), the ReLU's z − A and bit,
    # then per layer only the masked gradient, and the ReLU's gradient
    assert not _recovers(p0, x[None]), "player 0 reconstructed player 1's X"
    assert not _recovers(p0, grad), "player 0 reconstructed player 1's output gradient"
    assert not _recovers(p1, w1.detach()[None]), "player 1 reconstructed player 0's weights"
    assert not _recovers(p1, w2.detach()[None])
    # the attack works where a mask is known: E = 0 opens the output gradient itself
    s0, _ = planned["sabotaged"]
    assert _recovers(s0, grad), "the attack should read G when the bundles' E is zero"


def test_provider_names() -> None:
    assert PartyConfig(2).provider == DEFAULT_PROVIDER == "TTP"
    assert resolve_provider("ttp") == "TTP"
    assert resolve_provider("TFP_player0_sees_all") == TFP_PROVIDER
    for old in ("TFP", "tfp"):
        with pytest.raises(ValueError, match="tfp_player0_sees_all") as exc:
            PartyConfig(2, provider=old)
        assert "player 0" in str(exc.value) and "TTP" in str(exc.value)
    with pytest.raises(ValueError, match="provider must be one of"):
        resolve_provider("dealer?")
