"""PATE on GreedyMouse over several noise levels: privacy (ε) vs the student's return.

``--teachers`` tabular Q teachers are trained once, each on its own private worlds
(:func:`smpc_gym.studies.pate.train_teachers`), and ``--queries`` public states are
collected once; then for each γ in ``--gammas`` the votes are answered with Laplace
noisy-max (noise scale 1/γ), a student is trained on the labels and evaluated, and the
moments accountant of Papernot et al. 2017 gives the data-independent and data-dependent
ε at δ = 1e-5 (λ ≤ 8). Optionally (``--sigmas``) the same with Gaussian GNMax
(data-independent RDP ε only). Baselines in the same run: the teachers' own return (mean
of 5) and a random policy; ``student_vs_teacher`` = (student − random)/(teacher − random).

JSON (``--json``): ``{"config": {...}, "rows": [{"mechanism", "gamma", "sigma",
"eps_data_independent", "lambda_data_independent", "eps_data_dependent",
"lambda_data_dependent", "teacher_agreement", "label_accuracy", "student_reward_per_step",
"teacher_reward_per_step", "random_reward_per_step", "student_vs_teacher"}]}``
(``eps_data_dependent`` is null for GNMax).

Usage: ``python benchmarks/pate.py [--teachers 40] [--queries 1000] [--json]``; saves
``docs/img/pate.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from smpc_gym.studies.pate import PATEConfig, collect_public_states, run_pate, train_teachers


def main() -> None:
    """Train teachers once, sweep the noise, print the table, save the figure."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teachers", type=int, default=40)
    p.add_argument("--teacher-steps", type=int, default=20_000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--gammas", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2, 0.5, 2.0])
    p.add_argument("--sigmas", type=float, nargs="*", default=[5.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs/img/pate.png")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = PATEConfig(
        num_teachers=args.teachers, teacher_steps=args.teacher_steps, num_queries=args.queries
    )
    teachers = train_teachers(cfg, args.seed)
    public = collect_public_states(cfg, 10_000_019 + args.seed, np.random.default_rng(args.seed))
    rows = []
    sweeps = [("laplace", g, cfg.sigma) for g in args.gammas]
    sweeps += [("gaussian", cfg.gamma, s) for s in args.sigmas]
    for mech, gamma, sigma in sweeps:
        c = dataclasses.replace(cfg, mechanism=mech, gamma=gamma, sigma=sigma)
        r = run_pate(c, args.seed, teachers=teachers, public_obs=public)
        gain = (r["student_reward_per_step"] - r["random_reward_per_step"]) / (
            r["teacher_reward_per_step"] - r["random_reward_per_step"]
        )
        rows.append(
            {
                "mechanism": mech,
                "gamma": gamma if mech == "laplace" else None,
                "sigma": sigma if mech == "gaussian" else None,
                **{
                    k: r.get(k)
                    for k in (
                        "eps_data_independent",
                        "lambda_data_independent",
                        "eps_data_dependent",
                        "lambda_data_dependent",
                        "teacher_agreement",
                        "label_accuracy",
                        "student_reward_per_step",
                        "teacher_reward_per_step",
                        "random_reward_per_step",
                    )
                },
                "student_vs_teacher": gain,
            }
        )
    _plot(rows, Path(args.out))
    if args.json:
        print(json.dumps({"config": vars(args), "rows": rows}))
        return
    print(
        f"PATE, {args.teachers} tabular-Q teachers x {args.teacher_steps} private steps, "
        f"{args.queries} public queries, delta=1e-5, moments 1..8"
    )
    print(
        f"teacher agreement {rows[0]['teacher_agreement']:.3f}; teacher reward/step "
        f"{rows[0]['teacher_reward_per_step']:.2f}; random {rows[0]['random_reward_per_step']:.2f}"
    )
    print(
        f"{'noise':<16}{'eps (data-indep, l)':>22}{'eps (data-dep, l)':>20}{'label acc':>11}"
        f"{'student r/step':>16}{'vs teacher':>12}"
    )
    for r in rows:
        noise = (
            f"Lap 1/{r['gamma']:g}" if r["mechanism"] == "laplace" else f"GNMax s={r['sigma']:g}"
        )
        dep = (
            f"{r['eps_data_dependent']:>14.2f} ({r['lambda_data_dependent']:.0f})"
            if r["eps_data_dependent"] is not None
            else f"{'-':>18}"
        )
        print(
            f"{noise:<16}{r['eps_data_independent']:>16.2f} ({r['lambda_data_independent']:.0f})"
            f"{dep:>20}{r['label_accuracy']:>11.3f}{r['student_reward_per_step']:>16.2f}"
            f"{r['student_vs_teacher']:>12.2f}"
        )
    print(f"figure: {args.out}")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lap = [r for r in rows if r["mechanism"] == "laplace"]
    g = [r["gamma"] for r in lap]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.plot(g, [r["eps_data_independent"] for r in lap], "o-", label="data-independent")
    a1.plot(g, [r["eps_data_dependent"] for r in lap], "s-", label="data-dependent")
    a1.set_xscale("log")
    a1.set_yscale("log")
    a1.set_xlabel("γ (Laplace noise scale 1/γ per vote count)")
    a1.set_ylabel("ε at δ=1e-5 (moments accountant)")
    a1.legend()
    a2.plot(g, [r["student_reward_per_step"] for r in lap], "o-", label="student")
    a2.axhline(lap[0]["teacher_reward_per_step"], color="tab:green", ls="--", label="teachers")
    a2.axhline(lap[0]["random_reward_per_step"], color="grey", ls=":", label="random policy")
    a2.set_xscale("log")
    a2.set_xlabel("γ")
    a2.set_ylabel("reward per step on public worlds")
    a2.legend()
    for a in (a1, a2):
        a.grid(alpha=0.3)
    fig.suptitle("PATE on GreedyMouse: privacy vs student quality")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
