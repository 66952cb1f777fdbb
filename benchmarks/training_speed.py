"""Training speed of the GreedyMouse learners, with baselines measured in the same run.

Prints, on the classic map with each algorithm's preset (``agents/<algo>.yaml``):

* **tabular_q time-to-target**: training wall time (evaluations excluded) until the
  policy first meets the issue's target — cheese per 1,000 steps ≥ 16 and deaths per
  1,000 steps ≤ 62 on 20 evaluation episodes (preset ``eval_epsilon`` = 0.05) — checked
  every ``--check-every`` env steps, up to 300k steps.
* **env-steps/s during training** of tabular_q, bandit, dqn, fed_dqn, sb3_dqn and sb3_ppo,
  each next to the *same worlds stepped with random actions and no learning* (the
  env-only baseline measured in this run; ratio = training speed / env-only speed), and
  next to the original implementation's figures for scale (about 1,800 steps/s tabular,
  500 steps/s with its neural network — constants, not measured here).

``--json`` prints one JSON object with stable keys::

    {"tabular_target": {"reached": bool, "env_steps": int | null,
                        "train_seconds": float | null, "eval": {...}},
     "speed": {algo: {"steps": int, "seconds": float, "steps_per_s": float,
                      "env_only_steps_per_s": float, "ratio_to_env_only": float,
                      "original_steps_per_s": float, "ratio_to_original": float}}}

Usage: ``python benchmarks/training_speed.py [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

ORIGINAL = {"tabular": 1800.0, "neural": 500.0}
ALGOS = ("tabular_q", "bandit", "dqn", "fed_dqn", "sb3_dqn", "sb3_ppo")


class _Hooks:
    def log(self, step: int, metrics: Any) -> None:
        pass

    def should_checkpoint(self, step: int) -> bool:
        return False

    def checkpoint(self, step: int) -> None:
        pass


def _build(name: str, seed: int = 0) -> Any:
    from smpc_gym.training.config import build_algorithm, resolve

    return build_algorithm(resolve(name, "greedy_mouse", seed=seed))


def _env_only_speed(algo: Any, steps: int) -> float:
    """Steps/s of the algorithm's own worlds with random actions (no learning)."""
    import gymnasium as gym

    from smpc_gym.agents.common.vector_worlds import VectorWorlds

    cfg = algo.config
    rng = np.random.default_rng(0)
    if algo.name.startswith("sb3_"):
        env = algo.venv
        n = env.num_envs
        env.reset()
        t = time.perf_counter()
        for _ in range(steps // n):
            env.step(rng.integers(0, 8, n))
        return (steps // n) * n / (time.perf_counter() - t)
    n = cfg.num_envs
    worlds = [VectorWorlds(algo.env_kwargs, n, 0) for _ in range(getattr(cfg, "holders", 1))]
    done = 0
    t = time.perf_counter()
    while done < steps:
        for w in worlds:
            done += len(w.step(rng.integers(0, 8, n)))
    sec = time.perf_counter() - t
    for w in worlds:
        w.close()
    del gym
    return done / sec


def measure_speed(name: str, steps: int) -> dict[str, float]:
    """Train ``name`` for ``steps`` env steps (after a warm-up past learning_starts)."""
    algo = _build(name)
    warm = int(getattr(algo.config, "learning_starts", 0) or 0) + 1000
    algo.train(warm, _Hooks())
    start = algo.env_steps
    t = time.perf_counter()
    algo.train(start + steps, _Hooks())
    sec = time.perf_counter() - t
    sps = (algo.env_steps - start) / sec
    env_only = _env_only_speed(algo, min(steps, 50_000))
    orig = ORIGINAL["tabular"] if name in ("tabular_q", "bandit") else ORIGINAL["neural"]
    return {
        "steps": int(algo.env_steps - start),
        "seconds": sec,
        "steps_per_s": sps,
        "env_only_steps_per_s": env_only,
        "ratio_to_env_only": sps / env_only,
        "original_steps_per_s": orig,
        "ratio_to_original": sps / orig,
    }


def tabular_time_to_target(check_every: int, max_steps: int, seed: int = 0) -> dict[str, Any]:
    """Training wall time until tabular_q meets cheese ≥ 16 and deaths ≤ 62 per 1k steps."""
    from smpc_gym.training.evaluate import evaluate

    algo = _build("tabular_q", seed)
    train_sec = 0.0
    last: dict[str, Any] = {}
    while algo.env_steps < max_steps:
        t = time.perf_counter()
        algo.train(algo.env_steps + check_every, _Hooks())
        train_sec += time.perf_counter() - t
        r = evaluate(algo, "greedy_mouse", episodes=20)
        last = {
            k: r[k]
            for k in (
                "mean_return",
                "cheese_per_1000_steps",
                "deaths_per_1000_steps",
                "exploration",
            )
        }
        if r["cheese_per_1000_steps"] >= 16 and r["deaths_per_1000_steps"] <= 62:
            return {
                "reached": True,
                "env_steps": int(algo.env_steps),
                "train_seconds": train_sec,
                "eval": last,
            }
    return {"reached": False, "env_steps": None, "train_seconds": None, "eval": last}


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description="GreedyMouse learners: training speed")
    p.add_argument("--quick", action="store_true", help="fewer steps (smoke run)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--check-every", type=int, default=25_000)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    if "tabular_q" in args.algos:
        out["tabular_target"] = tabular_time_to_target(
            args.check_every, 50_000 if args.quick else 300_000
        )
    out["speed"] = {}
    for name in args.algos:
        tab = name in ("tabular_q", "bandit")
        steps = (20_000 if tab else 2_000) if args.quick else (200_000 if tab else 20_000)
        out["speed"][name] = measure_speed(name, steps)
    if args.json:
        print(json.dumps(out))
        return
    if "tabular_target" in out:
        tt = out["tabular_target"]
        if tt["reached"]:
            print(
                f"tabular_q reached cheese/1k ≥ 16 and deaths/1k ≤ 62 after {tt['env_steps']:,} "
                f"env steps in {tt['train_seconds']:.1f} s of training "
                f"(eval: cheese/1k {tt['eval']['cheese_per_1000_steps']:.1f}, deaths/1k "
                f"{tt['eval']['deaths_per_1000_steps']:.1f}, ε={tt['eval']['exploration']})"
            )
        else:
            print(f"tabular_q did NOT reach the target; last eval {tt['eval']}")
    print(
        f"{'algo':10s} {'steps/s':>9s} {'env-only':>10s} {'ratio':>6s} {'original':>9s} {'ratio':>6s}"
    )
    for name, s in out["speed"].items():
        print(
            f"{name:10s} {s['steps_per_s']:9.0f} {s['env_only_steps_per_s']:10.0f} "
            f"{s['ratio_to_env_only']:6.3f} {s['original_steps_per_s']:9.0f} "
            f"{s['ratio_to_original']:6.1f}x"
        )


if __name__ == "__main__":
    main()
