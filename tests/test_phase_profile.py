"""The per-phase profiler (``smpc_gym.secure.comm.phase``), the benchmark's network model
and the namespace testbed of ``benchmarks/netns.py``.

The profiler is checked for its accounting (nested phases exclusive, rows adding up to
the block) with a fake communicator, and on a real two-party secure MADDPG update: every
byte and round CrypTen counts during an update must be charged to some phase.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch
from script_loader import load_script

from smpc_gym.secure.comm import PhaseProfile, phase, profiling

ROOT = Path(__file__).resolve().parent.parent


class _FakeComm:
    """CrypTen's counter attributes, advanced by hand."""

    def __init__(self) -> None:
        self.comm_bytes, self.comm_rounds, self.comm_time = 0, 0, 0.0

    def send(self, nbytes: int, seconds: float) -> None:
        self.comm_bytes += nbytes
        self.comm_rounds += 1
        self.comm_time += seconds


def test_nested_phases_are_charged_exclusively_and_add_up() -> None:
    comm = _FakeComm()
    with profiling(comm) as prof:
        t0 = time.perf_counter()
        with phase("outer"):
            comm.send(100, 0.5)
            with phase("outer.inner"):
                comm.send(40, 0.25)
                with phase("outer.inner.deep"):
                    comm.send(7, 0.125)
            with phase("outer.inner"):  # entered twice: calls and figures accumulate
                comm.send(3, 0.0)
        inclusive = time.perf_counter() - t0
    p = prof.phases
    assert set(p) == {"outer", "outer.inner", "outer.inner.deep"}
    assert (p["outer"].bytes, p["outer"].rounds, p["outer"].comm_s) == (100, 1, 0.5)
    assert (p["outer.inner"].bytes, p["outer.inner"].rounds) == (43, 2)
    assert p["outer.inner"].calls == 2 and p["outer.inner"].comm_s == 0.25
    assert (p["outer.inner.deep"].bytes, p["outer.inner.deep"].comm_s) == (7, 0.125)
    tot = prof.total()
    assert (tot.bytes, tot.rounds, tot.comm_s) == (150, 4, 0.875)
    assert 0 <= tot.wall_s <= inclusive
    assert all(st.wall_s >= 0 for st in p.values())
    d = prof.as_dict()["outer"]
    assert d["local_s"] == pytest.approx(d["wall_s"] - d["comm_s"])


def test_dealer_bytes_are_charged_to_the_phase_that_used_them() -> None:
    from smpc_gym.secure.comm import charge_dealer, dealer_bytes

    comm = _FakeComm()
    start = dealer_bytes()
    with profiling(comm) as prof, phase("outer"):
        comm.send(100, 0.0)  # party to party
        comm.send(24, 0.0)  # and a dealer reply, counted in the same counter
        charge_dealer(24)
        with phase("outer.inner"):
            comm.send(16, 0.0)
            charge_dealer(16)
    p = prof.phases
    assert (p["outer"].bytes, p["outer"].bytes_dealer) == (124, 24)
    assert (p["outer.inner"].bytes, p["outer.inner"].bytes_dealer) == (16, 16)
    assert prof.total().bytes_dealer == 40 == dealer_bytes() - start
    assert prof.as_dict()["outer"]["bytes_dealer"] == 24


def test_phase_outside_profiling_records_nothing() -> None:
    comm = _FakeComm()
    with phase("forward"):
        comm.send(8, 0.0)
    with profiling(comm) as prof:
        pass
    with phase("forward"):  # after the block: not charged to it
        comm.send(8, 0.0)
    assert prof.phases == {}


def test_profiles_nest_and_only_the_innermost_collects() -> None:
    comm = _FakeComm()
    with profiling(comm) as outer:
        with phase("a"):
            comm.send(1, 0.0)
        with profiling(comm) as inner, phase("b"):
            comm.send(2, 0.0)
        with phase("c"):
            comm.send(4, 0.0)
    assert set(outer.phases) == {"a", "c"} and set(inner.phases) == {"b"}
    assert isinstance(inner, PhaseProfile)


def _profiled_updates(ctx) -> dict:
    """One profiled update per optimiser (tiny networks): phases and the party's totals."""
    from smpc_gym.agents import maddpg
    from smpc_gym.agents import secure_maddpg as sm
    from smpc_gym.secure.comm import dealer_bytes

    torch.set_num_threads(1)
    high = maddpg.action_caps({})
    out = {}
    for optimizer in ("sgd", "adam"):
        cfg = sm.Config(hidden=8, batch_size=8, optimizer=optimizer)
        party = sm.Party(ctx.crypten, ctx.rank, cfg, {}, 0, action_high=high)
        g = torch.Generator().manual_seed(ctx.rank)
        n = 16
        party.replay.add(
            torch.rand(n, 5, generator=g),
            torch.rand(n, 5, generator=g),
            torch.rand(n, 2, generator=g) * high[ctx.rank],
            torch.rand(n, 1, generator=g) * 0.5,
            torch.zeros(n, 1),
        )
        ctx.reset_comm_stats()
        dealt = dealer_bytes()
        with profiling(ctx.comm) as prof:
            party.update(torch.arange(8))
        out[optimizer] = {
            "phases": prof.as_dict(),
            "total": ctx.comm_stats(),
            "dealt": dealer_bytes() - dealt,
        }
    return out


