"""The dealer's typed wire format and its pooled correlations.

* every request round-trips through :func:`dealer.encode` / :func:`dealer.decode`, the
  reply sizes are what both sides compute, and requests the dealer does not serve are
  refused with a message naming them;
* the dealer's bit pairs and elementwise/matmul triples, recomputed from the two
  generators, satisfy their correlations with what the parties draw (so a misaligned
  draw order would fail here);
* in a real two-party run with the dealer, pooled triples serve many products with a
  handful of dealer round trips, and the results equal plaintext.
"""

from __future__ import annotations

import pytest
import torch

from smpc_gym.secure.runtime import PartyConfig, launch_local


def test_requests_round_trip_and_unknown_ones_are_refused() -> None:
    from smpc_gym.secure import dealer

    cases = [
        ("additive", [torch.Size([3, 4]), torch.Size([4, 5]), "matmul"], (3, 5)),
        ("additive", [torch.Size([2, 1, 7]), torch.Size([2, 6, 7]), "mul"], (2, 6, 7)),
        ("square", [torch.Size([9])], (9,)),
        ("binary", [torch.Size([4, 1]), torch.Size([4, 3])], (4, 3)),
        ("wraps", [torch.Size([2, 2])], (2, 2)),
        ("B2A", [torch.Size([5])], (5,)),
        ("trunc_pairs", [100, 16], (25,)),
        ("trunc_pairs", [100, 64], (100,)),
        ("trunc_pairs", [100, 40], (63,)),  # 4,000 bits: 62.5 words
        ("trunc_pairs", [100, 8], (13,)),
        ("carry_pairs", [17, 48], (17 * 88,)),
        ("carry_pairs", [5, 63], (5 * 119,)),
        ("mul_flat", [1000], (1000,)),
        ("matmul_many", [8, torch.Size([2, 128, 14]), torch.Size([2, 14, 128])], (8, 2, 128, 128)),
        ("newton_triples", [36100, 6], (6, 3, 36100)),
        ("bit_mul", [1000], (2, 1000)),
        ("bit_mul_back", [1000], (3, 1000)),
        # 8 bundles of a critic's first layer: A @ B [2, 128, 128], Aᵀ @ E [2, 14, 128],
        # E @ Bᵀ [2, 128, 14]
        (
            "layer_many",
            [8, torch.Size([2, 128, 14]), torch.Size([2, 14, 128]), 3],
            (8 * (2 * 128 * 128 + 2 * 14 * 128 + 2 * 128 * 14),),
        ),
        ("layer_many", [8, torch.Size([2, 128, 14]), torch.Size([2, 14, 128]), 0], (8 * 32768,)),
        ("cpu_usage", [], (3,)),
    ]
    for func, args, size in cases:
        frame = dealer.encode(func, args)
        assert frame.dtype == torch.int64 and frame.numel() == dealer.FRAME
        got_func, got_args = dealer.decode(frame)
        assert (got_func, [list(a) if isinstance(a, torch.Size) else a for a in got_args]) == (
            func,
            [list(a) if isinstance(a, torch.Size) else a for a in args],
        )
        assert dealer.result_size(got_func, got_args) == torch.Size(size)
    assert dealer.broadcast((2, 1, 7), (6, 7)) == torch.Size([2, 6, 7])
    assert dealer.broadcast((), (3,)) == torch.Size([3])
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 3\) do not broadcast"):
        dealer.broadcast((2, 3), (4, 3))
    with pytest.raises(ValueError, match="conv2d"):
        dealer.encode("additive", [torch.Size([1]), torch.Size([1]), "conv2d"])
    with pytest.raises(ValueError, match="stride"):
        dealer.encode("additive", [torch.Size([1]), torch.Size([1]), "mul"], {"stride": 2})
    with pytest.raises(ValueError, match="launch_missiles"):
        dealer.encode("launch_missiles")
    for n, iters in ((0, 6), (10, 0), (10, dealer.NEWTON_MAX_ITERS + 1)):
        with pytest.raises(ValueError, match=f"n = {n}, iters = {iters}; expected n >= 1"):
            dealer.decode(dealer.encode("newton_triples", [n, iters]))
    with pytest.raises(ValueError, match=r"sizes \(2, 3, 4\) and \(2, 5, 6\); expected"):
        dealer.decode(dealer.encode("layer_many", [8, (2, 3, 4), (2, 5, 6), 3]))
    with pytest.raises(ValueError, match="unknown flags 4"):
        dealer.decode(dealer.encode("layer_many", [8, (2, 3, 4), (2, 4, 6), 4]))
    for nbits in (0, 12, 72):
        with pytest.raises(ValueError, match=f"nbits = {nbits}; expected one of"):
            dealer.decode(dealer.encode("trunc_pairs", [100, nbits]))
    with pytest.raises(ValueError, match="unknown dealer request code 99"):
        dealer.decode(torch.tensor([99] + [0] * (dealer.FRAME - 1)))


