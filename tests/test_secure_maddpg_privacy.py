"""Privacy of secure MADDPG, measured on the wire rather than asserted.

Player 1's process is instrumented: every tensor it *receives* through CrypTen's
communicator or in a Beaver opening (:func:`smpc_gym.secure.mpc_nn.open_many`) is
recorded (for a sum-reduction the received part is ``result − own input``,
for a gather the other party's entry, for a broadcast/recv the tensor that arrived), as
is every value it decrypts (:attr:`Party.reveal_log`) and every message its world view
receives. Player 0 returns its private data (features, actions, rewards) encoded the way
CrypTen encodes them. Then:

(a) none of player 0's encoded values appears among the ring elements player 1 received,
    player 1 never decrypted player 0's action, and its world view got only its own
    observations;
(b) the received ring elements are statistically indistinguishable from uniform: a
    chi-square test on their top byte, and a binomial test on 1-bit channels; a control
    shows the same test rejects player 0's plaintext-encoded values.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from smpc_gym.agents import secure_maddpg as sm
from smpc_gym.envs.supply_chain.remote import PlayerView, new_key, start_world
from smpc_gym.secure.runtime import PartyConfig, launch_local

SCALE = 2**16


def _install_recorder(comm, store: dict) -> None:
    """Wrap the communicator's receiving calls to record what arrives from the peer."""
    rank = comm.get_rank()

    def add(t: torch.Tensor | None) -> None:
        if t is None or not torch.is_tensor(t) or t.dtype != torch.long:
            return
        arr = t.detach().reshape(-1).numpy().copy()
        if arr.size and np.isin(arr, [0, 1]).all():
            store["bits"].append(arr)
        else:
            store["words"].append(arr)

    def wrap(name, after):
        orig = getattr(comm, name)

        def fn(*args, **kwargs):
            out = orig(*args, **kwargs)
            after(args, kwargs, out)
            return out

        setattr(comm, name, fn)

    def sum_diff(args, kwargs, out):
        inp = args[0]
        op = kwargs.get("op", args[1] if len(args) > 1 and not isinstance(args[1], int) else None)
        xor = op is not None and "BXOR" in str(op)
        ins = inp if isinstance(inp, list) else [inp]
        outs = out if isinstance(out, list) else [out]
        for i, o in zip(ins, outs, strict=True):
            if o is not None:
                add(torch.bitwise_xor(o, i) if xor else o - i)

    wrap("all_reduce", sum_diff)
    wrap(
        "reduce",
        lambda a, k, out: sum_diff(a, k, out) if out is not None else None,
    )
    wrap("all_gather", lambda a, k, out: add(out[1 - rank]))
    wrap("gather", lambda a, k, out: add(out[1 - rank]) if len(out) > 1 else None)
    wrap(
        "broadcast",
        lambda a, k, out: (
            [add(t) for t in (out if isinstance(out, list) else [out])]
            if (a[1] if len(a) > 1 else k.get("src")) != rank
            else None
        ),
    )
    wrap("recv", lambda a, k, out: add(a[0]))

    # Beaver openings go through one direct exchange (mpc_nn.open_many), not the
    # communicator: what arrives from the peer is the opened value minus the own share
    from smpc_gym.secure import mpc_nn

    orig_open = mpc_nn.open_many

    def open_many(shares):
        out = orig_open(shares)
        for s, o in zip(shares, out, strict=True):
            add(o - s)
        return out

    mpc_nn.open_many = open_many


def _party(ctx, job: sm.PartyJob):
    store: dict = {"words": [], "bits": []}
    if ctx.rank == 1:
        _install_recorder(ctx.comm, store)
    result = sm.party_main(ctx, job)
    out = {"reveal_log": result["reveal_log"], "updates": result["updates"]}
    if ctx.rank == 1:
        words = np.concatenate(store["words"]) if store["words"] else np.zeros(0, np.int64)
        bits = np.concatenate(store["bits"]) if store["bits"] else np.zeros(0, np.int64)
        top = (words.view(np.uint64) >> np.uint64(56)).astype(np.int64)
        out["top_byte_hist"] = np.bincount(top, minlength=256)
        out["n_words"] = int(words.size)
        out["small_words"] = words[np.abs(words) < 2**40].copy()  # plaintext-looking values
        out["bit_ones"], out["n_bits"] = int(bits.sum()), int(bits.size)
    else:
        # player 0's private data as CrypTen would encode it (what must never leak)
        rows = result["private"]
        out["private_encoded"] = np.round(rows * SCALE).astype(np.int64)
    return out


