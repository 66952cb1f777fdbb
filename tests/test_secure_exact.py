"""Exact truncation and the full-range primitives against plaintext, edges included.

One two-party launch per provider (the TTP dealer is our :class:`DealerServer`; TFP is
the opt-out where party 0 deals) runs every check and returns plain numbers:

* :func:`trunc.trunc_many` on raw values spread over the whole ``(-2^62, 2^62)``,
  including ``±(2^62 − 1)``, 0 and ±1: every result is ``⌊x/2^f⌋`` or that plus one, for
  ``f = 16, 30, 46``; CrypTen's local truncation, on the same shares, is wrong by ~2^48
  for a large fraction of them (so the check can fail); the rounding is unbiased;
* :func:`mpc_nn.ltz` over the whole representable range, :func:`mpc_nn.relu_mask` over
  its stated range ``[-2^32, 2^32)`` (edges included, and wrong just past it, so the
  range is the real one);
* :func:`mpc_nn.sigmoid` from ``-2^31`` to ``2^31`` (it used to return ~±1e9 beyond
  ``|z| ≈ 600``), densely around every breakpoint of its pieces, and its round count;
* Adam's range-reduced initial guess over ``[2^-8, 2^40)``, and its ``1/√x`` (Newton
  with the shared-mask triples, and with separate ones) over ``[2^-8, 2^39)``;
* CrypTen's own multiplication inside :func:`trunc.exact_truncation` is exact where the
  local truncation fails, and nothing falls through to local truncation.
"""

from __future__ import annotations

import pytest
import torch

from smpc_gym.secure.runtime import PartyConfig, launch_local


def _edges() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    big = torch.randint(-(2**62) + 1, 2**62 - 1, (6000,), generator=g)
    small = torch.randint(-(2**20), 2**20, (2000,), generator=g)
    edge = torch.tensor([0, 1, -1, 2**62 - 1, -(2**62) + 1, 2**61, -(2**61), 65535, -65536])
    return torch.cat([edge, big, small])


