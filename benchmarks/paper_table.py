"""The paper's comparison for the headline run: secure 2PC, its EDE twin, NDS, baselines.

For each training seed, the ``secure_maddpg`` preset's pipeline (``agents/secure_maddpg.yaml``,
with any ``--set`` overrides):

* **pre-trained** — plaintext EDE MADDPG on the simulated public market
  (:func:`maddpg.pretrain_for`, exactly what both parties run);
* **EDE twin** — the secure phase in plaintext: the pre-trained networks trained on the
  private game on the stream the secure run sees (same world resets, OU noise, minibatch
  sampler, config; ``secure_maddpg_results.plain_twin``);
* **secure 2PC** (default mode only) — the real two-party run through the runner
  (``smpc_gym.training.run.train``, as ``train.py --algo secure_maddpg`` does), its
  weights reconstructed from both parties' share files and compared with the twin per
  network (MAE/RMSE/max, the paper's Table 4);
* **NDS** — independent learners with the same budget: the same pre-training schedule on
  the simulated market, then the same secure-phase steps and config on the private game;
* **myopic** and **random** play.

Every policy is evaluated on the same 20 fixed evaluation seeds the runner uses
(``eval.json``); each training seed gives one value per metric, and the table shows the
mean over training seeds with a 95% t-interval. Also: the secure phase's gain over the
pre-trained policy (paired by seed), and EDE vs NDS as % less wastage and % more revenue
(total reward) with 95% bootstrap intervals over seeds, beside the paper's figures.

Usage::

    python benchmarks/paper_table.py --plaintext-only --seeds 5          # minutes
    python benchmarks/paper_table.py --seeds 10                          # secure: long
    python benchmarks/paper_table.py --plaintext-only --seeds 2 --steps 200 \\
        --set pretrain_steps=2000 --json

``--json`` prints one object with the keys ``mode``, ``seeds``, ``steps``, ``config``,
``env_kwargs``, ``eval_seeds``, ``per_seed`` (method → list of Table-5 rows, one per
seed), ``table`` (method → ``{key: {"mean", "ci95"}}`` over seeds for the keys of
``supply_chain_eval.TABLE5_KEYS``), ``secure_gain_ncr`` (``mean``, ``ci95``,
``per_seed``: twin − pre-trained total NCR, or secure − pre-trained in secure mode),
``ede_vs_nds`` (``less_wastage_pct`` and ``more_revenue_pct``, each ``mean``, ``lo``,
``hi``), ``targets`` (``ncr_vs_myopic``, ``wastage_vs_nds``: booleans on the means),
``weights`` (secure mode: per seed, per network group, ``mae``, ``rmse``, ``max``),
``cost`` (secure mode: per seed), ``paper`` (the paper's figures) and ``wall_s``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from secure_maddpg_results import plain_twin, secure_weights, weight_errors  # noqa: E402

from smpc_gym.agents import maddpg  # noqa: E402
from smpc_gym.agents import secure_maddpg as sm  # noqa: E402
from smpc_gym.agents.common import supply_chain_eval as sce  # noqa: E402
from smpc_gym.agents.nds import NDS  # noqa: E402
from smpc_gym.training.config import resolve  # noqa: E402
from smpc_gym.training.evaluate import eval_seeds  # noqa: E402

PAPER = {
    "ede_vs_nds_less_wastage_pct": 68.19,
    "ede_vs_nds_more_revenue_pct": 42.27,
    "appendix_i_ncr_per_step": {"EDE": 71.12, "NDS": -10.68},
}
EVAL_EPISODES = 20


def _t_ci(x: Sequence[float]) -> float:
    """95% t half-width of the mean of ``x`` (0 for one value)."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return 0.0
    return float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def _bootstrap(
    a: Sequence[float], b: Sequence[float], stat: Any, rng: np.random.Generator
) -> dict[str, float]:
    """``stat(mean a, mean b)`` and its 95% percentile bootstrap interval (paired seeds)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    value = float(stat(a.mean(), b.mean()))
    if len(a) < 2:
        return {"mean": value, "lo": value, "hi": value}
    idx = rng.integers(0, len(a), size=(2000, len(a)))
    boots = np.array([stat(a[i].mean(), b[i].mean()) for i in idx])
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"mean": value, "lo": float(lo), "hi": float(hi)}


def pipeline(sets: Sequence[str], steps: int | None) -> tuple[sm.Config, dict[str, Any], int]:
    """The preset's secure config, private env parameters and secure-phase steps."""
    rc = resolve("secure_maddpg", "supply_chain", sets=list(sets), steps=steps)
    return sm.Config(**rc.config), dict(rc.env_kwargs), int(rc.steps)


