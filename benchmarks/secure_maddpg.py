"""Cost of one secure MADDPG update: ours vs a straightforward CrypTen version vs plaintext.

Two real party processes (the project runtime, one torch thread each) run, on the same
random replay data and the same minibatch indices:

* **ours** — :func:`smpc_gym.agents.secure_maddpg.secure_update` (hand-written stacked
  forward/backward, fused Beaver rounds, reused ReLU masks, Adam or SGD on shares);
* **straightforward** — both players' networks as ``crypten.nn`` modules, updated one
  player after the other with CrypTen autograd, ``crypten.nn.MSELoss`` and
  ``crypten.optim.SGD`` (momentum), in :func:`maddpg.maddpg_update`'s order;

and party 0 times the plaintext EDE update (:func:`maddpg.maddpg_update`) on the same
batch in the same run, in blocks between the rounds of secure updates, so every secure
time is also reported as a ratio to plaintext measured under the same load.

Usage::

    python benchmarks/secure_maddpg.py                 # paper networks, batch 128
    python benchmarks/secure_maddpg.py --updates 5 --optimizer sgd --json
    python benchmarks/secure_maddpg.py --provider tfp_player0_sees_all   # the opt-out

``--provider`` picks where the Beaver triples come from: ``TTP`` (default, the dealer
process, which holds no data; party 0 fetches each triple's ``c`` share from it, one
extra exchange per triple batch, counted in party 0's bytes and rounds) or
``tfp_player0_sees_all`` (party 0 makes them locally and could read every opened value).

The versions are timed interleaved (one update of each per round), so a change of load
on a shared machine hits all of them alike; the ratios are the figures to compare. The
optimisers of ours take turns at going first in a round, because an update is slower
for the same work right after an *Adam* update of ours: in four runs of a copy without
the plaintext blocks and the straightforward updates (8 rounds each), SGD after Adam
took 0.124–0.158 s on average against 0.112–0.127 s after SGD (the first round's SGD
update, which follows Adam's warm-up, left out), Adam after Adam
0.284–0.318 s against 0.248–0.267 s after SGD. The cause is not known; it is not
background work (with ``--profile`` the dealer has answered every earlier request
before an update's clock starts, and a 0.4 s pause before every update left Adam after
Adam at 402 ms against 354 ms after SGD) and not Python's garbage collector (run before
and disabled during every update: 445 against 382 ms). With a fixed order (SGD first)
every SGD update came after an Adam one (the straightforward update and the plaintext
block between) and every Adam update right after an SGD one; with turns each
optimiser's figure averages both neighbours. A training run with Adam alone has an Adam
update before every update.

**Warm-up.** Ours runs ``--warmup`` (3) untimed updates per optimiser first, the
straightforward version one. A party's first updates grow its heap to the working size
of the dealer's pools and the products' buffers, and every first touch of a page is a
minor page fault, charged to system time. Counted per update (``secure_update`` wrapped
with ``getrusage``, 20 SGD updates, on the 2-core VM the records come from): 70k–90k
faults in the first, 3k–9k in each of the next two, a few hundred on average after
that; each party's system time was 0.15–0.3 s in each of the first three updates and
~0.01 s later. Timing from the second update on, as this benchmark did before, put that
transient into a 3-update mean. A training run pays it once in hundreds of updates; the
untimed updates' seconds are reported (``warmup_s``), next to every timed one's
(``updates_s``).

``--profile`` also charges every timed update of ours to its phases (input sharing,
forward, the forward's ReLU comparisons and sigmoid, backward, optimiser and — for Adam —
its ``1/√v`` start and Newton iterations, target updates, loss reveal) and times the
secure action (both actors on one observation); per phase it reports wall seconds, the
part spent inside CrypTen's communication calls (``comm_s``: sending and waiting for the
peer), the rest (``local_s``: local compute plus Python/CrypTen overhead), bytes and
rounds, per update. Phases are exclusive: a nested phase (``forward.relu_compare``) is
not counted again in its parent (``forward``). ``unattributed`` is the update's time
outside every phase.

``--network`` re-runs ours over emulated links, parties (and the dealer) each in their
own network namespace started with the multi-machine launch (``--rank``-style
``run_party`` over ``tcp://``; see ``benchmarks/netns.py``): ``local`` (no limit, the
compute baseline of this launch path), ``lan`` (1 Gbit/s; its 0.5 ms RTT is *not*
emulated — a userspace relay cannot carry 1 Gbit/s here — and is added by the model) and
``wan`` (100 Mbit/s and 40 ms RTT, both emulated). The network model, per update::

    seconds ≈ compute_s + rounds × rtt_s / 2 + ((bytes − bytes_dealer) / 2) / rate_bytes_per_s

(``bytes − bytes_dealer`` is what party 0 sent to plus received from party 1, so half
of it crosses each direction of a full-duplex link; ``rounds`` is CrypTen's count of
communication calls, each an exchange in which both parties send at once and wait for
each other's words: one one-way delay, ``rtt/2``; the dealer's pooled replies are asked
for a refill ahead, so their bytes and latency are left out; its few requests per
update are charged like exchanges). Without ``--network``, ``lan_s``/``wan_s`` are the
model's prediction from the loopback run.

``--json`` prints one JSON object with the keys ``provider`` (the canonical provider name
it ran with), ``ring_backend`` (the exact ring-product kernel the parties picked,
:func:`smpc_gym.secure.ring.ring_backend`: one name if both picked it, else each party's),
``config`` (the arguments), ``targets`` (per target of :data:`TARGETS` this run
measured: ``{"limit", "measured", "met"}``), ``plain_s``
(plaintext EDE seconds per update: at least ``PLAIN_UPDATES`` of them, timed in one
block after each round of secure updates so that the baseline meets the same load as
what it divides, each block after one untimed update), ``plain_blocks_s`` (each block's
seconds per update: their spread is the baseline's noise), and for ``ours_sgd``,
``ours_adam`` (those asked for with ``--optimizer``) and ``straightforward``:
``seconds``, ``ratio_to_plain``, ``bytes`` and ``rounds`` (the mean per timed update,
party 0's CrypTen counters: bytes it sent+received as CrypTen counts them, communication
rounds; the dealer's pooled replies are counted as their correlations are used, not when
a refill arrives: :class:`smpc_gym.secure.dealer.Pools`), plus
``speedup_sgd_vs_straightforward`` / ``speedup_adam_vs_straightforward``
(straightforward seconds / ours); each of the three also has ``updates_s`` (every timed
update's seconds: their spread is the machine's noise), ``warmup_s`` (the untimed
ones') and ``bytes_dealer``: the part of ``bytes`` that went between party 0 and the
dealer (request frames, and the correlations' words as they are used:
:func:`smpc_gym.secure.dealer.dealer_bytes`; 0 under the ``TFP`` opt-out). The rest,
``bytes − bytes_dealer``, is what the two parties exchanged with each other, the
*online* traffic of a deployment in which the dealer's correlations are sent ahead of
time; ``bytes`` is the total, and the figure the targets are read against. Each
``ours_*`` entry also has ``lan_s`` and ``wan_s`` (seconds per update on the LAN / WAN
link) with ``lan_kind`` / ``wan_kind``: ``"measured"`` (emulated in full),
``"measured+predicted_latency"`` (bandwidth emulated, the RTT term added by the model)
or ``"predicted"`` (model only); ``straightforward`` has them too, always
``"predicted"`` from its loopback run (it is not re-run over the emulated links). With
``--profile``: ``profile`` = ``{"ours_<opt>": {"update_s", "phases": {name: {"calls",
"wall_s", "comm_s", "local_s", "bytes", "bytes_dealer", "rounds"}} (per update;
``bytes_dealer`` the phase's dealer traffic),
"unattributed_s", "act": {"seconds", "comm_s", "bytes", "rounds"} (per call), "cpu"},
"plain_act_s", "floor"}``, and for Adam ``bytes_budget``: per update ``networks``,
``start``, ``newton``, ``optimiser_rest`` (the bytes of the networks' passes, of the
start value and the Newton steps of ``1/√v̂``, of the rest of the optimiser), each with
its ``…_dealer`` part, ``newton_steps``, and ``newton_bound`` /
``newton_bound_one_step_fewer`` (the Newton error bound of these steps and of one fewer:
the price of a step less);
where ``cpu`` is the CPU one update uses, per process (``party0_user_s``,
``party0_sys_s``, ``party1_…``, ``dealer_…``: the dealer's, asked from it around each
update; None without a dealer), ``page_faults`` (``party0``, ``party1``, ``dealer``:
minor page faults per update, i.e. first touches of memory, charged to system time;
they fall as a process's heap reaches its working size over its first tens of updates),
``total_s``, ``total_ratio_to_plain``, ``cores`` (of
this machine), ``cores_busy`` (``total_s`` over the update's wall time) and
``wall_floor_s`` / ``wall_floor_ratio_to_plain`` (``total_s / cores``: in a local run,
where every process shares the machine, no update can be faster without less work);
``floor`` says what bounds an update from below on this machine: ``round_trip_s`` (one
exchange of one element between the parties, median), ``ring_matmul_s``,
``float_matmul_s`` and ``ring_over_float_matmul`` (an exact ring product against the
float32 one plaintext uses, both players' hidden layers) and per optimiser
``rounds_x_round_trip_s``, ``latency_ratio_to_plain`` (that over ``plain_s``),
``local_s`` and ``local_ratio_to_plain`` (the phases' ``local_s`` summed: local compute
and overhead with every wait taken out) and ``bytes_outside_optimiser`` (the networks'
passes alone). With
``--network``: ``network`` = ``{"model", "links": {name: {"rate_mbit", "rtt_ms",
"rtt_emulated"}}, "ours_<opt>": {link: {"measured_s", "predicted_s", "bytes",
"bytes_dealer", "rounds"}, "rtt_factor_fit"}}`` (``rtt_factor_fit``: the multiple of
the model's ``rtt/2`` per round that makes it match the WAN measurement; 1.0 if
exact); where namespaces cannot be made, ``network_unavailable`` names why and
``lan_s``/``wan_s`` stay ``"predicted"``. ``--sweep`` (with ``--network``) runs ours over
the :data:`SWEEP` links too, every one with its rate and RTT emulated, and adds
``network.sweep`` (``--sweep-updates`` timed updates after as many untimed ones per
link, 2 by default: the links are slow): one row per link and optimiser,
``{"version", "rate_mbit", "rtt_ms", "measured_s", "predicted_s",
"measured_over_predicted"}`` (the prediction from the ``local`` run's seconds, bytes
and rounds); ``--plot PNG`` draws those rows against the model's lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from smpc_gym.agents import maddpg
from smpc_gym.agents import secure_maddpg as sm
from smpc_gym.secure.comm import PhaseProfile, phase, profiling
from smpc_gym.secure.dealer import dealer_bytes, dealer_usage
from smpc_gym.secure.mpc_nn import correlation_source
from smpc_gym.secure.ring import ring_backend
from smpc_gym.secure.runtime import (
    DEFAULT_PROVIDER,
    PROVIDERS,
    PartyConfig,
    launch_local,
    resolve_provider,
    run_party,
    run_ttp_dealer,
)

SEED = 0
#: The network model (:func:`predict_seconds`), as the JSON's ``network.model`` says it.
MODEL = (
    "seconds = compute_s + rounds * rtt_s / 2 + ((bytes - bytes_dealer) / 2) "
    "/ (rate_mbit * 1e6 / 8)"
)
#: The targets the benchmark reports against (``targets`` in the JSON): an update's time
#: over the plaintext update's, per optimiser, and an Adam update's bytes (``bytes``: party
#: 0's count, dealer traffic included).
TARGETS = {
    "sgd_ratio": ("ours_sgd", "ratio_to_plain", 30.0),
    "adam_ratio": ("ours_adam", "ratio_to_plain", 60.0),
    "adam_bytes": ("ours_adam", "bytes", 75e6),
}
#: emulated links: name -> (rate in Mbit/s or None, RTT in ms, RTT emulated?)
LINKS = {"local": (None, 0.0, True), "lan": (1000.0, 0.5, False), "wan": (100.0, 40.0, True)}
NET_TIMEOUT_S = 1200  # bound on one emulated-link run (all parties)
#: ``--sweep``'s links, ``(rate Mbit/s, RTT ms)``, both emulated on every one: the RTT
#: varied at 100 Mbit/s and the rate at a 40 ms RTT (the WAN, run once for both), so each
#: term of the network model is checked over a range and not at one point
SWEEP = ((100.0, 10.0), (100.0, 40.0), (100.0, 100.0), (25.0, 40.0), (50.0, 40.0))
#: the value each half of the sweep holds fixed
SWEEP_FIXED = {"rate_mbit": 100.0, "rtt_ms": 40.0}


def _data(n: int, high: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(2):
        out.append(
            {
                "obs": torch.rand(n, 5, generator=g),
                "next_obs": torch.rand(n, 5, generator=g),
                "action": torch.rand(n, 2, generator=g) * high[i],
                "reward": torch.rand(n, 1, generator=g) * 0.5,
                "done": torch.zeros(n, 1),
            }
        )
    return out


def _fill(replay: maddpg.PlayerReplay, d: dict[str, torch.Tensor]) -> None:
    replay.add(d["obs"], d["next_obs"], d["action"], d["reward"], d["done"])


#: Untimed updates of ours before the timed ones: the parties' heaps are still growing
#: (page faults) through the first three (module doc, "Warm-up").
WARMUP = 3


def _positive(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"bad value {text!r}: expected an int >= 1")
    return value


#: The fewest plaintext updates the baseline is averaged over (each takes a few ms; with
#: 3 the baseline moved by 2x between runs, and every ratio with it).
PLAIN_UPDATES = 30


class _PlainTimer:
    """The plaintext EDE update, timed in blocks between the secure rounds.

    One block after each round of secure updates (:func:`_party`), so the baseline meets
    the same drift of the machine's load as the versions it divides; each block starts
    with one untimed update (the secure round before it leaves the caches cold).
    """

    def __init__(self, cfg: sm.Config, data) -> None:
        self.cfg = cfg.plain()
        self.algo = maddpg.MADDPG(self.cfg, {}, SEED)
        for i in range(2):
            _fill(self.algo.replay[i], data[i])
        idx = maddpg.sample_indices(self.algo.replay[0].size, cfg.batch_size, self.algo.sampler)
        self.batch = [r.get(idx) for r in self.algo.replay]
        self.blocks: list[float] = []  # seconds per update, one entry per block

    def _update(self) -> None:
        a = self.algo
        maddpg.maddpg_update(a.nets, a.opts, self.batch, self.cfg, a.sharing)

    def block(self, n: int) -> None:
        """Time ``n`` updates after one untimed one."""
        self._update()
        t = time.perf_counter()
        for _ in range(n):
            self._update()
        self.blocks.append((time.perf_counter() - t) / n)

    def seconds(self) -> float:
        """Seconds per update over every block (blocks are of equal size)."""
        return sum(self.blocks) / len(self.blocks)


def _plain_act_seconds(cfg: sm.Config, high: list[torch.Tensor], n: int = 20) -> float:
    """Both players' plaintext actors on one 10-feature observation (seconds per call)."""
    g = torch.Generator().manual_seed(0)
    actors = [maddpg.make_actor(2 * sm.N_FEATURES, cfg.hidden, high[i], g) for i in range(2)]
    x = torch.rand(1, 2 * sm.N_FEATURES, generator=g)
    with torch.no_grad():
        for a in actors:
            a(x)
        t = time.perf_counter()
        for _ in range(n):
            for a in actors:
                a(x)
    return (time.perf_counter() - t) / n


