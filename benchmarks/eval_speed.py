"""``train.py eval`` on a DQN run against the same evaluation from Python, one thread.

Trains (or takes, with ``--run``) a DQN run on GreedyMouse with the preset network, then
measures in the same process, alternating, ``--repeats`` times each:

* **cli**: the wall time of ``python train.py eval RUN --episodes N --json`` as a
  subprocess: interpreter start, imports, loading ``model.pt`` and the evaluation —
  everything a user waits for;
* **python_fresh**: the same evaluation as a user does it from Python, also in a fresh
  interpreter (``python -c``: ``torch.set_num_threads(1)``, ``load_run``, ``evaluate``),
  everything included — the like-for-like baseline of the target;
* **python**: the same evaluation in this (warm) process, timed around
  :func:`smpc_gym.training.evaluate.evaluate` only: the evaluation's own cost, so the
  start-up share of both subprocesses can be read off;

and prints the medians and the ratios ``ratio`` = cli / python_fresh (the target is
≤ 1.2) and ``ratio_to_warm`` = cli / python. All must give the same mean return
(checked). ``--json`` prints one JSON object with stable keys::

    {"run": str, "episodes": int, "repeats": int, "load": [float, float, float],
     "cli_seconds": [float, ...], "python_fresh_seconds": [float, ...],
     "python_seconds": [float, ...], "cli_median_s": float,
     "python_fresh_median_s": float, "python_median_s": float, "ratio": float,
     "ratio_to_warm": float,
     "cli_cpu_seconds": [float, ...], "python_cpu_seconds": [float, ...],
     "cpu_ratio": float, "target_ratio": 1.2, "mean_return": float}

The CPU seconds (user + system: the subprocess's, and this process's during
``evaluate``) are reported beside the wall times because on a loaded machine the wall
time of a short subprocess mostly measures waiting for a core.

``load`` is the 1/5/15-minute load average at the start (timings are noisy on a shared
machine: compare the ratio, not the seconds).

Usage: ``python benchmarks/eval_speed.py [--run RUN] [--episodes 20] [--repeats 3] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.2


def _train_run(out: Path) -> Path:
    """A short DQN run with the preset network (the weights do not change the cost)."""
    from smpc_gym.training.config import resolve
    from smpc_gym.training.run import train

    run = resolve("dqn", "greedy_mouse", seed=0, steps=2000, sets=["learning_starts=500"])
    train(run, out, quiet=True, eval_episodes=1, tensorboard=False)
    return out


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cli_eval(run: Path, episodes: int) -> tuple[float, float, dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, str(ROOT / "train.py"), "eval", str(run)]
    argv += ["--episodes", str(episodes), "--json"]
    c0, t0 = _children_cpu(), time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    return wall, cpu, json.loads(done.stdout)


_FRESH = """
import json, sys, torch
torch.set_num_threads(1)
from smpc_gym.training.evaluate import evaluate
from smpc_gym.training.run import load_run, read_run_config
run = sys.argv[1]
algo = load_run(run)
print(json.dumps(evaluate(algo, read_run_config(run)["env"], algo.env_kwargs,
                          episodes=int(sys.argv[2]))))
"""


def _python_fresh_eval(run: Path, episodes: int) -> tuple[float, float, dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, "-c", _FRESH, str(run), str(episodes)]
    c0, t0 = _children_cpu(), time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"the fresh-interpreter evaluation failed:\n{done.stderr}")
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    return wall, cpu, json.loads(done.stdout.strip().splitlines()[-1])


def _python_eval(run: Path, episodes: int) -> tuple[float, float, dict[str, Any]]:
    import torch

    from smpc_gym.training.evaluate import evaluate
    from smpc_gym.training.run import load_run, read_run_config

    torch.set_num_threads(1)
    algo = load_run(run)
    env = read_run_config(run)["env"]
    c0, t0 = time.process_time(), time.perf_counter()
    result = evaluate(algo, env, algo.env_kwargs, episodes=episodes)
    return time.perf_counter() - t0, time.process_time() - c0, result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", help="an existing DQN run folder (default: train a short one)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    load = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else _train_run(Path(tmp) / "dqn")
        _python_eval(run, 1)  # warm the imports of the baseline once
        cli, py, cli_cpu, py_cpu, returns = [], [], [], [], set()
        fresh: list[float] = []
        for _ in range(args.repeats):
            t, c, r = _cli_eval(run, args.episodes)
            cli.append(t)
            cli_cpu.append(c)
            returns.add(round(r["mean_return"], 6))
            t, c, r = _python_fresh_eval(run, args.episodes)
            fresh.append(t)
            returns.add(round(r["mean_return"], 6))
            t, c, r = _python_eval(run, args.episodes)
            py.append(t)
            py_cpu.append(c)
            returns.add(round(r["mean_return"], 6))
        if len(returns) != 1:
            raise SystemExit(f"cli and python evaluations disagree: mean returns {returns}")
        out = {
            "run": str(args.run or "a fresh 2,000-step dqn run (preset network)"),
            "episodes": args.episodes,
            "repeats": args.repeats,
            "load": load,
            "cli_seconds": cli,
            "python_fresh_seconds": fresh,
            "python_seconds": py,
            "cli_median_s": statistics.median(cli),
            "python_fresh_median_s": statistics.median(fresh),
            "python_median_s": statistics.median(py),
            "ratio": statistics.median(cli) / statistics.median(fresh),
            "ratio_to_warm": statistics.median(cli) / statistics.median(py),
            "cli_cpu_seconds": cli_cpu,
            "python_cpu_seconds": py_cpu,
            "cpu_ratio": statistics.median(cli_cpu) / statistics.median(py_cpu),
            "target_ratio": TARGET,
            "mean_return": returns.pop(),
        }
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        print(f"{args.episodes} evaluation episodes of {out['run']}, median of {args.repeats}:")
        print(f"  train.py eval (subprocess, all included):  {out['cli_median_s']:8.2f} s")
        print(f"  Python, fresh interpreter, one thread:     {out['python_fresh_median_s']:8.2f} s")
        print(f"  evaluate() alone in a warm process:        {out['python_median_s']:8.2f} s")
        print(
            f"  ratio {out['ratio']:.2f} (target <= {TARGET}); to the warm call alone "
            f"{out['ratio_to_warm']:.2f}"
        )
        print(
            f"  CPU seconds: {statistics.median(cli_cpu):.2f} vs {statistics.median(py_cpu):.2f}"
            f", ratio {out['cpu_ratio']:.2f} (less sensitive to the machine's load)"
        )
    return out


if __name__ == "__main__":
    main()
