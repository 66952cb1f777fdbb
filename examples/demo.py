"""`make demo`: a short end-to-end tour (a few minutes on 2 cores).

    python examples/demo.py [--quick] [--out runs/demo]

1. trains a tabular Q-learning mouse on the classic map (train.py's runner: run folder,
   checkpoints, eval.json), plus the random and scripted baselines on the same seeds;
2. saves a picture of the trained mouse playing (runs/demo/mouse_strip.png: 8 frames in a
   2 x 4 grid, each labelled with its step, about 1,000 x 520 pixels);
3. trains the supply-chain agents briefly: MADDPG with explicit data exchange and
   independent learners without data sharing (NDS), beside the random and myopic
   baselines, in ``CHAIN_SEGMENTS`` segments (the runner's ``--resume --steps``), each
   ending with the runner's evaluation on the fixed evaluation seeds;
4. draws the curves (the mouse's training curve; for the supply chain the *evaluation*
   curves, greedy on the fixed seeds with 95% CIs, not the exploration-noised training
   returns) and prints one comparison table.

`--quick` (or SMPC_DEMO_QUICK=1) shrinks every run to a smoke test (used by the tests).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smpc_gym.training.cli import main as train_cli
from smpc_gym.training.evaluate import normalized_score
from smpc_gym.training.plot import plot_runs
from smpc_gym.training.run import load_run

FULL = {"mouse_steps": 150_000, "chain_steps": 2_000, "episodes": 20, "mouse_len": 1000}
QUICK = {"mouse_steps": 1_000, "chain_steps": 80, "episodes": 2, "mouse_len": 50}

#: Evaluation points of the supply-chain curves (the runs are trained in this many parts).
CHAIN_SEGMENTS = 4


def train(algo: str, env: str, out: Path, steps: int, episodes: int, extra: list[str]) -> dict:
    """Train one run with the same CLI as train.py; return its eval.json."""
    argv = ["--algo", algo, "--env", env, "--steps", str(steps), "--out", str(out)]
    argv += ["--overwrite", "--eval-episodes", str(episodes), "--threads", "1", *extra]
    code = train_cli(argv)
    if code != 0:
        raise SystemExit(f"training {algo} on {env} failed (exit {code})")
    return json.loads((out / "eval.json").read_text())


def train_segments(
    algo: str, env: str, out: Path, steps: int, episodes: int, extra: list[str], parts: int
) -> list[tuple[int, dict]]:
    """Train in ``parts`` equal segments (the first a new run, the rest ``--resume --steps``
    of the same run folder); return ``(env step, eval.json)`` after each: the evaluation
    curve on the fixed seeds, measured by the runner's own evaluation."""
    points = []
    for k in range(1, parts + 1):
        target = max(1, steps * k // parts)
        if k == 1:
            result = train(algo, env, out, target, episodes, extra)
        else:
            argv = ["--resume", "--out", str(out), "--steps", str(target)]
            argv += ["--eval-episodes", str(episodes), "--threads", "1"]
            argv += [a for a in ("--quiet", "--no-tensorboard") if a in extra]
            if train_cli(argv) != 0:
                raise SystemExit(f"training {algo} on {env} failed at step {target}")
            result = json.loads((out / "eval.json").read_text())
        points.append((target, result))
    return points


def mouse_strip(
    run: Path, path: Path, frames: int = 8, every: int = 3, seed: int = 1, cols: int = 4
) -> Path:
    """``frames`` snapshots of the trained mouse, ``every`` steps apart, in a grid of
    ``cols`` columns, each titled with its step (a figure about 1,000 pixels wide)."""
    import gymnasium as gym
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algo = load_run(run)
    env = gym.make("GreedyMouse-v0", render_mode="rgb_array", **algo.env_kwargs)
    obs, _ = env.reset(seed=seed)
    shots = [(0, env.render())]
    for t in range(1, frames * every):
        obs, *_ = env.step(algo.act(obs))
        if t % every == 0:
            shots.append((t, env.render()))
    env.close()
    rows = -(-len(shots) // cols)
    h, w = shots[0][1].shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(10, 10 * rows * h / (cols * w) + 0.6))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, (t, frame) in zip(np.ravel(axes), shots, strict=False):
        ax.imshow(frame)
        ax.set_title(f"step {t}", fontsize=10)
    fig.suptitle(f"trained {algo.name} mouse, classic map, evaluation seed {seed}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_eval_curves(
    curves: dict[str, list[tuple[int, dict]]], baselines: dict[str, dict], path: Path
) -> Path:
    """Evaluation return (mean over the fixed seeds, 95% CI band) against env steps for
    the learners, with the baselines' evaluations as dashed lines (and their CI bands)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, points) in enumerate(curves.items()):
        x = [p[0] for p in points]
        y = np.array([p[1]["mean_return"] for p in points])
        ci = np.array([p[1]["ci95_return"] for p in points])
        ax.plot(x, y, marker="o", color=f"C{i}", label=name)
        ax.fill_between(x, y - ci, y + ci, color=f"C{i}", alpha=0.2)
    for j, (name, r) in enumerate(baselines.items(), start=len(curves)):
        m, ci = r["mean_return"], r["ci95_return"]
        ax.axhline(m, color=f"C{j}", ls="--", label=f"{name} (baseline)")
        ax.axhspan(m - ci, m + ci, color=f"C{j}", alpha=0.1)
    episodes = next(iter(baselines.values()))["episodes"] if baselines else "?"
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return (joint, per episode)")
    ax.set_title(f"SupplyChain: greedy evaluation on {episodes} fixed seeds (95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def table(rows: list[dict[str, Any]]) -> None:
    """Print the comparison table with rich."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title="smpc_gym demo: evaluation on fixed seeds")
    for col in ("env", "algo", "mean return", "details", "normalized"):
        t.add_column(col, justify="left" if col in ("env", "algo", "details") else "right")
    for r in rows:
        t.add_row(r["env"], r["algo"], f"{r['mean_return']:.1f}", r["details"], r["normalized"])
    Console().print(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", default=bool(os.environ.get("SMPC_DEMO_QUICK"))
    )
    parser.add_argument("--out", default="runs/demo")
    args = parser.parse_args()
    torch.set_num_threads(1)
    s = QUICK if args.quick else FULL
    out = Path(args.out)
    quiet = ["--quiet", "--no-tensorboard"] if args.quick else []

    # 1. GreedyMouse: tabular Q-learning against the two baselines.
    mouse_len = ["--set", f"env.max_episode_steps={s['mouse_len']}"]
    mouse: dict[str, dict] = {}
    baseline_steps = min(2000, s["mouse_steps"])
    runs = (
        ("tabular_q", s["mouse_steps"]),
        ("random", baseline_steps),
        ("heuristic", baseline_steps),
    )
    for algo, steps in runs:
        extra = [*mouse_len, *quiet]
        if algo == "tabular_q":
            extra += ["--set", f"log_every={max(1000, s['mouse_steps'] // 50)}"]
            extra += ["--eval-epsilon", "0.05"]  # breaks deterministic loops of a Q-table
        mouse[algo] = train(algo, "greedy_mouse", out / algo, steps, s["episodes"], extra)

    # 2. a picture of the trained mouse
    strip = mouse_strip(out / "tabular_q", out / "mouse_strip.png")

    # 3. SupplyChain: MADDPG (explicit data exchange) vs independent learners (NDS).
    chain: dict[str, dict] = {}
    chain_curves: dict[str, list[tuple[int, dict]]] = {}
    for algo in ("maddpg", "nds", "random", "heuristic"):
        extra = ["--set", "log_every=40", *quiet]
        run_dir = out / f"{algo}-chain"
        if algo in ("maddpg", "nds"):
            extra += ["--set", "buffer_size=100000"]
            chain_curves[algo] = train_segments(
                algo,
                "supply_chain",
                run_dir,
                s["chain_steps"],
                s["episodes"],
                extra,
                CHAIN_SEGMENTS,
            )
            chain[algo] = chain_curves[algo][-1][1]
        else:
            chain[algo] = train(
                algo, "supply_chain", run_dir, s["chain_steps"], s["episodes"], extra
            )

    # 4. curves + table
    curves = plot_runs(
        [out / "tabular_q"],
        out=out / "curves_greedy_mouse.png",
        window=3,
        baselines=[out / "random", out / "heuristic"],
    )
    plot_eval_curves(
        chain_curves,
        {a: chain[a] for a in ("random", "heuristic")},
        out / "curves_supply_chain.png",
    )
    rows = []
    r_rand, r_heur = mouse["random"]["mean_return"], mouse["heuristic"]["mean_return"]
    for algo, r in mouse.items():
        rows.append(
            {
                "env": "greedy_mouse",
                "algo": algo,
                "mean_return": r["mean_return"],
                "details": f"cheese/1k {r['cheese_per_1000_steps']:.1f}, "
                f"deaths/1k {r['deaths_per_1000_steps']:.1f}, ε={r['exploration']}",
                "normalized": f"{normalized_score(r['mean_return'], r_rand, r_heur):.2f}",
            }
        )
    for algo, r in chain.items():
        rows.append(
            {
                "env": "supply_chain",
                "algo": algo,
                "mean_return": r["mean_return"],
                "details": f"NCR {r['total_ncr']:.0f}, wastage {r['total_wastage_units']:.1f} units",
                "normalized": "",
            }
        )
    table(rows)
    print(f"mouse strip: {strip}\nlearning curves: {curves}, {out / 'curves_supply_chain.png'}")
    print(f"run folders under {out}/ (config.yaml, metrics.csv, checkpoints/, model.pt, eval.json)")


if __name__ == "__main__":
    main()
