"""Load a trained run folder and use its policy.

    python examples/load_trained_run.py runs/tabular_q-greedy_mouse-0 [--episodes 3]

Without a run folder it first trains a small `heuristic` run into a temporary folder, so
the script always has something to load. A run folder holds `model.pt`, which
`load_run` turns back into the algorithm (weights_only loading, rebuilt via the
registry); `algo.act(obs)` is then its greedy policy on the env built from
`algo.env_kwargs`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import gymnasium as gym

import smpc_gym  # noqa: F401 - registers GreedyMouse-v0
from smpc_gym.training.cli import main as train_cli
from smpc_gym.training.run import load_run, read_run_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run folder (default: train a tiny one)")
    parser.add_argument("--episodes", type=int, default=3)
    args = parser.parse_args()

    run = args.run
    if run is None:
        run = str(Path(tempfile.mkdtemp()) / "heuristic")
        train_cli(
            ["--algo", "heuristic", "--env", "greedy_mouse", "--steps", "500", "--quiet"]
            + ["--out", run, "--eval-episodes", "2", "--set", "env.max_episode_steps=100"]
        )

    config = read_run_config(run)
    algo = load_run(run)
    print(f"loaded {config['algo']} on {config['env']} at env step {algo.env_steps}")
    print("its evaluation:", json.dumps(json.loads((Path(run) / "eval.json").read_text()))[:200])

    if config["env"] == "greedy_mouse":
        env = gym.make("GreedyMouse-v0", **algo.env_kwargs)
        for episode in range(args.episodes):
            obs, info = env.reset(seed=episode)
            done, total = False, 0.0
            while not done:
                obs, reward, terminated, truncated, info = env.step(algo.act(obs))
                total += float(reward)
                done = terminated or truncated
            print(
                f"episode {episode}: return {total:.0f}, cheese {info['total_cheese']}, "
                f"eaten {info['total_eaten']}"
            )
        env.close()
    else:
        from smpc_gym import supply_chain_v0

        env = supply_chain_v0.parallel_env(**algo.env_kwargs)
        for episode in range(args.episodes):
            obs, infos = env.reset(seed=episode)
            while env.agents:
                obs, rewards, _, _, infos = env.step(algo.act(obs))
            print(f"episode {episode}: NCR", {p: round(i["ncr"], 1) for p, i in infos.items()})
        env.close()


if __name__ == "__main__":
    main()