def test_streams_are_aes_256_ctr_under_their_own_key() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from smpc_gym.secure import prg

    key = bytes(range(32))
    a, b = prg.Stream(key), prg.Stream(key)
    assert torch.equal(a.ring(10), b.ring(10)) and torch.equal(a.bits(100), b.bits(100))
    # the keystream of AES-256 in counter mode from block 0, 8 bytes per ring element
    want = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update(bytes(80))
    assert prg.Stream(key).ring(10).numpy().tobytes() == want
    # draws of any sizes, in any order (the zero plaintext buffer grows and is shared by
    # every stream of the process), are consecutive pieces of that one keystream
    sizes = [3, 70_000, 5, 1 << 17, 1]
    whole = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    want = whole.update(bytes(8 * sum(sizes)))
    s, other = prg.Stream(key), prg.Stream(bytes(32))
    got = b"".join(
        s.ring(n).numpy().tobytes() + other.ring(n + 9)[:0].numpy().tobytes() for n in sizes
    )
    assert got == want
    bits = prg.Stream(key).bits(64_000).double()
    assert set(bits.unique().tolist()) == {0.0, 1.0} and abs(float(bits.mean()) - 0.5) < 0.01
    assert len(prg.new_key()) == prg.KEY_BYTES and prg.new_key() != prg.new_key()
    for bad in (b"short", "a" * 32, bytes(33)):
        with pytest.raises(ValueError, match="a stream key is 32 bytes"):
            prg.Stream(bad)  # type: ignore[arg-type]


