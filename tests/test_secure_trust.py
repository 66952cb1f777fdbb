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
        out = orig_triple(*a, **kw)
        held.extend(t.share.detach().clone() for t in out)
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


def _recovers(view: dict, target: torch.Tensor) -> bool:
    """Does ``opened + candidate`` equal the encoded target for any pair in the view?"""
    enc = torch.round(target * SCALE).to(torch.int64)
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