def _straightforward(ctx, cfg: sm.Config, batch_cols, high):
    """Both players' crypten.nn networks, one after the other, CrypTen autograd + SGD."""
    crypten = ctx.crypten
    nn = crypten.nn
    h = cfg.hidden

    def actor():
        return nn.Sequential(
            nn.Linear(10, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2), nn.Sigmoid()
        ).encrypt(src=0)

    def critic():
        return nn.Sequential(
            nn.Linear(14, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 1)
        ).encrypt(src=0)

    actors, critics = [actor() for _ in range(2)], [critic() for _ in range(2)]
    t_actors, t_critics = [actor() for _ in range(2)], [critic() for _ in range(2)]
    a_opt = [crypten.optim.SGD(a.parameters(), lr=cfg.actor_lr, momentum=0.9) for a in actors]
    c_opt = [crypten.optim.SGD(c.parameters(), lr=cfg.critic_lr, momentum=0.9) for c in critics]
    loss_fn = nn.MSELoss()
    # each player shares its own columns
    cols = [
        crypten.cryptensor(
            batch_cols[i] if i == ctx.rank else torch.zeros_like(batch_cols[i]), src=i
        )
        for i in range(2)
    ]
    s = crypten.cat([c[:, 0:5] for c in cols], dim=1)
    s2 = crypten.cat([c[:, 5:10] for c in cols], dim=1)
    a = [c[:, 10:12] for c in cols]
    r = [c[:, 12:13] for c in cols]
    for m in actors + critics + t_actors + t_critics:
        m.train()
    ctx.reset_comm_stats()
    dealt = dealer_bytes()
    t0 = time.perf_counter()
    for i in range(2):  # critic updates, one player after the other
        with crypten.no_grad():
            a2 = [t_actors[j](s2) for j in range(2)]
            q2 = t_critics[i](crypten.cat([s2, *a2], dim=1))
            y = r[i] + q2 * cfg.gamma
        q = critics[i](crypten.cat([s, *a], dim=1))
        loss = loss_fn(q, y)
        c_opt[i].zero_grad()
        loss.backward()
        c_opt[i].step()
    for i in range(2):  # actor updates
        own = actors[i](s)
        acts = [own if j == i else a[j] for j in range(2)]
        loss = -critics[i](crypten.cat([s, *acts], dim=1)).mean()
        a_opt[i].zero_grad()
        loss.backward()
        a_opt[i].step()
    with crypten.no_grad():  # soft target updates
        for src, dst in zip(actors + critics, t_actors + t_critics, strict=True):
            for p, tp in zip(src.parameters(), dst.parameters(), strict=True):
                tp.share = (tp.mul(1 - cfg.tau) + p.mul(cfg.tau)).share
    return time.perf_counter() - t0, _comm_stats(ctx, dealt)