@pytest.mark.slow  # two parties + dealer, one SGD and one Adam update (tiny networks)
def test_every_byte_and_round_of_a_secure_update_is_charged_to_a_phase() -> None:
    from smpc_gym.secure.runtime import PartyConfig, launch_local

    res = launch_local(_profiled_updates, 2, config=PartyConfig(world_size=2, timeout_s=300))
    for rank, per_opt in enumerate(res):  # party 0 also counts its exchanges with the dealer
        for optimizer, r in per_opt.items():
            ph, where = r["phases"], f"party {rank}, {optimizer}"
            expected = {"input", "forward", "forward.relu_compare", "forward.sigmoid"}
            expected |= {"backward", "optimiser", "targets", "loss", "reveal"}
            if optimizer == "adam":
                expected |= {"optimiser.adam_rsqrt_start", "optimiser.adam_newton"}
            assert expected <= set(ph), (where, sorted(ph))
            charged = {k: sum(p[k] for p in ph.values()) for k in ("bytes", "rounds")}
            assert charged == r["total"], where
            # the dealer's part too: only party 0 talks to the dealer
            dealer_part = sum(p["bytes_dealer"] for p in ph.values())
            assert dealer_part == r["dealt"], where
            assert (dealer_part > 0) == (rank == 0), where
            assert r["total"]["rounds"] > 0
            assert ph["forward.relu_compare"]["rounds"] > 0 and ph["backward"]["bytes"] > 0


def _bench() -> ModuleType:
    return load_script(ROOT / "benchmarks" / "secure_maddpg.py", "bench_secure_maddpg")


def test_network_model_matches_a_hand_worked_case() -> None:
    predict = _bench().predict_seconds
    # 1 s compute, 100 exchanges at 40 ms RTT (20 ms one way each), 100 MB sent+received
    # between the parties (50 MB each way) at 100 Mbit/s
    assert predict(1.0, 100e6, 100, 100.0, 40.0) == pytest.approx(1.0 + 2.0 + 4.0)
    assert predict(2.0, 5e6, 10, None, 0.0) == 2.0  # no limit, no delay: compute only


