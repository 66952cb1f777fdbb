"""The party runtime: real processes, only the sum revealed, failures never hang.

Every test here starts real party processes (spawn + torch.distributed/gloo + CrypTen).
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from smpc_gym.secure.runtime import PartyConfig, PartyError, free_port, launch_local

SIZE = 16


def _secret(rank: int) -> torch.Tensor:
    """Each party's private tensor (only ever created inside that party's process)."""
    g = torch.Generator().manual_seed(1000 + rank)
    return torch.randn(SIZE, generator=g) * 10


def _instrument(ctx) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Record every tensor this party receives through CrypTen's communicator and every
    value it decrypts."""
    received: list[torch.Tensor] = []
    decrypted: list[torch.Tensor] = []
    comm = ctx.comm
    for name in ("recv", "broadcast", "all_reduce", "reduce", "gather", "all_gather", "scatter"):
        orig = getattr(comm, name)

        def wrapped(*a, _orig=orig, **kw):
            out = _orig(*a, **kw)
            for t in out if isinstance(out, list) else [out]:
                if torch.is_tensor(t):
                    received.append(t.detach().clone())
            return out

        setattr(comm, name, wrapped)
    mpc = ctx.crypten.mpc.MPCTensor
    orig_plain = mpc.get_plain_text

    def plain(self, *a, **kw):
        out = orig_plain(self, *a, **kw)
        if out is not None:
            decrypted.append(out.detach().clone())
        return out

    mpc.get_plain_text = plain
    return received, decrypted


def _share_and_sum(ctx):
    """Issue-2 foundation: each party shares its tensor; only the sum is revealed."""
    received, decrypted = _instrument(ctx)
    mine = _secret(ctx.rank)
    shared = [
        ctx.crypten.cryptensor(mine if r == ctx.rank else torch.zeros(SIZE), src=r)
        for r in range(ctx.world_size)
    ]
    held_shares = [s.share.clone() for s in shared]  # this party's shares (ring elements)
    total = shared[0]
    for s in shared[1:]:
        total = total + s
    result = total.get_plain_text()
    return {
        "result": result,
        "held_shares": held_shares,
        "received": received,
        "decrypted": decrypted,
        "stats": ctx.comm_stats(),
    }


def _leaks(secret: torch.Tensor, tensors: list[torch.Tensor]) -> bool:
    """True if any tensor holds ``secret`` in the clear (as floats or as 16-bit fixed point)."""
    enc = (secret * 2**16).round().long()
    for t in tensors:
        if t.numel() != secret.numel():
            continue
        t = t.reshape(-1)
        if t.is_floating_point() and torch.allclose(t.double(), secret.double(), atol=1e-3):
            return True
        if not t.is_floating_point() and (t - enc).abs().max() <= 2:
            return True
    return False


def test_two_parties_reveal_only_the_sum() -> None:
    out = launch_local(_share_and_sum, 2)
    expected = _secret(0) + _secret(1)
    for rank, o in enumerate(out):
        other = _secret(1 - rank)
        torch.testing.assert_close(o["result"], expected, atol=1e-3, rtol=0)
        # the shares this party holds of the other's tensor are not that tensor
        assert not _leaks(other, o["held_shares"])
        # nothing it received in the clear is the other's tensor ...
        assert not _leaks(other, o["received"])
        # ... and the only thing it ever decrypted is the sum
        assert len(o["decrypted"]) == 1
        torch.testing.assert_close(o["decrypted"][0], expected, atol=1e-3, rtol=0)
        assert o["stats"]["bytes"] > 0 and o["stats"]["rounds"] > 0
    # sanity check of the instrument itself: it does flag a plaintext exchange
    assert _leaks(_secret(1), [_secret(1).clone()])
    assert _leaks(_secret(1), [(_secret(1) * 2**16).round().long()])


def _raise_on_rank1(ctx):
    x = ctx.crypten.cryptensor(torch.ones(3), src=0)
    if ctx.rank == 1:
        raise ValueError("holder data file is corrupt")
    return x.get_plain_text()


def test_a_party_that_raises_is_named() -> None:
    with pytest.raises(PartyError, match=r"party 1 raised ValueError: holder data file") as ei:
        launch_local(_raise_on_rank1, 2, config=PartyConfig(2, timeout_s=20))
    assert ei.value.ranks == (1,)