def _comm_stats(ctx, dealt: float) -> dict:
    """Party 0's counters since the last reset, with ``dealer_bytes``: the part of its
    bytes that was dealer traffic since :func:`dealer_bytes` read ``dealt``."""
    return {**ctx.comm_stats(), "dealer_bytes": dealer_bytes() - dealt}


#: Usage figures per process in the CPU budget: user seconds, system seconds, minor faults.
USAGE = 3


def _cpu_now(dealer: bool) -> list[float]:
    """This process's CPU seconds so far (user, system) and minor page faults, then the
    dealer's if asked."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return [use.ru_utime, use.ru_stime, use.ru_minflt, *(dealer_usage() if dealer else ())]


def _timed_update(
    ctx, party: sm.Party, prof: PhaseProfile | None = None, cpu: list[float] | None = None
) -> tuple[float, dict[str, int]]:
    """One update on a fresh minibatch: (seconds, party's comm counters); phases -> prof.

    With ``cpu`` (profile mode) the update's :data:`USAGE` figures are added to it:
    this party's and, if ``cpu`` has room for two processes (party 0 with the dealer),
    the dealer's (its reply to the usage request comes after every earlier request,
    prefetches included; asked outside the timed and counted window).
    """
    idx = maddpg.sample_indices(party.replay.size, party.cfg.batch_size, party.sampler)
    dealer = cpu is not None and len(cpu) == 2 * USAGE  # room for the dealer's figures
    ctx.barrier()
    before = _cpu_now(dealer) if cpu is not None else []
    ctx.reset_comm_stats()
    dealt = dealer_bytes()
    if prof is None:
        t = time.perf_counter()
        party.update(idx)
        return time.perf_counter() - t, _comm_stats(ctx, dealt)
    with profiling(ctx.comm) as p:
        t = time.perf_counter()
        party.update(idx)
        dt = time.perf_counter() - t
    stats = _comm_stats(ctx, dealt)
    if cpu is not None:
        ctx.barrier()  # the peer's work of this update is done: the dealer's is asked for
        for i, (a, b) in enumerate(zip(before, _cpu_now(dealer), strict=True)):
            cpu[i] += b - a
    for name, st in p.phases.items():  # accumulate into the caller's profile
        prof.phases.setdefault(name, type(st)()).add(st)
    return dt, stats


def _act_profile(ctx, party: sm.Party, n: int = 5) -> dict[str, float]:
    """Per call of :meth:`Party.secure_act` (after one warm-up): seconds, comm, bytes, rounds."""
    obs = party.replay.get(torch.arange(1)).obs.numpy().reshape(-1)
    party.secure_act(obs)
    ctx.barrier()
    ctx.reset_comm_stats()
    with profiling(ctx.comm) as p:
        t = time.perf_counter()
        for _ in range(n):
            with phase("act"):
                party.secure_act(obs)
        dt = time.perf_counter() - t
    tot = p.total()
    return {"seconds": dt / n, "comm_s": tot.comm_s / n, "bytes": tot.bytes / n,
            "rounds": tot.rounds / n}  # fmt: skip


def _floor_parts(ctx, hidden: int, batch: int, n: int = 50) -> dict[str, float]:
    """What bounds a secure update from below on this machine, measured (both parties).

    ``round_trip_s``: the median time of one exchange of a single ring element between
    the two parties (what every round costs at least); ``ring_matmul_s`` /
    ``float_matmul_s``: the median time of one exact ring product
    (:func:`smpc_gym.secure.ring.ring_matmul`) and of the float32 product plaintext uses,
    for both players' hidden layers (``[2, batch, hidden] @ [2, hidden, hidden]``, one
    thread). A Beaver matmul takes two ring products per party.
    """
    from smpc_gym.secure.ring import ring_matmul
    from smpc_gym.secure.trunc import _exchange

    one = torch.zeros(1, dtype=torch.int64)
    times = []
    for _ in range(n):
        ctx.barrier()
        t = time.perf_counter()
        _exchange(one, ctx.rank, log=False)
        times.append(time.perf_counter() - t)
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-(2**62), 2**62, (2, batch, hidden), generator=g)
    b = torch.randint(-(2**62), 2**62, (2, hidden, hidden), generator=g)
    fa, fb = a.float(), b.float()

    def median_s(fn) -> float:
        fn()
        runs = []
        for _ in range(20):
            t = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t)
        return float(torch.tensor(runs).median())

    return {
        "round_trip_s": float(torch.tensor(times).median()),
        "ring_matmul_s": median_s(lambda: ring_matmul(a, b)),
        "float_matmul_s": median_s(lambda: torch.matmul(fa, fb)),
    }


def _cpu_budget(cpu0: list[float], cpu1: list[float], update_s: float, plain: float) -> dict:
    """The CPU one update uses on this machine, per process and in total (seconds).

    ``cpu0``: party 0's user and system seconds and minor page faults, then the dealer's
    if there is one; ``cpu1``: party 1's. The faults are counts, not in ``total_s``.

    ``cores_busy`` = total CPU seconds over the update's wall seconds: near the machine's
    core count, the update is bound by CPU, not by waiting; ``total_s / cores`` is then
    the wall time this machine cannot go below without less work.
    """
    dealer = len(cpu0) == 2 * USAGE
    out = {
        "party0_user_s": cpu0[0], "party0_sys_s": cpu0[1],
        "party1_user_s": cpu1[0], "party1_sys_s": cpu1[1],
        "dealer_user_s": cpu0[USAGE] if dealer else None,
        "dealer_sys_s": cpu0[USAGE + 1] if dealer else None,
    }  # fmt: skip
    total = sum(v for v in out.values() if v is not None)
    out["page_faults"] = {
        "party0": cpu0[2], "party1": cpu1[2], "dealer": cpu0[USAGE + 2] if dealer else None,
    }  # fmt: skip
    cores = os.cpu_count() or 1
    out.update(
        total_s=total,
        total_ratio_to_plain=total / plain,
        cores=cores,
        cores_busy=total / update_s,
        wall_floor_s=total / cores,
        wall_floor_ratio_to_plain=total / cores / plain,
    )
    return out


def _profile_summary(prof: PhaseProfile, seconds: list[float]) -> dict:
    """Per-update figures of a profile accumulated over ``len(seconds)`` updates."""
    n = len(seconds)
    phases = {k: {f: v / n for f, v in st.as_dict().items()} for k, st in prof.phases.items()}
    update_s = sum(seconds) / n
    return {
        "update_s": update_s,
        "phases": phases,
        "unattributed_s": update_s - prof.total().wall_s / n,
    }


def _party(
    ctx,
    cfg: sm.Config,
    data,
    n_updates: int,
    high,
    do_plain: bool,
    optimizers,
    profile=False,
    warmup: int = WARMUP,
):
    torch.set_num_threads(1)
    parties = {}
    warm: dict[str, list[float]] = {}
    for opt in optimizers:
        party = sm.Party(
            ctx.crypten,
            ctx.rank,
            dataclasses.replace(cfg, optimizer=opt),
            {},
            SEED,
            action_high=high,
        )
        _fill(party.replay, data[ctx.rank])
        warm[f"ours_{opt}"] = [_timed_update(ctx, party)[0] for _ in range(warmup)]  # untimed
        parties[opt] = party
    own = next(iter(parties.values())).replay.get(torch.arange(cfg.batch_size))
    cols = torch.cat([own.obs, own.next_obs, own.action / high[ctx.rank], own.reward], dim=1)
    # interleaved: one update of each version per round, so load drift hits all alike
    rows: dict[str, list] = {f"ours_{opt}": [] for opt in optimizers}
    rows["straightforward"] = []
    # the straightforward version's first update (CrypTen's first use of its layers) is not
    # timed either
    warm["straightforward"] = [_straightforward(ctx, cfg, [cols, cols], high)[0]]
    profs = {opt: PhaseProfile(ctx.comm) if profile else None for opt in optimizers}
    # user, sys, faults, and in party 0 with the dealer: the dealer's user, sys, faults
    has_dealer = ctx.rank == 0 and correlation_source() == "TTP"
    cpus = {opt: [0.0] * (2 * USAGE if has_dealer else USAGE) for opt in optimizers}
    # the plaintext update takes milliseconds: at least PLAIN_UPDATES of them, in one
    # block per round (party 0 only; the others wait for its next secure update)
    timer = _PlainTimer(cfg, data) if do_plain and ctx.rank == 0 else None
    block = -(-PLAIN_UPDATES // n_updates)
    order = list(parties)
    for i in range(n_updates):
        for opt in order[i % len(order) :] + order[: i % len(order)]:  # take turns first
            party = parties[opt]
            rows[f"ours_{opt}"].append(
                _timed_update(ctx, party, profs[opt], cpus[opt] if profile else None)
            )
        ctx.barrier()
        rows["straightforward"].append(_straightforward(ctx, cfg, [cols, cols], high))
        if timer is not None:
            timer.block(block)
    plain = timer.seconds() if timer is not None else None
    prof_out = None
    if profile:
        act = _act_profile(ctx, next(iter(parties.values())))
        prof_out = {
            f"ours_{opt}": {
                **_profile_summary(pr, [r[0] for r in rows[f"ours_{opt}"]]),
                "act": act,
                "cpu_s": [c / n_updates for c in cpus[opt]],
            }
            for opt, pr in profs.items()
            if pr is not None
        }
        prof_out["floor"] = _floor_parts(ctx, cfg.hidden, cfg.batch_size)
        if ctx.rank == 0:
            prof_out["plain_act_s"] = _plain_act_seconds(cfg, high)

    def summary(r, warm_s):
        n = len(r)
        return {
            "seconds": sum(x[0] for x in r) / n,
            "bytes": sum(x[1]["bytes"] for x in r) / n,
            "rounds": sum(x[1]["rounds"] for x in r) / n,
            "bytes_dealer": sum(x[1]["dealer_bytes"] for x in r) / n,
            "updates_s": [x[0] for x in r],
            "warmup_s": warm_s,
        }

    blocks = timer.blocks if timer is not None else None
    return {
        **{k: summary(v, warm[k]) for k, v in rows.items()},
        "ring_backend": ring_backend(),
        "plain_s": plain,
        "plain_blocks_s": blocks,
        "profile": prof_out,
    }


def _backends(picks: list[str]) -> str:
    """The parties' ring-product kernels: ``"int64"`` if both picked it, else each one's."""
    if len(set(picks)) == 1:
        return picks[0]
    return ", ".join(f"party {i}: {p}" for i, p in enumerate(picks))


# ----------------------------------------------------------------------------- network


def predict_seconds(
    compute_s: float, peer_bytes: float, rounds: float, rate_mbit: float | None, rtt_ms: float
) -> float:
    """The network model: ``compute_s + rounds·rtt/2 + (peer_bytes/2)/rate`` (seconds per
    update; :data:`MODEL`).

    ``peer_bytes`` is what party 0 sent to and received from party 1 (``bytes −
    bytes_dealer``: half of it per direction of a full-duplex link), ``rate_mbit`` the
    per-direction rate (``None``: no limit). Each round is one exchange in which both
    parties send at once and each waits for the other's words: one one-way delay,
    ``rtt/2``. The dealer's pooled replies are asked for a refill ahead (prefetch), so
    neither their bytes nor their latency are on the update's path.
    """
    wire = 0.0 if rate_mbit is None else (peer_bytes / 2) / (rate_mbit * 1e6 / 8)
    return compute_s + rounds * rtt_ms / 2e3 + wire


def _predict_run(
    run: dict, rate_mbit: float | None, rtt_ms: float, compute_s: float | None = None
) -> float:
    """:func:`predict_seconds` for a run's counters (``bytes``, ``bytes_dealer``,
    ``rounds``; ``compute_s`` defaults to its ``seconds``)."""
    peer = run["bytes"] - run.get("bytes_dealer", 0.0)
    compute = run["seconds"] if compute_s is None else compute_s
    return predict_seconds(compute, peer, run["rounds"], rate_mbit, rtt_ms)


def _net_party(ctx, cfg: sm.Config, data, n_updates: int, high, optimizers, warmup: int = WARMUP):
    """Ours only, per optimiser: ``warmup`` untimed updates, then ``n_updates`` timed ones."""
    torch.set_num_threads(1)
    out = {}
    for opt in optimizers:
        party = sm.Party(
            ctx.crypten, ctx.rank, dataclasses.replace(cfg, optimizer=opt), {}, SEED,
            action_high=high,
        )  # fmt: skip
        _fill(party.replay, data[ctx.rank])
        for _ in range(warmup):
            _timed_update(ctx, party)
        r = [_timed_update(ctx, party) for _ in range(n_updates)]
        out[f"ours_{opt}"] = {
            "seconds": sum(x[0] for x in r) / n_updates,
            "bytes": sum(x[1]["bytes"] for x in r) / n_updates,
            "bytes_dealer": sum(x[1]["dealer_bytes"] for x in r) / n_updates,
            "rounds": sum(x[1]["rounds"] for x in r) / n_updates,
        }
    return out


def _net_role(args, cfg: sm.Config, data, high, optimizers) -> None:
    """Run as one process of an emulated-link run (started by :func:`_network_runs`)."""
    pc = PartyConfig(
        world_size=2, rank=args.net_party, rendezvous=args.rendezvous, timeout_s=NET_TIMEOUT_S,
        provider=args.provider,
    )  # fmt: skip
    if args.net_party == 2:
        run_ttp_dealer(pc)
        return
    res = run_party(_net_party, pc, (cfg, data, args.updates, high, optimizers, args.warmup))
    if args.net_party == 0:
        print("NETRESULT " + json.dumps(res), flush=True)


def _one_link(args, link: str, rate: float | None, rtt: float, updates: int | None = None) -> dict:
    """Start the parties (and dealer) in namespaces joined by a link of ``rate`` Mbit/s
    (None: no limit) and ``rtt`` ms added round-trip time (0: none); party 0's figures.
    ``link`` names it (in the namespaces' names and errors); ``updates``: timed updates
    and warm-up updates each (default: ``--updates`` and ``--warmup``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from netns import Testbed

    n = 3 if args.provider == DEFAULT_PROVIDER else 2
    base = [
        sys.executable, str(Path(__file__).resolve()), "--hidden", str(args.hidden),
        "--batch", str(args.batch), "--updates", str(updates or args.updates), "--warmup",
        str(updates or args.warmup), "--optimizer", args.optimizer, "--provider", args.provider,
    ]  # fmt: skip
    with Testbed(n, rate_mbit=rate, rtt_ms=rtt, tag=link) as tb:
        rdv = f"tcp://{tb.ip(0)}:29500"
        procs = []
        try:
            for k in range(n):
                env = {**os.environ, "GLOO_SOCKET_IFNAME": tb.ifname(k)}
                cmd = tb.exec_prefix(k) + base + ["--net-party", str(k), "--rendezvous", rdv]
                procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
                if k == 0:
                    time.sleep(1.0)  # rank 0 hosts the rendezvous store
            out, _ = procs[0].communicate(timeout=NET_TIMEOUT_S)
            for p in procs[1:]:
                p.communicate(timeout=60)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
    lines = [x for x in out.splitlines() if x.startswith("NETRESULT ")]
    if procs[0].returncode != 0 or not lines:
        raise RuntimeError(f"emulated {link} run failed (party 0 exit {procs[0].returncode})")
    return json.loads(lines[-1][len("NETRESULT ") :])


def _network(args, out: dict, optimizers) -> None:
    """Fill ``lan_s``/``wan_s`` (and ``network`` with ``--network``) into ``out``."""
    keys = [f"ours_{o}" for o in optimizers]
    measured: dict[str, dict] = {}
    if args.network:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from netns import unavailable

        reason = unavailable()
        if reason is None:
            for link, (rate, rtt, emulated) in LINKS.items():
                measured[link] = _one_link(args, link, rate, rtt if emulated else 0.0)
        else:  # say so, and give the model alone
            print(f"--network: cannot emulate links here ({reason}); model only", file=sys.stderr)
            out["network_unavailable"] = reason
    net: dict = {
        "model": MODEL,
        "links": {
            k: {"rate_mbit": r, "rtt_ms": t, "rtt_emulated": e} for k, (r, t, e) in LINKS.items()
        },
    }
    for key in keys:
        base = measured["local"][key] if measured else out[key]
        compute_s, rounds = base["seconds"], base["rounds"]
        per: dict = {}
        for link, (rate, rtt, _) in LINKS.items():
            row = {"predicted_s": _predict_run(base, rate, rtt)}
            if measured:
                m = measured[link][key]
                row.update(
                    measured_s=m["seconds"],
                    bytes=m["bytes"],
                    bytes_dealer=m["bytes_dealer"],
                    rounds=m["rounds"],
                )
            per[link] = row
        for link in ("lan", "wan"):
            _, rtt, emulated = LINKS[link]
            if not measured:
                out[key][f"{link}_s"], out[key][f"{link}_kind"] = (
                    per[link]["predicted_s"],
                    "predicted",
                )
            elif emulated:
                out[key][f"{link}_s"], out[key][f"{link}_kind"] = (
                    per[link]["measured_s"],
                    "measured",
                )
            else:
                out[key][f"{link}_s"] = per[link]["measured_s"] + rounds * rtt / 2e3
                out[key][f"{link}_kind"] = "measured+predicted_latency"
        net[key] = per
        if measured:
            rate, rtt, _ = LINKS["wan"]
            wire = _predict_run(base, rate, 0.0, compute_s=0.0)  # the bytes' time alone
            lat = per["wan"]["measured_s"] - compute_s - wire
            # 1.0: the model's rtt/2 per round exactly; below: the rounds overlap more
            net[key]["rtt_factor_fit"] = lat / (rounds * rtt / 2e3) if rounds else None
    if measured:
        out["network"] = net
        if args.sweep:
            net["sweep"] = _sweep(args, measured, keys)
    sf = out.get("straightforward")
    if sf is not None:  # the model only: its ~900 rounds over the WAN would take minutes
        for link in ("lan", "wan"):
            rate, rtt, _ = LINKS[link]
            sf[f"{link}_s"] = _predict_run(sf, rate, rtt)
            sf[f"{link}_kind"] = "predicted"


def _sweep(args, measured: dict, keys: list[str]) -> list[dict]:
    """Ours over the :data:`SWEEP` links, each row measured beside the network model's
    prediction from the ``local`` run (``measured``: the :data:`LINKS` runs; the WAN's
    is reused where a sweep link is the WAN)."""
    rows, wan = [], LINKS["wan"][:2]
    for i, (rate, rtt) in enumerate(SWEEP):
        if (rate, rtt) == wan:
            got = measured["wan"]
        else:
            print(f"--sweep: {rate:g} Mbit/s, {rtt:g} ms RTT", file=sys.stderr, flush=True)
            got = _one_link(args, f"sw{i}", rate, rtt, args.sweep_updates)
        for key in keys:
            m, pred = got[key], _predict_run(measured["local"][key], rate, rtt)
            rows.append(
                {
                    "version": key,
                    "rate_mbit": rate,
                    "rtt_ms": rtt,
                    "measured_s": m["seconds"],
                    "predicted_s": pred,
                    "measured_over_predicted": m["seconds"] / pred,
                }
            )
    return rows


def _plot(out: dict, path: Path) -> None:
    """Seconds per update against the RTT (at the sweep's 100 Mbit/s) and against the
    rate (at its 40 ms RTT): measured points, the network model's lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = out["network"]["sweep"]
    local = {k: out["network"][k]["local"] for k in out["network"] if k.startswith("ours_")}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, colour in (("ours_sgd", "tab:blue"), ("ours_adam", "tab:orange")):
        if key not in local:
            continue
        base = local[key]
        own = [r for r in rows if r["version"] == key]
        label = key.replace("ours_", "ours, ").replace("sgd", "SGD").replace("adam", "Adam")
        for ax, fixed, vary in ((axes[0], "rate_mbit", "rtt_ms"), (axes[1], "rtt_ms", "rate_mbit")):
            value = SWEEP_FIXED[fixed]
            pts = sorted((r[vary], r["measured_s"]) for r in own if r[fixed] == value)
            xs = [x for x, _ in pts]
            lo, hi = min(xs), max(xs)
            grid = [lo + (hi - lo) * i / 50 for i in range(51)]
            model = [
                _predict_run(
                    base,
                    x if vary == "rate_mbit" else value,
                    x if vary == "rtt_ms" else value,
                    compute_s=base["measured_s"],
                )
                for x in grid
            ]
            ax.plot(grid, model, color=colour, lw=1, label=f"{label}: model")
            ax.plot(xs, [y for _, y in pts], "o", color=colour, label=f"{label}: measured")
    axes[0].set(
        xlabel="round-trip time (ms)",
        ylabel="seconds per update",
        title=f"against latency, at {SWEEP_FIXED['rate_mbit']:g} Mbit/s",
    )
    axes[1].set(
        xlabel="rate (Mbit/s)",
        ylabel="seconds per update",
        title=f"against bandwidth, at {SWEEP_FIXED['rtt_ms']:g} ms RTT",
    )
    for ax in axes:
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("secure MADDPG update over emulated links: measured vs the network model")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    """Run the benchmark and print the table (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--updates", type=_positive, default=3, help="timed updates per version")
    p.add_argument(
        "--warmup",
        type=_positive,
        default=WARMUP,
        help=f"untimed updates of ours before the timed ones (default {WARMUP}; module doc)",
    )
    p.add_argument(
        "--optimizer",
        choices=("both", "sgd", "adam"),
        default="both",
        help="our optimiser(s) (the straightforward version always uses CrypTen SGD)",
    )
    p.add_argument(
        "--provider",
        type=resolve_provider,
        default=DEFAULT_PROVIDER,
        help=f"Beaver-triple provider, one of {PROVIDERS} (default {DEFAULT_PROVIDER})",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--profile", action="store_true", help="per-phase profile of ours")
    p.add_argument(
        "--network",
        action="store_true",
        help="also run ours over emulated LAN/WAN links in network namespaces (needs root)",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="with --network: also over the SWEEP links (RTT 10-100 ms, 25-100 Mbit/s)",
    )
    p.add_argument(
        "--sweep-updates",
        type=_positive,
        default=2,
        help="timed (and as many untimed) updates per version on each --sweep link (default 2)",
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PNG",
        help="with --sweep: draw seconds per update against RTT and rate into this file",
    )
    p.add_argument("--net-party", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--rendezvous", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.sweep and not args.network:
        p.error("--sweep needs --network (its predictions start from the namespaces' local run)")
    if args.plot is not None and not args.sweep:
        p.error("--plot draws the --sweep links: add --sweep")
    torch.set_num_threads(1)
    optimizers = ("sgd", "adam") if args.optimizer == "both" else (args.optimizer,)
    cfg = sm.Config(hidden=args.hidden, batch_size=args.batch, reveal_losses=False)
    high = maddpg.action_caps({})
    data = _data(max(2 * args.batch, 256), high)
    if args.net_party is not None:
        _net_role(args, cfg, data, high, optimizers)
        return
    both = launch_local(
        _party,
        2,
        (cfg, data, args.updates, high, True, optimizers, args.profile, args.warmup),
        config=PartyConfig(world_size=2, timeout_s=600, provider=args.provider),
    )
    res = both[0]
    plain = res["plain_s"]
    config = {k: v for k, v in vars(args).items() if k not in ("net_party", "rendezvous")}
    config["plot"] = None if args.plot is None else str(args.plot)
    out = {
        "provider": args.provider,
        "ring_backend": _backends([r["ring_backend"] for r in both]),
        "config": config,
        "plain_s": plain,
        "plain_blocks_s": res["plain_blocks_s"],
    }
    keys = [f"ours_{o}" for o in optimizers] + ["straightforward"]
    for k in keys:
        out[k] = {**res[k], "ratio_to_plain": res[k]["seconds"] / plain}
    for o in optimizers:
        out[f"speedup_{o}_vs_straightforward"] = (
            res["straightforward"]["seconds"] / res[f"ours_{o}"]["seconds"]
        )
    if res["profile"] is not None:
        out["profile"] = res["profile"]
        for o in optimizers:
            out["profile"][f"ours_{o}"]["cpu"] = _cpu_budget(
                res["profile"][f"ours_{o}"].pop("cpu_s"),
                both[1]["profile"][f"ours_{o}"]["cpu_s"],
                res["profile"][f"ours_{o}"]["update_s"],
                plain,
            )
        floor = out["profile"]["floor"]
        floor["ring_over_float_matmul"] = floor["ring_matmul_s"] / floor["float_matmul_s"]
        for o in optimizers:
            ours = out[f"ours_{o}"]
            phases = out["profile"][f"ours_{o}"]["phases"]
            local_s = sum(v["local_s"] for v in phases.values())
            floor[f"ours_{o}"] = {
                # every round waits at least one round trip
                "rounds_x_round_trip_s": ours["rounds"] * floor["round_trip_s"],
                "latency_ratio_to_plain": ours["rounds"] * floor["round_trip_s"] / plain,
                # the parties' own work, with every wait for the peer taken out
                "local_s": local_s,
                "local_ratio_to_plain": local_s / plain,
                # what the networks' passes send, whatever the optimiser does
                "bytes_outside_optimiser": sum(phases[k]["bytes"] for k in _network_phases(phases)),
            }
    out["targets"] = _targets(out)
    if "profile" in out and "ours_adam" in out["profile"]:
        out["profile"]["ours_adam"]["bytes_budget"] = _bytes_budget(
            out["profile"]["ours_adam"]["phases"], cfg.adam_init_iters
        )
    _network(args, out, optimizers)
    if args.plot is not None and "sweep" in out.get("network", {}):
        _plot(out, args.plot)
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    print(
        f"secure MADDPG update, actor 10-{args.hidden}-{args.hidden}-2, critic "
        f"14-{args.hidden}-{args.hidden}-1, batch {args.batch}, 2 parties, 1 thread each, "
        f"{args.updates} timed updates per version (interleaved) after {args.warmup} untimed "
        f"ones of ours, provider {args.provider}, ring products on {out['ring_backend']}"
    )
    print(f"{'version':<24}{'s/update':>10}{'x plain':>10}{'MB':>9}{'rounds':>8}{'speed-up':>10}")
    print(f"{'plaintext EDE':<24}{plain:>10.4f}{1.0:>10.1f}{0:>9.1f}{0:>8d}")
    spread = out["plain_blocks_s"]
    print(
        f"  (plaintext: {len(spread)} blocks between the secure rounds, "
        f"{min(spread) * 1e3:.2f}–{max(spread) * 1e3:.2f} ms per update)"
    )
    labels = {f"ours_{o}": f"ours ({o})" for o in optimizers}
    labels["straightforward"] = "crypten.nn + CrypTen SGD"
    for k in keys:
        v = out[k]
        sp = out.get(f"speedup_{k[5:]}_vs_straightforward", 1.0)
        print(
            f"{labels[k]:<24}{v['seconds']:>10.3f}{v['ratio_to_plain']:>10.0f}"
            f"{v['bytes'] / 1e6:>9.1f}{v['rounds']:>8.0f}{sp:>9.2f}x"
        )
    for k in [f"ours_{o}" for o in optimizers] + ["straightforward"]:
        v = out[k]
        print(
            f"{labels[k]} per update: LAN {v['lan_s']:.3f} s ({v['lan_kind']}), "
            f"WAN {v['wan_s']:.3f} s ({v['wan_kind']})"
        )
    if "network" in out:
        _print_network(out, optimizers)
    if "profile" in out:
        _print_profile(out, plain, optimizers)
    _print_targets(out)


def _targets(out: dict) -> dict:
    """Each of :data:`TARGETS` this run measured: ``{"limit", "measured", "met"}``."""
    found = {}
    for name, (version, key, limit) in TARGETS.items():
        if version in out:
            measured = out[version][key]
            found[name] = {"limit": limit, "measured": measured, "met": measured <= limit}
    return found


def _network_phases(phases: dict) -> list[str]:
    """The profile phases of the networks' passes: every one outside the optimiser."""
    return [k for k in phases if not k.startswith("optimiser")]


def _bytes_budget(phases: dict, newton_steps: int) -> dict:
    """Where an Adam update's bytes go, from its profile's phases (per update, dealer part
    beside each): the networks' passes (every phase outside the optimiser), the start
    value of ``1/√v̂`` (its range reduction), the Newton steps, and the rest of the
    optimiser; with the Newton error bound of these steps and of one step fewer
    (:meth:`smpc_gym.secure.optim.SecureAdam.newton_schedule`), the price of a step less."""
    from smpc_gym.secure.optim import SecureAdam

    groups = {
        "networks": _network_phases(phases),
        "start": ["optimiser.adam_rsqrt_start"],
        "newton": ["optimiser.adam_newton"],
        "optimiser_rest": ["optimiser"],
    }
    budget: dict = {}
    for name, keys in groups.items():
        budget[name] = sum(phases[k]["bytes"] for k in keys if k in phases)
        budget[f"{name}_dealer"] = sum(phases[k]["bytes_dealer"] for k in keys if k in phases)
    budget["newton_steps"] = newton_steps
    budget["newton_bound"] = SecureAdam.newton_schedule(newton_steps)[1]
    if newton_steps > 1:
        budget["newton_bound_one_step_fewer"] = SecureAdam.newton_schedule(newton_steps - 1)[1]
    return budget


def _print_targets(out: dict) -> None:
    names = {
        "sgd_ratio": "SGD update, x plaintext",
        "adam_ratio": "Adam update, x plaintext",
        "adam_bytes": "Adam update, MB",
    }
    print("\nagainst the targets (this run)")
    for name in [k for k in TARGETS if k in out["targets"]]:  # in TARGETS' order
        t = out["targets"][name]
        mb = name.endswith("bytes")
        unit = 1e6 if mb else 1.0
        gap = (
            "met"
            if t["met"]
            else f"not met: {(t['measured'] - t['limit']) / unit:.1f} {'MB ' if mb else ''}over"
        )
        print(
            f"  {names[name]:<26}{t['measured'] / unit:>8.1f}  (limit {t['limit'] / unit:g})  {gap}"
        )
    budget = out.get("profile", {}).get("ours_adam", {}).get("bytes_budget")
    if budget is None:
        return
    steps = budget["newton_steps"]
    print("where an Adam update's bytes go (MB; dealer part in brackets)")
    rows = {
        "networks": "networks' passes",
        "start": "1/sqrt(v) start value",
        "newton": f"1/sqrt(v) Newton, {steps} steps",
        "optimiser_rest": "rest of the optimiser",
    }
    for key, label in rows.items():
        print(f"  {label:<30}{budget[key] / 1e6:>7.1f}  ({budget[key + '_dealer'] / 1e6:.1f})")
    t = out["targets"].get("adam_bytes")
    if t is not None and not t["met"]:
        room = t["limit"] - budget["networks"]
        per_step = budget["newton"] / steps
        fewer = budget.get("newton_bound_one_step_fewer")
        print(
            f"  the limit leaves {room / 1e6:.1f} MB for the optimiser after the networks' "
            f"passes; its Newton steps alone take {budget['newton'] / 1e6:.1f} "
            f"({per_step / 1e6:.1f} MB each), and the start value "
            f"{budget['start'] / 1e6:.1f}"
        )
        if fewer is not None:
            print(
                f"  one step fewer: relative error bound {fewer:.1e} instead of "
                f"{budget['newton_bound']:.1e} (SecureAdam.newton_schedule)"
            )


def _print_network(out: dict, optimizers) -> None:
    print("\nemulated links (namespaces, multi-machine launch): s/update measured vs model")
    print(f"{'version':<14}{'link':<7}{'Mbit/s':>8}{'RTT ms':>8}{'measured':>10}{'model':>9}")
    for o in optimizers:
        net = out["network"][f"ours_{o}"]
        for link, (rate, rtt, emulated) in LINKS.items():
            r = net[link]
            rtt_s = f"{rtt:g}" + ("" if emulated else "*")
            print(
                f"{'ours (' + o + ')':<14}{link:<7}{rate or 0:>8.0f}{rtt_s:>8}"
                f"{r['measured_s']:>10.3f}{r['predicted_s']:>9.3f}"
            )
        print(f"  WAN latency per round: {net['rtt_factor_fit']:.2f} x the model's RTT/2 (fitted)")
    print("  * RTT not emulated (measured at ~0 added RTT; lan_s adds rounds x RTT/2)")
    for r in out["network"].get("sweep", []):
        name = r["version"].replace("ours_", "ours (") + ")"
        print(
            f"{name:<14}{'sweep':<7}{r['rate_mbit']:>8.0f}{r['rtt_ms']:>8g}"
            f"{r['measured_s']:>10.3f}{r['predicted_s']:>9.3f}"
        )


def _print_profile(out: dict, plain: float, optimizers) -> None:
    prof = out["profile"]
    for o in optimizers:
        pr = prof[f"ours_{o}"]
        print(
            f"\nprofile, ours ({o}): {pr['update_s']:.3f} s per update "
            f"(plaintext update {plain:.4f} s, {pr['update_s'] / plain:.0f}x)"
        )
        print(
            f"{'phase':<30}{'wall s':>8}{'comm s':>8}{'local s':>9}{'MB':>8}"
            f"{'dealer':>8}{'rounds':>8}"
        )
        rows = sorted(pr["phases"].items(), key=lambda kv: -kv[1]["wall_s"])
        for name, r in rows:
            print(
                f"{name:<30}{r['wall_s']:>8.3f}{r['comm_s']:>8.3f}{r['local_s']:>9.3f}"
                f"{r['bytes'] / 1e6:>8.1f}{r['bytes_dealer'] / 1e6:>8.1f}{r['rounds']:>8.1f}"
            )
        print(f"{'(outside every phase)':<30}{pr['unattributed_s']:>8.3f}")
        a = pr["act"]
        print(
            f"act (both actors, 1 obs): {a['seconds']:.4f} s/call, comm {a['comm_s']:.4f} s, "
            f"{a['bytes'] / 1e3:.1f} kB, {a['rounds']:.0f} rounds "
            f"(plaintext {prof['plain_act_s'] * 1e3:.3f} ms)"
        )
    print(
        "\nCPU per update (seconds: user + system; every process of a local run shares the machine)"
    )
    for o in optimizers:
        c = prof[f"ours_{o}"]["cpu"]
        dealer = (
            f", dealer {c['dealer_user_s']:.3f} + {c['dealer_sys_s']:.3f}"
            if c["dealer_user_s"] is not None
            else ""
        )
        print(
            f"ours ({o}): party 0 {c['party0_user_s']:.3f} + {c['party0_sys_s']:.3f}, "
            f"party 1 {c['party1_user_s']:.3f} + {c['party1_sys_s']:.3f}{dealer}; total "
            f"{c['total_s']:.3f} s = {c['total_ratio_to_plain']:.0f}x the plaintext update, "
            f"{c['cores_busy']:.2f} of {c['cores']} cores busy: on {c['cores']} cores no less "
            f"than {c['wall_floor_s']:.3f} s = {c['wall_floor_ratio_to_plain']:.0f}x plaintext"
        )
    fl = prof["floor"]
    print(
        f"\nfloor on this machine: one round trip {fl['round_trip_s'] * 1e3:.3f} ms; an exact "
        f"ring matmul {fl['ring_over_float_matmul']:.0f}x a float32 one "
        f"({fl['ring_matmul_s'] * 1e3:.2f} vs {fl['float_matmul_s'] * 1e3:.3f} ms; a Beaver "
        "matmul takes two per party)"
    )
    for o in optimizers:
        f = fl[f"ours_{o}"]
        print(
            f"ours ({o}): rounds x round trip {f['rounds_x_round_trip_s']:.3f} s = "
            f"{f['latency_ratio_to_plain']:.0f}x plaintext before any computation; local "
            f"work alone {f['local_s']:.3f} s = {f['local_ratio_to_plain']:.0f}x plaintext; "
            f"the networks' passes alone send {f['bytes_outside_optimiser'] / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()