def _party(ctx, full: bool):
    from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor

    from smpc_gym.secure import mpc_nn, optim, trunc

    c = ctx.crypten
    out: dict = {}
    x = _edges()
    s = ArithmeticSharedTensor(x, precision=0, src=0)
    for f in (16, 30, 46):
        want = torch.div(x, 1 << f, rounding_mode="floor")
        (r,) = trunc.trunc_many([(s.share, 1 << f)])
        d = ArithmeticSharedTensor.from_shares(r, precision=0).get_plain_text() - want
        out[f"exact_{f}"] = (int(d.min()), int(d.max()))
        loc = ArithmeticSharedTensor.from_shares(trunc.local_trunc(s.share, 1 << f), precision=0)
        out[f"local_bad_{f}"] = int(((loc.get_plain_text() - want).abs() > 1).sum())
    # one batch of mixed divisors: each item's pairs at its own width (8 to 64 bits), the
    # bits of all in one exchange; every item exact
    fs = (3, 8, 9, 16, 17, 25, 35, 40, 47, 56, 61)
    done = trunc.trunc_many([(s.share, 1 << f) for f in fs])
    out["mixed_bad"] = []
    for f, r in zip(fs, done, strict=True):
        got = ArithmeticSharedTensor.from_shares(r, precision=0).get_plain_text()
        d = got - torch.div(x, 1 << f, rounding_mode="floor")
        if int(d.min()) < 0 or int(d.max()) > 1:
            out["mixed_bad"].append(f)
    # unbiased: 3.25 units after truncation by 2^16, 4000 times with fresh shares
    v = torch.full((4000,), 13 << 14)
    (r,) = trunc.trunc_many([(ArithmeticSharedTensor(v, precision=0, src=1).share, 1 << 16)])
    out["mean_13_over_4"] = float(
        ArithmeticSharedTensor.from_shares(r, precision=0).get_plain_text().double().mean()
    )
    out["n"] = int(x.numel())
    # the ReLU with bit injection against relu_mask + a Beaver product (what any other
    # provider gets): the same activation and mask, fewer bytes and one round less
    top = 2.0 ** (mpc_nn.ACT_BITS - 16)
    zr = torch.cat(
        [
            torch.tensor(
                [0.0, 2.0**-16, -(2.0**-16), 1e9, -1e9, top - 2.0**-16, -top],
                dtype=torch.float64,
            ),
            torch.randn(3000, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 4,
        ]
    )
    zv = mpc_nn.share_rounded(zr, 0)
    zq = torch.round(zr * 2**16).long()  # raw
    fused = mpc_nn._bit_mul_correlations
    for name, source in (("fused", fused), ("separate", lambda n: None)):
        mpc_nn._bit_mul_correlations = source
        try:
            ctx.reset_comm_stats()
            h, mask = mpc_nn.relu(zv)
            out[f"relu_{name}"] = ctx.comm_stats()  # party 1's: party to party only
        finally:
            mpc_nn._bit_mul_correlations = fused
        out[f"relu_{name}_bad"] = int(
            (h._tensor.reveal() != zq.clamp(min=0)).sum()
            + (mask._tensor.reveal() != (zq >= 0).long()).sum()
        )
    # Adam's 1/√x: range-reduced guess, then Newton with this provider's shared-mask
    # triples and with separate triples (what any other provider gets)
    adam = optim.SecureAdam(1e-3)
    xr = 2.0 ** torch.linspace(-7.9, 38.9, 500, dtype=torch.float64)  # x < 2^39
    xv = mpc_nn.share_rounded(xr, 1)
    y0 = adam._initial_guess(xv)
    want = 2.0**adam.Y_SHIFT / (torch.round(xr * 2**16) / 2**16).sqrt()  # of x on the grid
    bundled = optim._newton_triples
    steps, bound = adam.newton_schedule(adam.init_iters)
    # the schedule's bound, plus the grid: w's rounding (2^-24 of w ≈ 2) and 4 units of y
    tol = (bound + 1e-7) * want + 4 * 2.0**-16
    plain = [(3.0, 1 << adam.NEWTON_B_BITS)] * adam.init_iters  # y ← y·(3 − x·y²)/2
    runs = (("bundled", bundled, steps), ("separate", lambda n, iters: None, steps))
    for name, source, sched in runs + (("plain", bundled, plain),):
        optim._newton_triples = source
        try:
            ctx.reset_comm_stats()
            y = adam._newton(xv, y0, sched)
            out[f"newton_{name}"] = ctx.comm_stats()  # party 1's: party to party only
        finally:
            optim._newton_triples = bundled
        err = (y.get_plain_text().double() - want).abs()
        out[f"newton_{name}_bad"] = int((err > tol).sum())
        # relative error where y's grid is below 3e-7 of y (y·2^10 >= 64: x <= 2^8)
        fine = want >= 64
        out[f"newton_{name}_rel"] = float((err[fine] / want[fine]).max())
    if not full:
        return out
    # sign tests over the whole representable range (|z| < 2^47)
    z = torch.tensor(
        [0.0, 2.0**-16, -(2.0**-16), 1.0, -1.0, 5e4, -5e4, 2.0**15, -(2.0**15), 1e9, -1e9]
        + [2.0**40, -(2.0**40), 2.0**46, -(2.0**46)]
    )
    zs = c.cryptensor(z, src=0)
    enc = torch.round(z * 2**16)
    out["ltz_bad"] = int((mpc_nn.ltz(zs).get_plain_text() != (enc < 0).float()).sum())
    # the ReLU's comparison over its range [-2^32, 2^32) (raw ±2^ACT_BITS), edges included
    top = 2.0 ** (mpc_nn.ACT_BITS - 16)
    za = torch.tensor(
        [0.0, 2.0**-16, -(2.0**-16), 1.0, -1.0, 5e4, -5e4, 1e9, -1e9, 2.0**31, -(2.0**31)]
        + [top - 2.0**-16, -top, -top + 2.0**-16],
        dtype=torch.float64,
    )
    enc = torch.round(za * 2**16)
    got = mpc_nn.relu_mask(c.cryptensor(za, src=1)).get_plain_text()
    out["relu_bad"] = int((got != (enc >= 0).float()).sum())
    # ... and just past it the answer is wrong: the stated range is the real one
    out["relu_past_range"] = float(
        mpc_nn.relu_mask(c.cryptensor(torch.tensor([top]))).get_plain_text()
    )
    # sigmoid over the whole range
    grid = torch.cat(
        [
            torch.linspace(-20, 20, 161),
            torch.tensor([-(2.0**31), -1e6, -600.0, -256.0, 256.0, 600.0, 1e6, 2.0**31]),
        ]
    )
    # ... and densely on the 2^-16 grid around every breakpoint of the pieces
    breaks = torch.tensor(
        [lo for lo, _, _ in mpc_nn.sigmoid_pieces()] + [16.0], dtype=torch.float64
    )
    near = (breaks[:, None] + torch.arange(-3, 4, dtype=torch.float64) * 2.0**-16).reshape(-1)
    dense = torch.round(torch.linspace(-17, 17, 4001, dtype=torch.float64) * 2**16) / 2**16
    grid = torch.cat([grid.double(), near, dense])
    comm = c.communicator.get()
    shared = c.cryptensor(grid, src=1)
    mpc_nn.sigmoid(shared)  # fills the dealer's pools for these sizes
    comm.reset_communication_stats()
    sig = mpc_nn.sigmoid(shared)
    out["sigmoid_rounds"] = int(comm.get_communication_stats()["rounds"])
    out["sigmoid_err"] = float((sig.get_plain_text().double() - torch.sigmoid(grid)).abs().max())
    # Adam's initial guess over [2^-8, 2^40)
    xs = 2.0 ** torch.linspace(-7.9, 39.9, 300)
    adam = optim.SecureAdam(1e-3)
    y0 = adam._initial_guess(c.cryptensor(xs, src=0)).get_plain_text().double()
    y0 = y0 / 2**adam.Y_SHIFT
    prod = y0 * xs.double().sqrt()
    out["guess_range"] = (float(prod.min()), float(prod.max()))
    # ... and the one-level reference's bucket at every threshold's edges: the guess after
    # passing the first p thresholds is base + Σ_{i<p} coef[i] (raw). Exactly that bucket
    # unless x is within 2^-START_FUZZ_BITS below a threshold (the truncated comparisons'
    # fuzz), where it may be the next one; twice that far from every threshold, exactly.
    fuzz = 2.0**-adam.START_FUZZ_BITS
    edges = [2.0**-8] + [
        2.0 ** (adam.THRESHOLD_LOG2 * j) * (1 + f) + d * 2.0**-16
        for j in adam.THRESHOLD_EXPONENTS
        for f, d in ((0, -1), (0, 0), (0, 1), (-fuzz / 2, 0), (-2 * fuzz, 0), (2 * fuzz, 0))
    ]
    xe = c.cryptensor(torch.tensor(edges + [2.0**39], dtype=torch.float64), src=0)
    raw_x = xe._tensor.reveal()
    raw_y = adam._initial_guess(xe)._tensor.reveal()
    scale = 2**16
    thr = torch.tensor(
        [int(2.0 ** (adam.THRESHOLD_LOG2 * j) * scale) for j in adam.THRESHOLD_EXPONENTS]
    )
    passed = (raw_x.reshape(-1, 1) >= thr.reshape(1, -1)).sum(1)
    # the most the fuzz may pass: every threshold below x·(1 + 2^-START_FUZZ_BITS)
    up = (raw_x.double().reshape(-1, 1) * (1 + fuzz) > thr.double().reshape(1, -1)).sum(1)
    half = adam.THRESHOLD_LOG2 / 2
    coef = torch.tensor(
        [
            round(
                adam.GUESS_C
                * (2.0 ** (-j * half) - 2.0 ** (-(j - 1) * half))
                * scale
                * 2**adam.Y_SHIFT
            )
            for j in adam.THRESHOLD_EXPONENTS
        ]
    )
    cum = torch.cat([torch.zeros(1, dtype=torch.long), coef.cumsum(0)])
    got = raw_y - raw_y[0]
    p = torch.arange(len(cum)).reshape(1, -1)
    fits = (got.reshape(-1, 1) == cum.reshape(1, -1)) & (p >= passed.reshape(-1, 1))
    fits &= p <= up.reshape(-1, 1)
    out["guess_buckets"] = sorted(set(passed.tolist()))
    out["guess_bad"] = int((~fits.any(1)).sum())
    far = up == passed  # no threshold within the fuzz above x: exactly the reference
    out["guess_far"] = int(far.sum())
    out["guess_far_bad"] = int((got[far] != cum[passed[far]]).sum())
    out["guess_fuzzy"] = int((got != cum[passed]).sum())
    # sharing rounds to the nearest grid point (CrypTen's encoder alone truncates toward 0)
    u = 2.0**-16
    off_grid = torch.tensor([0.7 * u, -0.7 * u, 0.3 * u, -0.3 * u, 3.0 + 0.6 * u, -3.0 - 0.6 * u])
    out["shared_raw"] = mpc_nn.share_rounded(off_grid, 1)._tensor.reveal().tolist()
    out["crypten_raw"] = c.cryptensor(off_grid, src=1)._tensor.reveal().tolist()
    # CrypTen's own multiply under exact_truncation, at a magnitude where local fails often
    a = torch.full((3000,), 3.0e4)
    b = torch.full((3000,), 3.0e4)  # positive: CrypTen decodes negatives 2^-16 off
    before = dict(trunc.STATS)
    with trunc.exact_truncation():
        p = (c.cryptensor(a, src=0) * c.cryptensor(b, src=1)).get_plain_text()
    out["mul_err"] = float((p - a * b).abs().max() / (a * b).abs().max())
    out["mul_local"] = trunc.STATS["local"] - before["local"]
    p_loc = (c.cryptensor(a, src=0) * c.cryptensor(b, src=1)).get_plain_text()
    out["mul_local_bad"] = int(((p_loc - a * b).abs() > 1).sum())
    return out


def _launch(full: bool, provider: str) -> dict:
    cfg = PartyConfig(world_size=2, timeout_s=120, provider=provider)
    res = launch_local(_party, 2, (full,), config=cfg)
    res[0]["party1"] = res[1]  # party 1's counters have no dealer traffic in them
    return res[0]


@pytest.fixture(scope="module")
def ttp():
    return _launch(True, "TTP")


@pytest.fixture(scope="module")
def tfp():
    return _launch(False, "tfp_player0_sees_all")


@pytest.mark.parametrize("f", [16, 30, 46])
def test_truncation_is_exact_over_the_whole_range(ttp, tfp, f) -> None:
    for res in (ttp, tfp):
        assert res[f"exact_{f}"][0] >= 0 and res[f"exact_{f}"][1] <= 1, res[f"exact_{f}"]
        # the same values truncated locally: wrong by ~2^(64-f) for roughly |x|/2^63 of them
        assert res[f"local_bad_{f}"] > res["n"] // 20


def test_truncation_of_mixed_divisors_in_one_batch_is_exact(ttp, tfp) -> None:
    for res in (ttp, tfp):
        assert res["mixed_bad"] == []


def test_truncation_rounds_without_bias(ttp, tfp) -> None:
    for res in (ttp, tfp):
        assert abs(res["mean_13_over_4"] - 3.25) < 0.05


def test_sign_tests_over_their_ranges(ttp) -> None:
    assert ttp["ltz_bad"] == 0
    assert ttp["relu_bad"] == 0
    assert ttp["relu_past_range"] == 0.0  # 2^32 is read as negative: outside the range


def test_sigmoid_saturates_over_the_whole_range(ttp) -> None:
    # the pieces' 3e-6 plus one unit of the 2^-16 grid (1.5e-5, the output's unbiased
    # rounding); the exp-and-reciprocal route reached 2.6e-5, CrypTen's exp 1.3e-3
    assert ttp["sigmoid_err"] < 2e-5
    # one comparison (7), t (1), its powers (2 x 2), the terms (1), the final truncation;
    # a dealer pool refill, if one falls in this call, adds one (the exp route took 46)
    assert ttp["sigmoid_rounds"] in (14, 15)


def test_sigmoid_pieces_fit_the_logistic_function() -> None:
    """Every piece's polynomial within 3e-6 of σ on its interval (float64), the pieces
    tile [−16, 16) without gaps, and σ(±16) is within half a grid unit of 0 and 1."""
    from smpc_gym.secure import mpc_nn

    pieces = mpc_nn.sigmoid_pieces()
    assert pieces[0][0] == -16.0 and pieces[-1][1] == 16.0
    assert all(a[1] == b[0] for a, b in zip(pieces[:-1], pieces[1:], strict=True))
    worst = 0.0
    for lo, hi, co in pieces:
        z = torch.linspace(lo, hi, 2001, dtype=torch.float64)
        t = z - (lo + hi) / 2
        p = sum(a * t**k for k, a in enumerate(co))
        worst = max(worst, float((p - torch.sigmoid(z)).abs().max()))
    assert worst < 3e-6, worst
    assert float(torch.sigmoid(torch.tensor(-16.0, dtype=torch.float64))) < 2.0**-17


def test_relu_with_bit_injection_is_exact_and_cheaper(ttp, tfp) -> None:
    for res in (ttp, tfp):
        assert res["relu_fused_bad"] == 0 and res["relu_separate_bad"] == 0
        fused, separate = res["party1"]["relu_fused"], res["party1"]["relu_separate"]
        assert fused["rounds"] == separate["rounds"] - 1, (fused, separate)
        # the mask is never opened (party 1 alone: 8 bytes + 1 bit less each way)
        assert fused["bytes"] < separate["bytes"] - 3000 * 8, (fused, separate)


def test_adam_newton_with_shared_masks_is_as_exact_and_opens_fewer_values(ttp, tfp) -> None:
    # x over [2^-8, 2^39): within the scaled schedule's bound (9.7e-6 relative for the 4
    # default steps) plus the grid (4 units where y·2^10 is tiny)
    for res in (ttp, tfp):
        assert res["newton_bundled_bad"] == 0 and res["newton_separate_bad"] == 0, res
        assert res["newton_bundled_rel"] < 1e-5 and res["newton_separate_rel"] < 1e-5, res
        # plain Newton steps from the same start are far from it after 4 steps (2e-2):
        # the bound is the schedule's, not slack in the check
        assert res["newton_plain_bad"] > 50 and res["newton_plain_rel"] > 5e-4, res
        shared, separate = res["party1"]["newton_bundled"], res["party1"]["newton_separate"]
        assert shared["rounds"] == separate["rounds"], (shared, separate)
        # 13 masked vectors opened for 4 steps instead of 24 (plus the same truncations)
        assert shared["bytes"] < 0.6 * separate["bytes"], (shared, separate)


def test_adam_initial_guess_over_its_range(ttp) -> None:
    lo, hi = ttp["guess_range"]
    assert lo >= 0.33 and hi <= 1.45  # Newton for x^(-1/2) converges from (0, sqrt(3))


def test_adam_initial_guess_is_the_one_level_bucket_at_every_edge(ttp) -> None:
    # the two-level range reduction picks the bucket of a comparison against all 11
    # thresholds, just below, at and just above each one, or (within 2^-10 below a
    # threshold, the truncated comparisons' fuzz) the next one; exactly the reference's
    # bucket for every x further than that from every threshold
    assert ttp["guess_buckets"] == list(range(12))
    assert ttp["guess_bad"] == 0
    assert ttp["guess_far"] >= 2 * 11 and ttp["guess_far_bad"] == 0


def test_inputs_are_shared_rounded_to_the_nearest_grid_point(ttp) -> None:
    three = 3 * 2**16
    assert ttp["shared_raw"] == [1, -1, 0, 0, three + 1, -three - 1]
    # what CrypTen's encoder alone does: toward zero
    assert ttp["crypten_raw"] == [0, 0, 0, 0, three, -three]


def test_crypten_multiply_is_exact_inside_the_context(ttp) -> None:
    assert ttp["mul_err"] < 1e-6
    assert ttp["mul_local"] == 0
    assert ttp["mul_local_bad"] > 0  # the same product outside the context wraps


def test_pack_helpers_round_trip() -> None:
    from smpc_gym.secure import ring

    g = torch.Generator().manual_seed(0)
    bits = torch.randint(0, 2, (131,), generator=g)
    assert torch.equal(ring.unpack_bits(ring.pack_bits(bits), 131), bits)
    # the layout every party and the dealer rely on: bit i is bit i % 64 of word i // 64
    words = ring.pack_bits(bits)
    assert words.dtype == torch.int64 and words.shape == (3,)
    for i in (0, 1, 7, 8, 63, 64, 100, 130):
        one = torch.zeros(131, dtype=torch.int64)
        one[i] = 1
        want = torch.zeros(3, dtype=torch.int64)
        want[i // 64] = 1 << (i % 64) if i % 64 < 63 else -(1 << 63)
        assert torch.equal(ring.pack_bits(one), want), i
        assert int(ring.unpack_bits(want, 131).sum()) == 1 and ring.unpack_bits(want, 131)[i] == 1
    assert ring.unpack_bits(words, 131).dtype == torch.int64
    vals = ring.draw_ring(37, g)
    for nbits in ring.PACK_WIDTHS:
        packed = ring.pack_words(vals, nbits)
        assert packed.numel() == ring.packed_words(37, nbits) == -(-37 * nbits // 64)
        back = ring.unpack_words(packed, 37, nbits)
        mask = (1 << nbits) - 1 if nbits < 64 else -1
        assert torch.equal(back & mask, vals & mask), nbits
    for bad in (0, 12, 65):
        with pytest.raises(ValueError, match="nbits"):
            ring.pack_words(vals, bad)


def test_dealer_pairs_satisfy_the_correlation() -> None:
    """What the dealer sends party 0 plus what party 1 draws is u·v mod 2^k."""
    from smpc_gym.secure import dealer, ring

    for nbits in ring.PACK_WIDTHS:
        g0, g1 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)
        t0 = ring.unpack_words(dealer.trunc_pairs(g0, g1, 1000, nbits), 1000, nbits)
        p0, p1 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)
        u = ring.draw_bits(1000, p0)
        v, t1 = ring.draw_bits(1000, p1), ring.draw_ring(1000, p1)
        mask = (1 << nbits) - 1 if nbits < 64 else -1
        assert torch.equal((t0 + t1) & mask, (u * v) & mask)
        assert 150 < int((u * v).sum()) < 350  # P(u·v = 1) = 1/4


def test_bad_arguments_are_refused() -> None:
    from smpc_gym.secure import trunc

    with pytest.raises(ValueError, match="mode"):
        trunc.set_mode("fast")
