"""SupplyChain speed: PettingZoo env steps/s and the batched game's episode-steps/s.

Figures (all measured in this run, with uniform random actions drawn before timing):

* ``env_steps_per_s`` — ``smpc_gym.supply_chain_v0.parallel_env()`` steps/s (the scalar
  fast path plus PettingZoo dicts / infos / observations).
* ``game_batch1_steps_per_s`` — the batched numpy game at ``batch_size=1`` (the baseline
  the env's scalar fast path replaces); ``env_vs_game_batch1`` = env / this.
* ``game_batch_steps_per_s`` — the batched game at ``--batch`` (default 1024), counted in
  episode-steps (``batch * steps / s``); ``game_batch_vs_env`` = this / env.

Usage: ``python benchmarks/supply_chain_speed.py [--batch 1024] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time

from smpc_gym import supply_chain_v0
from smpc_gym.envs.supply_chain.game import measure_throughput


def env_steps_per_s(steps: int, seed: int = 0) -> float:
    """Steps/s of ``supply_chain_v0.parallel_env()`` under pre-drawn random actions."""
    env = supply_chain_v0.parallel_env()
    env.reset(seed=seed)
    for i, a in enumerate(env.possible_agents):
        env.action_space(a).seed(seed + i)
    pool = [{a: env.action_space(a).sample() for a in env.possible_agents} for _ in range(64)]
    start = time.perf_counter()
    for i in range(steps):
        if not env.agents:
            env.reset()
        env.step(pool[i % 64])
    return steps / (time.perf_counter() - start)


def main() -> None:
    """Run the measurements and print them (text, or one JSON object with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024, help="batch size of the game")
    parser.add_argument("--env-steps", type=int, default=20000)
    parser.add_argument("--game-steps", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    env_sps = env_steps_per_s(args.env_steps)
    b1 = measure_throughput(1, args.game_steps * 2)["episode_steps_per_s"]
    bn = measure_throughput(args.batch, args.game_steps)["episode_steps_per_s"]
    out = {
        "env_steps_per_s": env_sps,
        "game_batch1_steps_per_s": b1,
        "env_vs_game_batch1": env_sps / b1,
        "batch_size": args.batch,
        "game_batch_steps_per_s": bn,
        "game_batch_vs_env": bn / env_sps,
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"parallel_env():                {env_sps:12,.0f} steps/s")
    print(
        f"numpy game, batch 1 (baseline): {b1:11,.0f} steps/s   -> env is {env_sps / b1:.1f}x this"
    )
    print(
        f"numpy game, batch {args.batch}:        {bn:12,.0f} episode-steps/s"
        f"   -> {bn / env_sps:.0f}x the env"
    )


if __name__ == "__main__":
    main()
