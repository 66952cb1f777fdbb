"""Running a joint policy on the SupplyChain ``ParallelEnv``: evaluation and a plain run.

* :func:`evaluate_policy` — one episode per seed, the SupplyChain ``eval.json`` body
  (the keys are listed in :mod:`smpc_gym.training.evaluate`).
* :func:`run_policy` — step a fixed joint policy for a number of env steps, yielding
  after every step and, every ``log_every`` steps, a row of training metrics under the
  names MADDPG/NDS log (so their curves plot side by side).

A joint policy maps ``{player: obs}`` to ``{player: action}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from smpc_gym.envs.evaluation import PolicyRun, summarize_returns
from smpc_gym.envs.supply_chain.parallel import SupplyChainParallelEnv

JointPolicy = Callable[[Mapping[str, Any]], Mapping[str, Any]]

#: keys of each ``players[p]`` entry
PLAYER_KEYS = ("reward", "wastage_units", "wastage_cost", "ncr")


def evaluate_policy(
    policy: JointPolicy,
    env_kwargs: Mapping[str, Any],
    seeds: Sequence[int],
    epsilon: float = 0.0,
    render_mode: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``policy({agent: obs}) -> {agent: action}`` on the SupplyChain game.

    With ``epsilon > 0`` uniform random actions replace the policy's with that
    probability (from a generator seeded by the episode seed).
    """
    env = SupplyChainParallelEnv(render_mode=render_mode, **dict(env_kwargs))
    players = list(env.possible_agents)
    sums = {p: dict.fromkeys(PLAYER_KEYS, 0.0) for p in players}
    returns, total_steps = [], 0
    try:
        for seed in seeds:
            rng = np.random.default_rng(seed)
            obs, _ = env.reset(seed=int(seed))
            ep = dict.fromkeys(players, 0.0)
            last_info: dict[str, Any] = {}
            while env.agents:
                if epsilon > 0 and rng.random() < epsilon:
                    actions = {
                        p: rng.uniform(env.action_space(p).low, env.action_space(p).high).astype(
                            np.float32
                        )
                        for p in env.agents
                    }
                else:
                    actions = dict(policy(obs))
                obs, rewards, _, _, infos = env.step(actions)
                total_steps += 1
                for p in players:
                    ep[p] += float(rewards.get(p, 0.0))
                    info = infos.get(p, {})
                    sums[p]["wastage_units"] += float(info.get("units_wasted", 0.0))
                    sums[p]["wastage_cost"] += float(info.get("waste_cost", 0.0))
                    if info:
                        last_info[p] = info
            for p in players:
                sums[p]["reward"] += ep[p]
                ncr = last_info.get(p, {}).get("ncr")
                sums[p]["ncr"] += float(ncr) if ncr is not None else ep[p]
            returns.append(sum(ep.values()))
    finally:
        env.close()
    n = len(seeds)
    per_player = {
        p: {
            "reward": sums[p]["reward"] / max(total_steps, 1),
            "wastage_units": sums[p]["wastage_units"] / n,
            "wastage_cost": sums[p]["wastage_cost"] / n,
            "ncr": sums[p]["ncr"] / n,
        }
        for p in players
    }
    out = summarize_returns(returns)
    out.update(
        mean_episode_steps=total_steps / n,
        players=per_player,
        total_reward=out["mean_return"],
        total_ncr=sum(v["ncr"] for v in per_player.values()),
        total_wastage_units=sum(v["wastage_units"] for v in per_player.values()),
    )
    return out


def run_policy(
    policy: JointPolicy,
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
    ``episode_return`` and ``total_reward`` (mean per-episode reward of both players over
    the episodes ended since the last row; NaN if none), ``reward_per_step`` (both
    players, over those steps), ``total_ncr`` and ``total_wastage_units`` (both players,
    mean per episode).
    """
    env = SupplyChainParallelEnv(**dict(env_kwargs))
    obs, _ = env.reset(seed=seed)
    step, ep_return, ep_waste = int(start_step), 0.0, 0.0
    returns: list[float] = []
    ncrs: list[float] = []
    wastes: list[float] = []
    reward, n = 0.0, 0
    try:
        while step < total_steps:
            obs, rewards, _, _, infos = env.step(policy(obs))
            step += 1
            step_reward = float(sum(rewards.values()))
            ep_return += step_reward
            ep_waste += sum(float(i.get("units_wasted", 0.0)) for i in infos.values())
            reward += step_reward
            n += 1
            ended = 0
            if not env.agents:
                returns.append(ep_return)
                ncrs.append(sum(float(i["ncr"]) for i in infos.values()))
                wastes.append(ep_waste)
                ended, ep_return, ep_waste = 1, 0.0, 0.0
                obs, _ = env.reset()
            row = None
            if step % log_every == 0 or step >= total_steps:
                mean_return = float(np.mean(returns)) if returns else math.nan
                row = {
                    "episode_return": mean_return,
                    "reward_per_step": reward / max(n, 1),
                    "total_reward": mean_return,
                    "total_ncr": float(np.mean(ncrs)) if returns else math.nan,
                    "total_wastage_units": float(np.mean(wastes)) if returns else math.nan,
                }
                returns, ncrs, wastes, reward, n = [], [], [], 0.0, 0
            yield step, ended, row
    finally:
        env.close()