def plaintext_seed(
    cfg: sm.Config, env_kwargs: Mapping[str, Any], seed: int, steps: int, seeds: Sequence[int]
) -> tuple[dict[str, dict[str, float]], maddpg.MADDPG]:
    """Pre-trained, EDE twin and NDS (same budget) for one training seed: Table-5 rows."""
    torch.set_num_threads(1)
    max_cycles = maddpg.game_config(env_kwargs).max_cycles
    pre = maddpg.pretrain_for(cfg, env_kwargs, seed)
    twin = plain_twin(cfg, env_kwargs, seed, steps, init=pre)
    nds_pre = maddpg.pretrain_for(cfg, env_kwargs, seed, cls=NDS)
    nds = plain_twin(cfg, env_kwargs, seed, steps, init=nds_pre, cls=NDS)
    policies = {
        "pre-trained": pre.policy,
        "EDE twin": twin.policy,
        "NDS": nds.policy,
        "myopic": sce.myopic_policy(),
        "random": sce.random_policy(env_kwargs, seed),
    }
    rows = {
        n: sce.table5_row(sce.run_seeds(p, env_kwargs, seeds), max_cycles)
        for n, p in policies.items()
    }
    return rows, twin


def _plaintext_rows(args: tuple[Any, ...]) -> dict[str, dict[str, float]]:
    """:func:`plaintext_seed`'s rows only (a picklable job for ``--jobs``)."""
    return plaintext_seed(*args)[0]


def secure_seed(
    sets: Sequence[str], steps: int | None, seed: int, seeds: Sequence[int], twin: maddpg.MADDPG
) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, float]]:
    """The real secure run for one seed through the runner: Table-5 row, weight errors, cost."""
    from smpc_gym.training.run import load_run, train

    _, env_kwargs, _ = pipeline(sets, steps)
    rc = resolve("secure_maddpg", "supply_chain", sets=list(sets), steps=steps, seed=seed)
    with tempfile.TemporaryDirectory(prefix="paper_table_") as tmp:
        run_dir = Path(tmp) / "run"
        train(rc, run_dir, quiet=True, tensorboard=False, eval_episodes=1)
        _, secure = secure_weights(run_dir)
        algo = load_run(run_dir)
        actors = [algo.actors[i] for i in range(2)]
        cost = cost_from_metrics(run_dir, sce.plain_update_seconds(twin))
    errors = weight_errors(secure, twin)
    max_cycles = maddpg.game_config(env_kwargs).max_cycles
    row = sce.table5_row(
        sce.run_seeds(sce.ede_actors_policy(actors), env_kwargs, seeds), max_cycles
    )
    return row, errors, cost


