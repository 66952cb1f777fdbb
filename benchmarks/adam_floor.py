"""How far SecureAdam's formula is from ``torch.optim.Adam``, in plaintext, per seed.

Secure Adam floors ε at fixed-point resolution and puts it under the square root
(:class:`smpc_gym.secure.optim.FloorEpsAdam` is that formula in floating point). This
benchmark runs the slow paper-network equivalence test's plaintext side (paper networks,
batch 128, the test's synthetic data and minibatches, ``--updates`` Adam updates from
random networks) three ways per seed and reports the largest per-parameter MAE of each
against ``torch.optim.Adam``:

* ``floor``: SecureAdam's formula (``secure_maddpg.plaintext_optimisers``) — what the
  ε floor alone changes;
* ``grid``: torch Adam from the initial weights rounded to the 2^-16 grid — what the
  fixed-point encoding of the start alone changes (the same-run yardstick);

with where the largest MAE is. No MPC runs here: it separates the floor from what a
secure run adds.

Usage::

    python benchmarks/adam_floor.py --seeds 41 0 16 --json

``--json`` prints one object: ``config`` and ``seeds`` (seed → ``floor`` / ``grid`` →
``mae``, ``where``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from secure_maddpg_stress import NET_KINDS, _round_to_grid  # benchmarks/secure_maddpg_stress.py

from smpc_gym.agents import maddpg
from smpc_gym.agents import secure_maddpg as sm

ROOT = Path(__file__).resolve().parent.parent


def _load_test() -> Any:
    """The equivalence test module (its seeds, data and replay filling)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "equivalence", ROOT / "tests/test_secure_maddpg_equivalence.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(eq: Any, cfg: sm.Config, seed: int, updates: int, kind: str) -> maddpg.Nets:
    high = maddpg.action_caps({})
    data = eq._data(256, high, torch.Generator().manual_seed(5 + seed - eq.SEED))
    algo = maddpg.MADDPG(cfg.plain(), {}, seed)
    for i in range(2):
        eq._fill(algo.replay[i], data[i])
    opts = algo.opts
    if kind == "floor":
        opts = sm.plaintext_optimisers(cfg, algo.nets.actors, algo.nets.critics)
    if kind == "grid":
        _round_to_grid(algo.nets)
    for _ in range(updates):
        idx = maddpg.sample_indices(algo.replay[0].size, cfg.batch_size, algo.sampler)
        batch = [r.get(idx) for r in algo.replay]
        maddpg.maddpg_update(algo.nets, opts, batch, cfg.plain(), algo.sharing)
    return algo.nets


def _worst_mae(a: maddpg.Nets, b: maddpg.Nets) -> dict[str, Any]:
    worst = {"mae": 0.0, "where": ""}
    for k in NET_KINDS:
        for i, (na, nb) in enumerate(zip(getattr(a, k), getattr(b, k), strict=True)):
            for j, (p, q) in enumerate(zip(na.parameters(), nb.parameters(), strict=True)):
                mae = float((p.detach() - q.detach()).abs().mean())
                if mae > worst["mae"]:
                    worst = {"mae": mae, "where": f"{k}[{i}].param{j}"}
    return worst


def main() -> None:
    """Run the comparison and print it (or JSON)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[41, 0, 16], help="test seeds")
    p.add_argument("--updates", type=int, default=50)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.updates < 1 or any(s < 0 for s in args.seeds):
        p.error(f"--updates must be >= 1 and --seeds >= 0, got {args.updates}, {args.seeds}")
    torch.set_num_threads(1)
    eq = _load_test()
    cfg = sm.Config()
    out: dict[str, Any] = {}
    for s in args.seeds:
        seed = eq.SEED + s
        ref = _run(eq, cfg, seed, args.updates, "torch")
        out[str(s)] = {
            kind: _worst_mae(_run(eq, cfg, seed, args.updates, kind), ref)
            for kind in ("floor", "grid")
        }
    res = {"config": vars(args), "seeds": out}
    if args.json:
        print(json.dumps(res, sort_keys=True))
        return
    for s, r in out.items():
        print(
            f"seed {s}: SecureAdam's formula vs torch Adam {r['floor']['mae']:.2e} "
            f"({r['floor']['where']}); grid-rounded start {r['grid']['mae']:.2e} "
            f"({r['grid']['where']})"
        )


if __name__ == "__main__":
    main()
