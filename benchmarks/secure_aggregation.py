"""Secure aggregation vs a plaintext all-reduce mean, per round, over the same processes.

For each number of holders N (default 2, 4, 10) one group of N + 1 real party processes
is launched (rank 0 = coordinator, ranks 1..N = holders; gloo over 127.0.0.1), and for
each model size (default 36k and 1M float parameters) every method is timed on the same
processes, interleaved, ``--reps`` times after one warm-up:

* ``secure`` (total) — :func:`smpc_gym.federated.secure_agg.secure_sum` to the coordinator
  then the mean, mask generation included (one AES-CTR zero-sharing for all holders, one
  int64 ``reduce``);
* ``secure online`` — the same with the round's mask made beforehand
  (:func:`~smpc_gym.federated.secure_agg.prepare_secure_sum`, outside the timed region:
  the data-independent offline phase, which a deployment runs during local training);
  ``secure offline`` — that mask generation alone, timed on its own;
* ``plain`` — the baseline: every party all-reduces its float32 update in the clear
  (``torch.distributed`` gloo ``all_reduce``) and divides by N;
* ``naive`` — the straightforward CrypTen version: every holder's update becomes its own
  ``crypten.cryptensor(update, src=holder)``, the N cryptensors are added, and the sum is
  decrypted on the coordinator (``get_plain_text(dst=0)``).

A round's time is the slowest party's time from a common barrier to having finished its
part; the figure is the median over reps. Bytes per holder: ``*_bytes_counted`` from
CrypTen's communicator counters (protocol level), ``*_wire_bytes`` measured from
``/proc/self/io`` (bytes the holder process wrote, which includes gloo's TCP sends).

JSON keys (``--json``): ``{"config": {"holders", "params", "reps", "ring_bits"},
"results": [{"holders", "params",
"secure_s" (total: offline + online), "secure_online_s", "secure_offline_s", "plain_s",
"naive_s", "secure_vs_plain" (total / plain), "secure_online_vs_plain", "naive_vs_plain",
"secure_bytes_counted", "plain_bytes_counted", "secure_wire_bytes", "plain_wire_bytes",
"max_abs_error"}, ...]}``.

``--ring-bits 32`` runs ``secure`` on the int32 share ring (half the bytes and keystream,
range ``|x| < 2**14 / (N + 1)``; see :class:`~smpc_gym.federated.secure_agg.SecureAggregator`).

Usage: ``python benchmarks/secure_aggregation.py [--holders 2 4 10] [--params 36000
1000000] [--reps 5] [--ring-bits 64|32] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from smpc_gym.federated.secure_agg import (
    COORDINATOR,
    RING_BITS,
    prepare_secure_sum,
    secure_sum,
)
from smpc_gym.secure.comm import gather_tensors, io_bytes
from smpc_gym.secure.runtime import PartyConfig, PartyContext, launch_local

METHODS = ("offline", "online", "secure", "plain", "naive")


def _update(rank: int, d: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(rank)
    return torch.randn(d, generator=g) * 0.01


def _timed(ctx: PartyContext, fn) -> tuple[float, int, int, object]:  # noqa: ANN001
    ctx.barrier()
    ctx.reset_comm_stats()
    io0 = io_bytes()["written"]
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    wire = io_bytes()["written"] - io0
    return dt, ctx.comm_stats()["bytes"], wire, out


def _party(ctx: PartyContext, sizes: list[int], reps: int, ring_bits: int = 64) -> dict:
    torch.set_num_threads(1)
    n = ctx.world_size - 1
    crypten = ctx.crypten
    res: dict[int, dict[str, list]] = {}
    for d in sizes:
        x = None if ctx.rank == COORDINATOR else _update(ctx.rank, d)
        x32 = torch.zeros(d) if x is None else x

        def secure(x=x, d=d):  # noqa: ANN001, ANN202
            s = secure_sum(ctx, x, numel=d, dst=COORDINATOR, ring_bits=ring_bits)
            return None if s is None else s.div_(n)  # (in place: the sum is a fresh tensor)

        def offline(d=d):  # noqa: ANN001, ANN202
            prepare_secure_sum(ctx, d, ring_bits=ring_bits)  # the mask ``secure`` consumes

        def plain(x32=x32):  # noqa: ANN001, ANN202
            return ctx.comm.all_reduce(x32).div_(n)  # (all_reduce works on a copy)

        def naive(x=x, d=d):  # noqa: ANN001, ANN202
            shared = [
                crypten.cryptensor(x if r == ctx.rank else torch.zeros(d), src=r)
                for r in range(1, ctx.world_size)
            ]
            total = shared[0]
            for s in shared[1:]:
                total = total + s
            out = total._tensor.reveal(dst=COORDINATOR)
            return None if out is None else total._tensor.encoder.decode(out).div_(n)

        rows: dict[str, list] = {k: [] for k in METHODS}
        order = (
            ("offline", offline),  # makes the mask ...
            ("online", secure),  # ... that this one consumes
            ("secure", secure),  # no mask ready: made inside the timed call
            ("plain", plain),
            ("naive", naive),
        )
        for rep in range(reps + 1):  # rep 0 is a warm-up
            for name, fn in order:
                dt, counted, wire, out = _timed(ctx, fn)
                if rep > 0:
                    rows[name].append((dt, counted, wire))
                if name in ("online", "secure") and rep == reps:
                    rows[f"{name}_out"] = [out]
        res[d] = rows
    # the coordinator checks the result against the plaintext mean and collects timings
    summary = {}
    for d, rows in res.items():
        times = {}
        for name in METHODS:
            t = torch.tensor([r[0] for r in rows[name]], dtype=torch.float64)
            all_t = gather_tensors(ctx, t, COORDINATOR)
            times[name] = all_t
        summary[d] = {
            "times": times,
            "bytes": {k: rows[k][-1][1] for k in ("secure", "plain", "naive")},
            "wire": {k: rows[k][-1][2] for k in ("secure", "plain", "naive")},
            "out": rows["secure_out"][0],
            "online_out": rows["online_out"][0],
        }
    return summary


def run(holders: list[int], sizes: list[int], reps: int, ring_bits: int = 64) -> list[dict]:
    """Launch one group per N and return one result row per (N, size)."""
    out = []
    for n in holders:
        world = n + 1
        results = launch_local(
            _party, world, (sizes, reps, ring_bits), config=PartyConfig(world, timeout_s=300)
        )
        coord, holder1 = results[COORDINATOR], results[1]
        for d in sizes:
            times = coord[d]["times"]

            def med(name: str, times=times) -> float:  # noqa: ANN001
                per_rep = torch.stack(times[name]).max(0).values  # slowest party per rep
                return float(statistics.median(per_rep.tolist()))

            ref = torch.stack([_update(r, d).double() for r in range(1, world)]).mean(0)
            err = max(float((coord[d][k] - ref).abs().max()) for k in ("out", "online_out"))
            s, p, nv = med("secure"), med("plain"), med("naive")
            on, off = med("online"), med("offline")
            out.append(
                {
                    "holders": n,
                    "params": d,
                    "secure_s": s,
                    "secure_online_s": on,
                    "secure_offline_s": off,
                    "plain_s": p,
                    "naive_s": nv,
                    "secure_vs_plain": s / p,
                    "secure_online_vs_plain": on / p,
                    "naive_vs_plain": nv / p,
                    "secure_bytes_counted": holder1[d]["bytes"]["secure"],
                    "plain_bytes_counted": holder1[d]["bytes"]["plain"],
                    "secure_wire_bytes": holder1[d]["wire"]["secure"],
                    "plain_wire_bytes": holder1[d]["wire"]["plain"],
                    "max_abs_error": err,
                }
            )
    return out


def main() -> None:
    """Parse arguments, run, print a table (or one JSON object with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, nargs="+", default=[2, 4, 10])
    parser.add_argument("--params", type=int, nargs="+", default=[36_000, 1_000_000])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--ring-bits", type=int, default=64, choices=RING_BITS, help="share ring of `secure`"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    rows = run(args.holders, args.params, args.reps, args.ring_bits)
    if args.json:
        cfg = {
            "holders": args.holders,
            "params": args.params,
            "reps": args.reps,
            "ring_bits": args.ring_bits,
        }
        print(json.dumps({"config": cfg, "results": rows}, indent=1))
        return
    hdr = (
        f"{'N':>3} {'params':>9} {'total ms':>9} {'online ms':>9} {'offline ms':>10} "
        f"{'plain ms':>9} {'total/plain':>11} {'online/plain':>12} {'naive ms':>9} "
        f"{'naive/plain':>11} {'secure B/holder':>16} {'plain B/holder':>15} "
        f"{'wire secure':>12} {'wire plain':>11} {'max err':>8}"
    )
    print(hdr)
    for r in rows:
        print(
            f"{r['holders']:>3} {r['params']:>9} {1e3 * r['secure_s']:>9.2f} "
            f"{1e3 * r['secure_online_s']:>9.2f} {1e3 * r['secure_offline_s']:>10.2f} "
            f"{1e3 * r['plain_s']:>9.2f} {r['secure_vs_plain']:>11.2f} "
            f"{r['secure_online_vs_plain']:>12.2f} {1e3 * r['naive_s']:>9.2f} "
            f"{r['naive_vs_plain']:>11.2f} {r['secure_bytes_counted']:>16} "
            f"{r['plain_bytes_counted']:>15} {r['secure_wire_bytes']:>12} "
            f"{r['plain_wire_bytes']:>11} {r['max_abs_error']:>8.1e}"
        )


if __name__ == "__main__":
    main()
