"""Evaluation of a trained policy, the ``eval.json`` contract, and normalized scores.

Evaluation runs ``episodes`` (default 20) episodes on the fixed seed list
:func:`eval_seeds` (``10000, 10001, …``; disjoint from training seeds), acting with
``algo.act(obs, deterministic=True)``. With ``epsilon > 0`` a uniformly random action is
taken with that probability instead (from a generator seeded by the episode seed), e.g.
to break deterministic loops of a tabular policy; the value used is recorded. When
``epsilon`` is not given, an ``eval_epsilon`` field of the algorithm's Config is used if it
has one, else 0 (greedy).

``eval.json`` keys (stable; all numbers are floats unless noted):

==========================  ===============================================================
``algo``, ``env``           the run's ``--algo`` and ``--env`` names (str)
``env_kwargs``              env kwargs used for evaluation (object)
``episodes``                number of evaluation episodes (int)
``seeds``                   the episode seeds (list of int)
``exploration``             ε used during evaluation (0.0 = greedy)
``mean_return``             mean episode return (GreedyMouse: the mouse's return;
                            SupplyChain: both players' rewards summed)
``std_return``              standard deviation of the episode returns (ddof=0)
``ci95_return``             half-width of the 95% t-interval of the mean return
``returns``                 every episode's return (list)
``mean_episode_steps``      mean episode length in env steps
GreedyMouse only:
``cheese_per_1000_steps``   cheese eaten per 1,000 env steps (all episodes pooled)
``deaths_per_1000_steps``   times eaten per 1,000 env steps (pooled)
``mean_survival_steps``     mean life length: total steps / lives, where a life ends at
                            each death or at the episode's end (a life still going when
                            the time limit cuts it counts, cut short)
SupplyChain only:
``players``                 ``{player_0: {...}, player_1: {...}}``, each with
                            ``reward`` (mean reward per step), ``wastage_units`` and
                            ``wastage_cost`` (mean per episode), ``ncr`` (mean
                            normalized cumulative revenue per episode)
``total_reward``            mean per-episode reward of both players (= mean_return)
``total_ncr``               sum of the players' ``ncr``
``total_wastage_units``     sum of the players' ``wastage_units``
==========================  ===============================================================

Normalized score: :func:`normalized_score` is ``(R − R_random) / (R_heuristic −
R_random)``; :func:`reference_returns` measures ``R_random`` and ``R_heuristic`` on the
same seeds and env kwargs (the heuristic sees the observation mode it needs; the
dynamics, and so the seeds' worlds, do not depend on the observation mode).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from smpc_gym.training.checkpoint import atomic_write_bytes

EVAL_SEED_BASE = 10_000

#: ``eval.json`` keys present for every env.
COMMON_KEYS = (
    "algo",
    "env",
    "env_kwargs",
    "episodes",
    "seeds",
    "exploration",
    "mean_return",
    "std_return",
    "ci95_return",
    "returns",
    "mean_episode_steps",
)
GREEDY_MOUSE_KEYS = ("cheese_per_1000_steps", "deaths_per_1000_steps", "mean_survival_steps")
SUPPLY_CHAIN_KEYS = ("players", "total_reward", "total_ncr", "total_wastage_units")
PLAYER_KEYS = ("reward", "wastage_units", "wastage_cost", "ncr")


def eval_seeds(episodes: int) -> list[int]:
    """The fixed evaluation seed list: ``EVAL_SEED_BASE + i`` for ``i < episodes``."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    return [EVAL_SEED_BASE + i for i in range(int(episodes))]


def _summary(returns: Sequence[float]) -> dict[str, Any]:
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    ci = 0.0
    if n > 1:
        # Student t quantile; scipy.special loads in half the time scipy.stats does,
        # which `train.py eval` pays on every call
        from scipy.special import stdtrit

        ci = float(stdtrit(n - 1, 0.975) * r.std(ddof=1) / math.sqrt(n))
    return {
        "mean_return": float(r.mean()),
        "std_return": float(r.std()),
        "ci95_return": ci,
        "returns": [float(x) for x in r],
    }


def _count(info: Mapping[str, Any], key: str) -> int:
    v = info.get(key, 0)
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    return int(v) if v is not None else 0


