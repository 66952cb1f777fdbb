"""Running a policy on ``GreedyMouse-v0``: the fixed-seed evaluation and a plain run.

* :func:`evaluate_policy` — one episode per seed, the GreedyMouse ``eval.json`` body
  (the keys are listed in :mod:`smpc_gym.training.evaluate`).
* :func:`run_policy` — step a fixed policy for a number of env steps, yielding after
  every step and, every ``log_every`` steps, a row of training metrics (what the
  ``random`` and ``heuristic`` baselines log).

Both build the env with ``gym.make("GreedyMouse-v0", **env_kwargs)`` (TimeLimit at
``max_episode_steps``, default 1,000).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np

from smpc_gym.envs.evaluation import PolicyRun, info_count, summarize_returns
from smpc_gym.envs.greedy_mouse import ENV_ID


def evaluate_policy(
    policy: Callable[[Any], int],
    env_kwargs: Mapping[str, Any],
    seeds: Sequence[int],
    epsilon: float = 0.0,
    render_mode: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``policy(obs) -> action`` on ``GreedyMouse-v0`` (one episode per seed).

    With ``epsilon > 0`` a uniform random action replaces the policy's with that
    probability (from a generator seeded by the episode seed).
    """
    env = gym.make(ENV_ID, render_mode=render_mode, **dict(env_kwargs))
    n_actions = int(cast(gym.spaces.Discrete, env.action_space).n)
    returns, total_steps, cheese, deaths, lives = [], 0, 0, 0, 0
    try:
        for seed in seeds:
            rng = np.random.default_rng(seed)
            obs, _ = env.reset(seed=int(seed))
            ep_return, done = 0.0, False
            while not done:
                if epsilon > 0 and rng.random() < epsilon:
                    action = int(rng.integers(n_actions))
                else:
                    action = int(policy(obs))
                obs, reward, terminated, truncated, info = env.step(action)
                ep_return += float(reward)
                total_steps += 1
                cheese += info_count(info, "cheese_eaten")
                eaten = info_count(info, "eaten")
                deaths += eaten
                lives += eaten
                done = terminated or truncated
            lives += 0 if eaten else 1  # the life still going when the episode ended
            returns.append(ep_return)
    finally:
        env.close()
    out = summarize_returns(returns)
    steps = max(total_steps, 1)
    out.update(
        mean_episode_steps=total_steps / len(seeds),
        cheese_per_1000_steps=1000.0 * cheese / steps,
        deaths_per_1000_steps=1000.0 * deaths / steps,
        mean_survival_steps=total_steps / max(lives, 1),
    )
    return out


def run_policy(
    policy: Callable[[Any], int],
    env_kwargs: Mapping[str, Any],
    seed: int,
    start_step: int,
    total_steps: int,
    log_every: int,
) -> PolicyRun:
    """Step ``policy`` from env step ``start_step`` until ``total_steps``.

    The env is reset with ``seed`` once, then without a seed after each episode. Yields
    ``(env_step, episodes_ended, row)`` after every step: ``episodes_ended`` is 0 or 1,
    ``row`` is None except every ``log_every`` steps and at the last step, where it holds
    ``episode_return`` (mean over the episodes ended since the last row; NaN if none),
    ``cheese_per_1000_steps`` and ``deaths_per_1000_steps`` (over those steps).
    """
    env = gym.make(ENV_ID, **dict(env_kwargs))
    obs, _ = env.reset(seed=seed)
    step, ep_return = int(start_step), 0.0
    returns: list[float] = []
    n = cheese = deaths = 0
    try:
        while step < total_steps:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            step += 1
            ep_return += float(reward)
            n += 1
            cheese += int(info.get("cheese_eaten", 0))
            deaths += int(info.get("eaten", 0))
            ended = 0
            if terminated or truncated:
                returns.append(ep_return)
                ended, ep_return = 1, 0.0
                obs, _ = env.reset()
            row = None
            if step % log_every == 0 or step >= total_steps:
                row = {
                    "episode_return": float(np.mean(returns)) if returns else math.nan,
                    "cheese_per_1000_steps": 1000.0 * cheese / max(n, 1),
                    "deaths_per_1000_steps": 1000.0 * deaths / max(n, 1),
                }
                returns, n, cheese, deaths = [], 0, 0, 0
            yield step, ended, row
    finally:
        env.close()
