"""Environment throughput: GreedyMouse (single, vector, multi-mouse) and SupplyChain vs CartPole-v1.

Every figure is measured in the same run as its CartPole-v1 yardstick and printed with the
ratio to it:

* ``greedy_mouse_make`` / ``greedy_mouse_unwrapped``: ``gym.make("GreedyMouse-v0")`` (with
  Gymnasium's default wrappers) and its ``.unwrapped`` env, vs ``cartpole_make`` /
  ``cartpole_unwrapped``;
* ``greedy_mouse_vector_N`` (N = 1, 64, 1024, 4096 worlds; world-steps/s) vs
  ``cartpole_vector_N`` (CartPole's own ``vector_entry_point`` env at the same N);
* ``greedy_mouse_parallel_4_mice`` (``smpc_gym.greedy_mouse_v0.parallel_env(num_mice=4)``,
  env steps/s; ``agent_steps_per_s`` = 4x) and ``supply_chain_parallel``
  (``smpc_gym.supply_chain_v0.parallel_env()``), both vs ``cartpole_make``.

Actions are drawn before timing (random, fixed seed), episodes are reset as they end, and
each row runs for ``--seconds`` of wall time. ``--json`` prints one JSON object::

    {"seconds_per_row": float, "versions": {...},
     "rows": {KEY: {"steps_per_s": float | null, "baseline": KEY | null,
                    "ratio": float | null, "note": str}},
     "targets": {"single_make_vs_cartpole_ge_0_5": bool,
                 "vector_4096_ge_5M_world_steps_per_s": bool,
                 "vector_4096_vs_cartpole_vector_ge_0_5": bool}}

Run: ``python benchmarks/env_throughput.py [--seconds 1.5] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import smpc_gym  # noqa: E402

SIZES = (1, 64, 1024, 4096)
_POOL = 256  # pre-drawn actions, reused cyclically


def timed(step: Callable[[int], None], seconds: float, chunk: int) -> float:
    """Call ``step(i)`` in chunks until ``seconds`` have passed; return calls per second."""
    for i in range(min(chunk, 50)):  # warm-up (caches, first-call checks)
        step(i)
    done = 0
    start = time.perf_counter()
    while True:
        for i in range(chunk):
            step(done + i)
        done += chunk
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def bench_single(env: gym.Env, seconds: float) -> float:
    """Steps/s of one Gymnasium env under random actions (reset when an episode ends)."""
    rng = np.random.default_rng(0)
    actions = [int(a) for a in rng.integers(0, env.action_space.n, size=_POOL)]
    env.reset(seed=0)

    def step(i: int) -> None:
        _, _, term, trunc, _ = env.step(actions[i % _POOL])
        if term or trunc:
            env.reset()

    return timed(step, seconds, chunk=2000)


def bench_vector(envs: gym.vector.VectorEnv, seconds: float) -> float:
    """World-steps/s of a vector env (autoreset handles episode ends)."""
    n = envs.num_envs
    rng = np.random.default_rng(0)
    actions = rng.integers(0, envs.single_action_space.n, size=(64, n))
    envs.reset(seed=0)

    def step(i: int) -> None:
        envs.step(actions[i % 64])

    chunk = max(5, 20000 // n)
    return timed(step, seconds, chunk=chunk) * n


def bench_parallel(env: Any, seconds: float) -> float:
    """Env steps/s of a PettingZoo ParallelEnv under random actions."""
    env.reset(seed=0)
    agents = list(env.possible_agents)
    for a in agents:
        env.action_space(a).seed(0)
    pool = [{a: env.action_space(a).sample() for a in agents} for _ in range(_POOL)]

    def step(i: int) -> None:
        acts = pool[i % _POOL]
        env.step({a: acts[a] for a in env.agents})
        if not env.agents:
            env.reset()

    return timed(step, seconds, chunk=500)


def measure(seconds: float) -> dict[str, Any]:
    """Run every row; return the JSON-able result object."""
    rows: dict[str, dict[str, Any]] = {}

    def row(key: str, fn: Callable[[], float], baseline: str | None, note: str) -> None:
        try:
            value: float | None = fn()
            err = ""
        except Exception as exc:  # noqa: BLE001 - report a missing env as a row, not a crash
            value, err = None, f"not available: {type(exc).__name__}: {exc}"
        rows[key] = {"steps_per_s": value, "baseline": baseline, "ratio": None, "note": err or note}

    row("cartpole_make", lambda: bench_single(gym.make("CartPole-v1"), seconds), None, "yardstick")
    row(
        "cartpole_unwrapped",
        lambda: bench_single(gym.make("CartPole-v1").unwrapped, seconds),
        None,
        "yardstick",
    )
    row(
        "greedy_mouse_make",
        lambda: bench_single(gym.make("GreedyMouse-v0"), seconds),
        "cartpole_make",
        "gym.make (PassiveEnvChecker, OrderEnforcing, TimeLimit)",
    )
    row(
        "greedy_mouse_unwrapped",
        lambda: bench_single(gym.make("GreedyMouse-v0").unwrapped, seconds),
        "cartpole_unwrapped",
        ".unwrapped",
    )
    for n in SIZES:
        row(
            f"cartpole_vector_{n}",
            lambda n=n: bench_vector(
                gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point"),
                seconds,
            ),
            None,
            f"yardstick, {n} worlds, world-steps/s",
        )
        row(
            f"greedy_mouse_vector_{n}",
            lambda n=n: bench_vector(
                gym.make_vec("GreedyMouse-v0", num_envs=n, vectorization_mode="vector_entry_point"),
                seconds,
            ),
            f"cartpole_vector_{n}",
            f"{n} worlds, world-steps/s",
        )
    row(
        "greedy_mouse_parallel_4_mice",
        lambda: bench_parallel(smpc_gym.greedy_mouse_v0.parallel_env(num_mice=4), seconds),
        "cartpole_make",
        "PettingZoo parallel env, env steps/s (4 agent-steps each)",
    )
    row(
        "supply_chain_parallel",
        lambda: bench_parallel(smpc_gym.supply_chain_v0.parallel_env(), seconds),
        "cartpole_make",
        "PettingZoo parallel env, env steps/s (2 agent-steps each)",
    )
    for r in rows.values():
        base = rows.get(r["baseline"]) if r["baseline"] else None
        if base and r["steps_per_s"] and base["steps_per_s"]:
            r["ratio"] = r["steps_per_s"] / base["steps_per_s"]
    p4 = rows["greedy_mouse_parallel_4_mice"]
    if p4["steps_per_s"]:
        p4["agent_steps_per_s"] = 4 * p4["steps_per_s"]

    def ok(key: str, test: Callable[[dict[str, Any]], bool]) -> bool:
        r = rows.get(key)
        return bool(r and r["steps_per_s"] and r["ratio"] is not None and test(r))

    targets = {
        "single_make_vs_cartpole_ge_0_5": ok("greedy_mouse_make", lambda r: r["ratio"] >= 0.5),
        "vector_4096_ge_5M_world_steps_per_s": ok(
            "greedy_mouse_vector_4096", lambda r: r["steps_per_s"] >= 5e6
        ),
        "vector_4096_vs_cartpole_vector_ge_0_5": ok(
            "greedy_mouse_vector_4096", lambda r: r["ratio"] >= 0.5
        ),
    }
    import pettingzoo

    return {
        "seconds_per_row": seconds,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "gymnasium": gym.__version__,
            "pettingzoo": pettingzoo.__version__,
            "smpc_gym": smpc_gym.__version__,
            "cpus": os.cpu_count(),
        },
        "rows": rows,
        "targets": targets,
    }


def print_table(result: dict[str, Any]) -> None:
    """Human-readable table of :func:`measure`'s result."""
    print(
        f"env throughput, {result['seconds_per_row']:g} s per row "
        f"(gymnasium {result['versions']['gymnasium']}, numpy {result['versions']['numpy']}, "
        f"{result['versions']['cpus']} CPUs)"
    )
    print(f"{'row':32} {'steps/s':>14} {'vs':>22} {'ratio':>7}  note")
    for key, r in result["rows"].items():
        sps = f"{r['steps_per_s']:,.0f}" if r["steps_per_s"] else "not available"
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        print(f"{key:32} {sps:>14} {r['baseline'] or '':>22} {ratio:>7}  {r['note']}")
    print("targets:")
    for key, value in result["targets"].items():
        print(f"  {key}: {'PASS' if value else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="wall time per row")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    result = measure(args.seconds)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