def _killed_mid_run(ctx):
    x = ctx.crypten.cryptensor(torch.ones(3), src=0)
    y = (x + x).get_plain_text()  # one successful exchange first
    if ctx.rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    for _ in range(1000):  # party 0 keeps computing with the dead peer
        y = (x * x).get_plain_text()
    return y


@pytest.mark.timeout(90)
def test_a_killed_party_stops_the_others_within_the_timeout() -> None:
    t0 = time.monotonic()
    with pytest.raises(PartyError, match=r"party 1 was killed by signal SIGKILL") as ei:
        launch_local(_killed_mid_run, 2, config=PartyConfig(2, timeout_s=15))
    assert ei.value.ranks == (1,)
    assert "party 0 then failed" in str(ei.value)  # the survivor errored out, not hung
    assert time.monotonic() - t0 < 15 + 30  # timeout plus process start-up; never a hang


def _hang_on_rank1(ctx):
    x = ctx.crypten.cryptensor(torch.ones(3), src=0)
    if ctx.rank == 1:
        time.sleep(3600)
    return x.get_plain_text()


@pytest.mark.timeout(90)
def test_a_hung_party_makes_the_other_time_out() -> None:
    with pytest.raises(PartyError, match=r"party 1 did not respond") as ei:
        launch_local(_hang_on_rank1, 2, config=PartyConfig(2, timeout_s=3))
    assert "party 0 then failed" in str(ei.value) and "Timed out" in str(ei.value)


def _ttp_product(ctx):
    a = ctx.crypten.cryptensor(_secret(0) if ctx.rank == 0 else torch.zeros(SIZE), src=0)
    b = ctx.crypten.cryptensor(_secret(1) if ctx.rank == 1 else torch.zeros(SIZE), src=1)
    from smpc_gym.secure import runtime

    return ctx.crypten.cfg.mpc.provider, (a * b).get_plain_text(), runtime._MALLOC["tuned"]


def test_ttp_provider_multiplies_with_a_dealer_process() -> None:
    """Also: on glibc every party keeps freed memory for reuse (``keep_freed_memory``)."""
    out = launch_local(_ttp_product, 2, config=PartyConfig(2, provider="TTP", timeout_s=30))
    for provider, prod, tuned in out:
        assert provider == "TTP"
        torch.testing.assert_close(prod, _secret(0) * _secret(1), atol=0.05, rtol=1e-3)
        assert tuned == (platform.libc_ver()[0] == "glibc")


_SEPARATE = textwrap.dedent(
    """
    import sys, torch
    from smpc_gym.secure.runtime import PartyConfig, run_party

    def fn(ctx):
        mine = torch.full((4,), float(ctx.rank + 1))
        xs = [ctx.crypten.cryptensor(mine, src=r) for r in range(ctx.world_size)]
        return (xs[0] + xs[1]).get_plain_text().tolist()

    cfg = PartyConfig.from_env(timeout_s=30)
    print("RESULT", run_party(fn, cfg))
    """
)
_DEALER = (
    "from smpc_gym.secure.runtime import PartyConfig, run_ttp_dealer; "
    "run_ttp_dealer(PartyConfig.from_env(timeout_s=30))"
)