def cost_from_metrics(run_dir: Path, plain_update_s: float) -> dict[str, float]:
    """The cost block of a finished secure run from its ``metrics.csv``.

    The parties' timing counters accumulate over the launch, so the last row carrying
    ``secure_update_s`` holds the whole run's averages (seconds: the slower party; MB
    and rounds: party 0's counters, as ``supply_chain_eval.secure_cost``).
    """
    from smpc_gym.training.run import read_metrics

    _, rows = read_metrics(run_dir / "metrics.csv")
    rows = [r for r in rows if math.isfinite(r.get("secure_update_s", math.nan))]
    if not rows:
        return {}
    last = rows[-1]
    per = float(last["secure_update_s"])
    return {
        "secure_update_s": per,
        "plain_update_s": float(plain_update_s),
        "ratio_to_plain": per / plain_update_s,
        "mb_per_update": float(last.get("bytes_per_update_0", math.nan)) / 1e6,
        "rounds_per_update": float(last.get("rounds_per_update", math.nan)),
        "updates": float(last.get("updates", math.nan)),
    }


def summarise(per_seed: Mapping[str, Sequence[Mapping[str, float]]]) -> dict[str, Any]:
    """Mean and 95% t half-width over seeds for every method and Table-5 key."""
    return {
        m: {
            k: {"mean": float(np.mean([r[k] for r in rows])), "ci95": _t_ci([r[k] for r in rows])}
            for k in sce.TABLE5_KEYS
        }
        for m, rows in per_seed.items()
    }


def compare(per_seed: Mapping[str, Sequence[Mapping[str, float]]], learned: str) -> dict[str, Any]:
    """Secure-phase gain, EDE vs NDS, and the issue's targets, from the per-seed rows."""
    rng = np.random.default_rng(0)
    ede, nds, pre = per_seed[learned], per_seed["NDS"], per_seed["pre-trained"]
    gain = [e["total_ncr"] - p["total_ncr"] for e, p in zip(ede, pre, strict=True)]
    w_e, w_n = [r["wastage_units"] for r in ede], [r["wastage_units"] for r in nds]
    r_e, r_n = [r["total_reward"] for r in ede], [r["total_reward"] for r in nds]
    myo = np.mean([r["total_ncr"] for r in per_seed["myopic"]])
    return {
        "secure_gain_ncr": {"mean": float(np.mean(gain)), "ci95": _t_ci(gain), "per_seed": gain},
        "ede_vs_nds": {
            "less_wastage_pct": _bootstrap(w_e, w_n, lambda e, n: 100 * (n - e) / n, rng),
            "more_revenue_pct": _bootstrap(r_e, r_n, lambda e, n: 100 * (e - n) / abs(n), rng),
        },
        "targets": {
            "ncr_vs_myopic": bool(np.mean([r["total_ncr"] for r in ede]) >= myo),
            "wastage_vs_nds": bool(np.mean(w_e) <= np.mean(w_n)),
        },
    }