def test_sweep_predicts_each_link_from_the_local_run_and_reuses_the_wan(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bench = _bench()
    local = {"seconds": 0.3, "bytes": 60e6, "bytes_dealer": 20e6, "rounds": 200}
    wan = {**local, "seconds": 6.0}
    ran = []

    def fake_link(args, link, rate, rtt, updates=None):  # the model's time, plus 10%
        assert updates == 2  # --sweep-updates, not --updates
        ran.append((rate, rtt))
        pred = bench.predict_seconds(0.3, 40e6, 200, rate, rtt)
        return {"ours_adam": {**local, "seconds": 1.1 * pred}}

    monkeypatch.setattr(bench, "_one_link", fake_link)
    measured = {"local": {"ours_adam": local}, "wan": {"ours_adam": wan}}
    rows = bench._sweep(argparse.Namespace(sweep_updates=2), measured, ["ours_adam"])
    assert len(rows) == len(bench.SWEEP)
    assert bench.LINKS["wan"][:2] not in ran  # the WAN's own run is reused, not repeated
    assert len(ran) == len(bench.SWEEP) - 1
    by_link = {(r["rate_mbit"], r["rtt_ms"]): r for r in rows}
    w = by_link[bench.LINKS["wan"][:2]]
    assert w["measured_s"] == 6.0
    assert w["predicted_s"] == pytest.approx(bench.predict_seconds(0.3, 40e6, 200, 100.0, 40.0))
    other = by_link[(25.0, 40.0)]
    assert other["measured_over_predicted"] == pytest.approx(1.1)
    # the picture: both halves of the sweep against the model's lines
    out = {"network": {"sweep": rows, "ours_adam": {"local": {**local, "measured_s": 0.3}}}}
    bench._plot(out, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_targets_and_the_adam_byte_budget_are_read_from_the_run() -> None:
    bench = _bench()
    out = {
        "ours_sgd": {"ratio_to_plain": 29.0, "bytes": 5e7},
        "ours_adam": {"ratio_to_plain": 61.0, "bytes": 80e6},
    }
    t = bench._targets(out)
    assert t["sgd_ratio"] == {"limit": 30.0, "measured": 29.0, "met": True}
    assert t["adam_ratio"]["met"] is False and t["adam_bytes"]["met"] is False
    assert set(bench._targets({"ours_sgd": out["ours_sgd"]})) == {"sgd_ratio"}
    phases = {
        "forward": {"bytes": 30.0, "bytes_dealer": 10.0},
        "backward": {"bytes": 5.0, "bytes_dealer": 1.0},
        "optimiser": {"bytes": 4.0, "bytes_dealer": 2.0},
        "optimiser.adam_rsqrt_start": {"bytes": 20.0, "bytes_dealer": 8.0},
        "optimiser.adam_newton": {"bytes": 21.0, "bytes_dealer": 9.0},
    }
    b = bench._bytes_budget(phases, 4)
    assert (b["networks"], b["networks_dealer"]) == (35.0, 11.0)
    assert (b["start"], b["newton"], b["optimiser_rest"]) == (20.0, 21.0, 4.0)
    assert b["networks"] + b["start"] + b["newton"] + b["optimiser_rest"] == 80.0
    assert b["newton_bound"] < 1e-5 < b["newton_bound_one_step_fewer"]


def test_cpu_budget_adds_the_processes_and_bounds_the_wall_time() -> None:
    budget = _bench()._cpu_budget
    # party 0: 0.3 + 0.1 s, party 1: 0.2 + 0.1 s, dealer 0.25 + 0.05 s over a 0.8 s
    # update; page faults 4000, 1000, 300 (counts: never added to the seconds)
    b = budget([0.3, 0.1, 4000, 0.25, 0.05, 300], [0.2, 0.1, 1000], 0.8, 0.01)
    assert b["total_s"] == pytest.approx(1.0)
    assert b["total_ratio_to_plain"] == pytest.approx(100.0)
    assert b["cores_busy"] == pytest.approx(1.25)
    assert b["wall_floor_s"] == pytest.approx(1.0 / b["cores"])
    assert b["dealer_user_s"] == 0.25 and b["party1_sys_s"] == 0.1
    assert b["page_faults"] == {"party0": 4000, "party1": 1000, "dealer": 300}
    # no dealer (the TFP opt-out): its columns are None and not counted
    b = budget([0.3, 0.1, 4000], [0.2, 0.1, 1000], 0.5, 0.01)
    assert b["dealer_user_s"] is None and b["total_s"] == pytest.approx(0.7)
    assert b["page_faults"]["dealer"] is None


def _netns() -> ModuleType:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import netns
    finally:
        sys.path.pop(0)
    return netns


def test_relay_paces_each_sender_like_a_link_and_then_delays() -> None:
    schedule = _netns().schedule
    # 1 MB/s uplink, 20 ms one way: a 10 kB packet read at t = 1 s takes 10 ms to send
    free, due = schedule(0.0, 1.0, 10_000, 1e6, 0.02)
    assert (free, due) == (pytest.approx(1.01), pytest.approx(1.03))
    # the next one, read at once, waits for the uplink: no burst credit from idle time
    free, due = schedule(free, 1.0, 10_000, 1e6, 0.02)
    assert (free, due) == (pytest.approx(1.02), pytest.approx(1.04))
    # after a long idle wait it starts when it is read, not earlier
    assert schedule(free, 5.0, 10_000, 1e6, 0.02) == (pytest.approx(5.01), pytest.approx(5.03))
    # no rate limit: only the delay, and the uplink stays free
    assert schedule(0.0, 1.0, 10_000, None, 0.02) == (0.0, pytest.approx(1.02))


@pytest.mark.parametrize("rtt_ms", [0.0, 2.0])
def test_testbed_connects_its_nodes_and_removes_every_namespace(rtt_ms: float) -> None:
    netns = _netns()
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(reason)
    echo = (
        "import socket,sys\n"
        "s=socket.socket();s.bind((sys.argv[1],5001));s.listen(1);print('up',flush=True)\n"
        "c,_=s.accept();c.sendall(c.recv(16)[::-1])\n"
    )
    client = (
        "import socket,sys\n"
        "c=socket.create_connection((sys.argv[1],5001),timeout=10);c.sendall(b'ping')\n"
        "print(c.recv(16).decode())\n"
    )
    with netns.Testbed(2, rate_mbit=50, rtt_ms=rtt_ms, tag="test") as tb:
        names = [n.ns for n in tb.nodes]
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert all(n in listed for n in names)
        srv = subprocess.Popen(
            tb.exec_prefix(1) + [sys.executable, "-c", echo, tb.ip(1)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert srv.stdout is not None and srv.stdout.readline().strip() == "up"
            out = subprocess.run(
                tb.exec_prefix(0) + [sys.executable, "-c", client, tb.ip(1)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.stdout.strip() == "gnip", out.stderr
        finally:
            srv.kill()
            srv.wait(10)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names), listed


def test_benchmark_counts_are_checked() -> None:
    positive = _bench()._positive
    assert positive("3") == 3
    for bad in ("0", "-2", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"bad value '{bad}'"):
            positive(bad)