def test_pooled_correlations_hold_for_the_parties_draws() -> None:
    from smpc_gym.secure import carry, dealer, prg, ring

    def gens() -> tuple[prg.Stream, prg.Stream]:  # the dealer's streams, one per party
        return prg.Stream(bytes(32)), prg.Stream(bytes(range(32)))

    # the carry tree: per output, t₀ ⊕ t₁ is the XOR of u_i ∧ v_j over its terms, with
    # each party's rows drawn row by row as the pools draw them
    for nbits in (1, 2, 3, 25, 43, 48, 57):
        rows, outs = carry.carry_size(nbits)
        g0, g1 = gens()
        t0 = dealer.carry_pairs(g0, g1, 7, nbits).view(outs, 7).t()
        p0, p1 = gens()
        u = ring.draw_ring(7 * rows, p0).view(rows, 7).t()
        v, t1 = (
            ring.draw_ring(7 * rows, p1).view(rows, 7).t(),
            ring.draw_ring(7 * outs, p1).view(outs, 7).t(),
        )
        r0 = o0 = 0
        for n_rows, terms, _ in carry.carry_layout(nbits):
            for o, pairs in enumerate(terms.tolist()):
                want = torch.zeros(7, dtype=torch.int64)
                for i, j in pairs:
                    if (i, j) != (n_rows, n_rows):  # padding
                        want ^= u[:, r0 + i] & v[:, r0 + j]
                assert torch.equal(t0[:, o0 + o] ^ t1[:, o0 + o], want), (nbits, o0 + o)
            r0, o0 = r0 + n_rows, o0 + len(terms)
        assert (r0, o0) == (rows, outs)
    # elementwise triples: party 0 draws a₀, b₀; party 1 a₁, b₁, c₁
    g0, g1 = gens()
    s0, s1 = (2, 3, 4), (2, 4, 5)
    c0 = dealer._triples_c0(g0, g1, s0, s1, ring.ring_matmul, (2, 3, 5))
    p0, p1 = gens()
    a0, b0 = dealer.draw_ring_sized(s0, p0), dealer.draw_ring_sized(s1, p0)
    a1, b1 = dealer.draw_ring_sized(s0, p1), dealer.draw_ring_sized(s1, p1)
    c1 = dealer.draw_ring_sized((2, 3, 5), p1)
    assert torch.equal(c0 + c1, torch.matmul(a0 + a1, b0 + b1))
    # bit-times-value correlations: each party draws its bit rᵢ and mask Aᵢ, party 1 then
    # its shares of r = r₀ ⊕ r₁ and of A·r
    g0, g1 = gens()
    reply = dealer.bit_mul(g0, g1, 70)
    p0, p1 = gens()
    r0, a0 = ring.draw_bits(70, p0), ring.draw_ring(70, p0)
    r1, a1 = ring.draw_bits(70, p1), ring.draw_ring(70, p1)
    ra1, c1 = ring.draw_ring(70, p1), ring.draw_ring(70, p1)
    assert torch.equal(reply[0] + ra1, r0 ^ r1)
    assert torch.equal(reply[1] + c1, (a0 + a1) * (r0 ^ r1))
    # ... and with a second mask A' for the same bit (the ReLU's backward pass)
    g0, g1 = gens()
    reply = dealer.bit_mul_back(g0, g1, 70)
    p0, p1 = gens()
    r0, a0, b0 = ring.draw_bits(70, p0), ring.draw_ring(70, p0), ring.draw_ring(70, p0)
    r1, a1, b1 = ring.draw_bits(70, p1), ring.draw_ring(70, p1), ring.draw_ring(70, p1)
    ra1, c1, d1 = (ring.draw_ring(70, p1) for _ in range(3))
    r = r0 ^ r1
    assert torch.equal(reply[0] + ra1, r)
    assert torch.equal(reply[1] + c1, (a0 + a1) * r)
    assert torch.equal(reply[2] + d1, (b0 + b1) * r)
    # layer bundles: the forward's masks A (of h) and B (of W) are the backward's masks of
    # hᵀ and Wᵀ; E masks dz. Every flag combination, two bundles
    s0, s1 = (2, 5, 3), (2, 3, 4)
    for flags in (0, dealer.LAYER_WEIGHTS, dealer.LAYER_INPUTS, 3):
        g0, g1 = gens()
        c0 = dealer.layer_triples(g0, g1, 2, s0, s1, flags)
        sizes = dealer._layer_sizes(s0, s1, flags)
        assert c0.shape == dealer.result_size("layer_many", [2, s0, s1, flags])
        p0, p1 = gens()
        m0, m1 = dealer._layer_draws(p0, 2, s0, s1), dealer._layer_draws(p1, 2, s0, s1)
        a, b, e = (x + y for x, y in zip(m0, m1, strict=True))
        c = c0.view(2, -1) + ring.draw_ring(2 * sum(sizes), p1).view(2, -1)
        want = [a @ b]
        if flags & dealer.LAYER_WEIGHTS:
            want.append(a.transpose(-1, -2) @ e)
        if flags & dealer.LAYER_INPUTS:
            want.append(e @ b.transpose(-1, -2))
        assert torch.equal(c, torch.cat([w.reshape(2, -1) for w in want], dim=1)), flags
    # Newton's shared-mask triples: each party draws its masks [1 + 3k, n], party 1 then c₁
    g0, g1 = gens()
    n, k = 40, 3
    c0 = dealer.newton_triples(g0, g1, n, k)
    p0, p1 = gens()
    m = (ring.draw_ring((1 + 3 * k) * n, p0) + ring.draw_ring((1 + 3 * k) * n, p1)).view(-1, n)
    c = c0 + ring.draw_ring(3 * k * n, p1).view(k, 3, n)
    for step in range(k):
        a, b, cm, d = m[0], m[1 + 3 * step], m[2 + 3 * step], m[3 + 3 * step]
        assert torch.equal(c[step, 0], a * b)  # x·y: x's one mask, this step's y mask
        assert torch.equal(c[step, 1], cm * b)  # (x·y)·y
        assert torch.equal(c[step, 2], b * d)  # y·(3 − u)


