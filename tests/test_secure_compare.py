"""The carry-tree sign test (:mod:`smpc_gym.secure.compare`) against plaintext, whole ring.

One two-party launch per provider (the TTP dealer and the TFP opt-out) compares
:func:`mpc_nn.ltz` with ``x < 0`` on raw ring elements spread over all of
``[-2^63, 2^63)``, the extremes, 0 and ±1 included, and on sizes that are not a multiple
of 64; and its bounded form (``bits=k``) on ``[-2^k, 2^k)``, edges included, and just
outside it, where it must be wrong (so the stated range is the real one). It also counts bytes and rounds of ours and of CrypTen's ``_ltz`` on the same
shares (the counters are exact, not timings), so the stated saving is checked.
"""

from __future__ import annotations

import pytest
import torch

from smpc_gym.secure import mpc_nn
from smpc_gym.secure.carry import carry_size
from smpc_gym.secure.runtime import PartyConfig, launch_local


def _values() -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    ring = torch.randint(-(2**63), 2**63 - 1, (3000,), generator=g)
    small = torch.randint(-(2**20), 2**20, (1000,), generator=g)
    edge = torch.tensor(
        [0, 1, -1, 2**63 - 1, -(2**63), 2**62, -(2**62), 2**62 - 1, -(2**62) - 1, 65535, -65536]
    )
    return torch.cat([edge, ring, small])


def _party(ctx):
    from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor

    from smpc_gym.secure import mpc_nn

    out: dict = {}
    x = _values()
    enc = ctx.crypten.encoder.FixedPointEncoder(precision_bits=0)
    for n in (x.numel(), 1, 63, 65):
        s = ArithmeticSharedTensor(x[:n], precision=0, src=0)
        got = mpc_nn.ltz(mpc_nn.wrap_shares(s.share, enc)).get_plain_text()
        out[f"bad_{n}"] = int((got != (x[:n] < 0).to(got.dtype)).sum())
    for k in (48, 57, 20, 1, 2, 3):  # bounded: exact on [-2^k, 2^k), edges included
        g = torch.Generator().manual_seed(k)
        inside = torch.cat(
            [
                torch.tensor([0, 1, -1, 2**k - 1, -(2**k), -(2**k) + 1, 2 ** (k - 1)]),
                torch.randint(-(2**k), 2**k, (2000,), generator=g),
            ]
        )
        s = ArithmeticSharedTensor(inside, precision=0, src=k % 2)
        got = mpc_nn.ltz(mpc_nn.wrap_shares(s.share, enc), k).get_plain_text()
        out[f"bad_bits_{k}"] = int((got != (inside < 0).to(got.dtype)).sum())
        past = torch.tensor([2**k, 2**k + 1, -(2**k) - 1])  # outside: read with flipped sign
        s = ArithmeticSharedTensor(past, precision=0, src=0)
        got = mpc_nn.ltz(mpc_nn.wrap_shares(s.share, enc), k).get_plain_text()
        out[f"past_bits_{k}"] = got.tolist()
    s = ArithmeticSharedTensor(x, precision=0, src=1)
    z = mpc_nn.wrap_shares(s.share, enc)
    ctx.reset_comm_stats()
    mpc_nn.ltz(z)
    out["ours"] = ctx.comm_stats()
    ctx.reset_comm_stats()
    mpc_nn.ltz(z, mpc_nn.ACT_BITS)
    out["ours_act"] = ctx.comm_stats()
    ctx.reset_comm_stats()
    z._ltz()
    out["crypten"] = ctx.comm_stats()
    return out


@pytest.mark.parametrize("provider", ["TTP", "tfp_player0_sees_all"])
def test_sign_test_is_exact_over_the_whole_ring(provider: str) -> None:
    cfg = PartyConfig(world_size=2, provider=provider, timeout_s=120)
    res = launch_local(_party, 2, config=cfg)
    r0 = res[0]
    n = int(_values().numel())
    for k in (n, 1, 63, 65):
        assert r0[f"bad_{k}"] == 0, (k, r0)
    assert r0["ours"]["rounds"] <= r0["crypten"]["rounds"], (r0["ours"], r0["crypten"])
    # bytes party 0 sends+receives (the dealer's words included): under a seventh of
    # CrypTen's (7.9x fewer for these 4,011 elements)
    assert r0["ours"]["bytes"] * 7 < r0["crypten"]["bytes"], (r0["ours"], r0["crypten"])
    # party to party: every row of the carry tree once each way (64 elements per word),
    # then the conversion's one bit per element each way; under the dealer party 0 also
    # counts the dealer's words of what the call used (counted as used, not as refills
    # arrive): the tree's t (one word per output and 64 elements) and one word per
    # element for the conversion
    words = -(-n // 64)
    for key, bits in (("ours", 63), ("ours_act", mpc_nn.ACT_BITS)):
        rows, outs = carry_size(bits)
        exchanged = 16 * words * (rows + 1)
        dealt = 8 * (words * outs + n) if provider == "TTP" else 0
        assert r0[key]["bytes"] == exchanged + dealt, (key, r0[key], exchanged, dealt)
    for k in (48, 57, 20, 1, 2, 3):
        assert r0[f"bad_bits_{k}"] == 0, (k, r0)
        assert r0[f"past_bits_{k}"] == [1, 1, 0], (k, r0)  # the range is the real one
    # the activations' 48-bit test: 136 rows per 64 elements instead of 182
    assert r0["ours_act"]["rounds"] == r0["ours"]["rounds"], (r0["ours_act"], r0["ours"])
    assert r0["ours_act"]["bytes"] < 0.85 * r0["ours"]["bytes"], (r0["ours_act"], r0["ours"])


def test_sign_test_refuses_a_bad_bit_count() -> None:
    from smpc_gym.secure.compare import sign_share

    for bad in (0, 64, 2.5):
        with pytest.raises(ValueError, match="bits: bad value"):
            sign_share(torch.zeros(3, dtype=torch.int64), 0, bad)
