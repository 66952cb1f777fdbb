"""Stable-Baselines3 DQN on GreedyMouse-v0 with the `features` observation.

    python examples/sb3_greedy_mouse.py [--steps 50000] [--episodes 20]

GreedyMouse is a plain Gymnasium env, so SB3 needs nothing special: `gym.make` it and
pass it to the algorithm. The evaluation uses smpc_gym's fixed seed list, so its numbers
are comparable with `train.py` runs (`eval.json`).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
from stable_baselines3 import DQN

import smpc_gym  # noqa: F401 - registers GreedyMouse-v0
from smpc_gym.training.evaluate import eval_seeds, evaluate_greedy_mouse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="training env steps")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes")
    parser.add_argument("--max-episode-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env_kwargs = {"obs_mode": "features", "max_episode_steps": args.max_episode_steps}
    env = gym.make("GreedyMouse-v0", **env_kwargs)
    model = DQN(
        "MlpPolicy",
        env,
        learning_rate=5e-4,
        buffer_size=50_000,
        learning_starts=min(1_000, args.steps // 2),
        exploration_fraction=0.3,
        target_update_interval=1_000,
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    model.learn(total_timesteps=args.steps)

    def policy(obs):
        action, _ = model.predict(obs, deterministic=True)
        return int(action)

    result = evaluate_greedy_mouse(policy, env_kwargs, eval_seeds(args.episodes))
    print(
        f"SB3 DQN after {args.steps} steps: mean return {result['mean_return']:.1f} "
        f"± {result['std_return']:.1f}, cheese/1000 steps {result['cheese_per_1000_steps']:.1f}, "
        f"deaths/1000 steps {result['deaths_per_1000_steps']:.1f}"
    )


if __name__ == "__main__":
    main()