def _party(ctx):
    from smpc_gym.secure import mpc_nn

    c = ctx.crypten
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 10, generator=g)
    w = torch.randn(10, 20, generator=g)
    xs, ws = c.cryptensor(x, src=0), c.cryptensor(w, src=1)
    ctx.reset_comm_stats()
    out = {"err": 0.0}
    for _ in range(12):  # 12 matmuls and 12 products: pooled, few dealer requests
        (y,) = mpc_nn.beaver_many([("matmul", xs, ws)])
        (z,) = mpc_nn.beaver_many([("mul", y, y)])
        want = (x @ w) ** 2
        out["err"] = max(out["err"], float((z.get_plain_text() - want).abs().max()))
    out["stats"] = ctx.comm_stats()
    from smpc_gym.secure import dealer, prg

    out["aes_stream"] = isinstance(dealer.pools().gen, prg.Stream)
    # the dealer's own CPU seconds and page faults (party 0 asks): it has worked, and
    # they only grow
    first = dealer.dealer_usage() if ctx.rank == 0 else ()
    mpc_nn.beaver_many([("matmul", xs, ws)] * 40)  # outgrows the matmul pool: 40 more triples
    if ctx.rank == 0:
        out["dealer_cpu"] = [*first, *dealer.dealer_usage()]
        out["dealer_cpu_seconds"] = dealer.dealer_cpu_seconds()
    return out


def test_pooled_triples_are_correct_and_save_round_trips() -> None:
    res = launch_local(_party, 2, config=PartyConfig(world_size=2, timeout_s=120))
    r0, r1 = res
    assert r0["err"] < 0.05, r0
    assert r0["aes_stream"] and r1["aes_stream"]  # never CrypTen's Mersenne Twister
    user0, sys0, faults0, user1, sys1, faults1 = r0["dealer_cpu"]
    assert user0 + sys0 > 0 and user1 >= user0 and sys1 >= sys0, r0["dealer_cpu"]
    assert user1 + sys1 > user0 + sys0  # it made 40 more matmul triples in between
    # a started Python process has touched memory: page faults are counted, never undone
    assert isinstance(faults0, int) and 0 < faults0 <= faults1, r0["dealer_cpu"]
    later_user, later_sys = r0["dealer_cpu_seconds"]
    assert later_user >= user1 and later_sys >= sys1
    # party 1 never talks to the dealer: its rounds are the 4 per iteration with party 0
    # (two openings, two truncations) plus the 24 reveals; party 0 adds only the
    # pool refills, far fewer than the 24 products
    extra = r0["stats"]["rounds"] - r1["stats"]["rounds"]
    assert 0 < extra <= 6, (r0["stats"], r1["stats"])