def evaluate_greedy_mouse(
    policy: Callable[[Any], int],
    env_kwargs: Mapping[str, Any],
    seeds: Sequence[int],
    epsilon: float = 0.0,
    render_mode: str | None = None,
    on_episode: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``policy(obs) -> action`` on ``GreedyMouse-v0`` (one episode per seed;
    ``on_episode(n)`` is called after the ``n``-th, e.g. for a progress display)."""
    import gymnasium as gym

    import smpc_gym  # noqa: F401 - registers GreedyMouse-v0

    env = gym.make("GreedyMouse-v0", render_mode=render_mode, **dict(env_kwargs))
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
                cheese += _count(info, "cheese_eaten")
                eaten = _count(info, "eaten")
                deaths += eaten
                lives += eaten
                done = terminated or truncated
            lives += 0 if eaten else 1  # the life still going when the episode ended
            returns.append(ep_return)
            if on_episode is not None:
                on_episode(len(returns))
    finally:
        env.close()
    out = _summary(returns)
    steps = max(total_steps, 1)
    out.update(
        mean_episode_steps=total_steps / len(seeds),
        cheese_per_1000_steps=1000.0 * cheese / steps,
        deaths_per_1000_steps=1000.0 * deaths / steps,
        mean_survival_steps=total_steps / max(lives, 1),
    )
    return out


def evaluate_supply_chain(
    policy: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    env_kwargs: Mapping[str, Any],
    seeds: Sequence[int],
    epsilon: float = 0.0,
    render_mode: str | None = None,
    on_episode: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``policy({agent: obs}) -> {agent: action}`` on the SupplyChain game
    (``on_episode(n)`` is called after the ``n``-th episode)."""
    from smpc_gym import supply_chain_v0

    env = supply_chain_v0.parallel_env(render_mode=render_mode, **dict(env_kwargs))
    players = list(env.possible_agents)
    sums = {
        p: {"reward": 0.0, "wastage_units": 0.0, "wastage_cost": 0.0, "ncr": 0.0} for p in players
    }
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
            if on_episode is not None:
                on_episode(len(returns))
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
    out = _summary(returns)
    out.update(
        mean_episode_steps=total_steps / n,
        players=per_player,
        total_reward=out["mean_return"],
        total_ncr=sum(v["ncr"] for v in per_player.values()),
        total_wastage_units=sum(v["wastage_units"] for v in per_player.values()),
    )
    return out


def evaluate(
    algo: Any,
    env: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    episodes: int = 20,
    seeds: Sequence[int] | None = None,
    epsilon: float | None = None,
    render_mode: str | None = None,
    on_episode: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a trained :class:`~smpc_gym.agents.base.Algorithm`; returns the
    ``eval.json`` dict (keys in this module's docstring). ``on_episode(n)`` is called
    after the ``n``-th episode (the runner's progress display)."""
    env_kwargs = dict(algo.env_kwargs if env_kwargs is None else env_kwargs)
    seeds = list(seeds) if seeds is not None else eval_seeds(episodes)
    if epsilon is None:
        epsilon = float(getattr(algo.config, "eval_epsilon", 0.0) or 0.0)
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")

    def policy(obs: Any) -> Any:
        return algo.act(obs, deterministic=True)

    if env == "greedy_mouse":
        body = evaluate_greedy_mouse(policy, env_kwargs, seeds, epsilon, render_mode, on_episode)
    elif env == "supply_chain":
        body = evaluate_supply_chain(policy, env_kwargs, seeds, epsilon, render_mode, on_episode)
    else:
        raise ValueError(f"unknown env {env!r}; choose greedy_mouse or supply_chain")
    head = {
        "algo": getattr(algo, "name", type(algo).__name__),
        "env": env,
        "env_kwargs": env_kwargs,
        "episodes": len(seeds),
        "seeds": seeds,
        "exploration": float(epsilon),
    }
    return {**head, **body}


def normalized_score(r: float, r_random: float, r_heuristic: float) -> float:
    """``(R − R_random) / (R_heuristic − R_random)``: 0 = random, 1 = the heuristic."""
    denom = r_heuristic - r_random
    if denom == 0:
        raise ValueError(
            f"heuristic and random score the same ({r_heuristic}); normalized score undefined"
        )
    return (r - r_random) / denom


def reference_returns(
    env: str, env_kwargs: Mapping[str, Any], seeds: Sequence[int], seed: int = 0
) -> dict[str, float]:
    """``{"random": R_random, "heuristic": R_heuristic}`` mean returns on ``seeds``."""
    from smpc_gym.agents.baselines import HeuristicAgent, RandomAgent

    out = {}
    for cls in (RandomAgent, HeuristicAgent):
        kwargs = cls.env_kwargs_for(env, env_kwargs)
        agent = cls(cls.Config(env=env), kwargs, seed)
        out[cls.name] = evaluate(agent, env, kwargs, seeds=seeds, epsilon=0.0)["mean_return"]
    return out


def normalized_score_of(result: Mapping[str, Any]) -> float:
    """Normalized score of an ``eval.json`` dict, measuring random and heuristic on the
    same env kwargs and seeds."""
    ref = reference_returns(result["env"], result["env_kwargs"], result["seeds"])
    return normalized_score(result["mean_return"], ref["random"], ref["heuristic"])


def write_eval(path: str | Path, result: Mapping[str, Any]) -> None:
    """Write ``eval.json`` atomically (sorted keys)."""
    atomic_write_bytes(path, (json.dumps(result, indent=2, sort_keys=True) + "\n").encode())


def replay(
    algo: Any,
    env: str,
    env_kwargs: Mapping[str, Any] | None = None,
    episodes: int = 3,
    max_steps: int | None = 200,
    epsilon: float | None = None,
) -> dict[str, Any]:
    """Show ``episodes`` episodes of the policy in a pygame window (``render_mode="human"``).

    Episodes are cut to ``max_steps`` steps (None: the env's own limit; at 8 fps a full
    1,000-step GreedyMouse episode takes two minutes). The returned dict has the
    :func:`evaluate` keys, but for the shortened episodes: it is not an ``eval.json``.
    """
    from smpc_gym.training.config import EPISODE_LENGTH

    kwargs = dict(algo.env_kwargs if env_kwargs is None else env_kwargs)
    if max_steps is not None and env in EPISODE_LENGTH:
        key, default = EPISODE_LENGTH[env]
        kwargs[key] = min(int(kwargs.get(key, default)), int(max_steps))
    return evaluate(algo, env, kwargs, episodes=episodes, epsilon=epsilon, render_mode="human")
