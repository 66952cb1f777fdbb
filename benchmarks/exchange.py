"""One exchange between the two parties: gloo ``isend``/``irecv`` against the direct channel.

Every round of the two-party protocols is an exchange (each party sends the other as many
int64 words as it receives). This times it both ways in the same two-party launch, per
message size, interleaved: gloo through CrypTen's process group, and the parties' direct
channel (``smpc_gym.secure.channel``) that the runtime sets up and the protocols use: a
Unix-domain socket in this local launch (TCP between machines).
Per size and transport it reports the mean wall milliseconds per exchange and party 0's
CPU milliseconds (user + system) per exchange.

Usage::

    python benchmarks/exchange.py                # table
    python benchmarks/exchange.py --json         # {"sizes": [...], "gloo": {size: {...}},
                                                 #  "channel": {size: {...}}, "reps": n}

Each entry is ``{"wall_ms", "cpu_ms"}``; ``speedup`` per size is gloo wall / channel wall.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from smpc_gym.secure.runtime import PartyConfig, launch_local

SIZES = (1, 600, 4096, 37_000, 300_000)


def _party(ctx, sizes: tuple[int, ...], reps: int) -> dict:
    import torch.distributed as dist

    from smpc_gym.secure.channel import current

    channel = current()
    if channel is None:
        raise RuntimeError("the runtime set up no direct channel: nothing to compare")
    group, other = ctx.comm.main_group, 1 - ctx.rank

    def gloo(w: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(w)
        for req in (dist.isend(w, other, group=group), dist.irecv(out, other, group=group)):
            req.wait()
        return out

    res: dict[str, dict[int, dict[str, float]]] = {"gloo": {}, "channel": {}}
    for n in sizes:
        w = torch.arange(n, dtype=torch.int64)
        for name, fn in (("gloo", gloo), ("channel", channel.exchange)):
            fn(w)  # warm-up
            ctx.barrier()
            c0, t0 = os.times(), time.perf_counter()
            for _ in range(reps):
                fn(w)
            wall, c1 = time.perf_counter() - t0, os.times()
            cpu = (c1.user - c0.user) + (c1.system - c0.system)
            res[name][n] = {"wall_ms": wall / reps * 1e3, "cpu_ms": cpu / reps * 1e3}
    return res


def main() -> None:
    """Run the comparison and print a table (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200, help="exchanges per size and transport")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.reps < 1:
        raise SystemExit(f"--reps must be >= 1, got {args.reps}")
    cfg = PartyConfig(world_size=2, timeout_s=300, provider="tfp_player0_sees_all")
    res = launch_local(_party, 2, (SIZES, args.reps), config=cfg)[0]
    out = {
        "sizes": list(SIZES),
        "reps": args.reps,
        "gloo": {str(n): res["gloo"][n] for n in SIZES},
        "channel": {str(n): res["channel"][n] for n in SIZES},
        "speedup": {
            str(n): res["gloo"][n]["wall_ms"] / res["channel"][n]["wall_ms"] for n in SIZES
        },
    }
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    print(f"one exchange between two parties, {args.reps} per size and transport (party 0)")
    print(
        f"{'words':>9}{'gloo ms':>10}{'cpu ms':>8}{'channel ms':>12}{'cpu ms':>8}{'speed-up':>10}"
    )
    for n in SIZES:
        g, c = res["gloo"][n], res["channel"][n]
        print(
            f"{n:>9}{g['wall_ms']:>10.3f}{g['cpu_ms']:>8.3f}{c['wall_ms']:>12.3f}"
            f"{c['cpu_ms']:>8.3f}{out['speedup'][str(n)]:>9.1f}x"
        )


if __name__ == "__main__":
    main()