def _equal_steps(ctx):
    from smpc_gym.secure import mpc_nn

    c = ctx.crypten
    g = torch.Generator().manual_seed(5)
    xs = c.cryptensor(torch.randn(64, 10, generator=g), src=0)
    ws = c.cryptensor(torch.randn(10, 20, generator=g), src=1)
    from smpc_gym.secure.dealer import dealer_bytes

    spent = []
    for _ in range(10):  # the matmul pool refills at steps 0 and 8 (8 triples a refill)
        ctx.reset_comm_stats()
        before = dealer_bytes()
        (y,) = mpc_nn.beaver_many([("matmul", xs, ws)])
        mpc_nn.beaver_many([("mul", y, y)])
        spent.append((ctx.comm_stats()["bytes"], dealer_bytes() - before))
    return spent


def test_dealer_bytes_are_counted_as_the_correlations_are_used() -> None:
    """A refill's reply serves many products: party 0 counts its words per product handed
    out, so equal steps cost equal bytes whenever the refills fall (counted on arrival,
    steps 0 and 8 would each carry 8 matmul triples' 10,240 words more)."""
    p0, p1 = launch_local(_equal_steps, 2, config=PartyConfig(world_size=2, timeout_s=120))
    assert len(set(p1)) == 1 and p1[0][1] == 0, p1  # party to party: the same every step
    # party 0 adds the dealer's words of what the step used: the matmul triple's c₀ and
    # the product's (64·20 words each) and two truncations' t₀ (64·20 at 16 bits each);
    # a step that sends a refill request also counts its frame (32 words)
    used = 8 * (2 * 64 * 20 + 2 * 64 * 20 * 16 // 64)
    for b0, dealt in p0:
        extra = b0 - p1[0][0] - used
        assert extra % (8 * 32) == 0 and 0 <= extra <= 8 * 32 * 3, (p0, p1)
        # dealer_bytes() is exactly that extra: the rest of party 0's count is its peer's
        assert dealt == b0 - p1[0][0], (p0, p1)


def _idle_then_multiply(ctx):
    import time

    time.sleep(8)  # longer than the run's 5 s timeout, before any dealer request
    x = ctx.crypten.cryptensor(torch.tensor([1.5, -2.0]), src=0)
    return (x * x).get_plain_text().tolist()


def test_the_dealer_waits_for_parties_that_are_busy_elsewhere() -> None:
    """Parties can go longer than the timeout without asking the dealer (pre-training,
    full pools): the dealer must not give up on them."""
    res = launch_local(_idle_then_multiply, 2, config=PartyConfig(world_size=2, timeout_s=5))
    assert res[0] == pytest.approx([2.25, 4.0], abs=1e-3)


def _mixed_sizes(ctx, prefetch: bool):
    """Products of sizes that outgrow a prefetched chunk, matmuls past one batch, and
    CrypTen's own (unpooled) dealer requests in between."""
    from smpc_gym.secure import dealer, mpc_nn

    c = ctx.crypten
    dealer.pools().prefetch = prefetch
    g = torch.Generator().manual_seed(9)
    err = 0.0
    for n in (1000, 600_000, 70_000, 600_000, 5):  # CHUNK is 2^19 = 524,288
        x = torch.rand(n, generator=g) * 4 - 2
        xs = c.cryptensor(x, src=n % 2)
        (z,) = mpc_nn.beaver_many([("mul", xs, xs)])
        err = max(err, float((z.get_plain_text() - x * x).abs().max()))
        head = xs[:5]
        err = max(err, float(((head * head).get_plain_text() - x[:5] ** 2).abs().max()))
    a = torch.randn(16, 32, generator=g)
    b = torch.randn(32, 16, generator=g)
    As, Bs = c.cryptensor(a, src=0), c.cryptensor(b, src=1)
    for _ in range(dealer.MATMUL_BATCH + 3):
        (y,) = mpc_nn.beaver_many([("matmul", As, Bs)])
        err = max(err, float((y.get_plain_text() - a @ b).abs().max()))
    return err


@pytest.mark.parametrize("prefetch", [True, False])
def test_prefetched_pools_stay_aligned_with_the_dealer(prefetch: bool) -> None:
    """With prefetch the parties draw, and party 0 asks for, the next refill early; the
    three streams must still line up (a misaligned triple gives a random product)."""
    res = launch_local(
        _mixed_sizes, 2, (prefetch,), config=PartyConfig(world_size=2, timeout_s=120)
    )
    assert res[0] < 1e-3 and res[1] < 1e-3, res


def test_pools_hand_out_consecutive_columns_across_refills() -> None:
    """Party 1's carry-tree pool (no dealer traffic: it draws everything from its stream)
    hands out the refills' columns in order, a request that outgrows what is left of a
    refill continuing in the next, exactly as the dealer draws them (:func:`carry_pairs`)."""
    from smpc_gym.secure import carry, dealer, prg, ring

    nbits = 3
    rows, outs = carry.carry_size(nbits)
    chunk = max(1, dealer.CHUNK // (rows + outs))
    pools = dealer.Pools(1, prg.Stream(bytes(range(32))), prefetch=False)
    sizes = [chunk // 2, chunk // 2 + 5, 7, chunk + 3]  # the 2nd and 4th span refills
    got = [pools.carry_pairs(n, nbits) for n in sizes]
    # the refills, drawn when a request does not fit what is left: max(request, chunk)
    # words (the 1st, 2nd and 4th requests)
    ref, masks, ts = prg.Stream(bytes(range(32))), [], []
    for m in (chunk, chunk, chunk + 3):
        masks.append(ring.draw_ring(m * rows, ref).view(rows, m))
        ts.append(ring.draw_ring(m * outs, ref).view(outs, m))
    mask, t = torch.cat(masks, 1), torch.cat(ts, 1)
    start = 0
    for n, (gm, gt) in zip(sizes, got, strict=True):
        assert gm.shape == (rows, n) and gt.shape == (outs, n)
        assert torch.equal(gm, mask[:, start : start + n]), n
        assert torch.equal(gt, t[:, start : start + n]), n
        start += n


def test_xor_terms_is_the_xor_of_each_outputs_terms_at_every_width() -> None:
    from smpc_gym.secure import carry

    g = torch.Generator().manual_seed(3)
    for nbits in range(1, carry.LOW_BITS + 1):
        for rnd in carry.carry_layout(nbits):
            left = torch.randint(-(2**62), 2**62, (rnd.rows, 3), generator=g)
            right = torch.randint(-(2**62), 2**62, (rnd.rows, 3), generator=g)
            want = torch.zeros(rnd.terms.shape[0], 3, dtype=torch.int64)
            for o, pairs in enumerate(rnd.terms.tolist()):
                for i, j in pairs:
                    if (i, j) != (rnd.rows, rnd.rows):  # padding
                        want[o] ^= left[i] & right[j]
            assert torch.equal(carry.xor_terms(left, right, rnd), want), nbits


def test_requests_leave_in_order_from_the_sender_thread_and_a_failed_send_is_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Party 0 hands its request frames to one sender thread (:func:`dealer._send_later`):
    they must reach the dealer in the order they were handed over (it answers in turn,
    each reply into the buffer posted for it), even when an earlier send is slow, and a
    send that fails must come back to the caller, not vanish in the thread."""
    import threading
    import time

    import torch.distributed as dist

    from smpc_gym.secure import dealer

    sent: list[int] = []
    caller = threading.get_ident()

    def fake_send(frame: torch.Tensor, dst: int, group: object) -> None:
        assert threading.get_ident() != caller, "the send ran on the caller's thread"
        if int(frame[0]) == 0:
            time.sleep(0.2)  # a slow first send: the others must wait for it
        if int(frame[0]) == 3:
            raise RuntimeError("connection closed")
        sent.append(int(frame[0]))

    monkeypatch.setattr(dist, "send", fake_send)
    futures = [dealer._send_later(torch.tensor([i]), 2, None) for i in range(4)]
    for f in futures[:3]:
        f.result(timeout=10)
    with pytest.raises(RuntimeError, match="connection closed"):
        futures[3].result(timeout=10)
    assert sent == [0, 1, 2]
