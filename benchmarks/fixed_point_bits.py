"""How many fractional bits a per-update error bound needs: noise twins at several widths.

Plaintext only, no parties. With every activation on the fixed-point grid of ``2^-16``,
the stress benchmark (``secure_maddpg_stress.py``) showed the secure update's per-update
weight error to be what its *noise twin* gave — the plaintext update with ±1 grid unit
added to every linear layer's output, what a perfect 16-bit fixed point does at best —
and both to exceed 1e-3 on a few of 2,000 pre-trained Adam updates: a ReLU whose
pre-activation is within a unit of 0 flips on one sample, and Adam's normalised step
passes the changed gradient on at ``(1 − β₁)·lr·δ/√v̂``.

This benchmark asks what a perfect fixed point with ``f`` fractional bits would do, for
each ``f`` of ``--bits``, on the same kind of run: a plaintext twin of the headline
preset's secure Adam (``FloorEpsAdam``, SecureAdam's formula in floating point) runs
``--updates`` updates from the pre-trained networks and Adam moments, on the stress
benchmark's minibatches; before each update a noise twin per ``f`` is set to its state and
makes the same update with ±1 unit of ``2^-f`` added to every layer's output. For each
``f``: the largest per-update distance from the noiseless update over every parameter of
every network (``max_abs_error``), its median and 99th percentile over the updates, and
``updates_over_1e-3``. ``f = 16`` is the same-run baseline: what the secure code had
everywhere before its hidden activations moved to 24 bits (``mpc_nn.ACT_FRAC_BITS``,
chosen from this benchmark's figures).

Only the forward pass is perturbed (the secure backward pass rounds too): the figures are
what a fixed point at ``f`` bits does *at best*.

Usage::

    python benchmarks/fixed_point_bits.py --updates 2000 --cache /tmp/pre.pt --json

``--json`` prints one object with the keys ``config``, ``updates``, ``seconds`` and
``bits`` (``f`` as a string → ``max_abs_error``, ``median``, ``p99``,
``updates_over_1e-3``, ``worst_update``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

import torch
from secure_maddpg_stress import (  # benchmarks/secure_maddpg_stress.py
    NET_KINDS,
    SEED,
    _add_output_noise,
    _load_or_pretrain,
    _nets,
    _plain_error,
    _pretrain_opts,
    _twin,
    _warm_start_twin,
    preset_config,
)

from smpc_gym.agents import maddpg
from smpc_gym.agents import secure_maddpg as sm


def _copy_state(src: tuple[maddpg.Nets, Any], dst: tuple[maddpg.Nets, Any]) -> None:
    """Set twin ``dst`` (networks and optimiser states) to twin ``src``'s state."""
    (src_nets, src_opts), (dst_nets, dst_opts) = src, dst
    for kind in NET_KINDS:
        for a, b in zip(getattr(src_nets, kind), getattr(dst_nets, kind), strict=True):
            b.load_state_dict(a.state_dict())
    for kind in ("actors", "critics"):
        nets_pairs = zip(getattr(src_nets, kind), getattr(dst_nets, kind), strict=True)
        opt_pairs = zip(getattr(src_opts, kind), getattr(dst_opts, kind), strict=True)
        for (sn, dn), (so, do) in zip(nets_pairs, opt_pairs, strict=True):
            do.state.clear()
            for sp, dp in zip(sn.parameters(), dn.parameters(), strict=True):
                if sp in so.state:
                    do.state[dp] = {
                        k: v.clone() if torch.is_tensor(v) else v for k, v in so.state[sp].items()
                    }


def run(updates: int, bits: list[int], cache: str, sets: list[str]) -> dict[str, Any]:
    """The sweep: per-update distances of noise twins from the noiseless update."""
    torch.set_num_threads(1)
    cfg, env = preset_config(sets)
    cfg = dataclasses.replace(cfg, optimizer="adam")
    high = maddpg.action_caps(env)
    pre = _load_or_pretrain(cfg, env, cache)
    data = [{k: d[k] for k in ("obs", "next_obs", "action", "reward", "done")} for d in pre["data"]]
    pre_opts = _pretrain_opts(cfg, *_nets(cfg, high, pre), pre)
    base = _twin(cfg, *_nets(cfg, high, pre), high)
    _warm_start_twin(base[1], pre_opts)
    noisy = {}
    for k, f in enumerate(bits):
        noisy[f] = _twin(cfg, *_nets(cfg, high, pre), high)
        _add_output_noise(noisy[f][0], torch.Generator().manual_seed(SEED + k), bits=f)
    sharing = maddpg.DataSharing("ede")
    sampler = torch.Generator().manual_seed(int(sm._seeds(SEED)[4]))  # the stress run's
    n = data[0]["obs"].shape[0]
    errors: dict[int, list[float]] = {f: [] for f in bits}
    t0 = time.perf_counter()
    for u in range(updates):
        idx = maddpg.sample_indices(n, cfg.batch_size, sampler)
        batch = [maddpg.PlayerBatch(**{k: v[idx] for k, v in d.items()}) for d in data]
        for twin in noisy.values():
            _copy_state(base, twin)
        maddpg.maddpg_update(*base, batch, cfg.plain(), sharing)
        for f, twin in noisy.items():
            maddpg.maddpg_update(*twin, batch, cfg.plain(), sharing)
            errors[f].append(_plain_error(twin[0], base[0]))
        if (u + 1) % 100 == 0 or u + 1 == updates:
            print(
                f"update {u + 1}: "
                + ", ".join(f"{f} bits max {max(e):.1e}" for f, e in errors.items()),
                file=sys.stderr,
                flush=True,
            )
    out: dict[str, Any] = {}
    for f, errs in errors.items():
        e = torch.tensor(errs, dtype=torch.float64)
        out[str(f)] = {
            "max_abs_error": float(e.max()),
            "median": float(e.median()),
            "p99": float(torch.quantile(e, 0.99)),
            "updates_over_1e-3": int((e > 1e-3).sum()),
            "worst_update": int(e.argmax()) + 1,
        }
    return {"updates": updates, "seconds": time.perf_counter() - t0, "bits": out}


def main() -> None:
    """Run the sweep and print its summary (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=200)
    p.add_argument(
        "--bits",
        default="16,18,20,22,24",
        help="comma-separated fractional bit widths to emulate (default: 16,18,20,22,24)",
    )
    p.add_argument("--cache", default="", help="file to keep/reuse the pre-training result")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="preset override, as train.py --set",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    try:
        bits = [int(b) for b in args.bits.split(",")]
    except ValueError:
        p.error(f"--bits must be comma-separated integers, got {args.bits!r}")
    if args.updates < 1 or not all(8 <= b <= 40 for b in bits) or len(set(bits)) != len(bits):
        p.error(
            f"--updates must be >= 1 and --bits distinct integers in [8, 40]; "
            f"got {args.updates}, {args.bits!r}"
        )
    res = run(args.updates, bits, args.cache, args.set)
    out = {"config": vars(args), **res}
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    print(f"{res['updates']} updates in {res['seconds']:.0f} s")
    for f, r in res["bits"].items():
        print(
            f"{f:>3} bits: max {r['max_abs_error']:.2e} (update {r['worst_update']}), "
            f"median {r['median']:.1e}, p99 {r['p99']:.1e}, over 1e-3: {r['updates_over_1e-3']}"
        )


if __name__ == "__main__":
    main()