@pytest.mark.timeout(90)
def test_two_separately_started_processes_rendezvous_over_tcp() -> None:
    """Both parties and the default provider's dealer, each started on its own."""
    port = free_port()
    procs = []
    for rank in (0, 1, 2):  # rank 2 = world size: the dealer
        env = dict(
            os.environ,
            SMPC_RANK=str(rank),
            SMPC_WORLD_SIZE="2",
            SMPC_RENDEZVOUS=f"tcp://127.0.0.1:{port}",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _SEPARATE if rank < 2 else _DEALER],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=80) for p in procs]
    for rank, (p, (out, err)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, err[-2000:]
        if rank < 2:
            assert "RESULT [3.0, 3.0, 3.0, 3.0]" in out


def test_config_from_env_and_errors() -> None:
    cfg = PartyConfig.from_env(
        {
            "SMPC_RANK": "1",
            "SMPC_WORLD_SIZE": "3",
            "SMPC_RENDEZVOUS": "tcp://10.0.0.1:29500",
            "SMPC_TIMEOUT": "7.5",
            "SMPC_PROVIDER": "ttp",
        }
    )
    assert (cfg.rank, cfg.world_size, cfg.rendezvous, cfg.timeout_s, cfg.provider) == (
        1,
        3,
        "tcp://10.0.0.1:29500",
        7.5,
        "TTP",
    )
    assert PartyConfig.from_env({"SMPC_WORLD_SIZE": "2"}, rank=0).rank == 0
    with pytest.raises(ValueError, match="SMPC_WORLD_SIZE"):
        PartyConfig.from_env({})
    with pytest.raises(ValueError, match=r"SMPC_RANK='x'"):
        PartyConfig.from_env({"SMPC_RANK": "x", "SMPC_WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="provider must be one of"):
        PartyConfig(2, provider="bogus")
    with pytest.raises(ValueError, match="tfp_player0_sees_all"):
        PartyConfig.from_env({"SMPC_WORLD_SIZE": "2", "SMPC_PROVIDER": "TFP"})
    assert PartyConfig(2).provider == "TTP"
    with pytest.raises(ValueError, match="at least two parties"):
        PartyConfig(1)
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        PartyConfig(2, rendezvous="127.0.0.1:80")


def _record_pid_and_wait(ctx, folder: str):
    with open(os.path.join(folder, f"{ctx.rank}.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(120)  # far longer than the test waits: only the watchdog ends it early


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody has reaped yet counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
@pytest.mark.timeout(120)
def test_parties_stop_when_the_launcher_is_killed(tmp_path) -> None:
    script = tmp_path / "launcher.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {os.path.dirname(__file__)!r})
            from test_secure_runtime import _record_pid_and_wait
            from smpc_gym.secure.runtime import PartyConfig, launch_local
            if __name__ == "__main__":
                launch_local(_record_pid_and_wait, 2, ({str(tmp_path)!r},),
                             config=PartyConfig(2, timeout_s=120))
            """
        )
    )
    launcher = subprocess.Popen([sys.executable, str(script)])
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while len(pids) < 2 and time.monotonic() < deadline:
            pids = [int(p.read_text()) for p in tmp_path.glob("*.pid") if p.read_text()]
            time.sleep(0.2)
        assert len(pids) == 2, "the parties did not start"
        assert not any(_gone(p) for p in pids)
        launcher.kill()  # SIGKILL: no atexit, no daemon clean-up
        launcher.wait()
        deadline = time.monotonic() + 30
        while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_gone(p) for p in pids), "parties kept running after the launcher died"
    finally:
        launcher.kill()
        for p in pids:
            if not _gone(p):
                os.kill(p, signal.SIGKILL)


def _odd_result(ctx, kind: str):
    import numpy as np

    if kind == "ok":
        return {"t": torch.arange(3) * (ctx.rank + 1), "a": np.eye(2), "s": "x", "n": (1, 2.5)}
    return range(3)  # not a type the launcher loads


def test_results_come_back_by_value_and_odd_types_are_refused() -> None:
    import numpy as np

    out = launch_local(_odd_result, 2, ("ok",), config=PartyConfig(2, timeout_s=30))
    assert torch.equal(out[1]["t"], torch.tensor([0, 2, 4]))
    assert isinstance(out[0]["a"], np.ndarray) and np.array_equal(out[0]["a"], np.eye(2))
    assert out[0]["s"] == "x" and out[0]["n"] == (1, 2.5)
    with pytest.raises(PartyError, match="does not load"):
        launch_local(_odd_result, 2, ("odd",), config=PartyConfig(2, timeout_s=30))


def test_the_store_socket_is_closed_once_and_never_a_reused_number(tmp_path) -> None:
    """The rendezvous store may close the listening socket it was handed; shutting down
    must then leave the descriptor number alone (another file may hold it by now)."""
    import socket

    from smpc_gym.secure import runtime

    sock = socket.socket()
    fd = sock.fileno()
    runtime._STORE_SOCKETS.append((sock, os.fstat(fd).st_ino))
    os.close(fd)  # what the store's server does at shutdown
    other = os.open(tmp_path / "other", os.O_CREAT | os.O_RDWR)
    try:
        assert other == fd  # the lowest free number: the socket's old one
        runtime._close_store_sockets()
        assert os.write(other, b"still open") == 10
    finally:
        os.close(other)
    live = socket.socket()
    runtime._STORE_SOCKETS.append((live, os.fstat(live.fileno()).st_ino))
    runtime._close_store_sockets()
    assert live.fileno() == -1 and not runtime._STORE_SOCKETS  # closed by us
