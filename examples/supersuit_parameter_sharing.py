"""SuperSuit + Stable-Baselines3 parameter sharing on the multi-mouse GreedyMouse.

    pip install -e ".[supersuit]"       # SuperSuit (no torch of its own)
    python examples/supersuit_parameter_sharing.py [--mice 3] [--steps 100000]

Parameter sharing: every mouse is one slot of a vector env and ONE SB3 PPO policy acts
for all of them (PettingZoo's usual SuperSuit recipe). The pipeline:

1. ``greedy_mouse_v0.parallel_env(num_mice=N, obs_mode="features")`` — the PettingZoo
   ``ParallelEnv`` (every mouse has the same observation and action spaces, which
   parameter sharing needs);
2. ``supersuit.reward_lambda_v0`` scales the rewards by 0.01 (as the ``sb3_ppo`` preset
   does: -1 / +50 / -100 are far from PPO's unit scale);
3. ``supersuit.pettingzoo_env_to_vec_env_v1`` turns the N mice into an N-slot vector env;
4. ``supersuit.concat_vec_envs_v1(..., base_class="stable_baselines3")`` stacks
   ``--copies`` worlds into one SB3 ``VecEnv``.

**The SuperSuit seed workaround.** ``PPO(..., seed=s)`` fails with ``AttributeError:
'ConcatVecEnv' object has no attribute 'seed'``: SB3 seeds its env through the old
``VecEnv.seed`` method, which SuperSuit's ``ConcatVecEnv`` does not have (a SuperSuit
bug). So this example does not pass ``seed=`` to SB3. Instead it seeds the two things
``seed=`` would have seeded: SB3's own generators with
``stable_baselines3.common.utils.set_random_seed(s)`` (Python, numpy and torch global
RNGs, as SB3 itself does), and the worlds with ``ConcatVecEnv.reset(seed=s)`` (world
``i`` gets ``s + i``; later resets continue deterministically from there). Two runs with
the same ``--seed`` then train the same policy.

The evaluation plays the parallel env (unscaled rewards) on smpc_gym's fixed evaluation
seeds with the shared policy acting greedily for every mouse, and the same seeds with
uniformly random actions as the baseline.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch


def make_vec_env(mice: int, copies: int, seed: int, max_episode_steps: int) -> Any:
    """The SuperSuit pipeline above, seeded without SB3's ``seed=`` (see the docstring)."""
    import supersuit as ss

    from smpc_gym import greedy_mouse_v0

    env = greedy_mouse_v0.parallel_env(
        num_mice=mice, obs_mode="features", max_cycles=max_episode_steps
    )
    env = ss.reward_lambda_v0(env, lambda r: 0.01 * r)
    venv = ss.pettingzoo_env_to_vec_env_v1(env)
    venv = ss.concat_vec_envs_v1(venv, copies, num_cpus=0, base_class="stable_baselines3")
    venv.venv.reset(seed=seed)  # the workaround: seed the worlds on the ConcatVecEnv itself
    return venv


def evaluate(policy: Any, mice: int, seeds: list[int], max_episode_steps: int) -> dict[str, float]:
    """Mean per-mouse return, cheese and deaths per episode of ``policy(obs) -> action``
    (or ``policy=None``: uniform random actions) on the raw parallel env."""
    from smpc_gym import greedy_mouse_v0

    env = greedy_mouse_v0.parallel_env(
        num_mice=mice, obs_mode="features", max_cycles=max_episode_steps
    )
    returns, cheese, deaths = [], 0, 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        obs, _ = env.reset(seed=seed)
        total = dict.fromkeys(env.possible_agents, 0.0)
        while env.agents:
            if policy is None:
                actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
            else:
                batch = np.stack([obs[a] for a in env.agents]).astype(np.float32)
                acts = policy(batch)
                actions = {a: int(x) for a, x in zip(env.agents, acts, strict=True)}
            obs, rewards, _, _, infos = env.step(actions)
            for a, r in rewards.items():
                total[a] += float(r)
                cheese += int(bool(infos[a].get("cheese_eaten", False)))
                deaths += int(bool(infos[a].get("eaten", False)))
        returns.extend(total.values())
    env.close()
    n = len(seeds)
    return {
        "mean_return_per_mouse": float(np.mean(returns)),
        "cheese_per_episode": cheese / n,
        "deaths_per_episode": deaths / n,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train the shared PPO policy, evaluate it beside random play, print both."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import set_random_seed

    from smpc_gym.training.evaluate import eval_seeds

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mice", type=int, default=3, help="mice sharing one policy")
    p.add_argument("--copies", type=int, default=4, help="worlds stacked by concat_vec_envs")
    p.add_argument("--steps", type=int, default=100_000, help="training steps (all slots)")
    p.add_argument("--episodes", type=int, default=5, help="evaluation episodes")
    p.add_argument("--max-episode-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    set_random_seed(args.seed)  # what PPO(seed=...) would do, minus the failing env.seed
    venv = make_vec_env(args.mice, args.copies, args.seed, args.max_episode_steps)
    model = PPO(
        "MlpPolicy",
        venv,
        learning_rate=1e-3,
        n_steps=128,
        batch_size=256,
        n_epochs=10,
        ent_coef=0.0,
        device="cpu",
        verbose=0,
    )  # no seed=: SuperSuit's ConcatVecEnv has no .seed() (see the module docstring)
    model.learn(total_timesteps=args.steps)
    venv.close()

    def shared_policy(batch: np.ndarray) -> np.ndarray:
        return model.predict(batch, deterministic=True)[0]

    seeds = eval_seeds(args.episodes)
    trained = evaluate(shared_policy, args.mice, seeds, args.max_episode_steps)
    random = evaluate(None, args.mice, seeds, args.max_episode_steps)
    print(
        f"{args.mice} mice, one shared PPO policy after {model.num_timesteps} steps "
        f"({args.copies} worlds x {args.mice} mice per step), {args.episodes} eval episodes:"
    )
    for name, r in (("shared PPO", trained), ("random", random)):
        print(
            f"  {name:10s} return per mouse {r['mean_return_per_mouse']:9.1f}  "
            f"cheese/episode {r['cheese_per_episode']:6.1f}  "
            f"deaths/episode {r['deaths_per_episode']:6.1f}"
        )
    return {"trained": trained, "random": random, "steps": int(model.num_timesteps)}


if __name__ == "__main__":
    main()
