"""Learning curves of the GreedyMouse learners on the classic map → docs/img/learning_curves.png.

Trains ``tabular_q``, ``bandit``, ``dqn``, ``fed_dqn`` and ``sb3_dqn`` with their presets
(``agents/<algo>.yaml``, section ``greedy_mouse``) for ``--steps`` env steps and, every
``--eval-every`` env steps, evaluates the current policy with the runner's evaluation
(:func:`smpc_gym.training.evaluate.evaluate`: ``--episodes`` episodes on the fixed
evaluation seeds; greedy, except the tabular agents which use their preset
``eval_epsilon`` = 0.05). The random and scripted-heuristic returns on the same seeds
are measured in the same run and drawn as reference lines.

Usage::

    python benchmarks/learning_curves.py                 # all five, 300k steps, PNG
    python benchmarks/learning_curves.py --algos dqn fed_dqn --steps 100000 --json

``--json`` prints one JSON object: ``{"date", "command", "machine", "load_before",
"steps", "eval_every", "episodes", "seed",
"reference": {"random", "heuristic"}, "curves": {algo: {"steps": [...],
"mean_return": [...], "ci95_return": [...], "cheese_per_1000_steps": [...],
"deaths_per_1000_steps": [...], "normalized_score": [...], "train_seconds": float}}}``.
``--data FILE`` also writes that object to FILE; ``--plot-only FILE...`` redraws the PNG
from such files without training (merging their curves, so algorithms can be run as
separate processes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

ALGOS = ("tabular_q", "bandit", "dqn", "fed_dqn", "sb3_dqn")
COLORS = {
    "tabular_q": "tab:blue",
    "bandit": "tab:cyan",
    "dqn": "tab:red",
    "fed_dqn": "tab:orange",
    "sb3_dqn": "tab:green",
    "sb3_ppo": "tab:purple",
}


class _EvalHooks:
    """Runner hooks that evaluate the policy whenever a multiple of ``every`` is passed."""

    def __init__(self, algo: Any, every: int, episodes: int, ref: dict[str, float]) -> None:
        self.algo, self.every, self.episodes, self.ref = algo, every, episodes, ref
        self.next = every
        self.curve: dict[str, list[float]] = {
            k: []
            for k in (
                "steps",
                "mean_return",
                "ci95_return",
                "cheese_per_1000_steps",
                "deaths_per_1000_steps",
                "normalized_score",
            )
        }
        self.eval_seconds = 0.0
        self.on_eval: Any = None

    def evaluate_now(self, step: int) -> None:
        from smpc_gym.training.evaluate import evaluate, normalized_score

        t = time.perf_counter()
        r = evaluate(self.algo, "greedy_mouse", episodes=self.episodes)
        self.eval_seconds += time.perf_counter() - t
        self.curve["steps"].append(step)
        for k in ("mean_return", "ci95_return", "cheese_per_1000_steps", "deaths_per_1000_steps"):
            self.curve[k].append(float(r[k]))
        self.curve["normalized_score"].append(
            normalized_score(r["mean_return"], self.ref["random"], self.ref["heuristic"])
        )
        print(
            f"  {self.algo.name:10s} step {step:7d}  return {r['mean_return']:8.0f} "
            f"± {r['ci95_return']:5.0f}  cheese/1k {r['cheese_per_1000_steps']:5.1f}  "
            f"deaths/1k {r['deaths_per_1000_steps']:5.1f}",
            file=sys.stderr,
            flush=True,
        )
        if self.on_eval is not None:
            self.on_eval()

    def log(self, step: int, metrics: Any) -> None:
        if step >= self.next:
            self.evaluate_now(step)
            self.next = (step // self.every + 1) * self.every

    def should_checkpoint(self, step: int) -> bool:
        return False

    def checkpoint(self, step: int) -> None:
        pass


def run_curves(
    algos: list[str],
    steps: int,
    every: int,
    episodes: int,
    seed: int,
    data_path: Path | None = None,
) -> dict[str, Any]:
    """Train each algorithm and return the curves (the ``--json`` object). With
    ``data_path`` the object so far is rewritten after every evaluation, so a long run
    that is stopped early still leaves its partial curves."""
    from smpc_gym.training.config import build_algorithm, resolve
    from smpc_gym.training.evaluate import eval_seeds, reference_returns

    ref = reference_returns("greedy_mouse", {}, eval_seeds(episodes))
    from record import run_info  # benchmarks/record.py: date, command, machine

    out: dict[str, Any] = {
        **run_info(),
        "steps": steps,
        "eval_every": every,
        "episodes": episodes,
        "seed": seed,
        "reference": ref,
        "curves": {},
    }
    for name in algos:
        algo = build_algorithm(resolve(name, "greedy_mouse", seed=seed, steps=steps))
        hooks = _EvalHooks(algo, every, episodes, ref)
        out["curves"][name] = hooks.curve
        if data_path is not None:
            hooks.on_eval = lambda: _write(data_path, out)
        hooks.evaluate_now(0)
        t = time.perf_counter()
        algo.train(steps, hooks)
        if hooks.curve["steps"][-1] < algo.env_steps:
            hooks.evaluate_now(algo.env_steps)
        curve = dict(hooks.curve)
        curve["train_seconds"] = time.perf_counter() - t - hooks.eval_seconds
        out["curves"][name] = curve
        if data_path is not None:
            _write(data_path, out)
    return out


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def plot(data: dict[str, Any], path: Path) -> None:
    """Two panels: full return range (left) and a zoom on the learned policies (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ref = data["reference"]
    for ax, zoom in zip(axes, (False, True), strict=True):
        for name, c in data["curves"].items():
            x = [s / 1000 for s in c["steps"]]
            y, e = c["mean_return"], c["ci95_return"]
            ax.plot(x, y, marker="o", ms=3, color=COLORS.get(name), label=name)
            ax.fill_between(
                x,
                [a - b for a, b in zip(y, e, strict=True)],
                [a + b for a, b in zip(y, e, strict=True)],
                color=COLORS.get(name),
                alpha=0.15,
            )
        ax.axhline(ref["heuristic"], color="k", ls="--", lw=1, label="scripted heuristic")
        ax.axhline(ref["random"], color="gray", ls=":", lw=1, label="random")
        ax.set_xlabel("env steps (thousands)")
        ax.set_ylabel("evaluation return per 1,000-step episode")
        ax.grid(alpha=0.3)
        if zoom:
            ax.set_ylim(-4500, 1000)
            ax.set_title("zoom")
        else:
            ax.set_title(
                f"GreedyMouse classic map: mean of {data['episodes']} eval episodes "
                f"(95% CI), seed {data['seed']}",
                fontsize=9,
            )
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=[*ALGOS, "sb3_ppo"])
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--eval-every", type=int, default=25_000)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("docs/img/learning_curves.png"))
    p.add_argument("--data", type=Path, help="also write the curves JSON here")
    p.add_argument(
        "--plot-only",
        type=Path,
        nargs="+",
        help="redraw the PNG from --data file(s) (curves of several files are merged)",
    )
    p.add_argument("--json", action="store_true", help="print the curves as one JSON object")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.plot_only:
        data = json.loads(args.plot_only[0].read_text())
        for extra in args.plot_only[1:]:
            data["curves"].update(json.loads(extra.read_text())["curves"])
    else:
        data = run_curves(
            args.algos, args.steps, args.eval_every, args.episodes, args.seed, args.data
        )
    plot(data, args.out)
    if args.json:
        print(json.dumps(data))
    else:
        ref = data["reference"]
        print(f"random {ref['random']:.0f}   heuristic {ref['heuristic']:.0f}")
        for name, c in data["curves"].items():
            print(
                f"{name:10s} final return {c['mean_return'][-1]:8.0f}  normalized "
                f"{c['normalized_score'][-1]:.2f}  best {max(c['mean_return']):8.0f}  "
                f"train {c.get('train_seconds', float('nan')):.0f}s"
            )
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
