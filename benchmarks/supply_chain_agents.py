"""EDE (maddpg) vs NDS (nds) on the default SupplyChain, with random and myopic baselines.

Trains ``maddpg`` and ``nds`` with the same training seeds and schedule, then evaluates
every policy greedily on the same evaluation episodes (one batched game seeded with
``--eval-seed``: identical initial stocks and demand noise for every policy), and prints
per-player reward, wastage (units, cost), NCR and totals, the relative differences EDE vs
NDS in the paper's terms, and the paper's headline (secure 2PC vs NDS: 68.19% less
wastage, 42.27% more revenue per player) beside them.

    python benchmarks/supply_chain_agents.py                     # short schedule
    python benchmarks/supply_chain_agents.py --steps 396000      # the paper's 9,900 episodes
    python benchmarks/supply_chain_agents.py --json              # one JSON object

JSON keys (stable): ``steps``, ``seeds``, ``eval_episodes``, ``eval_seed``,
``wall_seconds``, ``train_seconds`` {algo: total over seeds}, ``results`` {algo:
{``reward_0``, ``reward_1`` (per episode), ``wastage_units``, ``wastage_cost`` (both
players, per episode), ``ncr_0``, ``ncr_1``, ``total_ncr``, ``total_reward``,
``total_ncr_per_seed`` (list; baselines: one value)}}, ``ede_vs_nds`` {``wastage_reduction_pct``,
``revenue_increase_pct_player_0``, ``revenue_increase_pct_player_1``,
``revenue_increase_pct_mean``, ``total_ncr_ratio``}, ``paper`` {``wastage_reduction_pct``:
68.19, ``revenue_increase_pct``: 42.27}. "Revenue" is NCR (cumulative reward minus waste
cost), the paper's metric; percentages are relative to NDS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

from smpc_gym.agents.base import NullHooks
from smpc_gym.agents.common.supply_chain_eval import (
    myopic_policy,
    random_policy,
    run_episodes,
)
from smpc_gym.agents.maddpg import MADDPG
from smpc_gym.agents.nds import NDS

PAPER = {"wastage_reduction_pct": 68.19, "revenue_increase_pct": 42.27}
METRICS = ("reward_0", "reward_1", "wastage_units", "wastage_cost", "ncr_0", "ncr_1")


def _means(per_episode: dict[str, np.ndarray]) -> dict[str, float]:
    out = {k: float(per_episode[k].mean()) for k in ("reward_0", "reward_1", "ncr_0", "ncr_1")}
    out["wastage_units"] = float(
        (per_episode["wastage_units_0"] + per_episode["wastage_units_1"]).mean()
    )
    out["wastage_cost"] = float(
        (per_episode["wastage_cost_0"] + per_episode["wastage_cost_1"]).mean()
    )
    out["total_ncr"] = out["ncr_0"] + out["ncr_1"]
    out["total_reward"] = out["reward_0"] + out["reward_1"]
    return out


def _pct(new: float, base: float) -> float:
    return 100.0 * (new - base) / abs(base) if base != 0 else float("nan")


def run(steps: int, seeds: list[int], eval_episodes: int, eval_seed: int, log: Any) -> dict:
    """Train and evaluate everything; returns the JSON object described above."""
    t0 = time.perf_counter()
    env_kwargs: dict[str, Any] = {}
    results: dict[str, dict[str, Any]] = {}
    per_seed: dict[str, list[dict[str, float]]] = {"maddpg": [], "nds": []}
    train_seconds = {"maddpg": 0.0, "nds": 0.0}
    for seed in seeds:  # seed-major, so a partial log already compares like with like
        for cls in (MADDPG, NDS):
            algo = cls(cls.Config(), env_kwargs, seed)
            t = time.perf_counter()
            algo.train(steps, NullHooks())
            dt = time.perf_counter() - t
            train_seconds[cls.name] += dt
            m = _means(run_episodes(algo.policy, env_kwargs, eval_episodes, eval_seed))
            per_seed[cls.name].append(m)
            log(
                f"  {cls.name:7s} seed {seed}: total NCR {m['total_ncr']:8.1f}  wastage "
                f"{m['wastage_units']:6.1f} units  ({dt:.0f} s, {steps / dt:.0f} steps/s)"
            )
    for name, ms in per_seed.items():
        res: dict[str, Any] = {k: float(np.mean([m[k] for m in ms])) for k in ms[0]}
        res["total_ncr_per_seed"] = [m["total_ncr"] for m in ms]
        results[name] = res
    for name, pol in (
        ("random", random_policy(env_kwargs, eval_seed + 1)),
        ("myopic", myopic_policy()),
    ):
        m = _means(run_episodes(pol, env_kwargs, eval_episodes, eval_seed))
        m["total_ncr_per_seed"] = [m["total_ncr"]]
        results[name] = m

    ede, nds = results["maddpg"], results["nds"]
    mean_ncr = lambda r: (r["ncr_0"] + r["ncr_1"]) / 2  # noqa: E731
    comparison = {
        "wastage_reduction_pct": -_pct(ede["wastage_units"], nds["wastage_units"]),
        "revenue_increase_pct_player_0": _pct(ede["ncr_0"], nds["ncr_0"]),
        "revenue_increase_pct_player_1": _pct(ede["ncr_1"], nds["ncr_1"]),
        "revenue_increase_pct_mean": _pct(mean_ncr(ede), mean_ncr(nds)),
        "total_ncr_ratio": ede["total_ncr"] / nds["total_ncr"]
        if nds["total_ncr"]
        else float("nan"),
    }
    return {
        "steps": steps,
        "seeds": seeds,
        "eval_episodes": eval_episodes,
        "eval_seed": eval_seed,
        "wall_seconds": time.perf_counter() - t0,
        "train_seconds": train_seconds,
        "results": results,
        "ede_vs_nds": comparison,
        "paper": PAPER,
    }


def print_table(out: dict) -> None:
    """The human-readable table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"SupplyChain, {out['steps']} training steps x seeds {out['seeds']}, "
        f"{out['eval_episodes']} greedy eval episodes (per-episode means)"
    )
    for col in (
        "policy",
        "reward p0",
        "reward p1",
        "waste units",
        "waste cost",
        "NCR p0",
        "NCR p1",
        "total NCR",
        "total reward",
    ):
        table.add_column(col, justify="right" if col != "policy" else "left")
    names = {"maddpg": "EDE (maddpg)", "nds": "NDS (nds)", "random": "random", "myopic": "myopic"}
    for key, label in names.items():
        r = out["results"][key]
        table.add_row(
            label,
            *(f"{r[k]:.1f}" for k in (*METRICS, "total_ncr", "total_reward")),
        )
    console = Console(width=140)
    console.print(table)
    c = out["ede_vs_nds"]
    console.print(
        f"EDE vs NDS: wastage {c['wastage_reduction_pct']:+.1f}% less (paper, secure vs NDS: "
        f"{PAPER['wastage_reduction_pct']}%); revenue (NCR) per player "
        f"{c['revenue_increase_pct_player_0']:+.1f}% (p0), {c['revenue_increase_pct_player_1']:+.1f}% (p1), "
        f"{c['revenue_increase_pct_mean']:+.1f}% (mean of players; paper: {PAPER['revenue_increase_pct']}%); "
        f"total NCR ratio EDE/NDS {c['total_ncr_ratio']:.3f}"
    )
    ts = out["train_seconds"]
    console.print(
        f"wall time {out['wall_seconds']:.0f} s (training: maddpg {ts['maddpg']:.0f} s, nds {ts['nds']:.0f} s)"
    )


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--steps", type=int, default=10_000, help="env steps per training run (paper: 396000)"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=12345)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--save", metavar="PATH", help="also write the JSON object to PATH")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    log = (
        (lambda s: print(s, file=sys.stderr, flush=True))
        if args.json
        else (lambda s: print(s, flush=True))
    )
    out = run(args.steps, args.seeds, args.eval_episodes, args.eval_seed, log)
    if args.save:
        with open(args.save, "w") as f:
            json.dump(out, f, indent=1)
    if args.json:
        print(json.dumps(out))
    else:
        print_table(out)


if __name__ == "__main__":
    main()