def _run(tmp_path):
    cfg = sm.Config(
        hidden=8, batch_size=8, learning_starts=8, log_every=1000, reveal_final_weights="owner"
    )
    key = new_key()
    proc, address = start_world({}, 5, key)
    try:
        job = sm.PartyJob(
            cfg=cfg,
            env_kwargs={},
            seed=5,
            total_steps=12,
            world_address=address,
            world_key=key,
            share_dir=str(tmp_path),
            resume_step=None,
            checkpoint_every=0,
            reports=None,
            return_private=True,
        )
        return launch_local(_party, 2, (job,), config=PartyConfig(world_size=2, timeout_s=60))
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.terminate()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("shares"))


def test_player1_never_holds_player0_data_in_clear(recorded) -> None:
    p0, p1 = recorded
    assert p1["updates"] >= 4 and p1["n_words"] > 100_000
    private = p0["private_encoded"].reshape(-1)
    private = private[private != 0]  # 0 is too common a value to be evidence either way
    assert private.size > 50
    leaked = np.isin(p1["small_words"], private)
    assert not leaked.any(), f"player 0's values seen by player 1: {p1['small_words'][leaked]}"
    # a uniform 64-bit element is below 2^40 with probability 2^-23
    assert p1["small_words"].size <= 5
    # what player 1 decrypted: its own action, the scalar losses, its own final weights
    got = {e["what"] for e in p1["reveal_log"] if e["received"]}
    assert got <= {"action_1", "critic_loss", "actor_loss", "actor_1_weights", "critic_1_weights"}
    assert "action_1" in got and "action_0" not in got
    assert any(e["what"] == "action_0" and not e["received"] for e in p1["reveal_log"])


def test_received_shares_look_uniform_and_plaintext_does_not(recorded) -> None:
    p0, p1 = recorded
    hist = p1["top_byte_hist"]
    _, p_uniform = stats.chisquare(hist)
    assert p_uniform > 1e-4, f"top byte of received shares is not uniform (p={p_uniform})"
    if p1["n_bits"]:
        p_bits = stats.binomtest(p1["bit_ones"], p1["n_bits"], 0.5).pvalue
        assert p_bits > 1e-4, f"1-bit channel is biased (p={p_bits})"
    # control: the same test on plaintext-encoded values rejects uniformity
    enc = p0["private_encoded"].reshape(-1)
    top = (enc.view(np.uint64) >> np.uint64(56)).astype(np.int64)
    _, p_plain = stats.chisquare(np.bincount(top, minlength=256))
    assert p_plain < 1e-10


def test_player_view_carries_only_own_part() -> None:
    key = new_key()
    proc, address = start_world({}, 9, key)
    try:
        views = [PlayerView(address, i, key, timeout_s=20) for i in range(2)]
        import threading

        out: dict[int, tuple] = {}

        def go(i: int) -> None:
            views[i].reset(0)
            out[i] = views[i].step(np.array([5.0, 5.0], np.float32))

        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        for i in range(2):
            obs, reward, term, trunc, info = out[i]
            assert np.asarray(obs).shape == (5,)
            assert isinstance(reward, float) and isinstance(info, dict)
            assert all(not isinstance(v, dict) for v in info.values())  # no nested per-agent dicts
            # the view has no handle on the environment or the other player
            assert not any(hasattr(views[i], n) for n in ("env", "game", "parallel_env", "other"))
            assert len(views[i].received) == 2
        for v in views:
            v.close()
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
    with pytest.raises(ValueError, match="player"):
        PlayerView(address, 2, key, timeout_s=0.1)