def print_report(out: Mapping[str, Any]) -> None:
    """The human-readable table (the same figures as ``--json``)."""
    learned = "secure 2PC" if out["mode"] == "secure" else "EDE twin"
    print(
        f"{out['mode']} mode, {len(out['seeds'])} training seeds, {out['steps']} secure-phase "
        f"steps after {out['config']['pretrain_steps']} pre-training steps; evaluation: "
        f"{EVAL_EPISODES} fixed seeds; mean over training seeds ± 95% CI"
    )
    rows = {
        m: {
            **{k: v["mean"] for k, v in t.items()},
            **{f"{k}_ci95": v["ci95"] for k, v in t.items()},
        }
        for m, t in out["table"].items()
    }
    print(sce.format_table5(rows))
    g = out["secure_gain_ncr"]
    print(
        f"secure phase gain ({learned} − pre-trained), total NCR: {g['mean']:+.1f} ± {g['ci95']:.1f}"
    )
    e = out["ede_vs_nds"]
    for key, paper in (
        ("less_wastage_pct", "ede_vs_nds_less_wastage_pct"),
        ("more_revenue_pct", "ede_vs_nds_more_revenue_pct"),
    ):
        v = e[key]
        print(
            f"{learned} vs NDS, % {key[:-4].replace('_', ' ')}: {v['mean']:.1f} "
            f"[{v['lo']:.1f}, {v['hi']:.1f}] (paper: {PAPER[paper]})"
        )
    t = out["table"]
    print(
        f"NCR per step: {learned} {t[learned]['total_ncr']['mean'] / out['max_cycles']:.2f}, NDS "
        f"{t['NDS']['total_ncr']['mean'] / out['max_cycles']:.2f} (paper, Appendix I: EDE "
        f"{PAPER['appendix_i_ncr_per_step']['EDE']}, NDS {PAPER['appendix_i_ncr_per_step']['NDS']})"
    )
    print(
        f"targets: NCR ≥ myopic {out['targets']['ncr_vs_myopic']}, wastage ≤ NDS {out['targets']['wastage_vs_nds']}"
    )
    for seed, w in zip(out["seeds"], out.get("weights") or [], strict=False):
        print(f"seed {seed} weights, secure − EDE twin:")
        for grp, v in w.items():
            print(f"  {grp:<16} MAE {v['mae']:.3e}  RMSE {v['rmse']:.3e}  max {v['max']:.3e}")
    for seed, c in zip(out["seeds"], out.get("cost") or [], strict=False):
        if c:
            print(
                f"seed {seed} cost: {c['secure_update_s']:.3f} s/update ({c['ratio_to_plain']:.0f}x "
                f"plaintext), {c['mb_per_update']:.1f} MB, {c['rounds_per_update']:.0f} rounds"
            )
    print(f"wall time {out['wall_s']:.0f} s")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the comparison (see the module docstring) and print it."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10, help="training seeds 0..N-1 (default 10)")
    p.add_argument(
        "--steps", type=int, default=None, help="secure-phase env steps (default: preset)"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    p.add_argument("--plaintext-only", action="store_true", help="skip the secure runs")
    p.add_argument(
        "--jobs", type=int, default=1, help="plaintext-only: training seeds run in parallel"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    t0 = time.perf_counter()
    cfg, env_kwargs, steps = pipeline(args.set, args.steps)
    seeds = eval_seeds(EVAL_EPISODES)
    mode = "plaintext" if args.plaintext_only else "secure"
    per_seed: dict[str, list[dict[str, float]]] = {}
    weights, costs = [], []
    pooled: list[dict[str, dict[str, float]]] = []
    if mode == "plaintext" and args.jobs > 1:
        import multiprocessing

        jobs = [(cfg, env_kwargs, s, steps, seeds) for s in range(args.seeds)]
        with multiprocessing.get_context("spawn").Pool(min(args.jobs, args.seeds)) as pool:
            pooled = pool.map(_plaintext_rows, jobs)
    for s in range(args.seeds):
        if pooled:
            rows = pooled[s]
        else:
            rows, twin = plaintext_seed(cfg, env_kwargs, s, steps, seeds)
        if mode == "secure":
            row, err, cost = secure_seed(args.set, args.steps, s, seeds, twin)
            rows = {"secure 2PC": row, **rows}
            weights.append(err)
            costs.append(cost)
        for m, r in rows.items():
            per_seed.setdefault(m, []).append(r)
        if not args.json:
            ncr = ", ".join(f"{m} {r['total_ncr']:.0f}" for m, r in rows.items())
            print(f"seed {s}: total NCR {ncr}", flush=True)
    out: dict[str, Any] = {
        "mode": mode,
        "seeds": list(range(args.seeds)),
        "steps": steps,
        "max_cycles": maddpg.game_config(env_kwargs).max_cycles,
        "config": {k: v for k, v in vars(cfg).items()},
        "env_kwargs": env_kwargs,
        "eval_seeds": list(seeds),
        "per_seed": per_seed,
        "table": summarise(per_seed),
        **compare(per_seed, "secure 2PC" if mode == "secure" else "EDE twin"),
        "weights": weights,
        "cost": costs,
        "paper": PAPER,
        "wall_s": time.perf_counter() - t0,
    }
    if args.json:
        print(json.dumps(out, sort_keys=True, default=float))
    else:
        print_report(out)
    return out


if __name__ == "__main__":
    main()
